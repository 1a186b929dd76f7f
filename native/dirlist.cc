// Directory listing for directory-list, off the main thread: the names in a directory, and
// lstat of them in batches relative to the directory's fd, as raw numbers (lib/files/stat.ts
// turns them into Go's stat objects). Node's readdir and lstat cost the main thread a Buffer,
// a promise and a stats object of bigints per entry: seconds for 100,000 entries.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "module.h"
#include "schedule.h"

namespace ember {
namespace dirlist {

// Opens the directory at path and reads the name of every entry but "." and "..", in byte
// order (memcmp, shorter first on a tie), into names as NUL-terminated strings. The fd stays
// open for StatAt; on failure it is closed and *fd is -1. Names adding up to more than max_bytes
// (with their NULs) stop the reading: E2BIG, before they are all held (and sorted, and copied).
SysError ReadNames(const std::string& path, uint64_t max_bytes, int* fd, std::string* names, uint32_t* count) {
  *fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0) return SysError::Of(errno, "open", path);
  int dup_fd = fcntl(*fd, F_DUPFD_CLOEXEC, 0);  // closedir() closes the one it reads from
  DIR* dir = dup_fd < 0 ? nullptr : fdopendir(dup_fd);
  if (dir == nullptr) {
    int err = errno;
    if (dup_fd >= 0) close(dup_fd);
    close(*fd);
    *fd = -1;
    return SysError::Of(err, "fdopendir", path);
  }
  // The names in blocks of a fixed size, never moved: one string grown by doubling held the old
  // and the new copy at once (3 times the names, with the sorted copy after).
  constexpr size_t kBlock = 1 << 20;
  std::vector<std::unique_ptr<char[]>> blocks;
  size_t room = 0;                                    // left in the last block
  size_t total = 0;                                   // bytes of names so far
  std::vector<std::pair<const char*, size_t>> spans;  // where each name is, and its length
  for (;;) {
    errno = 0;
    struct dirent* e = readdir(dir);
    if (e == nullptr) break;
    const char* n = e->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
    size_t len = strlen(n);  // at most NAME_MAX: always fits a block
    if (total + spans.size() + len + 1 > max_bytes) {
      errno = E2BIG;
      break;
    }
    if (len > room) {
      blocks.emplace_back(new char[kBlock]);
      room = kBlock;
    }
    char* at = blocks.back().get() + (kBlock - room);
    memcpy(at, n, len);
    room -= len;
    total += len;
    spans.emplace_back(at, len);
  }
  int err = errno;
  closedir(dir);
  if (err != 0) {
    close(*fd);
    *fd = -1;
    return SysError::Of(err, "getdents64", path);
  }
  std::sort(spans.begin(), spans.end(), [](const auto& a, const auto& b) {
    int c = memcmp(a.first, b.first, std::min(a.second, b.second));
    return c != 0 ? c < 0 : a.second < b.second;
  });
  names->reserve(total + spans.size());
  for (const auto& [at, len] : spans) {
    names->append(at, len);
    names->push_back('\0');
  }
  *count = static_cast<uint32_t>(spans.size());
  return SysError::Ok();
}

// The words StatAt writes for each name: exported by name as STAT_LAYOUT, by which
// lib/files/stat.ts reads them. 64-bit values take two words, low first; times are seconds
// (signed, two words) then nanoseconds.
enum Word : size_t {
  kErrno = 0,  // 0, or the errno lstat failed with (the other words are then 0)
  kMode,
  kUid,
  kGid,
  kBlksize,
  kDevMajor,
  kDevMinor,
  kRdevMajor,
  kRdevMinor,
  kNlink,        // 2 words
  kIno = 11,     // 2 words
  kSize = 13,    // 2 words
  kBlocks = 15,  // 2 words
  kAtime = 17,   // 3 words: seconds (2), nanoseconds
  kMtime = 20,
  kCtime = 23,
  kWords = 26,
};

void Put64(uint32_t* w, size_t at, uint64_t v) {
  w[at] = static_cast<uint32_t>(v);
  w[at + 1] = static_cast<uint32_t>(v >> 32);
}

void PutTime(uint32_t* w, size_t at, int64_t sec, uint32_t nsec) {
  Put64(w, at, static_cast<uint64_t>(sec));
  w[at + 2] = nsec;
}

// lstat of one name relative to the directory open at dirfd, into kWords words at w.
void StatOne(int dirfd, const char* name, uint32_t* w) {
#ifdef STATX_BASIC_STATS
  struct statx x;
  if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &x) != 0) {
    w[kErrno] = static_cast<uint32_t>(errno);
    return;
  }
  w[kMode] = x.stx_mode;
  w[kUid] = x.stx_uid;
  w[kGid] = x.stx_gid;
  w[kBlksize] = x.stx_blksize;
  w[kDevMajor] = x.stx_dev_major;
  w[kDevMinor] = x.stx_dev_minor;
  w[kRdevMajor] = x.stx_rdev_major;
  w[kRdevMinor] = x.stx_rdev_minor;
  Put64(w, kNlink, x.stx_nlink);
  Put64(w, kIno, x.stx_ino);
  Put64(w, kSize, x.stx_size);
  Put64(w, kBlocks, x.stx_blocks);
  PutTime(w, kAtime, x.stx_atime.tv_sec, x.stx_atime.tv_nsec);
  PutTime(w, kMtime, x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec);
  PutTime(w, kCtime, x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec);
