// TensorBoard event files written by ssiat itself (no TensorFlow, no protobuf library), so that
// `tensorboard --logdir runs/` shows every run live.
//
// File: `<dir>/events.out.tfevents.<unix seconds>.<hostname>.ssiat` (".1", ".2", ... appended if
// that name exists), a sequence of TFRecord frames (TensorFlow's tensorflow/core/lib/io/record_writer
// format):
//   u64 little-endian  length of data
//   u32 little-endian  masked CRC32C of those 8 bytes
//   data               one serialized Event protobuf
//   u32 little-endian  masked CRC32C of data
// where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32) and CRC32C is the
// Castagnoli CRC (polynomial 0x1EDC6F41, reflected 0x82F63B78; RFC 3720 appendix B.4).
//
// Event (tensorboard/compat/proto/event.proto, mirroring TensorFlow's): wall_time double = 1,
// step int64 = 2, file_version string = 3, summary Summary = 5, session_log SessionLog = 7.
// Summary (summary.proto): repeated Value value = 1; Value: tag string = 1, simple_value float = 2.
// SessionLog: status enum = 1 (START = 1). Encoded by hand in the protobuf wire format (fixed64
// for the double, varint for step/status, length-delimited for strings and messages, fixed32 for
// the float).
//
// Every file begins with Event{wall_time, file_version: "brain.Event:2"} and then
// Event{step: first_step, session_log: {status: START}}. Resume: a resumed run opens a NEW file
// (never appends to an older one) with first_step = resumed step + 1. TensorBoard reads the files
// of a directory in name order (the unix-seconds part keeps them in time order), and on a
// SessionLog START at step s its loader drops every value it already holds at a step >= s (what
// TensorFlow's Supervisor wrote after a restart): steps an older segment logged after its last
// checkpoint, which metrics.jsonl drops too (core/trainer.h), vanish from the view rather than
// appear twice. Older files are never rewritten.
//
// Each scalar is flushed to the OS at once (write(2); no fsync) so a live viewer sees every step.
// Any write failure is IoError "FILE: write failed: <strerror>".
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ssiat {

// CRC32C (Castagnoli) of data, continuing from `crc` (0 to start): crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// The TFRecord mask of a CRC (above).
uint32_t mask_crc32c(uint32_t crc);
// One TFRecord frame holding `data`.
std::string tfrecord_frame(std::string_view data);

class EventWriter {
 public:
  // Creates `dir` if needed and a new event file in it; writes the file_version event and the
  // SessionLog START event at `first_step`. IoError naming the directory or file on failure.
  explicit EventWriter(const std::filesystem::path& dir, int64_t first_step = 0);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // One Event{wall_time, step, summary{value{tag, simple_value}}} (the value rounded to float).
  void scalar(std::string_view tag, int64_t step, double value, double wall_time);
  // Everything written so far is in the file (each write goes to the OS at once: a no-op kept
  // for callers that want to say so).
  void flush();
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  std::filesystem::path path_;
  int fd_ = -1;
};

// Seconds since the Unix epoch, as an Event's wall_time.
double unix_wall_time();

// The TensorBoard tag of a metrics.jsonl key: loss, lr, grad_norm, tokens_per_s -> train/<key>;
// val_loss -> val/loss; any other key -> perf/<key>.
std::string metrics_tag(std::string_view key);
// One scalar per numeric field of a metrics.jsonl line except "step" (its step), under
// metrics_tag(key), at wall time `wall_time`. Non-numeric fields are skipped.
void write_metrics_events(EventWriter& writer, const nlohmann::json& line, double wall_time);

}  // namespace ssiat
