#include "errors.h"

#include <cstring>

namespace ember {

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

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  // A C string ends at the first NUL: "/etc/passwd\0x" would silently name /etc/passwd.
  if (s.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " contains a NUL byte");
  return s;
}

std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer()) {
    if (info.Length() > i && info[i].IsString()) return StringArg(info, i, name);
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a string or a Buffer");
  }
  Napi::Buffer<char> b = info[i].As<Napi::Buffer<char>>();
  std::string s(b.Data(), b.Length());
  if (s.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " contains a NUL byte");
  return s;
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() > i && info[i].IsBigInt()) {
    bool lossless = false;
    int64_t v = info[i].As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), std::string("argument ") + name + " is not an int64");
    return v;
  }
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBoolean())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

Napi::Buffer<char> BufferArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a Buffer");
  return info[i].As<Napi::Buffer<char>>();
}

}  // namespace ember
