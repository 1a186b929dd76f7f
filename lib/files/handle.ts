// GuestFile: a chunked reader or writer on one open file, for the file commands and for any
// Node tool that moves files in chunks.
//
// Every operation on a handle runs in call order, one at a time, at the handle's own offset
// (pread/pwrite at an explicit position, never the fd's shared file position): a caller may
// issue many reads or writes without waiting and they still apply in order. With nothing
// queued, a read whose data is already in the page cache is done at once on the calling thread
// (preadv2 RWF_NOWAIT, which never waits for the disk), and a small write on a regular file is
// done by the addon's write helper while the calling thread waits for it, a millisecond at most
// (a frozen filesystem holds a write for as long as it stays frozen; past the wait the write
// goes on by itself, native/write_helper.h); everything else runs in the addon on the thread
// pool. Pipes, FIFOs and character devices (found by pread's ESPIPE, or by openFile's fstat)
// go through stream.ts; atomic replace is atomic.ts.
import { createHash, type Hash } from 'crypto';
import * as fs from 'fs';
import { constants } from 'os';
import * as nodePath from 'path';
import { promisify } from 'util';
import { AbortError, errorAbout, SystemError, toSystemError } from '../errors';
import { md5CloseCheck } from './md5';
import { native, type FileOffset, type NativeMd5 } from '../native';
import { linkTemp, syncDirectory, type AtomicTarget } from './atomic';
import { StreamIo, type ReadClaim } from './stream';
import { quote } from '../wire/json';
import { chunkPool } from '../buffers';
import { untilAborted } from '../limit';

import type { Access, CloseOptions } from './options';

export { cancelBlockedStreams } from './stream';

const { EAGAIN, EBADF, EBADMSG, EBUSY, ECANCELED, EINVAL, EOPNOTSUPP, ESPIPE } = constants.errno;
const SEEK_SET = 0;
const SEEK_END = 2;
const INT64_MAX = 2n ** 63n - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const closeAsync = promisify(fs.close);
const unlinkAsync = promisify(fs.unlink);
const fsyncAsync = promisify(fs.fsync);

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

/**
 * A hashing handle's reads of more than this many bytes are hashed on the pool thread that
 * reads them (the page-cache read on the main thread is skipped): MD5 costs ~1.5 ms of CPU a MiB.
 * Smaller ones are hashed where they are read, which costs less than the trip to the pool.
 */
const HASH_ON_POOL = 64 * 1024;

/** The buffer synchronous cached reads go through when their bytes are consumed at once. */
let scratchBuf = Buffer.alloc(0);
function scratch(size: number): Buffer {
  if (scratchBuf.length < size) scratchBuf = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
  return scratchBuf;
}
/** scratch() cut to exactly `size` bytes, the cut kept for the next read of that size (one a request otherwise). */
let scratchCut: Buffer = Buffer.alloc(0);
function scratchOf(size: number): Buffer {
  const whole = scratch(size);
  if (scratchCut.length !== size || scratchCut.buffer !== whole.buffer) scratchCut = whole.subarray(0, size);
  return scratchCut;
}

/**
 * How a consumer of reads that cannot keep up holds them back (the agent's output limit):
 * room() is undefined when a read may go ahead, else a promise to wait on before asking again;
 * hold(n) counts n bytes just read as output on its way.
 */
export interface OutputGate {
  room(): Promise<void> | undefined;
  /** Whether room() would be undefined now, registering no waiter. */
  hasRoom(): boolean;
  hold(bytes: number): void;
  /**
   * Counts a read of up to `bytes` as output from the moment it passes room() until the returned
   * function is called (once it has counted itself with hold()): reads that wait on the thread
   * pool (a device, a stream, a file not cached) all passed room() before any was counted.
   */
  reserve?(bytes: number): () => void;
  /**
   * Aborted once the host the reads are for is gone: a read waiting for room then fails with an
   * AbortError, reading nothing (what it would have read stays for the next reader).
   */
  readonly signal?: AbortSignal;
}

