// Test-only fault points (contract and the SSIAT_FAULT syntax in core/fault.h).
#include "core/fault.h"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace ssiat {
namespace {

constexpr const char* kEnv = "SSIAT_FAULT";
constexpr int kThrow = -1;  // action ERROR: throw instead of raising a signal

struct Fault {
  std::string point;
  long long count = 1;
  int signo = SIGKILL;
  std::atomic<long long> reached{0};
};

int action_signal(const std::string& a, const std::string& spec) {
  if (a == "KILL") return SIGKILL;
  if (a == "TERM") return SIGTERM;
  if (a == "INT") return SIGINT;
  if (a == "USR1") return SIGUSR1;
  if (a == "STOP") return SIGSTOP;
  if (a == "ERROR") return kThrow;
  throw ConfigError(std::string(kEnv) + "=" + spec + ": unknown action '" + a + "' (KILL, TERM, INT, USR1, STOP, ERROR)");
}

std::vector<std::unique_ptr<Fault>> parse(const std::string& spec) {
  std::vector<std::unique_ptr<Fault>> out;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = spec.find(',', start);
    const std::string entry = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    if (entry.empty()) continue;
    auto f = std::make_unique<Fault>();
    const size_t c1 = entry.find(':');
    f->point = entry.substr(0, c1);
    if (c1 != std::string::npos) {
      const size_t c2 = entry.find(':', c1 + 1);
      const std::string count = entry.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
      char* end = nullptr;
      f->count = std::strtoll(count.c_str(), &end, 10);
      if (count.empty() || *end != '\0' || f->count < 1)
        throw ConfigError(std::string(kEnv) + "=" + spec + ": count '" + count + "' is not a positive integer");
      if (c2 != std::string::npos) f->signo = action_signal(entry.substr(c2 + 1), spec);
    }
    if (f->point.empty()) throw ConfigError(std::string(kEnv) + "=" + spec + ": empty fault point name");
    out.push_back(std::move(f));
  }
  return out;
}

const std::vector<std::unique_ptr<Fault>>& faults() {
  static const std::vector<std::unique_ptr<Fault>> f = [] {
    const char* v = std::getenv(kEnv);
    return v ? parse(v) : std::vector<std::unique_ptr<Fault>>{};
  }();
  return f;
}

}  // namespace

void fault_point(const char* name) {
  for (const auto& f : faults()) {
    if (f->point != name) continue;
    if (f->reached.fetch_add(1) + 1 != f->count) continue;
    if (f->signo == kThrow) throw Error(std::string("injected fault at ") + name + " (" + kEnv + ")");
    ::raise(f->signo);
  }
}

}  // namespace ssiat
