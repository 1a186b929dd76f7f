#include "port_writer.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace ember {

int PortWriter::Start(int fd) {
  fd_ = fd;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return errno;
  thread_ = std::thread([this] { Loop(); });
  return 0;
}

void PortWriter::Stop() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    Wake();
    thread_.join();
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
  fd_ = -1;
  std::lock_guard<std::mutex> lock(mu_);
  DropQueue();
}

// With mu_ held, and the writer not in a write (in_write_ false, or the thread gone).
void PortWriter::DropQueue() {
  for (Chunk& c : queue_)
    if (c.keep != nullptr) released_.push_back(c.keep);
  queue_.clear();
  queued_ = 0;
  front_off_ = 0;
}

PortWriter::WriteResult PortWriter::Write(const char* p, size_t len, bool direct, void* keep) {
  WriteResult r{0, false, false};
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_.empty() && direct) {
    // Fast path: straight from the caller's bytes; only what the kernel did not take is queued.
    // The writer is idle (its queue is empty), so the fd is ours for this write.
    while (len > 0) {
      ssize_t n = write(fd_, p, len);
      if (n > 0) {
        p += n;
        len -= n;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        r.failed = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
        break;
      }
    }
  }
  if (len > 0) {
    // Also after a failed write: the answer's rest waits for the link to come back (a passing
    // error must not leave half a line on the wire with nothing to finish it).
    Chunk& c = queue_.emplace_back();
    c.len = len;
    if (keep != nullptr) {
      c.kept = p;
      c.keep = keep;
      r.kept = true;
    } else {
      c.own.assign(p, len);
      copied_ += len;
    }
    queued_ += len;
    cv_.notify_one();
  }
  r.queued = queued_.load();
  return r;
}

void PortWriter::LinkDown() {
  std::lock_guard<std::mutex> lock(mu_);
  link_up_ = false;
}

void PortWriter::LinkUp() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!link_up_) link_gen_++;  // a new connection: hang-ups seen on the old one are old news
  link_up_ = true;
  cv_.notify_one();
}

// With mu_ held: waits until the writer is out of its write (its wake-up ends a wait in poll()),
// and keeps it from starting the next one until Release(). Without the hold, a writer whose port
// still takes nothing went straight back into poll() before this thread had the lock again.
void PortWriter::Hold(std::unique_lock<std::mutex>& lock) {
  held_ = true;
  Wake();
  cv_.wait(lock, [this] { return !in_write_; });
}

void PortWriter::Release() {
  held_ = false;
  cv_.notify_all();
}

bool PortWriter::SwapFd(int fd) {
  std::unique_lock<std::mutex> lock(mu_);
  Hold(lock);
  fd_ = fd;
  bool had = !queue_.empty();
  DropQueue();  // answers meant for the old peer
  Release();
  return had;
}

bool PortWriter::Discard() {
  std::unique_lock<std::mutex> lock(mu_);
  Hold(lock);
  bool had = !queue_.empty();
  DropQueue();
  Release();
  return had;
}

int PortWriter::TakeEvents(bool* current) {
  std::lock_guard<std::mutex> lock(mu_);
  int what = pending_events_;
  pending_events_ = 0;
  *current = hup_gen_ == link_gen_;
  return what;
}

std::vector<void*> PortWriter::TakeReleased() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<void*> out;
  out.swap(released_);
  return out;
}

void PortWriter::Wake() {
  uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof one) < 0) {
    // EAGAIN: the counter is already set, the writer will wake anyway.
  }
}

// With mu_ held.
void PortWriter::Notify(int what) {
  pending_events_ |= what;
  notify_();
}

// Writes the queue out while the link is up, waiting for POLLOUT (or a wake-up) in poll().
void PortWriter::Loop() {
  pthread_setname_np(pthread_self(), "ember-ga:port");  // the bench tells the agent's threads apart by name
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || (!held_ && link_up_ && fd_ >= 0 && !queue_.empty()); });
    if (stop_) return;
    int fd = fd_;
    uint64_t gen = link_gen_;             // which connection this write belongs to
    const Chunk& front = queue_.front();  // stays put: only this thread pops, others wait for in_write_
    const char* p = front.data() + front_off_;
    size_t len = front.len - front_off_;
    in_write_ = true;
    lock.unlock();
    ssize_t n = write(fd, p, len);
    int err = n < 0 ? errno : 0;
    bool hup = false;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      struct pollfd pf[2] = {{fd, POLLOUT, 0}, {wake_fd_, POLLIN, 0}};
      if (::poll(pf, 2, -1) > 0) {
        uint64_t v;
        if ((pf[1].revents & POLLIN) && read(wake_fd_, &v, sizeof v) < 0) {
          // Nothing to do: a racing wake-up already reset the counter.
        }
        // virtio_console refuses writes while the host is away and reports POLLHUP; without
        // this the writer would spin on a level-triggered POLLOUT.
        hup = (pf[0].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
      }
    } else if (n < 0 && err != EINTR) {
      hup = true;  // EIO: a pty whose master is gone
    }
    lock.lock();
    in_write_ = false;
    cv_.notify_all();                           // the main thread may be waiting to swap or close the fd
    if (fd_ != fd || queue_.empty()) continue;  // the fd changed meanwhile; the queue was the old peer's
    if (n > 0) {
      front_off_ += static_cast<size_t>(n);
      queued_ -= static_cast<size_t>(n);
      if (front_off_ == queue_.front().len) {
        void* keep = queue_.front().keep;
        queue_.pop_front();
        front_off_ = 0;
        int what = queue_.empty() ? kDrained : 0;
        if (keep != nullptr) {
          released_.push_back(keep);  // the caller lets go of its bytes now, not when all is written
          what |= kReleased;
        }
        if (what != 0) Notify(what);
      }
    } else if (hup && gen == link_gen_) {
      link_up_ = false;  // until the main thread sees the host again (LinkUp)
      hup_gen_ = gen;
      Notify(kHungUp);
    }
  }
}

}  // namespace ember
