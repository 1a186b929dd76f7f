// NETLINK_ROUTE client: see rtnl.h. The helpers come first (socket, request building, attribute
// parsing, the reply walker); every operation below them is a few lines built from those.
#include "rtnl.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <unordered_map>

namespace ember {
namespace rtnl {
namespace {

constexpr size_t kRecvBuffer = 64 * 1024;  // the kernel fills at most 32 KiB per dump message
constexpr int kSocketBuffer = 1024 * 1024;
constexpr int kDumpRetries = 10;
constexpr int kConfirmAttempts = 25;  // ~200 ms of changes that never pause, then EAGAIN
constexpr int kReceiveTimeoutSeconds = 10;

// ---- Requests ---------------------------------------------------------------------------------

// A request: nlmsghdr, the family header (ifinfomsg, ifaddrmsg, rtmsg) and attributes.
class Request {
 public:
  template <typename Body>
  Request(uint16_t type, uint16_t flags, const Body& body) {
    memset(buf_, 0, sizeof(buf_));
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = flags;
    hdr()->nlmsg_len = NLMSG_LENGTH(sizeof(Body));
    memcpy(NLMSG_DATA(hdr()), &body, sizeof(Body));
  }

  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }

  // addattr_l: appends one attribute; a request that would overflow is marked and fails on send.
  void Add(uint16_t type, const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    size_t rta_len = RTA_LENGTH(len);
    if (at + RTA_ALIGN(rta_len) > sizeof(buf_)) {
      overflow_ = true;
      return;
    }
    auto* rta = reinterpret_cast<rtattr*>(buf_ + at);
    rta->rta_type = type;
    rta->rta_len = static_cast<unsigned short>(rta_len);
    if (len) memcpy(RTA_DATA(rta), data, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + RTA_ALIGN(rta_len));
  }
  void AddU32(uint16_t type, uint32_t v) { Add(type, &v, sizeof(v)); }
  void AddString(uint16_t type, const std::string& s) { Add(type, s.c_str(), s.size() + 1); }

  bool overflow() const { return overflow_; }

 private:
  alignas(nlmsghdr) char buf_[1024];
  bool overflow_ = false;
};

// ---- Replies ----------------------------------------------------------------------------------

// parse_rtattr: attributes indexed by type; types above max are ignored.
template <size_t N>
void ParseAttrs(const rtattr* (&tb)[N], const rtattr* rta, int len) {
  for (auto& t : tb) t = nullptr;
  for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type < N && tb[rta->rta_type] == nullptr) tb[rta->rta_type] = rta;
  }
}

template <typename Body, size_t N>
void ParseMessage(const rtattr* (&tb)[N], const nlmsghdr* n) {
  const char* start = reinterpret_cast<const char*>(NLMSG_DATA(n)) + NLMSG_ALIGN(sizeof(Body));
  int len = static_cast<int>(n->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(Body)));
  ParseAttrs(tb, reinterpret_cast<const rtattr*>(start), len < 0 ? 0 : len);
}

uint32_t AttrU32(const rtattr* a) {
  uint32_t v = 0;
  if (a && RTA_PAYLOAD(a) >= sizeof(v)) memcpy(&v, RTA_DATA(a), sizeof(v));
  return v;
}

std::string AttrString(const rtattr* a) {
  if (!a) return "";
  const char* s = static_cast<const char*>(RTA_DATA(a));
  return std::string(s, strnlen(s, RTA_PAYLOAD(a)));
}

// An address of `family` at data (len bytes there) as text; "" when it is not one.
std::string IpText(int family, const void* data, size_t len) {
  size_t want = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
  if (want == 0 || len < want) return "";
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(family, data, text, sizeof(text))) return "";
  return text;
}

std::string AttrIp(int family, const rtattr* a) {
  return a ? IpText(family, RTA_DATA(a), RTA_PAYLOAD(a)) : "";
}

std::string AttrHex(const rtattr* a) {
  if (!a) return "";
  const auto* p = static_cast<const unsigned char*>(RTA_DATA(a));
  size_t n = RTA_PAYLOAD(a);
  std::string s;
  s.reserve(n * 3);
  char b[4];
  for (size_t i = 0; i < n; i++) {
    snprintf(b, sizeof(b), i ? ":%02x" : "%02x", p[i]);
    s += b;
  }
  return s;
}

// ---- The socket -------------------------------------------------------------------------------

