// Child processes for lib/exec: fork + execve the way GLib's g_spawn_async_with_pipes runs them
// for qemu-ga's guest-exec (PATH search with EACCES remembered, a file execve refuses as
// ENOEXEC run by /bin/sh, stdin and output as pipes or /dev/null), reporting an exec failure
// back through a close-on-exec pipe, so it is the spawn's error and not an exit status. The
// agent's ends of the output pipes are non-blocking.
// Children are not reaped here: lib/exec waits for each one it started (reapProcess) when
// SIGCHLD comes, since libuv reaps only the children it started itself.
//
// Between fork and execve the child runs only async-signal-safe calls on memory prepared
// before the fork: the parent has other threads, whose locks (malloc's) the child inherits.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "module.h"
#include "schedule.h"

extern char** environ;

namespace ember {
namespace {

// Older headers lack them; a kernel without close_range (before 5.9) answers ENOSYS.
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

constexpr int kPipeStdin = 1, kPipeStdout = 2, kPipeStderr = 4;

// What the child reports when it cannot get as far as the new program.
struct Report {
  int stage;  // kStageExec or kStageRedirect
  int err;
};
constexpr int kStageExec = 0, kStageRedirect = 1;

// Everything the child needs, allocated before the fork.
struct Plan {
  std::string file;                     // as given: argv[0], and the error's path
  std::vector<std::string> candidates;  // what to execve, in order (the PATH search)
  bool search = false;                  // candidates come from a PATH search (glib's error rules)
  std::vector<std::string> args;        // argv, file first
  std::vector<std::string> env;
  std::vector<char*> argv, envp;
  std::vector<char*> script_argv;  // "/bin/sh", candidate, argv[1..], NULL for ENOEXEC
  int pipes = 0;
  int max_fd = 0;
};

// The fds both sides hold; -1 where none.
struct Fds {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  int devnull = -1;
  void CloseAll() {
    for (int* p : {in, out, err, report})
      for (int i = 0; i < 2; i++)
        if (p[i] >= 0) close(p[i]), p[i] = -1;
    if (devnull >= 0) close(devnull), devnull = -1;
  }
};

struct Spawned {
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;
};

void Exec(Plan& p, const char* path) {
  execve(path, p.argv.data(), p.envp.data());
  if (errno != ENOEXEC) return;
  // A file without a #! line: what execvp and glib do, /bin/sh runs it.
  p.script_argv[1] = const_cast<char*>(path);
  execve("/bin/sh", p.script_argv.data(), p.envp.data());
}

[[noreturn]] void Fail(int report_fd, int stage, int err) {
  Report r{stage, err};
  ssize_t n;
  do n = write(report_fd, &r, sizeof(r));
  while (n < 0 && errno == EINTR);
  _exit(127);
}

[[noreturn]] void Child(Plan& p, const Fds& f) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) {
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, nullptr);  // EINVAL for glibc's own: fine
  }
  int in = p.pipes & kPipeStdin ? f.in[0] : f.devnull;
  int out = p.pipes & kPipeStdout ? f.out[1] : f.devnull;
  int err = p.pipes & kPipeStderr ? f.err[1] : f.devnull;
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) Fail(f.report[1], kStageRedirect, errno);
  // Nothing else of the agent's reaches the program (Node opens its fds close-on-exec, but a
  // library may not have).
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < p.max_fd; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  if (p.candidates.empty()) Fail(f.report[1], kStageExec, ENOENT);
  if (!p.search) {
    Exec(p, p.candidates[0].c_str());
    Fail(f.report[1], kStageExec, errno);
  }
  bool eacces = false;
  int last = ENOENT;
  for (const std::string& c : p.candidates) {
    Exec(p, c.c_str());
    last = errno;
    switch (errno) {
      case EACCES:
        eacces = true;
        break;
      case ENOENT:
      case ESTALE:
      case ENOTDIR:
      case ENODEV:
      case ETIMEDOUT:
        break;  // not there, or not usable: the next directory
      default:
        Fail(f.report[1], kStageExec, errno);  // found, but it would not run
    }
  }
  Fail(f.report[1], kStageExec, eacces ? EACCES : last);
}

