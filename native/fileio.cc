// Glue of the file commands' bindings: chunked reads and writes at an explicit offset, naming
// an O_TMPFILE file (fdio.h), the md5 of a whole file (md5.h), the base64 codec (base64.h) and
// small writes waited for (write_helper.h). It converts arguments and results and runs the
// blocking calls through Schedule (md5 on a thread of its own through ScheduleOnThread).
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <memory>

#include "answer_pool.h"
#include "base64.h"
#include "errors.h"
#include "fdio.h"
#include "loop.h"
#include "md5.h"
#include "module.h"
#include "schedule.h"
#include "write_helper.h"

namespace ember {
namespace {

// A Buffer argument kept alive (and its bytes addressable) while a thread-pool task uses it.
// Created and destroyed on the main thread: the task's lambdas are destroyed there.
struct PinnedBuffer {
  Napi::Reference<Napi::Buffer<char>> ref;
  char* data;
  size_t len;
};

std::shared_ptr<PinnedBuffer> PinBuffer(const Napi::CallbackInfo& info, size_t i) {
  auto b = BufferArg(info, i, "buffer");
  return std::make_shared<PinnedBuffer>(PinnedBuffer{Napi::Persistent(b), b.Data(), b.Length()});
}

// md5File(path): {promise: Promise<string>, cancel(): void}. cancel() makes a running digest
// stop within a chunk and reject with ECANCELED; after the digest is done it does nothing.
Napi::Value Md5File(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto path = StringArg(info, 0, "path");
  auto hex = std::make_shared<std::string>();
  // Shared by the thread's work and the cancel function, so either may outlive the other.
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  // Its own thread, not the pool: the md5 of a large file or a whole disk may take minutes, and
  // a few of them would hold every pool thread the file commands need (lib/files/md5.ts caps
  // how many run at once).
  Napi::Promise promise = ScheduleOnThread(
      env, "ember-ga:md5", [path, hex, cancel] { return md5::File(path, hex.get(), *cancel); },
      [hex](Napi::Env env) { return Napi::String::New(env, *hex); }, path);
  Napi::Object job = Napi::Object::New(env);
  job.Set("promise", promise);
  job.Set("cancel", Napi::Function::New(
                        env,
                        [cancel](const Napi::CallbackInfo& info) {
                          cancel->store(true, std::memory_order_relaxed);
                          return info.Env().Undefined();
                        },
                        "cancel"));
  return job;
}

// new Md5(): the running md5 of what a read handle reads (file-open `md5`). update(buffer,
// length) hashes on the calling thread; pread(..., md5) hashes what it read on the pool thread,
// so a large download's hashing costs the main thread nothing. Calls on one object must not
// overlap: a FileHandle runs one operation at a time. digest() is the md5 of everything hashed
// so far (32 lowercase hex digits); hashing can go on after it.
class Md5 : public Napi::ObjectWrap<Md5> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Md5", {InstanceMethod<&Md5::UpdateJs>("update"), InstanceMethod<&Md5::Digest>("digest")});
  }

  Md5(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Md5>(info) {
    if (!running_.ok()) throw MakeSysError(info.Env(), SysError::Of(ENOMEM, "md5"));
    info.This().As<Napi::Object>().TypeTag(&kTag);
  }

  // The Md5 that value is, or nullptr for anything else.
  static Md5* Of(const Napi::Value& value) {
    if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kTag)) return nullptr;
    return Unwrap(value.As<Napi::Object>());
  }

  void Update(const void* p, size_t n) { running_.Update(p, n); }

 private:
  Napi::Value UpdateJs(const Napi::CallbackInfo& info) {
    auto b = BufferArg(info, 0, "buffer");
    int64_t n = IntArg(info, 1, "length");
    if (n < 0 || static_cast<uint64_t>(n) > b.Length())
      throw Napi::RangeError::New(info.Env(), "length must be within the buffer");
    Update(b.Data(), static_cast<size_t>(n));
    return info.Env().Undefined();
  }

  Napi::Value Digest(const Napi::CallbackInfo& info) {
    std::string hex;
    if (!running_.Hex(&hex)) throw MakeSysError(info.Env(), SysError::Of(ENOMEM, "md5"));
    return Napi::String::New(info.Env(), hex);
  }

  static constexpr napi_type_tag kTag = {0x656d6265722d6761, 0x3a6d6435};  // "ember-ga:md5"
  md5::Running running_;
};

