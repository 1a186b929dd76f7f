#include "write_helper.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "fdio.h"

namespace ember {
namespace {

// The two threads hand over through futexes on plain words, no mutex: glibc's condition
// variables leave their mutex marked contended after a wake-up, which costs a futex call per
// unlock on each side; a hand-off a request is worth those.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, const struct timespec* timeout) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, timeout, nullptr, 0);
}

void FutexWake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace

struct WriteHelper::State {
  static constexpr uint32_t kRunning = 0;   // the write is the helper's; nobody sleeps on it
  static constexpr uint32_t kFinished = 1;  // its outcome is in `result`, for the waiting thread
  static constexpr uint32_t kLate = 2;      // the main thread stopped waiting: `notify` when done
  static constexpr uint32_t kWaiting = 3;   // the write is the helper's; the main thread sleeps on it

  std::atomic<pid_t> tid{0};        // the helper thread's id, once it runs (for its affinity)
  std::atomic<uint32_t> posted{0};  // raised for each write handed over (the helper waits on it)
  std::atomic<uint32_t> outcome{kFinished};
  std::atomic<bool> stop{false};
  std::atomic<bool> late_done{false};  // a late write's outcome is in `result`, for TakeLate()
  // The write: set by the main thread before `posted` is raised, read by the helper after.
  int fd = -1;
  const char* buf = nullptr;
  size_t len = 0;
  int64_t offset = 0;
  ssize_t result = 0;
  std::mutex notify_mu;  // `notify` is cleared when the WriteHelper goes, while a late write may call it
  std::function<void()> notify;

  void Run() {
    pthread_setname_np(pthread_self(), "ember-ga:write");  // the bench tells the agent's threads apart by name
    tid.store(static_cast<pid_t>(syscall(SYS_gettid)), std::memory_order_release);
    uint32_t seen = 0;
    for (;;) {
      uint32_t now;
      while ((now = posted.load(std::memory_order_acquire)) == seen && !stop.load(std::memory_order_acquire))
        FutexWait(&posted, seen, nullptr);
      if (stop.load(std::memory_order_acquire)) return;
      seen = now;
      int err;
      size_t written = fdio::WriteAll(fd, buf, len, offset, &err);
      result = err ? -static_cast<ssize_t>(err) : static_cast<ssize_t>(written);
      uint32_t o = outcome.load(std::memory_order_acquire);
      for (;;) {
        if (o == kLate) {
          late_done.store(true, std::memory_order_release);
          std::lock_guard<std::mutex> lock(notify_mu);
          if (notify) notify();
          break;
        }
        if (outcome.compare_exchange_weak(o, kFinished, std::memory_order_acq_rel)) {
          if (o == kWaiting) FutexWake(&outcome);  // no syscall when the main thread has not slept yet
          break;
        }
      }
    }
  }
};

WriteHelper::WriteHelper(std::function<void()> notify) : state_(std::make_shared<State>()) {
  state_->notify = std::move(notify);
}

WriteHelper::~WriteHelper() {
  {
    std::lock_guard<std::mutex> lock(state_->notify_mu);
    state_->notify = nullptr;
  }
  state_->stop.store(true, std::memory_order_release);
  state_->posted.fetch_add(1, std::memory_order_release);  // wakes an idle helper, which then sees `stop`
  FutexWake(&state_->posted);
}

WriteHelper::Outcome WriteHelper::Write(int fd, const char* buf, size_t len, int64_t offset,
                                        std::chrono::microseconds wait, ssize_t* result) {
  State& s = *state_;
  if (late_) return kBusy;
  if (!started_) {
    try {
      // Detached, holding the state: a write stuck in the kernel at exit must not hold up the
      // process (a joined thread would), nor touch freed memory when it returns.
      std::thread([state = state_] { state->Run(); }).detach();
    } catch (const std::system_error&) {
      return kBusy;  // no thread to be had: the thread pool does the write
    }
    started_ = true;
  }
  FollowMainThread();
  s.fd = fd;
  s.buf = buf;
  s.len = len;
  s.offset = offset;
  s.outcome.store(State::kRunning, std::memory_order_relaxed);
  s.posted.fetch_add(1, std::memory_order_release);
  FutexWake(&s.posted);
  auto deadline = std::chrono::steady_clock::now() + wait;
  uint32_t o = s.outcome.load(std::memory_order_acquire);
  while (o != State::kFinished) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      if (s.outcome.compare_exchange_strong(o, State::kLate, std::memory_order_acq_rel)) {
        late_ = true;
        return kLate;
      }
      continue;  // o is what the helper set meanwhile: finished, most likely
    }
    if (o == State::kRunning && !s.outcome.compare_exchange_strong(o, State::kWaiting, std::memory_order_acq_rel))
      continue;  // finished meanwhile
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    struct timespec ts = {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    FutexWait(&s.outcome, State::kWaiting, &ts);
    o = s.outcome.load(std::memory_order_acquire);
  }
  *result = s.result;
  return kDone;
}

void WriteHelper::FollowMainThread() {
  int cpu = sched_getcpu();
  pid_t tid = state_->tid.load(std::memory_order_acquire);
  if (cpu < 0 || tid == 0 || cpu == pinned_cpu_) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  // Refused (a cpuset that changed under us): the helper stays where it may run, and this is
  // not tried again until the main thread moves.
  (void)sched_setaffinity(tid, sizeof one, &one);
  pinned_cpu_ = cpu;
}

bool WriteHelper::TakeLate(ssize_t* result) {
  if (!late_ || !state_->late_done.load(std::memory_order_acquire)) return false;
  state_->late_done.store(false, std::memory_order_relaxed);
  *result = state_->result;
  late_ = false;
  return true;
}

}  // namespace ember
