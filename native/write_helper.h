// Small positional writes done on a thread of their own while the main thread waits for them,
// for a bounded time: plain C++, no N-API types (the glue is fileio.cc).
//
// A 4 KiB write that a host sends one at a time cost the main thread an event-loop round trip
// through the thread pool (a wake-up, then another for the answer): several times the write
// itself. Writing on the main thread would be cheaper still, but a write can block for as long
// as its filesystem stays frozen (FIFREEZE by anyone) or the kernel throttles dirty pages, and
// pwritev2(RWF_NOWAIT) cannot tell: ext4 and tmpfs refuse it for buffered writes, and where it
// is taken the call still waits for a frozen filesystem. So the write goes to this helper and
// the main thread waits for it at most `wait`: a write that takes longer goes on by itself and
// is reported through `notify`, and until it is done the helper takes no other (Write() says
// kBusy and the caller uses the thread pool), so a stuck write holds the main thread once, for
// `wait`, however many follow.
//
// The helper runs on the CPU the main thread last wrote from (re-pinned when that changes): the
// main thread sleeps while it writes, so nothing is lost, and the hand-off is then a switch on
// one CPU. Woken on another, idle CPU, as the scheduler would, it waited for that virtual CPU to
// come out of halt: 4x the cost of the whole write in a Firecracker guest.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace ember {

class WriteHelper {
 public:
  enum Outcome {
    kDone,  // written (or failed) within the wait: *result is the bytes written or -errno
    kLate,  // still being written: the caller keeps the buffer alive until TakeLate() has it
    kBusy,  // nothing done: the helper is still on a late write (or has no thread)
  };

  // `notify` runs on the helper thread when a late write is done: it must only wake the main
  // thread, which then calls TakeLate().
  explicit WriteHelper(std::function<void()> notify);
  // Stops the thread once it is idle; one stuck in the kernel finishes its write first, and
  // `notify` is not called any more.
  ~WriteHelper();

  WriteHelper(const WriteHelper&) = delete;
  WriteHelper& operator=(const WriteHelper&) = delete;

  // On the main thread: writes all of buf[0, len) at offset (>= 0) with fdio::WriteAll on the
  // helper's thread, waiting for it up to `wait`.
  Outcome Write(int fd, const char* buf, size_t len, int64_t offset, std::chrono::microseconds wait, ssize_t* result);

  // On the main thread, after `notify`: the late write's outcome (true), or false if none is
  // done yet.
  bool TakeLate(ssize_t* result);

 private:
  // Pins the helper to the CPU this (the main) thread is on, if that changed.
  void FollowMainThread();

  struct State;
  std::shared_ptr<State> state_;  // shared with the thread, which may outlive this object
  bool started_ = false;          // the thread is running (the rest is the main thread's too)
  int pinned_cpu_ = -1;           // the CPU the helper was last pinned to (or tried to be)
  bool late_ = false;             // a late write is under way, or its outcome not yet taken
};

}  // namespace ember
