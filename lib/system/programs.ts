// Where the system actions find their files and programs, and how they run the programs: as
// qemu-ga runs them, in a session of their own with /dev/null for output. Everything is looked up
// under a root directory, '/' by default, so a test can point the actions at a fixture tree with
// stub programs and never touch the machine it runs on.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { errnoMessage, errorAbout, SystemError } from '../errors';

const EPIPE = 32;
const EACCES = 13;

export interface SystemOptions {
  /**
   * The directory the system's files (/sys) and programs (/sbin/shutdown, and those searched
   * for in `searchPath`) are found under: '/' (the default) for this system's own.
   */
  root?: string;
  /**
   * The directories searched for programs run by name (systemctl, pm-utils, chpasswd), as PATH
   * is: each is taken under `root`. Default: this process's PATH, else "/bin:/usr/bin:." (glib's).
   */
  searchPath?: string;
}

/** `file`, an absolute path of the system, under the root of `opts`. */
export function systemPath(opts: SystemOptions, file: string): string {
  const root = opts.root ?? '/';
  return root === '/' ? file : path.join(root, file);
}

/** How a program ended: its exit code, or the signal that killed it. */
export interface ProgramExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** errnos of an exec that found nothing it could run: the child would have exited 1 in qemu-ga. */
const EXEC_ERRNOS = new Set(['ENOENT', 'EACCES', 'ENOEXEC', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'EISDIR', 'ETXTBSY']);

/** Did a spawn fail at exec (the program is missing or not runnable), rather than at fork? */
export function isExecFailure(e: unknown): boolean {
  return e instanceof SystemError && EXEC_ERRNOS.has(e.code);
}

/**
 * Runs `file` (an absolute path) with argv[0] `argv0` and `args`, in a new session, stdout and
 * stderr to /dev/null, `input` on stdin (else /dev/null). Resolves with how it ended; rejects
 * with a SystemError (syscall "spawn", path `file`) when it could not be started.
 */
export function runProgram(
  file: string,
  argv0: string,
  args: readonly string[],
  input?: Buffer,
): Promise<ProgramExit & { inputError?: SystemError }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      argv0,
      detached: true, // setsid(), as qemu-ga's children
      stdio: [input ? 'pipe' : 'ignore', 'ignore', 'ignore'],
    });
    let inputError: SystemError | undefined;
    child.once('error', (e) => reject(errorAbout(e, 'spawn', file)));
    child.once('close', (code, signal) => resolve(inputError ? { code, signal, inputError } : { code, signal }));
    if (input && child.stdin) {
      child.stdin.on('error', (e) => {
        const err = errorAbout(e, 'write', file);
        inputError = err instanceof SystemError ? err : new SystemError(EPIPE, 'write', file);
      });
      child.stdin.end(input);
    }
  });
}

/**
 * Runs a program as qemu-ga's fork-and-exec does: a program that cannot be executed is a child
 * that exits 1; only a failure to create the process rejects (SystemError, syscall "spawn").
 */
export async function runOrExit1(
  file: string,
  argv0: string,
  args: readonly string[],
  input?: Buffer,
): Promise<ProgramExit & { inputError?: SystemError }> {
  try {
    return await runProgram(file, argv0, args, input);
  } catch (e) {
    if (isExecFailure(e)) return { code: 1, signal: null };
    throw e;
  }
}

/** Is `file` there for execve: a regular file we may execute? "missing", "denied" or "ok". */
function executable(file: string): 'missing' | 'denied' | 'ok' {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return 'missing';
  }
  if (st.isDirectory()) return 'denied';
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return 'ok';
  } catch {
    return 'denied';
  }
}

function searchDirs(opts: SystemOptions): string[] {
  const search = opts.searchPath ?? process.env.PATH ?? '/bin:/usr/bin:.';
  // Under a root, relative entries too are taken under it: nothing outside it may run.
  const root = opts.root ?? '/';
  return search
    .split(':')
    .map((d) => (d === '' ? '.' : d))
    .map((d) => (root === '/' ? d : systemPath(opts, path.resolve(d))));
}

/**
 * The program `name` as execvp would find it in the search path (under the root): its path;
 * undefined when it is nowhere; a SystemError EACCES (syscall "spawn") when only files that
 * cannot be run are found.
 */
export function findProgram(name: string, opts: SystemOptions): string | undefined {
  if (name.includes('/')) {
    const r = executable(name);
    if (r === 'ok') return name;
    if (r === 'denied') throw new SystemError(EACCES, 'spawn', name);
    return undefined;
  }
  let denied = false;
  for (const dir of searchDirs(opts)) {
    const file = path.join(dir, name);
    const r = executable(file);
    if (r === 'ok') return file;
    if (r === 'denied') denied = true;
  }
  if (denied) throw new SystemError(EACCES, 'spawn', name);
  return undefined;
}

/**
 * The program `name` as g_find_program_in_path finds it (qemu-ga's way to find chpasswd): the
 * first executable file that is not a directory; undefined when there is none.
 */
export function whichProgram(name: string, opts: SystemOptions): string | undefined {
  if (name.includes('/')) return executable(name) === 'ok' ? name : undefined;
  for (const dir of searchDirs(opts)) {
    const file = path.join(dir, name);
    if (executable(file) === 'ok') return file;
  }
  return undefined;
}

/** strerror(3)'s text as C prints it ("No such file or directory"). */
export function strerror(errno: number): string {
  const m = errnoMessage(errno);
  return m.charAt(0).toUpperCase() + m.slice(1);
}
