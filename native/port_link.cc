#include "port_link.h"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <thread>

namespace ember {
namespace {

constexpr uint64_t kPortTag = 1;
constexpr uint64_t kDirTag = 2;

}  // namespace

void PortLink::Close() {
  if (epoll_fd_ < 0 && inotify_fd_ < 0) return;
  int fds[2] = {inotify_fd_, epoll_fd_};
  inotify_fd_ = epoll_fd_ = armed_fd_ = -1;
  auto closeAll = [fds] {
    for (int fd : fds)
      if (fd >= 0) close(fd);
  };
  try {
    std::thread(closeAll).detach();
  } catch (const std::system_error&) {
    closeAll();  // no thread to be had: here, however long it takes
  }
}

int PortLink::Open(const std::string& path) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return errno;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) return errno;  // the port's own wake-ups are still heard
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kDirTag;
  if (inotify_add_watch(inotify_fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR) < 0 ||
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, inotify_fd_, &ev) != 0) {
    int err = errno;
    close(inotify_fd_);  // no watch in it: nothing to wait for
    inotify_fd_ = -1;
    return err;
  }
  return 0;
}

void PortLink::Arm(int port_fd) {
  if (epoll_fd_ < 0 || armed_fd_ == port_fd) return;
  Disarm(armed_fd_);
  // Edge-triggered: reported when the port's waiters are woken (the host is back, data came),
  // not for as long as the hang-up lasts.
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = kPortTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, port_fd, &ev) == 0) armed_fd_ = port_fd;
}

void PortLink::Disarm(int port_fd) {
  if (epoll_fd_ < 0 || port_fd < 0 || armed_fd_ != port_fd) return;
  struct epoll_event ev = {};
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, port_fd, &ev);
  armed_fd_ = -1;
}

bool PortLink::Drain() {
  if (epoll_fd_ < 0) return false;
  bool news = false;
  struct epoll_event evs[4];
  int n = epoll_wait(epoll_fd_, evs, 4, 0);
  for (int i = 0; i < n; i++) {
    if (evs[i].data.u64 == kPortTag) {
      news = true;
      continue;
    }
    // inotify: only a name that is the port's own, made or changed, matters.
    alignas(struct inotify_event) char buf[4096];
    for (;;) {
      ssize_t len = read(inotify_fd_, buf, sizeof buf);
      if (len <= 0) break;
      for (char* p = buf; p < buf + len;) {
        auto* e = reinterpret_cast<struct inotify_event*>(p);
        if ((e->mask & IN_Q_OVERFLOW) || (e->len > 0 && name_ == e->name)) news = true;
        p += sizeof(struct inotify_event) + e->len;
      }
    }
  }
  return news;
}

}  // namespace ember
