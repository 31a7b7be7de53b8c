// Checked whole-file reads, and atomic file and directory publication (invariant 6: never a
// half-written file where a good one was expected; invariant 8: never a silently shorter input).
//
// Reads: every read(2) is checked. An I/O error is ReadError (core/error.h, an IoError) "PATH: read
// error at byte N: <strerror>"; a regular file that ends before the size it had when opened is
// ReadError "PATH: short read: ended at byte N of M". Other failures (no such file, a directory,
// not a regular file) are plain IoError. A directory is refused at once ("PATH: is a directory, expected a file"). What is
// not a regular file (a FIFO, a pipe, a character device, stdin) is refused at once under
// InputKind::kRegularFile ("PATH: is a FIFO, expected a regular file") and read as a stream until
// EOF under InputKind::kStreamOk, where "-" names standard input. A FIFO is opened without
// blocking (O_NONBLOCK), so one that nobody writes to never hangs: after waiting 2 s for a writer
// it is refused ("PATH: FIFO with no writer: nothing was written to it within 2 s") instead of
// read as empty; once a writer is connected it is read until the writer closes it.
//
// write_file_atomic: writes `tmp` beside the target, fsyncs it, renames it over the target and
// fsyncs the directory. publish_dir_atomic: fsyncs every file in a fully written temporary
// directory, renames it to its final name (which must not exist) and fsyncs the parent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace ssiat {

enum class InputKind {
  kRegularFile,  // only a regular file (its size is known; it can be read twice)
  kStreamOk,     // also a FIFO, pipe, character device or "-" (stdin), read once until EOF
};

// Feeds the file's bytes to sink in order, in chunks; returns the number of bytes read.
uint64_t read_file_chunks(const std::filesystem::path& path, InputKind kind,
                          const std::function<void(const char*, size_t)>& sink);
// The whole file (errors above).
std::string read_whole_file(const std::filesystem::path& path, InputKind kind = InputKind::kRegularFile);
// Everything readable from an open descriptor until EOF; errors name `name` and the byte offset.
std::string read_fd_until_eof(int fd, const std::string& name);
// True if read_file_chunks would read `path` as a stream (once): "-", or an existing path that is
// neither a regular file nor a directory.
bool is_stream_input(const std::filesystem::path& path);

void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// `parent/.<name>.tmp-<pid>` beside `final_path`: a temporary of this process, in the pattern
// remove_stale_temporaries recognises.
std::filesystem::path temporary_beside(const std::filesystem::path& final_path);

// A file written in pieces (created or truncated, mode 0644): write() retries short writes and
// EINTR; finish() fsyncs and closes it. Destroyed without finish(), it closes and removes the
// file. IoError "PATH: write failed at byte N: ...", "PATH: fsync failed: ...", "PATH: close
// failed: ...".
class FileWriter {
 public:
  explicit FileWriter(std::filesystem::path path);
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void finish();
  const std::filesystem::path& path() const { return path_; }

 private:
  void fail(const char* what, int err);  // closes, removes, throws
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t done_ = 0;
};
void fsync_path(const std::filesystem::path& path);  // file or directory
void publish_dir_atomic(const std::filesystem::path& tmp_dir, const std::filesystem::path& final_dir);

// Removes `parent/.<name>.tmp-<pid>` and `.<name>.old-<pid>` entries (files or directories) left
// by a killed process (data prepare, tokenizer save):
// those whose pid is not alive (kill(pid, 0) fails with ESRCH) and are not this process's.
// Returns how many were removed; best effort (a removal that fails is skipped).
int remove_stale_temporaries(const std::filesystem::path& parent, const std::string& name);

}  // namespace ssiat
