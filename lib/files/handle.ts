// FileHandle: a chunked reader or writer on one open file, for the file commands and for any
// Node tool that moves files in chunks.
//
// Every operation on a handle runs in call order, one at a time, at the handle's own offset
// (pread/pwrite at an explicit position, never the fd's shared file position): a caller may
// issue many reads or writes without waiting and they still apply in order. Reads whose data
// is already in the page cache are done at once on the calling thread (preadv2 RWF_NOWAIT,
// which never waits for the disk); everything else runs in the addon on the thread pool.
// Pipes, FIFOs and character devices (streams, found by pread's ESPIPE) can wait forever for
// the other end; they wait on the event loop (the addon's FdPoll), never on a pool thread, so
// any number of idle streams cannot starve the pool that every other file operation needs; so
// does a positional read that answers EAGAIN (/dev/kmsg at its end). A device epoll cannot
// watch falls back to the pool, where exit can still cancel it.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { constants } from 'os';
import * as nodePath from 'path';
import { promisify } from 'util';
import { errnoOf, SystemError, toSystemError } from '../errors';
import { parseMountInfo } from '../mounts';
import { md5CloseCheck } from './md5';
import { native, type NativeFdPoll } from '../native';
import { quote } from '../wellformed';

// O_NONBLOCK: opening a FIFO must not wait for the other end on a thread-pool thread (nothing
// could interrupt it, and Node joins its pool at exit). Regular files ignore the flag; stream
// reads and writes wait for readiness on the event loop (StreamWaiter).
const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_EXCL, O_NONBLOCK } = fs.constants;
const { EAGAIN, EBADF, EBADMSG, EBUSY, ECANCELED, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, EOPNOTSUPP, ESPIPE } = constants.errno;
/** How often a device that says "not yet" but that epoll cannot watch is asked again. */
const RETRY_UNPOLLABLE_MS = 50;

const openAsync = promisify(fs.open);
const closeAsync = promisify(fs.close);
const unlinkAsync = promisify(fs.unlink);
const fsyncAsync = promisify(fs.fsync);
const fchmodAsync = promisify(fs.fchmod);
const fchownAsync = promisify(fs.fchown);
const fstatAsync = promisify(fs.fstat);

/** "r": read an existing file; "w": create or truncate it, then write. */
export type OpenMode = 'r' | 'w';

export interface OpenOptions {
  /** Default "r". */
  mode?: OpenMode;
  /** Permission bits for a file that "w" creates (the umask applies). Default 0o644. */
  perm?: number;
  /**
   * "w" only: when the file is an executable that is running (ETXTBSY), unlink it and create
   * it anew (the running program keeps its copy).
   */
  force?: boolean;
  /**
   * "w" only: write into a new file with no name yet (O_TMPFILE) in `path`'s directory, and on
   * close give it a temporary name beside `path` (`.NAME.XXXXXXXX.ember-ga-part`) and rename it
   * over `path`, so `path` holds either its old content or all of the new, never a part;
   * close({ discard: true }), a failed write, a failed md5 check or the agent's exit drop the new
   * file instead, and so does the kernel when the process dies (the file never had a name).
   * Where the filesystem has no O_TMPFILE (NFS, vfat, some FUSE), the new file has its temporary
   * name from the start, and is removed instead of dropped. An existing file's mode and
   * owner carry over to the new one (the inode is new: hard links keep the old data, ACLs and
   * extended attributes are not copied). A symlink to a regular file has its target replaced;
   * anything else but a regular file or nothing there is refused (EINVAL).
   */
  atomic?: boolean;
}

/** How close() ends a handle. */
export interface CloseOptions {
  /** An atomic handle: drop what was written (the temporary file); the original stays as it was. */
  discard?: boolean;
  /** "w": fsync the data to disk before closing (before the rename of an atomic handle). */
  fsync?: boolean;
  /**
   * "w": 32 hex digits the md5 of the file's content must equal before it is closed (read back
   * from the file itself). A mismatch rejects with EBADMSG; an atomic handle is then discarded,
   * leaving the original as it was.
   */
  md5?: string;
}

/**
 * Where an atomic handle's data goes on close: `temp` is renamed to `target`. An O_TMPFILE file
 * has no `temp` until the close links it into the directory under a fresh one.
 */
