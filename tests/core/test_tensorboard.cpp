// TensorBoard event files (core/tensorboard.h): CRC32C against RFC 3720's known answers, a
// TFRecord frame and Event encodings against bytes that TensorBoard's own Python writer and
// protobuf classes produced (tensorboard 2.21: RecordWriter, event_pb2.Event.SerializeToString),
// and a round trip through a minimal TFRecord + protobuf decoder written here, independent of the
// writer's encoder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/tensorboard.h"

namespace fs = std::filesystem;
using namespace ssiat;

namespace {

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | static_cast<unsigned char>(s[at + i]);
  return v;
}

// One protobuf field as read off the wire: a varint/fixed value or a length-delimited payload.
struct Field {
  int wire = -1;
  uint64_t num = 0;
  std::string bytes;
};

// Decodes one message into field number -> fields (in order); fails the test on malformed input.
std::multimap<int, Field> decode(const std::string& s) {
  std::multimap<int, Field> out;
  size_t i = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0; i < s.size(); shift += 7) {
      const auto b = static_cast<unsigned char>(s[i++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ADD_FAILURE() << "truncated varint";
    return v;
  };
  while (i < s.size()) {
    const uint64_t key = varint();
    Field f;
    f.wire = static_cast<int>(key & 7);
    if (f.wire == 0) f.num = varint();
    else if (f.wire == 1 || f.wire == 5) {
      const int n = f.wire == 1 ? 8 : 4;
      if (i + n > s.size()) { ADD_FAILURE() << "truncated fixed field"; return out; }
      f.num = le(s, i, n);
      i += n;
    } else if (f.wire == 2) {
      const uint64_t n = varint();
      if (i + n > s.size()) { ADD_FAILURE() << "truncated bytes field"; return out; }
      f.bytes = s.substr(i, n);
      i += n;
    } else {
      ADD_FAILURE() << "unexpected wire type " << f.wire;
      return out;
    }
    out.emplace(static_cast<int>(key >> 3), f);
  }
  return out;
}

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// The data of every TFRecord frame of a file, checking lengths and both masked CRCs.
std::vector<std::string> read_frames(const std::string& file) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < file.size()) {
    EXPECT_LE(at + 12, file.size()) << "truncated header at byte " << at;
    if (at + 12 > file.size()) break;
    const uint64_t n = le(file, at, 8);
    EXPECT_EQ(le(file, at + 8, 4), masked(crc32c(file.data() + at, 8))) << "length CRC at byte " << at;
    EXPECT_LE(at + 12 + n + 4, file.size()) << "truncated record at byte " << at;
    if (at + 12 + n + 4 > file.size()) break;
    const std::string data = file.substr(at + 12, n);
    EXPECT_EQ(le(file, at + 12 + n, 4), masked(crc32c(data.data(), data.size()))) << "data CRC at byte " << at;
    out.push_back(data);
    at += 12 + n + 4;
  }
  return out;
}

double as_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}
float as_float(uint64_t bits) {
  const auto b = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("ssiat_tb_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(Crc32c, Rfc3720KnownAnswers) {
  // RFC 3720 appendix B.4 (the CRC is listed there least significant byte first).
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; i++) up[i] = static_cast<char>(i), down[i] = static_cast<char>(31 - i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down.data(), 32), 0x113FDB5Cu);
  const std::string pdu = unhex(
      "01c000000000000000000000000000001400000000000400000000140000001828000000000000000200000000000000");
  EXPECT_EQ(crc32c(pdu.data(), pdu.size()), 0xD9963A56u);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // the common check value
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Crc32c, ContinuesAcrossChunks) {
  const std::string s = "the quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= s.size(); cut += 7)
    EXPECT_EQ(crc32c(s.data() + cut, s.size() - cut, crc32c(s.data(), cut)), crc32c(s.data(), s.size())) << cut;
}

