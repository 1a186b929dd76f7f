// Memory for the large Buffers the addon makes for answers (a read's base64: 4 MiB pieces of a
// 48 MiB qemu-ga read, a 1 MiB phoenix chunk's 1.4 MB), reused instead of new each time. Each
// such block is a mapping of its own (malloc's mmap threshold, malloc.cc), and every page of a
// new one is faulted in on first touch: ~350,000 faults a GiB read, 2 to 2.5 us each in a VM,
// CPU the agent shares with the bridge. A piece the port (port.cc) or a unix socket has written
// is freed at once (FreeWhole), which hands its block back here in the loop's next turn; the
// collector hands back the others.
#pragma once

#include <napi.h>

#include <cstddef>

namespace ember {

// A Buffer of `len` bytes, uninitialized; from the pool when `len` is at least kMinPooled.
Napi::Buffer<unsigned char> AnswerBuffer(Napi::Env env, size_t len);

// Frees buf's memory now, if buf is the whole of its ArrayBuffer (not a slice of Node's pool):
// detaches it, so that a later use sees an empty Buffer. False when it was left to the collector.
bool FreeWhole(Napi::Env env, Napi::Buffer<char> buf);

}  // namespace ember
