// md5File: the digest of a whole file, computed in the addon off the main thread.
import { SystemError, toSystemError } from '../errors';
import { fileio } from './native';

/**
 * The md5 of the file at `path` as 32 lowercase hex digits. Reads with large sequential reads
 * and read-ahead on a worker thread (OpenSSL's MD5). Rejects with a SystemError (`code`
 * 'ENOENT', 'EISDIR', ...; `errno` positive) when the file cannot be read, and with EINVAL for
 * a pipe, socket or character device: a stream has no end to count on (/dev/zero never ends),
 * and hashing one would hold a thread for as long as it runs.
 */
export async function md5File(path: string): Promise<string> {
  try {
    return await fileio.md5File(path);
  } catch (e) {
    const err = toSystemError(e);
    if (err instanceof SystemError && err.errno === EINVAL && err.syscall === 'md5') {
      throw new SystemError(EINVAL, 'md5', path, 'not a regular file or block device (a pipe, socket or character device has no end to hash up to)');
    }
    throw err;
  }
}

const EINVAL = 22;
