#include "fdio.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace ember {
namespace fdio {
namespace {

int CancelFd() {
  static int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return fd;
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

}  // namespace

void Open() { CancelFd(); }

void CancelStreams() {
  uint64_t one = 1;
  if (write(CancelFd(), &one, sizeof one) < 0) {
    // Only fails if the counter would overflow: it is already set.
  }
}

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

// linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; without it (ENOENT, EPERM) the
// /proc/self/fd link with AT_SYMLINK_FOLLOW does the same for any user.
SysError LinkFd(int fd, const std::string& path) {
  if (linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH) == 0) return SysError::Ok();
  if (errno != ENOENT && errno != EPERM) return SysError::Of(errno, "link", path);
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  if (linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) return SysError::Ok();
  return SysError::Of(errno, "link", path);
}

}  // namespace fdio
}  // namespace ember