SysError Spawn(Plan& p, Spawned* out) {
  Fds f;
  auto fail = [&f](int err, const char* syscall, const std::string& path = "") {
    f.CloseAll();
    return SysError::Of(err, syscall, path);
  };
  if ((f.devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) return fail(errno, "open", "/dev/null");
  if ((p.pipes & kPipeStdin) && pipe2(f.in, O_CLOEXEC) < 0) return fail(errno, "pipe2");
  if ((p.pipes & kPipeStdout) && pipe2(f.out, O_CLOEXEC) < 0) return fail(errno, "pipe2");
  if ((p.pipes & kPipeStderr) && pipe2(f.err, O_CLOEXEC) < 0) return fail(errno, "pipe2");
  if (pipe2(f.report, O_CLOEXEC) < 0) return fail(errno, "pipe2");

  // No signal handler of the agent's may run in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = fork();
  if (pid == 0) Child(p, f);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return fail(fork_errno, "fork");

  for (int* fd : {&f.in[0], &f.out[1], &f.err[1], &f.report[1], &f.devnull}) {
    if (*fd >= 0) close(*fd), *fd = -1;
  }
  Report r{};
  ssize_t n;
  do n = read(f.report[0], &r, sizeof(r));
  while (n < 0 && errno == EINTR);
  if (n != 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (n != static_cast<ssize_t>(sizeof(r))) return fail(n < 0 ? errno : EIO, "read");
    return fail(r.err, r.stage == kStageExec ? "execve" : "dup2", p.file);
  }
  close(f.report[0]);
  // The agent reads the output pipes as they fill, from the event loop.
  for (int fd : {f.out[0], f.err[0]}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  *out = Spawned{pid, f.in[1], f.out[0], f.err[0]};
  return SysError::Ok();
}

// A C string's bytes, from a Buffer: lib/exec encodes text (qemu-ga's strings carry a NUL as
// 0xC0 0x80); a NUL here would end the string early, so it is refused.
std::string BytesOf(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(env, what + " must be a Buffer");
  auto b = v.As<Napi::Buffer<char>>();
  std::string s(b.Data(), b.Length());
  if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(env, what + " contains a NUL byte");
  return s;
}

std::string BytesArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return BytesOf(info.Env(), info.Length() > i ? info[i] : info.Env().Undefined(), std::string("argument ") + name);
}

std::vector<std::string> BytesListArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsArray())
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + name + " must be an array of Buffers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<std::string> v;
  for (uint32_t k = 0; k < a.Length(); k++)
    v.push_back(BytesOf(info.Env(), a.Get(k), std::string("argument ") + name + " element"));
  return v;
}

// spawnProcess(file, searchPath | null, args, env | null, pipes) -> Promise<{pid, stdin, stdout, stderr}>,
// the strings as Buffers.
Napi::Value SpawnProcess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto plan = std::make_shared<Plan>();
  Plan& p = *plan;
  p.file = BytesArg(info, 0, "file");
  bool search = info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined();
  std::string path = search ? BytesArg(info, 1, "searchPath") : "";
  p.args = BytesListArg(info, 2, "args");
  if (info.Length() > 3 && info[3].IsArray()) {
    p.env = BytesListArg(info, 3, "env");
  } else {
    for (char** e = environ; *e != nullptr; e++) p.env.emplace_back(*e);  // the agent's, as of now
  }
  p.pipes = static_cast<int>(IntArg(info, 4, "pipes"));

  // glib's g_execute: no search for a name with a '/'; an empty PATH element is the current
  // directory; an empty name is ENOENT without any execve.
  if (!p.file.empty()) {
    if (!search || p.file.find('/') != std::string::npos) {
      p.candidates.push_back(p.file);
    } else {
      p.search = true;
      size_t start = 0;
      for (;;) {
        size_t colon = path.find(':', start);
        std::string dir = path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        p.candidates.push_back(dir.empty() ? p.file : dir + "/" + p.file);
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
    }
  }
  for (std::string& a : p.args) p.argv.push_back(&a[0]);
  p.argv.push_back(nullptr);
  for (std::string& e : p.env) p.envp.push_back(&e[0]);
  p.envp.push_back(nullptr);
  static char sh[] = "/bin/sh";
  p.script_argv.push_back(sh);
  p.script_argv.push_back(nullptr);  // the candidate, set in the child
  for (size_t i = 1; i < p.args.size(); i++) p.script_argv.push_back(&p.args[i][0]);
  p.script_argv.push_back(nullptr);
  struct rlimit rl;
  p.max_fd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                 ? static_cast<int>(std::min<rlim_t>(rl.rlim_cur, 1 << 20))
                 : 65536;

  auto result = std::make_shared<Spawned>();
  // A thread of its own: execve can block as long as the filesystem holding the program does.
  return ScheduleOnThread(
      env, "ember-ga:spawnProcess", [plan, result] { return Spawn(*plan, result.get()); },
      [result](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("pid", Napi::Number::New(env, result->pid));
        o.Set("stdin", Napi::Number::New(env, result->in));
        o.Set("stdout", Napi::Number::New(env, result->out));
        o.Set("stderr", Napi::Number::New(env, result->err));
        return o;
      },
      p.file);
}

// reapProcess(pid) -> -1 while the child runs, else its wait status (waitpid, WNOHANG).
Napi::Value ReapProcess(const Napi::CallbackInfo& info) {
  pid_t pid = static_cast<pid_t>(IntArg(info, 0, "pid"));
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r < 0) throw MakeSysError(info.Env(), SysError::Of(errno, "waitpid"));
  return Napi::Number::New(info.Env(), r == 0 ? -1 : status);
}

Module spawn_module("spawn", [](Napi::Env env, Napi::Object exports) {
  exports.Set("spawnProcess", Napi::Function::New(env, SpawnProcess, "spawnProcess"));
  exports.Set("reapProcess", Napi::Function::New(env, ReapProcess, "reapProcess"));
  exports.Set("PIPE_STDIN", Napi::Number::New(env, kPipeStdin));
  exports.Set("PIPE_STDOUT", Napi::Number::New(env, kPipeStdout));
  exports.Set("PIPE_STDERR", Napi::Number::New(env, kPipeStderr));
});

}  // namespace
}  // namespace ember
