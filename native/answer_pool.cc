#include "answer_pool.h"

#include <uv.h>

#include <cstdint>
#include <cstdlib>
#include <unordered_map>
#include <vector>

#include "errors.h"
#include "loop.h"
#include "module.h"

namespace ember {
namespace {

// Smaller Buffers come from malloc's heap, cheap to get again.
constexpr size_t kMinPooled = 128 * 1024;
// Free bytes kept: a 48 MiB read's whole 64 MiB answer, so that the next one, made as the last
// of it is written, reuses all of it. Blocks only wait here while no answer holds them, so the
// peak (an answer queued and the next made) is what it was without the pool.
constexpr size_t kKeep = 64 * 1024 * 1024;
// Kept blocks nothing took for this long are freed: what a transfer kept is not held after it.
constexpr uint64_t kIdleMs = 2000;

// The power of two from kMinPooled up that holds n: a piece's block fits the next piece of its size.
size_t SizeClass(size_t n) {
  size_t c = kMinPooled;
  while (c < n) c <<= 1;
  return c;
}

class Pool;
// One pool per thread, so per environment (the main thread's, a worker's): its blocks are given
// back by finalizers, which run on the environment's own thread.
thread_local Pool* tls_pool = nullptr;

class Pool {
 public:
  explicit Pool(Napi::Env env) {
    timer_ = new uv_timer_t;
    uv_timer_init(EventLoop(env), timer_);
    timer_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));  // never keeps the process alive
    napi_add_env_cleanup_hook(
        env, [](void* p) { delete static_cast<Pool*>(p); }, this);
  }

  ~Pool() {
    tls_pool = nullptr;  // blocks finalized later are freed, not given back
    FreeAll();
    CloseHandle(timer_);
  }

  static Pool& Of(Napi::Env env) {
    if (tls_pool == nullptr) tls_pool = new Pool(env);
    return *tls_pool;
  }

  void* Take(size_t cls) {
    taken_since_ = true;
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      kept_ -= cls;
      return p;
    }
    return malloc(cls);
  }

  void Give(void* p, size_t cls) {
    if (kept_ + cls > kKeep) {
      free(p);
      return;
    }
    free_[cls].push_back(p);
    kept_ += cls;
    if (timer_->data != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t*>(timer_))) {
      taken_since_ = false;
      uv_timer_start(timer_, OnIdle, kIdleMs, 0);
    }
  }

 private:
  static void OnIdle(uv_timer_t* t) {
    auto* self = static_cast<Pool*>(t->data);
    if (self == nullptr) return;
    if (self->taken_since_) {
      self->taken_since_ = false;
      uv_timer_start(t, OnIdle, kIdleMs, 0);
    } else {
      self->FreeAll();
    }
  }

  void FreeAll() {
    for (auto& [cls, list] : free_) {
      for (void* p : list) free(p);
    }
    free_.clear();
    kept_ = 0;
  }

  uv_timer_t* timer_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t kept_ = 0;
  bool taken_since_ = false;
};

// The finalizer of a pooled Buffer: its block goes back to the pool (its size class is the hint).
void GiveBack(Napi::Env, unsigned char* data, void* hint) {
  size_t cls = reinterpret_cast<uintptr_t>(hint);
  if (tls_pool != nullptr)
    tls_pool->Give(data, cls);
  else
    free(data);
}

}  // namespace

Napi::Buffer<unsigned char> AnswerBuffer(Napi::Env env, size_t len) {
  if (len < kMinPooled) return Napi::Buffer<unsigned char>::New(env, len);
  size_t cls = SizeClass(len);
  void* p = Pool::Of(env).Take(cls);
  if (p == nullptr) throw Napi::Error::New(env, "out of memory");
  return Napi::Buffer<unsigned char>::New(env, static_cast<unsigned char*>(p), len, GiveBack,
                                          reinterpret_cast<void*>(static_cast<uintptr_t>(cls)));
}

bool FreeWhole(Napi::Env env, Napi::Buffer<char> buf) {
  Napi::ArrayBuffer ab = buf.ArrayBuffer();
  if (buf.ByteOffset() != 0 || buf.ByteLength() != ab.ByteLength() || ab.IsDetached()) return false;
  return napi_detach_arraybuffer(env, ab) == napi_ok;  // not detachable: the collector frees it
}

namespace {

// freeWhole(buffer): boolean, synchronous: FreeWhole, for a transport done with an answer's piece.
Napi::Value FreeWholeJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), FreeWhole(info.Env(), BufferArg(info, 0, "buffer")));
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("freeWhole", Napi::Function::New(env, FreeWholeJs, "freeWhole"));
}

Module module("answer_pool", Init);

}  // namespace

}  // namespace ember
