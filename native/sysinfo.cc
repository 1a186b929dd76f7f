// sysinfo(2) and uname(2) for the sysinfo command, off the main thread; statvfs(3) and the
// wall clock for qemu-ga's guest-get-fsinfo and guest-get-time; an NVMe disk's SMART log for
// guest-get-disks.
//
// Why native: the reference reports sysinfo(2)'s load averages (fixed point, 1/65536), e.g.
// 0.0185546875, and its whole-second uptime. /proc/loadavg rounds loads to two decimals, so only
// the system call gives the reference's values. uname(2) fills every field, the NIS domain
// included, in the same call. LONG_BIT is exported as a constant: it is what `getconf LONG_BIT`
// prints (the width of a C long in this userspace), no subprocess needed.
#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "module.h"
#include "schedule.h"

namespace ember {
namespace {

// --- kernel-facing part: plain values in, -errno out ------------------------------------------

int ReadSysinfo(struct sysinfo* out) { return sysinfo(out) == 0 ? 0 : -errno; }

int ReadUname(struct utsname* out) { return uname(out) == 0 ? 0 : -errno; }

// The NVMe SMART / health log page (NVMe 1.4, 5.14.1.2) of the controller behind the device
// node: the admin command qemu-ga's guest-get-disks issues (Get Log Page, log 02h, all
// namespaces, retaining the asynchronous event). An NVMe status (positive) is EIO here.
constexpr size_t kSmartLogSize = 512;

SysError ReadNvmeSmart(const std::string& path, unsigned char* log) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError::Of(errno, "open", path);
  struct nvme_admin_cmd cmd {};
  cmd.opcode = 0x02;  // Get Log Page
  cmd.nsid = 0xffffffff;
  cmd.addr = reinterpret_cast<uintptr_t>(log);
  cmd.data_len = kSmartLogSize;
  cmd.cdw10 = 0x02 | (1u << 15) | (((kSmartLogSize >> 2) - 1) << 16);
  int r = ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd);
  int err = r < 0 ? errno : EIO;
  close(fd);
  return r == 0 ? SysError::Ok() : SysError::Of(err, "ioctl", path);
}

int ReadStatvfs(const std::string& path, struct statvfs* out) { return statvfs(path.c_str(), out) == 0 ? 0 : -errno; }

// --- N-API glue ---------------------------------------------------------------------------------

// sysinfo(): Promise<{uptime, loads: [3], totalram, freeram, bufferram, totalswap, freeswap,
// mem_unit}>: struct sysinfo as the kernel fills it (loads fixed point, sizes in mem_unit bytes);
// lib/sysinfo/kernel.ts makes KiB and load averages of them.
Napi::Value Sysinfo(const Napi::CallbackInfo& info) {
  auto si = std::make_shared<struct sysinfo>();
  return Schedule(
      info.Env(), "ember-ga:sysinfo",
      [si]() {
        int r = ReadSysinfo(si.get());
        return r == 0 ? SysError::Ok() : SysError::Of(-r, "sysinfo");
      },
      [si](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        auto num = [env](auto v) { return Napi::Number::New(env, static_cast<double>(v)); };
        o.Set("uptime", num(si->uptime));
        Napi::Array loads = Napi::Array::New(env, 3);
        for (uint32_t i = 0; i < 3; i++) loads.Set(i, num(si->loads[i]));
        o.Set("loads", loads);
        o.Set("totalram", num(si->totalram));
        o.Set("freeram", num(si->freeram));
        o.Set("bufferram", num(si->bufferram));
        o.Set("totalswap", num(si->totalswap));
        o.Set("freeswap", num(si->freeswap));
        o.Set("mem_unit", num(si->mem_unit));
        return o;
      });
}

// uname(): Promise<{sysname, nodename, release, version, machine, domainname}>
Napi::Value Uname(const Napi::CallbackInfo& info) {
  auto u = std::make_shared<struct utsname>();
  return Schedule(
      info.Env(), "ember-ga:uname",
      [u]() {
        int r = ReadUname(u.get());
        return r == 0 ? SysError::Ok() : SysError::Of(-r, "uname");
      },
      [u](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("sysname", Napi::String::New(env, u->sysname));
        o.Set("nodename", Napi::String::New(env, u->nodename));
        o.Set("release", Napi::String::New(env, u->release));
        o.Set("version", Napi::String::New(env, u->version));
        o.Set("machine", Napi::String::New(env, u->machine));
        o.Set("domainname", Napi::String::New(env, u->domainname));
        return o;
      });
}

// statvfs(path): Promise<{frsize, blocks, bfree, bavail}>, as BigInts: struct statvfs as the C
// library fills it; `path` is a string or a Buffer (a mount point's bytes, when not UTF-8).
// Why not fs.statfs: it gives f_bsize, and statvfs' sizes count f_frsize units (qemu-ga's
// guest-get-fsinfo multiplies by f_frsize).
Napi::Value Statvfs(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0, "path");
  auto st = std::make_shared<struct statvfs>();
  return Schedule(
      info.Env(), "ember-ga:statvfs",
      [st, path]() {
        int r = ReadStatvfs(path, st.get());
        return r == 0 ? SysError::Ok() : SysError::Of(-r, "statvfs", path);
      },
      [st](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        auto big = [env](auto v) { return Napi::BigInt::New(env, static_cast<uint64_t>(v)); };
        o.Set("frsize", big(st->f_frsize));
        o.Set("blocks", big(st->f_blocks));
        o.Set("bfree", big(st->f_bfree));
        o.Set("bavail", big(st->f_bavail));
        return o;
      });
}

// nvmeSmartLog(path): Promise<Buffer>: the 512 bytes of the SMART / health log page, as the
// controller wrote them (little-endian); lib/sysinfo/nvme.ts reads the fields.
Napi::Value NvmeSmartLog(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, 0, "path");
  auto log = std::make_shared<std::vector<unsigned char>>(kSmartLogSize);
  return Schedule(
      info.Env(), "ember-ga:nvme-smart", [log, path]() { return ReadNvmeSmart(path, log->data()); },
      [log](Napi::Env env) -> Napi::Value { return Napi::Buffer<unsigned char>::Copy(env, log->data(), log->size()); });
}

// realTime(): [seconds, nanoseconds] of CLOCK_REALTIME, synchronously (a vDSO call): the wall
// clock finer than Date.now()'s milliseconds.
Napi::Value RealTime(const Napi::CallbackInfo& info) {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(ts.tv_sec)));
  a.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(ts.tv_nsec)));
  return a;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sysinfo", Napi::Function::New(env, Sysinfo, "sysinfo"));
  exports.Set("uname", Napi::Function::New(env, Uname, "uname"));
  exports.Set("statvfs", Napi::Function::New(env, Statvfs, "statvfs"));
  exports.Set("realTime", Napi::Function::New(env, RealTime, "realTime"));
  exports.Set("nvmeSmartLog", Napi::Function::New(env, NvmeSmartLog, "nvmeSmartLog"));
  exports.Set("LONG_BIT", Napi::Number::New(env, static_cast<double>(sizeof(long) * CHAR_BIT)));
}

Module module("sysinfo", Init);

}  // namespace
}  // namespace ember