/**
 * undefined when `gate` has room now (so the caller goes on in the same turn, before any other
 * read can pass the check); else a promise to wait on before asking again, which rejects with an
 * AbortError once the host the reads are for is gone (gate.signal).
 */
export function roomWait(gate: OutputGate | undefined): Promise<void> | undefined {
  const wait = gate?.room();
  const signal = gate?.signal;
  if (!wait || !signal) return wait;
  return untilAborted(wait, signal).then(() => {
    if (signal.aborted) throw new AbortError(signal);
  });
}

/**
 * A read's reservation of output (OutputGate.reserve), given up while the read waits on a stream
 * or a device with nothing to say yet and taken again, once its host has room, when there is
 * data: reads waiting on quiet FIFOs then hold none of their host's room (the data waits in the
 * pipe). Without a gate that reserves, nothing.
 */
function outputClaim(gate: OutputGate | undefined, bytes: number): ReadClaim | undefined {
  if (!gate?.reserve) return undefined;
  const reserve = () => gate.reserve!(bytes);
  let release: (() => void) | undefined = reserve();
  let ended = false;
  const drop = () => {
    release?.();
    release = undefined;
  };
  return {
    drop,
    async take() {
      for (let wait = roomWait(gate); wait && !ended; wait = roomWait(gate)) await wait;
      if (!ended) release ??= reserve();
    },
    end() {
      ended = true;
      drop();
    },
  };
}

/** What readFull() resolves with. */
export interface FullRead {
  /** Bytes read. */
  count: number;
  /** Their base64 text, in pieces (see readBase64Parts); none when count is 0. */
  base64: (string | Buffer)[];
  /** The read found the end of the file (or of the stream: its writer is gone). */
  eof: boolean;
}

/**
 * What a handle's fd is open on, as openFile() finds out (fstat): the fast paths are for regular
 * files (and, for reads, block devices, whose RWF_NOWAIT reads never block either).
 */
export type FileKind = 'regular' | 'block' | 'special';

/** How a handle does its I/O beyond its direction (openFile's "a" modes append). */
export interface HandleIo {
  /** Opened with O_APPEND: every write lands at the end, and the position follows it there. */
  append?: boolean;
  /**
   * Reads never wait for the other end, as on a non-blocking fd: a read of a stream or a device
   * with nothing to read fails with EAGAIN. So do stream writes with no room at all.
   */
  noWait?: boolean;
  /**
   * What the fd is open on. Unknown (a handle made without openFile): cached reads are tried,
   * and no write is waited for.
   */
  kind?: FileKind;
}

/** readFull() sizes up to this go through the reused buffer of page-cache reads; larger ones through the pool's. */
const SCRATCH_MAX = 4 * 1024 * 1024;
/** readFull() reads larger than this go a slice at a time (a multiple of 3: the slices' base64 joins up). */
const FULL_READ_SLICE = 3 * 1024 * 1024;

/** Most bytes gathered into one write of queued small writes. */
const WRITE_BATCH = 1024 * 1024;

/**
 * Writes of at most this many bytes on a regular file, with nothing queued before them, are
 * waited for (native.pwriteWait) instead of going through the thread pool, whose round trip
 * costs a one-at-a-time 4 KiB upload several times the write itself; a larger one would hold
 * the calling thread longer than the trip costs.
 */
const WAITED_WRITE_MAX = 64 * 1024;
/**
 * How long the calling thread waits for such a write: a write to the page cache takes a few
 * microseconds; one that takes longer (a frozen filesystem, dirty-page throttling, a busy
 * machine) goes on by itself, and the next writes use the thread pool until it is done.
 */
const WRITE_WAIT_US = 1000;

/** offset + n, exactly: a number while that is a safe integer. */
function plus(offset: FileOffset, n: number): FileOffset {
  if (typeof offset === 'number' && Number.isSafeInteger(offset + n)) return offset + n;
  return BigInt(offset) + BigInt(n);
}

/** A value or its promise, as a promise. */
function settled<T>(x: T | Promise<T>): Promise<T> {
  return x instanceof Promise ? x : Promise.resolve(x);
}

interface WriteBatch {
  parts: Buffer[];
  bytes: number;
  done: Promise<void>;
}

