// Preemption-safe training (issue 7, item 6): SIGTERM, SIGINT and SIGUSR1 (what SLURM sends
// before a kill) ask the trainer to stop at the next step boundary.
//
// While a StopSignals object lives, the first of these signals only records its number; the
// training loop polls received() after each step, writes a checkpoint and returns, and tools/
// exits with status 128 + signo (143 SIGTERM, 130 SIGINT, 138 SIGUSR1). A second one of them
// while the first is pending restores the default disposition and re-raises itself, so the
// process dies of that signal at once (a checkpoint being written is never published torn:
// core/checkpoint.h). Handlers use SA_RESTART, so a signal never turns a read or write in flight
// into an EINTR failure; the handler may run on any thread (OpenMP workers included) and touches
// only a lock-free atomic. A signal ignored when the object is made (SIG_IGN: a shell starts
// background jobs with SIGINT ignored) stays ignored. Destruction restores the previous
// dispositions. At most one StopSignals may live at a time in a process (the flag is
// process-wide, as signals are).
#pragma once

namespace ssiat {

class StopSignals {
 public:
  StopSignals();   // installs the handlers and clears the flag; Error if another one lives
  ~StopSignals();  // restores the previous dispositions
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  int received() const;  // 0, or the number of the first stop signal received
};

// "SIGTERM", "SIGINT", "SIGUSR1", ... ("signal" for others).
const char* signal_name(int signo);

}  // namespace ssiat
