// TensorBoard event files: CRC32C, TFRecord frames, hand-encoded Event protobufs (core/tensorboard.h).
#include "core/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"

namespace ssiat {
namespace fs = std::filesystem;

namespace {

// The byte-at-a-time table of the reflected Castagnoli polynomial 0x82F63B78.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/): a key is
// (field << 3) | wire type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_fixed(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_key(std::string& out, int field, int wire) { put_varint(out, static_cast<uint64_t>(field) << 3 | wire); }
void put_bytes(std::string& out, int field, std::string_view s) {
  put_key(out, field, 2);
  put_varint(out, s.size());
  out += s;
}
void put_double(std::string& out, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_key(out, field, 1);
  put_fixed(out, bits, 8);
}
void put_float(std::string& out, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_key(out, field, 5);
  put_fixed(out, bits, 4);
}
void put_int(std::string& out, int field, int64_t v) {  // int64/enum: two's complement varint
  put_key(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));
}

// Event fields (event.proto) and the nested messages' fields (summary.proto).
constexpr int kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 7;
constexpr int kSummaryValue = 1, kValueTag = 1, kValueSimple = 2, kSessionStatus = 1, kStatusStart = 1;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string s = buf;
  for (char& c : s)  // a file name part: no separators
    if (c == '/' || c == ' ') c = '_';
  return s;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = kCrc32cTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_fixed(out, data.size(), 8);
  put_fixed(out, mask_crc32c(crc32c(out.data(), 8)), 4);
  out += data;
  put_fixed(out, mask_crc32c(crc32c(data.data(), data.size())), 4);
  return out;
}

double unix_wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

EventWriter::EventWriter(const fs::path& dir, int64_t first_step) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string() + ": cannot create directory: " + errno_message(ec.value()));
  const double now = unix_wall_time();
  const std::string base = "events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." + host_name() + ".ssiat";
  for (int k = 0; fd_ < 0; k++) {  // a new file: never append to one a previous segment wrote
    path_ = dir / (k == 0 ? base : base + "." + std::to_string(k));
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && (errno != EEXIST || k >= 1000))
      throw IoError(path_.string() + ": cannot create: " + errno_message(errno));
  }
  std::string version;
  put_double(version, kWallTime, now);
  put_bytes(version, kFileVersion, "brain.Event:2");
  write_record(version);
  std::string session, start;
  put_int(session, kSessionStatus, kStatusStart);
  put_double(start, kWallTime, now);
  put_int(start, kStep, first_step);
  put_bytes(start, kSessionLog, session);
  write_record(start);
}

EventWriter::~EventWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void EventWriter::scalar(std::string_view tag, int64_t step, double value, double wall_time) {
  std::string v, summary, event;
  put_bytes(v, kValueTag, tag);
  put_float(v, kValueSimple, static_cast<float>(value));
  put_bytes(summary, kSummaryValue, v);
  put_double(event, kWallTime, wall_time);
  put_int(event, kStep, step);
  put_bytes(event, kSummary, summary);
  write_record(event);
}

void EventWriter::flush() {}

void EventWriter::write_record(const std::string& event) {
  const std::string frame = tfrecord_frame(event);
  size_t done = 0;
  while (done < frame.size()) {
    const ssize_t n = ::write(fd_, frame.data() + done, frame.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw IoError(path_.string() + ": write failed: " + errno_message(n < 0 ? errno : EIO));
    done += static_cast<size_t>(n);
  }
}

std::string metrics_tag(std::string_view key) {
  if (key == "loss" || key == "lr" || key == "grad_norm" || key == "tokens_per_s") return "train/" + std::string(key);
  if (key == "val_loss") return "val/loss";
  return "perf/" + std::string(key);
}

void write_metrics_events(EventWriter& writer, const nlohmann::json& line, double wall_time) {
  const int64_t step = line.at("step").get<int64_t>();
  for (const auto& [key, value] : line.items())
    if (key != "step" && value.is_number()) writer.scalar(metrics_tag(key), step, value.get<double>(), wall_time);
}

}  // namespace ssiat
