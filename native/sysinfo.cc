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

struct Memory {
  uint64_t uptime = 0;  // seconds since boot
  uint64_t loads[3] = {0, 0, 0};  // fixed point, 1 << SI_LOAD_SHIFT = 1.0
  uint64_t total_ram = 0, free_ram = 0, buffer_ram = 0;  // bytes
  uint64_t total_swap = 0, free_swap = 0;                // bytes
};

int ReadSysinfo(Memory* out) {
  struct sysinfo si;
  if (sysinfo(&si) != 0) return -errno;
  // Sizes are in units of mem_unit bytes (1 on 64-bit; the page size on 32-bit with much RAM).
  const uint64_t unit = si.mem_unit == 0 ? 1 : si.mem_unit;
  out->uptime = si.uptime < 0 ? 0 : static_cast<uint64_t>(si.uptime);
  for (int i = 0; i < 3; i++) out->loads[i] = si.loads[i];
  out->total_ram = si.totalram * unit;
  out->free_ram = si.freeram * unit;
  out->buffer_ram = si.bufferram * unit;
  out->total_swap = si.totalswap * unit;
  out->free_swap = si.freeswap * unit;
  return 0;
}

int ReadUname(struct utsname* out) { return uname(out) == 0 ? 0 : -errno; }

// --- N-API glue ---------------------------------------------------------------------------------

constexpr double kLoadScale = 1 << SI_LOAD_SHIFT;

// sysinfo(): Promise<{uptime, loads: [3], totalram, freeram, bufferram, totalswap, freeswap}>
// (sizes in KiB, loads as the kernel's fixed-point value divided by 65536).
Napi::Value Sysinfo(const Napi::CallbackInfo& info) {
  auto m = std::make_shared<Memory>();
  return Schedule(
      info.Env(), "ember-ga:sysinfo",
      [m]() {
        int r = ReadSysinfo(m.get());
        return r == 0 ? SysError::Ok() : SysError::Of(-r, "sysinfo");
      },
      [m](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        auto kib = [](uint64_t bytes) { return static_cast<double>(bytes / 1024); };
        o.Set("uptime", Napi::Number::New(env, static_cast<double>(m->uptime)));
        Napi::Array loads = Napi::Array::New(env, 3);
        for (uint32_t i = 0; i < 3; i++) loads.Set(i, Napi::Number::New(env, m->loads[i] / kLoadScale));
        o.Set("loads", loads);
        o.Set("totalram", Napi::Number::New(env, kib(m->total_ram)));
        o.Set("freeram", Napi::Number::New(env, kib(m->free_ram)));
        o.Set("bufferram", Napi::Number::New(env, kib(m->buffer_ram)));
        o.Set("totalswap", Napi::Number::New(env, kib(m->total_swap)));
        o.Set("freeswap", Napi::Number::New(env, kib(m->free_swap)));
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
