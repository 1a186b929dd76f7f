// The agent's tuning of Node's event loop (lib/cli.ts). Node turns on libuv's idle-time metrics
// for its main loop (UV_METRICS_IDLE_TIME, for performance.eventLoopUtilization()), and libuv
// has no call that turns them off. With them on, every time the loop is about to wait it first
// polls with no timeout, so that it can time the wait: an extra epoll_pwait each request a host
// sends one at a time (measured: 1.75 per 4 KiB read, 1.0 without; 2-3% of the agent's CPU).
// The agent reads no such metrics.
#include <uv.h>

#include "module.h"

namespace ember {
namespace {

// libuv keeps the metrics switch in the first field of its private loop state
// (uv__loop_internal_fields_t: `unsigned int flags`, the option's value as its bit), the same
// from 1.39, when the state appeared, through 1.51. Other versions are left alone.
constexpr unsigned kFirstKnown = (1 << 16) | (39 << 8);
constexpr unsigned kLastKnown = (1 << 16) | (51 << 8) | 0xff;

// stopLoopIdleTime(): true when the idle-time metrics of the environment's loop are off now;
// false, with nothing changed, under a libuv this does not know.
Napi::Value StopLoopIdleTime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uv_loop_t* loop = nullptr;
  unsigned v = uv_version();
  if (v < kFirstKnown || v > kLastKnown || napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr ||
      loop->internal_fields == nullptr)
    return Napi::Boolean::New(env, false);
  *static_cast<unsigned int*>(loop->internal_fields) &= ~static_cast<unsigned int>(UV_METRICS_IDLE_TIME);
  return Napi::Boolean::New(env, true);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("stopLoopIdleTime", Napi::Function::New(env, StopLoopIdleTime, "stopLoopIdleTime"));
}

Module module("event_loop", Init);

}  // namespace
}  // namespace ember