export class GuestFile {
  /**
   * Where the next read or write starts: bytes read or written so far, or where seek() put it;
   * a bigint past 2^53 - 1 (ext4 puts a directory's end at 2^63 - 1; a tmpfs file may be as long).
   */
  get position(): FileOffset {
    return this.pos;
  }
  private pos: FileOffset = 0;
  /** Operations queued or running. */
  private pending = 0;
  private tail: Promise<unknown> = Promise.resolve();
  /** Not a seekable file (a pipe, a character device): plain read/write at the fd's position. */
  private stream = false;
  /** False once preadv2(RWF_NOWAIT) proved unsupported here (tmpfs, NFS, FUSE...); never for special files. */
  private cacheReads: boolean;
  /** Small writes may be waited for (WAITED_WRITE_MAX): a regular file. */
  private readonly waitWrites: boolean;
  private closing: Promise<void> | undefined;
  private closeOptions: CloseOptions | undefined;
  private writeError: SystemError | undefined;
  /**
   * A device or FIFO has no content to hash at close: nothing to read back, or (a disk) far more
   * than was written. Close's md5 check is of the bytes written to it, hashed as they go.
   */
  private written: Hash | undefined;
  /** Writes queued behind a running one and not started yet, which later small writes join. */
  private batch: WriteBatch | undefined;
  /** Reads and writes once the fd proved to be a stream (pread said ESPIPE), and their cancellation. */
  private readonly streamIo: StreamIo;
  /** Opened with `md5`: the digest as of the last read that found the end of file. */
  private endMd5: string | undefined;
  /** Bytes reads done at once returned that are not hashed yet (hashLater), and how many. */
  private unhashed: Buffer | undefined;
  private unhashedLen = 0;
  private hashQueued = false;

  /** Use openFile(). */
  constructor(
    readonly fd: number,
    readonly path: string,
    readonly mode: Access,
    private readonly replace?: AtomicTarget,
    /** Opened with `md5`: what the reads return is hashed into it, in order. */
    private readonly hash?: NativeMd5,
    private readonly how: HandleIo = {},
  ) {
    this.streamIo = new StreamIo(fd, path, hash);
    this.cacheReads = how.kind !== 'special';
    this.waitWrites = how.kind === 'regular';
  }

