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
  checkAbort,
  checkGuestMd5,
  md5Timeout,
  noop,
  plan,
  release,
  type CopyFromOptions,
  type CopyResult,
  type Transfer,
} from './copy';
import { GuestAgentError, hostError } from './errors';
import type { GuestAgent } from './guest-agent';
import type { ReadResult } from './types';

const { EISDIR } = constants.errno;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
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

/**
 * A local file written under a temporary name next to it and renamed into place on success.
 * Small chunks are gathered and written together (one writev per MiB), so a 4 KiB copy does not
 * pay a thread-pool round trip per chunk.
 */
export class LocalDest {
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
  const st = await ga.statFile(guestPath);
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
    const remoteMd5 = verify && !sentMd5 ? ga.md5File(guestPath, { timeout: md5Timeout(ga, total) }) : undefined;
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
      await checkGuestMd5(remoteMd5, digest, opts.signal, what);
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
