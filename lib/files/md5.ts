// md5File: the digest of a whole file, computed in the addon off the main thread.
import { toSystemError } from '../errors';
import { fileio } from './native';

/**
 * The md5 of the file at `path` as 32 lowercase hex digits. Reads with large sequential reads
 * and read-ahead on a worker thread (OpenSSL's MD5). Rejects with a SystemError (`code`
 * 'ENOENT', 'EISDIR', ...; `errno` positive) when the file cannot be read.
 */
export async function md5File(path: string): Promise<string> {
  try {
    return await fileio.md5File(path);
  } catch (e) {
    throw toSystemError(e);
  }
}
