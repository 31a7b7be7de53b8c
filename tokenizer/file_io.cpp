// Checked reads and set publication for tokenizer files (tokenizer/file_io.h).
#include "tokenizer/file_io.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tokenizer/vocab.h"

namespace fs = std::filesystem;

namespace ssiat::tokenizer {
namespace {

std::string err_text(int e) { return std::strerror(e); }

void fsync_or_throw(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw TokenizerError(p.string() + ": cannot open to fsync: " + err_text(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) throw TokenizerError(p.string() + ": fsync failed: " + err_text(e));
}

// Creates path (which must not exist), writes bytes with checked writes, fsyncs and closes it.
void write_new_file(const fs::path& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw TokenizerError(path.string() + ": cannot create: " + err_text(errno));
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      ::close(fd);
      throw TokenizerError(path.string() + ": write failed at byte " + std::to_string(off) + ": " + err_text(e));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    throw TokenizerError(path.string() + ": fsync failed: " + err_text(e));
  }
  if (::close(fd) != 0) throw TokenizerError(path.string() + ": close failed: " + err_text(errno));
}

fs::path strip_trailing_separator(fs::path p) {
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

}  // namespace

std::string read_file_checked(const fs::path& path) {
  const std::string name = path.string();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw TokenizerError(name + ": cannot open for reading: " + err_text(errno));
  if (S_ISDIR(st.st_mode)) throw TokenizerError(name + ": is a directory, expected a file");
  if (!S_ISREG(st.st_mode))
    throw TokenizerError(name + (S_ISFIFO(st.st_mode) ? ": is a FIFO" : ": is not a regular file") + ", expected a regular file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // never waits (a FIFO swapped in)
  if (fd < 0) throw TokenizerError(name + ": cannot open for reading: " + err_text(errno));
  std::string out;
  try {
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) throw TokenizerError(name + ": is not a regular file");
    out.resize(static_cast<size_t>(st.st_size));
    size_t off = 0;
    for (;;) {
      if (off == out.size()) out.resize(out.size() + (size_t{1} << 16));  // the file grew: read on to EOF
      const ssize_t n = ::read(fd, out.data() + off, out.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw TokenizerError(name + ": read error at byte " + std::to_string(off) + ": " + err_text(errno));
      if (n == 0) break;
      off += static_cast<size_t>(n);
    }
    if (off < static_cast<size_t>(st.st_size))
      throw TokenizerError(name + ": short read: ended at byte " + std::to_string(off) + " of " + std::to_string(st.st_size));
    out.resize(off);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return out;
}

void check_publish_target(const fs::path& dir_in, Overwrite mode, const std::vector<std::string>& own_names) {
  const fs::path dir = strip_trailing_separator(dir_in);
  std::error_code ec;
  const auto st = fs::symlink_status(dir, ec);
  if (ec || st.type() == fs::file_type::not_found) return;
  if (st.type() != fs::file_type::directory) throw TokenizerError(dir.string() + ": exists and is not a directory");
  for (const auto& e : fs::directory_iterator(dir)) {
    if (mode == Overwrite::kRefuse)
      throw TokenizerError(dir.string() + ": exists and is not empty; refusing to overwrite it");
    const std::string n = e.path().filename().string();
    if (!e.is_regular_file() || std::find(own_names.begin(), own_names.end(), n) == own_names.end())
      throw TokenizerError(dir.string() + ": holds '" + n + "', which is not a tokenizer file; refusing to replace the directory");
  }
}

void publish_file_set(const fs::path& dir_in, const std::vector<std::pair<std::string, std::string>>& files, Overwrite mode,
                      const std::vector<std::string>& own_names) {
  const fs::path dir = strip_trailing_separator(dir_in);
  check_publish_target(dir, mode, own_names);
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  const std::string name = dir.filename().string();
  const std::string pid = std::to_string(::getpid());
  const fs::path tmp = parent / ("." + name + ".tmp-" + pid);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(parent, ec);
  if (!fs::create_directory(tmp, ec) || ec)
    throw TokenizerError(tmp.string() + ": cannot create temporary directory: " + ec.message());
  try {
    for (const auto& [fname, bytes] : files) write_new_file(tmp / fname, bytes);
    fsync_or_throw(tmp);
    const bool exists = fs::is_directory(dir, ec);
    if (exists && fs::is_empty(dir, ec)) {
      if (::rmdir(dir.c_str()) != 0) throw TokenizerError(dir.string() + ": cannot remove empty directory: " + err_text(errno));
    } else if (exists) {
      // Swap old and new in one step; tmp then names the old set.
      if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) != 0) {
        if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
          throw TokenizerError(dir.string() + ": cannot swap in the new tokenizer: " + err_text(errno));
        const fs::path old = parent / ("." + name + ".old-" + pid);
        fs::remove_all(old, ec);
        if (::rename(dir.c_str(), old.c_str()) != 0)
          throw TokenizerError(dir.string() + ": cannot move the old tokenizer aside: " + err_text(errno));
        if (::rename(tmp.c_str(), dir.c_str()) != 0) {
          const int e = errno;
          ::rename(old.c_str(), dir.c_str());  // put the old set back
          throw TokenizerError(dir.string() + ": rename failed: " + err_text(e));
        }
        fs::remove_all(old, ec);
      }
      fsync_or_throw(parent);
      fs::remove_all(tmp, ec);  // the old set
      return;
    }
    if (::rename(tmp.c_str(), dir.c_str()) != 0) throw TokenizerError(dir.string() + ": rename failed: " + err_text(errno));
    fsync_or_throw(parent);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace ssiat::tokenizer
