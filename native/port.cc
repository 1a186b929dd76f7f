// The virtio-serial port (or a pty standing in for it), driven from the event loop.
//
// libuv treats character devices as files and would read them with blocking calls on the thread
// pool, so the port gets its own driver: one O_RDWR non-blocking fd (the port opens only once),
// readiness from uv_poll, writes that survive EAGAIN and partial writes.
//
// Host disconnected: virtio_console reports POLLHUP at once and read() returns 0 at once, every
// time (a pty whose master is gone reports POLLHUP and EIO). Both are level-triggered, so a
// naive loop spins. Instead the driver stops polling and re-checks on a backoff timer (20 ms
// doubling to 500 ms: near-zero CPU). Once POLLHUP clears, it polls again; QEMU keeps the
// host's bytes meanwhile, so no request is lost. If the path now names a different device (a
// new pty behind the same symlink), the driver reopens it.
//
// Output: write() tries the port at once on the main thread when nothing is queued (the low-
// latency path for small answers); whatever the port does not take is queued for a writer
// thread, which waits for POLLOUT and writes on its own. A pty or virtio port buffers only a few
// KiB, so while output waited on the event loop, every main-thread pause (a GC, encoding the
// next answer) left the port idle; the writer keeps it fed whatever the main thread is doing.
// The writer reports "drain" and hang-ups to the main thread through a uv_async_t.
//
// JS sees one callback, onEvent(type, arg): "data" (Buffer), "hangup", "connect", "reopen",
// "drain", "error" (Error).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include <sys/eventfd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "errors.h"
#include "loop.h"
#include "module.h"
#include "stat.h"

