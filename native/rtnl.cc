// NETLINK_ROUTE operations (rtnl.h) on the socket of rtnl_socket.h: each parses the messages
// of one dump or builds one request.
#include "rtnl.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "rtnl_socket.h"

namespace ember {
namespace rtnl {
namespace {

constexpr int kConfirmAttempts = 25;  // ~200 ms of changes that never pause, then EAGAIN

bool ParseLink(const nlmsghdr* n, Link* l) {
  if (n->nlmsg_type != RTM_NEWLINK || n->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return false;
  const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(n));
  const rtattr* tb[IFLA_STATS64 + 1];
  ParseMessage<ifinfomsg>(tb, n);
  l->index = ifi->ifi_index;
  l->flags = ifi->ifi_flags;
  l->type = ifi->ifi_type;
  l->name = AttrString(tb[IFLA_IFNAME]);
  l->mtu = AttrU32(tb[IFLA_MTU]);
  l->hwaddr = AttrHex(tb[IFLA_ADDRESS]);
  l->operstate = tb[IFLA_OPERSTATE] ? *static_cast<const uint8_t*>(RTA_DATA(tb[IFLA_OPERSTATE])) : 0;
  if (const rtattr* a = tb[IFLA_STATS64]) {
    // The struct grew over kernel versions; fields a short one lacks stay 0. The attribute is
    // only 4-byte aligned: copied out, not read in place.
    rtnl_link_stats64 st{};
    memcpy(&st, RTA_DATA(a), std::min(sizeof(st), static_cast<size_t>(RTA_PAYLOAD(a))));
    l->has_stats = true;
    l->stats = LinkStats{st.rx_bytes,   st.rx_packets, st.rx_errors,  st.rx_dropped, st.rx_missed_errors, st.tx_bytes,
                         st.tx_packets, st.tx_errors,  st.tx_dropped, st.multicast,  st.collisions};
  }
  return true;
}

bool ParseAddress(const nlmsghdr* n, Address* a) {
  if (n->nlmsg_type != RTM_NEWADDR || n->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return false;
  const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(n));
  if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return false;
  const rtattr* tb[IFA_FLAGS + 1];
  ParseMessage<ifaddrmsg>(tb, n);
  a->index = static_cast<int>(ifa->ifa_index);
  a->family = ifa->ifa_family;
  a->prefixlen = ifa->ifa_prefixlen;
  a->scope = ifa->ifa_scope;
  a->flags = tb[IFA_FLAGS] ? AttrU32(tb[IFA_FLAGS]) : ifa->ifa_flags;
  std::string address = AttrIp(a->family, tb[IFA_ADDRESS]);
  std::string local = AttrIp(a->family, tb[IFA_LOCAL]);
  a->address = local.empty() ? address : local;
  if (!local.empty() && !address.empty() && local != address) a->peer = address;
  a->label = AttrString(tb[IFA_LABEL]);
  return true;
}

// A next hop's gateway: RTA_GATEWAY in the route's family, or RTA_VIA with a family of its own.
std::string NextHopGateway(int family, const rtattr* (&tb)[RTA_MAX + 1]) {
  if (tb[RTA_GATEWAY]) return AttrIp(family, tb[RTA_GATEWAY]);
  const rtattr* via = tb[RTA_VIA];
  if (!via || RTA_PAYLOAD(via) < sizeof(rtvia)) return "";
  const auto* v = static_cast<const rtvia*>(RTA_DATA(via));
  return IpText(v->rtvia_family, v->rtvia_addr, RTA_PAYLOAD(via) - sizeof(rtvia));
}

// RTA_MULTIPATH: a sequence of rtnexthop, each followed by its own attributes.
std::vector<NextHop> ParseMultipath(int family, const rtattr* a) {
  std::vector<NextHop> hops;
  const auto* nh = static_cast<const rtnexthop*>(RTA_DATA(a));
  int len = static_cast<int>(RTA_PAYLOAD(a));
  while (len >= static_cast<int>(sizeof(rtnexthop)) && nh->rtnh_len >= sizeof(rtnexthop) && nh->rtnh_len <= len) {
    const rtattr* tb[RTA_MAX + 1];
    ParseAttrs(tb, reinterpret_cast<const rtattr*>(RTNH_DATA(nh)), nh->rtnh_len - static_cast<int>(RTNH_LENGTH(0)));
    hops.push_back(NextHop{nh->rtnh_ifindex, "", NextHopGateway(family, tb)});
    len -= RTNH_ALIGN(nh->rtnh_len);
    nh = RTNH_NEXT(nh);
  }
  return hops;
}

bool ParseRoute(const nlmsghdr* n, int family, uint32_t table, Route* r) {
  if (n->nlmsg_type != RTM_NEWROUTE || n->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return false;
  const auto* rtm = static_cast<const rtmsg*>(NLMSG_DATA(n));
  if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) return false;
  if (family && rtm->rtm_family != family) return false;
  if (rtm->rtm_flags & RTM_F_CLONED) return false;  // cache entries, not routes (as `ip route`)
  const rtattr* tb[RTA_MAX + 1];
  ParseMessage<rtmsg>(tb, n);
  r->table = tb[RTA_TABLE] ? AttrU32(tb[RTA_TABLE]) : rtm->rtm_table;
  if (table && r->table != table) return false;
  r->family = rtm->rtm_family;
  r->dst_len = rtm->rtm_dst_len;
  r->scope = rtm->rtm_scope;
  r->protocol = rtm->rtm_protocol;
  r->type = rtm->rtm_type;
  r->priority = AttrU32(tb[RTA_PRIORITY]);
  r->oif = static_cast<int>(AttrU32(tb[RTA_OIF]));
  r->dst = AttrIp(r->family, tb[RTA_DST]);
  r->gateway = NextHopGateway(r->family, tb);  // RTA_GATEWAY, or RTA_VIA (an IPv4 route via IPv6)
  r->prefsrc = AttrIp(r->family, tb[RTA_PREFSRC]);
  if (tb[RTA_MULTIPATH]) r->nexthops = ParseMultipath(r->family, tb[RTA_MULTIPATH]);
  return true;
}

// rtmsg / ifaddrmsg / ifinfomsg carrying just a family: the body of a dump request.
template <typename Body, typename Field>
Body FamilyBody(Field Body::*field, int family) {
  Body b{};
  b.*field = static_cast<Field>(family);
  return b;
}

// The index of a link by name (RTM_GETLINK with IFLA_IFNAME); ENODEV when there is none.
Status LinkIndex(Socket& sock, const std::string& ifname, int* index) {
  ifinfomsg ifi{};
  Request req(RTM_GETLINK, NLM_F_REQUEST, ifi);
  req.AddString(IFLA_IFNAME, ifname);
  uint32_t mask = RTEXT_FILTER_SKIP_STATS;
  req.AddU32(IFLA_EXT_MASK, mask);
  *index = 0;
  Status s = sock.Talk(req, [&](const nlmsghdr* n) {
    if (n->nlmsg_type == RTM_NEWLINK && n->nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg)))
      *index = static_cast<const ifinfomsg*>(NLMSG_DATA(n))->ifi_index;
  });
  if (!s && *index == 0) return Status::Of(ENODEV);
  return s;
}

size_t AddressLength(int family) { return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0; }

// An address in text form into its bytes. lib/net checked it already: EINVAL, with no words of
// its own, only if that check and inet_pton ever disagree.
Status ParseIp(int family, const std::string& text, unsigned char (&bytes)[16]) {
  return inet_pton(family, text.c_str(), bytes) == 1 ? Status{} : Status::Of(EINVAL);
}

}  // namespace