// pread(fd, buffer, offset, path, md5?): Promise<number>. One read into buffer (offset -1: at the
// current position, for pipes and character devices); 0 at end of file. With an Md5, the bytes
// read are hashed into it on the pool thread.
Napi::Value Pread(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntArg(info, 0, "fd"));
  auto buf = PinBuffer(info, 1);
  int64_t offset = IntArg(info, 2, "offset");
  auto path = StringArg(info, 3, "path");
  Md5* md5 = nullptr;
  std::shared_ptr<Napi::ObjectReference> keep;  // the Md5 stays alive while the task uses it
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    md5 = Md5::Of(info[4]);
    if (md5 == nullptr) throw Napi::TypeError::New(info.Env(), "argument md5 must be an Md5");
    keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info[4].As<Napi::Object>()));
  }
  auto n = std::make_shared<ssize_t>(0);
  return Schedule(
      info.Env(), "ember-ga:pread",
      [fd, buf, offset, path, n, md5, keep] {
        *n = fdio::ReadAt(fd, buf->data, buf->len, offset);
        if (*n < 0) return SysError::Of(static_cast<int>(-*n), "read", path);
        if (md5 != nullptr) md5->Update(buf->data, static_cast<size_t>(*n));
        return SysError::Ok();
      },
      [n](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(*n)); });
}

// preadCached(fd, buffer, offset): number, synchronous: the bytes read when the data is in the
// page cache, else -errno (-EAGAIN, -EOPNOTSUPP, ...) and the caller uses pread().
Napi::Value PreadCached(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntArg(info, 0, "fd"));
  auto b = BufferArg(info, 1, "buffer");
  int64_t offset = IntArg(info, 2, "offset");
  return Napi::Number::New(info.Env(), static_cast<double>(fdio::ReadCached(fd, b.Data(), b.Length(), offset)));
}

// pwrite(fd, buffer, offset, path): Promise<number>. Writes the whole buffer (offset -1: at the
// current position); resolves with its length, or rejects with errno.
Napi::Value Pwrite(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntArg(info, 0, "fd"));
  auto buf = PinBuffer(info, 1);
  int64_t offset = IntArg(info, 2, "offset");
  auto path = StringArg(info, 3, "path");
  return Schedule(
      info.Env(), "ember-ga:pwrite",
      [fd, buf, offset, path] {
        int err;
        fdio::WriteAll(fd, buf->data, buf->len, offset, &err);
        return err ? SysError::Of(err, "write", path) : SysError::Ok();
      },
      [buf](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(buf->len)); });
}

// lseek(fd, offset, whence, path): bigint, synchronous (lseek does no I/O): the new offset, which
// may be past 2^53 (ext4 puts a directory's end at INT64_MAX), as offset may be (a bigint).
// Throws errno's error (EINVAL for a negative result, ESPIPE for a pipe).
Napi::Value Lseek(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntArg(info, 0, "fd"));
  int64_t offset = IntArg(info, 1, "offset");
  int whence = static_cast<int>(IntArg(info, 2, "whence"));
  auto path = StringArg(info, 3, "path");
  off_t r = lseek(fd, static_cast<off_t>(offset), whence);
  if (r < 0) throw MakeSysError(info.Env(), SysError::Of(errno, "lseek", path));
  return Napi::BigInt::New(info.Env(), static_cast<int64_t>(r));
}

// linkFd(fd, path): Promise<void>. Names the O_TMPFILE file open at fd `path` (EEXIST if taken).
Napi::Value LinkFd(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntArg(info, 0, "fd"));
  auto path = StringArg(info, 1, "path");
  return Schedule(
      info.Env(), "ember-ga:linkFd", [fd, path] { return fdio::LinkFd(fd, path); },
      [](Napi::Env env) { return env.Undefined(); });
}

