// Filesystem freeze: FIFREEZE / FITHAW (and FITRIM) on a mount point, off the main thread.
//
// Why not Schedule() (the libuv thread pool) like every other binding: the pool has 4 threads
// (UV_THREADPOOL_SIZE), shared with every fs call in the process. While a filesystem is frozen,
// any write or fsync to it blocks in the kernel until the thaw: a file-write from a command in
// flight when the freeze began, a flush, an fs call of an embedding application. Four of those
// fill the pool, and a thaw queued behind them never runs: the guest stays frozen for good.
// So freeze and thaw never touch the pool: each call runs on a thread of its own, started for
// that call, and hands its result back to the event loop (ScheduleOnThread, schedule.h).
//
// A thread per call rather than one long-lived freezer thread with a queue: a FIFREEZE can
// itself block for a long time (it syncs the filesystem first; a filesystem on a loop device
// whose image lives on an already frozen filesystem never finishes syncing), and a thaw queued
// behind it on a single thread would wait just as long. With a thread per call a thaw always
// starts at once. Freezes are rare (one per snapshot, a few mount points each), so the cost
// of a thread start is nothing next to the sync FIFREEZE does.
//
// FITRIM (fstrim) lives here too: it walks a filesystem's free space and may take minutes on a
// large disk, and a filesystem may be frozen under it, so it gets a thread of its own as well.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>

#include "errors.h"
#include "module.h"
#include "schedule.h"

namespace ember {
namespace {

enum class Op { kFreeze, kThaw };

// The kernel-facing part: plain values in, SysError out.
SysError FreezeOp(Op op, const std::string& mountpoint) {
  // O_RDONLY: opening for reading never waits on a frozen filesystem, so a thaw can always open.
  int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SysError::Of(errno, "open", mountpoint);
  int rc;
  do {
    rc = ioctl(fd, op == Op::kFreeze ? FIFREEZE : FITHAW, 0);
  } while (rc < 0 && errno == EINTR);
  int err = rc < 0 ? errno : 0;
  close(fd);
  if (err) return SysError::Of(err, op == Op::kFreeze ? "freeze" : "thaw", mountpoint);
  return SysError::Ok();
}

Napi::Value Start(const Napi::CallbackInfo& info, Op op) {
  std::string mountpoint = PathArg(info, 0, "mountpoint");
  return ScheduleOnThread(
      info.Env(), op == Op::kFreeze ? "ember:freeze" : "ember:thaw",
      [op, mountpoint] { return FreezeOp(op, mountpoint); },
      [op, mountpoint](Napi::Env env) {
        Napi::Object out = Napi::Object::New(env);
        out.Set("mountpoint", Napi::String::New(env, mountpoint));
        out.Set("frozen", Napi::Boolean::New(env, op == Op::kFreeze));
        return out;
      },
      mountpoint);
}

Napi::Value Freeze(const Napi::CallbackInfo& info) { return Start(info, Op::kFreeze); }
Napi::Value Thaw(const Napi::CallbackInfo& info) { return Start(info, Op::kThaw); }

// FITRIM over the whole filesystem; the kernel writes back what it trimmed (len) and the minimum
// extent it used (minlen, raised to the device's discard granularity).
SysError TrimOp(const std::string& mountpoint, fstrim_range* range) {
  // No O_DIRECTORY: qemu-ga opens the mount point as it is, and its errors follow from that.
  int fd = open(mountpoint.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError::Of(errno, "open", mountpoint);
  int rc;
  do {
    rc = ioctl(fd, FITRIM, range);
  } while (rc < 0 && errno == EINTR);
  int err = rc < 0 ? errno : 0;
  close(fd);
  if (err) return SysError::Of(err, "fitrim", mountpoint);
  return SysError::Ok();
}

// fstrim(mountpoint, minimum) -> {mountpoint, trimmed, minimum}: `minimum` is an int64 taken
// as the u64 the ioctl wants (a negative one wraps, as in qemu-ga).
Napi::Value Fstrim(const Napi::CallbackInfo& info) {
  std::string mountpoint = PathArg(info, 0, "mountpoint");
  auto range = std::make_shared<fstrim_range>();
  range->start = 0;
  range->len = UINT64_MAX;
  range->minlen = static_cast<uint64_t>(IntArg(info, 1, "minimum"));
  return ScheduleOnThread(
      info.Env(), "ember:fstrim", [mountpoint, range] { return TrimOp(mountpoint, range.get()); },
      [mountpoint, range](Napi::Env env) {
        Napi::Object out = Napi::Object::New(env);
        out.Set("mountpoint", Napi::String::New(env, mountpoint));
        out.Set("trimmed", Napi::Number::New(env, static_cast<double>(range->len)));
        out.Set("minimum", Napi::Number::New(env, static_cast<double>(range->minlen)));
        return out;
      },
      mountpoint);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("freeze", Napi::Function::New(env, Freeze, "freeze"));
  exports.Set("thaw", Napi::Function::New(env, Thaw, "thaw"));
  exports.Set("fstrim", Napi::Function::New(env, Fstrim, "fstrim"));
}

Module module("freeze", Init);

}  // namespace
}  // namespace ember
