// The NETLINK_ROUTE socket under rtnl.cc, in the manner of iproute2's lib/libnetlink.c: a
// request builder, attribute parsing, and a socket that sends a request and walks the answers
// (dump with a per-message callback, talk = request + ACK). Plain C++, no N-API types.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "rtnl.h"

namespace ember {
namespace rtnl {

constexpr int kDumpRetries = 10;

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

uint32_t AttrU32(const rtattr* a);
std::string AttrString(const rtattr* a);
// An address of `family` at data (len bytes there) as text; "" when it is not one.
std::string IpText(int family, const void* data, size_t len);
std::string AttrIp(int family, const rtattr* a);
// "aa:bb:cc:dd:ee:ff"
std::string AttrHex(const rtattr* a);

using MessageFn = std::function<void(const nlmsghdr*)>;

class Socket {
 public:
  ~Socket();

  // rtnl_open. The socket is created inside `ns` and stays bound to it, so the thread leaves
  // the namespace again before any request is sent.
  Status Open(const Netns& ns);

  // rtnl_dump_request + rtnl_dump_filter: every message of a (multi-part) dump goes to fn. A
  // dump the kernel marks interrupted (NLM_F_DUMP_INTR: the table changed meanwhile) is read
  // to its end and `*interrupted` is set, so the caller can start over.
  Status Dump(Request& req, const MessageFn& fn, bool* interrupted);

  // rtnl_talk: a request with NLM_F_ACK; the kernel's error (or 0) is the result, and fn (if
  // any) sees a reply message such as the RTM_NEWLINK answering RTM_GETLINK.
  Status Talk(Request& req, const MessageFn& fn = nullptr);

 private:
  Status OpenHere();
  Status Send(Request& req);

  // One datagram, sized first with MSG_PEEK | MSG_TRUNC so nothing is ever cut off.
  Status Receive(ssize_t* len);

  // The extended ACK message (NLMSGERR_ATTR_MSG) that follows an nlmsgerr, if present.
  static std::string AckMessage(const nlmsghdr* n);

  // Sends req and walks the answers until NLMSG_DONE, the ACK or an error.
  Status Exchange(Request& req, const MessageFn& fn, bool* interrupted);

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
    Status s = sock.Dump(
        req,
        [&](const nlmsghdr* n) {
          T item;
          if (parse(n, &item)) out->push_back(std::move(item));
        },
        &interrupted);
    if (s) return s;
    if (!interrupted) return Status{};
  }
  return Status::Of(EAGAIN, "the table kept changing during the dump");
}

}  // namespace rtnl
}  // namespace ember
