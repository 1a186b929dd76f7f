// Streaming copies between host and guest over file-open / file-read / file-write, verified
// end to end: downloads with the md5 of what the agent read (file-open `md5`) or else
// get-file-md5sum, uploads with file-close `md5` or else get-file-md5sum. With ember-ga: large chunks (file-read `size`) and several
// requests in flight per handle (ember-ga runs a handle's requests in order). With the 0.7.1
// protocol: 4096-byte chunks, one request at a time, and an empty last write with eof:true.
import { createHash, randomBytes } from 'crypto';
import { EventEmitter, once } from 'events';
import * as fs from 'fs';
import { constants } from 'os';
import * as path from 'path';
import type { Readable, Writable } from 'stream';
import { MAX_TIMER_MS } from '../timers';
import { GuestAgentError, hostError } from './errors';
import type { GuestAgent } from './guest-agent';
import type { Features, ReadResult } from './types';

const { EISDIR } = constants.errno;

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

/** A copy under way: a promise of its result that also emits 'progress' (Progress). */
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
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const noop = () => {};
/** Errors of an atomic file-open after which copyTo writes in place instead (see there). */
const IN_PLACE_INSTEAD = new Set(['EINVAL', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'EROFS', 'ENAMETOOLONG']);
/** Bytes gathered before a local write. */
const WRITE_BATCH = 1024 * 1024;
/** Longest a failed copy waits for the agent to close its handle (the agent may be the failure). */
const RELEASE_MS = 10_000;

interface Plan {
  chunk: number;
  depth: number;
}

/**
 * Throws when chunkSize or inFlight is not a whole number >= 1 (TypeError for a non-integer,
 * RangeError below 1): 0 would otherwise be taken for 1-byte chunks.
 */
export function checkCopyOptions(opts: CopyOptions): void {
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

function plan(f: Features, opts: CopyOptions, limit: number): Plan {
  const chunk = Math.max(
    1,
    Math.min(opts.chunkSize ?? (f.emberGa ? MiB : REFERENCE_CHUNK), f.emberGa ? limit : REFERENCE_CHUNK),
  );
  const depth = f.orderedHandles
    ? Math.max(1, opts.inFlight ?? Math.min(64, Math.max(2, Math.ceil((4 * MiB) / chunk))))
    : 1;
  return { chunk, depth };
}

/** Largest file-write payload whose request line stays well under the agent's limit. */
function writeLimit(f: Features): number {
  return Math.floor((f.maxLineBytes - 4096) / 4) * 3;
}

/** Generous time for get-file-md5sum: the client's timeout, or more for a large file. */
function md5Timeout(ga: GuestAgent, size: number | undefined): number {
  return Math.min(Math.max(ga.timeout, 60_000 + (size ?? 0) / 20_000), MAX_TIMER_MS);
}

function abortError(what: string): GuestAgentError {
  return hostError('ABORT_ERR', `${what}: aborted`);
}

function checkAbort(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(what);
}

/** `p`, or ABORT_ERR as soon as `signal` aborts: a wait (a read from a FIFO, say) must not outlast an abort. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
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
async function release(ga: GuestAgent, handle: number, discard: boolean): Promise<void> {
  await ga.fileClose(handle, { discard }, { noReconnect: true, timeout: Math.min(ga.timeout, RELEASE_MS) }).catch(noop);
}

function checksumError(what: string, local: string, remote: string): GuestAgentError {
  return hostError('ECHECKSUM', `${what}: md5 mismatch after the copy (host ${local}, guest ${remote})`);
}

/**
 * A download from a handle opened with `md5`: `received` (the md5 of the bytes that arrived)
 * must be `sent`, the md5 the agent gave with its answer at end of file.
 */
function checkSent(what: string, received: string, sent: string | undefined): void {
  if (sent === undefined)
    throw hostError('EPROTO', `${what}: the agent's answer at end of file carries no md5`, 'file-read');
  if (sent.toLowerCase() !== received)
    throw hostError(
      'ECHECKSUM',
      `${what}: md5 mismatch: the data received has md5 ${received}, the agent sent data with md5 ${sent}`,
      'file-read',
    );
}

/**
 * A Writable destination of a download. Its first error (EPIPE when stdout's reader went away)
 * fails the next write, whenever it came: process.stdout reports it only as an 'error' event.
 */
class StreamDest {
  private failure: Error | undefined;
  private readonly onError = (e: Error) => {
    this.failure ??= e;
    this.wake?.();
  };
  private wake: (() => void) | undefined;

  constructor(readonly dest: Writable) {
    dest.on('error', this.onError);
  }

  /** Writes buf; when dest is full, resolves once it drains. */
  async write(buf: Buffer): Promise<void> {
    this.check();
    if (this.dest.write(buf)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.dest.off('drain', done).off('close', done);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      this.dest.on('drain', done).on('close', done);
    });
    this.check();
  }

  /** Throws once dest failed or closed. */
  check(): void {
    if (this.failure) throw this.failure;
    if (this.dest.destroyed) throw new Error('destination closed');
  }

  detach(): void {
    this.dest.off('error', this.onError);
  }
}

