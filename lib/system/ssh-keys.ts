// A user's ~/.ssh/authorized_keys, read and changed as qemu-ga 7.2's guest-ssh-*-authorized-keys
// do it: lines split on "\n" and joined with "\n" (no newline added at the end), keys compared
// whole, ~/.ssh made 0700 and the file written 0600, both owned by the user.
//
// The agent runs as root in a directory the user owns, so it never follows a symbolic link the
// user may have put there when it writes: ~/.ssh is opened with O_NOFOLLOW and everything after
// goes through that descriptor (a link swapped in meanwhile changes nothing), the reading of the
// file to add to or remove from included, which is opened with O_NOFOLLOW too. Otherwise a user
// could have a host's innocent key change write to, or copy from, any file of the system.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { errnoOf } from '../errors';
import { strerror } from './programs';
import { lookUpUser, type UserEntry } from './users';

/** A key change that failed; `message` in qemu-ga's words, `errno` the system's when one failed. */
export class SshKeysError extends Error {
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super(message);
    this.name = 'SshKeysError';
  }
}

/** A key authorized_keys cannot hold on a line of its own: one with a newline, or a comment. */
export class InvalidKeyError extends SshKeysError {
  constructor(readonly key: string) {
    super(`invalid OpenSSH public key: '${key}'`);
    this.name = 'InvalidKeyError';
  }
}

/**
 * The keys' bytes (a string as UTF-8); throws an InvalidKeyError for the first that cannot be a
 * line of authorized_keys: a comment, or one with a newline or a NUL.
 */
function checkKeys(keys: readonly (string | Buffer)[]): Buffer[] {
  return keys.map((k) => {
    const key = typeof k === 'string' ? Buffer.from(k, 'utf8') : k;
    if (key[0] === 0x23 || key.includes(0x0a) || key.includes(0)) {
      throw new InvalidKeyError(typeof k === 'string' ? k : k.toString('utf8'));
    }
    return key;
  });
}

export function sshDir(user: UserEntry): string {
  return path.join(user.dir, '.ssh');
}

export function authorizedKeysPath(user: UserEntry): string {
  return path.join(user.dir, '.ssh', 'authorized_keys');
}

/** The lines of a file as glib's g_strsplit(contents, "\n") makes them: up to a NUL; none when empty. */
function splitLines(contents: Buffer): Buffer[] {
  const nul = contents.indexOf(0);
  const text = nul < 0 ? contents : contents.subarray(0, nul);
  if (text.length === 0) return [];
  const out: Buffer[] = [];
  let from = 0;
  for (let nl = text.indexOf(0x0a); nl >= 0; nl = text.indexOf(0x0a, from)) {
    out.push(text.subarray(from, nl));
    from = nl + 1;
  }
  out.push(text.subarray(from));
  return out;
}

function readError(file: string, e: unknown): SshKeysError {
  const errno = errnoOf(e) ?? 5;
  const what = errno === 21 ? 'Error reading file' : 'Failed to open file';
  return new SshKeysError(`failed to read '${file}': ${what} \u201C${file}\u201D: ${strerror(errno)}`, errno);
}

