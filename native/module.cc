// The addon's entry point: runs the initializer every binding file registered (module.h).
#include "module.h"

#include <utility>
#include <vector>

namespace ember {
namespace {

std::vector<std::pair<const char*, InitFn>>& Registry() {
  static std::vector<std::pair<const char*, InitFn>> modules;
  return modules;
}

}  // namespace

Module::Module(const char* name, InitFn init) { Registry().emplace_back(name, init); }

}  // namespace ember

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto& [name, init] : ember::Registry()) init(env, exports);
  return exports;
}

NODE_API_MODULE(ember_ga, Init)
