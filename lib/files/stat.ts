// The library's statFile and listDirectory (GuestStats: fs.Stats's names and units), and
// file-stat, directory-list and directory-create as the reference agent (Go) does them: lstat
// results with the field names of Linux's struct stat as Go's encoding/json prints them (the
// phoenix wire's shape only), and mkdir -p with os.MkdirAll's rules.
import * as fs from 'fs';
import { constants } from 'os';
import { SystemError, toSystemError } from '../errors';
import { native } from '../native';
import { checkPath, invalidArgType, outOfRange } from './validate';

const { E2BIG, ECANCELED, EEXIST, ENOENT, ENOTDIR } = constants.errno;

export interface Timespec {
  Sec: number;
  Nsec: number;
}

/**
 * A 64-bit field: a number, or a bigint when it is past Number.MAX_SAFE_INTEGER (overlayfs
 * inode numbers with xino, for one, have the top bit set). The agent's answers print either as
 * exact JSON digits, as Go does. A host parsing them with JSON.parse gets a number, which is
 * exact up to 2^53 (the client's statFile() and listDirectory() do, unless given `exact: true`).
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

/** lstat of `path` as a file-stat answer (the wire's Go shape; the library's is statFile). */
export async function goStatFile(path: string): Promise<FileStat> {
  let s: fs.BigIntStats;
  try {
    s = await fs.promises.lstat(path, { bigint: true });
  } catch (e) {
    throw toSystemError(e);
  }
  return { name: baseName(path), isdir: s.isDirectory(), stat: goStat(s) };
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

const msOf = (t: Timespec) => t.Sec * 1000 + t.Nsec / 1e6;
const nsOf = (t: Timespec) => BigInt(t.Sec) * NS + BigInt(t.Nsec);

/**
 * An lstat result as the library gives it: Node's fs.Stats names and units. Each field is a
 * number where a number is always exact, and a bigint where the value needs 64 bits: `ino`
 * (overlayfs with xino sets its top bit) and the nanosecond times (`atimeNs`..., as in
 * fs.BigIntStats). `size` and `blocks` are numbers, exact up to 2^53 (8 PiB of size): only a
 * sparse file on XFS or btrfs can claim more, and that size rounds as fs.Stats's does.
 */
export class GuestStats {
  /** Device of the file (major and minor as glibc's makedev() joins them: 32 bits on Linux). */
  readonly dev: number;
  /** st_mode: the file type (S_IFMT bits) and the permission bits. */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  /** Device a character or block device file stands for; 0 for other files. */
  readonly rdev: number;
  readonly blksize: number;
  /** Inode number: 64 bits, so always a bigint. */
  readonly ino: bigint;
  /** Bytes (a symlink: the length of its target). */
  readonly size: number;
  /** 512-byte blocks allocated. */
  readonly blocks: number;
  /** Times in milliseconds since the epoch, with fractions (Node's atimeMs...). */
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  /** Times in nanoseconds since the epoch, exact. */
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;

  /** From the Go shape of the same lstat (its values are exact: see Int64). */
  constructor(
    /** The base name: of the path statFile was given ("/" for "/"), or of a listDirectory entry. */
    readonly name: string,
    g: GoStat,
  ) {
    this.dev = Number(g.Dev);
    this.mode = g.Mode;
    this.nlink = Number(g.Nlink);
    this.uid = g.Uid;
    this.gid = g.Gid;
    this.rdev = Number(g.Rdev);
    this.blksize = Number(g.Blksize);
    this.ino = BigInt(g.Ino);
    this.size = Number(g.Size);
    this.blocks = Number(g.Blocks);
    this.atimeMs = msOf(g.Atim);
    this.mtimeMs = msOf(g.Mtim);
    this.ctimeMs = msOf(g.Ctim);
    this.atimeNs = nsOf(g.Atim);
    this.mtimeNs = nsOf(g.Mtim);
    this.ctimeNs = nsOf(g.Ctim);
  }

  get atime(): Date {
    return new Date(this.atimeMs);
  }
  get mtime(): Date {
    return new Date(this.mtimeMs);
  }
  get ctime(): Date {
    return new Date(this.ctimeMs);
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }
  /** lstat: a symlink is one, not what it points to. */
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK;
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === S_IFIFO;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === S_IFSOCK;
  }
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === S_IFCHR;
  }
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === S_IFBLK;
  }
}