interface AtomicTarget {
  readonly target: string;
  readonly temp?: string;
}

/** Bytes a read returns when no size is given: the reference agent's chunk. */
export const DEFAULT_READ_SIZE = 4096;

/**
 * Reads of more than this many bytes have their base64 made by the addon, as the bytes of the
 * text: a large chunk's text as strings (1.4 MB a MiB) was garbage V8 spent more of the main
 * thread collecting than the encoding cost, and a string over ~1 MB would even be an external
 * one, freed only once ~64 MB of them pile up. Smaller reads are one short heap string.
 */
const BASE64_AS_BYTES = 64 * 1024;
function base64Parts(buf: Buffer, n: number): (string | Buffer)[] {
  if (n === 0) return [];
  return [n > BASE64_AS_BYTES ? native.base64(buf, n) : buf.toString('base64', 0, n)];
}

/** The buffer synchronous cached reads go through when their bytes are consumed at once. */
let scratchBuf = Buffer.alloc(0);
function scratch(size: number): Buffer {
  if (scratchBuf.length < size) scratchBuf = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
  return scratchBuf;
}

/**
 * Opens `path` for chunked reading ("r") or writing ("w": create + truncate with `perm`).
 * Rejects with a SystemError (`code` 'ENOENT', 'EACCES', ...) like Node's fs.
 */
export async function openFile(path: string, options: OpenOptions = {}): Promise<FileHandle> {
  const mode = options.mode ?? 'r';
  const perm = (options.perm ?? 0o644) & 0o7777;
  if (options.atomic) {
    if (mode !== 'w') throw new SystemError(EINVAL, 'open', path, 'atomic needs mode "w"');
    return openAtomic(path, perm);
  }
  try {
    if (mode === 'r') return new FileHandle(await openAsync(path, O_RDONLY | O_NONBLOCK), path, mode);
    try {
      return new FileHandle(await openAsync(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK, perm), path, mode);
    } catch (e) {
      if (!options.force || (e as NodeJS.ErrnoException).code !== 'ETXTBSY') throw e;
      await unlinkAsync(path);
      return new FileHandle(await openAsync(path, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, perm), path, mode);
    }
  } catch (e) {
    throw toSystemError(e);
  }
}

/** Longest base name kept in a temporary file's name (NAME_MAX is 255 bytes; the rest is ours). */
const TEMP_BASE_BYTES = 200;

/**
 * `e` as a SystemError of `syscall` on `path`, its errno kept; `detail` rewrites the reason
 * (given the original one). Anything that is not a system error comes back as it is.
 */
function about(e: unknown, syscall: string | undefined, path: string, detail?: (reason: string) => string): unknown {
  const err = toSystemError(e);
  return err instanceof SystemError ? new SystemError(err.errno, syscall, path, detail?.(err.reason)) : err;
}

/** fsync of a directory (after a rename in it); a failure names `path`, whose replacement it made durable. */
async function syncDirectory(dir: string, path: string): Promise<void> {
  let fd: number | undefined;
  try {
    fd = await openAsync(dir, O_RDONLY);
    await fsyncAsync(fd);
  } catch (e) {
    throw about(e, 'fsync', path, (reason) => `replaced, but syncing its directory failed: ${reason}`);
  } finally {
    if (fd !== undefined) await closeAsync(fd).catch(() => undefined);
  }
}

/** `.NAME.XXXXXXXX.ember-ga-part` beside `target`. */
function tempPathFor(target: string): string {
  let base = nodePath.basename(target);
  while (Buffer.byteLength(base) > TEMP_BASE_BYTES) base = base.slice(0, -1);
  return nodePath.join(nodePath.dirname(target), `.${base}.${randomBytes(4).toString('hex')}.ember-ga-part`);
}

/** Links the O_TMPFILE file open at fd beside `target` under a fresh temporary name; that name. */
async function linkTemp(fd: number, target: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const temp = tempPathFor(target);
    try {
      await native.linkFd(fd, temp);
      return temp;
    } catch (e) {
      if (errnoOf(e) !== EEXIST || attempt >= 3) throw e;
    }
  }
}

