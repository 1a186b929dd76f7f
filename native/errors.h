// The glue's errors: a SysError as a JavaScript Error, and the argument conversions that throw a
// TypeError naming the argument. Only the glue throws these; lib/ validates what hosts send.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "syserror.h"

namespace ember {

// A JavaScript Error with `errno` (positive), `syscall` and `path`; lib/errors.ts turns it into a
// SystemError with the errno name as `code`, the way Node's fs errors look.
Napi::Error MakeSysError(Napi::Env env, const SysError& e);

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name);
// A path: a string (its UTF-8) or a Buffer (its bytes: names need not be UTF-8), as Node's fs.
std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* name);
// A number, or a bigint (exact over the whole int64 range: a file offset past 2^53).
int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name);
bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<char> BufferArg(const Napi::CallbackInfo& info, size_t i, const char* name);

}  // namespace ember
