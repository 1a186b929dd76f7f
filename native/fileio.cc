// File I/O for the file commands: the md5 of a whole file, chunked reads and writes on an open
// descriptor at an explicit offset, and the running md5 of what a read handle reads.
//
// The kernel-facing part (namespace fileio) is plain functions on fds and byte ranges that
// return SysError or -errno; the glue at the bottom only converts arguments and results and
// runs the blocking calls on the thread pool through ember::Schedule (md5 on a thread of its
// own through ember::ScheduleOnThread).
//
// md5: OpenSSL's MD5 (the node binary exports libcrypto's symbols, so nothing extra is linked).
// A whole-file digest is CPU-bound (MD5 is one serial chain), so the way to beat md5sum is to
// keep the hashing thread hashing: for large regular files a second thread reads 1 MiB chunks
// into a small ring of buffers while the first hashes the previous ones.
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace ember {
namespace fileio {

constexpr size_t kMd5Chunk = 1 << 20;          // bytes per read() while hashing
constexpr size_t kMd5Slots = 4;                // buffers in the read-ahead ring
constexpr int64_t kMd5ThreadedMin = 8 << 20;   // smaller files are hashed on one thread

// Stream I/O (pipes, character devices: offset < 0) can block forever. FileHandle waits for
// streams on the event loop (FdPoll, below) and comes here only for a device epoll cannot watch;
// a thread-pool thread blocked in read() there would keep the process from exiting (Node joins
// its pool at exit). So stream calls first poll the fd together with this eventfd;
// CancelStreams() makes it readable for good, and every stream call, waiting or future, fails
// with ECANCELED.
int CancelFd() {
  static int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return fd;
}

void CancelStreams() {
  uint64_t one = 1;
  if (write(CancelFd(), &one, sizeof one) < 0) {
    // Only fails if the counter would overflow: it is already set.
  }
}

// Waits until fd is ready for `events` or streams are cancelled: 0, or -ECANCELED / -errno.
int WaitStream(int fd, short events) {
  struct pollfd p[2] = {{fd, events, 0}, {CancelFd(), POLLIN, 0}};
  for (;;) {
    int r = poll(p, CancelFd() >= 0 ? 2 : 1, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (p[1].revents & POLLIN) return -ECANCELED;
    return 0;  // ready, or an error/hang-up the read or write itself will report
  }
}

// One read(2) or pread(2) (offset < 0: a stream, at the current position), retried on EINTR.
// Returns the byte count (0 at end of file) or -errno. A positional read on a device that says
// "not yet" (/dev/kmsg at its end) returns -EAGAIN at once: the caller waits for it on the event
// loop (lib/files/handle.ts), so no pool thread is held for as long as no data comes.
ssize_t ReadAt(int fd, void* buf, size_t len, int64_t offset) {
  for (;;) {
    if (offset < 0) {
      if (int w = WaitStream(fd, POLLIN); w < 0) return w;
    }
    ssize_t n = offset < 0 ? read(fd, buf, len) : pread(fd, buf, len, offset);
    if (n >= 0) return n;
    if (errno == EAGAIN && offset >= 0) return -EAGAIN;
    if (errno != EINTR && errno != EAGAIN) return -errno;
  }
}

// The page-cache-only read: preadv2(RWF_NOWAIT) never blocks on the disk. Returns the byte
// count, or -errno: -EAGAIN when the data is not cached, -EOPNOTSUPP where the filesystem
// (tmpfs, NFS, FUSE...) or the file (a pipe) does not support it.
ssize_t ReadCached(int fd, void* buf, size_t len, int64_t offset) {
#ifdef RWF_NOWAIT
  if (offset < 0) return -EOPNOTSUPP;
  struct iovec iov = {buf, len};
  ssize_t n = preadv2(fd, &iov, 1, offset, RWF_NOWAIT);
  return n >= 0 ? n : -errno;
#else
  return -EOPNOTSUPP;
#endif
}

// Writes all of buf (a short write is continued; offset < 0: at the current position).
// Returns the bytes written, which is len unless an error stopped it (then *err is set).
size_t WriteAll(int fd, const char* buf, size_t len, int64_t offset, int* err) {
  size_t done = 0;
  *err = 0;
  while (done < len) {
    if (offset < 0) {
      if (int w = WaitStream(fd, POLLOUT); w < 0) {
        *err = -w;
        break;
      }
    }
    ssize_t n = offset < 0 ? write(fd, buf + done, len - done)
                           : pwrite(fd, buf + done, len - done, offset + static_cast<int64_t>(done));
    if (n < 0) {
      if (errno == EAGAIN && offset >= 0) {  // a device that says "not yet": wait, do not spin
        if (int w = WaitStream(fd, POLLOUT); w < 0) {
          *err = -w;
          break;
        }
        continue;
      }
      if (errno == EINTR || errno == EAGAIN) continue;
      *err = errno;
      break;
    }
    if (n == 0) {  // should not happen for a regular file; do not spin
      *err = EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

namespace {

struct Md5Ctx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Md5Ctx() = default;
  Md5Ctx(const Md5Ctx&) = delete;
  Md5Ctx& operator=(const Md5Ctx&) = delete;
  ~Md5Ctx() { EVP_MD_CTX_free(ctx); }
  bool Init() { return ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_md5(), nullptr) == 1; }
  void Update(const void* p, size_t n) { EVP_DigestUpdate(ctx, p, n); }
  void Final(unsigned char out[16]) {
    unsigned int len = 16;
    EVP_DigestFinal_ex(ctx, out, &len);
  }
  // The digest of what was hashed so far, as 32 lowercase hex digits; hashing can go on.
  bool HexSoFar(std::string* hex) const {
    Md5Ctx copy;
    if (copy.ctx == nullptr || EVP_MD_CTX_copy_ex(copy.ctx, ctx) != 1) return false;
    unsigned char digest[16];
    copy.Final(digest);
    ToHex(digest, hex);
    return true;
  }
  static void ToHex(const unsigned char digest[16], std::string* hex) {
    static const char kHex[] = "0123456789abcdef";
    hex->resize(32);
    for (int i = 0; i < 16; i++) {
      (*hex)[2 * i] = kHex[digest[i] >> 4];
      (*hex)[2 * i + 1] = kHex[digest[i] & 15];
    }
  }
};

bool Cancelled(const std::atomic<bool>& cancel) { return cancel.load(std::memory_order_relaxed); }

// Reads the whole fd into md5 on this thread, looking at `cancel` before each read.
SysError HashSerial(int fd, Md5Ctx& md5, const std::string& path, const std::atomic<bool>& cancel) {
  std::unique_ptr<char[]> buf(new char[kMd5Chunk]);
  for (;;) {
    if (Cancelled(cancel)) return SysError::Of(ECANCELED, "md5", path);
    ssize_t n = ReadAt(fd, buf.get(), kMd5Chunk, -1);
    if (n < 0) return SysError::Of(static_cast<int>(-n), "read", path);
    if (n == 0) return SysError::Ok();
    md5.Update(buf.get(), static_cast<size_t>(n));
  }
}

// A reader thread fills a ring of kMd5Slots buffers; this thread hashes them in order. Both look
// at `cancel` between chunks, so a cancelled digest ends within one read and one chunk's hashing.
SysError HashPipelined(int fd, Md5Ctx& md5, const std::string& path, const std::atomic<bool>& cancel) {
  struct Slot {
    std::unique_ptr<char[]> data{new char[kMd5Chunk]};
    size_t len = 0;
  };
  std::vector<Slot> slots(kMd5Slots);
  std::mutex mu;
  std::condition_variable cv;
  size_t filled = 0;    // slots the reader has produced (monotonic)
  size_t consumed = 0;  // slots the hasher has finished (monotonic)
  bool done = false;    // reader reached end of file or failed
  int read_err = 0;
  bool stop = false;    // hasher gave up; reader must exit
  int64_t offset = 0;   // the reader's position (only it touches this)

  std::thread reader([&] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || filled - consumed < kMd5Slots; });
        if (stop) return;
      }
      if (Cancelled(cancel)) {  // the hasher may be waiting for this chunk: say the file ends here
        std::lock_guard<std::mutex> lock(mu);
        done = true;
        cv.notify_all();
        return;
      }
      Slot& s = slots[filled % kMd5Slots];
      ssize_t n = ReadAt(fd, s.data.get(), kMd5Chunk, offset);  // a regular file: no poll
      if (n > 0) offset += n;
      std::lock_guard<std::mutex> lock(mu);
      if (n <= 0) {
        done = true;
        read_err = n < 0 ? static_cast<int>(-n) : 0;
        cv.notify_all();
        return;
      }
      s.len = static_cast<size_t>(n);
      filled++;
      cv.notify_all();
    }
  });

  for (;;) {
    size_t index;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return filled > consumed || done; });
      if (filled == consumed) break;  // done and everything hashed
      index = consumed % kMd5Slots;
    }
    if (Cancelled(cancel)) break;
    md5.Update(slots[index].data.get(), slots[index].len);
    std::lock_guard<std::mutex> lock(mu);
    consumed++;
    cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  reader.join();
  if (Cancelled(cancel)) return SysError::Of(ECANCELED, "md5", path);
  return read_err ? SysError::Of(read_err, "read", path) : SysError::Ok();
}

}  // namespace

