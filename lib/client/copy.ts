// Streaming copies between host and guest over file-open / file-read / file-write, verified
// end to end. With ember-ga: large chunks (file-read `size`) and several requests in flight per
// handle (ember-ga runs a handle's requests in order). With the 0.7.1 protocol: 4096-byte
// chunks, one request at a time. Here: the options, Transfer and what both directions share;
// downloads are copy-from.ts, uploads copy-to.ts.
import { EventEmitter } from 'events';
import { MAX_TIMER_MS } from '../timers';
import { checkTimeout, type CallOptions } from './base-connection';
import { GuestAgentError, hostError } from './errors';
import type { GuestAgent } from './guest-agent';
import type { Features } from './types';

export interface CopyOptions {
  /** Compare md5 sums of both ends when done (default true); false also skips hashing here. */
  verify?: boolean;
  /** Bytes per request (default 1 MiB with ember-ga, clamped to what the agent allows; 4096 otherwise). */
  chunkSize?: number;
  /** Requests in flight per copy (ember-ga only; default: enough for 4 MiB, 2 to 64). */
  inFlight?: number;
  /** Called like the 'progress' event. */
  onProgress?: (p: Progress) => void;
  /** Stops the copy; it rejects with code 'ABORT_ERR' and cleans up like any failure. */
  signal?: AbortSignal;
  /**
   * Longest wait in ms, once the data has moved, for what ends the copy: an upload's file-close
   * (the agent reads the file back for the md5, syncs and renames it) or get-file-md5sum's
   * answer, plus 1 s per 20 MB copied (the agent reads them back). Default: the client's timeout,
   * or longer for a large copy (60 s plus 1 s per 20 MB).
   */
  finishTimeout?: number;
}

export interface CopyFromOptions extends CopyOptions {
  /** On failure, keep what arrived at the local destination (default: nothing is left). */
  keepPartial?: boolean;
  /** End a Writable destination when done (default true). */
  end?: boolean;
  /** fsync a local destination before renaming it into place (default true). */
  fsync?: boolean;
}

export interface CopyToOptions extends CopyOptions {
  /** Mode of the guest file when created (default 0o644; an existing file keeps its mode). */
  perm?: number;
  /** Replace a busy executable (file-open `force`). */
  force?: boolean;
  /** Size of a Readable source, for progress (a local path is stat'ed). */
  total?: number;
  /**
   * Replace the guest file only once every byte arrived and (verify) matched: file-open
   * `atomic`, so a failed copy leaves the file as it was. Default: atomic where the agent can
   * (features().atomicWrite) and the path is a regular file or new; a device or FIFO is written
   * in place. true: fail rather than write in place; false: always in place (the old file is
   * truncated first, as with the 0.7.1 protocol).
   */
  atomic?: boolean;
  /** fsync the guest file before it is closed (default true; needs features().atomicWrite). */
  fsync?: boolean;
}

export interface Progress {
  /** Bytes copied so far. */
  bytes: number;
  /** Size of the source when known. */
  total?: number;
  /** 'copy' while data moves, 'verify' while md5 sums are compared. */
  phase: 'copy' | 'verify';
}

export interface CopyResult {
  bytes: number;
  /** md5 of the data copied (lowercase hex); "" when verify was false (nothing hashed). */
  md5: string;
  verified: boolean;
  /** An upload that replaced the guest file atomically (false for downloads). */
  atomic: boolean;
  chunkSize: number;
  inFlight: number;
  /** True when the agent spoke ember-ga's protocol (large chunks, pipelining). */
  emberGa: boolean;
}

/**
 * A copy under way: a promise of its result that also emits 'progress' (Progress), and for an
 * upload whose atomic open the agent refused, 'inPlace' with that refusal (a GuestAgentError)
 * once it has opened the guest file to write it in place instead.
 */
export class Transfer extends EventEmitter implements PromiseLike<CopyResult> {
  private readonly result: Promise<CopyResult>;

  constructor(run: (t: Transfer) => Promise<CopyResult>) {
    super();
    // Start on the next turn, so listeners attached right after the call see every event.
    this.result = new Promise<void>((r) => setImmediate(r)).then(() => run(this));
  }

