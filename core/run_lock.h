// One writer per run directory (issue 7, item 4).
//
// RunLock holds an exclusive flock(2) on <run>/.lock for its lifetime; the lock file then holds
// one JSON line {"pid":N,"host":"H"} naming the holder (written after the lock is taken, fsynced).
// The kernel releases the lock when the holder exits for any reason (kill -9 included), so a
// .lock file left behind never blocks: only a live holder does. The file itself is never deleted
// (deleting it would let a second process lock a new inode while the first still holds the old).
// The descriptor is close-on-exec, so no child process inherits the lock.
//
// multi_rank_launch(): a launch by mpirun/srun/mpiexec as several ranks, recognised from the
// variables launchers set before MPI_Init: the trainer then joins MPI (core/ranks.h) and only
// global rank 0 writes the run directory; refuse_multi_rank_launch() is for commands that run as
// one process (e.g. `ssiat bench train-step`), so several processes never repeat one job.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "core/error.h"

namespace ssiat {

// The run directory is locked by another live process; what() names its pid and host.
class RunDirInUse : public IoError {
 public:
  using IoError::IoError;
};

struct LockHolder {
  int64_t pid = 0;
  std::string host;
};

class RunLock {
 public:
  // Creates run_dir if needed and takes the lock without waiting. Throws RunDirInUse
  // ("RUN: run directory is in use by pid P on host H (lock RUN/.lock)") if another process holds
  // it, IoError if the directory or the lock file cannot be created or written.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();  // releases the lock (the file stays)
  RunLock(RunLock&& o) noexcept;
  RunLock& operator=(RunLock&& o) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  const std::filesystem::path& path() const { return path_; }  // <run>/.lock

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

// The holder recorded in a lock file; nullopt if absent, empty or not yet written.
std::optional<LockHolder> read_lock_holder(const std::filesystem::path& lock_file);

// How this process was launched, from launcher variables: "" for one process, else e.g.
// "2 ranks (OMPI_COMM_WORLD_SIZE=2)". Looks at OMPI_COMM_WORLD_SIZE/RANK (Open MPI),
// PMI_SIZE/PMI_RANK (MPICH, Intel MPI), MV2_COMM_WORLD_SIZE/RANK (MVAPICH2), PMIX_RANK (PMIx),
// and SLURM_STEP_NUM_TASKS/SLURM_PROCID (srun; SLURM_NTASKS alone is set in a batch script
// that runs one process, so it is not a sign of several ranks). `getenv` is for tests.
using EnvLookup = std::function<const char*(const char*)>;
std::string multi_rank_launch(const EnvLookup& getenv = {});

// This process's rank from the launcher's variables (the same ones, before MPI_Init), -1 when
// not launched as several ranks or when no rank variable is set.
int64_t launcher_rank(const EnvLookup& getenv = {});

// Throws ConfigError "<what>: launched as 2 ranks (...), but it runs as one process; launch it
// without mpirun/srun" when multi_rank_launch() is not empty.
void refuse_multi_rank_launch(const std::string& what, const EnvLookup& getenv = {});

}  // namespace ssiat