/** True when `target` is a mount point (a bind-mounted file): rename cannot replace it (EBUSY). */
async function isMountPoint(target: string): Promise<boolean> {
  let info: string;
  try {
    info = await fs.promises.readFile('/proc/self/mountinfo', 'latin1');
  } catch {
    return false; // no /proc: the rename would say EBUSY at close
  }
  const want = Buffer.from(target).toString('latin1');
  return parseMountInfo(info).some((m) => m.mountpoint === want);
}

/** openFile() with `atomic`: a new file with no name yet (O_TMPFILE), or else a temporary file, beside the (symlink-resolved) target. */
async function openAtomic(path: string, perm: number): Promise<FileHandle> {
  // A plain open of "dir/name/" fails at once (EISDIR); so does this, not the rename at close.
  if (path.endsWith('/')) throw new SystemError(EISDIR, 'open', path);
  let target = path;
  let old: fs.Stats | undefined;
  try {
    old = await fs.promises.stat(path);
  } catch (e) {
    const err = toSystemError(e);
    if (!(err instanceof SystemError) || err.errno !== ENOENT) throw new SystemError(err instanceof SystemError ? err.errno : EINVAL, 'open', path);
    if ((await fs.promises.lstat(path).catch(() => undefined))?.isSymbolicLink()) {
      throw new SystemError(ENOENT, 'open', path, 'a symlink to a missing file: atomic replaces an existing file or creates one, not a symlink\'s target');
    }
  }
  if (old) {
    if (!old.isFile()) throw new SystemError(EINVAL, 'open', path, 'not a regular file: atomic replaces regular files only (write a device or FIFO without it)');
    try {
      target = await fs.promises.realpath(path);
    } catch (e) {
      throw about(e, 'open', path);
    }
    if (await isMountPoint(target)) {
      throw new SystemError(EINVAL, 'open', path, 'a mount point (a bind-mounted file): rename cannot replace it; write it without atomic');
    }
  }
  const mode = old ? 0o600 : perm;
  let temp: string | undefined;
  let fd: number;
  try {
    fd = await openAsync(nodePath.dirname(target), native.O_TMPFILE | O_WRONLY | O_NONBLOCK, mode).catch((e: unknown) => {
      // No O_TMPFILE on this filesystem (EOPNOTSUPP) or kernel (EISDIR: the flag read as
      // O_DIRECTORY alone): a named temporary file instead. Other errors are the directory's.
      const errno = errnoOf(e);
      if (errno !== EOPNOTSUPP && errno !== EISDIR) throw e;
      temp = tempPathFor(target);
      return openAsync(temp, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, mode);
    });
  } catch (e) {
    // A missing directory reads as a plain open's error; anything else says what failed, since
    // the file itself may well be writable (a read-only directory, sysfs, procfs).
    const err = toSystemError(e);
    const missing = err instanceof SystemError && (err.errno === ENOENT || err.errno === ENOTDIR);
    throw about(err, 'open', path, missing ? undefined : (reason) => `cannot create the temporary file beside it: ${reason}; without atomic the file is written in place`);
  }
  try {
    if (old) {
      // Owner first: chown clears setuid and setgid, which the chmod then restores. An owner
      // the agent cannot give (not root, NFS root_squash) refuses the replacement rather than
      // silently changing whose file it is.
      const mine = await fstatAsync(fd); // on the pool: an fstat on a dead NFS server can hang
      if (mine.uid !== old.uid || mine.gid !== old.gid) {
        try {
          await fchownAsync(fd, old.uid, old.gid);
        } catch (e) {
          throw about(e, 'open', path, (reason) => `cannot give the new file the owner of the old one (${old.uid}:${old.gid}): ${reason}; without atomic the file is written in place`);
        }
      }
      await fchmodAsync(fd, old.mode & 0o7777);
    }
  } catch (e) {
    await closeAsync(fd).catch(() => undefined);
    if (temp !== undefined) await unlinkAsync(temp).catch(() => undefined);
    if (e instanceof SystemError && e.path === path) throw e; // already about the path asked for
    throw about(e, 'open', path);
  }
  return new FileHandle(fd, path, 'w', { target, temp });
}

/**
 * For process exit: reads and writes on pipes and character devices that are waiting (for a
 * writer that never writes, say) fail at once with ECANCELED, and so do later ones, so no
 * thread stays blocked (Node waits for its thread pool when the process exits).
 */
export function cancelBlockedStreams(): void {
  native.cancelStreams();
}

