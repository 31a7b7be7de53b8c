// Base error type and the one always-on check macro, shared by every ssiat library.
//
// Contract: `SSIAT_CHECK(cond) << "context " << value;` throws ssiat::Error whose message is
// "<context> (check `cond` failed at file:line)" when cond is false; nothing is evaluated
// after the condition when it holds. Library code throws; only tools/ decides to exit.
// This header is the one "base type" that kernels/, distributed/ and tokenizer/ may share.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ssiat {

// Root of every error ssiat throws. `what()` is one line, fit to print as the CLI's message.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
// Collects context with operator<< and throws Error from its destructor (end of the statement).
class CheckFailure {
 public:
  CheckFailure(const char* cond, const char* file, int line) : cond_(cond), file_(file), line_(line) {}
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  template <typename V>
  CheckFailure& operator<<(const V& v) {
    os_ << v;
    return *this;
  }
  [[noreturn]] ~CheckFailure() noexcept(false) {
    std::string ctx = os_.str();
    std::ostringstream msg;
    msg << (ctx.empty() ? std::string("internal error") : ctx) << " (check `" << cond_ << "` failed at "
        << file_ << ":" << line_ << ")";
    throw Error(msg.str());
  }

 private:
  const char* cond_;
  const char* file_;
  int line_;
  std::ostringstream os_;
};
}  // namespace detail

}  // namespace ssiat

#define SSIAT_CHECK(cond) \
  if (cond) {             \
  } else                  \
    ::ssiat::detail::CheckFailure(#cond, __FILE__, __LINE__)
