// Reads and writes on an open descriptor at an explicit offset, for the file commands: plain
// functions on fds and byte ranges returning -errno or SysError, no N-API types (the glue is
// fileio.cc). Blocking: callers run them off the main thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "syserror.h"

namespace ember {
namespace fdio {

// Stream I/O (pipes, character devices: offset < 0) can block forever. FileHandle waits for
// streams on the event loop (FdPoll) and comes here only for a device epoll cannot watch; a
// thread-pool thread blocked in read() there would keep the process from exiting (Node joins
// its pool at exit). So stream calls first poll the fd together with an eventfd;
// CancelStreams() makes it readable for good, and every stream call, waiting or future, fails
// with ECANCELED. Open() makes that eventfd (at load: one that appears later looks like a leak).
void Open();
void CancelStreams();

// One read(2) or pread(2) (offset < 0: a stream, at the current position), retried on EINTR.
// Returns the byte count (0 at end of file) or -errno. A positional read on a device that says
// "not yet" (/dev/kmsg at its end) returns -EAGAIN at once: the caller waits for it on the event
// loop (lib/files/handle.ts), so no pool thread is held for as long as no data comes.
ssize_t ReadAt(int fd, void* buf, size_t len, int64_t offset);

// The page-cache-only read: preadv2(RWF_NOWAIT) never blocks on the disk. Returns the byte
// count, or -errno: -EAGAIN when the data is not cached, -EOPNOTSUPP where the filesystem
// (tmpfs, NFS, FUSE...) or the file (a pipe) does not support it.
ssize_t ReadCached(int fd, void* buf, size_t len, int64_t offset);

// Writes all of buf (a short write is continued; offset < 0: at the current position).
// Returns the bytes written, which is len unless an error stopped it (then *err is set).
size_t WriteAll(int fd, const char* buf, size_t len, int64_t offset, int* err);

// Gives the file open at fd (an O_TMPFILE file: no name yet) the name path, which must not
// exist (EEXIST).
SysError LinkFd(int fd, const std::string& path);

}  // namespace fdio
}  // namespace ember