TEST(TfRecord, FrameMatchesTensorBoardsWriter) {
  // tensorboard.summary.writer.record_writer.RecordWriter(b).write(b"hello")
  EXPECT_EQ(tfrecord_frame("hello"), unhex("0500000000000000eab2043e68656c6c6fbb1f1c19"));
  EXPECT_EQ(mask_crc32c(crc32c("hello", 5)), 0x191c1fbbu);  // pywrap_tensorflow.masked_crc32c(b"hello")
  EXPECT_EQ(mask_crc32c(0), 0xa282ead8u);
}

TEST(EventWriter, ScalarRecordsAreTensorBoardsProtobufBytes) {
  const fs::path dir = fresh_dir("bytes");
  {
    EventWriter w(dir, 10);
    w.scalar("train/loss", 7, 2.5, 1700000000.25);
    w.scalar("val/loss", 300, -0.125, 1700000000.25);
  }
  const std::vector<fs::path> files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  const std::vector<std::string> frames = read_frames(slurp(files[0]));
  ASSERT_EQ(frames.size(), 4u);
  // event_pb2.Event(wall_time=1700000000.25, step=..., summary=Summary(value=[Value(tag, simple_value)]))
  EXPECT_EQ(frames[2], unhex("0900001040fc54d94110072a130a110a0a747261696e2f6c6f73731500002040"));
  EXPECT_EQ(frames[3], unhex("0900001040fc54d94110ac022a110a0f0a0876616c2f6c6f737315000000be"));
  // event_pb2.Event(step=10, session_log=SessionLog(status=START)), wall_time aside.
  EXPECT_EQ(frames[1].substr(9), unhex("100a3a020801"));
  fs::remove_all(dir);
}

TEST(EventWriter, RoundTripThroughAnIndependentDecoder) {
  const fs::path dir = fresh_dir("roundtrip");
  const double before = unix_wall_time();
  std::vector<std::tuple<std::string, int64_t, double, double>> written;
  fs::path path;
  {
    EventWriter w(dir / "tb", 5);
    path = w.path();
    for (int64_t step = 5; step < 25; step++) {
      const double wall = 1.7e9 + static_cast<double>(step) * 0.5;
      written.emplace_back("train/loss", step, 10.0 / static_cast<double>(step), wall);
      written.emplace_back("perf/tokens_per_s", step, 12345.678 * static_cast<double>(step), wall);
    }
    written.emplace_back("val/loss", 1LL << 40, 3.25e-7, 1.8e9);
    for (const auto& [tag, step, value, wall] : written) w.scalar(tag, step, value, wall);
    w.flush();
  }
  const double after = unix_wall_time();
  // events.out.tfevents.<unix seconds>.<hostname>.ssiat
  const std::string name = path.filename().string();
  ASSERT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  const int64_t secs = std::stoll(name.substr(20));
  EXPECT_GE(secs, static_cast<int64_t>(before));
  EXPECT_LE(secs, static_cast<int64_t>(after));
  EXPECT_EQ(name.substr(name.size() - 6), ".ssiat");

  const std::vector<std::string> frames = read_frames(slurp(path));
  ASSERT_EQ(frames.size(), written.size() + 2);
  const auto version = decode(frames[0]);
  ASSERT_EQ(version.count(3), 1u);
  EXPECT_EQ(version.find(3)->second.bytes, "brain.Event:2");
  ASSERT_EQ(version.count(1), 1u);
  EXPECT_EQ(version.find(1)->second.wire, 1);
  EXPECT_GE(as_double(version.find(1)->second.num), before - 1);
  EXPECT_LE(as_double(version.find(1)->second.num), after + 1);
  const auto start = decode(frames[1]);
  ASSERT_EQ(start.count(2), 1u);
  EXPECT_EQ(start.find(2)->second.num, 5u);
  ASSERT_EQ(start.count(7), 1u);
  const auto session = decode(start.find(7)->second.bytes);
  ASSERT_EQ(session.count(1), 1u);
  EXPECT_EQ(session.find(1)->second.num, 1u);  // SessionLog.START

  for (size_t k = 0; k < written.size(); k++) {
    const auto& [tag, step, value, wall] = written[k];
    const auto ev = decode(frames[k + 2]);
    ASSERT_EQ(ev.count(1), 1u);
    EXPECT_EQ(as_double(ev.find(1)->second.num), wall);
    ASSERT_EQ(ev.count(2), 1u);
    EXPECT_EQ(static_cast<int64_t>(ev.find(2)->second.num), step);
    ASSERT_EQ(ev.count(5), 1u);
    const auto summary = decode(ev.find(5)->second.bytes);
    ASSERT_EQ(summary.count(1), 1u);
    const auto v = decode(summary.find(1)->second.bytes);
    ASSERT_EQ(v.count(1), 1u);
    EXPECT_EQ(v.find(1)->second.bytes, tag);
    ASSERT_EQ(v.count(2), 1u);
    EXPECT_EQ(v.find(2)->second.wire, 5);
    EXPECT_EQ(as_float(v.find(2)->second.num), static_cast<float>(value)) << tag << " step " << step;
  }
  fs::remove_all(dir);
}

