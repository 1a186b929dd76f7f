// Registration: each binding file registers its exports with a static Module object, and the
// addon's entry point (module.cc) calls every registered initializer when the addon loads.
// Adding a file means adding it to binding.gyp and nothing else.
#pragma once

#include <napi.h>

namespace ember {

using InitFn = void (*)(Napi::Env env, Napi::Object exports);
struct Module {
  Module(const char* name, InitFn init);
};

}  // namespace ember