// The md5 of the file at path, as 32 lowercase hex digits in *hex; ECANCELED once `cancel` is
// set (it may be set from any thread at any time, also after the digest is done).
SysError Md5File(const std::string& path, std::string* hex, const std::atomic<bool>& cancel) {
  // O_NONBLOCK: a FIFO with no writer must not block the open (only poll() can be cancelled).
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return SysError::Of(errno, "open", path);
  FileStat st;
  if (StatFd(fd, &st) != 0) {
    SysError e = SysError::Of(errno, "fstat", path);
    close(fd);
    return e;
  }
  if (S_ISDIR(st.mode)) {
    close(fd);
    return SysError::Of(EISDIR, "read", path);
  }
  if (!S_ISREG(st.mode) && !S_ISBLK(st.mode)) {
    // A pipe, socket or character device has no end the agent can count on (/dev/zero never
    // ends, a FIFO ends when its writer says so): hashing one would hold a thread for as long.
    close(fd);
    return SysError::Of(EINVAL, "md5", path);
  }
  bool large = S_ISREG(st.mode) && static_cast<int64_t>(st.size) >= kMd5ThreadedMin;
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // a hint: failure changes nothing
  Md5Ctx md5;
  SysError err;
  if (!md5.Init()) {
    err = SysError::Of(ENOSYS, "md5", path);
  } else {
    err = large ? HashPipelined(fd, md5, path, cancel) : HashSerial(fd, md5, path, cancel);
  }
  close(fd);
  if (err) return err;
  unsigned char digest[16];
  md5.Final(digest);
  Md5Ctx::ToHex(digest, hex);
  return SysError::Ok();
}