  /** What the fd is open on, when openFile() found out. */
  get kind(): FileKind | undefined {
    return this.how.kind;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Opened with `atomic`: the data replaces the file only when the handle is closed. */
  get atomic(): boolean {
    return this.replace !== undefined;
  }

  /** Opened with `md5`: reads are hashed. */
  get hashing(): boolean {
    return this.hash !== undefined;
  }

  /**
   * Opened with `md5`: the md5 (32 lowercase hex digits) of every byte the reads returned up to
   * the last one that found the end of file (an empty buffer); undefined until one has.
   */
  md5(): string | undefined {
    return this.endMd5;
  }

  /**
   * Reads up to `size` bytes at the handle's position; an empty buffer means end of file
   * (a file that grows later can still be read further).
   */
  read(size = DEFAULT_READ_SIZE): Promise<Buffer> {
    return settled(this.readAs(size, (buf, n) => buf.subarray(0, n), false, undefined));
  }

  /**
   * read() for protocols that carry base64 (the agent's file-read): resolves with the chunk as
   * base64 text, "" at end of file. A read served from the page cache goes through one reused
   * buffer, so moving a large file leaves no per-chunk Buffer behind for the GC.
   */
  readBase64(size = DEFAULT_READ_SIZE, gate?: OutputGate): Promise<string> {
    return settled(this.readAs(size, (buf, n) => buf.toString('base64', 0, n), true, gate, true));
  }

  /**
   * readBase64() in pieces, in order (none at end of file), for answers built from pieces: each a
   * string, or the bytes of the text (a large chunk, encoded by the addon: no string on the heap).
   */
  readBase64Parts(size = DEFAULT_READ_SIZE, gate?: OutputGate): Promise<(string | Buffer)[]> {
    return settled(this.readAs(size, base64Parts, true, gate, true));
  }

  /**
   * readBase64Parts() for a caller that answers at once (the agent's file-read): the pieces
   * themselves when the read was done at once from the page cache, so its answer spares the trip
   * through promise reactions; otherwise their promise. A read done at once is not counted as
   * output on its way (gate.hold): its caller sends it before it returns.
   */
  readBase64PartsNow(size = DEFAULT_READ_SIZE, gate?: OutputGate): (string | Buffer)[] | Promise<(string | Buffer)[]> {
    return this.readAs(size, base64Parts, true, gate, false);
  }

  /**
   * fread(3)'s read (qemu-ga's guest-file-read): up to `size` bytes from the position, as base64
   * pieces like readBase64Parts; fewer only at the end of the file (`eof`), on a character device
   * with positions as one read gives (a /dev/kmsg record), or on a noWait handle when the stream
   * or device has no more for now (EAGAIN when it has none). Size 0 reads nothing.
   * `signal` aborted (its host left) stops the read between slices with an AbortError, the
   * position where it was: a 48 MiB answer is not made for nobody.
   */
  readFull(size: number, gate?: OutputGate, signal?: AbortSignal): Promise<FullRead> {
    return settled(this.readFullNow(size, gate, true, signal));
  }

  /**
   * readFull() for a caller that answers at once (the agent's guest-file-read): the read itself
   * when it was done at once (size 0, or from the page cache), otherwise its promise. `hold`
   * false: a read done at once is not counted as output on its way (its caller sends it before
   * it returns).
   */
  readFullNow(size: number, gate?: OutputGate, hold = false, signal?: AbortSignal): FullRead | Promise<FullRead> {
    // fread of nothing reads nothing, whatever the direction (qemu-ga answers it on any handle).
    const bad = size === 0 && !this.closing ? undefined : this.refuse('read');
    if (bad) return Promise.reject(bad);
    if (size === 0) return { count: 0, base64: [], eof: false };
    if (!Number.isSafeInteger(size) || size < 0)
      return Promise.reject(new RangeError(`read size must be an integer >= 0, got ${size}`));
    if (
      this.pending === 0 &&
      this.cacheReads &&
      !this.stream &&
      !this.hash &&
      size <= SCRATCH_MAX &&
      (gate === undefined || gate.hasRoom())
    ) {
      const buf = scratchOf(size);
      const n = native.preadCached(this.fd, buf, this.position);
      // All of it, or the end: done. A part may be the end or what is cached: the pool reads on.
      if (n === size || n === 0) {
        this.advance(n, hold ? gate : undefined);
        return { count: n, base64: base64Parts(buf, n), eof: n === 0 };
      }
      if (n === -EOPNOTSUPP) this.cacheReads = false;
    }
    return this.enqueue(async () => {
      for (let wait = roomWait(gate); wait; wait = roomWait(gate)) await wait;
      // Read a slice at a time into one reused buffer, each slice's base64 made as it comes:
      // a 48 MiB read then holds its text and one slice, not the text and all the bytes.
      const slice = Math.min(size, FULL_READ_SLICE);
      const buf = chunkPool.take(slice);
      const claim = outputClaim(gate, size);
      try {
        const base64: (string | Buffer)[] = [];
        let count = 0;
        let fill = 0; // bytes in buf whose base64 is not made yet
        let eof = false;
        while (count < size) {
          if (signal?.aborted) throw new AbortError(signal);
          const part = buf.subarray(fill, fill + Math.min(slice - fill, size - count));
          const at = count;
          let n: number;
          try {
            n = await this.io(
              (offset) =>
                this.how.noWait
                  ? this.streamIo.preadNow(part, plus(offset, at))
                  : this.streamIo.preadWaiting(part, plus(offset, at), claim),
              () => (this.how.noWait ? Promise.resolve(this.streamIo.readNow(part)) : this.streamIo.read(part, claim)),
            );
          } catch (e) {
            if (count > 0 && (e as SystemError).errno === EAGAIN) break; // what the stream had
            throw e;
          }
          if (n === 0) {
            eof = true;
            break;
          }
          count += n;
          fill += n;
          if (fill === slice) {
            base64.push(...base64Parts(buf, fill));
            fill = 0;
          }
          if (this.stream && !this.how.noWait) break; // a waiting stream read gives what one read has
          // A device with positions short of the part gives what one read has: reading on into
          // what is left may meet a /dev/kmsg record longer than that, which the kernel skips
          // (EINVAL). (A pipe reads on: to its end, as fread does.)
          if (this.how.kind === 'special' && !this.stream && n < part.length) break;
        }
        if (fill > 0) base64.push(...base64Parts(buf, fill));
        this.advance(count, gate);
        return { count, base64, eof };
      } finally {
        claim?.end();
        chunkPool.give(buf);
      }
    });
  }

  /**
   * fwrite(3)'s write (qemu-ga's guest-file-write): writes `data` at the position (at the end,
   * for an append handle) after the operations queued before it; resolves with the bytes
   * written: all of them, but on a stream of a noWait handle, what it took without waiting
   * (EAGAIN when it took none). Unlike write(), an earlier failure does not stop later writes.
   */
  writeSome(data: Buffer): Promise<number> {
    return settled(this.writeSomeNow(data));
  }

  /** writeSome() for a caller that answers at once: the bytes written when the write was done at once (a waited write), else its promise. */
  writeSomeNow(data: Buffer): number | Promise<number> {
    const bad = this.refuse('write');
    if (bad) return Promise.reject(bad);
    this.batch = undefined; // later write()s must not join a batch queued before this one
    const waited = this.waitedWrite(data);
    if (waited !== undefined) {
      if (waited === true) return data.length;
      // Failed, or still being written: the handle's next operations wait for it. An error is
      // this write's only (no writeError: writeSome does not stop later writes).
      return this.enqueue(() =>
        waited.then(
          () => (this.wrote(data.length), data.length),
          (e) => {
            throw toSystemError(e);
          },
        ),
      );
    }
    return this.enqueue(async () => {
      if (data.length === 0) return 0;
      const n = await this.io(
        (offset) => native.pwrite(this.fd, data, offset, this.path),
        () => (this.how.noWait ? Promise.resolve(this.streamIo.writeNow(data)) : this.streamIo.write(data)),
      );
      this.wrote(n, data);
      return n;
    });
  }

  /**
   * Moves the position as lseek(2) does (whence 0: to offset, 1: from the position, 2: from the
   * end of the file) once the operations queued before it are done; resolves with the new
   * position, a bigint (it may be past 2^53: ext4 puts a directory's end at 2^63 - 1). Exact
   * over the whole int64 range, offset included.
   */
  seek(offset: FileOffset, whence: 0 | 1 | 2): Promise<bigint> {
    if (this.closing) return Promise.reject(new SystemError(EBADF, 'lseek', this.path, 'file already closed'));
    return this.enqueue(async () => {
      let at: bigint;
      if (whence === 1) {
        // The fd's own offset is not the position (reads and writes are positional): the sum is
        // made here, and one past int64 is EINVAL, as the kernel's SEEK_CUR would have it.
        const to = BigInt(this.position) + BigInt(offset);
        if (to < 0n || to > INT64_MAX) throw new SystemError(EINVAL, 'lseek', this.path);
        at = native.lseek(this.fd, to, SEEK_SET, this.path);
      } else at = native.lseek(this.fd, offset, whence, this.path);
      this.moveTo(at);
      return at;
    }).catch((e) => {
      throw toSystemError(e);
    });
  }

  /**
   * Resolves once every operation queued before it is done (fflush(3)'s place: the data of a
   * write is in the file once its write resolves, so there is nothing more to push).
   */
  flush(): Promise<void> {
    if (this.closing) return Promise.reject(new SystemError(EBADF, 'flush', this.path, 'file already closed'));
    return this.enqueue(async () => {});
  }

  /** Whether close's md5 check is of the bytes written (see `written`): a device or a FIFO. */
  private get hashesWrites(): boolean {
    return this.how.kind === 'special' || this.how.kind === 'block';
  }

  /**
   * After a write of n bytes (the first n of `data`, where given): the position moves past them
   * (for an append handle, to the end).
   */
  private wrote(n: number, data?: Buffer): void {
    if (data && this.hashesWrites) (this.written ??= createHash('md5')).update(data.subarray(0, n));
    if (this.how.append && !this.stream) this.moveTo(native.lseek(this.fd, 0, SEEK_END, this.path));
    else this.moveOn(n);
  }

  private moveTo(at: bigint): void {
    this.pos = at <= MAX_SAFE ? Number(at) : at;
  }

  private moveOn(n: number): void {
    this.pos = plus(this.pos, n);
  }

  /**
   * The read's result, or its promise when it cannot be done at once on this thread. `hold`:
   * whether a read done at once counts as output on its way (gate.hold), as one done later does.
   */
  private readAs<T>(
    size: number,
    take: (buf: Buffer, n: number) => T,
    scratchOk: boolean,
    gate: OutputGate | undefined,
    hold = true,
  ): T | Promise<T> {
    const bad = this.refuse('read');
    if (bad) return Promise.reject(bad);
    if (!Number.isSafeInteger(size) || size < 1)
      return Promise.reject(new RangeError(`read size must be an integer >= 1, got ${size}`));
    if (
      this.pending === 0 &&
      this.cacheReads &&
      !this.stream &&
      !(this.hash && size > HASH_ON_POOL) &&
      (gate === undefined || gate.hasRoom())
    ) {
      const buf = scratchOk ? scratchOf(size) : Buffer.allocUnsafe(size);
      const n = native.preadCached(this.fd, buf, this.position);
      if (n >= 0) {
        if (this.hash) this.hashLater(buf, n);
        this.advance(n, hold ? gate : undefined);
        return take(buf, n);
      }
      if (n === -EOPNOTSUPP) this.cacheReads = false;
      // -EAGAIN (not cached), -ESPIPE (a pipe) and real errors: the thread pool answers.
    }
    return this.enqueue(async () => {
      for (let wait = roomWait(gate); wait; wait = roomWait(gate)) await wait;
      const claim = outputClaim(gate, size);
      try {
        this.flushHash(); // what the reads before this one returned, first
        const buf = Buffer.allocUnsafe(size);
        const n = await this.io(
          (offset) => this.streamIo.preadWaiting(buf, offset, claim),
          () => this.streamIo.read(buf, claim),
        ); // hashed there
        this.advance(n, gate);
        return take(buf, n);
      } finally {
        claim?.end();
      }
    });
  }

  /** After a read of n bytes (hashed, or to be): the position moves on; at end of file the md5 is taken. */
  private advance(n: number, gate: OutputGate | undefined): void {
    this.moveOn(n);
    gate?.hold(n);
    // Taken in the read's own turn: by the time its caller looks, the next read may be hashing.
    if (n === 0 && this.hash) {
      this.flushHash();
      this.endMd5 = this.hash.digest();
    }
  }

  /**
   * Hashes the n bytes a read done at once returned, but once its caller is done with them:
   * the md5 of a 4 KiB read (~8 us) then comes after its answer is written, not between the
   * request and the answer. The bytes are copied (the read's buffer is reused by the next);
   * hashed in a microtask, in order, and before anything else that hashes (flushHash).
   */
  private hashLater(buf: Buffer, n: number): void {
    if (n === 0) return;
    if (!this.unhashed || this.unhashed.length - this.unhashedLen < n) {
      const bigger = Buffer.allocUnsafe(Math.max(HASH_ON_POOL, 2 * (this.unhashedLen + n)));
      this.unhashed?.copy(bigger, 0, 0, this.unhashedLen);
      this.unhashed = bigger;
    }
    this.unhashedLen += buf.copy(this.unhashed, this.unhashedLen, 0, n);
    if (!this.hashQueued) {
      this.hashQueued = true;
      queueMicrotask(() => this.flushHash());
    }
  }

  /** Hashes what hashLater() left, now. */
  private flushHash(): void {
    this.hashQueued = false;
    if (this.unhashedLen === 0 || !this.unhashed) return;
    this.hash!.update(this.unhashed, this.unhashedLen);
    this.unhashedLen = 0;
    // A buffer grown past the usual (reads queued in one turn) goes back to the collector.
    if (this.unhashed.length > HASH_ON_POOL) this.unhashed = undefined;
  }

  /**
   * Writes all of `data` at the handle's position. After a failed write every later write fails
   * too. Small writes issued while earlier ones are still running are gathered into one write
   * (up to WRITE_BATCH bytes): a host pipelining 4 KiB chunks costs one thread-pool round trip
   * per batch, not per chunk. Each call still resolves or rejects on its own promise.
   */
  write(data: Buffer): Promise<void> {
    const r = this.writeNow(data);
    return r === true ? Promise.resolve() : r;
  }

  /** write() for a caller that answers at once: true when the data was written at once (a waited write), else its promise. */
  writeNow(data: Buffer): true | Promise<void> {
    const bad = this.refuse('write');
    if (bad) return Promise.reject(bad);
    if (!this.writeError) {
      const waited = this.waitedWrite(data);
      if (waited === true) return true;
      if (waited) {
        // Failed, or still being written: the handle's next operations wait for it.
        return this.enqueue(async () => {
          try {
            await waited;
          } catch (e) {
            this.writeError = toSystemError(e) as SystemError;
            throw this.writeError;
          }
          this.wrote(data.length);
        });
      }
    }
    const open = this.batch;
    if (open && open.bytes + data.length <= WRITE_BATCH) {
      open.parts.push(data);
      open.bytes += data.length;
      return open.done;
    }
    const batch: WriteBatch = { parts: [data], bytes: data.length, done: Promise.resolve() };
    batch.done = this.enqueue(async () => {
      if (this.batch === batch) this.batch = undefined; // running: no more appends
      if (this.writeError) {
        const e = this.writeError;
        throw new SystemError(
          e.errno,
          'write',
          this.path,
          `an earlier write failed (${e.message}); nothing more is written to this handle`,
        );
      }
      if (batch.bytes === 0) return;
      const buf = batch.parts.length === 1 ? batch.parts[0] : Buffer.concat(batch.parts, batch.bytes);
      try {
        await this.io(
          (offset) => native.pwrite(this.fd, buf, offset, this.path),
          () => this.streamIo.write(buf),
        );
      } catch (e) {
        this.writeError = toSystemError(e) as SystemError;
        throw this.writeError;
      }
      this.wrote(batch.bytes, buf);
    });
    this.batch = batch; // after enqueue(), which closes any batch before it
    return batch.done;
  }

  /**
   * A small write on a regular file with nothing queued, done by the addon's write helper while
   * this thread waits for it (WRITE_WAIT_US at most): true when it is written (the position
   * moved on); a promise, when it failed (rejected, with pwrite's error) or is still being
   * written (settling as pwrite's would; the position is the caller's to move); undefined when
   * it was not tried (the thread pool's path).
   */
  private waitedWrite(data: Buffer): true | Promise<number> | undefined {
    if (this.pending > 0 || !this.waitWrites || this.stream || data.length === 0 || data.length > WAITED_WRITE_MAX)
      return undefined;
    const r = native.pwriteWait(this.fd, data, this.position, this.path, WRITE_WAIT_US);
    if (typeof r !== 'number') return r; // undefined: the helper is still on a write that outlasted its wait
    this.wrote(r);
    return true;
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
      const same = (a: CloseOptions, b: CloseOptions) =>
        !!a.discard === !!b.discard && !!a.fsync === !!b.fsync && a.md5?.toLowerCase() === b.md5?.toLowerCase();
      if (!same(options, this.closeOptions!) && (options.discard || options.fsync || options.md5 !== undefined)) {
        return Promise.reject(
          new SystemError(
            EBUSY,
            'close',
            this.path,
            `already being closed with other options (${quote(this.closeOptions)})`,
          ),
        );
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
    void this.enqueue(async () => {
      this.writeError ??= err;
    });
  }

  /** Why close(options) cannot be done on this handle (the handle stays open), else undefined. */
  private refuseClose(options: CloseOptions): SystemError | undefined {
    if (options.discard && !this.replace) {
      return new SystemError(
        EINVAL,
        'close',
        this.path,
        'discard needs a handle opened with atomic (the data written so far is already in the file)',
      );
    }
    if ((options.md5 !== undefined || options.fsync) && this.mode !== 'w')
      return new SystemError(EINVAL, 'close', this.path, 'md5 and fsync apply to a handle opened with mode "w"');
    if (options.md5 !== undefined && !/^[0-9a-fA-F]{32}$/.test(options.md5))
      return new SystemError(EINVAL, 'close', this.path, `md5 must be 32 hex digits, got ${quote(options.md5)}`);
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
    if (this.mode !== 'r' && !discard) {
      if (replace && this.writeError) {
        failure = new SystemError(
          this.writeError.errno,
          undefined,
          this.path,
          `not replaced: an earlier write failed (${this.writeError.message}); the file is as it was`,
        );
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
        got = this.hashesWrites
          ? (this.written ?? createHash('md5')).digest('hex')
          : await md5CloseCheck(`/proc/self/fd/${this.fd}`); // the file this handle wrote, whatever its name now
      } catch (e) {
        return this.asOwn(toSystemError(e), 'md5', `md5 check failed (${outcome})`);
      }
      const want = options.md5.toLowerCase();
      if (got !== want)
        return new SystemError(
          EBADMSG,
          undefined,
          this.path,
          `md5 mismatch: the data written has md5 ${got}, not ${want}; ${outcome}`,
        );
    }
    if (options.fsync) {
      try {
        await fsyncAsync(this.fd);
      } catch (e) {
        const err = toSystemError(e);
        // EINVAL: a pipe, FIFO or character device, which has nothing to flush.
        if (!(err instanceof SystemError && err.errno === EINVAL))
          return this.asOwn(err, 'fsync', `fsync failed (${outcome})`);
      }
    }
    return undefined;
  }

  /** A failure of ours as a SystemError about this handle's path, errno kept (EINVAL for anything else). */
  private asOwn(e: unknown, syscall: string, why?: string): SystemError {
    const err = errorAbout(e, syscall, this.path, why === undefined ? undefined : (reason) => `${why}: ${reason}`);
    return err instanceof SystemError
      ? err
      : new SystemError(EINVAL, syscall, this.path, `${why ? why + ': ' : ''}${(e as Error).message}`);
  }

  /**
   * Stream reads and writes that wait for the other end (or will) fail with ECANCELED at once:
   * at exit, so no waiting handle keeps the agent from exiting, and from close().
   */
  cancelWaits(why = 'the agent is exiting'): void {
    this.streamIo.cancel(
      new SystemError(ECANCELED, this.mode === 'r' ? 'read' : 'write', this.path, `cancelled: ${why}`),
    );
  }

  /** Runs a positional call on the pool; on ESPIPE the handle becomes a stream and `streamed` does it instead. */
  private async io(
    positional: (offset: FileOffset) => Promise<number>,
    streamed: () => Promise<number>,
  ): Promise<number> {
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

  /** The error for an operation this handle cannot do (closed, wrong direction), else undefined. */
  private refuse(op: 'read' | 'write'): SystemError | undefined {
    if (this.closing) return new SystemError(EBADF, op, this.path, 'file already closed');
    if (this.mode === (op === 'read' ? 'w' : 'r')) {
      return new SystemError(
        EBADF,
        op,
        this.path,
        `bad file descriptor: the file is open for ${this.mode === 'r' ? 'reading (mode "r")' : 'writing (mode "w")'}, not ${op === 'read' ? 'reading' : 'writing'}`,
      );
    }
    return undefined;
  }

  /** Runs op after every operation queued before it, whatever their outcome. */
  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    // A write issued after this operation must run after it: it may not join an earlier batch.
    this.batch = undefined;
    this.pending++;
    const run = this.tail.then(op).finally(() => this.pending--);
    // The queue keeps the order, not the result (a large read's text must not outlive its answer).
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

/** The agent's own name for a GuestFile (its handle tables hold them). */
export type FileHandle = GuestFile;
