// md5File: the digest of a whole file, computed in the addon off the main thread.
import { SystemError, toSystemError } from '../errors';
import { Limiter } from '../limit';
import { fileio } from './native';

const EINVAL = 22;

/**
 * Digests running at once. Each runs on a thread of its own (not libuv's pool, which the file
 * commands need while a disk-sized md5 takes minutes) with a 4 MiB read-ahead ring, so the cap
 * bounds threads and memory whatever a host asks for; later calls wait their turn.
 */
export const MD5_CONCURRENCY = 4;
const digests = new Limiter(MD5_CONCURRENCY);

/**
 * The md5 of the file at `path` as 32 lowercase hex digits. Reads with large sequential reads
 * and read-ahead on a thread of its own (OpenSSL's MD5); at most MD5_CONCURRENCY at once.
 * Rejects with a SystemError (`code` 'ENOENT', 'EISDIR', ...; `errno` positive) when the file
 * cannot be read, and with EINVAL for a pipe, socket or character device: a stream has no end
 * to count on (/dev/zero never ends), and hashing one would hold a thread for as long as it runs.
 */
export function md5File(path: string): Promise<string> {
  return digests.run(async () => {
    try {
      return await fileio.md5File(path);
    } catch (e) {
      const err = toSystemError(e);
      if (err instanceof SystemError && err.errno === EINVAL && err.syscall === 'md5') {
        throw new SystemError(EINVAL, 'md5', path, 'not a regular file or block device (a pipe, socket or character device has no end to hash up to)');
      }
      throw err;
    }
  });
}