// The standard base64 (padded, no line breaks) of src[0, n) into dst, which has room for
// 4 * ceil(n / 3) bytes: OpenSSL's encoder, which writes a NUL after its output and takes an int
// length. So the bytes go in blocks of whole 3-byte groups, each block's NUL overwritten by the
// next block's text, and the last 1-3 bytes through a small buffer of their own.
void Base64Encode(const unsigned char* src, size_t n, unsigned char* dst) {
  constexpr size_t kBlock = 3 << 20;
  const size_t body = n == 0 ? 0 : (n - 1) / 3 * 3;
  for (size_t off = 0; off < body; off += kBlock) {
    EVP_EncodeBlock(dst + off / 3 * 4, src + off, static_cast<int>(std::min(kBlock, body - off)));
  }
  if (n > body) {
    unsigned char tail[5];
    EVP_EncodeBlock(tail, src + body, static_cast<int>(n - body));
    memcpy(dst + body / 3 * 4, tail, 4);
  }
}


// The '=' that end the n characters of base64 text at src: 0, 1 or 2.
size_t Base64Padding(const unsigned char* src, size_t n) {
  size_t pad = 0;
  while (pad < 2 && pad < n && src[n - 1 - pad] == '=') pad++;
  return pad;
}

// Strict base64 (standard alphabet, '=' padding only as the last one or two characters, nothing
// else: no whitespace, no line breaks, no URL alphabet) of the n characters at src into dst,
// which has room for the decoded length: n / 4 * 3 less the padding. The decoded length, or -1
// when the text is not that. OpenSSL's decoder does the work; it is lenient in three ways, each
// caught here: '=' decodes as zero bits wherever it stands (so '=' must only end the text), and
// it skips whitespace at the start and whitespace, line ends and '-' at the end of what it is
// given (so each block must decode to exactly its length's worth of bytes). It writes whole
// 3-byte groups, padding included, so the last group goes through a small buffer of its own
// (dst is exactly the data's size: a 1 MiB chunk fits a 1 MiB buffer); and it takes an int
// length, so the rest goes in blocks of 3 MiB.
int64_t Base64Decode(const unsigned char* src, size_t n, unsigned char* dst) {
  if (n % 4 != 0) return -1;
  if (n == 0) return 0;
  const size_t pad = Base64Padding(src, n);
  if (memchr(src, '=', n - pad) != nullptr) return -1;
  constexpr size_t kBlock = 3 << 20;  // characters: a multiple of 4
  const size_t body = n - 4;
  for (size_t off = 0; off < body; off += kBlock) {
    size_t len = std::min(kBlock, body - off);
    if (EVP_DecodeBlock(dst + off / 4 * 3, src + off, static_cast<int>(len)) != static_cast<int>(len / 4 * 3)) return -1;
  }
  unsigned char last[3];
  if (EVP_DecodeBlock(last, src + body, 4) != 3) return -1;
  memcpy(dst + body / 4 * 3, last, 3 - pad);
  return static_cast<int64_t>(n / 4 * 3 - pad);
}

}  // namespace fileio

