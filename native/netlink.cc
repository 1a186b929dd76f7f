// N-API glue for rtnl.h: converts arguments, runs each operation off the main thread with
// Schedule(), and turns the results into plain JS objects. lib/net/ wraps these in a typed API.
//
// A failure rejects with errno, syscall "rtnetlink" and, as `path`, the kernel's extended-ACK
// message (or ""), or with the system call that failed before any request (syscall "setns",
// path the namespace file); lib/net/ turns that into a SystemError naming the operation.
#include <memory>
#include <vector>

#include "common.h"
#include "rtnl.h"

namespace ember {
namespace {

SysError ToSysError(const rtnl::Status& s) {
  if (!s) return SysError::Ok();
  return SysError::Of(s.err, s.syscall.empty() ? "rtnetlink" : s.syscall, s.detail);
}

// Property keys created once per result, not once per object: a 10,000-route answer sets
// ~100,000 properties.
struct Keys {
  Napi::Env env;
  std::vector<Napi::String> keys;
  Keys(Napi::Env e, std::initializer_list<const char*> names) : env(e) {
    for (const char* n : names) keys.push_back(Napi::String::New(env, n));
  }
  const Napi::String& operator[](size_t i) const { return keys[i]; }
};

Napi::Value Str(Napi::Env env, const std::string& s) { return Napi::String::New(env, s); }
Napi::Value Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

template <typename T, typename Fill>
Napi::Array ToArray(Napi::Env env, const std::vector<T>& items, Fill fill) {
  Napi::Array arr = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    fill(o, items[i]);
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

std::string NetnsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  return StringArg(info, i, "netns");
}

// netLinks(netns) -> [{index, name, flags, type, mtu, hwaddr, operstate}]
Napi::Value Links(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  auto out = std::make_shared<std::vector<rtnl::Link>>();
  return Schedule(
      info.Env(), "ember-ga:netLinks", [ns, out] { return ToSysError(rtnl::DumpLinks(ns, out.get())); },
      [out](Napi::Env env) -> Napi::Value {
        Keys k(env, {"index", "name", "flags", "type", "mtu", "hwaddr", "operstate"});
        return ToArray(env, *out, [&](Napi::Object o, const rtnl::Link& l) {
          o.Set(k[0], Num(env, l.index));
          o.Set(k[1], Str(env, l.name));
          o.Set(k[2], Num(env, l.flags));
          o.Set(k[3], Num(env, l.type));
          o.Set(k[4], Num(env, l.mtu));
          o.Set(k[5], Str(env, l.hwaddr));
          o.Set(k[6], Num(env, l.operstate));
        });
      });
}

// netAddresses(netns, family) -> [{index, family, address, prefixlen, scope, flags, peer, label}]
Napi::Value Addresses(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  int family = static_cast<int>(IntArg(info, 1, "family"));
  auto out = std::make_shared<std::vector<rtnl::Address>>();
  return Schedule(
      info.Env(), "ember-ga:netAddresses",
      [ns, family, out] { return ToSysError(rtnl::DumpAddresses(ns, family, out.get())); },
      [out](Napi::Env env) -> Napi::Value {
        Keys k(env, {"index", "family", "address", "prefixlen", "scope", "flags", "peer", "label"});
        return ToArray(env, *out, [&](Napi::Object o, const rtnl::Address& a) {
          o.Set(k[0], Num(env, a.index));
          o.Set(k[1], Num(env, a.family));
          o.Set(k[2], Str(env, a.address));
          o.Set(k[3], Num(env, a.prefixlen));
          o.Set(k[4], Num(env, a.scope));
          o.Set(k[5], Num(env, a.flags));
          o.Set(k[6], Str(env, a.peer));
          o.Set(k[7], Str(env, a.label));
        });
      });
}

// netRoutes(netns, family, table) ->
//   [{family, dst, dstLen, gateway, prefsrc, oif, ifname, scope, table, protocol, type, priority}]
Napi::Value Routes(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  int family = static_cast<int>(IntArg(info, 1, "family"));
  uint32_t table = static_cast<uint32_t>(IntArg(info, 2, "table"));
  auto out = std::make_shared<std::vector<rtnl::Route>>();
  return Schedule(
      info.Env(), "ember-ga:netRoutes",
      [ns, family, table, out] { return ToSysError(rtnl::DumpRoutes(ns, family, table, out.get())); },
      [out](Napi::Env env) -> Napi::Value {
        Keys k(env, {"family", "dst", "dstLen", "gateway", "prefsrc", "oif", "ifname", "scope", "table",
                     "protocol", "type", "priority"});
        return ToArray(env, *out, [&](Napi::Object o, const rtnl::Route& r) {
          o.Set(k[0], Num(env, r.family));
          o.Set(k[1], Str(env, r.dst));
          o.Set(k[2], Num(env, r.dst_len));
          o.Set(k[3], Str(env, r.gateway));
          o.Set(k[4], Str(env, r.prefsrc));
          o.Set(k[5], Num(env, r.oif));
          o.Set(k[6], Str(env, r.ifname));
          o.Set(k[7], Num(env, r.scope));
          o.Set(k[8], Num(env, r.table));
          o.Set(k[9], Num(env, r.protocol));
          o.Set(k[10], Num(env, r.type));
          o.Set(k[11], Num(env, r.priority));
        });
      });
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBoolean())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// netChangeAddress(netns, add, ifname, family, address, prefixlen) -> undefined
Napi::Value ChangeAddress(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  bool add = BoolArg(info, 1, "add");
  auto ifname = StringArg(info, 2, "ifname");
  int family = static_cast<int>(IntArg(info, 3, "family"));
  auto address = StringArg(info, 4, "address");
  int prefixlen = static_cast<int>(IntArg(info, 5, "prefixlen"));
  return Schedule(
      info.Env(), "ember-ga:netChangeAddress",
      [=] { return ToSysError(rtnl::ChangeAddress(ns, add, ifname, family, address, prefixlen)); }, nullptr);
}

// netSetLinkUp(netns, ifname, up) -> undefined
Napi::Value SetLinkUp(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  auto ifname = StringArg(info, 1, "ifname");
  bool up = BoolArg(info, 2, "up");
  return Schedule(
      info.Env(), "ember-ga:netSetLinkUp", [=] { return ToSysError(rtnl::SetLinkUp(ns, ifname, up)); },
      nullptr);
}

// netChangeRoute(netns, add, {family, dst, dstLen, gateway, prefsrc, ifname, scope, table, metric})
Napi::Value ChangeRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ns = NetnsArg(info, 0);
  bool add = BoolArg(info, 1, "add");
  if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(env, "argument spec must be an object");
  Napi::Object o = info[2].As<Napi::Object>();
  auto str = [&](const char* key) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return std::string();
    if (!v.IsString()) throw Napi::TypeError::New(env, std::string("spec.") + key + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  };
  auto num = [&](const char* key, int64_t dflt) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return dflt;
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("spec.") + key + " must be a number");
    return v.As<Napi::Number>().Int64Value();
  };
  rtnl::RouteSpec spec;
  spec.family = static_cast<int>(num("family", 0));
  spec.dst = str("dst");
  spec.dst_len = static_cast<int>(num("dstLen", 0));
  spec.gateway = str("gateway");
  spec.prefsrc = str("prefsrc");
  spec.ifname = str("ifname");
  spec.scope = static_cast<int>(num("scope", -1));
  spec.table = static_cast<uint32_t>(num("table", 254));
  spec.metric = static_cast<uint32_t>(num("metric", 0));
  return Schedule(
      env, "ember-ga:netChangeRoute", [=] { return ToSysError(rtnl::ChangeRoute(ns, add, spec)); }, nullptr);
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("netLinks", Napi::Function::New(env, Links, "netLinks"));
  exports.Set("netAddresses", Napi::Function::New(env, Addresses, "netAddresses"));
  exports.Set("netRoutes", Napi::Function::New(env, Routes, "netRoutes"));
  exports.Set("netChangeAddress", Napi::Function::New(env, ChangeAddress, "netChangeAddress"));
  exports.Set("netSetLinkUp", Napi::Function::New(env, SetLinkUp, "netSetLinkUp"));
  exports.Set("netChangeRoute", Napi::Function::New(env, ChangeRoute, "netChangeRoute"));
}

Module netlink("netlink", Init);

}  // namespace
}  // namespace ember
