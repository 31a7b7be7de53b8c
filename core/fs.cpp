// Checked reads and atomic publication (core/fs.h).
#include "core/fs.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"

namespace fs = std::filesystem;

namespace ssiat {
namespace {

constexpr size_t kChunk = size_t{1} << 20;
constexpr int kFifoWriterWaitMs = 2000;  // how long a FIFO may wait for its first writer

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

const char* type_name(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

std::string errno_text(int err) { return std::strerror(err); }

// read(2) until EOF; every error names the byte offset it happened at.
uint64_t read_loop(int fd, const std::string& name, const std::function<void(const char*, size_t)>& sink) {
  std::vector<char> buf(kChunk);
  uint64_t off = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {  // a non-blocking stdin: wait for data
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      throw ReadError(name + ": read error at byte " + std::to_string(off) + ": " + errno_text(errno));
    }
    if (n == 0) return off;
    sink(buf.data(), static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
  }
}

// A FIFO opened with O_NONBLOCK, read until EOF. A non-blocking read returns 0 while no writer
// is connected and EAGAIN while one is connected but has not written yet; so a FIFO waits up to
// kFifoWriterWaitMs for a writer to appear and then as long as the writer keeps it open.
uint64_t read_fifo(int fd, const std::string& name, const std::function<void(const char*, size_t)>& sink) {
  std::vector<char> buf(kChunk);
  uint64_t off = 0;
  bool writer_seen = false;
  int waited_ms = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      sink(buf.data(), static_cast<size_t>(n));
      off += static_cast<uint64_t>(n);
      writer_seen = true;
      continue;
    }
    if (n == 0) {
      if (writer_seen) return off;
      if (waited_ms >= kFifoWriterWaitMs)
        throw IoError(name + ": FIFO with no writer: nothing was written to it within " +
                      std::to_string(kFifoWriterWaitMs / 1000) + " s");
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 50);  // wakes early when a writer writes
      waited_ms += 50;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {  // a writer is connected: wait for its data
      writer_seen = true;
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    throw ReadError(name + ": read error at byte " + std::to_string(off) + ": " + errno_text(errno));
  }
}

}  // namespace

bool is_stream_input(const fs::path& path) {
  if (path == "-") return true;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  return !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

uint64_t read_file_chunks(const fs::path& path, InputKind kind, const std::function<void(const char*, size_t)>& sink) {
  const std::string name = path.string();
  if (path == "-") {
    if (kind != InputKind::kStreamOk) throw IoError("-: standard input is not accepted here; give a regular file");
    return read_loop(STDIN_FILENO, "stdin", sink);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw IoError(name + ": cannot open for reading: " + errno_text(errno));
  if (S_ISDIR(st.st_mode)) throw IoError(name + ": is a directory, expected a file");
  if (!S_ISREG(st.st_mode) && kind == InputKind::kRegularFile)
    throw IoError(name + ": is " + type_name(st.st_mode) + ", expected a regular file");
  const bool fifo = S_ISFIFO(st.st_mode);
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (fifo ? O_NONBLOCK : 0)));
  if (fd.get() < 0) throw IoError(name + ": cannot open for reading: " + errno_text(errno));
  if (::fstat(fd.get(), &st) != 0) throw IoError(name + ": cannot stat: " + errno_text(errno));
  if (S_ISDIR(st.st_mode)) throw IoError(name + ": is a directory, expected a file");
  if (!S_ISREG(st.st_mode) && kind == InputKind::kRegularFile)
    throw IoError(name + ": is " + type_name(st.st_mode) + ", expected a regular file");
  if (fifo) return read_fifo(fd.get(), name, sink);
  const uint64_t n = read_loop(fd.get(), name, sink);
  if (S_ISREG(st.st_mode) && n < static_cast<uint64_t>(st.st_size))
    throw ReadError(name + ": short read: ended at byte " + std::to_string(n) + " of " + std::to_string(st.st_size) +
                  " (truncated while being read?)");
  return n;
}

std::string read_whole_file(const fs::path& path, InputKind kind) {
  std::string out;
  std::error_code ec;
  if (kind == InputKind::kRegularFile || !is_stream_input(path)) {
    const auto size = fs::file_size(path, ec);
    if (!ec) out.reserve(static_cast<size_t>(size));
  }
  read_file_chunks(path, kind, [&](const char* p, size_t n) { out.append(p, n); });
  return out;
}

std::string read_fd_until_eof(int fd, const std::string& name) {
  std::string out;
  read_loop(fd, name, [&](const char* p, size_t n) { out.append(p, n); });
  return out;
}

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path.string() + ": cannot open to fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(path.string() + ": fsync failed: " + std::strerror(err));
}

FileWriter::FileWriter(fs::path path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(path_.string() + ": cannot create: " + std::strerror(errno));
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
}

void FileWriter::fail(const char* what, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(path_.c_str());
  throw IoError(path_.string() + ": " + what + ": " + errno_message(err));
}

void FileWriter::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  for (size_t done = 0; done < n;) {
    const ssize_t k = ::write(fd_, p + done, n - done);
    if (k < 0) {
      if (errno == EINTR) continue;
      fail(("write failed at byte " + std::to_string(done_ + done)).c_str(), errno);
    }
    done += static_cast<size_t>(k);
  }
  done_ += n;
}

void FileWriter::finish() {
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    const int err = errno;
    ::unlink(path_.c_str());
    throw IoError(path_.string() + ": close failed: " + errno_message(err));
  }
}

fs::path temporary_beside(const fs::path& final_path) {
  const fs::path dir = final_path.has_parent_path() ? final_path.parent_path() : fs::path(".");
  std::string name = ".";  // built with += : GCC 12 gives a false -Wrestrict on "." + string&&
  name += final_path.filename().string();
  name += ".tmp-";
  name += std::to_string(::getpid());
  return dir / name;
}

void write_file_atomic(const fs::path& path, std::string_view content) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string tmp_name = ".";
  tmp_name += path.filename().string();
  tmp_name += ".tmp";
  const fs::path tmp = dir / tmp_name;
  FileWriter f(tmp);
  f.write(content);
  f.finish();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw IoError(path.string() + ": rename failed: " + std::strerror(err));
  }
  fsync_path(dir);
}

void publish_dir_atomic(const fs::path& tmp_dir, const fs::path& final_dir) {
  for (const auto& e : fs::directory_iterator(tmp_dir))
    if (e.is_regular_file()) fsync_path(e.path());
  fsync_path(tmp_dir);
  if (fs::exists(final_dir)) throw IoError(final_dir.string() + ": already exists; refusing to overwrite");
  if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0)
    throw IoError(final_dir.string() + ": rename failed: " + std::strerror(errno));
  fsync_path(final_dir.has_parent_path() ? final_dir.parent_path() : fs::path("."));
}

int remove_stale_temporaries(const fs::path& parent, const std::string& name) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(parent.empty() ? fs::path(".") : parent, ec)) {
    const std::string f = e.path().filename().string();
    for (const char* kind : {".tmp-", ".old-"}) {
      const std::string prefix = "." + name + kind;
      if (f.size() <= prefix.size() || f.compare(0, prefix.size(), prefix) != 0) continue;
      const std::string digits = f.substr(prefix.size());
      if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const auto pid = static_cast<pid_t>(std::stol(digits));
      if (pid <= 0 || pid == ::getpid()) continue;
      if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
      stale.push_back(e.path());
    }
  }
  int removed = 0;
  for (const auto& p : stale) {
    std::error_code rm;
    fs::remove_all(p, rm);
    removed += !rm;
  }
  return removed;
}

}  // namespace ssiat
