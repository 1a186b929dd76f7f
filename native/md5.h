// The md5 of a whole file: plain C++, no N-API types (the glue is fileio.cc).
#pragma once

#include <atomic>
#include <cstddef>
#include <string>

#include "syserror.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace ember {
namespace md5 {

// The md5 of the regular file or block device at path, as 32 lowercase hex digits in *hex;
// EINVAL for anything else (a stream has no end to hash up to), ECANCELED once `cancel` is set
// (it may be set from any thread at any time, also after the digest is done). Takes as long as
// reading the file: callers run it on a thread of its own.
SysError File(const std::string& path, std::string* hex, const std::atomic<bool>& cancel);

// A running md5 (a read handle opened with `md5` hashes what its reads return). Calls must not
// overlap; Hex() may be called between updates, and hashing goes on after it.
class Running {
 public:
  Running();
  ~Running();
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  bool ok() const { return ctx_ != nullptr; }
  void Update(const void* p, size_t n);
  // The md5 of everything hashed so far, 32 lowercase hex digits; false when out of memory.
  bool Hex(std::string* hex) const;

 private:
  ::evp_md_ctx_st* ctx_;
};

}  // namespace md5
}  // namespace ember
