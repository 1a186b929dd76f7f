// For the bindings driven by libuv handles (FdPoll, HangupWatch, Port): closing a handle, and
// calling JavaScript from a libuv callback.
#pragma once

#include <napi.h>
#include <uv.h>

namespace ember {

// The event loop of env (throws when there is none).
inline uv_loop_t* EventLoop(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
  return loop;
}

// A uv_poll_t watching fd, its data `owner`; nullptr, with libuv's (negative) error in *err, for
// an fd epoll refuses. Closed with CloseHandle.
inline uv_poll_t* NewPoll(uv_loop_t* loop, int fd, void* owner, int* err) {
  auto* poll = new uv_poll_t;
  if ((*err = uv_poll_init(loop, poll, fd)) != 0) {
    delete poll;
    return nullptr;
  }
  poll->data = owner;
  return poll;
}

// Closes a libuv handle the addon allocated with `new` and deletes it once libuv is done with
// it; `data` is cleared first, so a callback already queued sees nullptr and does nothing.
template <typename H>
void CloseHandle(H* h) {
  if (h == nullptr) return;
  h->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
}

// Calls a JavaScript callback from a libuv callback on the main thread (no JS frame below): an
// exception it throws becomes the process's uncaught exception, as for any event callback.
inline void CallFromLoop(Napi::Env env, Napi::FunctionReference& fn, Napi::AsyncContext& context) {
  Napi::HandleScope scope(env);
  try {
    fn.MakeCallback(env.Global(), std::initializer_list<napi_value>{}, context);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace ember
