// Downloads: a guest file into a local path (under a temporary name, renamed on success) or a
// Writable, verified with the md5 of what the agent read (file-open `md5`) or else
// get-file-md5sum.
import { createHash, randomBytes } from 'crypto';
import { once } from 'events';
import * as fs from 'fs';
import { constants } from 'os';
import * as path from 'path';
import type { Writable } from 'stream';
import {
  abortable,
  alongsideTimeout,
  checkAbort,
  checkGuestMd5,
  copyResult,
  finishWait,
  noop,
  plan,
  release,
  type CopyFromOptions,
  type CopyResult,
  type Transfer,
} from './copy';
import { errnoOf, errorAbout, SystemError } from '../errors';
import { GuestAgentError, hostError } from './errors';
import type { GuestAgent } from './guest-agent';
import type { ReadResult } from './types';

const { EEXIST, EINVAL, EISDIR, EOPNOTSUPP, EROFS } = constants.errno;
const { O_WRONLY } = fs.constants;
/** The type bits of a guest file's Mode (Linux's, whatever the host's are). */
export const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
/** Bytes gathered before a local write. */
const WRITE_BATCH = 1024 * 1024;

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
export class StreamDest {
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

/** The addon's helpers for a file with no name (O_TMPFILE, linkat), where it loads: the client works without it. */
interface Unnamed {
  O_TMPFILE: number;
  linkFd(fd: number, path: string): Promise<void>;
}

let unnamedP: Promise<Unnamed | undefined> | undefined;

function unnamedFiles(): Promise<Unnamed | undefined> {
  unnamedP ??= import('../native').then(
    ({ native }) => {
      // linkat needs CAP_DAC_READ_SEARCH, or else /proc/self/fd (fdio::LinkFd): without either
      // an unnamed file could never be given its name.
      if (process.getuid?.() !== 0 && !fs.existsSync('/proc/self/fd')) return undefined;
      return { O_TMPFILE: native.O_TMPFILE, linkFd: native.linkFd };
    },
    () => undefined, // no addon here (a macOS host, a copy without prebuilds)
  );
  return unnamedP;
}

/** `.NAME.XXXXXXXX.ember-ga-part` beside `dest`. */
function tempBeside(dest: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}.${randomBytes(4).toString('hex')}.ember-ga-part`);
}

/**
 * Named temporary files of downloads under way, removed if a signal would end the process
 * (SIGINT, SIGTERM, SIGHUP: an ssh session dropped) or it exits: a process that handles the
 * signal itself (ember-ga-ctl) aborts its copies, which remove them.
 */
const liveTemps = new Set<string>();
const TEMP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function removeTempsNow(): void {
  for (const t of liveTemps) fs.rmSync(t, { force: true });
  liveTemps.clear();
}

function onTempSignal(sig: NodeJS.Signals): void {
  if (process.listenerCount(sig) > 1) return; // the program's own handler decides
  removeTempsNow();
  untrackAll();
  process.kill(process.pid, sig); // no listener left: the default action, death by `sig`
}

function untrackAll(): void {
  for (const s of TEMP_SIGNALS) process.off(s, onTempSignal);
  process.off('exit', removeTempsNow);
}

function trackTemp(t: string): void {
  if (liveTemps.size === 0) {
    for (const s of TEMP_SIGNALS) process.on(s, onTempSignal);
    process.on('exit', removeTempsNow);
  }
  liveTemps.add(t);
}

function untrackTemp(t: string): void {
  if (!liveTemps.delete(t) || liveTemps.size > 0) return;
  untrackAll();
}

/**
 * A local destination written where it has no name until it is complete: a file with no name
 * in the destination's directory (O_TMPFILE, through the addon), linked in as the destination
 * when done, so an interrupted download (a signal, a crash, SIGKILL) leaves nothing. Without
 * the addon or O_TMPFILE, a hidden `.NAME.XXXXXXXX.ember-ga-part` beside it, renamed into
 * place, and removed on failure or on a signal that ends the process. Errors name the
 * destination, never the temporary file. Small chunks are gathered and written together (one
 * writev per MiB), so a 4 KiB copy does not pay a thread-pool round trip per chunk.
 */
export class LocalDest {
  private fh: fs.promises.FileHandle | undefined;
  private bufs: Buffer[] = [];
  private size = 0;
  /** The hidden name while there is one (no O_TMPFILE here). */
  private temp: string | undefined;
  private linkFd: Unnamed['linkFd'] | undefined;
  /** The file replaced: its mode and owner go to the new one, as cp(1), writing into it, keeps them. */
  private replaced: fs.Stats | undefined;
  /**
   * The destination is a device or a FIFO (/dev/stdout in a pipe): written in place, as cp(1)
   * writes it. A new file linked over it would replace /dev/null itself. (A socket cannot be
   * opened: ENXIO, and it stays what it is.)
   */
  private inPlace = false;
  /** The copy's abort (open's): a FIFO nobody reads can block its open and its writes for good. */
  private signal: AbortSignal | undefined;
  private what = '';

  constructor(public dest: string) {}

  /** Whether the data being written has no name yet (O_TMPFILE). */
  get unnamed(): boolean {
    return this.linkFd !== undefined;
  }

  /** `e` (from a temporary file) as a SystemError of `syscall` on the destination. */
  private fail(e: unknown, syscall: string): unknown {
    return errorAbout(e, syscall, this.dest);
  }

  async open(signal?: AbortSignal, what = ''): Promise<void> {
    this.signal = signal;
    this.what = what;
    const st = await fs.promises.stat(this.dest).catch(() => undefined);
    if (st?.isDirectory()) throw new SystemError(EISDIR, 'open', this.dest);
    if (st && !st.isFile()) {
      // Blocks until the FIFO has a reader: an abort ends the wait (a late open is closed).
      const opening = fs.promises.open(this.dest, O_WRONLY);
      try {
        this.fh = await abortable(
          opening.catch((e: unknown) => Promise.reject(this.fail(e, 'open'))),
          signal,
          what,
        );
      } catch (e) {
        opening.then((fh) => fh.close(), noop).catch(noop);
        throw e;
      }
      this.inPlace = true;
      return;
    }
    // A link to a file is written through, as cp(1) does: the file it names is replaced.
    if (st && (await fs.promises.lstat(this.dest)).isSymbolicLink()) this.dest = await fs.promises.realpath(this.dest);
    if (st?.isFile()) this.replaced = st;
    const helpers = await unnamedFiles();
    if (helpers) {
      try {
        this.fh = await fs.promises.open(path.dirname(this.dest), helpers.O_TMPFILE | O_WRONLY, 0o666);
        this.linkFd = helpers.linkFd;
        return;
      } catch (e) {
        // No O_TMPFILE on this filesystem (EOPNOTSUPP) or kernel (EISDIR): a named file.
        const errno = errnoOf(e);
        if (errno !== EOPNOTSUPP && errno !== EISDIR) throw this.fail(e, 'open');
      }
    }
    const temp = tempBeside(this.dest);
    try {
      this.fh = await fs.promises.open(temp, 'wx', 0o666);
    } catch (e) {
      throw this.fail(e, 'open');
    }
    this.temp = temp;
    trackTemp(temp);
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
    try {
      // A FIFO whose reader does not read blocks the write: an abort ends the wait.
      let done = (
        await (this.inPlace ? abortable(this.fh!.writev(bufs), this.signal, this.what) : this.fh!.writev(bufs))
      ).bytesWritten;
      if (done < size) {
        const all = Buffer.concat(bufs, size);
        while (done < size) done += (await this.fh!.write(all, done, size - done)).bytesWritten;
      }
    } catch (e) {
      throw this.signal?.aborted ? e : this.fail(e, 'write');
    }
  }

  /** Gives the data the destination's name (replacing what is there), then closes it. */
  private async place(): Promise<void> {
    if (this.inPlace) return this.close();
    const old = this.replaced;
    if (old) {
      // A 0600 key stays 0600, a script executable. The owner only where we may give it.
      await this.fh!.chown(old.uid, old.gid).catch(() => {});
      try {
        await this.fh!.chmod(old.mode & 0o7777);
      } catch (e) {
        throw this.fail(e, 'chmod');
      }
    }
    if (this.linkFd) {
      const fd = this.fh!.fd;
      try {
        await this.linkFd(fd, this.dest); // a new file: named at once
      } catch (e) {
        if (errnoOf(e) !== EEXIST) throw this.fail(e, 'link');
        // Replacing a file: under a fresh hidden name, at once renamed over it.
        const temp = tempBeside(this.dest);
        try {
          await this.linkFd(fd, temp);
        } catch (e2) {
          throw this.fail(e2, 'link');
        }
        trackTemp(temp);
        try {
          await fs.promises.rename(temp, this.dest);
        } catch (e2) {
          await fs.promises.rm(temp, { force: true });
          throw this.fail(e2, 'rename');
        } finally {
          untrackTemp(temp);
        }
      }
      await this.close();
      return;
    }
    await this.close();
    try {
      await fs.promises.rename(this.temp!, this.dest);
    } catch (e) {
      throw this.fail(e, 'rename');
    }
    untrackTemp(this.temp!);
    this.temp = undefined;
  }

  private async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  async commit(fsync: boolean): Promise<void> {
    await this.flush();
    // A character device or a FIFO has nothing to sync (EINVAL); a block device has.
    if (fsync)
      await this.fh!.sync().catch((e: unknown) =>
        this.inPlace && (errnoOf(e) === EINVAL || errnoOf(e) === EROFS)
          ? undefined
          : Promise.reject(this.fail(e, 'fsync')),
      );
    await this.place();
  }

  /** A failed download: drops what arrived, or with `keep` gives it the destination's name. */
  async abandon(keep: boolean): Promise<void> {
    if (keep && this.fh) {
      try {
        await this.flush();
        await this.place();
        return;
      } catch {
        // cannot be kept: dropped like the rest
      }
    }
    // A write blocked on a FIFO still holds the handle: it closes once the write returns.
    if (this.inPlace) void this.close().catch(noop);
    else await this.close().catch(noop);
    if (this.temp) {
      await fs.promises.rm(this.temp, { force: true });
      untrackTemp(this.temp);
      this.temp = undefined;
    }
  }
}

/** A download's destination: a local path or a Writable (the other one undefined). */
export function destOf(dest: string | Writable): { local?: LocalDest; stream?: StreamDest } {
  return typeof dest === 'string' ? { local: new LocalDest(dest) } : { stream: new StreamDest(dest) };
}

/** Writes `data` to the destination; waiting for a full Writable to drain ends with an abort. */
export async function writeDest(
  local: LocalDest | undefined,
  stream: StreamDest | undefined,
  data: Buffer,
  signal: AbortSignal | undefined,
  what: string,
): Promise<void> {
  if (local) await local.write(data);
  else await abortable(stream!.write(data), signal, what);
}

/**
 * A download's destination once every byte is in: a local file committed (linked in, fsync'ed
 * unless told not to), a stream ended and flushed, or left open when `end: false`.
 */
export async function finishDest(
  local: LocalDest | undefined,
  stream: StreamDest | undefined,
  opts: CopyFromOptions,
): Promise<void> {
  if (local) await local.commit(opts.fsync ?? true);
  else if (opts.end ?? true) {
    stream!.dest.end();
    await once(stream!.dest, 'finish');
  } else stream!.check();
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
  const st = await ga.statFile(guestPath);
  const type = st.stat.Mode & S_IFMT;
  if (type === S_IFDIR)
    throw new GuestAgentError(`${what}: is a directory`, { code: 'EISDIR', errno: EISDIR, remote: true });
  const total = type === S_IFREG ? st.stat.Size : undefined;
  const verify = opts.verify ?? true;

  const { local, stream } = destOf(dest);
  await local?.open(opts.signal, what);
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
    const remoteMd5 =
      verify && !sentMd5 ? ga.md5File(guestPath, { timeout: alongsideTimeout(ga, opts, total) }) : undefined;
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
        await writeDest(local, stream, r.data, opts.signal, what);
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
      await checkGuestMd5(finishWait(remoteMd5, opts, 'get-file-md5sum', bytes), digest, opts.signal, what);
    }
    await finishDest(local, stream, opts);
    return copyResult(f, { chunk, depth }, { bytes, md5: digest, verified: verify, atomic: false });
  } catch (e) {
    if (handleOpen && handle !== undefined) await release(ga, handle, false);
    await local?.abandon(opts.keepPartial ?? false);
    throw e;
  } finally {
    stream?.detach();
  }
}