#else
  struct stat s;
  if (fstatat(dirfd, name, &s, AT_SYMLINK_NOFOLLOW) != 0) {
    w[kErrno] = static_cast<uint32_t>(errno);
    return;
  }
  w[kMode] = s.st_mode;
  w[kUid] = s.st_uid;
  w[kGid] = s.st_gid;
  w[kBlksize] = static_cast<uint32_t>(s.st_blksize);
  w[kDevMajor] = major(s.st_dev);
  w[kDevMinor] = minor(s.st_dev);
  w[kRdevMajor] = major(s.st_rdev);
  w[kRdevMinor] = minor(s.st_rdev);
  Put64(w, kNlink, s.st_nlink);
  Put64(w, kIno, s.st_ino);
  Put64(w, kSize, static_cast<uint64_t>(s.st_size));
  Put64(w, kBlocks, static_cast<uint64_t>(s.st_blocks));
  PutTime(w, kAtime, s.st_atim.tv_sec, static_cast<uint32_t>(s.st_atim.tv_nsec));
  PutTime(w, kMtime, s.st_mtim.tv_sec, static_cast<uint32_t>(s.st_mtim.tv_nsec));
  PutTime(w, kCtime, s.st_ctim.tv_sec, static_cast<uint32_t>(s.st_ctim.tv_nsec));
#endif
}

// lstat of each NUL-terminated name in names, relative to dirfd; kWords words each into words.
void StatAt(int dirfd, const std::string& names, std::vector<uint32_t>* words) {
  for (size_t pos = 0; pos < names.size();) {
    const char* name = names.data() + pos;
    size_t at = words->size();
    words->resize(at + kWords, 0);
    StatOne(dirfd, name, words->data() + at);
    pos += strlen(name) + 1;
  }
}

}  // namespace dirlist