/**
 * lstat of `path` (a symlink is itself, not its target), as a GuestStats named by the path's
 * last element. Rejects with a SystemError like Node's fs (`code` 'ENOENT', ...).
 */
export async function statFile(path: string): Promise<GuestStats> {
  checkPath(path);
  const s = await goStatFile(path);
  return new GuestStats(s.name, s.stat);
}

/** Names lstat-ed per call into the addon (a thread-pool task), and such calls in flight at once. */
const STAT_BATCH = 256;
const STAT_IN_FLIGHT = 2;

/** Where lstatAt puts each raw value among an entry's words. */
const W = { ...native.STAT_LAYOUT };
const TWO32 = 2 ** 32;
/** A high word under this makes a 64-bit value under 2^53: exact as a number. */
const SAFE_HIGH = 0x200000;

/**
 * Two words (low first) as a 64-bit value (see Int64): signed, as Node's lstat hands every field
 * over, or unsigned, as Go's uint64 fields are.
 */
function words64(w: Uint32Array, at: number, signed: boolean): Int64 {
  const hi = w[at + 1];
  if (hi < SAFE_HIGH) return hi * TWO32 + w[at];
  const v = (BigInt(hi) << 32n) | BigInt(w[at]);
  return int64(signed ? BigInt.asIntN(64, v) : v);
}

/** The device number glibc's makedev() (so Node's lstat) makes of a major and minor. */
function makedev(major: number, minor: number): Int64 {
  const low = ((major & 0xfff) << 8) | (minor & 0xff);
  const high = major >>> 12; // 0 on Linux, whose majors have 12 bits
  if (high === 0) return (minor >>> 8) * 0x100000 + low;
  return int64((BigInt(high) << 44n) | (BigInt(minor >>> 8) << 20n) | BigInt(low));
}

function timespecWords(w: Uint32Array, at: number): Timespec {
  return { Sec: Number(words64(w, at, true)), Nsec: w[at + 2] };
}

/** goStat() of the raw values of one entry, at `at` in lstatAt's words. */
function goStatWords(w: Uint32Array, at: number): GoStat {
  return {
    Dev: makedev(w[at + W.devMajor], w[at + W.devMinor]),
    Ino: words64(w, at + W.ino, false),
    Nlink: words64(w, at + W.nlink, false),
    Mode: w[at + W.mode],
    Uid: w[at + W.uid],
    Gid: w[at + W.gid],
    X__pad0: 0,
    Rdev: makedev(w[at + W.rdevMajor], w[at + W.rdevMinor]),
    Size: words64(w, at + W.size, true),
    Blksize: w[at + W.blksize],
    Blocks: words64(w, at + W.blocks, true),
    Atim: timespecWords(w, at + W.atime),
    Mtim: timespecWords(w, at + W.mtime),
    Ctim: timespecWords(w, at + W.ctime),
    X__unused: [0, 0, 0],
  };
}

/** Options of listDirectory. */
export interface ListOptions {
  /**
   * Cancels the listing: it then rejects with a SystemError of code ECANCELED (errno 125,
   * message "PATH: listing cancelled"), checked between batches of entries.
   */
  signal?: AbortSignal;
  /**
   * Bytes the directory's names (one more each) may add up to: reading them stops past it, with a
   * SystemError of code E2BIG. They are all held, sorted and copied before the first lstat (2 to 3
   * times their size at once): a million entries of 60-byte names took the agent to 188 MiB even
   * with n = 1. Default: no limit.
   */
  maxNameBytes?: number;
}

/** listDirectoryBatches's options: ListOptions, and what the agent's directory-list needs. */
export interface BatchOptions extends ListOptions {
  /**
   * Told, once the names are read and before any entry is lstat-ed, how many entries the listing
   * has at most and the bytes of the directory's names (one more each, of every name: with `n`,
   * more than those listed). A throw ends the listing with that error, the directory closed.
   */
  sized?: (entries: number, nameBytes: number) => void;
}

