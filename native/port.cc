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
// new pty behind the same symlink), the driver reopens it. The timer is the safety net: what
// brings a host back (the port's waiters woken, the path's name made anew) wakes the driver at
// once through port_link.h, so the first answer after a reconnect is not up to 500 ms late.
//
// Output: write() tries the port at once on the main thread when nothing is queued (the low-
// latency path for small answers); whatever the port does not take is queued for the writer
// thread (port_writer.h): copied, or for write(buf, true) the Buffer itself, referenced until
// its bytes are written; write(buf, true, true) also frees the Buffer's memory then (detaches
// its ArrayBuffer), where the collector would free it only once it ran. The writer reports
// "drain", hang-ups and the Buffers it is done with to the main thread through a uv_async_t.
//
// JS sees one callback, onEvent(type, arg): "data" (Buffer), "hangup", "connect", "reopen",
// "drain", "error" (Error). With the option `views`, "data" is onEvent("data", slab, start, end):
// the bytes are slab[start, end), read straight into a 64 KiB slab the driver never writes again
// where it has handed bytes over. A Buffer made for each read (malloc, a backing store, its
// collection) was a tenth of a 4 KiB request's work on the main thread; a view of the slab is
// made in JS for the cost of an object.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "answer_pool.h"
#include "errors.h"
#include "loop.h"
#include "module.h"
#include "port_link.h"
#include "port_writer.h"
#include "stat.h"

namespace ember {
namespace {

constexpr size_t kReadSize = 256 * 1024;
// Slabs for `views`: under malloc's mmap threshold (lib/cli.ts), so their pages stay resident.
// One with less room than kSlabMinRoom is left for a new one before a read that starts a 'data'
// event, so that a request line (a 4 KiB file-write's is 5.5 KB) seldom straddles two of them.
constexpr size_t kSlabSize = 64 * 1024;
constexpr size_t kSlabMinRoom = 16 * 1024;
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
    exports.Set("Port",
                DefineClass(env, "Port",
                            {InstanceMethod<&Port::Write>("write"), InstanceMethod<&Port::Pause>("pause"),
                             InstanceMethod<&Port::Resume>("resume"), InstanceMethod<&Port::Close>("close"),
                             InstanceMethod<&Port::Discard>("discard"), InstanceAccessor<&Port::Queued>("queued"),
                             InstanceAccessor<&Port::Copied>("copied"), InstanceAccessor<&Port::Connected>("connected"),
                             InstanceAccessor<&Port::FoundBy>("foundBy")}));
  }

