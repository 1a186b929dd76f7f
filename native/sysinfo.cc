// sysinfo(2) and uname(2) for the sysinfo command, off the main thread.
//
// Why native: the reference reports sysinfo(2)'s load averages (fixed point, 1/65536), e.g.
// 0.0185546875, and its whole-second uptime. /proc/loadavg rounds loads to two decimals, so only
// the system call gives the reference's values. uname(2) fills every field, the NIS domain
// included, in the same call. LONG_BIT is exported as a constant: it is what `getconf LONG_BIT`
// prints (the width of a C long in this userspace), no subprocess needed.
#include <sys/sysinfo.h>
#include <sys/utsname.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <memory>

#include "errors.h"
#include "module.h"
#include "schedule.h"

namespace ember {
namespace {

// --- kernel-facing part: plain values in, -errno out ------------------------------------------

int ReadSysinfo(struct sysinfo* out) { return sysinfo(out) == 0 ? 0 : -errno; }

int ReadUname(struct utsname* out) { return uname(out) == 0 ? 0 : -errno; }

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

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sysinfo", Napi::Function::New(env, Sysinfo, "sysinfo"));
  exports.Set("uname", Napi::Function::New(env, Uname, "uname"));
  exports.Set("LONG_BIT", Napi::Number::New(env, static_cast<double>(sizeof(long) * CHAR_BIT)));
}

Module module("sysinfo", Init);

}  // namespace
}  // namespace ember