namespace {

// A Buffer argument kept alive (and its bytes addressable) while a thread-pool task uses it.
// Created and destroyed on the main thread: the task's lambdas are destroyed there.
struct PinnedBuffer {
  Napi::Reference<Napi::Buffer<char>> ref;
  char* data;
  size_t len;
};

// Argument i, which must be a Buffer.
Napi::Buffer<char> BufferArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), "argument buffer must be a Buffer");
  return info[i].As<Napi::Buffer<char>>();
}

std::shared_ptr<PinnedBuffer> PinBuffer(const Napi::CallbackInfo& info, size_t i) {
  auto b = BufferArg(info, i);
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
      env, "ember-ga:md5", [path, hex, cancel] { return fileio::Md5File(path, hex.get(), *cancel); },
      [hex](Napi::Env env) { return Napi::String::New(env, *hex); }, path);
  Napi::Object job = Napi::Object::New(env);
  job.Set("promise", promise);
  job.Set("cancel", Napi::Function::New(env, [cancel](const Napi::CallbackInfo& info) {
    cancel->store(true, std::memory_order_relaxed);
    return info.Env().Undefined();
  }, "cancel"));
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
    if (!ctx_.Init()) throw MakeSysError(info.Env(), SysError::Of(ENOSYS, "md5"));
    info.This().As<Napi::Object>().TypeTag(&kTag);
  }

  // The Md5 that value is, or nullptr for anything else.
  static Md5* Of(const Napi::Value& value) {
    if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kTag)) return nullptr;
    return Unwrap(value.As<Napi::Object>());
  }

  void Update(const void* p, size_t n) { ctx_.Update(p, n); }

 private:
  Napi::Value UpdateJs(const Napi::CallbackInfo& info) {
    auto b = BufferArg(info, 0);
    int64_t n = IntArg(info, 1, "length");
    if (n < 0 || static_cast<uint64_t>(n) > b.Length()) throw Napi::RangeError::New(info.Env(), "length must be within the buffer");
    Update(b.Data(), static_cast<size_t>(n));
    return info.Env().Undefined();
  }

  Napi::Value Digest(const Napi::CallbackInfo& info) {
    std::string hex;
    if (!ctx_.HexSoFar(&hex)) throw MakeSysError(info.Env(), SysError::Of(ENOMEM, "md5"));
    return Napi::String::New(info.Env(), hex);
  }

  static constexpr napi_type_tag kTag = {0x656d6265722d6761, 0x3a6d6435};  // "ember-ga:md5"
  fileio::Md5Ctx ctx_;
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
        *n = fileio::ReadAt(fd, buf->data, buf->len, offset);
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
  auto b = BufferArg(info, 1);
  int64_t offset = IntArg(info, 2, "offset");
  return Napi::Number::New(info.Env(), static_cast<double>(fileio::ReadCached(fd, b.Data(), b.Length(), offset)));
}

