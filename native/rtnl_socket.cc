#include "rtnl_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace ember {
namespace rtnl {
namespace {

constexpr size_t kRecvBuffer = 64 * 1024;  // the kernel fills at most 32 KiB per dump message
constexpr int kSocketBuffer = 1024 * 1024;
constexpr int kReceiveTimeoutSeconds = 10;

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

}  // namespace

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

std::string IpText(int family, const void* data, size_t len) {
  size_t want = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
  if (want == 0 || len < want) return "";
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(family, data, text, sizeof(text))) return "";
  return text;
}

std::string AttrIp(int family, const rtattr* a) { return a ? IpText(family, RTA_DATA(a), RTA_PAYLOAD(a)) : ""; }

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

Socket::~Socket() {
  if (fd_ >= 0) close(fd_);
}

Status Socket::Open(const Netns& ns) {
  if (!ns.empty()) {
    NetnsGuard guard;
    std::string path = ns[0] == '/' ? ns : "/run/netns/" + ns;
    if (int e = guard.Enter(path)) return Status::Of(e, path, "setns");
    return OpenHere();
  }
  return OpenHere();
}

Status Socket::Dump(Request& req, const MessageFn& fn, bool* interrupted) {
  req.hdr()->nlmsg_flags |= NLM_F_DUMP;
  return Exchange(req, fn, interrupted);
}

Status Socket::Talk(Request& req, const MessageFn& fn) {
  req.hdr()->nlmsg_flags |= NLM_F_ACK;
  return Exchange(req, fn, nullptr);
}

Status Socket::OpenHere() {
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

Status Socket::Send(Request& req) {
  if (req.overflow()) return Status::Of(EMSGSIZE, "request too large");
  req.hdr()->nlmsg_seq = ++seq_;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = sendto(fd_, req.hdr(), req.hdr()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
    if (n >= 0) return Status{};
    if (errno != EINTR) return Status::Of(errno);
  }
}

Status Socket::Receive(ssize_t* len) {
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

std::string Socket::AckMessage(const nlmsghdr* n) {
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

Status Socket::Exchange(Request& req, const MessageFn& fn, bool* interrupted) {
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

}  // namespace rtnl
}  // namespace ember