/**
 * How a consumer of reads that cannot keep up holds them back (the agent's output limit):
 * room() is undefined when a read may go ahead, else a promise to wait on before asking again;
 * hold(n) counts n bytes just read as output on its way.
 */
export interface OutputGate {
  room(): Promise<void> | undefined;
  hold(bytes: number): void;
}

/** Most bytes gathered into one write of queued small writes. */
const WRITE_BATCH = 1024 * 1024;

interface WriteBatch {
  parts: Buffer[];
  bytes: number;
  done: Promise<void>;
}

/** One stream's readiness on the event loop: at most one wait at a time (a handle runs one operation at a time). */
class StreamWaiter {
  private readonly poll: NativeFdPoll;
  private pending: { resolve(): void; reject(e: Error): void } | undefined;
  private cancelled: SystemError | undefined;

  /** Throws when epoll cannot watch fd (a regular file, a device without poll support). */
  constructor(fd: number) {
    this.poll = new native.FdPoll(fd, () => {
      const p = this.pending;
      this.pending = undefined;
      p?.resolve();
    });
  }

  /** Resolves when the fd is readable (writable), has hung up or is in error: the I/O call then says which. */
  wait(writable: boolean): Promise<void> {
    if (this.cancelled) return Promise.reject(this.cancelled);
    return new Promise<void>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.poll.wait(writable);
    });
  }

  /** Fails the wait under way, and every later one, with `err`. */
  cancel(err: SystemError): void {
    if (this.cancelled) return;
    this.cancelled = err;
    this.poll.close();
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }
}

export class FileHandle {
  /** Bytes read or written so far: where the next operation starts. */
  position = 0;
  /** Operations queued or running. */
  private pending = 0;
  private tail: Promise<unknown> = Promise.resolve();
  /** Not a seekable file (a pipe, a character device): plain read/write at the fd's position. */
  private stream = false;
  /** False once preadv2(RWF_NOWAIT) proved unsupported here (tmpfs, NFS, FUSE...). */
  private cacheReads = true;
  private closing: Promise<void> | undefined;
  private closeOptions: CloseOptions | undefined;
  private writeError: SystemError | undefined;
  /** Writes queued behind a running one and not started yet, which later small writes join. */
  private batch: WriteBatch | undefined;
  /** A stream's readiness on the event loop; null once epoll proved unable to watch this fd. */
  private waiter: StreamWaiter | null | undefined;
  /** Set by cancelWaits(): every stream read or write from then on fails with it. */
  private streamCancel: SystemError | undefined;

  /** Use openFile(). */
  constructor(
    readonly fd: number,
    readonly path: string,
    readonly mode: OpenMode,
    private readonly replace?: AtomicTarget,
  ) {}

  /** True once close() was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Opened with `atomic`: the data replaces the file only when the handle is closed. */
  get atomic(): boolean {
    return this.replace !== undefined;
  }

  /**
   * Reads up to `size` bytes at the handle's position; an empty buffer means end of file
   * (a file that grows later can still be read further).
   */
  read(size = DEFAULT_READ_SIZE): Promise<Buffer> {
    return this.readAs(size, (buf, n) => buf.subarray(0, n), false);
  }

  /**
   * read() for protocols that carry base64 (the agent's file-read): resolves with the chunk as
   * base64 text, "" at end of file. A read served from the page cache goes through one reused
   * buffer, so moving a large file leaves no per-chunk Buffer behind for the GC.
   */
  readBase64(size = DEFAULT_READ_SIZE, gate?: OutputGate): Promise<string> {
    return this.readAs(size, (buf, n) => buf.toString('base64', 0, n), true, gate);
  }

  /**
   * readBase64() in pieces, in order (none at end of file), for answers built from pieces: each a
   * string, or the bytes of the text (a large chunk, encoded by the addon: no string on the heap).
   */
  readBase64Parts(size = DEFAULT_READ_SIZE, gate?: OutputGate): Promise<(string | Buffer)[]> {
    return this.readAs(size, base64Parts, true, gate);
  }

