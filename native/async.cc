#include "common.h"

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace ember {

namespace {
std::vector<std::pair<const char*, InitFn>>& Registry() {
  static std::vector<std::pair<const char*, InitFn>> modules;
  return modules;
}

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

Module::Module(const char* name, InitFn init) { Registry().emplace_back(name, init); }

void InitAll(Napi::Env env, Napi::Object exports) {
  for (auto& [name, init] : Registry()) init(env, exports);
}

Napi::Error MakeSysError(Napi::Env env, const SysError& e) {
  std::string msg;
  if (!e.syscall.empty()) msg += e.syscall + " ";
  if (!e.path.empty()) msg += e.path;
  if (!msg.empty() && msg.back() == ' ') msg.pop_back();
  if (!msg.empty()) msg += ": ";
  msg += strerror(e.err);
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("errno", Napi::Number::New(env, e.err));
  if (!e.syscall.empty()) err.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.path.empty()) err.Set("path", Napi::String::New(env, e.path));
  return err;
}

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

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  // A C string ends at the first NUL: "/etc/passwd\0x" would silently name /etc/passwd.
  if (s.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " contains a NUL byte");
  return s;
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

}  // namespace ember