// base64(buffer, length): Buffer, synchronous: the base64 text of buffer's first `length` bytes,
// as bytes. For file-read's large answers, whose text then never is a string on V8's heap: each
// 1 MiB chunk as strings left 1.4 MB of garbage, and collecting it took more of the main thread
// than the encoding (about 1 ms a MiB here). A large one's memory is reused (answer_pool.h).
Napi::Value Base64(const Napi::CallbackInfo& info) {
  auto src = BufferArg(info, 0, "buffer");
  int64_t n = IntArg(info, 1, "length");
  if (n < 0 || static_cast<uint64_t>(n) > src.Length())
    throw Napi::RangeError::New(info.Env(), "length must be within the buffer");
  auto out = AnswerBuffer(info.Env(), (static_cast<size_t>(n) + 2) / 3 * 4);
  base64::Encode(reinterpret_cast<const unsigned char*>(src.Data()), static_cast<size_t>(n), out.Data());
  return out;
}

// base64Decode(src, start, end, dst): number, synchronous: decodes src[start, end) as strict
// base64 into dst, which must hold the decoded length; the decoded length, or -1 when the text
// is not strict base64. For file-write's large chunks, decoded straight from the request line's
// bytes (no string on V8's heap).
Napi::Value Base64Decode(const Napi::CallbackInfo& info) {
  auto src = BufferArg(info, 0, "src");
  int64_t start = IntArg(info, 1, "start");
  int64_t end = IntArg(info, 2, "end");
  auto dst = BufferArg(info, 3, "dst");
  if (start < 0 || end < start || static_cast<uint64_t>(end) > src.Length()) {
    throw Napi::RangeError::New(info.Env(), "start and end must be within the source buffer");
  }
  size_t n = static_cast<size_t>(end - start);
  const auto* text = reinterpret_cast<const unsigned char*>(src.Data()) + start;
  // Room for the decoded length, which the padding at the end tells (invalid text needs none).
  if (n % 4 == 0 && dst.Length() < n / 4 * 3 - base64::Padding(text, n)) {
    throw Napi::RangeError::New(info.Env(), "the destination buffer is too small");
  }
  return Napi::Number::New(info.Env(),
                           static_cast<double>(base64::Decode(text, n, reinterpret_cast<unsigned char*>(dst.Data()))));
}

// pwriteWait(fd, buffer, offset, path, waitMicros): number | Promise<number> | undefined. The
// whole buffer written at offset (>= 0) on the WriteHelper's thread while this one waits for it
// up to waitMicros: its length when that was long enough; a promise that settles as pwrite()'s
// would (rejected at once on an error within the wait) otherwise; undefined, with nothing done,
// while an earlier write that ran out of time is still going on: the caller uses pwrite().
// One per environment; a write that ran out of time keeps its buffer and the event loop alive
// until it is done, like a pending fs call.
class WaitedWrites {
 public:
  explicit WaitedWrites(Napi::Env env) : env_(env), context_(env, "ember-ga:pwriteWait") {
    async_ = new uv_async_t;
    uv_async_init(EventLoop(env), async_, [](uv_async_t* a) {
      if (a->data != nullptr) static_cast<WaitedWrites*>(a->data)->OnLate();
    });
    async_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    helper_ = std::make_unique<WriteHelper>([this] { uv_async_send(async_); });
  }

  ~WaitedWrites() {
    helper_.reset();  // no notify from here on
    CloseHandle(async_);
    // A write still under way may read the buffer until the kernel lets it go: keep it.
    if (late_) pinned_.SuppressDestruct();
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = static_cast<int>(IntArg(info, 0, "fd"));
    auto buf = BufferArg(info, 1, "buffer");
    int64_t offset = IntArg(info, 2, "offset");
    int64_t wait = IntArg(info, 4, "waitMicros");
    if (offset < 0 || wait < 0) throw Napi::RangeError::New(env, "offset and waitMicros must be >= 0");
    if (late_) return env.Undefined();
    ssize_t n = 0;
    switch (helper_->Write(fd, buf.Data(), buf.Length(), offset, std::chrono::microseconds(wait), &n)) {
      case WriteHelper::kBusy:
        return env.Undefined();
      case WriteHelper::kDone: {
        if (n >= 0) return Napi::Number::New(env, static_cast<double>(n));
        auto failed = Napi::Promise::Deferred::New(env);
        failed.Reject(
            MakeSysError(env, SysError::Of(static_cast<int>(-n), "write", StringArg(info, 3, "path"))).Value());
        return failed.Promise();
      }
      case WriteHelper::kLate:
        break;
    }
    late_ = std::make_unique<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
    pinned_ = Napi::Persistent(buf);
    path_ = StringArg(info, 3, "path");
    uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    return late_->Promise();
  }

