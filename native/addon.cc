// Entry point of the addon: every native/*.cc registers itself (see common.h), this calls them.
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ember::InitAll(env, exports);
  return exports;
}

NODE_API_MODULE(ember_ga, Init)
