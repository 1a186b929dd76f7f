// file-stat, directory-list and directory-create as the reference agent (Go) does them: lstat
// results with the field names of Linux's struct stat as Go's encoding/json prints them, and
// mkdir -p with os.MkdirAll's rules.
import * as fs from 'fs';
import { SystemError, toSystemError } from '../errors';

const ENOENT = 2;
const ENOTDIR = 20;
const EEXIST = 17;

export interface Timespec {
  Sec: number;
  Nsec: number;
}

/**
 * A 64-bit field: a number, or a bigint when it is past Number.MAX_SAFE_INTEGER (overlayfs
 * inode numbers with xino, for one, have the top bit set). The agent's answers print either as
 * exact JSON digits, as Go does. A host parsing them with JSON.parse gets a number, which is
 * exact up to 2^53 (the client's stat() and readdir() do, unless given `exact: true`).
 */
export type Int64 = number | bigint;

/**
 * Linux x86-64 `struct stat` as Go's syscall.Stat_t marshals it (field names and order). `I`, the
 * type of the 64-bit fields, is Int64 here; a host that parsed the answer with JSON.parse has
 * GoStat<number>.
 */
export interface GoStat<I extends Int64 = Int64> {
  Dev: I;
  Ino: I;
  Nlink: I;
  Mode: number;
  Uid: number;
  Gid: number;
  X__pad0: number;
  Rdev: I;
  Size: I;
  Blksize: I;
  Blocks: I;
  Atim: Timespec;
  Mtim: Timespec;
  Ctim: Timespec;
  X__unused: [number, number, number];
}

/** One file-stat answer: the base name, whether it is a directory (lstat: a symlink is not), and its stat. */
export interface FileStat<I extends Int64 = Int64> {
  name: string;
  isdir: boolean;
  stat: GoStat<I>;
}

const NS = 1_000_000_000n;

function timespec(ns: bigint): Timespec {
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    nsec += NS;
    sec -= 1n;
  }
  return { Sec: Number(sec), Nsec: Number(nsec) };
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A number when it is exact as one, else the bigint itself. */
function int64(v: bigint): Int64 {
  return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
}

/**
 * Go's uint64 fields. Node's bigint stat hands dev, ino, nlink and rdev over as signed 64-bit
 * values, so an inode number with the top bit set (overlayfs xino) arrives negative.
 */
function uint64(v: bigint): Int64 {
  return int64(BigInt.asUintN(64, v));
}

/** Go's stat fields from Node's bigint lstat, every value exact (see Int64). */
export function goStat(s: fs.BigIntStats): GoStat {
  return {
    Dev: uint64(s.dev),
    Ino: uint64(s.ino),
    Nlink: uint64(s.nlink),
    Mode: Number(s.mode),
    Uid: Number(s.uid),
    Gid: Number(s.gid),
    X__pad0: 0,
    Rdev: uint64(s.rdev),
    Size: int64(s.size),
    Blksize: int64(s.blksize),
    Blocks: int64(s.blocks),
    Atim: timespec(s.atimeNs),
    Mtim: timespec(s.mtimeNs),
    Ctim: timespec(s.ctimeNs),
    X__unused: [0, 0, 0],
  };
}

/** The last element of a path the way Go's os.Lstat names it: trailing slashes dropped, "/" stays "/". */
export function baseName(path: string): string {
  let end = path.length;
  while (end > 1 && path[end - 1] === '/') end--;
  const p = path.slice(0, end);
  if (p === '/') return p;
  return p.slice(p.lastIndexOf('/') + 1);
}

/** lstat of `path` as a file-stat answer. */
export async function statFile(path: string): Promise<FileStat> {
  let s: fs.BigIntStats;
  try {
    s = await fs.promises.lstat(path, { bigint: true });
  } catch (e) {
    throw toSystemError(e);
  }
  return { name: baseName(path), isdir: s.isDirectory(), stat: goStat(s) };
}

/** lstat calls in flight at once while listing a directory. */
const LIST_CONCURRENCY = 32;

/**
 * The entries of directory `path` (not "." and ".."), each as file-stat answers, sorted by name
 * (byte order); with n > 0 only the first n. Entries removed while listing are left out.
 */
export async function listDirectory(path: string, n = 0): Promise<FileStat[]> {
  let names: Buffer[];
  try {
    names = await fs.promises.readdir(path, { encoding: 'buffer' });
  } catch (e) {
    const err = toSystemError(e);
    // Node names the call scandir; say what happened the way the reference (Go) does.
    if (err instanceof SystemError && err.syscall === 'scandir') throw new SystemError(err.errno, err.errno === ENOTDIR ? 'readdirent' : 'open', path);
    throw err;
  }
  names.sort(Buffer.compare);
  if (n > 0) names = names.slice(0, n);
  const dir = Buffer.from(path.endsWith('/') ? path : path + '/');
  const out: (FileStat | undefined)[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      try {
        const s = await fs.promises.lstat(Buffer.concat([dir, names[i]]), { bigint: true });
        out[i] = { name: names[i].toString('utf8'), isdir: s.isDirectory(), stat: goStat(s) };
      } catch (e) {
        const err = toSystemError(e);
        if (!(err instanceof SystemError) || err.errno !== ENOENT) throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, names.length) }, worker));
  return out.filter((x): x is FileStat => x !== undefined);
}

/**
 * mkdir -p: creates `path` and any missing parents with `perm` (the umask applies). An existing
 * directory (or symlink to one) is success; an existing non-directory is ENOTDIR.
 */
export async function mkdirAll(path: string, perm = 0o755): Promise<void> {
  const isDir = async (p: string) => {
    try {
      return (await fs.promises.stat(p)).isDirectory() ? true : 'file';
    } catch {
      return false;
    }
  };
  const existing = await isDir(path);
  if (existing === true) return;
  if (existing === 'file') throw new SystemError(ENOTDIR, 'mkdir', path);
  let end = path.length;
  while (end > 0 && path[end - 1] === '/') end--;
  let slash = end;
  while (slash > 0 && path[slash - 1] !== '/') slash--;
  if (slash > 1) await mkdirAll(path.slice(0, slash - 1), perm);
  try {
    await fs.promises.mkdir(path, perm & 0o7777);
  } catch (e) {
    const err = toSystemError(e);
    if (err instanceof SystemError && err.errno === EEXIST && (await isDir(path)) === true) return;
    throw err;
  }
}
