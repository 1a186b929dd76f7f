// A failed system call as the kernel-facing code reports it: plain C++, no N-API types (the
// glue turns it into a JavaScript error with MakeSysError, errors.h).
#pragma once

#include <string>
#include <utility>

namespace ember {

// errno plus the call and the path it was about (either may be empty).
struct SysError {
  int err = 0;
  std::string syscall;
  std::string path;
  static SysError Ok() { return SysError{}; }
  static SysError Of(int err, std::string syscall, std::string path = "") {
    return SysError{err, std::move(syscall), std::move(path)};
  }
  explicit operator bool() const { return err != 0; }
};

}  // namespace ember
