#include "common.h"

#include <cstring>
#include <utility>
#include <vector>

namespace ember {

namespace {
std::vector<std::pair<const char*, InitFn>>& Registry() {
  static std::vector<std::pair<const char*, InitFn>> modules;
  return modules;
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

  void OnOK() override {
    Napi::Env env = Env();
    if (result_) {
      deferred_.Reject(MakeSysError(env, result_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  SysError result_;
};
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

namespace ember {
namespace {
// strerror(3), for lib/errors.ts: the C library's texts are the ones Go prints (lowercased
// first letter), where libuv's differ ("is a directory", not "illegal operation on a directory").
Napi::Value StrError(const Napi::CallbackInfo& info) {
  char buf[256];
  const char* s = strerror_r(static_cast<int>(IntArg(info, 0, "errno")), buf, sizeof buf);
  return Napi::String::New(info.Env(), s);
}
Module reg("core", [](Napi::Env env, Napi::Object exports) {
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
});
}  // namespace
}  // namespace ember