 private:
  // On the main thread, woken by the helper: settles the write that ran out of time.
  void OnLate() {
    ssize_t n = 0;
    if (!late_ || !helper_->TakeLate(&n)) return;
    Napi::HandleScope scope(env_);
    // A callback scope of its own, so the promise's reactions run now (as an fs callback's would).
    Napi::CallbackScope callback(env_, context_);
    auto deferred = std::move(late_);
    size_t len = pinned_.Value().Length();
    pinned_.Reset();
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    if (n >= 0)
      deferred->Resolve(Napi::Number::New(env_, static_cast<double>(len)));
    else
      deferred->Reject(MakeSysError(env_, SysError::Of(static_cast<int>(-n), "write", path_)).Value());
  }

  Napi::Env env_;
  Napi::AsyncContext context_;
  uv_async_t* async_ = nullptr;
  std::unique_ptr<WriteHelper> helper_;
  std::unique_ptr<Napi::Promise::Deferred> late_;  // the write that ran out of time, if any
  Napi::Reference<Napi::Buffer<char>> pinned_;     // its buffer
  std::string path_;                               // its path, for its error
};

// base64DecodeRun(src, start, end, dst, at): number, synchronous: base64::DecodeRun of
// src[start, end) into dst from `at`; the characters decoded. For a long string decoded as its
// request arrives, piece by piece, with no copy of the request's bytes.
Napi::Value Base64DecodeRun(const Napi::CallbackInfo& info) {
  auto src = BufferArg(info, 0, "src");
  int64_t start = IntArg(info, 1, "start");
  int64_t end = IntArg(info, 2, "end");
  auto dst = BufferArg(info, 3, "dst");
  int64_t at = IntArg(info, 4, "at");
  if (start < 0 || end < start || static_cast<uint64_t>(end) > src.Length()) {
    throw Napi::RangeError::New(info.Env(), "start and end must be within the source buffer");
  }
  if (at < 0 || static_cast<uint64_t>(at) > dst.Length()) {
    throw Napi::RangeError::New(info.Env(), "at must be within the destination buffer");
  }
  size_t n =
      base64::DecodeRun(reinterpret_cast<const unsigned char*>(src.Data()) + start, static_cast<size_t>(end - start),
                        reinterpret_cast<unsigned char*>(dst.Data()) + at, dst.Length() - static_cast<size_t>(at));
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

void Init(Napi::Env env, Napi::Object exports) {
  fdio::Open();
  exports.Set("Md5", Md5::Define(env));
  exports.Set("md5File", Napi::Function::New<Md5File>(env, "md5File"));
  exports.Set("pread", Napi::Function::New<Pread>(env, "pread"));
  exports.Set("preadCached", Napi::Function::New<PreadCached>(env, "preadCached"));
  exports.Set("pwrite", Napi::Function::New<Pwrite>(env, "pwrite"));
  auto* waited = new WaitedWrites(env);
  env.AddCleanupHook([waited] { delete waited; });
  exports.Set(
      "pwriteWait",
      Napi::Function::New(
          env, [](const Napi::CallbackInfo& info) { return static_cast<WaitedWrites*>(info.Data())->Write(info); },
          "pwriteWait", waited));
  exports.Set("linkFd", Napi::Function::New<LinkFd>(env, "linkFd"));
  exports.Set("lseek", Napi::Function::New<Lseek>(env, "lseek"));
  exports.Set("O_TMPFILE", Napi::Number::New(env, O_TMPFILE));
  exports.Set("cancelStreams", Napi::Function::New(
                                   env,
                                   [](const Napi::CallbackInfo& info) {
                                     fdio::CancelStreams();
                                     return info.Env().Undefined();
                                   },
                                   "cancelStreams"));
  exports.Set("base64", Napi::Function::New<Base64>(env, "base64"));
  exports.Set("base64Decode", Napi::Function::New<Base64Decode>(env, "base64Decode"));
  exports.Set("base64DecodeRun", Napi::Function::New<Base64DecodeRun>(env, "base64DecodeRun"));
}

Module fileio_module("fileio", Init);

}  // namespace
}  // namespace ember