  Port(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Port>(info) {
    Napi::Env env = info.Env();
    path_ = StringArg(info, 0, "path");
    if (info.Length() < 2 || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "argument onEvent must be a function");
    on_event_ = Napi::Persistent(info[1].As<Napi::Function>());
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      if (!info[2].IsObject()) throw Napi::TypeError::New(env, "argument options must be an object");
      Napi::Value views = info[2].As<Napi::Object>().Get("views");
      if (!views.IsUndefined() && !views.IsBoolean()) throw Napi::TypeError::New(env, "option views must be a boolean");
      views_ = views.IsBoolean() && views.As<Napi::Boolean>().Value();
    }
    if (!views_) read_buf_.reset(new char[kReadSize]);
    context_ = std::make_unique<Napi::AsyncContext>(env, "ember-ga:port");
    int err = OpenPort(path_, &fd_);
    if (err) throw MakeSysError(env, SysError::Of(err, "open", path_));
    loop_ = EventLoop(env);
    timer_ = new uv_timer_t;
    uv_timer_init(loop_, timer_);
    timer_->data = this;
    async_ = new uv_async_t;
    uv_async_init(loop_, async_, [](uv_async_t* a) {
      if (a->data != nullptr) static_cast<Port*>(a->data)->OnWriterEvent();
    });
    async_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));  // the poll and timer say whether the port keeps the loop alive
    if (int e = writer_.Start(fd_)) {
      Shutdown();  // no writer yet: closes the handles and the fd
      throw MakeSysError(env, SysError::Of(e, "eventfd", path_));
    }
    Ref();  // stay alive while the fd is open; released by close()
    CheckLink("open");
  }

  // From the collector (an environment being torn down): no JS values to touch, Buffers are
  // only let go of.
  ~Port() override { Shutdown(false); }

 private:
  // ---- JS methods ----
  // A kept write's Buffer, referenced until the writer is done with it.
  struct Kept {
    Napi::Reference<Napi::Buffer<char>> ref;
    bool give;
  };

  // write(data, keep = false, give = false): with keep, what the port does not take at once is
  // sent from data itself, which the driver references until then (the caller must not change
  // it); with give too, data's memory is freed once written (the caller must not use it after).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "argument data must be a Buffer");
    auto buf = info[0].As<Napi::Buffer<char>>();
    bool keep = info.Length() > 1 && !info[1].IsUndefined() && BoolArg(info, 1, "keep");
    bool give = keep && info.Length() > 2 && !info[2].IsUndefined() && BoolArg(info, 2, "give");
    if (fd_ < 0) throw Napi::Error::New(info.Env(), "port is closed");
    auto* kept = keep ? new Kept{Napi::Persistent(buf), give} : nullptr;
    PortWriter::WriteResult r = writer_.Write(buf.Data(), buf.Length(), connected_, kept);
    if (!r.kept && kept != nullptr) Release(kept);  // all of it went out at once
    if (r.failed) Hangup();
    return Napi::Number::New(info.Env(), static_cast<double>(r.queued));
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

  // discard(): drops what is queued for a host that is gone for good; true when there was any.
  Napi::Value Discard(const Napi::CallbackInfo& info) {
    bool had = fd_ >= 0 && writer_.Discard();
    ReleaseKept();
    return Napi::Boolean::New(info.Env(), had);
  }

  Napi::Value Queued(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(writer_.queued()));
  }

  Napi::Value Copied(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(writer_.copied()));
  }

  Napi::Value Connected(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), connected_); }

  Napi::Value FoundBy(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), found_by_); }

  // ---- driver ----
  void Shutdown(bool can_free = true) {
    StopLinkWatch();
    CloseHandle(link_poll_);
    link_poll_ = nullptr;
    link_.Close();
    writer_.Stop();
    ReleaseKept(can_free);
    CloseHandle(async_);
    async_ = nullptr;
    CloseHandle(poll_);
    poll_ = nullptr;
    CloseHandle(timer_);
    timer_ = nullptr;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Lets go of the Buffers of kept writes the writer is done with.
  void ReleaseKept(bool can_free = true) {
    for (void* kept : writer_.TakeReleased()) Release(static_cast<Kept*>(kept), can_free);
  }

  // A kept Buffer is collectable from now on; a given one that is the whole of its ArrayBuffer
  // (not a slice of Node's pool) is freed now.
  void Release(Kept* kept, bool can_free = true) {
    if (can_free && kept->give && !kept->ref.IsEmpty()) {
      Napi::HandleScope scope(Env());
      FreeWhole(Env(), kept->ref.Value());
    }
    delete kept;
  }

  // On the main thread: what the writer reported.
  void OnWriterEvent() {
    bool current;
    int what = writer_.TakeEvents(&current);
    if (what & PortWriter::kReleased) ReleaseKept();
    if ((what & PortWriter::kHungUp) && current) Hangup();
    if ((what & PortWriter::kDrained) && writer_.queued() == 0) Emit("drain");
  }

  void Emit(const char* type, napi_value arg = nullptr) {
    if (arg == nullptr)
      Emit(type, std::initializer_list<napi_value>{});
    else
      Emit(type, {arg});
  }

  void Emit(const char* type, std::initializer_list<napi_value> rest) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      napi_value args[4];
      size_t argc = 0;
      args[argc++] = Napi::String::New(env, type);
      for (napi_value v : rest)
        if (argc < 4) args[argc++] = v;
      on_event_.MakeCallback(env.Global(), argc, args, *context_);
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
      int r;
      poll_ = NewPoll(loop_, fd_, this, &r);
      if (poll_ == nullptr) {
        EmitError(-r, "epoll_ctl");
        return;
      }
    }
    // Paused, the poll is stopped: the wake-up handle keeps the loop (and the process) alive
    // meanwhile, or an agent paused on a large answer would exit while the writer sends it.
    if (events == 0) {
      uv_poll_stop(poll_);
      uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    } else {
      uv_unref(reinterpret_cast<uv_handle_t*>(async_));
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
    size_t have = 0;  // bytes read (at ReadAt(0)) and not yet handed to JS
    for (int i = 0; i < kReadsPerWakeup && fd_ >= 0 && connected_ && !paused_; i++) {
      if (views_ && have == 0 && Room(0) < kSlabMinRoom && !NewSlab()) return;
      size_t room = Room(have);
      ssize_t n = read(fd_, ReadAt(have), room);
      if (n > 0) {
        have += static_cast<size_t>(n);
        // A request line cut short by the device (a pty hands over 4095 bytes a read, a virtio
        // port one buffer) usually has its rest there already: read on, so that it reaches JS
        // in one 'data' and one wake-up. One that ends in a newline is whole: stop there, or the
        // next read would only answer EAGAIN, a syscall per request.
        if (static_cast<size_t>(n) < room && ReadAt(0)[have - 1] != '\n') continue;
        EmitData(have);
        have = 0;
        // Short read: drained. The poll is level-triggered: data that arrives meanwhile wakes us again.
        if (static_cast<size_t>(n) < room) return;
      } else if (n == 0) {
        EmitData(have);
        Hangup();  // virtio: host side closed
        return;
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        EmitData(have);
        return;
      } else {
        int err = errno;
        EmitData(have);
        if (err != EIO) EmitError(err, "read");
        Hangup();  // pty: master gone (EIO)
        return;
      }
    }
    EmitData(have);
  }

  // Where the bytes read so far (`have` of them) end, and how many more fit there.
  char* ReadAt(size_t have) { return views_ ? slab_data_ + slab_used_ + have : read_buf_.get() + have; }
  size_t Room(size_t have) const { return (views_ ? slab_size_ - slab_used_ : kReadSize) - have; }

  // views: the next slab. False when there is no memory for one: then an 'error', and the port
  // is not polled until the backoff timer's check (the poll is level-triggered: it would spin).
  bool NewSlab() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Buffer<char> slab;
    try {
      slab = Napi::Buffer<char>::New(env, kSlabSize);
    } catch (const Napi::Error&) {
      if (poll_ != nullptr) uv_poll_stop(poll_);
      ArmTimer();
      EmitError(ENOMEM, "read");
      return false;
    }
    slab_ = Napi::Persistent(slab);
    slab_data_ = slab.Data();
    slab_size_ = slab.Length();
    slab_used_ = 0;
    return true;
  }

  // Hands the first n bytes read (ReadAt(0)) to JS (nothing when n is 0): a Buffer of their own,
  // or with views the slab and where they are in it.
  void EmitData(size_t n) {
    if (n == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!views_) {
      Emit("data", Napi::Buffer<char>::Copy(env, read_buf_.get(), n));
      return;
    }
    size_t start = slab_used_;
    slab_used_ += n;  // before the callback: those bytes are JS's from now on
    Emit("data", {slab_.Value(), Napi::Number::New(env, static_cast<double>(start)),
                  Napi::Number::New(env, static_cast<double>(start + n))});
  }

  void Hangup() {
    if (!connected_) return;
    connected_ = false;
    writer_.LinkDown();
    if (poll_ != nullptr) uv_poll_stop(poll_);
    backoff_ms_ = kBackoffFirstMs;
    ArmTimer();
    StartLinkWatch();
    Emit("hangup");
  }

  // While the host is away: wake at once for what may bring it back (port_link.h).
  void StartLinkWatch() {
    if (fd_ < 0) return;
    if (link_poll_ == nullptr) {
      int r;
      if (link_.fd() < 0 && link_.Open(path_) != 0 && link_.fd() < 0) return;
      link_poll_ = NewPoll(loop_, link_.fd(), this, &r);
      if (link_poll_ == nullptr) return;
      // The backoff timer keeps the loop alive while the host is away, as before; this does not.
      uv_unref(reinterpret_cast<uv_handle_t*>(link_poll_));
    }
    link_.Arm(fd_);
    uv_poll_start(link_poll_, UV_READABLE, [](uv_poll_t* h, int status, int ev) {
      auto* self = static_cast<Port*>(h->data);
      if (self != nullptr && self->link_.Drain() && !self->connected_) self->CheckLink("watch");
    });
  }

  void StopLinkWatch() {
    if (link_poll_ != nullptr) uv_poll_stop(link_poll_);
    link_.Disarm(fd_);
  }

  void ArmTimer() {
    if (timer_ == nullptr) return;
    uv_timer_start(
        timer_,
        [](uv_timer_t* t) {
          if (t->data != nullptr) static_cast<Port*>(t->data)->CheckLink("timer");
        },
        backoff_ms_, 0);
  }

  // Is the host there? Called at start ("open"), on the backoff timer ("timer") and when the
  // link watch wakes ("watch") while disconnected; on the timer while connected too, after a
  // read found no memory for a slab (NewSlab).
  void CheckLink(const char* by) {
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
      StopLinkWatch();
      bool was = connected_;
      if (!was) found_by_ = by;
      connected_ = true;
      writer_.LinkUp();
      UpdatePoll();
      if (!was) Emit("connect");
      return;
    }
    if (connected_) {
      Hangup();  // gone meanwhile: as if the poll had seen it
      return;
    }
    ArmTimer();
    backoff_ms_ = std::min(backoff_ms_ * 2, kBackoffMaxMs);
    StartLinkWatch();
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
    StopLinkWatch();  // it watched the old fd
    bool had = writer_.SwapFd(fd);
    ReleaseKept();
    close(fd_);
    fd_ = fd;
    Emit("reopen");
    if (had) Emit("drain");  // the queue is empty now: a reader paused on it may go on
    return true;
  }

  std::string path_;
  // One read buffer for the port's life: a pty returns at most a few KiB per read, so a fresh
  // 256 KiB Buffer per read left ~90 MB of garbage per MiB received for the GC.
  std::unique_ptr<char[]> read_buf_;  // without views
  bool views_ = false;
  // views: the slab reads go into, and how much of it is JS's already.
  Napi::Reference<Napi::Buffer<char>> slab_;
  char* slab_data_ = nullptr;
  size_t slab_size_ = 0;
  size_t slab_used_ = 0;
  int fd_ = -1;
  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  uv_async_t* async_ = nullptr;
  uv_poll_t* link_poll_ = nullptr;  // link_'s fd, while the host is away
  PortLink link_;
  bool connected_ = false;
  const char* found_by_ = "open";
  bool paused_ = false;
  uint64_t backoff_ms_ = kBackoffFirstMs;
  // Notifies through async_ (cleared, with the writer stopped, by Shutdown).
  PortWriter writer_{[this] {
    if (async_ != nullptr) uv_async_send(async_);
  }};
  Napi::FunctionReference on_event_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

Module reg("port", [](Napi::Env env, Napi::Object exports) { Port::Init(env, exports); });

}  // namespace
}  // namespace ember
