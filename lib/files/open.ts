// openFile(): a GuestFile on a path, plain or atomic (atomic.ts); fopenFile(): qemu-ga's open.
import * as fs from 'fs';
import { promisify } from 'util';
import { toSystemError } from '../errors';
import { native } from '../native';
import { openAtomic } from './atomic';
import { GuestFile, type FileKind, type HandleIo } from './handle';
import type { Access, FopenMode, OpenMode, OpenOptions } from './options';
import { checkOptions, checkPath, invalidArgType, invalidArgValue, optionalBoolean, parseFileMode } from './validate';

// O_NONBLOCK: opening a FIFO must not wait for the other end on a thread-pool thread (nothing
// could interrupt it, and Node joins its pool at exit). Regular files ignore the flag; stream
// reads and writes wait for readiness on the event loop (stream.ts).
const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_EXCL, O_APPEND, O_NOCTTY, O_NONBLOCK } = fs.constants;

const openAsync = promisify(fs.open);
const unlinkAsync = promisify(fs.unlink);
const fchmodAsync = promisify(fs.fchmod);
const closeAsync = promisify(fs.close);
const fstatAsync = promisify(fs.fstat);

/**
 * What fd is open on, for the handle's fast paths (on the pool: fstat may wait for an NFS
 * server); undefined if fstat fails (the handle still works, without them).
 */
async function kindOf(fd: number): Promise<FileKind | undefined> {
  try {
    const st = await fstatAsync(fd);
    return st.isFile() ? 'regular' : st.isBlockDevice() ? 'block' : 'special';
  } catch {
    return undefined;
  }
}

/** Each of openFile()'s modes: open(2)'s flags, the directions and append (fs's flags of the same names). */
const OPEN: Record<OpenMode, { flags: number; access: Access; append: boolean }> = {
  r: { flags: O_RDONLY, access: 'r', append: false },
  'r+': { flags: O_RDWR, access: 'rw', append: false },
  w: { flags: O_WRONLY | O_CREAT | O_TRUNC, access: 'w', append: false },
  'w+': { flags: O_RDWR | O_CREAT | O_TRUNC, access: 'rw', append: false },
  a: { flags: O_WRONLY | O_CREAT | O_APPEND, access: 'w', append: true },
  'a+': { flags: O_RDWR | O_CREAT | O_APPEND, access: 'rw', append: true },
};

const MODES = Object.keys(OPEN).map((m) => `'${m}'`);

/** openFile()'s options checked as fs checks its own: what fs would throw, naming the option. */
function checkOpen(path: unknown, options: unknown): { mode: OpenMode; perm: number } & OpenOptions {
  checkPath(path);
  checkOptions(options);
  const o = (options ?? {}) as Record<string, unknown>;
  const mode = o.mode ?? 'r';
  if (typeof mode !== 'string') throw invalidArgType('options.mode', 'of type string', mode);
  if (!Object.prototype.hasOwnProperty.call(OPEN, mode))
    throw invalidArgValue('options.mode', mode, `must be one of ${MODES.join(', ')}`);
  const perm = parseFileMode(o.perm, 'options.perm', 0o644) & 0o7777;
  const force = optionalBoolean(o.force, 'options.force');
  const atomic = optionalBoolean(o.atomic, 'options.atomic');
  const md5 = optionalBoolean(o.md5, 'options.md5');
  if (atomic && mode !== 'w') throw invalidArgValue('options.atomic', atomic, `needs mode 'w', not '${mode}'`);
  if (md5 && mode !== 'r') throw invalidArgValue('options.md5', md5, `needs mode 'r', not '${mode}'`);
  return { mode: mode as OpenMode, perm, force, atomic, md5 };
}

/**
 * Opens `path` for chunked reads and writes, in one of fs's modes ("r" by default; "w" creates
 * or truncates with `perm`; see OpenMode). Options fs would refuse throw as fs throws them
 * (TypeError or RangeError, code ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE or ERR_OUT_OF_RANGE);
 * a failed open rejects with a SystemError (`code` 'ENOENT', 'EACCES', ...) like Node's fs.
 */
export async function openFile(path: string, options: OpenOptions = {}): Promise<GuestFile> {
  const { mode, perm, force, atomic, md5 } = checkOpen(path, options);
  if (atomic) {
    const { fd, replace } = await openAtomic(path, perm);
    return new GuestFile(fd, path, 'w', replace, undefined, { kind: 'regular' });
  }
  const { flags, access, append } = OPEN[mode];
  try {
    if (mode === 'r') {
      const fd = await openAsync(path, O_RDONLY | O_NONBLOCK);
      return new GuestFile(fd, path, access, undefined, md5 ? new native.Md5() : undefined, { kind: await kindOf(fd) });
    }
    let fd: number;
    let how: HandleIo = append ? { append } : {};
    try {
      fd = await openAsync(path, flags | O_NONBLOCK, perm);
    } catch (e) {
      if (!force || !(flags & O_TRUNC) || (e as NodeJS.ErrnoException).code !== 'ETXTBSY') throw e;
      await unlinkAsync(path);
      fd = await openAsync(path, flags | O_EXCL | O_NONBLOCK, perm);
      how = {};
    }
    return new GuestFile(fd, path, access, undefined, undefined, { ...how, kind: await kindOf(fd) });
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
 * Rejects with a SystemError like Node's fs. A Buffer `path` is opened as those bytes.
 */
export async function fopenFile(path: string | Buffer, mode: FopenMode): Promise<GuestFile> {
  if (!Buffer.isBuffer(path)) checkPath(path);
  else if (path.includes(0)) throw invalidArgValue('path', path, 'must be a Buffer without null bytes');
  if (typeof mode !== 'string') throw invalidArgType('mode', 'of type string', mode);
  if (!isFopenMode(mode)) throw invalidArgValue('mode', mode, 'must be an fopen(3) mode');
  const m = FOPEN[mode];
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
  return new GuestFile(fd, path.toString(), m.access, undefined, undefined, {
    append: m.append,
    noWait: true,
    kind: await kindOf(fd),
  });
}
