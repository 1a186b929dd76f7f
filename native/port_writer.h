// The port's writer: a queue of output and a thread that writes it to the port's fd, waiting for
// POLLOUT on its own. A pty or virtio port buffers only a few KiB, so while output waited on the
// event loop, every main-thread pause (a GC, encoding the next answer) left the port idle; the
// writer keeps it fed whatever the main thread is doing. Plain C++, no N-API types: port.cc
// drives it from the main thread and hears from it through `notify`.
//
// What the port does not take at once is either copied into the queue or, when the caller says
// so, kept where it is: a 64 MiB answer copied while the next one was built held two or three
// copies at once. A kept write carries the caller's token, handed back (TakeReleased) once its
// bytes are written or dropped, for the caller to let go of them on its own thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ember {

class PortWriter {
 public:
  static constexpr int kDrained = 1;   // the queue ran empty
  static constexpr int kHungUp = 2;    // a write saw the host go away
  static constexpr int kReleased = 4;  // kept writes are done with (TakeReleased)

  struct WriteResult {
    size_t queued;  // bytes queued after the write
    bool failed;    // the direct write failed with an error (the host went away)
    bool kept;      // the queue holds the caller's bytes: `keep` comes back through TakeReleased
  };

  // notify runs on the writer thread, with the writer's lock held, whenever TakeEvents() has
  // something new: it must only wake the main thread.
  explicit PortWriter(std::function<void()> notify) : notify_(std::move(notify)) {}
  ~PortWriter() { Stop(); }

  // Starts the thread writing to fd (which stays the caller's): 0, or the errno of eventfd.
  int Start(int fd);
  // Stops and joins the thread (never long: it only ever waits in poll() with its wake-up fd)
  // and drops the queue (its kept tokens go to TakeReleased).
  void Stop();

  // The rest is for the main thread.

  // Writes data: at once on this thread when nothing is queued and `direct` (the host is there);
  // what the kernel did not take is queued: copied, or with `keep` (not null) the caller's
  // bytes themselves, which must then stay put and unchanged until `keep` is released.
  WriteResult Write(const char* p, size_t len, bool direct, void* keep = nullptr);
  // The host went away: the writer stops writing until LinkUp().
  void LinkDown();
  // The host is there (again): anything queued goes out now.
  void LinkUp();
  // The port's path names a new device: writes go to fd from now on, and what was queued for
  // the old peer is dropped (true when there was any; its kept tokens go to TakeReleased). The
  // caller closes the old fd.
  bool SwapFd(int fd);
  // The host whose output is queued is gone for good: drops the queue, as SwapFd does (true when
  // there was any), so that the next host on the same device does not get the rest of its lines.
  bool Discard();
  // kDrained | kHungUp since the last call; *current: the hang-up was seen on the connection
  // that is up now (one seen on a connection since found back up is old news).
  int TakeEvents(bool* current);
  // The tokens of kept writes whose bytes were written or dropped since the last call.
  std::vector<void*> TakeReleased();
  size_t queued() const { return queued_.load(); }
  // Bytes copied into the queue so far (what the port did not take from writes not kept).
  uint64_t copied() const { return copied_.load(); }

 private:
  void Loop();
  void Wake();
  void Notify(int what);
  void DropQueue();
  void Hold(std::unique_lock<std::mutex>& lock);
  void Release();

  // A write's bytes waiting for the port: a copy, or the caller's (keep).
  struct Chunk {
    std::string own;
    const char* kept = nullptr;
    size_t len = 0;
    void* keep = nullptr;
    const char* data() const { return keep != nullptr ? kept : own.data(); }
  };

  std::function<void()> notify_;
  // Shared with the writer thread, under mu_ (queued_ is also read without it). fd_ too: the
  // main thread changes it only under mu_ once the writer has started (SwapFd), or after
  // joining it (Stop); the writer reads it under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> queue_;
  size_t front_off_ = 0;
  std::atomic<size_t> queued_{0};
  std::atomic<uint64_t> copied_{0};
  std::vector<void*> released_;  // tokens of kept chunks done with, for TakeReleased
  int fd_ = -1;
  bool link_up_ = false;   // the host is there: the writer may write
  bool in_write_ = false;  // the writer is using fd_ outside the lock
  bool held_ = false;      // the main thread needs the queue and fd_ between two writes (Hold)
  bool stop_ = false;
  int pending_events_ = 0;  // kDrained | kHungUp, for TakeEvents
  uint64_t link_gen_ = 0;   // raised each time the link comes back up
  uint64_t hup_gen_ = 0;    // the connection the writer last saw hang up
  int wake_fd_ = -1;        // eventfd: wakes the writer out of poll()
  std::thread thread_;
};

}  // namespace ember
