// Atomic replace (openFile with `atomic`): the new data goes to a file with no name yet
// (O_TMPFILE) beside the target, or a temporary file where the filesystem has none; closing
// the handle names it and renames it over the target. What can be refused is refused at the
// open, where the host can still write in place instead.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import { constants } from 'os';
import * as nodePath from 'path';
import { promisify } from 'util';
import { errnoOf, errorAbout, SystemError, toSystemError } from '../errors';
import { parseMountInfo } from '../mounts';
import { native } from '../native';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NONBLOCK } = fs.constants;
const { EEXIST, EINVAL, EISDIR, ENAMETOOLONG, ENOENT, ENOTDIR, EOPNOTSUPP } = constants.errno;
/** Longest path a system call takes, in bytes (PATH_MAX counts the terminating NUL). */
const PATH_MAX_BYTES = 4095;
/** Longest file name, in bytes (NAME_MAX; the limit of every Linux filesystem that has one this long). */
const NAME_MAX_BYTES = 255;

const openAsync = promisify(fs.open);
const closeAsync = promisify(fs.close);
const unlinkAsync = promisify(fs.unlink);
const fsyncAsync = promisify(fs.fsync);
const fchmodAsync = promisify(fs.fchmod);
const fchownAsync = promisify(fs.fchown);
const fstatAsync = promisify(fs.fstat);

/** Longest base name kept in a temporary file's name (NAME_MAX is 255 bytes; the rest is ours). */
const TEMP_BASE_BYTES = 200;

/** fsync of a directory (after a rename in it); a failure names `path`, whose replacement it made durable. */
export async function syncDirectory(dir: string, path: string): Promise<void> {
  let fd: number | undefined;
  try {
    fd = await openAsync(dir, O_RDONLY);
    await fsyncAsync(fd);
  } catch (e) {
    throw errorAbout(e, 'fsync', path, (reason) => `replaced, but syncing its directory failed: ${reason}`);
  } finally {
    if (fd !== undefined) await closeAsync(fd).catch(() => undefined);
  }
}

/** `.NAME.XXXXXXXX.ember-ga-part` beside `target`. */
function tempPathFor(target: string): string {
  let base = nodePath.basename(target);
  while (Buffer.byteLength(base) > TEMP_BASE_BYTES) base = base.slice(0, -1);
  return nodePath.join(nodePath.dirname(target), `.${base}.${randomBytes(4).toString('hex')}.ember-ga-part`);
}

/**
 * Why the close of an atomic handle on `target` would fail for a name's length, else undefined:
 * it names the new file beside `target` (the temporary path is `target`'s length plus up to 24
 * bytes) and renames it over `target`, calls the open itself does not make.
 */
function nameTooLong(path: string, target: string): SystemError | undefined {
  if (Buffer.byteLength(nodePath.basename(target)) > NAME_MAX_BYTES) return new SystemError(ENAMETOOLONG, 'open', path);
  const temp = Buffer.byteLength(tempPathFor(target));
  if (temp <= PATH_MAX_BYTES) return undefined;
  return new SystemError(
    ENAMETOOLONG,
    'open',
    path,
    `file name too long for an atomic replace: the temporary file beside it would have a path of ${temp} bytes, over the ${PATH_MAX_BYTES} a path may have; without atomic the file is written in place`,
  );
}

/** Links the O_TMPFILE file open at fd beside `target` under a fresh temporary name; that name. */
export async function linkTemp(fd: number, target: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const temp = tempPathFor(target);
    try {
      await native.linkFd(fd, temp);
      return temp;
    } catch (e) {
      if (errnoOf(e) !== EEXIST || attempt >= 3) throw e;
    }
  }
}

/** True when `target` is a mount point (a bind-mounted file): rename cannot replace it (EBUSY). */
async function isMountPoint(target: string): Promise<boolean> {
  let info: string;
  try {
    info = await fs.promises.readFile('/proc/self/mountinfo', 'latin1');
  } catch {
    return false; // no /proc: the rename would say EBUSY at close
  }
  const want = Buffer.from(target).toString('latin1');
  return parseMountInfo(info).some((m) => m.mountpoint === want);
}