  private readAs<T>(size: number, take: (buf: Buffer, n: number) => T, scratchOk: boolean, gate?: OutputGate): Promise<T> {
    const bad = this.refuse('read', 'r');
    if (bad) return Promise.reject(bad);
    if (!Number.isSafeInteger(size) || size < 1) return Promise.reject(new RangeError(`read size must be an integer >= 1, got ${size}`));
    if (this.pending === 0 && this.cacheReads && !this.stream && gate?.room() === undefined) {
      const buf = scratchOk ? scratch(size) : Buffer.allocUnsafe(size);
      const n = native.preadCached(this.fd, buf.length === size ? buf : buf.subarray(0, size), this.position);
      if (n >= 0) {
        this.position += n;
        gate?.hold(n);
        return Promise.resolve(take(buf, n));
      }
      if (n === -EOPNOTSUPP) this.cacheReads = false;
      // -EAGAIN (not cached), -ESPIPE (a pipe) and real errors: the thread pool answers.
    }
    return this.enqueue(async () => {
      for (let wait = gate?.room(); wait; wait = gate?.room()) await wait;
      const buf = Buffer.allocUnsafe(size);
      const n = await this.io((offset) => this.preadWaiting(buf, offset), () => this.streamRead(buf));
      this.position += n;
      gate?.hold(n);
      return take(buf, n);
    });
  }

  /**
   * Writes all of `data` at the handle's position. After a failed write every later write fails
   * too. Small writes issued while earlier ones are still running are gathered into one write
   * (up to WRITE_BATCH bytes): a host pipelining 4 KiB chunks costs one thread-pool round trip
   * per batch, not per chunk. Each call still resolves or rejects on its own promise.
   */
  write(data: Buffer): Promise<void> {
    const bad = this.refuse('write', 'w');
    if (bad) return Promise.reject(bad);
    const open = this.batch;
    if (open && open.bytes + data.length <= WRITE_BATCH) {
      open.parts.push(data);
      open.bytes += data.length;
      return open.done;
    }
    const batch: WriteBatch = { parts: [data], bytes: data.length, done: Promise.resolve() };
    this.batch = batch;
    batch.done = this.enqueue(async () => {
      if (this.batch === batch) this.batch = undefined; // running: no more appends
      if (this.writeError) {
        const e = this.writeError;
        throw new SystemError(e.errno, 'write', this.path, `an earlier write failed (${e.message}); nothing more is written to this handle`);
      }
      if (batch.bytes === 0) return;
      const buf = batch.parts.length === 1 ? batch.parts[0] : Buffer.concat(batch.parts, batch.bytes);
      try {
        await this.io((offset) => native.pwrite(this.fd, buf, offset, this.path), () => this.streamWrite(buf));
      } catch (e) {
        this.writeError = toSystemError(e) as SystemError;
        throw this.writeError;
      }
      this.position += batch.bytes;
    });
    return batch.done;
  }

  /**
   * Closes the file once the operations already queued have run. A failing close (a delayed
   * write error on NFS, say) rejects. Calling it again returns the same promise. A read handle
   * on a stream stops waiting for data first: its waiting or queued reads fail with ECANCELED
   * (nothing is lost: those bytes stay unread). Queued writes still wait to be written.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.closing) {
      // Asked again: the same close, unless it asks for something the first one did not do.
      const same = (a: CloseOptions, b: CloseOptions) => !!a.discard === !!b.discard && !!a.fsync === !!b.fsync && a.md5?.toLowerCase() === b.md5?.toLowerCase();
      if (!same(options, this.closeOptions!) && (options.discard || options.fsync || options.md5 !== undefined)) {
        return Promise.reject(new SystemError(EBUSY, 'close', this.path, `already being closed with other options (${quote(this.closeOptions)})`));
      }
      return this.closing;
    }
    const bad = this.refuseClose(options);
    if (bad) return Promise.reject(bad);
    if (this.mode === 'r') this.cancelWaits('the handle was closed');
    this.closeOptions = { ...options };
    this.closing = this.enqueue(() => this.finish(options));
    return this.closing;
  }

  /**
   * An atomic handle whose data can no longer be what the host sent (a write it sent was
   * refused before reaching the file, and later ones would land at the wrong offset): every
   * later write fails with `err`, and closing discards instead of replacing the file.
   */
  poison(err: SystemError): void {
    if (!this.replace) return;
    this.batch = undefined; // no later write joins a batch queued before this point
    void this.enqueue(async () => {
      this.writeError ??= err;
    });
  }

