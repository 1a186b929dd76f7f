// openFile(): a FileHandle on a path, plain or atomic (atomic.ts).
import * as fs from 'fs';
import { constants } from 'os';
import { promisify } from 'util';
import { SystemError, toSystemError } from '../errors';
import { native } from '../native';
import { openAtomic } from './atomic';
import { FileHandle } from './handle';
import type { OpenOptions } from './options';

// O_NONBLOCK: opening a FIFO must not wait for the other end on a thread-pool thread (nothing
// could interrupt it, and Node joins its pool at exit). Regular files ignore the flag; stream
// reads and writes wait for readiness on the event loop (stream.ts).
const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_EXCL, O_NONBLOCK } = fs.constants;
const { EINVAL } = constants.errno;

const openAsync = promisify(fs.open);
const unlinkAsync = promisify(fs.unlink);

/**
 * Opens `path` for chunked reading ("r") or writing ("w": create + truncate with `perm`).
 * Rejects with a SystemError (`code` 'ENOENT', 'EACCES', ...) like Node's fs.
 */
export async function openFile(path: string, options: OpenOptions = {}): Promise<FileHandle> {
  const mode = options.mode ?? 'r';
  const perm = (options.perm ?? 0o644) & 0o7777;
  if (options.atomic) {
    if (mode !== 'w') throw new SystemError(EINVAL, 'open', path, 'atomic needs mode "w"');
    const { fd, replace } = await openAtomic(path, perm);
    return new FileHandle(fd, path, 'w', replace);
  }
  if (options.md5 && mode !== 'r') throw new SystemError(EINVAL, 'open', path, 'md5 needs mode "r"');
  try {
    if (mode === 'r')
      return new FileHandle(
        await openAsync(path, O_RDONLY | O_NONBLOCK),
        path,
        mode,
        undefined,
        options.md5 ? new native.Md5() : undefined,
      );
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
