// N-API glue for rtnl.h: converts arguments, runs each operation off the main thread with
// Schedule(), and hands dump results over as tables (below). lib/net/ wraps these in a typed
// API; the column order of each table is written once here and once in lib/net/index.ts.
//
// A failure rejects with errno, syscall "rtnetlink" and, as `path`, the kernel's extended-ACK
// message (or ""), or with the system call that failed before any request (syscall "setns",
// path the namespace file); lib/net/ turns that into a SystemError naming the operation.
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <vector>

#include "errors.h"
#include "module.h"
#include "rtnl.h"
#include "schedule.h"

namespace ember {
namespace {

SysError ToSysError(const rtnl::Status& s) {
  if (!s) return SysError::Ok();
  return SysError::Of(s.err, s.syscall.empty() ? "rtnetlink" : s.syscall, s.detail);
}

// Results travel as a table: every string field in one string (each followed by NUL) and every
// number in one Float64Array, built on the worker thread; lib/net/ makes the objects. Creating
// 10,000 objects property by property through N-API costs more than the dump itself.
struct Table {
  std::string text;
  std::vector<double> nums;
  size_t rows = 0;
  void Str(const std::string& s) {
    text += s;
    text += '\0';
  }
  void Num(double v) { nums.push_back(v); }
  Napi::Value ToJs(Napi::Env env) const {
    Napi::Object o = Napi::Object::New(env);
    o.Set("rows", Napi::Number::New(env, static_cast<double>(rows)));
    o.Set("text", Napi::String::New(env, text));
    Napi::Float64Array nums_js = Napi::Float64Array::New(env, nums.size());
    if (!nums.empty()) memcpy(nums_js.Data(), nums.data(), nums.size() * sizeof(double));
    o.Set("nums", nums_js);
    return o;
  }
};

std::string NetnsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  return StringArg(info, i, "netns");
}

int Family(uint8_t af) { return af == AF_INET6 ? 6 : 4; }

// Runs a dump into a vector, then turns each element into one table row, both off the main
// thread; the promise resolves with the table.
template <typename T, typename Dump, typename Row>
Napi::Value DumpTable(Napi::Env env, const char* name, Dump dump, Row row) {
  auto table = std::make_shared<Table>();
  return Schedule(
      env, name,
      [dump, row, table] {
        std::vector<T> items;
        rtnl::Status s = dump(&items);
        if (s) return ToSysError(s);
        table->rows = items.size();
        for (const T& item : items) row(*table, item);
        return SysError::Ok();
      },
      [table](Napi::Env env) { return table->ToJs(env); });
}

// netLinks(netns) -> rows of strings [name, hwaddr], numbers [index, flags, type, mtu, operstate]
Napi::Value Links(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  return DumpTable<rtnl::Link>(
      info.Env(), "ember-ga:netLinks", [ns](std::vector<rtnl::Link>* out) { return rtnl::DumpLinks(ns, out); },
      [](Table& t, const rtnl::Link& l) {
        t.Str(l.name), t.Str(l.hwaddr);
        t.Num(l.index), t.Num(l.flags), t.Num(l.type), t.Num(l.mtu), t.Num(l.operstate);
      });
}

// netAddresses(netns, family) -> strings [address, peer, label],
//   numbers [index, family (4|6), prefixlen, scope, flags]
Napi::Value Addresses(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  int family = static_cast<int>(IntArg(info, 1, "family"));
  return DumpTable<rtnl::Address>(
      info.Env(), "ember-ga:netAddresses",
      [ns, family](std::vector<rtnl::Address>* out) { return rtnl::DumpAddresses(ns, family, out); },
      [](Table& t, const rtnl::Address& a) {
        t.Str(a.address), t.Str(a.peer), t.Str(a.label);
        t.Num(a.index), t.Num(Family(a.family)), t.Num(a.prefixlen), t.Num(a.scope), t.Num(a.flags);
      });
}

// A multipath route's paths as one table string: "IFNAME\tGATEWAY" per path, joined with "\n"
// (neither can hold a tab or a newline: link names cannot, addresses are inet_ntop's); "" for
// a route with one path.
std::string NextHopsText(const std::vector<rtnl::NextHop>& hops) {
  std::string s;
  for (const rtnl::NextHop& h : hops) {
    if (!s.empty()) s += '\n';
    s += h.ifname + '\t' + h.gateway;
  }
  return s;
}

// netRoutes(netns, family, table) -> strings [dst, gateway, prefsrc, ifname, nexthops],
//   numbers [family (4|6), dstLen, oif, scope, table, protocol, type, metric]
Napi::Value Routes(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  int family = static_cast<int>(IntArg(info, 1, "family"));
  uint32_t table = static_cast<uint32_t>(IntArg(info, 2, "table"));
  return DumpTable<rtnl::Route>(
      info.Env(), "ember-ga:netRoutes",
      [ns, family, table](std::vector<rtnl::Route>* out) { return rtnl::DumpRoutes(ns, family, table, out); },
      [](Table& t, const rtnl::Route& r) {
        t.Str(r.dst), t.Str(r.gateway), t.Str(r.prefsrc), t.Str(r.ifname), t.Str(NextHopsText(r.nexthops));
        t.Num(Family(r.family)), t.Num(r.dst_len), t.Num(r.oif), t.Num(r.scope), t.Num(r.table);
        t.Num(r.protocol), t.Num(r.type), t.Num(r.priority);
      });
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
