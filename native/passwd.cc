// getpwnam_r(3) for qemu-ga's guest-ssh-*-authorized-keys (lib/system/users.ts): a user's uid,
// gid and home as the C library's NSS finds them (files, LDAP, sssd...), which parsing
// /etc/passwd would not. On the thread pool: an NSS lookup may go over the network.
#include <pwd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "module.h"
#include "schedule.h"

namespace ember {
namespace {

struct Entry {
  bool found = false;
  std::string name, dir, shell, gecos;
  uid_t uid = 0;
  gid_t gid = 0;
};

// --- kernel-facing part: plain values in, SysError out -----------------------------------------

// No entry is not an error (found stays false); ERANGE grows the buffer, as glib does.
SysError LookUp(const std::string& name, Entry* out) {
  std::vector<char> buf(1024);
  for (;;) {
    struct passwd pwd;
    struct passwd* result = nullptr;
    int rc = getpwnam_r(name.c_str(), &pwd, buf.data(), buf.size(), &result);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0) return SysError::Of(rc, "getpwnam_r", name);
    if (result != nullptr) {
      out->found = true;
      out->name = pwd.pw_name;
      out->dir = pwd.pw_dir;
      out->shell = pwd.pw_shell;
      out->gecos = pwd.pw_gecos != nullptr ? pwd.pw_gecos : "";
      out->uid = pwd.pw_uid;
      out->gid = pwd.pw_gid;
    }
    return SysError::Ok();
  }
}

// --- N-API glue ---------------------------------------------------------------------------------

// getpwnam(name): Promise<{name, uid, gid, gecos, dir, shell} | null>: null when there is no
// such user; rejects with the errno of a failed lookup.
Napi::Value GetPwnam(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "name");
  auto entry = std::make_shared<Entry>();
  return Schedule(
      info.Env(), "ember-ga:getpwnam", [name, entry]() { return LookUp(name, entry.get()); },
      [entry](Napi::Env env) -> Napi::Value {
        if (!entry->found) return env.Null();
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", Napi::String::New(env, entry->name));
        o.Set("uid", Napi::Number::New(env, static_cast<double>(entry->uid)));
        o.Set("gid", Napi::Number::New(env, static_cast<double>(entry->gid)));
        o.Set("gecos", Napi::String::New(env, entry->gecos));
        o.Set("dir", Napi::String::New(env, entry->dir));
        o.Set("shell", Napi::String::New(env, entry->shell));
        return o;
      });
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getpwnam", Napi::Function::New(env, GetPwnam, "getpwnam"));
}

Module module("passwd", Init);

}  // namespace
}  // namespace ember