Status DumpLinks(const Netns& ns, std::vector<Link>* out) {
  return DumpInto(ns, RTM_GETLINK, FamilyBody(&ifinfomsg::ifi_family, AF_UNSPEC), out, ParseLink);
}

// In namespace rtnl (not the anonymous one) so std::vector's == finds it.
static bool operator==(const Address& x, const Address& y) {
  return x.index == y.index && x.family == y.family && x.prefixlen == y.prefixlen && x.scope == y.scope &&
         x.flags == y.flags && x.address == y.address && x.peer == y.peer && x.label == y.label;
}

Status DumpAddresses(const Netns& ns, int family, std::vector<Address>* out) {
  // Address dumps resume by position in each link's address list, and the kernel does not flag
  // every change that shifts it (an address added or removed while the last part is filled).
  // So a dump counts only when the next one agrees with it: addresses are few, this is cheap.
  auto dump = [&](std::vector<Address>* v) {
    return DumpInto(
        ns, RTM_GETADDR, FamilyBody(&ifaddrmsg::ifa_family, family), v,
        [family](const nlmsghdr* n, Address* a) { return ParseAddress(n, a) && (!family || a->family == family); });
  };
  if (Status s = dump(out)) return s;
  std::vector<Address> again;
  for (int attempt = 1; attempt <= kConfirmAttempts; attempt++) {
    if (Status s = dump(&again)) return s;
    if (again == *out) return Status{};
    out->swap(again);
    usleep(1000 * std::min(attempt, 10));  // let a burst of changes pass
  }
  return Status::Of(EAGAIN, "the addresses kept changing during the dump");
}

Status DumpRoutes(const Netns& ns, int family, uint32_t table, std::vector<Route>* out) {
  Status s = DumpInto(ns, RTM_GETROUTE, FamilyBody(&rtmsg::rtm_family, family), out,
                      [family, table](const nlmsghdr* n, Route* r) { return ParseRoute(n, family, table, r); });
  if (s) return s;
  std::vector<Link> links;
  if (Status e = DumpLinks(ns, &links)) return e;
  std::unordered_map<int, const std::string*> names;
  for (const Link& l : links) names[l.index] = &l.name;
  auto name = [&names](int index) {
    auto it = names.find(index);
    return it == names.end() ? std::string() : *it->second;
  };
  for (Route& r : *out) {
    r.ifname = name(r.oif);
    for (NextHop& h : r.nexthops) h.ifname = name(h.oif);
  }
  return Status{};
}