namespace {

// readDirectory(path, maxBytes?): Promise<{fd, names, count}>: the directory open (O_DIRECTORY;
// the caller closes fd) and its entries' names but "." and "..", in byte order, NUL-terminated in
// one Buffer; E2BIG (syscall getdents64) when that would pass maxBytes.
Napi::Value ReadDirectory(const Napi::CallbackInfo& info) {
  struct Result {
    int fd = -1;
    std::string* names = new std::string;  // handed to the Buffer, which frees it
    uint32_t count = 0;
    ~Result() { delete names; }
  };
  auto path = StringArg(info, 0, "path");
  int64_t max = info.Length() > 1 && !info[1].IsUndefined() ? IntArg(info, 1, "maxBytes") : -1;
  uint64_t max_bytes = max < 0 ? UINT64_MAX : static_cast<uint64_t>(max);
  auto r = std::make_shared<Result>();
  return Schedule(
      info.Env(), "ember-ga:readDirectory",
      [path, max_bytes, r] { return dirlist::ReadNames(path, max_bytes, &r->fd, r->names, &r->count); },
      [r](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("fd", Napi::Number::New(env, r->fd));
        // Not copied: tens of MB for a large directory, held twice while the copy was made.
        if (r->names->empty()) {
          o.Set("names", Napi::Buffer<char>::New(env, 0));
        } else {
          std::string* names = r->names;
          r->names = nullptr;
          o.Set("names",
                Napi::Buffer<char>::New(
                    env, names->data(), names->size(), [](Napi::Env, char*, std::string* s) { delete s; }, names));
        }
        o.Set("count", Napi::Number::New(env, r->count));
        return o;
      });
}

// lstatAt(fd, names, start, end): Promise<Uint32Array>: lstat of each NUL-terminated name in
// names[start, end) relative to the directory open at fd, STAT_LAYOUT.words words per name.
Napi::Value LstatAt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(IntArg(info, 0, "fd"));
  auto buf = BufferArg(info, 1, "names");
  int64_t start = IntArg(info, 2, "start");
  int64_t end = IntArg(info, 3, "end");
  if (start < 0 || end < start || static_cast<uint64_t>(end) > buf.Length() ||
      (end > start && buf.Data()[end - 1] != '\0')) {
    throw Napi::RangeError::New(env, "start and end must be within names, ending after a NUL");
  }
  // A copy (a few KiB a batch): nothing the caller does to its Buffer meanwhile reaches the thread.
  auto names = std::make_shared<std::string>(buf.Data() + start, static_cast<size_t>(end - start));
  auto words = std::make_shared<std::vector<uint32_t>>();
  return Schedule(
      env, "ember-ga:lstatAt",
      [fd, names, words] {
        dirlist::StatAt(fd, *names, words.get());
        return SysError::Ok();
      },
      [words](Napi::Env env) {
        auto out = Napi::Uint32Array::New(env, words->size());
        if (!words->empty()) memcpy(out.Data(), words->data(), words->size() * sizeof(uint32_t));
        return out;
      });
}

// STAT_LAYOUT: where each value stands among an entry's words, and how many words it has.
Napi::Object StatLayout(Napi::Env env) {
  using namespace dirlist;
  Napi::Object o = Napi::Object::New(env);
  const std::pair<const char*, size_t> words[] = {
      {"errno", kErrno},         {"mode", kMode},         {"uid", kUid},           {"gid", kGid},
      {"blksize", kBlksize},     {"devMajor", kDevMajor}, {"devMinor", kDevMinor}, {"rdevMajor", kRdevMajor},
      {"rdevMinor", kRdevMinor}, {"nlink", kNlink},       {"ino", kIno},           {"size", kSize},
      {"blocks", kBlocks},       {"atime", kAtime},       {"mtime", kMtime},       {"ctime", kCtime},
      {"words", kWords}};
  for (const auto& [name, at] : words) o.Set(name, Napi::Number::New(env, static_cast<double>(at)));
  return o;
}

Module dirlist_module("dirlist", [](Napi::Env env, Napi::Object exports) {
  exports.Set("readDirectory", Napi::Function::New<ReadDirectory>(env, "readDirectory"));
  exports.Set("lstatAt", Napi::Function::New<LstatAt>(env, "lstatAt"));
  exports.Set("STAT_LAYOUT", StatLayout(env));
});

}  // namespace
}  // namespace ember