// base64(buffer, length): Buffer, synchronous: the base64 text of buffer's first `length` bytes,
// as bytes. For file-read's large answers, whose text then never is a string on V8's heap: each
// 1 MiB chunk as strings left 1.4 MB of garbage, and collecting it took more of the main thread
// than the encoding (about 1 ms a MiB here).
Napi::Value Base64(const Napi::CallbackInfo& info) {
  auto src = BufferArg(info, 0);
  int64_t n = IntArg(info, 1, "length");
  if (n < 0 || static_cast<uint64_t>(n) > src.Length()) throw Napi::RangeError::New(info.Env(), "length must be within the buffer");
  auto out = Napi::Buffer<unsigned char>::New(info.Env(), (static_cast<size_t>(n) + 2) / 3 * 4);
  fileio::Base64Encode(reinterpret_cast<const unsigned char*>(src.Data()), static_cast<size_t>(n), out.Data());
  return out;
}

// base64Decode(src, start, end, dst): number, synchronous: decodes src[start, end) as strict
// base64 (fileio::Base64Decode) into dst, which must hold the decoded length; the
// decoded length, or -1 when the text is not strict base64. For file-write's large chunks,
// decoded straight from the request line's bytes (no string on V8's heap).
Napi::Value Base64Decode(const Napi::CallbackInfo& info) {
  auto src = BufferArg(info, 0);
  int64_t start = IntArg(info, 1, "start");
  int64_t end = IntArg(info, 2, "end");
  auto dst = BufferArg(info, 3);
  if (start < 0 || end < start || static_cast<uint64_t>(end) > src.Length()) {
    throw Napi::RangeError::New(info.Env(), "start and end must be within the source buffer");
  }
  size_t n = static_cast<size_t>(end - start);
  const auto* text = reinterpret_cast<const unsigned char*>(src.Data()) + start;
  // Room for the decoded length, which the padding at the end tells (invalid text needs none).
  if (n % 4 == 0 && dst.Length() < n / 4 * 3 - fileio::Base64Padding(text, n)) {
    throw Napi::RangeError::New(info.Env(), "the destination buffer is too small");
  }
  return Napi::Number::New(info.Env(), static_cast<double>(fileio::Base64Decode(text, n, reinterpret_cast<unsigned char*>(dst.Data()))));
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
        fileio::WriteAll(fd, buf->data, buf->len, offset, &err);
        return err ? SysError::Of(err, "write", path) : SysError::Ok();
      },
      [buf](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(buf->len)); });
}