  /** Why close(options) cannot be done on this handle (the handle stays open), else undefined. */
  private refuseClose(options: CloseOptions): SystemError | undefined {
    if (options.discard && !this.replace) {
      return new SystemError(EINVAL, 'close', this.path, 'discard needs a handle opened with atomic (the data written so far is already in the file)');
    }
    if ((options.md5 !== undefined || options.fsync) && this.mode !== 'w') return new SystemError(EINVAL, 'close', this.path, 'md5 and fsync apply to a handle opened with mode "w"');
    if (options.md5 !== undefined && !/^[0-9a-fA-F]{32}$/.test(options.md5)) return new SystemError(EINVAL, 'close', this.path, `md5 must be 32 hex digits, got ${quote(options.md5)}`);
    return undefined;
  }

  /** close()'s work, after every queued operation: checks, fsync, naming an O_TMPFILE file, close, then rename or discard. */
  private async finish(options: CloseOptions): Promise<void> {
    // The FdPoll goes before the fd: closing it removes the fd from epoll by number, and
    // once the fd is closed that number may already belong to something else.
    this.cancelWaits('the handle was closed');
    const replace = this.replace;
    let failure: SystemError | undefined;
    let discard = options.discard === true;
    if (this.mode === 'w' && !discard) {
      if (replace && this.writeError) {
        failure = new SystemError(this.writeError.errno, undefined, this.path, `not replaced: an earlier write failed (${this.writeError.message}); the file is as it was`);
      } else {
        failure = await this.verifyAndSync(options);
      }
      discard = failure !== undefined && replace !== undefined;
    }
    let temp = replace?.temp;
    if (replace && !discard && temp === undefined) {
      // An O_TMPFILE file gets its temporary name now, just before the rename.
      try {
        temp = await linkTemp(this.fd, replace.target);
      } catch (e) {
        failure = this.asOwn(toSystemError(e), 'link', 'not replaced: naming the new data in its directory failed');
        discard = true;
      }
    }
    try {
      await closeAsync(this.fd);
    } catch (e) {
      failure ??= this.asOwn(toSystemError(e), 'close');
      discard = replace !== undefined;
    }
    if (!replace) {
      if (failure) throw failure;
      return;
    }
    if (!discard && temp !== undefined) {
      try {
        await fs.promises.rename(temp, replace.target);
      } catch (e) {
        failure = this.asOwn(toSystemError(e), 'rename', `not replaced: renaming the new data into place failed`);
      }
      if (!failure) {
        // The rename itself is durable once the directory is synced.
        if (options.fsync) await syncDirectory(nodePath.dirname(replace.target), this.path);
        return;
      }
    }
    if (temp !== undefined) await unlinkAsync(temp).catch(() => undefined);
    if (failure) throw failure;
  }

  /** The md5 check and the fsync close() was asked for; the failure, if any. */
  private async verifyAndSync(options: CloseOptions): Promise<SystemError | undefined> {
    const outcome = this.replace ? 'not replaced: the file is as it was' : 'the data written stays in the file';
    if (options.md5 !== undefined) {
      let got: string;
      try {
        got = await md5CloseCheck(`/proc/self/fd/${this.fd}`); // the file this handle wrote, whatever its name now
      } catch (e) {
        return this.asOwn(toSystemError(e), 'md5', `md5 check failed (${outcome})`);
      }
      const want = options.md5.toLowerCase();
      if (got !== want) return new SystemError(EBADMSG, undefined, this.path, `md5 mismatch: the data written has md5 ${got}, not ${want}; ${outcome}`);
    }
    if (options.fsync) {
      try {
        await fsyncAsync(this.fd);
      } catch (e) {
        const err = toSystemError(e);
        // EINVAL: a pipe, FIFO or character device, which has nothing to flush.
        if (!(err instanceof SystemError && err.errno === EINVAL)) return this.asOwn(err, 'fsync', `fsync failed (${outcome})`);
      }
    }
    return undefined;
  }

  /** A failure of ours as a SystemError about this handle's path, errno kept (EINVAL for anything else). */
  private asOwn(e: unknown, syscall: string, why?: string): SystemError {
    const err = about(e, syscall, this.path, why === undefined ? undefined : (reason) => `${why}: ${reason}`);
    return err instanceof SystemError ? err : new SystemError(EINVAL, syscall, this.path, `${why ? why + ': ' : ''}${(e as Error).message}`);
  }