function checkCancelled(path: string, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new SystemError(ECANCELED, undefined, path, 'listing cancelled');
}

/**
 * listDirectory's entries a batch at a time (at most STAT_BATCH each, in order), so a caller can
 * turn each into its answer's text before the next: no array of every entry ever exists. The
 * addon reads and sorts the names and lstats them off the main thread, relative to the
 * directory's fd; this turns its raw numbers into FileStats.
 */
export async function* listDirectoryBatches(path: string, n = 0, opts: BatchOptions = {}): AsyncGenerator<FileStat[]> {
  checkCancelled(path, opts.signal);
  let dir: { fd: number; names: Buffer; count: number };
  try {
    dir = await native.readDirectory(path, opts.maxNameBytes);
  } catch (e) {
    const err = toSystemError(e);
    if (!(err instanceof SystemError)) throw err;
    if (err.errno === E2BIG)
      throw new SystemError(
        E2BIG,
        undefined,
        path,
        `too many entries to list: their names pass ${opts.maxNameBytes} bytes`,
      );
    // Go opens any file, then reading its entries fails: name the calls the way it does.
    throw new SystemError(
      err.errno,
      err.errno === ENOTDIR || err.syscall === 'getdents64' ? 'readdirent' : 'open',
      path,
    );
  }
  const { fd, names } = dir;
  const total = n > 0 ? Math.min(n, dir.count) : dir.count;
  const prefix = path.endsWith('/') ? path : path + '/';
  const batches: { start: number; end: number; words: Promise<Uint32Array> }[] = [];
  let queued = 0; // names handed to lstatAt so far
  let pos = 0; // where the next of them starts in names
  const queue = () => {
    const start = pos;
    for (let k = 0; k < STAT_BATCH && queued < total; k++, queued++) pos = names.indexOf(0, pos) + 1;
    batches.push({ start, end: pos, words: native.lstatAt(fd, names, start, pos) });
  };
  try {
    opts.sized?.(total, names.length);
    while (batches.length < STAT_IN_FLIGHT && queued < total) queue();
    while (batches.length > 0) {
      const { start, end, words } = batches[0];
      const w = await words;
      batches.shift();
      checkCancelled(path, opts.signal);
      if (queued < total) queue();
      const batch: FileStat[] = [];
      const list = names.toString('utf8', start, end - 1).split('\0');
      for (let i = 0, at = 0; i < list.length; i++, at += W.words) {
        const errno = w[at + W.errno];
        if (errno === ENOENT) continue; // removed while listing
        if (errno !== 0) throw new SystemError(errno, 'lstat', prefix + list[i]);
        batch.push({ name: list[i], isdir: (w[at + W.mode] & S_IFMT) === S_IFDIR, stat: goStatWords(w, at) });
      }
      yield batch;
    }
  } finally {
    // The fd stays open until no thread uses it: closed earlier, its number could name another file.
    await Promise.allSettled(batches.map((b) => b.words));
    await new Promise<void>((r) => fs.close(fd, () => r()));
    // Up to 32 MiB, freed now rather than at a collection: listings that stop once their names
    // are read (the agent's, waiting for their share of its budget) would pile them up.
    native.freeWhole(names);
  }
}

/**
 * The entries of directory `path` (not "." and ".."), each lstat-ed as a GuestStats named by the
 * entry, sorted by name (byte order); with n > 0 only the first n (0 or less: all). Entries removed while
 * listing are left out. `signal` cancels it (see ListOptions).
 */
export async function listDirectory(path: string, n = 0, opts: ListOptions = {}): Promise<GuestStats[]> {
  checkPath(path);
  if (typeof n !== 'number') throw invalidArgType('n', 'of type number', n);
  if (!Number.isSafeInteger(n)) throw outOfRange('n', 'an integer', n);
  const out: GuestStats[] = [];
  for await (const batch of listDirectoryBatches(path, n, opts))
    for (const e of batch) out.push(new GuestStats(e.name, e.stat));
  return out;
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
