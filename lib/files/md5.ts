// md5File: the digest of a whole file, computed in the addon off the main thread.
import { SystemError, toSystemError } from '../errors';
import { fileio } from './native';

const EINVAL = 22;

/**
 * Digests running at once. Each runs on a thread of its own (not libuv's pool, which the file
 * commands need while a disk-sized md5 takes minutes) with a 4 MiB read-ahead ring, so the cap
 * bounds threads and memory whatever a host asks for; later calls wait their turn.
 */
export const MD5_CONCURRENCY = 4;
let running = 0;
const waiting: (() => void)[] = [];

/**
 * The md5 of the file at `path` as 32 lowercase hex digits. Reads with large sequential reads
 * and read-ahead on a thread of its own (OpenSSL's MD5); at most MD5_CONCURRENCY at once.
 * Rejects with a SystemError (`code` 'ENOENT', 'EISDIR', ...; `errno` positive) when the file
 * cannot be read, and with EINVAL for a pipe, socket or character device: a stream has no end
 * to count on (/dev/zero never ends), and hashing one would hold a thread for as long as it runs.
 */
export async function md5File(path: string): Promise<string> {
  if (running >= MD5_CONCURRENCY) await new Promise<void>((r) => waiting.push(r)); // woken holding a finished call's slot
  else running++;
  try {
    return await fileio.md5File(path);
  } catch (e) {
    const err = toSystemError(e);
    if (err instanceof SystemError && err.errno === EINVAL && err.syscall === 'md5') {
      throw new SystemError(EINVAL, 'md5', path, 'not a regular file or block device (a pipe, socket or character device has no end to hash up to)');
    }
    throw err;
  } finally {
    const next = waiting.shift();
    if (next) next(); // the slot goes straight to the next caller
    else running--;
  }
}
