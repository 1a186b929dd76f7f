// Memory for the large Buffers the addon makes for answers (a read's base64: 4 MiB pieces of a
// 48 MiB qemu-ga read, a 1 MiB phoenix chunk's 1.4 MB), reused instead of new each time. Each
// such block is a mapping of its own (malloc's mmap threshold, malloc.cc), and every page of a
// new one is faulted in on first touch: ~350,000 faults a GiB read, 2 to 2.5 us each in a VM,
// CPU the agent shares with the bridge. A piece the port has written is detached (port.cc), which
// hands its block back here in the loop's next turn; the collector hands back the others.
#pragma once

#include <napi.h>

#include <cstddef>

namespace ember {

// A Buffer of `len` bytes, uninitialized; from the pool when `len` is at least kMinPooled.
Napi::Buffer<unsigned char> AnswerBuffer(Napi::Env env, size_t len);

}  // namespace ember