/**
 * A local file written under a temporary name next to it and renamed into place on success.
 * Small chunks are gathered and written together (one writev per MiB), so a 4 KiB copy does not
 * pay a thread-pool round trip per chunk.
 */
class LocalDest {
  private fh: fs.promises.FileHandle | undefined;
  private bufs: Buffer[] = [];
  private size = 0;
  readonly tmp: string;

  constructor(readonly dest: string) {
    this.tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${randomBytes(4).toString('hex')}.ember-ga-part`);
  }

  async open(): Promise<void> {
    this.fh = await fs.promises.open(this.tmp, 'wx', 0o666);
  }

  async write(buf: Buffer): Promise<void> {
    this.bufs.push(buf);
    this.size += buf.length;
    if (this.size >= WRITE_BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.size === 0) return;
    const bufs = this.bufs;
    const size = this.size;
    this.bufs = [];
    this.size = 0;
    let done = (await this.fh!.writev(bufs)).bytesWritten;
    if (done < size) {
      const all = Buffer.concat(bufs, size);
      while (done < size) done += (await this.fh!.write(all, done, size - done)).bytesWritten;
    }
  }

  async commit(fsync: boolean): Promise<void> {
    await this.flush();
    if (fsync) await this.fh!.sync();
    await this.fh!.close();
    this.fh = undefined;
    await fs.promises.rename(this.tmp, this.dest);
  }

  async abandon(keep: boolean): Promise<void> {
    if (keep) await this.flush().catch(noop);
    await this.fh?.close().catch(noop);
    this.fh = undefined;
    if (keep) await fs.promises.rename(this.tmp, this.dest).catch(noop);
    else await fs.promises.rm(this.tmp, { force: true });
  }
}

export async function copyFrom(
  ga: GuestAgent,
  guestPath: string,
  dest: string | Writable,
  opts: CopyFromOptions,
  t: Transfer,
): Promise<CopyResult> {
  const what = `copy guest:${guestPath}`;
  const f = await ga.features();
  const { chunk, depth } = plan(f, opts, f.maxReadSize);
  const st = await ga.stat(guestPath);
  const type = st.stat.Mode & S_IFMT;
  if (type === S_IFDIR) throw new GuestAgentError(`${what}: is a directory`, { code: 'EISDIR', errno: EISDIR });
  const total = type === S_IFREG ? st.stat.Size : undefined;
  const verify = opts.verify ?? true;

  const local = typeof dest === 'string' ? new LocalDest(dest) : undefined;
  const stream = typeof dest === 'string' ? undefined : new StreamDest(dest);
  await local?.open();
  let handle: number | undefined;
  let handleOpen = false;
  const inflight: Promise<ReadResult>[] = [];
  try {
    // An agent that hashes what its reads send (readMd5) gives that md5 with the answer at end of
    // file: the check is of exactly the bytes that came, whatever the file did meanwhile (a log
    // growing), and works for a device. Otherwise get-file-md5sum runs alongside the reads, and
    // a file that changes meanwhile fails the check.
    const sentMd5 = verify && f.readMd5;
    handle = await ga.fileOpen(guestPath, { mode: 'r', md5: sentMd5 });
    handleOpen = true;
    checkAbort(opts.signal, what);
    const remoteMd5 = verify && !sentMd5 ? ga.md5sum(guestPath, { timeout: md5Timeout(ga, total) }) : undefined;
    remoteMd5?.catch(noop);
    const md5 = verify ? createHash('md5') : undefined;
    let bytes = 0;
    let eof = false;
    let agentMd5: string | undefined;
    const topUp = () => {
      while (inflight.length < depth) {
        const p = ga.fileRead(handle!, f.emberGa ? chunk : undefined);
        p.catch(noop); // awaited below, in request order
        inflight.push(p);
      }
    };
    topUp();
    while (!eof) {
      const r = await abortable(inflight.shift()!, opts.signal, what);
      if (!r.eof) topUp(); // the agent has the next reads before this chunk is written out
      if (r.data.length > 0) {
        md5?.update(r.data);
        if (local) await local.write(r.data);
        else await abortable(stream!.write(r.data), opts.signal, what);
        bytes += r.data.length;
        t.progress({ bytes, total, phase: 'copy' }, opts);
      }
      eof = r.eof;
      agentMd5 = r.md5;
    }
    handleOpen = false; // the agent closed it at eof; reads still in flight fail harmlessly
    const digest = md5?.digest('hex') ?? '';
    if (sentMd5) {
      t.progress({ bytes, total, phase: 'verify' }, opts);
      checkSent(what, digest, agentMd5);
    } else if (remoteMd5) {
      t.progress({ bytes, total, phase: 'verify' }, opts);
      const remote = await abortable(remoteMd5, opts.signal, what);
      if (remote !== digest) throw checksumError(what, digest, remote);
    }
    if (local) await local.commit(opts.fsync ?? true);
    else if (opts.end ?? true) {
      stream!.dest.end();
      await once(stream!.dest, 'finish');
    } else stream!.check();
    return {
      bytes,
      md5: digest,
      verified: verify,
      atomic: false,
      chunkSize: chunk,
      inFlight: depth,
      emberGa: f.emberGa,
    };
  } catch (e) {
    if (handleOpen && handle !== undefined) await release(ga, handle, false);
    await local?.abandon(opts.keepPartial ?? false);
    throw e;
  } finally {
    stream?.detach();
  }
}

export async function copyTo(
  ga: GuestAgent,
  src: string | Readable,
  guestPath: string,
  opts: CopyToOptions,
  t: Transfer,
): Promise<CopyResult> {
  const what = `copy to guest:${guestPath}`;
  const f = await ga.features();
  const { chunk, depth } = plan(f, opts, writeLimit(f));
  if (opts.atomic === true && !f.atomicWrite)
    throw hostError(
      'ENOTSUP',
      `${what}: the agent cannot replace a file atomically (it is not an ember-ga with atomic_write)`,
    );
  let total = opts.total;
  let input: Readable;
  if (typeof src === 'string') {
    const st = await fs.promises.stat(src);
    if (st.isDirectory())
      throw new GuestAgentError(`${what}: ${src} is a directory`, { code: 'EISDIR', errno: EISDIR });
    if (st.isFile()) total = st.size;
    input = fs.createReadStream(src, { highWaterMark: Math.max(chunk, 64 * 1024) });
  } else {
    input = src;
  }
  // An abort ends a wait for input (stdin with nothing to say) as it ends any other wait. No
  // error is given to destroy(): before the loop reads, nothing would listen for it.
  const stopInput = () => input.destroy();
  opts.signal?.addEventListener('abort', stopInput, { once: true });
  const verify = opts.verify ?? true;
  let handle: number | undefined;
  let handleOpen = false;
  let atomic = false;
  const inflight: Promise<void>[] = [];
  const md5 = verify ? createHash('md5') : undefined;
  let sent = 0;
  let acked = 0;

  const send = async (buf: Buffer, eof: boolean) => {
    checkAbort(opts.signal, what);
    // Hashed while the previous write is still in flight, not between its answer and this request.
    md5?.update(buf);
    if (inflight.length >= depth) await abortable(inflight.shift()!, opts.signal, what);
    sent += buf.length;
    const p = ga.fileWrite(handle!, buf, eof).then(() => {
      acked += buf.length;
      if (eof) handleOpen = false;
      if (buf.length > 0) t.progress({ bytes: acked, total, phase: 'copy' }, opts);
    });
    p.catch(noop); // awaited in order
    inflight.push(p);
  };

  try {
    if (f.atomicWrite && opts.atomic !== false) {
      try {
        handle = await ga.fileOpen(guestPath, { mode: 'w', perm: opts.perm, atomic: true });
        atomic = true;
      } catch (e) {
        // Not replaceable (a device, a FIFO, a bind-mounted file, a directory the agent cannot
        // create a file in, an owner it cannot give, sysfs, a path too long for the temporary
        // name beside it...): written in place, unless atomic
        // was asked for. Where the plain open fails too (a missing directory), its error is the
        // one reported. Not for a full disk or quota (ENOSPC, EDQUOT) and the like: writing in
        // place would truncate the file first and then likely fail the same way.
        if (opts.atomic === true || !(e instanceof GuestAgentError && e.remote && IN_PLACE_INSTEAD.has(e.code)))
          throw e;
      }
    }
    handle ??= await ga.fileOpen(guestPath, { mode: 'w', perm: opts.perm, force: opts.force });
    handleOpen = true;
    checkAbort(opts.signal, what);
    // Chunks of exactly `chunk` bytes; the last one is held back to go out with eof.
    let held: Buffer | undefined;
    const parts: Buffer[] = [];
    let have = 0;
    const full = async (buf: Buffer) => {
      if (held) await send(held, false);
      held = buf;
    };
    for await (const piece of input) {
      let p: Buffer = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
      while (p.length > 0) {
        const take = Math.min(chunk - have, p.length);
        parts.push(p.subarray(0, take));
        have += take;
        p = p.subarray(take);
        if (have === chunk) {
          await full(parts.length === 1 ? parts[0] : Buffer.concat(parts, have));
          parts.length = 0;
          have = 0;
        }
      }
    }
    if (have > 0) await full(Buffer.concat(parts, have));
    // An agent with the file-close options ends with one: the md5 is checked (and the data
    // synced) before an atomic handle's data replaces the file. Otherwise the last write
    // carries eof, and get-file-md5sum checks the file afterwards.
    const closeChecks = f.atomicWrite;
    if (closeChecks) {
      if (held) await send(held, false);
    } else if (held && f.orderedHandles) {
      await send(held, true); // ember-ga writes data sent with eof, then closes
    } else {
      if (held) await send(held, false);
      await send(Buffer.alloc(0), true); // the reference drops data sent with eof:true
    }
    while (inflight.length > 0) await abortable(inflight.shift()!, opts.signal, what);
    const digest = md5?.digest('hex') ?? '';
    if (verify) t.progress({ bytes: acked, total, phase: 'verify' }, opts);
    if (closeChecks) {
      checkAbort(opts.signal, what);
      handleOpen = false; // closed by this request, whatever its answer
      try {
        await ga.fileClose(
          handle,
          { md5: verify ? digest : undefined, fsync: opts.fsync ?? true },
          { timeout: md5Timeout(ga, sent) },
        );
      } catch (e) {
        if (!(e instanceof GuestAgentError)) throw e;
        if (e.remote && e.code === 'EBADMSG') throw hostError('ECHECKSUM', `${what}: ${e.message}`, 'file-close', e);
        if (!e.remote && atomic) {
          // The agent may still finish the close: the guest file is either as it was or all of
          // the new data, checked; which one, only a look at the guest file tells.
          throw new GuestAgentError(
            `${what}: ${e.message}; the guest file is either unchanged or completely replaced (the agent may still have checked and renamed it)`,
            { code: e.code, errno: e.errno, command: e.command, cause: e },
          );
        }
        throw e;
      }
    } else if (verify) {
      const remote = await abortable(ga.md5sum(guestPath, { timeout: md5Timeout(ga, sent) }), opts.signal, what);
      if (remote !== digest) throw checksumError(what, digest, remote);
    }
    return {
      bytes: sent,
      md5: digest,
      verified: verify,
      atomic,
      chunkSize: chunk,
      inFlight: depth,
      emberGa: f.emberGa,
    };
  } catch (e) {
    const failure = opts.signal?.aborted ? abortError(what) : e; // input destroyed by the abort says "premature close"
    input.destroy();
    // An atomic handle's data is dropped: the guest file stays as it was.
    if (handleOpen && handle !== undefined) await release(ga, handle, atomic);
    throw failure;
  } finally {
    opts.signal?.removeEventListener('abort', stopInput);
  }
}