// linkFd(fd, path): Promise<void>. Gives the file open at fd (an O_TMPFILE file: no name yet) the
// name path, which must not exist (EEXIST). linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; without
// it (ENOENT, EPERM) the /proc/self/fd link with AT_SYMLINK_FOLLOW does the same for any user.
Napi::Value LinkFd(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(IntArg(info, 0, "fd"));
  auto path = StringArg(info, 1, "path");
  return Schedule(
      info.Env(), "ember-ga:linkFd",
      [fd, path] {
        if (linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH) == 0) return SysError::Ok();
        if (errno != ENOENT && errno != EPERM) return SysError::Of(errno, "link", path);
        std::string proc = "/proc/self/fd/" + std::to_string(fd);
        if (linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) return SysError::Ok();
        return SysError::Of(errno, "link", path);
      },
      [](Napi::Env env) { return env.Undefined(); });
}

// Readiness of a pipe, FIFO or character device from the event loop (epoll through uv_poll), so
// stream I/O that has to wait holds no thread-pool thread: `new FdPoll(fd, onReady)` throws
// (errno EPERM) for an fd epoll refuses (regular files, devices without poll support);
// wait(writable) arms one notification: onReady() runs once the fd is readable (writable), hung
// up or in error; close() stops waiting for good. The fd stays open: its owner closes it.
class FdPoll : public Napi::ObjectWrap<FdPoll> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoll", {InstanceMethod<&FdPoll::Wait>("wait"), InstanceMethod<&FdPoll::Close>("close")});
  }

  FdPoll(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdPoll>(info) {
    Napi::Env env = info.Env();
    int fd = static_cast<int>(IntArg(info, 0, "fd"));
    if (info.Length() < 2 || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "argument onReady must be a function");
    on_ready_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "ember-ga:fdpoll");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
    poll_ = new uv_poll_t;
    if (int r = uv_poll_init(loop, poll_, fd); r != 0) {
      delete poll_;
      poll_ = nullptr;
      throw MakeSysError(env, SysError::Of(-r, "epoll_ctl"));
    }
    poll_->data = this;
  }

  ~FdPoll() override { Stop(); }

 private:
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    if (poll_ == nullptr) throw Napi::Error::New(info.Env(), "FdPoll is closed");
    int events = (info.Length() > 0 && info[0].ToBoolean().Value() ? UV_WRITABLE : UV_READABLE) | UV_DISCONNECT;
    if (!armed_) {
      Ref();  // the callback must outlive a wait nobody else holds on to
      armed_ = true;
    }
    uv_poll_start(poll_, events, [](uv_poll_t* h, int, int) {
      if (h->data != nullptr) static_cast<FdPoll*>(h->data)->Fire();
    });
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    if (armed_) {
      armed_ = false;
      Unref();
    }
    return info.Env().Undefined();
  }

  void Fire() {
    uv_poll_stop(poll_);
    armed_ = false;
    Unref();
    CallFromLoop(Env(), on_ready_, *context_);
  }

  void Stop() {
    CloseHandle(poll_);
    poll_ = nullptr;
  }

  uv_poll_t* poll_ = nullptr;
  bool armed_ = false;
  Napi::FunctionReference on_ready_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

void Init(Napi::Env env, Napi::Object exports) {
  fileio::CancelFd();  // made now, not by the first stream call: an fd that appears later looks like a leak
  exports.Set("FdPoll", FdPoll::Define(env));
  exports.Set("Md5", Md5::Define(env));
  exports.Set("md5File", Napi::Function::New<Md5File>(env, "md5File"));
  exports.Set("pread", Napi::Function::New<Pread>(env, "pread"));
  exports.Set("preadCached", Napi::Function::New<PreadCached>(env, "preadCached"));
  exports.Set("pwrite", Napi::Function::New<Pwrite>(env, "pwrite"));
  exports.Set("base64", Napi::Function::New<Base64>(env, "base64"));
  exports.Set("base64Decode", Napi::Function::New<Base64Decode>(env, "base64Decode"));
  exports.Set("linkFd", Napi::Function::New<LinkFd>(env, "linkFd"));
  exports.Set("O_TMPFILE", Napi::Number::New(env, O_TMPFILE));
  exports.Set("cancelStreams", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    fileio::CancelStreams();
    return info.Env().Undefined();
  }, "cancelStreams"));
}

Module fileio_module("fileio", Init);

}  // namespace
}  // namespace ember