/**
 * Where an atomic handle's data goes on close: `temp` is renamed to `target`. An O_TMPFILE file
 * has no `temp` until the close links it into the directory under a fresh one.
 */
export interface AtomicTarget {
  readonly target: string;
  readonly temp?: string;
}

/**
 * openFile() with `atomic`: an fd on a new file with no name yet (O_TMPFILE), or else on a
 * temporary file, beside the (symlink-resolved) target, with the old file's mode and owner.
 */
export async function openAtomic(path: string, perm: number): Promise<{ fd: number; replace: AtomicTarget }> {
  // A plain open of "dir/name/" fails at once (EISDIR); so does this, not the rename at close.
  if (path.endsWith('/')) throw new SystemError(EISDIR, 'open', path);
  let target = path;
  let old: fs.Stats | undefined;
  try {
    old = await fs.promises.stat(path);
  } catch (e) {
    const err = toSystemError(e);
    if (!(err instanceof SystemError) || err.errno !== ENOENT)
      throw new SystemError(err instanceof SystemError ? err.errno : EINVAL, 'open', path);
    if ((await fs.promises.lstat(path).catch(() => undefined))?.isSymbolicLink()) {
      throw new SystemError(
        ENOENT,
        'open',
        path,
        "a symlink to a missing file: atomic replaces an existing file or creates one, not a symlink's target",
      );
    }
  }
  if (old) {
    if (!old.isFile())
      throw new SystemError(
        EINVAL,
        'open',
        path,
        'not a regular file: atomic replaces regular files only (write a device or FIFO without it)',
      );
    try {
      target = await fs.promises.realpath(path);
    } catch (e) {
      throw errorAbout(e, 'open', path);
    }
    if (await isMountPoint(target)) {
      throw new SystemError(
        EINVAL,
        'open',
        path,
        'a mount point (a bind-mounted file): rename cannot replace it; write it without atomic',
      );
    }
  }
  const tooLong = nameTooLong(path, target);
  if (tooLong) throw tooLong;
  const mode = old ? 0o600 : perm;
  let temp: string | undefined;
  let fd: number;
  try {
    fd = await openAsync(nodePath.dirname(target), native.O_TMPFILE | O_WRONLY | O_NONBLOCK, mode).catch(
      (e: unknown) => {
        // No O_TMPFILE on this filesystem (EOPNOTSUPP) or kernel (EISDIR: the flag read as
        // O_DIRECTORY alone): a named temporary file instead. Other errors are the directory's.
        const errno = errnoOf(e);
        if (errno !== EOPNOTSUPP && errno !== EISDIR) throw e;
        temp = tempPathFor(target);
        return openAsync(temp, O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK, mode);
      },
    );
  } catch (e) {
    // A missing directory reads as a plain open's error; anything else says what failed, since
    // the file itself may well be writable (a read-only directory, sysfs, procfs).
    const err = toSystemError(e);
    const missing = err instanceof SystemError && (err.errno === ENOENT || err.errno === ENOTDIR);
    throw errorAbout(
      err,
      'open',
      path,
      missing
        ? undefined
        : (reason) =>
            `cannot create the temporary file beside it: ${reason}; without atomic the file is written in place`,
    );
  }
  try {
    if (old) {
      // Owner first: chown clears setuid and setgid, which the chmod then restores. An owner
      // the agent cannot give (not root, NFS root_squash) refuses the replacement rather than
      // silently changing whose file it is.
      const mine = await fstatAsync(fd); // on the pool: an fstat on a dead NFS server can hang
      if (mine.uid !== old.uid || mine.gid !== old.gid) {
        try {
          await fchownAsync(fd, old.uid, old.gid);
        } catch (e) {
          throw errorAbout(
            e,
            'open',
            path,
            (reason) =>
              `cannot give the new file the owner of the old one (${old.uid}:${old.gid}): ${reason}; without atomic the file is written in place`,
          );
        }
      }
      await fchmodAsync(fd, old.mode & 0o7777);
    }
  } catch (e) {
    await closeAsync(fd).catch(() => undefined);
    if (temp !== undefined) await unlinkAsync(temp).catch(() => undefined);
    if (e instanceof SystemError && e.path === path) throw e; // already about the path asked for
    throw errorAbout(e, 'open', path);
  }
  return { fd, replace: { target, temp } };
}
