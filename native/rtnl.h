// A NETLINK_ROUTE client on the Linux UAPI headers, in the manner of iproute2's lib/libnetlink.c:
// the socket helpers of rtnl_socket.h (open, dump with a per-message callback, talk = request +
// ACK, add attribute, parse attributes) carry every operation. Plain C++: no N-API types here;
// the glue in netlink.cc converts. Every function returns 0 or a positive errno and fills Status::detail
// with the kernel's extended-ACK message when it sent one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ember {
namespace rtnl {

struct Status {
  int err = 0;
  std::string detail;   // the kernel's extended ACK message, or what `syscall` was about
  std::string syscall;  // "" for a netlink request, else the call that failed ("setns")
  explicit operator bool() const { return err != 0; }
  static Status Of(int err, std::string detail = "", std::string syscall = "") {
    return Status{err, std::move(detail), std::move(syscall)};
  }
};

// A link's counters (IFLA_STATS64: what /proc/net/dev and `ip -s link` print).
struct LinkStats {
  uint64_t rx_bytes = 0, rx_packets = 0, rx_errors = 0, rx_dropped = 0, rx_missed = 0;
  uint64_t tx_bytes = 0, tx_packets = 0, tx_errors = 0, tx_dropped = 0;
  uint64_t multicast = 0, collisions = 0;
};

struct Link {
  int index = 0;
  std::string name;
  uint32_t flags = 0;  // IFF_*
  uint16_t type = 0;   // ARPHRD_*
  uint32_t mtu = 0;
  std::string hwaddr;  // "aa:bb:cc:dd:ee:ff", "" when the link has none
  uint8_t operstate = 0;
  bool has_stats = false;  // the kernel sent IFLA_STATS64
  LinkStats stats;
};

struct Address {
  int index = 0;
  uint8_t family = 0;
  uint8_t prefixlen = 0;
  uint8_t scope = 0;
  uint32_t flags = 0;   // IFA_F_*
  std::string address;  // IFA_LOCAL when present, else IFA_ADDRESS (what `ip` prints as local)
  std::string peer;     // IFA_ADDRESS when it differs from IFA_LOCAL (point-to-point)
  std::string label;
};

// One path of a multipath route (RTA_MULTIPATH), as `ip route` prints each "nexthop".
struct NextHop {
  int oif = 0;
  std::string ifname;   // name of oif, "" when none
  std::string gateway;  // RTA_GATEWAY, or RTA_VIA's address (an IPv4 route via an IPv6 gateway)
};

struct Route {
  uint8_t family = 0;
  uint8_t dst_len = 0;
  uint8_t scope = 0;
  uint8_t protocol = 0;
  uint8_t type = 0;
  uint32_t table = 0;
  uint32_t priority = 0;
  int oif = 0;
  std::string ifname;  // name of oif, "" when none
  std::string dst;     // "" for a default route
  std::string gateway;
  std::string prefsrc;
  std::vector<NextHop> nexthops;  // a multipath route's paths (its oif and gateway are then unset)
};

// Where an operation runs: "" for the caller's network namespace, a name under /run/netns, or
// an absolute path to a namespace file (/proc/PID/ns/net).
using Netns = std::string;

// family: 0 (both), AF_INET or AF_INET6. table: 0 for every table.
Status DumpLinks(const Netns& ns, std::vector<Link>* out);
Status DumpAddresses(const Netns& ns, int family, std::vector<Address>* out);
Status DumpRoutes(const Netns& ns, int family, uint32_t table, std::vector<Route>* out);

// RTM_NEWADDR (create, exclusive) or RTM_DELADDR of address/prefixlen on the named link.
Status ChangeAddress(const Netns& ns, bool add, const std::string& ifname, int family, const std::string& address,
                     int prefixlen);

// RTM_NEWLINK changing only IFF_UP.
Status SetLinkUp(const Netns& ns, const std::string& ifname, bool up);

struct RouteSpec {
  int family = 0;
  std::string dst;  // "" with dst_len 0: default route
  int dst_len = 0;
  std::string gateway;
  std::string prefsrc;
  std::string ifname;  // "" for none
  int scope = -1;      // -1: what `ip route` picks (add: link without gateway, else universe; del: any)
  uint32_t table = 254;
  uint32_t metric = 0;
};

// RTM_NEWROUTE (create, exclusive) or RTM_DELROUTE, like `ip route add|del`.
Status ChangeRoute(const Netns& ns, bool add, const RouteSpec& spec);

}  // namespace rtnl
}  // namespace ember
