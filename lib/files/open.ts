// openFile(): a FileHandle on a path, plain or atomic (atomic.ts).
import * as fs from 'fs';
import { constants } from 'os';
import { promisify } from 'util';
import { SystemError, toSystemError } from '../errors';
import { native } from '../native';
import { openAtomic } from './atomic';
import { FileHandle } from './handle';
import type { Access, FopenMode, OpenOptions } from './options';

// O_NONBLOCK: opening a FIFO must not wait for the other end on a thread-pool thread (nothing
// could interrupt it, and Node joins its pool at exit). Regular files ignore the flag; stream
// reads and writes wait for readiness on the event loop (stream.ts).
const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_EXCL, O_APPEND, O_NOCTTY, O_NONBLOCK } = fs.constants;
const { EINVAL } = constants.errno;

const openAsync = promisify(fs.open);
const unlinkAsync = promisify(fs.unlink);
const fchmodAsync = promisify(fs.fchmod);
const closeAsync = promisify(fs.close);

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

/** Each fopen(3) mode: open(2)'s flags, the directions and append. */
const FOPEN: Record<FopenMode, { flags: number; access: Access; append: boolean }> = (() => {
  const r = { flags: O_RDONLY, access: 'r', append: false } as const;
  const w = { flags: O_WRONLY | O_CREAT | O_TRUNC, access: 'w', append: false } as const;
  const a = { flags: O_WRONLY | O_CREAT | O_APPEND, access: 'w', append: true } as const;
  const rPlus = { flags: O_RDWR, access: 'rw', append: false } as const;
  const wPlus = { flags: O_RDWR | O_CREAT | O_TRUNC, access: 'rw', append: false } as const;
  const aPlus = { flags: O_RDWR | O_CREAT | O_APPEND, access: 'rw', append: true } as const;
  return {
    r,
    rb: r,
    w,
    wb: w,
    a,
    ab: a,
    'r+': rPlus,
    'rb+': rPlus,
    'r+b': rPlus,
    'w+': wPlus,
    'wb+': wPlus,
    'w+b': wPlus,
    'a+': aPlus,
    'ab+': aPlus,
    'a+b': aPlus,
  };
})();

/** Is `mode` one of fopen(3)'s modes that fopenFile takes? */
export function isFopenMode(mode: string): mode is FopenMode {
  return Object.prototype.hasOwnProperty.call(FOPEN, mode);
}

/** Mode bits of a file fopenFile creates: rw for all, whatever the umask (as qemu-ga). */
const FOPEN_NEW_FILE_MODE = 0o666;

/**
 * Opens `path` as fopen(3) with `mode` would ("r", "w+", "ab"...), the way qemu-ga 7.2 does: a
 * file it creates gets mode 0666 whatever the umask (it is created exclusively first, so an
 * existing file keeps its mode, and a dangling symlink is not followed to create its target:
 * ENOENT). Reads and writes are at the handle's position (an "a" mode's writes at the end), and
 * on a pipe or character device they never wait: nothing to read, or no room, is EAGAIN.
 * Rejects with a SystemError like Node's fs.
 */
export async function fopenFile(path: string, mode: FopenMode): Promise<FileHandle> {
  const m = FOPEN[mode];
  if (!m) throw new SystemError(EINVAL, 'open', path, `invalid fopen mode ${JSON.stringify(mode)}`);
  const flags = m.flags | O_NOCTTY | O_NONBLOCK;
  let fd: number;
  let created = false;
  try {
    if (flags & O_CREAT) {
      try {
        fd = await openAsync(path, flags | O_EXCL, 0);
        created = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        fd = await openAsync(path, flags & ~O_CREAT);
      }
    } else {
      fd = await openAsync(path, flags);
    }
  } catch (e) {
    throw toSystemError(e);
  }
  if (created) {
    try {
      await fchmodAsync(fd, FOPEN_NEW_FILE_MODE);
    } catch (e) {
      await closeAsync(fd).catch(() => undefined);
      await unlinkAsync(path).catch(() => undefined);
      throw toSystemError(e);
    }
  }
  return new FileHandle(fd, path, m.access, undefined, undefined, { append: m.append, noWait: true });
}
