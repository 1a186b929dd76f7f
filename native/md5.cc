// md5: OpenSSL's MD5 (the node binary exports libcrypto's symbols, so nothing extra is linked).
// A whole-file digest is CPU-bound (MD5 is one serial chain), so the way to beat md5sum is to
// keep the hashing thread hashing: for large regular files a second thread reads 1 MiB chunks
// into a small ring of buffers while the first hashes the previous ones.
#include "md5.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fdio.h"
#include "stat.h"

namespace ember {
namespace md5 {

constexpr size_t kChunk = 1 << 20;         // bytes per read() while hashing
constexpr size_t kSlots = 4;               // buffers in the read-ahead ring
constexpr int64_t kThreadedMin = 8 << 20;  // smaller files are hashed on one thread

namespace {

struct Md5Ctx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Md5Ctx() { EVP_MD_CTX_free(ctx); }
  bool Init() { return ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_md5(), nullptr) == 1; }
  void Update(const void* p, size_t n) { EVP_DigestUpdate(ctx, p, n); }
  void Final(unsigned char out[16]) {
    unsigned int len = 16;
    EVP_DigestFinal_ex(ctx, out, &len);
  }
};

void ToHex(const unsigned char digest[16], std::string* hex) {
  static const char kHex[] = "0123456789abcdef";
  hex->resize(32);
  for (int i = 0; i < 16; i++) {
    (*hex)[2 * i] = kHex[digest[i] >> 4];
    (*hex)[2 * i + 1] = kHex[digest[i] & 15];
  }
}

bool Cancelled(const std::atomic<bool>& cancel) { return cancel.load(std::memory_order_relaxed); }

// Reads the whole fd into md5 on this thread, looking at `cancel` before each read.
SysError HashSerial(int fd, Md5Ctx& md5, const std::string& path, const std::atomic<bool>& cancel) {
  std::unique_ptr<char[]> buf(new char[kChunk]);
  // At explicit offsets: a regular file or block device needs no readiness poll (which would
  // also fail once stream calls are cancelled for exit).
  for (int64_t offset = 0;;) {
    if (Cancelled(cancel)) return SysError::Of(ECANCELED, "md5", path);
    ssize_t n = fdio::ReadAt(fd, buf.get(), kChunk, offset);
    if (n < 0) return SysError::Of(static_cast<int>(-n), "read", path);
    if (n == 0) return SysError::Ok();
    md5.Update(buf.get(), static_cast<size_t>(n));
    offset += n;
  }
}

// A reader thread fills a ring of kSlots buffers; this thread hashes them in order. Both look
// at `cancel` between chunks, so a cancelled digest ends within one read and one chunk's hashing.
SysError HashPipelined(int fd, Md5Ctx& md5, const std::string& path, const std::atomic<bool>& cancel) {
  struct Slot {
    std::unique_ptr<char[]> data{new char[kChunk]};
    size_t len = 0;
  };
  std::vector<Slot> slots(kSlots);
  std::mutex mu;
  std::condition_variable cv;
  size_t filled = 0;    // slots the reader has produced (monotonic)
  size_t consumed = 0;  // slots the hasher has finished (monotonic)
  bool done = false;    // reader reached end of file or failed
  int read_err = 0;
  bool stop = false;   // hasher gave up; reader must exit
  int64_t offset = 0;  // the reader's position (only it touches this)

  std::thread reader([&] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || filled - consumed < kSlots; });
        if (stop) return;
      }
      if (Cancelled(cancel)) {  // the hasher may be waiting for this chunk: say the file ends here
        std::lock_guard<std::mutex> lock(mu);
        done = true;
        cv.notify_all();
        return;
      }
      Slot& s = slots[filled % kSlots];
      ssize_t n = fdio::ReadAt(fd, s.data.get(), kChunk, offset);  // a regular file: no poll
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
      index = consumed % kSlots;
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

SysError File(const std::string& path, std::string* hex, const std::atomic<bool>& cancel) {
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
  bool large = S_ISREG(st.mode) && static_cast<int64_t>(st.size) >= kThreadedMin;
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
  ToHex(digest, hex);
  return SysError::Ok();
}

Running::Running() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ != nullptr && EVP_DigestInit_ex(ctx_, EVP_md5(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = nullptr;
  }
}

Running::~Running() { EVP_MD_CTX_free(ctx_); }

void Running::Update(const void* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }

bool Running::Hex(std::string* hex) const {
  Md5Ctx copy;
  if (copy.ctx == nullptr || EVP_MD_CTX_copy_ex(copy.ctx, ctx_) != 1) return false;
  unsigned char digest[16];
  copy.Final(digest);
  ToHex(digest, hex);
  return true;
}

}  // namespace md5
}  // namespace ember
