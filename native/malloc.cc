// glibc malloc's tuning for the agent (lib/cli.ts; docs/AGENT.md "Memory"). glibc raises its mmap
// threshold to the size of each large block freed (up to 32 MiB), so after the first megabyte
// answers the agent's large buffers come from the heap, whose freed middle it keeps resident;
// a fixed threshold gives each such buffer a mapping of its own, returned when it is freed.
#include <malloc.h>

#include "errors.h"
#include "module.h"

namespace ember {
namespace {

// mallocMmapThreshold(bytes): boolean, mallopt(M_MMAP_THRESHOLD, bytes): blocks of `bytes` or
// more are mapped on their own, whatever is freed later. False when malloc refused the value.
Napi::Value MallocMmapThreshold(const Napi::CallbackInfo& info) {
  int64_t bytes = IntArg(info, 0, "bytes");
  bool ok = bytes >= 0 && bytes <= (int64_t{1} << 30) && mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1;
  return Napi::Boolean::New(info.Env(), ok);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocMmapThreshold", Napi::Function::New(env, MallocMmapThreshold, "mallocMmapThreshold"));
}

Module module("malloc", Init);

}  // namespace
}  // namespace ember
