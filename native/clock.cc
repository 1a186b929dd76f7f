// settimeofday(2) for qemu-ga's guest-set-time (lib/system/clock.ts): Node has no way to set
// the system clock. Synchronous: it is one system call that does not block.
#include <sys/time.h>

#include <cerrno>

#include "errors.h"
#include "module.h"

namespace ember {
namespace {

// --- kernel-facing part: plain values in, SysError out -----------------------------------------

SysError SetTimeOfDay(int64_t seconds, int64_t microseconds) {
  struct timeval tv;
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>(microseconds);
  if (settimeofday(&tv, nullptr) != 0) return SysError::Of(errno, "settimeofday");
  return SysError::Ok();
}

// --- N-API glue ---------------------------------------------------------------------------------

// setTimeOfDay(seconds, microseconds): undefined; throws the errno (EPERM without CAP_SYS_TIME,
// EINVAL for microseconds outside 0..999999).
Napi::Value SetTimeOfDayJs(const Napi::CallbackInfo& info) {
  int64_t seconds = IntArg(info, 0, "seconds");
  int64_t microseconds = IntArg(info, 1, "microseconds");
  SysError e = SetTimeOfDay(seconds, microseconds);
  if (e) throw MakeSysError(info.Env(), e);
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setTimeOfDay", Napi::Function::New(env, SetTimeOfDayJs, "setTimeOfDay"));
}

Module module("clock", Init);

}  // namespace
}  // namespace ember
