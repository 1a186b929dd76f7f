// FdPoll: readiness of a pipe, FIFO or character device from the event loop (epoll through
// uv_poll), so stream I/O that has to wait holds no thread-pool thread. `new FdPoll(fd, onReady)`
// throws (errno EPERM) for an fd epoll refuses (regular files, devices without poll support);
// wait(writable) arms one notification: onReady() runs once the fd is readable (writable), hung
// up or in error; close() stops waiting for good. The fd stays open: its owner closes it.
#include <memory>

#include "errors.h"
#include "loop.h"
#include "module.h"

namespace ember {
namespace {

class FdPoll : public Napi::ObjectWrap<FdPoll> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoll", {InstanceMethod<&FdPoll::Wait>("wait"), InstanceMethod<&FdPoll::Close>("close")});
  }

  FdPoll(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdPoll>(info) {
    Napi::Env env = info.Env();
    int fd = static_cast<int>(IntArg(info, 0, "fd"));
    if (info.Length() < 2 || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "argument onReady must be a function");
    on_ready_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "ember-ga:fdpoll");
    int r;
    poll_ = NewPoll(EventLoop(env), fd, this, &r);
    if (poll_ == nullptr) throw MakeSysError(env, SysError::Of(-r, "epoll_ctl"));
  }

  ~FdPoll() override { Stop(); }

 private:
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    if (poll_ == nullptr) throw Napi::Error::New(info.Env(), "FdPoll is closed");
    int events = (info.Length() > 0 && info[0].ToBoolean().Value() ? UV_WRITABLE : UV_READABLE) | UV_DISCONNECT;
    if (!armed_) {
      Ref();  // the callback must outlive a wait nobody else holds on to
      armed_ = true;
    }
    uv_poll_start(poll_, events, [](uv_poll_t* h, int, int) {
      if (h->data != nullptr) static_cast<FdPoll*>(h->data)->Fire();
    });
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    if (armed_) {
      armed_ = false;
      Unref();
    }
    // The callback usually holds this object (to wait again): a strong reference kept here would
    // keep both, and whatever the callback holds, alive for good.
    on_ready_.Reset();
    return info.Env().Undefined();
  }

  void Fire() {
    uv_poll_stop(poll_);
    armed_ = false;
    Unref();
    CallFromLoop(Env(), on_ready_, *context_);
  }

  void Stop() {
    CloseHandle(poll_);
    poll_ = nullptr;
  }

  uv_poll_t* poll_ = nullptr;
  bool armed_ = false;
  Napi::FunctionReference on_ready_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

Module fdpoll_module("fdpoll", [](Napi::Env env, Napi::Object exports) { exports.Set("FdPoll", FdPoll::Define(env)); });

}  // namespace
}  // namespace ember
