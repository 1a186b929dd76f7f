// What wakes the port driver while the host is away, so that a host coming back is served at
// once instead of at the driver's next backoff check (up to 500 ms later): plain C++, no N-API
// types (port.cc polls fd() from the event loop and checks the link when Drain() says so).
//
// Two things can bring the host back. A virtio port's host reconnects on the same device: the
// kernel wakes the port's waiters (VIRTIO_CONSOLE_PORT_OPEN), which an edge-triggered epoll
// registration of the port's fd hears once, where a level-triggered one would report the
// hang-up over and over. Or the path comes to name another device (a new pty behind the same
// symlink, a port hot-plugged anew): an inotify watch on the path's directory hears the name
// being made. Both sit in an epoll set of their own, whose fd is readable while either has
// news; Drain() takes the news, so nothing spins however long the host stays away.
//
// The set and the watch last as long as the port: closing an inotify instance waits for an RCU
// grace period (10-100 ms), which would delay the very reconnect it reports.
#pragma once

#include <string>

namespace ember {

class PortLink {
 public:
  PortLink() = default;
  ~PortLink() { Close(); }
  PortLink(const PortLink&) = delete;
  PortLink& operator=(const PortLink&) = delete;

  // Makes the set and watches the directory of `path`: 0, or the errno of what failed (then
  // nothing is watched, and the driver's backoff timer alone finds the host).
  int Open(const std::string& path);
  // The fd to poll for readability (-1 when Open failed).
  int fd() const { return epoll_fd_; }
  // The host is away: report the wake-ups of `port_fd` too. Disarm() before closing it.
  void Arm(int port_fd);
  void Disarm(int port_fd);
  // Takes what made fd() readable; true when it may concern the port (check the link now).
  bool Drain();
  // Lets go of the set and the watch, closing them on a thread of their own (see above).
  void Close();

 private:
  int epoll_fd_ = -1;
  int inotify_fd_ = -1;
  int armed_fd_ = -1;
  std::string name_;  // the path's last element: only events about it matter
};

}  // namespace ember