namespace ember {
namespace {

constexpr size_t kReadSize = 256 * 1024;
constexpr int kReadsPerWakeup = 16;
constexpr uint64_t kBackoffFirstMs = 20;
constexpr uint64_t kBackoffMaxMs = 500;

int OpenPort(const std::string& path, int* fd_out) {
  int fd = open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno;
  if (isatty(fd)) {
    // A pty standing in for the port: raw bytes, no echo, no CRLF translation.
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
      cfmakeraw(&t);
      tcsetattr(fd, TCSANOW, &t);
    }
  }
  *fd_out = fd;
  return 0;
}

class Port : public Napi::ObjectWrap<Port> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("Port", DefineClass(env, "Port",
                                    {InstanceMethod<&Port::Write>("write"),
                                     InstanceMethod<&Port::Pause>("pause"),
                                     InstanceMethod<&Port::Resume>("resume"),
                                     InstanceMethod<&Port::Close>("close"),
                                     InstanceAccessor<&Port::Queued>("queued"),
                                     InstanceAccessor<&Port::Connected>("connected")}));
  }

  Port(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Port>(info) {
    Napi::Env env = info.Env();
    path_ = StringArg(info, 0, "path");
    if (info.Length() < 2 || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "argument onEvent must be a function");
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "ember-ga:port");
    int err = OpenPort(path_, &fd_);
    if (err) throw MakeSysError(env, SysError::Of(err, "open", path_));
    if (napi_get_uv_event_loop(env, &loop_) != napi_ok) throw Napi::Error::New(env, "no event loop");
    timer_ = new uv_timer_t;
    uv_timer_init(loop_, timer_);
    timer_->data = this;
    async_ = new uv_async_t;
    uv_async_init(loop_, async_, [](uv_async_t* a) {
      if (a->data != nullptr) static_cast<Port*>(a->data)->OnWriterEvent();
    });
    async_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));  // the poll and timer say whether the port keeps the loop alive
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      int e = errno;
      Shutdown();  // no writer yet: closes the handles and the fd
      throw MakeSysError(env, SysError::Of(e, "eventfd", path_));
    }
    writer_ = std::thread([this] { WriterLoop(); });
    Ref();  // stay alive while the fd is open; released by close()
    CheckLink();
  }

  ~Port() override { Shutdown(); }

 private:
  // ---- JS methods ----
  Napi::Value Write(const Napi::CallbackInfo& info) {
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument data must be a Buffer");
    auto buf = info[0].As<Napi::Buffer<char>>();
    if (fd_ < 0) throw Napi::Error::New(info.Env(), "port is closed");
    const char* p = buf.Data();
    size_t len = buf.Length();
    bool failed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty() && connected_) {
        // Fast path: straight from the JS buffer, copy only what the kernel did not take. The
        // writer is idle (its queue is empty), so the fd is ours for this write.
        while (len > 0) {
          ssize_t n = write(fd_, p, len);
          if (n > 0) {
            p += n;
            len -= n;
          } else if (n < 0 && errno == EINTR) {
            continue;
          } else {
            failed = n < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
            break;
          }
        }
      }
      if (len > 0) {
        // Also after a failed write: the answer's rest waits for the link to come back (a
        // passing error must not leave half a line on the wire with nothing to finish it).
        queue_.emplace_back(p, len);
        queued_ += len;
        cv_.notify_one();
      }
    }
    if (failed) Hangup();
    return Napi::Number::New(info.Env(), static_cast<double>(queued_.load()));
  }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    paused_ = true;
    UpdatePoll();
    return info.Env().Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    paused_ = false;
    UpdatePoll();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) {
      Shutdown();
      Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value Queued(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(queued_.load()));
  }

  Napi::Value Connected(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), connected_); }

  // ---- driver ----
  void Shutdown() {
    if (writer_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
        cv_.notify_all();
      }
      WakeWriter();
      writer_.join();  // never long: the writer only ever waits in poll() with wake_fd_
    }
    CloseHandle(async_);
    async_ = nullptr;
    CloseHandle(poll_);
    poll_ = nullptr;
    CloseHandle(timer_);
    timer_ = nullptr;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    if (wake_fd_ >= 0) close(wake_fd_);
    wake_fd_ = -1;
    queue_.clear();
    queued_ = 0;
  }

  // ---- the writer thread ----
  void WakeWriter() {
    uint64_t one = 1;
    if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof one) < 0) {
      // EAGAIN: the counter is already set, the writer will wake anyway.
    }
  }

  // Writes the queue out while the link is up, waiting for POLLOUT (or a wake-up) in poll().
  void WriterLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || (link_up_ && fd_ >= 0 && !queue_.empty()); });
      if (stop_) return;
      int fd = fd_;
      uint64_t gen = link_gen_;  // which connection this write belongs to
      const std::string& front = queue_.front();  // stays put: only this thread pops, others wait for in_write_
      const char* p = front.data() + front_off_;
      size_t len = front.size() - front_off_;
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
      cv_.notify_all();  // the main thread may be waiting to swap or close the fd
      if (fd_ != fd || queue_.empty()) continue;  // the fd changed meanwhile; the queue was the old peer's
      if (n > 0) {
        front_off_ += static_cast<size_t>(n);
        queued_ -= static_cast<size_t>(n);
        if (front_off_ == queue_.front().size()) {
          queue_.pop_front();
          front_off_ = 0;
          if (queue_.empty()) Notify(kDrained);
        }
      } else if (hup && gen == link_gen_) {
        // (A hang-up seen on a connection the main thread has since found back up is old news.)
        link_up_ = false;  // until the main thread sees the host again (CheckLink)
        hup_gen_ = gen;
        Notify(kHungUp);
      }
    }
  }

  static constexpr int kDrained = 1;
  static constexpr int kHungUp = 2;

  // From the writer, with mu_ held: tell the main thread.
  void Notify(int what) {
    pending_events_ |= what;
    if (async_ != nullptr) uv_async_send(async_);
  }

  // On the main thread: what the writer reported.
  void OnWriterEvent() {
    int what;
    bool current;
    {
      std::lock_guard<std::mutex> lock(mu_);
      what = pending_events_;
      pending_events_ = 0;
      current = hup_gen_ == link_gen_;
    }
    if ((what & kHungUp) && current) Hangup();
    if ((what & kDrained) && queued_.load() == 0) Emit("drain");
  }

  // Main thread: wait until the writer is not inside a write on fd_ (mu_ held by `lock`).
  void QuiesceWriter(std::unique_lock<std::mutex>& lock) {
    WakeWriter();
    cv_.wait(lock, [this] { return !in_write_; });
  }

  void Emit(const char* type, napi_value arg = nullptr) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      std::vector<napi_value> args{Napi::String::New(env, type)};
      if (arg != nullptr) args.push_back(arg);
      on_event_.MakeCallback(env.Global(), args, *context_);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  void EmitError(int err, const char* syscall) {
    Napi::HandleScope scope(Env());
    Emit("error", MakeSysError(Env(), SysError::Of(err, syscall, path_)).Value());
  }

  // Polls for input unless paused (output is the writer thread's).
  void UpdatePoll() {
    if (fd_ < 0 || !connected_) return;
    int events = paused_ ? 0 : UV_READABLE;
    if (poll_ == nullptr) {
      poll_ = new uv_poll_t;
      if (int r = uv_poll_init(loop_, poll_, fd_); r != 0) {
        delete poll_;
        poll_ = nullptr;
        EmitError(-r, "epoll_ctl");
        return;
      }
      poll_->data = this;
    }
    if (events == 0) {
      uv_poll_stop(poll_);
    } else {
      uv_poll_start(poll_, events, [](uv_poll_t* h, int status, int ev) {
        if (h->data != nullptr) static_cast<Port*>(h->data)->OnPoll(status, ev);
      });
    }
  }

  void OnPoll(int status, int events) {
    if (status < 0) {
      Hangup();
      return;
    }
    if (fd_ >= 0 && connected_ && (events & (UV_READABLE | UV_DISCONNECT))) ReadSome();
  }

  void ReadSome() {
    for (int i = 0; i < kReadsPerWakeup && fd_ >= 0 && connected_ && !paused_; i++) {
      Napi::HandleScope scope(Env());
      ssize_t n = read(fd_, read_buf_.get(), kReadSize);
      if (n > 0) {
        Emit("data", Napi::Buffer<char>::Copy(Env(), read_buf_.get(), n));
        // Short read: drained. Another read would only answer EAGAIN, a syscall per request;
        // the poll is level-triggered, so data that arrives meanwhile wakes us again.
        if (static_cast<size_t>(n) < kReadSize) return;
      } else if (n == 0) {
        Hangup();  // virtio: host side closed
        return;
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else {
        if (errno != EIO) EmitError(errno, "read");
        Hangup();  // pty: master gone (EIO)
        return;
      }
    }
  }

  void Hangup() {
    if (!connected_) return;
    connected_ = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      link_up_ = false;
    }
    if (poll_ != nullptr) uv_poll_stop(poll_);
    backoff_ms_ = kBackoffFirstMs;
    ArmTimer();
    Emit("hangup");
  }

  void ArmTimer() {
    if (timer_ == nullptr) return;
    uv_timer_start(timer_, [](uv_timer_t* t) {
      if (t->data != nullptr) static_cast<Port*>(t->data)->CheckLink();
    }, backoff_ms_, 0);
  }

  // Is the host there? Called at start and on the backoff timer while disconnected.
  void CheckLink() {
    if (fd_ < 0) return;
    struct pollfd p = {fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 0);
    bool hup = r > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
    if (hup && MaybeReopen()) {
      p = {fd_, POLLIN, 0};
      r = ::poll(&p, 1, 0);
      hup = r > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
    }
    if (!hup) {
      bool was = connected_;
      connected_ = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!link_up_) link_gen_++;  // a new connection: hang-ups seen on the old one are old news
        link_up_ = true;
        cv_.notify_one();  // anything queued goes out now
      }
      UpdatePoll();
      if (!was) Emit("connect");
      return;
    }
    connected_ = false;
    ArmTimer();
    backoff_ms_ = std::min(backoff_ms_ * 2, kBackoffMaxMs);
  }

  // The path may now name another device (a new pty behind the same symlink): switch to it.
  bool MaybeReopen() {
    FileStat now, cur;
    if (StatPath(path_, &now) != 0 || StatFd(fd_, &cur) != 0) return false;
    if (now.rdev_major == cur.rdev_major && now.rdev_minor == cur.rdev_minor && now.ino == cur.ino) return false;
    int fd;
    if (OpenPort(path_, &fd) != 0) return false;
    CloseHandle(poll_);
    poll_ = nullptr;
    bool had;
    {
      std::unique_lock<std::mutex> lock(mu_);
      QuiesceWriter(lock);
      close(fd_);
      fd_ = fd;
      had = !queue_.empty();
      queue_.clear();  // answers meant for the old peer
      queued_ = 0;
      front_off_ = 0;
    }
    Emit("reopen");
    if (had) Emit("drain");  // the queue is empty now: a reader paused on it may go on
    return true;
  }

  std::string path_;
  // One read buffer for the port's life: a pty returns at most a few KiB per read, so a fresh
  // 256 KiB Buffer per read left ~90 MB of garbage per MiB received for the GC.
  std::unique_ptr<char[]> read_buf_{new char[kReadSize]};
  int fd_ = -1;
  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  uv_async_t* async_ = nullptr;
  bool connected_ = false;
  bool paused_ = false;
  uint64_t backoff_ms_ = kBackoffFirstMs;
  // Shared with the writer thread, under mu_ (queued_ is also read without it). fd_ too: the
  // main thread changes it only under mu_ once the writer has started (MaybeReopen), or after
  // joining it (Shutdown); the writer reads it under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t front_off_ = 0;
  std::atomic<size_t> queued_{0};
  bool link_up_ = false;    // the host is there: the writer may write
  bool in_write_ = false;   // the writer is using wfd_ outside the lock
  bool stop_ = false;
  int pending_events_ = 0;  // kDrained | kHungUp, for OnWriterEvent
  uint64_t link_gen_ = 0;   // raised each time the link comes back up
  uint64_t hup_gen_ = 0;    // the connection the writer last saw hang up
  int wake_fd_ = -1;        // eventfd: wakes the writer out of poll()
  std::thread writer_;
  Napi::FunctionReference on_event_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

Module reg("port", [](Napi::Env env, Napi::Object exports) { Port::Init(env, exports); });

}  // namespace
}  // namespace ember
