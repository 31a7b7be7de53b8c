// Run-directory lock and multi-rank refusal (contract in core/run_lock.h).
#include "core/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace ssiat {
namespace {

constexpr const char* kLockFile = ".lock";

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// Writes all of `s` at offset 0 of fd after truncating it; false on any error.
bool rewrite_fd(int fd, const std::string& s) {
  if (::ftruncate(fd, 0) != 0) return false;
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::pwrite(fd, s.data() + done, s.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return ::fsync(fd) == 0;
}

// A positive integer value of `name`, or 0 if unset or not a number.
int64_t env_int(const EnvLookup& getenv, const char* name) {
  const char* v = getenv ? getenv(name) : std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < 0) return 0;
  return n;
}

}  // namespace

RunLock::RunLock(const fs::path& run_dir) : path_(run_dir / kLockFile) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec || !fs::is_directory(run_dir))
    throw IoError(run_dir.string() + ": cannot create the run directory" + (ec ? ": " + ec.message() : ""));
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) throw IoError(path_.string() + ": cannot open the lock file: " + std::strerror(errno));
  int rc;
  do rc = ::flock(fd_, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK)
      throw IoError(path_.string() + ": cannot lock the run directory: " + std::strerror(err));
    const std::optional<LockHolder> h = read_lock_holder(path_);
    const std::string who = h ? "pid " + std::to_string(h->pid) + " on host " + h->host
                              : std::string("another process (pid not yet recorded)");
    throw RunDirInUse(run_dir.string() + ": run directory is in use by " + who + " (lock " + path_.string() + ")");
  }
  const std::string line =
      nlohmann::json{{"pid", static_cast<int64_t>(::getpid())}, {"host", host_name()}}.dump() + "\n";
  if (!rewrite_fd(fd_, line)) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw IoError(path_.string() + ": cannot write the lock file: " + std::strerror(err));
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

RunLock::RunLock(RunLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}

RunLock& RunLock::operator=(RunLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    path_ = std::move(o.path_);
  }
  return *this;
}

std::optional<LockHolder> read_lock_holder(const fs::path& lock_file) {
  const int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string s(4096, '\0');
  ssize_t n;
  do n = ::pread(fd, s.data(), s.size(), 0);
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  s.resize(static_cast<size_t>(n));
  const nlohmann::json j = nlohmann::json::parse(s, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer() ||
      !j.contains("host") || !j["host"].is_string())
    return std::nullopt;
  return LockHolder{j["pid"].get<int64_t>(), j["host"].get<std::string>()};
}

std::string multi_rank_launch(const EnvLookup& getenv) {
  // Sizes first (they say how many), then ranks > 0 (a rank other than 0 implies several).
  for (const char* size_var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})
    if (const int64_t n = env_int(getenv, size_var); n > 1)
      return std::to_string(n) + " ranks (" + size_var + "=" + std::to_string(n) + ")";
  const char* procid = getenv ? getenv("SLURM_PROCID") : std::getenv("SLURM_PROCID");
  if (procid) {
    if (const int64_t n = env_int(getenv, "SLURM_STEP_NUM_TASKS"); n > 1)
      return std::to_string(n) + " ranks (SLURM_STEP_NUM_TASKS=" + std::to_string(n) + ")";
  }
  for (const char* rank_var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"})
    if (const int64_t r = env_int(getenv, rank_var); r > 0)
      return "rank " + std::to_string(r) + " of several (" + rank_var + "=" + std::to_string(r) + ")";
  return "";
}

int64_t launcher_rank(const EnvLookup& getenv) {
  if (multi_rank_launch(getenv).empty()) return -1;
  for (const char* rank_var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    const char* v = getenv ? getenv(rank_var) : std::getenv(rank_var);
    if (v && *v) return env_int(getenv, rank_var);
  }
  return -1;
}

void refuse_multi_rank_launch(const std::string& what, const EnvLookup& getenv) {
  const std::string how = multi_rank_launch(getenv);
  if (!how.empty())
    throw ConfigError(what + ": launched as " + how + ", but it runs as one process; launch it without mpirun/srun");
}

}  // namespace ssiat
