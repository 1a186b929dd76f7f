#include "schedule.h"

#include <cerrno>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

#include "errors.h"

namespace ember {
namespace {

// Resolves with done(env), or rejects with the system error (or with what done threw).
void Settle(Napi::Env env, Napi::Promise::Deferred& deferred, const SysError& result, const Done& done) {
  if (result) {
    deferred.Reject(MakeSysError(env, result).Value());
    return;
  }
  try {
    deferred.Resolve(done ? done(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    deferred.Reject(e.Value());
  }
}

class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, const char* name, Work work, Done done)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        done_(std::move(done)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { result_ = work_(); }

  void OnOK() override { Settle(Env(), deferred_, result_, done_); }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  SysError result_;
};

// One ScheduleOnThread() call: made on the main thread, filled by its own thread, settled (and
// deleted) back on the main thread through a thread-safe function.
struct ThreadCall {
  ThreadCall(Napi::Env env, Work work, Done done)
      : deferred(Napi::Promise::Deferred::New(env)), work(std::move(work)), done(std::move(done)) {}
  Napi::Promise::Deferred deferred;
  Work work;
  Done done;
  SysError result;
};

void DeliverThreadCall(Napi::Env env, Napi::Function, std::nullptr_t*, ThreadCall* raw) {
  std::unique_ptr<ThreadCall> call(raw);
  if (env == nullptr) return;  // the environment is going away: nobody to answer
  Settle(env, call->deferred, call->result, call->done);
}

using ThreadChannel = Napi::TypedThreadSafeFunction<std::nullptr_t, ThreadCall, DeliverThreadCall>;

}  // namespace

Napi::Promise Schedule(Napi::Env env, const char* name, Work work, Done done) {
  auto* task = new Task(env, name, std::move(work), std::move(done));
  Napi::Promise promise = task->Promise();
  task->Queue();  // the worker deletes itself after OnOK/OnError
  return promise;
}

Napi::Promise ScheduleOnThread(Napi::Env env, const char* name, Work work, Done done, const std::string& path) {
  auto* call = new ThreadCall(env, std::move(work), std::move(done));
  Napi::Promise promise = call->deferred.Promise();
  // The channel keeps the event loop alive until the answer is back, like a pending fs call.
  ThreadChannel channel = ThreadChannel::New(env, name, 0, 1);
  try {
    std::thread([channel, call]() mutable {
      call->result = call->work();
      if (channel.BlockingCall(call) != napi_ok) delete call;  // the environment is closing
      channel.Release();
    }).detach();
  } catch (const std::system_error& e) {
    // No thread to be had (EAGAIN): answer at once, nothing was done.
    call->result = SysError::Of(e.code().value() ? e.code().value() : EAGAIN, "thread", path);
    DeliverThreadCall(env, Napi::Function(), nullptr, call);
    channel.Release();
  }
  return promise;
}

}  // namespace ember
