// Errors as they travel: SystemError (a failed system call, with errno) and AgentError (a
// protocol-level failure with the wire code to answer). wireError() turns anything thrown by a
// handler into the message and code of an error answer.
import { constants } from 'os';
import { getSystemErrorMap } from 'util';
import { STRERROR } from './strerror';

const systemErrors = getSystemErrorMap(); // -errno -> [name, message]
/** Names of the errnos libuv (Node's map) lacks (EBADMSG, ESTALE, EDQUOT...); the first of two aliases. */
const otherNames = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!otherNames.has(n)) otherNames.set(n, name);

/** The errno name for a positive errno (2 -> "ENOENT"), or "E<n>" when neither Node nor we know it. */
export function errnoName(errno: number): string {
  return systemErrors.get(-errno)?.[0] ?? otherNames.get(errno) ?? `E${errno}`;
}

/**
 * The C library's description of an errno with its first letter lowercased, which is the text
 * Go prints ("no such file or directory", "is a directory", "text file busy"); "errno N" for
 * one it has no text for.
 */
export function errnoMessage(errno: number): string {
  return STRERROR[errno] ?? `errno ${errno}`;
}

/** A failed system call, shaped like Node's fs errors, with a positive errno. */
export class SystemError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall?: string;
  readonly path?: string;
  /** The message without its "syscall path: " prefix. */
  readonly reason: string;

  constructor(errno: number, syscall?: string, path?: string, detail?: string) {
    const where = [syscall, path].filter((s) => s !== undefined && s !== '').join(' ');
    const reason = detail ?? errnoMessage(errno);
    super(`${where ? where + ': ' : ''}${reason}`);
    this.reason = reason;
    this.name = 'SystemError';
    this.errno = errno;
    this.code = errnoName(errno);
    this.syscall = syscall;
    this.path = path;
  }
}

/**
 * An operation given an AbortSignal that was aborted: what Node's fs calls reject with (name
 * 'AbortError', code 'ABORT_ERR', the signal's reason as `cause`), so callers test for one thing.
 */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(signal?: AbortSignal) {
    super('The operation was aborted', signal ? { cause: signal.reason } : undefined);
    this.name = 'AbortError';
  }
}

/**
 * Runs `make` with no stack trace captured for the errors it creates. An error answered to a
 * host is data, not a bug, and capturing its stack is most of what it costs: a host sending bad
 * requests would otherwise get its answers at half the rate. Errors of bugs keep their stacks.
 */
export function withoutStacks<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** An error made to be answered to a host: made without a stack, as in withoutStacks(). */
export class AnswerError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

/** A failure to answer with a given wire code (-1 unless an errno applies). */
export class AgentError extends AnswerError {
  readonly code: number;
  constructor(message: string, code = -1) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
  }
}

interface ErrnoLike {
  errno?: unknown;
  code?: unknown;
  syscall?: unknown;
  path?: unknown;
}

/**
 * Normalises an error from Node (errno negative, code "ENOENT") or from the addon (errno
 * positive) into a SystemError; anything else comes back unchanged.
 */
export function toSystemError(e: unknown): unknown {
  if (e instanceof SystemError || !(e instanceof Error)) return e;
  const x = e as ErrnoLike;
  if (typeof x.errno !== 'number' || x.errno === 0) return e;
  const errno = Math.abs(x.errno);
  const syscall = typeof x.syscall === 'string' ? x.syscall : undefined;
  const path = typeof x.path === 'string' ? x.path : undefined;
  return new SystemError(errno, syscall, path);
}

/** The (positive) errno of a failed system call, from Node or from the addon; undefined for anything else. */
export function errnoOf(e: unknown): number | undefined {
  const err = toSystemError(e);
  return err instanceof SystemError ? err.errno : undefined;
}

/** Message and code for an error answer: errno for system errors, the AgentError's code, else -1. */
export function wireError(e: unknown): { message: string; code: number } {
  const err = toSystemError(e);
  if (err instanceof SystemError) return { message: err.message, code: err.errno };
  if (err instanceof AgentError) return { message: err.message, code: err.code };
  if (err instanceof Error) return { message: err.message, code: -1 };
  return { message: String(err), code: -1 };
}

/**
 * `e` as a SystemError of `syscall` on `path`, its errno kept; `detail` rewrites the reason
 * (given the original one). Anything that is not a system error comes back as it is.
 */
export function errorAbout(
  e: unknown,
  syscall: string | undefined,
  path: string,
  detail?: (reason: string) => string,
): unknown {
  const err = toSystemError(e);
  return err instanceof SystemError ? new SystemError(err.errno, syscall, path, detail?.(err.reason)) : err;
}