TEST(EventWriter, EachWriterOpensANewFile) {
  const fs::path dir = fresh_dir("newfile");
  fs::path a, b;
  {
    EventWriter w1(dir, 0);
    a = w1.path();
    w1.scalar("x", 1, 1.0, 1.0);
  }
  const std::string first = slurp(a);
  {
    EventWriter w2(dir, 2);  // a resume in the same second: a second file, sorted after the first
    b = w2.path();
  }
  EXPECT_NE(a, b);
  EXPECT_LT(a.filename().string(), b.filename().string());
  EXPECT_EQ(slurp(a), first) << "the older file must not change";
  EXPECT_EQ(event_files(dir).size(), 2u);
  fs::remove_all(dir);
}

TEST(EventWriter, UncreatableDirectoryIsOneLineNamingIt) {
  const fs::path dir = fresh_dir("blocked");
  fs::create_directories(dir);
  { std::ofstream(dir / "file") << "x"; }
  try {
    EventWriter w(dir / "file" / "tb");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find((dir / "file" / "tb").string()), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}

TEST(EventWriter, MetricsLinesBecomeTaggedScalars) {
  EXPECT_EQ(metrics_tag("loss"), "train/loss");
  EXPECT_EQ(metrics_tag("lr"), "train/lr");
  EXPECT_EQ(metrics_tag("grad_norm"), "train/grad_norm");
  EXPECT_EQ(metrics_tag("tokens_per_s"), "train/tokens_per_s");
  EXPECT_EQ(metrics_tag("val_loss"), "val/loss");
  EXPECT_EQ(metrics_tag("mfu"), "perf/mfu");
  const fs::path dir = fresh_dir("metrics");
  fs::path path;
  {
    EventWriter w(dir, 3);
    path = w.path();
    write_metrics_events(w, nlohmann::json::parse(R"({"step": 3, "loss": 4.5, "lr": 0.001, "note": "x", "val_loss": 4.75})"), 2e9);
  }
  const std::vector<std::string> frames = read_frames(slurp(path));
  ASSERT_EQ(frames.size(), 5u);  // version, start, and three numeric fields (step and "note" are not scalars)
  std::map<std::string, float> got;
  for (size_t k = 2; k < frames.size(); k++) {
    const auto ev = decode(frames[k]);
    EXPECT_EQ(ev.find(2)->second.num, 3u);
    const auto v = decode(decode(ev.find(5)->second.bytes).find(1)->second.bytes);
    got[v.find(1)->second.bytes] = as_float(v.find(2)->second.num);
  }
  EXPECT_EQ(got, (std::map<std::string, float>{{"train/loss", 4.5f}, {"train/lr", 0.001f}, {"val/loss", 4.75f}}));
  fs::remove_all(dir);
}