  /**
   * Stream reads and writes that wait for the other end (or will) fail with ECANCELED at once:
   * at exit, so no waiting handle keeps the agent from exiting, and from close().
   */
  cancelWaits(why = 'the agent is exiting'): void {
    this.streamCancel ??= new SystemError(ECANCELED, this.mode === 'r' ? 'read' : 'write', this.path, `cancelled: ${why}`);
    this.waiter?.cancel(this.streamCancel);
  }

  /** Runs a positional call on the pool; on ESPIPE the handle becomes a stream and `streamed` does it instead. */
  private async io(positional: (offset: number) => Promise<number>, streamed: () => Promise<number>): Promise<number> {
    if (!this.stream) {
      try {
        return await positional(this.position);
      } catch (e) {
        const err = toSystemError(e);
        if (!(err instanceof SystemError) || err.errno !== ESPIPE) throw err;
        this.stream = true;
      }
    }
    return streamed();
  }

  /**
   * A positional read; on a device that answers EAGAIN (/dev/kmsg once everything is read), it
   * waits for data on the event loop and asks again, holding no pool thread meanwhile.
   */
  private async preadWaiting(buf: Buffer, offset: number): Promise<number> {
    for (;;) {
      try {
        return await native.pread(this.fd, buf, offset, this.path);
      } catch (e) {
        const err = toSystemError(e);
        if (!(err instanceof SystemError) || err.errno !== EAGAIN) throw err;
      }
      const waiter = this.streamWaiter();
      if (waiter) await waiter.wait(false);
      else await new Promise((r) => setTimeout(r, RETRY_UNPOLLABLE_MS));
    }
  }

  /** The stream's waiter, made on first use; undefined when epoll cannot watch the fd. */
  private streamWaiter(): StreamWaiter | undefined {
    // Cancelled before its first stream call (a read queued just ahead of file-close): fail
    // now, rather than wait on the pool for data that may never come.
    if (this.streamCancel) throw this.streamCancel;
    if (this.waiter === undefined) {
      try {
        this.waiter = new StreamWaiter(this.fd);
      } catch {
        this.waiter = null;
      }
    }
    return this.waiter ?? undefined;
  }

  /** One read from a stream: waits (on the event loop) for data, end of stream or an error. */
  private async streamRead(buf: Buffer): Promise<number> {
    const waiter = this.streamWaiter();
    if (!waiter) return this.onPoolStream(() => native.pread(this.fd, buf, -1, this.path));
    for (;;) {
      // Wait first: a FIFO whose writer has not come yet would read as end of file.
      await waiter.wait(false);
      try {
        return fs.readSync(this.fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw this.streamError(e, 'read');
      }
    }
  }

  /** Writes all of buf to a stream, waiting (on the event loop) while it is full. */
  private async streamWrite(buf: Buffer): Promise<number> {
    const waiter = this.streamWaiter();
    if (!waiter) return this.onPoolStream(() => native.pwrite(this.fd, buf, -1, this.path));
    for (let done = 0; done < buf.length; ) {
      try {
        done += fs.writeSync(this.fd, buf, done, buf.length - done, null);
        continue;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw this.streamError(e, 'write');
      }
      await waiter.wait(true);
    }
    return buf.length;
  }

  private async onPoolStream(call: () => Promise<number>): Promise<number> {
    try {
      return await call();
    } catch (e) {
      throw toSystemError(e);
    }
  }

  private streamError(e: unknown, op: string): unknown {
    return about(e, op, this.path);
  }

  /** The error for an operation this handle cannot do (closed, wrong direction), else undefined. */
  private refuse(op: 'read' | 'write', needs: OpenMode): SystemError | undefined {
    if (this.closing) return new SystemError(EBADF, op, this.path, 'file already closed');
    if (this.mode !== needs) {
      return new SystemError(EBADF, op, this.path, `bad file descriptor: the file is open for ${this.mode === 'r' ? 'reading (mode "r")' : 'writing (mode "w")'}, not ${op === 'read' ? 'reading' : 'writing'}`);
    }
    return undefined;
  }

  /** Runs op after every operation queued before it, whatever their outcome. */
  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    this.pending++;
    const run = this.tail.then(op).finally(() => this.pending--);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
