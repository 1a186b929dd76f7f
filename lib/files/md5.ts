// md5File: the digest of a whole file, computed in the addon off the main thread.
import { constants } from 'os';
import { AbortError, SystemError, toSystemError } from '../errors';
import { Limiter } from '../limit';
import { native } from '../native';

const { EINVAL } = constants.errno;

/**
 * Digests of one owner (a host session) running at once. Each runs on a thread of its own (not
 * libuv's pool, which the file commands need while a disk-sized md5 takes minutes) with a 4 MiB
 * read-ahead ring; later calls wait their turn.
 */
export const MD5_CONCURRENCY = 4;
/**
 * Digests running at once for all owners together, which bounds threads and memory whatever
 * hosts ask for. Twice one owner's share: a host whose digests never end (a 4 EiB sparse file)
 * holds only its own four, and another host's md5 still runs.
 */
export const MD5_TOTAL = 2 * MD5_CONCURRENCY;
/**
 * The md5 checks of file-close have slots of their own, so digests of whole disks cannot hold
 * up the close of an upload. Each hashes only what the host uploaded (it took that long to
 * send), and a host closes its uploads one after another; two bound the extra threads.
 */
export const CLOSE_CHECK_CONCURRENCY = 2;
const wholeFiles = new Limiter(MD5_TOTAL);
/** Each owner's share of wholeFiles, while it has digests running or waiting. */
const owners = new Map<unknown, Limiter>();
const NO_OWNER = Symbol('no owner');
const closeChecks = new Limiter(CLOSE_CHECK_CONCURRENCY);

export interface Md5Options {
  /**
   * Aborting it rejects with an AbortError at once: a digest that runs stops within a chunk
   * (and frees its slot for the next), one that waits for a slot leaves the queue.
   */
  signal?: AbortSignal;
  /**
   * Whose digest it is (the agent: the host session). An owner's digests run at most
   * MD5_CONCURRENCY at once, so one owner cannot take every slot (digests given none are one
   * owner's).
   */
  owner?: unknown;
}

/**
 * The md5 of the file at `path` as 32 lowercase hex digits. Reads with large sequential reads
 * and read-ahead on a thread of its own (OpenSSL's MD5); at most MD5_CONCURRENCY at once of one
 * `owner`, MD5_TOTAL of all.
 * Rejects with a SystemError (`code` 'ENOENT', 'EISDIR', ...; `errno` positive) when the file
 * cannot be read, and with EINVAL for a pipe, socket or character device: a stream has no end
 * to count on (/dev/zero never ends), and hashing one would hold a thread for as long as it runs.
 * With an aborted `signal`, rejects with an AbortError (code 'ABORT_ERR'), as Node's fs calls do.
 */
export async function md5File(path: string, options: Md5Options = {}): Promise<string> {
  const { signal, owner = NO_OWNER } = options;
  let share = owners.get(owner);
  if (!share) owners.set(owner, (share = new Limiter(MD5_CONCURRENCY)));
  try {
    return await share.run(() => digest(path, signal, wholeFiles), signal);
  } finally {
    if (share.idle && owners.get(owner) === share) owners.delete(owner);
  }
}

/** md5File for file-close's check: at most CLOSE_CHECK_CONCURRENCY at once, never behind md5File's queue. */
export function md5CloseCheck(path: string, options: Md5Options = {}): Promise<string> {
  return digest(path, options.signal, closeChecks);
}

async function digest(path: string, signal: AbortSignal | undefined, slots: Limiter): Promise<string> {
  if (signal?.aborted) throw new AbortError(signal);
  await slots.acquire(signal);
  if (signal?.aborted) {
    slots.release();
    throw new AbortError(signal);
  }
  let job: ReturnType<typeof native.md5File>;
  try {
    job = native.md5File(path);
  } catch (e) {
    slots.release();
    throw e;
  }
  // The slot is freed when the thread ends, not at the abort: the cap bounds threads. A cancelled
  // thread ends within a chunk (a few ms), or once a read the kernel is stuck in returns.
  const done = job.promise.finally(() => slots.release());
  if (!signal) return done.catch((e) => Promise.reject(md5Error(e, path)));
  return new Promise<string>((resolve, reject) => {
    const onAbort = () => {
      job.cancel();
      reject(new AbortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    done.then(resolve, (e) => reject(md5Error(e, path))).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function md5Error(e: unknown, path: string): unknown {
  const err = toSystemError(e);
  if (err instanceof SystemError && err.errno === EINVAL && err.syscall === 'md5') {
    return new SystemError(
      EINVAL,
      'md5',
      path,
      'not a regular file or block device (a pipe, socket or character device has no end to hash up to)',
    );
  }
  return err;
}