// Enters the network namespace at `path` for as long as it lives (on this thread only), then
// returns to the one it came from.
class NetnsGuard {
 public:
  int Enter(const std::string& path) {
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) return errno;
    self_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_ < 0) {
      int e = errno;
      close(target);
      return e;
    }
    int r = setns(target, CLONE_NEWNET);
    int e = errno;
    close(target);
    if (r != 0) {
      close(self_);
      self_ = -1;
      return e;
    }
    return 0;
  }
  ~NetnsGuard() {
    if (self_ < 0) return;
    // A thread-pool thread left in another namespace would run later work there: never go on.
    if (setns(self_, CLONE_NEWNET) != 0) {
      perror("ember-ga: cannot return to the original network namespace");
      abort();
    }
    close(self_);
  }

 private:
  int self_ = -1;
};

using MessageFn = std::function<void(const nlmsghdr*)>;

class Socket {
 public:
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }

  // rtnl_open. The socket is created inside `ns` and stays bound to it, so the thread leaves
  // the namespace again before any request is sent.
  Status Open(const Netns& ns) {
    if (!ns.empty()) {
      NetnsGuard guard;
      std::string path = ns[0] == '/' ? ns : "/run/netns/" + ns;
      if (int e = guard.Enter(path)) return Status::Of(e, path, "setns");
      return OpenHere();
    }
    return OpenHere();
  }

  // rtnl_dump_request + rtnl_dump_filter: every message of a (multi-part) dump goes to fn. A
  // dump the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed meanwhile) is read
  // to its end and `*interrupted` is set, so the caller can start over.
  Status Dump(Request& req, const MessageFn& fn, bool* interrupted) {
    req.hdr()->nlmsg_flags |= NLM_F_DUMP;
    return Exchange(req, fn, interrupted);
  }

  // rtnl_talk: a request with NLM_F_ACK; the kernel's error (or 0) is the result, and fn (if
  // any) sees a reply message such as the RTM_NEWLINK answering RTM_GETLINK.
  Status Talk(Request& req, const MessageFn& fn = nullptr) {
    req.hdr()->nlmsg_flags |= NLM_F_ACK;
    return Exchange(req, fn, nullptr);
  }

 private:
  Status OpenHere() {
    fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd_ < 0) return Status::Of(errno, "", "socket");
    int size = kSocketBuffer;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    int one = 1;
    setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));  // best effort
    // The kernel always answers; should it not, a thread-pool thread must not wait forever.
    timeval timeout{kReceiveTimeoutSeconds, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) return Status::Of(errno);
    socklen_t len = sizeof(local);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) return Status::Of(errno);
    port_ = local.nl_pid;
    buf_.resize(kRecvBuffer);
    return Status{};
  }

  Status Send(Request& req) {
    if (req.overflow()) return Status::Of(EMSGSIZE, "request too large");
    req.hdr()->nlmsg_seq = ++seq_;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    for (;;) {
      ssize_t n = sendto(fd_, req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                         sizeof(kernel));
      if (n >= 0) return Status{};
      if (errno != EINTR) return Status::Of(errno);
    }
  }

  // One datagram, sized first with MSG_PEEK | MSG_TRUNC so nothing is ever cut off.
  Status Receive(ssize_t* len) {
    for (;;) {
      ssize_t n = recv(fd_, nullptr, 0, MSG_PEEK | MSG_TRUNC);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::Of(ETIMEDOUT, "no answer from the kernel");
      if (n < 0) return Status::Of(errno);
      if (static_cast<size_t>(n) > buf_.size()) buf_.resize(static_cast<size_t>(n));
      n = recv(fd_, buf_.data(), buf_.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::Of(errno);
      *len = n;
      return Status{};
    }
  }

  // The extended ACK message (NLMSGERR_ATTR_MSG) that follows an nlmsgerr, if present.
  static std::string AckMessage(const nlmsghdr* n) {
    if (!(n->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(n));
    size_t off = sizeof(nlmsgerr);
    if (!(n->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
    int len = static_cast<int>(n->nlmsg_len) - static_cast<int>(NLMSG_HDRLEN + off);
    if (len <= 0) return "";
    const rtattr* tb[NLMSGERR_ATTR_MAX + 1];
    ParseAttrs(tb, reinterpret_cast<const rtattr*>(static_cast<const char*>(NLMSG_DATA(n)) + off), len);
    return AttrString(tb[NLMSGERR_ATTR_MSG]);
  }

  // Sends req and walks the answers until NLMSG_DONE, the ACK or an error.
  Status Exchange(Request& req, const MessageFn& fn, bool* interrupted) {
    if (Status s = Send(req)) return s;
    const uint32_t seq = req.hdr()->nlmsg_seq;
    if (interrupted) *interrupted = false;
    for (;;) {
      ssize_t len;
      if (Status s = Receive(&len)) return s;
      for (auto* n = reinterpret_cast<const nlmsghdr*>(buf_.data()); NLMSG_OK(n, static_cast<size_t>(len));
           n = NLMSG_NEXT(n, len)) {
        if (n->nlmsg_pid != port_ || n->nlmsg_seq != seq) continue;  // not an answer to us
        if (n->nlmsg_flags & NLM_F_DUMP_INTR && interrupted) *interrupted = true;
        if (n->nlmsg_type == NLMSG_DONE) {
          // A dump's trailing error (e.g. the dump failed half way) travels in DONE's payload.
          int err = 0;
          if (n->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) memcpy(&err, NLMSG_DATA(n), sizeof(int));
          return err < 0 ? Status::Of(-err) : Status{};
        }
        if (n->nlmsg_type == NLMSG_ERROR) {
          if (n->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return Status::Of(EBADMSG, "truncated ACK");
          const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(n));
          if (e->error == 0) return Status{};  // the ACK
          return Status::Of(-e->error, AckMessage(n));
        }
        if (fn) fn(n);
      }
    }
  }

  int fd_ = -1;
  uint32_t port_ = 0;
  uint32_t seq_ = 0;
  std::vector<char> buf_;
};

// A dump into a vector, started over (up to kDumpRetries times) when the kernel reports it
// interrupted; `parse` turns one message into an element or skips it (returns false).
template <typename T, typename Body, typename Parse>
Status DumpInto(const Netns& ns, uint16_t type, const Body& body, std::vector<T>* out, Parse parse) {
  Socket sock;
  if (Status s = sock.Open(ns)) return s;
  for (int attempt = 0; attempt < kDumpRetries; attempt++) {
    if (attempt) usleep(1000 * attempt);  // let a burst of changes pass (worker thread only)
    out->clear();
    Request req(type, NLM_F_REQUEST, body);
    bool interrupted = false;
    Status s = sock.Dump(req, [&](const nlmsghdr* n) {
      T item;
      if (parse(n, &item)) out->push_back(std::move(item));
    }, &interrupted);
    if (s) return s;
    if (!interrupted) return Status{};
  }
  return Status::Of(EAGAIN, "the table kept changing during the dump");
}

bool ParseLink(const nlmsghdr* n, Link* l) {
  if (n->nlmsg_type != RTM_NEWLINK || n->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return false;
  const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(n));
  const rtattr* tb[IFLA_OPERSTATE + 1];
  ParseMessage<ifinfomsg>(tb, n);
  l->index = ifi->ifi_index;
  l->flags = ifi->ifi_flags;
  l->type = ifi->ifi_type;
  l->name = AttrString(tb[IFLA_IFNAME]);
  l->mtu = AttrU32(tb[IFLA_MTU]);
  l->hwaddr = AttrHex(tb[IFLA_ADDRESS]);
  l->operstate = tb[IFLA_OPERSTATE] ? *static_cast<const uint8_t*>(RTA_DATA(tb[IFLA_OPERSTATE])) : 0;
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

// An address in text form into its bytes; EINVAL when it is not one of `family`.
Status ParseIp(int family, const std::string& text, unsigned char (&bytes)[16]) {
  if (inet_pton(family, text.c_str(), bytes) != 1) return Status::Of(EINVAL, "not an address: " + text);
  return Status{};
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
    return DumpInto(ns, RTM_GETADDR, FamilyBody(&ifaddrmsg::ifa_family, family), v,
                    [family](const nlmsghdr* n, Address* a) {
                      return ParseAddress(n, a) && (!family || a->family == family);
                    });
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

Status ChangeAddress(const Netns& ns, bool add, const std::string& ifname, int family,
                     const std::string& address, int prefixlen) {
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
  Request req(add ? RTM_NEWADDR : RTM_DELADDR,
              add ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL : NLM_F_REQUEST, ifa);
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

  Request req(add ? RTM_NEWROUTE : RTM_DELROUTE,
              add ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL : NLM_F_REQUEST, rtm);
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
