// Shared pieces of the addon: module registration, system errors, and the one generic
// "run this off the main thread, then resolve or reject with errno" helper every binding uses.
#pragma once

#include <fcntl.h>
#include <napi.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <uv.h>

#include <cstdint>

#include <functional>
#include <memory>
#include <string>

namespace ember {

// Each native/*.cc file registers its exports with a static Module object; addon.cc calls
// every registered initializer when the addon loads. Adding a file means adding it to
// binding.gyp and nothing else.
using InitFn = void (*)(Napi::Env env, Napi::Object exports);
struct Module {
  Module(const char* name, InitFn init);
};
void InitAll(Napi::Env env, Napi::Object exports);

// A failed system call: errno plus the call and the path it was about (either may be empty).
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

// A JavaScript Error with `errno` (positive), `syscall` and `path`; lib/errors.ts turns it into a
// SystemError with the errno name as `code`, the way Node's fs errors look.
Napi::Error MakeSysError(Napi::Env env, const SysError& e);

// Work runs on the libuv thread pool and returns SysError::Ok() or the failure. Done runs on the
// main thread after success and builds the value the promise resolves with. State the two share
// lives in whatever the lambdas capture (typically a shared_ptr).
using Work = std::function<SysError()>;
using Done = std::function<Napi::Value(Napi::Env)>;
Napi::Promise Schedule(Napi::Env env, const char* name, Work work, Done done);

// Schedule() on a thread of its own, started for this call, instead of the libuv pool: for work
// that may take minutes or block on the kernel for as long (FIFREEZE, FITHAW, the md5 of a whole
// disk). The pool has 4 threads shared with every fs call in the process; a few such calls
// would hold all of them. Callers bound how many run at once. `path` names what the work is
// about in the error when no thread can be started.
Napi::Promise ScheduleOnThread(Napi::Env env, const char* name, Work work, Done done, const std::string& path = "");

// Closes a libuv handle the addon allocated with `new` and deletes it once libuv is done with
// it; `data` is cleared first, so a callback already queued sees nullptr and does nothing.
template <typename H>
void CloseHandle(H* h) {
  if (h == nullptr) return;
  h->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
}

// stat(2) of a path or of an open fd: what the addon looks at. Through statx(2) where the C
// library has it: glibc 2.33 made stat() and fstat() symbols of their own (stat64@GLIBC_2.33),
// so calling them would raise the glibc a prebuild needs from 2.28, what Node itself needs, to
// 2.33; statx() is in glibc 2.28 (emulated on kernels older than 4.11). A source build against a
// C library without statx (musl before 1.2.5) uses stat() and fstat().
struct FileStat {
  uint32_t mode = 0;
  uint64_t size = 0;
  uint64_t ino = 0;
  uint32_t rdev_major = 0, rdev_minor = 0;
};
#ifdef STATX_BASIC_STATS
inline void FromStatx(const struct statx& x, FileStat* st) {
  *st = FileStat{x.stx_mode, x.stx_size, x.stx_ino, x.stx_rdev_major, x.stx_rdev_minor};
}
inline int StatPath(const std::string& path, FileStat* st) {
  struct statx x;
  if (statx(AT_FDCWD, path.c_str(), AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &x) != 0) return -1;
  FromStatx(x, st);
  return 0;
}
inline int StatFd(int fd, FileStat* st) {
  struct statx x;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &x) != 0) return -1;
  FromStatx(x, st);
  return 0;
}
#else
inline void FromStat(const struct stat& x, FileStat* st) {
  *st = FileStat{static_cast<uint32_t>(x.st_mode), static_cast<uint64_t>(x.st_size), static_cast<uint64_t>(x.st_ino),
                 static_cast<uint32_t>(major(x.st_rdev)), static_cast<uint32_t>(minor(x.st_rdev))};
}
inline int StatPath(const std::string& path, FileStat* st) {
  struct stat x;
  if (stat(path.c_str(), &x) != 0) return -1;
  FromStat(x, st);
  return 0;
}
inline int StatFd(int fd, FileStat* st) {
  struct stat x;
  if (fstat(fd, &x) != 0) return -1;
  FromStat(x, st);
  return 0;
}
#endif

// Calls a JavaScript callback from a libuv callback on the main thread (no JS frame below): an
// exception it throws becomes the process's uncaught exception, as for any event callback.
inline void CallFromLoop(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& context) {
  Napi::HandleScope scope(env);
  try {
    fn.MakeCallback(env.Global(), std::initializer_list<napi_value>{}, context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

// Helpers for argument conversion that throw a JavaScript TypeError naming the argument.
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace ember
