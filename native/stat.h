// stat(2) of a path or of an open fd: what the addon looks at. Through statx(2) where the C
// library has it: glibc 2.33 made stat() and fstat() symbols of their own (stat64@GLIBC_2.33),
// so calling them would raise the glibc a prebuild needs from 2.28, what Node itself needs, to
// 2.33; statx() is in glibc 2.28 (emulated on kernels older than 4.11). A source build against a
// C library without statx (musl before 1.2.5) uses stat() and fstat().
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdint>
#include <string>

namespace ember {

struct FileStat {
  uint32_t mode = 0;
  uint64_t size = 0;
  uint64_t ino = 0;
  uint32_t rdev_major = 0, rdev_minor = 0;
};

#ifdef STATX_BASIC_STATS
inline void FromStatx(const struct statx& x, FileStat* st) {
  *st = FileStat{x.stx_mode, x.stx_size, x.stx_ino, x.stx_rdev_major, x.stx_rdev_minor};
}
inline int StatPath(const std::string& path, FileStat* st) {
  struct statx x;
  if (statx(AT_FDCWD, path.c_str(), AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &x) != 0) return -1;
  FromStatx(x, st);
  return 0;
}
inline int StatFd(int fd, FileStat* st) {
  struct statx x;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &x) != 0) return -1;
  FromStatx(x, st);
  return 0;
}
#else
inline void FromStat(const struct stat& x, FileStat* st) {
  *st = FileStat{static_cast<uint32_t>(x.st_mode), static_cast<uint64_t>(x.st_size), static_cast<uint64_t>(x.st_ino),
                 static_cast<uint32_t>(major(x.st_rdev)), static_cast<uint32_t>(minor(x.st_rdev))};
}
inline int StatPath(const std::string& path, FileStat* st) {
  struct stat x;
  if (stat(path.c_str(), &x) != 0) return -1;
  FromStat(x, st);
  return 0;
}
inline int StatFd(int fd, FileStat* st) {
  struct stat x;
  if (fstat(fd, &x) != 0) return -1;
  FromStat(x, st);
  return 0;
}
#endif

}  // namespace ember