  then<A = CopyResult, B = never>(
    ok?: ((v: CopyResult) => A | PromiseLike<A>) | null,
    fail?: ((e: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.result.then(ok, fail);
  }

  catch<B = never>(fail?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<CopyResult | B> {
    return this.result.catch(fail);
  }

  /** @internal */
  progress(p: Progress, opts: CopyOptions): void {
    opts.onProgress?.(p);
    this.emit('progress', p);
  }
}

const MiB = 1024 * 1024;
const REFERENCE_CHUNK = 4096;
/** For a rejection awaited later, or one a copy does not report (its own failure is). */
export const noop = () => {};
/** Longest a failed copy waits for the agent to close its handle (the agent may be the failure). */
const RELEASE_MS = 10_000;

/** Bytes per request and requests in flight of one copy. */
export interface Plan {
  chunk: number;
  depth: number;
}

/**
 * Throws when chunkSize or inFlight is not a whole number >= 1 (TypeError for a non-integer,
 * RangeError below 1): 0 would otherwise be taken for 1-byte chunks; and for a finishTimeout
 * that is no timeout (checkTimeout's).
 */
export function checkCopyOptions(opts: CopyOptions): void {
  if (opts.finishTimeout !== undefined) checkTimeout('finishTimeout', opts.finishTimeout);
  for (const [name, v] of [
    ['chunkSize', opts.chunkSize],
    ['inFlight', opts.inFlight],
  ] as const) {
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v))
      throw new TypeError(
        `${name} must be a whole number >= 1, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`,
      );
    if (v < 1) throw new RangeError(`${name} must be a whole number >= 1, got ${v}`);
  }
}

export function plan(f: Features, opts: CopyOptions, limit: number): Plan {
  const chunk = Math.max(
    1,
    Math.min(opts.chunkSize ?? (f.emberGa ? MiB : REFERENCE_CHUNK), f.emberGa ? limit : REFERENCE_CHUNK),
  );
  return { chunk, depth: depthFor(f, opts, chunk) };
}

/** Requests in flight for `chunk`-byte requests: one unless the agent runs a handle's requests in order. */
export function depthFor(f: Features, opts: CopyOptions, chunk: number): number {
  return f.orderedHandles ? Math.max(1, opts.inFlight ?? Math.min(64, Math.max(2, Math.ceil((4 * MiB) / chunk)))) : 1;
}

/** A finished copy's result: what it moved, then the plan it moved it with. */
export function copyResult(
  f: Features,
  p: Plan,
  done: Pick<CopyResult, 'bytes' | 'md5' | 'verified' | 'atomic'>,
): CopyResult {
  return {
    bytes: done.bytes,
    md5: done.md5,
    verified: done.verified,
    atomic: done.atomic,
    chunkSize: p.chunk,
    inFlight: p.depth,
    emberGa: f.emberGa,
  };
}

/** Generous time for get-file-md5sum: the client's timeout, or more for a large file. */
function md5Timeout(ga: GuestAgent, size: number | undefined): number {
  return Math.min(Math.max(ga.timeout, 60_000 + (size ?? 0) / 20_000), MAX_TIMER_MS);
}

/**
 * opts.finishTimeout for the end of a copy of `size` bytes, plus 1 s per 20 MB: the agent reads
 * them all back for the md5, so a patient -w is not cut short by a large file.
 */
function finishMs(opts: CopyOptions, size: number | undefined): number | undefined {
  if (opts.finishTimeout === undefined) return undefined;
  return Math.min(Math.ceil(opts.finishTimeout + (size ?? 0) / 20_000), MAX_TIMER_MS);
}

/** The timeout of the request that ends a copy of `size` bytes, sent once the data has moved. */
export function finishTimeout(ga: GuestAgent, opts: CopyOptions, size: number | undefined): number {
  return finishMs(opts, size) ?? md5Timeout(ga, size);
}

/**
 * The timeout of a get-file-md5sum sent as a download starts, alongside its reads: long enough
 * for the whole copy, since finishWait() bounds what is left of it once the data is in.
 */
export function alongsideTimeout(ga: GuestAgent, opts: CopyOptions, size: number | undefined): number {
  return Math.max(md5Timeout(ga, size), opts.finishTimeout ?? 0);
}

/** `p` (the answer to `command`, sent earlier), or ETIMEDOUT once finishTimeout() of `size` passes from now. */
export function finishWait<T>(p: Promise<T>, opts: CopyOptions, command: string, size: number): Promise<T> {
  const ms = finishMs(opts, size);
  if (ms === undefined) return p;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(hostError('ETIMEDOUT', `${command}: no answer from the agent within ${ms} ms`, command)),
      ms,
    );
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

export function abortError(what: string): GuestAgentError {
  return hostError('ABORT_ERR', `${what}: aborted`);
}

export function checkAbort(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(what);
}

/** `p`, or ABORT_ERR as soon as `signal` aborts: a wait (a read from a FIFO, say) must not outlast an abort. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(what));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Closes the handle of a failed copy, an atomic one discarding its data, and waits for the
 * answer: a caller that closes the client next (ember-ga-ctl) would otherwise drop the request,
 * and the agent would keep the file open (a deleted one keeps its space). Its own failure is not
 * reported: the copy's is.
 */
export async function release(ga: GuestAgent, handle: number, discard: boolean): Promise<void> {
  await ga.fileClose(handle, { discard }, releaseOptions(ga)).catch(noop);
}

/** The close of a failed copy's handle: on this connection only, and not waited for long. */
export function releaseOptions(ga: GuestAgent): CallOptions {
  return { noReconnect: true, timeout: Math.min(ga.timeout, RELEASE_MS) };
}

/** Waits for get-file-md5sum's answer and fails with ECHECKSUM unless it is `digest`, the md5 of what was copied. */
export async function checkGuestMd5(
  remote: Promise<string>,
  digest: string,
  signal: AbortSignal | undefined,
  what: string,
): Promise<void> {
  const sum = await abortable(remote, signal, what);
  if (sum !== digest)
    throw hostError('ECHECKSUM', `${what}: md5 mismatch after the copy (host ${digest}, guest ${sum})`);
}
