// HangupWatch: tells a peer that closed a stream socket apart from one that only shut down its
// sending side. Both read as end of file; only a close sets EPOLLHUP on our end (the kernel
// marks both directions shut). A host that half-closes still waits for its answers; one that
// closed is gone, and its work can be cancelled at once.
//
// The socket is already in libuv's epoll (Node reads it), and libuv allows one watcher per fd,
// so the watch is an epoll instance of its own holding the socket with no events asked for
// (EPOLLHUP and EPOLLERR are always reported); libuv polls that instance's fd.
#include <sys/epoll.h>
#include <unistd.h>

#include "errors.h"
#include "loop.h"
#include "module.h"

namespace ember {
namespace {

class HangupWatch : public Napi::ObjectWrap<HangupWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "HangupWatch", {InstanceMethod<&HangupWatch::Close>("close")});
  }

  // new HangupWatch(fd, onHangup): onHangup() runs once, when the peer has closed (or the
  // socket is in error). close() stops watching; the socket fd stays its owner's.
  HangupWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HangupWatch>(info) {
    Napi::Env env = info.Env();
    int fd = static_cast<int>(IntArg(info, 0, "fd"));
    if (info.Length() < 2 || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "argument onHangup must be a function");
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw MakeSysError(env, SysError::Of(errno, "epoll_create1"));
    struct epoll_event ev = {};
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      int err = errno;
      close(epfd_);
      epfd_ = -1;
      throw MakeSysError(env, SysError::Of(err, "epoll_ctl"));
    }
    int r;
    poll_ = NewPoll(EventLoop(env), epfd_, this, &r);
    if (poll_ == nullptr) {
      Stop();
      throw MakeSysError(env, SysError::Of(-r, "uv_poll_init"));
    }
    on_hangup_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "ember-ga:hangup");
    Ref();  // alive while watching, whoever holds the JS object
    uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int, int) {
      if (h->data != nullptr) static_cast<HangupWatch*>(h->data)->Check();
    });
    // A watch that must not keep the process alive: it only ever reports on a socket that
    // something else keeps open.
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }

  ~HangupWatch() override { Stop(); }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) {
      Stop();
      Unref();
    }
    return info.Env().Undefined();
  }

  void Check() {
    struct epoll_event ev = {};
    if (epoll_wait(epfd_, &ev, 1, 0) <= 0 || !(ev.events & (EPOLLHUP | EPOLLERR))) return;
    Stop();
    CallFromLoop(Env(), on_hangup_, *context_);
    Unref();  // last: once unreferenced the object may be collected
  }

  void Stop() {
    CloseHandle(poll_);
    poll_ = nullptr;
    if (epfd_ >= 0) close(epfd_);
    epfd_ = -1;
  }

  int epfd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference on_hangup_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

void Init(Napi::Env env, Napi::Object exports) { exports.Set("HangupWatch", HangupWatch::Define(env)); }

Module hangup_module("hangup", Init);

}  // namespace
}  // namespace ember
