// N-API glue for rtnl.h: converts arguments, runs each operation off the main thread with
// Schedule(), and hands dump results over as tables of named columns (below). Values are the
// kernel's (AF_INET/AF_INET6 families, IFF_* flags, RT_SCOPE_* scopes); lib/net/ names them and
// checks every request before it comes here.
//
// A failure rejects with errno, syscall "rtnetlink" and, as `path`, the kernel's extended-ACK
// message (or ""), or with the system call that failed before any request (syscall "setns",
// path the namespace file); lib/net/ turns that into a SystemError naming the operation.
#include <array>
#include <cstring>
#include <memory>
#include <string>
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

// Dumps travel column by column, each column by name: a string column as one string (each value
// followed by NUL; a name column in latin1, a character per byte: the kernel's names are bytes,
// not always UTF-8), a number column as one Float64Array, a 64-bit counter column (exact past
// 2^53) as one BigUint64Array, built on the worker thread. lib/native.ts
// splits the strings, and lib/net reads each row's fields by column name: creating 10,000 objects
// property by property through N-API costs more than the dump itself.
class Table {
 public:
  // One row's fields, in the same order on every row (the first row names the columns).
  void Str(const char* name, const std::string& s) {
    std::string& text = Next(name, true).text;
    text += s;
    text += '\0';
  }
  // A string of bytes (an interface name), handed over as they are.
  void Bytes(const char* name, const std::string& s) {
    Column& c = Next(name, true);
    c.latin1 = true;
    c.text += s;
    c.text += '\0';
  }
  void Num(const char* name, double v) { Next(name, false).nums.push_back(v); }
  void U64(const char* name, uint64_t v) { Next(name, false, true).u64s.push_back(v); }
  void EndRow() {
    rows_++;
    at_ = 0;
  }

  Napi::Value ToJs(Napi::Env env) const {
    Napi::Object columns = Napi::Object::New(env);
    for (const Column& c : columns_) {
      if (c.is_text && c.latin1) {
        napi_value v;
        NAPI_THROW_IF_FAILED(env, napi_create_string_latin1(env, c.text.data(), c.text.size(), &v), Napi::Value());
        columns.Set(c.name, v);
        continue;
      }
      if (c.is_text) {
        columns.Set(c.name, Napi::String::New(env, c.text));
        continue;
      }
      if (c.is_u64) {
        Napi::BigUint64Array u = Napi::BigUint64Array::New(env, c.u64s.size());
        if (!c.u64s.empty()) memcpy(u.Data(), c.u64s.data(), c.u64s.size() * sizeof(uint64_t));
        columns.Set(c.name, u);
        continue;
      }
      Napi::Float64Array nums = Napi::Float64Array::New(env, c.nums.size());
      if (!c.nums.empty()) memcpy(nums.Data(), c.nums.data(), c.nums.size() * sizeof(double));
      columns.Set(c.name, nums);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("rows", Napi::Number::New(env, static_cast<double>(rows_)));
    o.Set("columns", columns);
    return o;
  }

 private:
  struct Column {
    const char* name;
    bool is_text;
    bool is_u64;
    bool latin1;  // a Bytes column
    std::string text;
    std::vector<double> nums;
    std::vector<uint64_t> u64s;
  };

  Column& Next(const char* name, bool is_text, bool is_u64 = false) {
    if (rows_ == 0) columns_.push_back(Column{name, is_text, is_u64, false, {}, {}, {}});
    return columns_[at_++];
  }

  std::vector<Column> columns_;
  size_t at_ = 0;  // the column the row's next field goes to
  size_t rows_ = 0;
};

std::string NetnsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  return StringArg(info, i, "netns");
}

// Runs a dump into a vector, then turns each element into table rows, both off the main thread;
// the promise resolves with the tables, as rows(tables) gives them to JS.
template <typename T, size_t N, typename Dump, typename Row, typename ToJs>
Napi::Value DumpTables(Napi::Env env, const char* name, Dump dump, Row row, ToJs to_js) {
  auto tables = std::make_shared<std::array<Table, N>>();
  return Schedule(
      env, name,
      [dump, row, tables] {
        std::vector<T> items;
        rtnl::Status s = dump(&items);
        if (s) return ToSysError(s);
        for (size_t i = 0; i < items.size(); i++) row(*tables, items[i], i);
        return SysError::Ok();
      },
      [tables, to_js](Napi::Env env) { return to_js(env, *tables); });
}