/** A file's lines; `follow`: through a symbolic link at its name (else ELOOP). `shown`: its name in errors. */
async function readLines(file: string, follow: boolean, shown = file): Promise<Buffer[]> {
  try {
    const flags = fs.constants.O_RDONLY | (follow ? 0 : fs.constants.O_NOFOLLOW);
    const fh = await fs.promises.open(file, flags);
    try {
      return splitLines(await fh.readFile());
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw readError(shown, e);
  }
}

/** ASCII whitespace as g_strstrip takes it off: space, \t, \n, \v, \f, \r. */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function strip(b: Buffer): Buffer {
  let s = 0;
  let e = b.length;
  while (s < e && isSpace(b[s])) s++;
  while (e > s && isSpace(b[e - 1])) e--;
  return b.subarray(s, e);
}

/**
 * The keys in `username`'s authorized_keys, in file order: each line with its surrounding
 * whitespace taken off, blank lines and comments left out, the file read up to a NUL. Throws an
 * UnknownUserError, or an SshKeysError when the file cannot be read (none yet: ENOENT).
 */
export async function getAuthorizedKeys(username: string): Promise<string[]> {
  return (await readAuthorizedKeys(username)).map((l) => l.toString('utf8'));
}

/** getAuthorizedKeys' keys as the bytes of the file. */
export async function readAuthorizedKeys(username: string): Promise<Buffer[]> {
  const user = await lookUpUser(username);
  const lines = await readLines(authorizedKeysPath(user), true);
  return lines.map(strip).filter((l) => l.length > 0 && l[0] !== 0x23);
}

/** ~/.ssh opened without following a link: the directory every later step goes through. */
async function openSshDir(dir: string): Promise<fs.promises.FileHandle> {
  try {
    return await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    let errno = errnoOf(e) ?? 5;
    // A link refused by O_NOFOLLOW: O_DIRECTORY makes that ENOTDIR, which would mislead.
    if (errno === ENOTDIR && (await isLink(dir))) errno = ELOOP;
    throw new SshKeysError(`failed to open directory '${dir}': ${strerror(errno)}`, errno);
  }
}

const ENOTDIR = 20;

async function isLink(p: string): Promise<boolean> {
  try {
    return (await fs.promises.lstat(p)).isSymbolicLink();
  } catch {
    return false;
  }
}

/** A path inside the directory open as `dir`, whatever its name leads to now. */
function inside(dir: fs.promises.FileHandle, name: string): string {
  return `/proc/self/fd/${dir.fd}/${name}`;
}

/** Makes ~/.ssh: mode 0700, owned by the user. */
async function makeSshDir(dir: string, user: UserEntry): Promise<void> {
  try {
    await fs.promises.mkdir(dir, 0o700);
  } catch (e) {
    const errno = errnoOf(e) ?? 5;
    throw new SshKeysError(`failed to create directory '${dir}': ${strerror(errno)}`, errno);
  }
  const fh = await openSshDir(dir);
  try {
    try {
      await fh.chown(user.uid, user.gid);
    } catch (e) {
      const errno = errnoOf(e) ?? 5;
      throw new SshKeysError(`failed to set ownership of directory '${dir}': ${strerror(errno)}`, errno);
    }
    try {
      await fh.chmod(0o700);
    } catch (e) {
      const errno = errnoOf(e) ?? 5;
      throw new SshKeysError(`failed to set permissions of directory '${dir}': ${strerror(errno)}`, errno);
    }
  } finally {
    await fh.close();
  }
}

/**
 * Replaces authorized_keys in ~/.ssh, open as `dir`, with `lines` joined by "\n": a new file,
 * 0600 and the user's, renamed over the old one (which may be a link: the link is replaced, not
 * what it leads to).
 */
async function writeLines(user: UserEntry, dir: fs.promises.FileHandle, lines: readonly Buffer[]): Promise<void> {
  const file = authorizedKeysPath(user);
  const tmpName = `authorized_keys.${randomBytes(3).toString('hex')}`;
  const tmp = inside(dir, tmpName);
  const contents = Buffer.concat(lines.flatMap((l, i) => (i === 0 ? [l] : [Buffer.from('\n'), l])));
  let step = 'create';
  try {
    const fh = await fs.promises.open(
      tmp,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      0o600,
    );
    try {
      step = 'chown';
      await fh.chown(user.uid, user.gid);
      step = 'chmod';
      await fh.chmod(0o600);
      step = 'write';
      await fh.writeFile(contents);
      await fh.sync();
    } finally {
      await fh.close();
    }
    step = 'rename';
    await fs.promises.rename(tmp, inside(dir, 'authorized_keys'));
  } catch (e) {
    await fs.promises.unlink(tmp).catch(() => {});
    const errno = errnoOf(e) ?? 5;
    const reason = strerror(errno);
    const tmpPath = path.join(sshDir(user), tmpName);
    throw new SshKeysError(
      step === 'chown'
        ? `failed to set ownership of directory '${file}': ${reason}`
        : step === 'chmod'
          ? `failed to set permissions of '${file}': ${reason}`
          : step === 'create'
            ? `failed to write to '${file}': Failed to create file \u201C${tmpPath}\u201D: ${reason}`
            : step === 'write'
              ? `failed to write to '${file}': Failed to write file \u201C${tmpPath}\u201D: ${reason}`
              : `failed to write to '${file}': Failed to rename file \u201C${tmpPath}\u201D to \u201C${file}\u201D: g_rename() failed: ${reason}`,
      errno,
    );
  }
}

/**
 * Reads authorized_keys and writes it anew through one ~/.ssh opened without following a link:
 * read through a link that was then swapped for a directory, another user's keys would be copied
 * into this user's file. `read`: 'none' (a reset), 'if-readable' (add: none yet, or unreadable,
 * is a new file), 'must' (remove: a file it cannot read is an error, never replaced by nothing).
 */
async function rewrite(
  user: UserEntry,
  read: 'none' | 'if-readable' | 'must',
  change: (lines: Buffer[]) => Buffer[],
): Promise<void> {
  const dir = await openSshDir(sshDir(user));
  try {
    let lines: Buffer[] = [];
    if (read !== 'none') {
      try {
        lines = await readLines(inside(dir, 'authorized_keys'), false, authorizedKeysPath(user));
      } catch (e) {
        // A link is refused, never replaced unread.
        if (read === 'must' || (e instanceof SshKeysError && e.errno === ELOOP)) throw e;
      }
    }
    await writeLines(user, dir, change(lines));
  } finally {
    await dir.close();
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Adds `keys` to `username`'s authorized_keys, after the lines there (`reset`: in their place),
 * each key once and none already there; makes ~/.ssh (0700) when it has to. Throws an
 * InvalidKeyError (a key with a newline, or a comment) before anything else, then an
 * UnknownUserError, or an SshKeysError when a step fails.
 */
export async function addAuthorizedKeys(
  username: string,
  keys: readonly (string | Buffer)[],
  opts: { reset?: boolean } = {},
): Promise<void> {
  const add = checkKeys(keys);
  const user = await lookUpUser(username);
  if (!(await isDirectory(sshDir(user)))) await makeSshDir(sshDir(user), user);
  await rewrite(user, opts.reset ? 'none' : 'if-readable', (lines) => {
    for (const k of add) if (!lines.some((l) => l.equals(k))) lines.push(k);
    return lines;
  });
}

const ELOOP = 40;

/**
 * Takes the lines equal to one of `keys` out of `username`'s authorized_keys; no file is no
 * error. Throws an InvalidKeyError before anything else, then an UnknownUserError, or an
 * SshKeysError when a step fails.
 */
export async function removeAuthorizedKeys(username: string, keys: readonly (string | Buffer)[]): Promise<void> {
  const remove = checkKeys(keys);
  const user = await lookUpUser(username);
  const file = authorizedKeysPath(user);
  try {
    await fs.promises.stat(file);
  } catch {
    return;
  }
  await rewrite(user, 'must', (lines) => lines.filter((l) => !remove.some((k) => k.equals(l))));
}
