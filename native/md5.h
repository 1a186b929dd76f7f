// The md5 of a whole file: plain C++, no N-API types (the glue is fileio.cc).
#pragma once

#include <atomic>
#include <string>

#include "syserror.h"

namespace ember {
namespace md5 {

// The md5 of the regular file or block device at path, as 32 lowercase hex digits in *hex;
// EINVAL for anything else (a stream has no end to hash up to), ECANCELED once `cancel` is set
// (it may be set from any thread at any time, also after the digest is done). Takes as long as
// reading the file: callers run it on a thread of its own.
SysError File(const std::string& path, std::string* hex, const std::atomic<bool>& cancel);

}  // namespace md5
}  // namespace ember