// A dump of one table.
template <typename T, typename Dump, typename Row>
Napi::Value DumpTable(Napi::Env env, const char* name, Dump dump, Row row) {
  return DumpTables<T, 1>(
      env, name, dump,
      [row](std::array<Table, 1>& t, const T& item, size_t) {
        row(t[0], item);
        t[0].EndRow();
      },
      [](Napi::Env env, const std::array<Table, 1>& t) { return t[0].ToJs(env); });
}

// netLinks(netns): a table of links.
Napi::Value Links(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  return DumpTable<rtnl::Link>(
      info.Env(), "ember-ga:netLinks", [ns](std::vector<rtnl::Link>* out) { return rtnl::DumpLinks(ns, out); },
      [](Table& t, const rtnl::Link& l) {
        t.Bytes("name", l.name), t.Str("hwaddr", l.hwaddr);
        t.Num("index", l.index), t.Num("flags", l.flags), t.Num("type", l.type), t.Num("mtu", l.mtu);
        t.Num("operstate", l.operstate), t.Num("hasStats", l.has_stats);
        const rtnl::LinkStats& s = l.stats;
        t.U64("rxBytes", s.rx_bytes), t.U64("rxPackets", s.rx_packets), t.U64("rxErrors", s.rx_errors);
        t.U64("rxDropped", s.rx_dropped), t.U64("rxMissed", s.rx_missed);
        t.U64("txBytes", s.tx_bytes), t.U64("txPackets", s.tx_packets), t.U64("txErrors", s.tx_errors);
        t.U64("txDropped", s.tx_dropped), t.U64("multicast", s.multicast), t.U64("collisions", s.collisions);
      });
}

// netAddresses(netns, family): a table of addresses, family as the kernel's AF_INET/AF_INET6.
Napi::Value Addresses(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  int family = static_cast<int>(IntArg(info, 1, "family"));
  return DumpTable<rtnl::Address>(
      info.Env(), "ember-ga:netAddresses",
      [ns, family](std::vector<rtnl::Address>* out) { return rtnl::DumpAddresses(ns, family, out); },
      [](Table& t, const rtnl::Address& a) {
        t.Str("address", a.address), t.Str("peer", a.peer), t.Bytes("label", a.label);
        t.Num("index", a.index), t.Num("family", a.family), t.Num("prefixlen", a.prefixlen);
        t.Num("scope", a.scope), t.Num("flags", a.flags);
      });
}

// netRoutes(netns, family, table): {routes, nexthops}: a table of routes (family as the
// kernel's AF_INET/AF_INET6) and one of the paths of multipath routes, each naming its route
// by row number.
Napi::Value Routes(const Napi::CallbackInfo& info) {
  auto ns = NetnsArg(info, 0);
  int family = static_cast<int>(IntArg(info, 1, "family"));
  uint32_t table = static_cast<uint32_t>(IntArg(info, 2, "table"));
  return DumpTables<rtnl::Route, 2>(
      info.Env(), "ember-ga:netRoutes",
      [ns, family, table](std::vector<rtnl::Route>* out) { return rtnl::DumpRoutes(ns, family, table, out); },
      [](std::array<Table, 2>& t, const rtnl::Route& r, size_t i) {
        t[0].Str("dst", r.dst), t[0].Str("gateway", r.gateway), t[0].Str("prefsrc", r.prefsrc);
        t[0].Bytes("ifname", r.ifname);
        t[0].Num("family", r.family), t[0].Num("dstLen", r.dst_len), t[0].Num("oif", r.oif);
        t[0].Num("scope", r.scope), t[0].Num("table", r.table), t[0].Num("protocol", r.protocol);
        t[0].Num("type", r.type), t[0].Num("metric", r.priority);
        t[0].EndRow();
        for (const rtnl::NextHop& h : r.nexthops) {
          t[1].Bytes("ifname", h.ifname), t[1].Str("gateway", h.gateway);
          t[1].Num("route", static_cast<double>(i));
          t[1].EndRow();
        }
      },
      [](Napi::Env env, const std::array<Table, 2>& t) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("routes", t[0].ToJs(env));
        o.Set("nexthops", t[1].ToJs(env));
        return o;
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
      info.Env(), "ember-ga:netSetLinkUp", [=] { return ToSysError(rtnl::SetLinkUp(ns, ifname, up)); }, nullptr);
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
