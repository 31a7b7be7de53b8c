// Stop signals for preemption-safe training (contract in core/signals.h).
#include "core/signals.h"

#include <signal.h>

#include <array>
#include <atomic>
#include <cstring>

#include "kernels/check.h"

namespace ssiat {
namespace {

constexpr std::array<int, 3> kStopSignals = {SIGTERM, SIGINT, SIGUSR1};

// Process-wide because dispositions are: lock-free atomics are async-signal-safe
// ([support.signal]) and, unlike a volatile sig_atomic_t, also safe to read from another thread.
std::atomic<int> g_received{0};
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<bool> g_installed{false};
std::array<struct sigaction, kStopSignals.size()> g_previous{};

extern "C" void on_stop_signal(int signo) {
  int expected = 0;
  if (g_received.compare_exchange_strong(expected, signo)) return;
  // A second stop signal: die of it now. It stays blocked until this handler returns, then the
  // default action (terminate) applies. signal() and raise() are async-signal-safe.
  ::signal(signo, SIG_DFL);
  ::raise(signo);
}

}  // namespace

StopSignals::StopSignals() {
  SSIAT_CHECK(!g_installed.exchange(true)) << "StopSignals: another instance is active in this process";
  g_received = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int s : kStopSignals) sigaddset(&sa.sa_mask, s);  // one handler at a time
  for (size_t i = 0; i < kStopSignals.size(); i++) {
    ::sigaction(kStopSignals[i], nullptr, &g_previous[i]);
    // An ignored signal stays ignored (a shell starts background jobs with SIGINT ignored).
    if (g_previous[i].sa_handler != SIG_IGN) ::sigaction(kStopSignals[i], &sa, nullptr);
  }
}

StopSignals::~StopSignals() {
  for (size_t i = 0; i < kStopSignals.size(); i++)
    if (g_previous[i].sa_handler != SIG_IGN) ::sigaction(kStopSignals[i], &g_previous[i], nullptr);
  g_installed = false;
}

int StopSignals::received() const { return g_received.load(); }

const char* signal_name(int signo) {
  switch (signo) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    case SIGKILL: return "SIGKILL";
    case SIGSTOP: return "SIGSTOP";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
  }
}

}  // namespace ssiat
