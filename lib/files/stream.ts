// Pipes, FIFOs and character devices (streams) can wait forever for the other end. They wait
// on the event loop (the addon's FdPoll), never on a thread-pool thread, so any number of idle
// streams cannot starve the pool every other file operation needs; so does a positional read
// that answers EAGAIN (/dev/kmsg at its end). A device epoll cannot watch falls back to the
// pool, where exit can still cancel it (cancelBlockedStreams).
import * as fs from 'fs';
import { constants } from 'os';
import { errorAbout, SystemError, toSystemError } from '../errors';
import { native, type FileOffset, type NativeFdPoll, type NativeMd5 } from '../native';

const { EAGAIN } = constants.errno;
/** How often a device that says "not yet" but that epoll cannot watch is asked again. */
const RETRY_UNPOLLABLE_MS = 50;

/**
 * For process exit: reads and writes on pipes and character devices that are waiting (for a
 * writer that never writes, say) fail at once with ECANCELED, and so do later ones, so no
 * thread stays blocked (Node waits for its thread pool when the process exits).
 */
export function cancelBlockedStreams(): void {
  native.cancelStreams();
}

/**
 * What a waiting read holds only while it has data to read (its reader's output reservation):
 * dropped before each wait for the other end, taken again (take() may wait for it) once there
 * is something to read, and ended by the reader when the read is over.
 */
export interface ReadClaim {
  drop(): void;
  take(): Promise<void>;
  end(): void;
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

/** Stream I/O on one fd: reads and writes that wait for the other end, and their cancellation. */
export class StreamIo {
  /** The fd's readiness on the event loop; null once epoll proved unable to watch it. */
  private waiter: StreamWaiter | null | undefined;
  /** Set by cancel(): every stream read or write from then on fails with it. */
  private cancelled: SystemError | undefined;
  /** Reads waiting to take their claim back (ReadClaim.take), failed by cancel() too. */
  private readonly claiming = new Set<(err: SystemError) => void>();

  constructor(
    private readonly fd: number,
    private readonly path: string,
    /** What reads return is hashed into it, in order. */
    private readonly hash?: NativeMd5,
  ) {}

  /** Fails the wait under way, and every later stream call, with `err` (the first one given). */
  cancel(err: SystemError): void {
    this.cancelled ??= err;
    this.waiter?.cancel(this.cancelled);
    for (const fail of this.claiming) fail(this.cancelled);
  }

  /** claim.take(), failed at once by cancel() (exit and close do not wait on a host's reading). */
  private retake(claim: ReadClaim): Promise<void> {
    if (this.cancelled) return Promise.reject(this.cancelled);
    return new Promise<void>((resolve, reject) => {
      this.claiming.add(reject);
      claim
        .take()
        .then(resolve, reject)
        .finally(() => this.claiming.delete(reject));
    });
  }

  /**
   * A positional read; on a device that answers EAGAIN (/dev/kmsg once everything is read), it
   * waits for data on the event loop and asks again, holding no pool thread meanwhile, nor
   * `claim` (taken again before it asks).
   */
  async preadWaiting(buf: Buffer, offset: FileOffset, claim?: ReadClaim): Promise<number> {
    for (;;) {
      try {
        return await this.preadNow(buf, offset);
      } catch (err) {
        if (!(err instanceof SystemError) || err.errno !== EAGAIN) throw err;
      }
      const waiter = this.streamWaiter();
      claim?.drop();
      if (waiter) await waiter.wait(false);
      else await new Promise((r) => setTimeout(r, RETRY_UNPOLLABLE_MS));
      if (claim) await this.retake(claim);
    }
  }

  /** One positional read that does not wait: EAGAIN (a SystemError) when the device has nothing now. */
  async preadNow(buf: Buffer, offset: FileOffset): Promise<number> {
    try {
      return await native.pread(this.fd, buf, offset, this.path, this.hash);
    } catch (e) {
      throw toSystemError(e);
    }
  }

  /** The stream's waiter, made on first use; undefined when epoll cannot watch the fd. */
  private streamWaiter(): StreamWaiter | undefined {
    // Cancelled before its first stream call (a read queued just ahead of file-close): fail
    // now, rather than wait on the pool for data that may never come.
    if (this.cancelled) throw this.cancelled;
    if (this.waiter === undefined) {
      try {
        this.waiter = new StreamWaiter(this.fd);
      } catch {
        this.waiter = null;
      }
    }
    return this.waiter ?? undefined;
  }

  /**
   * One read from a stream: waits (on the event loop) for data, end of stream or an error,
   * holding `claim` only once there is one of those (taken again before it reads).
   */
  async read(buf: Buffer, claim?: ReadClaim): Promise<number> {
    const waiter = this.streamWaiter();
    if (!waiter) return this.onPoolStream(() => native.pread(this.fd, buf, -1, this.path, this.hash));
    for (;;) {
      // Wait first: a FIFO whose writer has not come yet would read as end of file.
      claim?.drop();
      await waiter.wait(false);
      if (claim) await this.retake(claim);
      if (this.cancelled) throw this.cancelled;
      try {
        const n = fs.readSync(this.fd, buf, 0, buf.length, null);
        this.hash?.update(buf, n);
        return n;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw this.streamError(e, 'read');
      }
    }
  }

  /** Writes all of buf to a stream, waiting (on the event loop) while it is full. */
  async write(buf: Buffer): Promise<number> {
    const waiter = this.streamWaiter();
    if (!waiter) return this.onPoolStream(() => native.pwrite(this.fd, buf, -1, this.path));
    for (let done = 0; done < buf.length;) {
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

  /** One read from a stream that does not wait: EAGAIN (a SystemError) when it has nothing now. */
  readNow(buf: Buffer): number {
    if (this.cancelled) throw this.cancelled;
    try {
      const n = fs.readSync(this.fd, buf, 0, buf.length, null);
      this.hash?.update(buf, n);
      return n;
    } catch (e) {
      throw this.streamError(e, 'read');
    }
  }

  /** Writes what the stream takes now, without waiting: the bytes written; EAGAIN when it took none. */
  writeNow(buf: Buffer): number {
    if (this.cancelled) throw this.cancelled;
    let done = 0;
    while (done < buf.length) {
      try {
        done += fs.writeSync(this.fd, buf, done, buf.length - done, null);
      } catch (e) {
        if (done > 0 && (e as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw this.streamError(e, 'write');
      }
    }
    return done;
  }

  private async onPoolStream(call: () => Promise<number>): Promise<number> {
    try {
      return await call();
    } catch (e) {
      throw toSystemError(e);
    }
  }

  private streamError(e: unknown, op: string): unknown {
    return errorAbout(e, op, this.path);
  }
}
