// The one way bindings run blocking work off the main thread: Work runs elsewhere and returns
// SysError::Ok() or the failure; the promise then rejects with that error (MakeSysError) or
// resolves with what Done, run back on the main thread, builds. State the two share lives in
// whatever the lambdas capture (typically a shared_ptr).
#pragma once

#include <napi.h>

#include <functional>
#include <string>

#include "syserror.h"

namespace ember {

using Work = std::function<SysError()>;
using Done = std::function<Napi::Value(Napi::Env)>;

// Work on the libuv thread pool.
Napi::Promise Schedule(Napi::Env env, const char* name, Work work, Done done);

// Work on a thread of its own, started for this call, instead of the libuv pool: for work that
// may take minutes or block on the kernel for as long (FIFREEZE, FITHAW, the md5 of a whole
// disk). The pool has 4 threads shared with every fs call in the process; a few such calls
// would hold all of them. Callers bound how many run at once. `path` names what the work is
// about in the error when no thread can be started.
Napi::Promise ScheduleOnThread(Napi::Env env, const char* name, Work work, Done done, const std::string& path = "");

}  // namespace ember