Status ChangeAddress(const Netns& ns, bool add, const std::string& ifname, int family, const std::string& address,
                     int prefixlen) {
  unsigned char bytes[16];
  if (Status s = ParseIp(family, address, bytes)) return s;
  Socket sock;
  if (Status s = sock.Open(ns)) return s;
  int index;
  if (Status s = LinkIndex(sock, ifname, &index)) return s;
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<uint8_t>(family);
  ifa.ifa_prefixlen = static_cast<uint8_t>(prefixlen);
  ifa.ifa_index = static_cast<uint32_t>(index);
  // As `ip address add`: loopback addresses get host scope, the rest universe.
  ifa.ifa_scope = family == AF_INET && bytes[0] == 127 ? uint8_t{RT_SCOPE_HOST} : uint8_t{RT_SCOPE_UNIVERSE};
  Request req(add ? RTM_NEWADDR : RTM_DELADDR, add ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL : NLM_F_REQUEST, ifa);
  req.Add(IFA_LOCAL, bytes, AddressLength(family));
  req.Add(IFA_ADDRESS, bytes, AddressLength(family));
  if (add && family == AF_INET && prefixlen < 31) {
    // The subnet's broadcast address, as `ip address add ... brd +` (and Go's netlink.AddrAdd)
    // set it: without it the kernel adds no broadcast route for the subnet.
    uint32_t host_mask = prefixlen == 0 ? 0xffffffffu : (1u << (32 - prefixlen)) - 1;
    uint32_t brd;
    memcpy(&brd, bytes, 4);
    brd = htonl(ntohl(brd) | host_mask);
    req.Add(IFA_BROADCAST, &brd, 4);
  }
  return sock.Talk(req);
}

Status SetLinkUp(const Netns& ns, const std::string& ifname, bool up) {
  Socket sock;
  if (Status s = sock.Open(ns)) return s;
  ifinfomsg ifi{};
  ifi.ifi_flags = up ? IFF_UP : 0;
  ifi.ifi_change = IFF_UP;
  Request req(RTM_NEWLINK, NLM_F_REQUEST, ifi);
  req.AddString(IFLA_IFNAME, ifname);  // the kernel finds the link by name (ENODEV if none)
  return sock.Talk(req);
}

Status ChangeRoute(const Netns& ns, bool add, const RouteSpec& spec) {
  const int family = spec.family;
  const size_t alen = AddressLength(family);
  if (!alen) return Status::Of(EAFNOSUPPORT);
  unsigned char dst[16] = {}, gw[16], src[16];
  if (!spec.dst.empty()) {
    if (Status s = ParseIp(family, spec.dst, dst)) return s;
  }
  if (!spec.gateway.empty()) {
    if (Status s = ParseIp(family, spec.gateway, gw)) return s;
  }
  if (!spec.prefsrc.empty()) {
    if (Status s = ParseIp(family, spec.prefsrc, src)) return s;
  }
  Socket sock;
  if (Status s = sock.Open(ns)) return s;
  int oif = 0;
  if (!spec.ifname.empty()) {
    if (Status s = LinkIndex(sock, spec.ifname, &oif)) return s;
  }

  // iproute_modify's defaults: add = boot protocol, unicast, link scope when there is no
  // gateway (IPv4); del = any protocol, type and scope unless given.
  rtmsg rtm{};
  rtm.rtm_family = static_cast<uint8_t>(family);
  rtm.rtm_dst_len = static_cast<uint8_t>(spec.dst_len);
  rtm.rtm_table = spec.table < 256 ? static_cast<uint8_t>(spec.table) : uint8_t{RT_TABLE_UNSPEC};
  if (add) {
    rtm.rtm_protocol = RTPROT_BOOT;
    rtm.rtm_type = RTN_UNICAST;
  }
  if (spec.scope >= 0) {
    rtm.rtm_scope = static_cast<uint8_t>(spec.scope);
  } else if (!add) {
    rtm.rtm_scope = RT_SCOPE_NOWHERE;
  } else {
    rtm.rtm_scope = family == AF_INET && spec.gateway.empty() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  }

  Request req(add ? RTM_NEWROUTE : RTM_DELROUTE, add ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL : NLM_F_REQUEST, rtm);
  if (spec.table >= 256) req.AddU32(RTA_TABLE, spec.table);
  if (!spec.dst.empty() && spec.dst_len > 0) req.Add(RTA_DST, dst, alen);
  if (!spec.gateway.empty()) req.Add(RTA_GATEWAY, gw, alen);
  if (!spec.prefsrc.empty()) req.Add(RTA_PREFSRC, src, alen);
  if (oif) req.AddU32(RTA_OIF, static_cast<uint32_t>(oif));
  if (spec.metric) req.AddU32(RTA_PRIORITY, spec.metric);
  return sock.Talk(req);
}

}  // namespace rtnl
}  // namespace ember
