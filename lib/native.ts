// The C++ addon's whole surface, typed here once and loaded once (node-gyp-build: build/Release
// when built from source, else the prebuild for this platform shipped in prebuilds/). Each
// domain library takes what it needs from `native`; a module that does not import this one does
// not load the addon. The addon hands over raw kernel values; units, names and checks of what
// hosts send are the domain libraries'.
import * as path from 'path';
import load from 'node-gyp-build';
import type { MountPath } from './mounts';

// ---- Files: native/fileio.cc, fdpoll.cc, dirlist.cc --------------------------------------------

/** A file offset: a number, or a bigint where it may be past 2^53 (exact over the whole int64 range). */
export type FileOffset = number | bigint;

export interface FileBindings {
  /**
   * md5 of the whole file, 32 lowercase hex digits (a thread of its own; large reads, read-ahead).
   * cancel() stops it within a chunk (the promise rejects with ECANCELED); after the end it does nothing.
   */
  md5File(path: string): { promise: Promise<string>; cancel(): void };
  /**
   * One read into buffer at offset (-1: at the current position); 0 at end of file. The bytes
   * read are hashed into `md5`, when given, on the pool thread.
   */
  pread(fd: number, buffer: Buffer, offset: FileOffset, path: string, md5?: NativeMd5): Promise<number>;
  /** A running md5 (OpenSSL's); calls on one must not overlap with a pread hashing into it. */
  Md5: new () => NativeMd5;
  /** Synchronous page-cache-only read (RWF_NOWAIT): bytes read, or -errno when it would block or is unsupported. */
  preadCached(fd: number, buffer: Buffer, offset: FileOffset): number;
  /** Writes the whole buffer at offset (-1: at the current position); resolves with its length. */
  pwrite(fd: number, buffer: Buffer, offset: FileOffset, path: string): Promise<number>;
  /**
   * pwrite() (offset >= 0) on the addon's write helper, a thread of its own, while the caller
   * waits up to waitMicros for it: the buffer's length when written within the wait, else a
   * promise settling as pwrite()'s would (an error within the wait: a rejected one); undefined,
   * with nothing written, while an earlier write that outlasted its wait is still going on (use
   * pwrite()).
   */
  pwriteWait(
    fd: number,
    buffer: Buffer,
    offset: FileOffset,
    path: string,
    waitMicros: number,
  ): number | Promise<number> | undefined;
  /**
   * lseek(2), synchronous: the new offset (a bigint: ext4 puts a directory's end at 2^63 - 1);
   * throws errno's error (EINVAL for a negative result, ESPIPE for a pipe).
   */
  lseek(fd: number, offset: FileOffset, whence: number, path: string): bigint;
  /** Names the file open at fd (an O_TMPFILE file) `path`, which must not exist yet (linkat). */
  linkFd(fd: number, path: string): Promise<void>;
  /** open(2)'s O_TMPFILE on this platform (with O_DIRECTORY, as <fcntl.h> defines it). */
  readonly O_TMPFILE: number;
  /** Makes every stream read or write (offset -1), waiting now or later, fail with ECANCELED. For exit. */
  cancelStreams(): void;
  /**
   * The base64 text (standard alphabet, padded) of buffer's first `length` bytes, as bytes;
   * synchronous. Text of 128 KiB or more is made in memory reused once an earlier such Buffer is
   * freed (detached, or collected): native/answer_pool.h.
   */
  base64(buffer: Buffer, length: number): Buffer;
  /**
   * Frees a Buffer's memory now, when it is the whole of its ArrayBuffer (a large base64()
   * Buffer goes back to the pool for the next answer): detaches it, so that later it reads as
   * empty. False, with nothing done, for a slice (the collector frees it). For a transport done
   * with an answer's piece.
   */
  freeWhole(buffer: Buffer): boolean;
  /**
   * Decodes src[start, end) as strict base64 (standard alphabet, '=' padding only at the end, no
   * whitespace or line breaks) into dst, which holds the decoded length; synchronous. The
   * decoded length, or -1 when the text is not strict base64.
   */
  base64Decode(src: Buffer, start: number, end: number, dst: Buffer): number;
  /**
   * Decodes whole groups of four base64 alphabet characters ('=' not among them) from
   * src[start, end) into dst from `at`, stopping before the first group with any other byte,
   * before an incomplete last group, or when dst is full; synchronous. The characters decoded (a
   * multiple of 4; their bytes are 3/4 as many). For text decoded piece by piece as it arrives.
   */
  base64DecodeRun(src: Buffer, start: number, end: number, dst: Buffer, at: number): number;
  /**
   * Readiness of a pipe, FIFO or character device from the event loop, holding no thread. The
   * constructor throws (errno EPERM) for an fd epoll refuses. wait(writable) arms one call of
   * onReady (ready, hung up or in error); close() stops it for good (the fd stays open).
   */
  FdPoll: new (fd: number, onReady: () => void) => NativeFdPoll;
  /**
   * Opens the directory at path (O_DIRECTORY: ENOTDIR from open for anything else) and reads the
   * names of its entries but "." and "..": `count` of them in byte order, each NUL-terminated, in
   * `names`. The caller closes fd. Rejects with syscall open or getdents64; E2BIG (getdents64)
   * as soon as the names with their NULs pass `maxBytes` (default: no limit).
   */
  readDirectory(path: string, maxBytes?: number): Promise<{ fd: number; names: Buffer; count: number }>;
  /**
   * lstat of each NUL-terminated name in names[start, end), relative to the directory open at fd:
   * STAT_LAYOUT.words words of raw values per name, errno's 0 or the errno lstat failed with.
   */
  lstatAt(fd: number, names: Buffer, start: number, end: number): Promise<Uint32Array>;
  readonly STAT_LAYOUT: StatLayout;
}

/**
 * Where lstatAt puts each raw value among an entry's words: 64-bit values (nlink, ino, size,
 * blocks) take two, low first; times three: seconds (signed, two words), then nanoseconds.
 */
export interface StatLayout {
  errno: number;
  mode: number;
  uid: number;
  gid: number;
  blksize: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  nlink: number;
  ino: number;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  /** Words per entry. */
  words: number;
}

export interface NativeMd5 {
  /** Hashes buffer's first `length` bytes, on the calling thread. */
  update(buffer: Buffer, length: number): void;
  /** The md5 of everything hashed so far, 32 lowercase hex digits; hashing may go on. */
  digest(): string;
}

export interface NativeFdPoll {
  wait(writable: boolean): void;
  close(): void;
}

// ---- Freeze: native/freeze.cc ------------------------------------------------------------------

/** `mountpoint`: the one given (lib/freeze/ioctl.ts; the addon's is its bytes decoded as UTF-8). */
export interface FreezeResult<P extends MountPath = string> {
  mountpoint: P;
  /** true after freeze(), false after thaw(). */
  frozen: boolean;
}

/** Mount points are strings (their UTF-8) or Buffers (their bytes, for names that are not UTF-8). */
export interface FreezeBindings {
  /** FIFREEZE on the mount point, on a thread of its own. */
  freeze(mountpoint: MountPath): Promise<FreezeResult>;
  /** FITHAW on the mount point, on a thread of its own. */
  thaw(mountpoint: MountPath): Promise<FreezeResult>;
  /** FITRIM of the whole filesystem at the mount point (minimum: an int64, taken as u64), on a thread of its own. */
  fstrim(mountpoint: MountPath, minimum: number): Promise<TrimResult>;
}

/** `mountpoint` as in FreezeResult. */
export interface TrimResult<P extends MountPath = string> {
  mountpoint: P;
  /** Bytes trimmed (the kernel's fstrim_range.len afterwards). */
  trimmed: number;
  /** The minimum extent length the kernel used, in bytes (raised to the discard granularity). */
  minimum: number;
}

// ---- Kernel figures: native/sysinfo.cc ---------------------------------------------------------

/** struct sysinfo (sysinfo(2)), as the kernel fills it. */
export interface NativeSysinfo {
  /** Seconds since boot. */
  uptime: number;
  /** 1, 5 and 15 minute load averages, fixed point: 1 << SI_LOAD_SHIFT (16) is 1.0. */
  loads: [number, number, number];
  /** Sizes, in units of mem_unit bytes (1 on 64-bit; the page size on 32-bit with much RAM; 0 on old kernels, meaning 1). */
  totalram: number;
  freeram: number;
  bufferram: number;
  totalswap: number;
  freeswap: number;
  mem_unit: number;
}

export interface SysinfoBindings {
  sysinfo(): Promise<NativeSysinfo>;
  uname(): Promise<{
    sysname: string;
    nodename: string;
    release: string;
    version: string;
    machine: string;
    domainname: string;
  }>;
  /** The width of a C long in bits. */
  readonly LONG_BIT: number;
  /** statvfs(3): sizes in units of frsize bytes, on the thread pool. */
  statvfs(path: MountPath): Promise<{ frsize: bigint; blocks: bigint; bfree: bigint; bavail: bigint }>;
  /** clock_gettime(CLOCK_REALTIME): [seconds, nanoseconds]; synchronous. */
  realTime(): [number, number];
  /** The 512-byte SMART / health log page of an NVMe device node; rejects with open or ioctl. */
  nvmeSmartLog(path: string): Promise<Buffer>;
}

// ---- rtnetlink: native/netlink.cc --------------------------------------------------------------

/**
 * A dump as the addon hands it over: `rows` rows, column by column, each column by its name: the
 * values of a string column in one string, a NUL after each; a number column as a Float64Array;
 * a bigint column (a 64-bit counter) as a BigUint64Array.
 */
export interface NativeTable<Row> {
  rows: number;
  columns: {
    [K in keyof Row]: Row[K] extends string ? string : Row[K] extends bigint ? BigUint64Array : Float64Array;
  };
}

/** A table's columns, a string column as an array of its values. */
export type Columns<Row> = {
  [K in keyof Row]: Row[K] extends string ? string[] : Row[K] extends bigint ? BigUint64Array : Float64Array;
};

/** make(columns, row) for each row of t, in order: `columns.name[row]` is the row's field. */
export function mapRows<Row, T>(t: NativeTable<Row>, make: (columns: Columns<Row>, row: number) => T): T[] {
  const columns: Record<string, string[] | Float64Array | BigUint64Array> = {};
  for (const [name, values] of Object.entries<string | Float64Array | BigUint64Array>(t.columns)) {
    columns[name] = typeof values === 'string' ? values.split('\0') : values;
  }
  const out = new Array<T>(t.rows);
  for (let r = 0; r < t.rows; r++) out[r] = make(columns as Columns<Row>, r);
  return out;
}

/** A link's counters since it was created (IFLA_STATS64, what /proc/net/dev and `ip -s link` show). */
export interface NativeLinkStats {
  rxBytes: bigint;
  rxPackets: bigint;
  rxErrors: bigint;
  rxDropped: bigint;
  /** Packets the device missed (no room in its receive ring); /proc/net/dev adds them to "drop". */
  rxMissed: bigint;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
  txDropped: bigint;
  multicast: bigint;
  collisions: bigint;
}

/** A link (interface), as the kernel reports it. */
export interface NativeLink extends NativeLinkStats {
  index: number;
  /** Its bytes, a latin1 character each: the kernel's names need not be UTF-8 (lib/net decodes). */
  name: string;
  /** IFF_* flags (IFF_UP = 1, IFF_BROADCAST = 2, IFF_LOOPBACK = 8, ...). */
  flags: number;
  /** ARPHRD_* link type (1 ethernet, 772 loopback). */
  type: number;
  mtu: number;
  /** "aa:bb:cc:dd:ee:ff" as the kernel reports it (all zeros for loopback), "" when none. */
  hwaddr: string;
  /** IF_OPER_* (6 = up, 2 = down). */
  operstate: number;
  /** 1 when the kernel reported the counters (NativeLinkStats), else 0 and they are 0. */
  hasStats: number;
}

/** An address, as the kernel reports it. */
export interface NativeAddress {
  /** Index of the link the address is on. */
  index: number;
  /** AF_INET or AF_INET6. */
  family: number;
  /** The local address ("ip address" prints it as `local`). */
  address: string;
  prefixlen: number;
  /** RT_SCOPE_* (0 universe, 253 link, 254 host). */
  scope: number;
  /** IFA_F_* flags (IFA_F_PERMANENT = 0x80, IFA_F_TENTATIVE = 0x40, ...). */
  flags: number;
  /** The peer of a point-to-point address, else "". */
  peer: string;
  /** IFA_LABEL (IPv4 only, else ""): bytes, a latin1 character each, as `NativeLink.name`. */
  label: string;
}

/** A route, as the kernel reports it. */
export interface NativeRoute {
  /** AF_INET or AF_INET6. */
  family: number;
  /** Destination network, "" for a default route. */
  dst: string;
  dstLen: number;
  gateway: string;
  /** Preferred source address ("src" in `ip route`), "" when none. */
  prefsrc: string;
  /** Output interface index and name, 0 and "" when none (e.g. multipath). */
  oif: number;
  ifname: string;
  scope: number;
  table: number;
  /** RTPROT_* (2 kernel, 3 boot, 4 static). */
  protocol: number;
  /** RTN_* (1 unicast, 6 blackhole, 7 unreachable, ...). */
  type: number;
  metric: number;
}

/** One path of a multipath route (`nexthop via GATEWAY dev IFNAME` in `ip route`). */
export interface NativeNextHop {
  /** The row of its route in the routes table. */
  route: number;
  /** "" when the path names no interface. */
  ifname: string;
  /** "" for none; may be of the other family (an IPv4 route via an IPv6 gateway). */
  gateway: string;
}

/** A route to add or delete, checked (lib/net) and in the kernel's terms. */
export interface NativeRouteSpec {
  /** AF_INET or AF_INET6. */
  family: number;
  dst: string;
  dstLen: number;
  gateway?: string;
  prefsrc?: string;
  ifname?: string;
  /** RT_SCOPE_*; absent: what `ip route` picks. */
  scope?: number;
  table?: number;
  metric?: number;
}

/**
 * rtnetlink, in the caller's network namespace or (`netns`) a named one or a namespace file.
 * `family`: 0 for both, else AF_INET or AF_INET6; `table`: 0 for every table. Failures reject
 * with errno, syscall "rtnetlink" and the kernel's extended-ACK message as `path`, or with
 * syscall "setns" and the namespace file.
 */
export interface NetlinkBindings {
  netLinks(netns?: string): Promise<NativeTable<NativeLink>>;
  netAddresses(netns: string | undefined, family: number): Promise<NativeTable<NativeAddress>>;
  netRoutes(
    netns: string | undefined,
    family: number,
    table: number,
  ): Promise<{ routes: NativeTable<NativeRoute>; nexthops: NativeTable<NativeNextHop> }>;
  netChangeAddress(
    netns: string | undefined,
    add: boolean,
    ifname: string,
    family: number,
    address: string,
    prefixlen: number,
  ): Promise<void>;
  netSetLinkUp(netns: string | undefined, ifname: string, up: boolean): Promise<void>;
  netChangeRoute(netns: string | undefined, add: boolean, spec: NativeRouteSpec): Promise<void>;
}

// ---- System: native/clock.cc, passwd.cc -------------------------------------------------------

/** A user's entry as getpwnam_r(3) finds it (NSS: files, LDAP, sssd...). */
export interface NativePasswd {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  dir: string;
  shell: string;
}

export interface SystemBindings {
  /** settimeofday(2); throws the errno (EPERM without CAP_SYS_TIME). Synchronous. */
  setTimeOfDay(seconds: number, microseconds: number): void;
  /** getpwnam_r(3) on the thread pool: null when there is no such user; rejects with a lookup's errno. */
  getpwnam(name: string): Promise<NativePasswd | null>;
}

// ---- Child processes: native/spawn.cc ----------------------------------------------------------

/** A started child: its pid and the agent's ends of its pipes (-1 for a stream not piped; stdout and stderr non-blocking). */
export interface NativeSpawned {
  pid: number;
  stdin: number;
  stdout: number;
  stderr: number;
}

export interface SpawnBindings {
  /**
   * fork + execve of `file` with argv `args` (args[0] included) and `env` ("NAME=value"
   * entries; null: the agent's environment), as GLib's g_spawn does for qemu-ga: a `file` without
   * a '/' is searched in the colon-separated `searchPath` (null: no search), EACCES reported
   * when no candidate ran and one was refused; a file execve takes for a script without "#!"
   * runs under /bin/sh. `pipes` (PIPE_* bits) says which of stdin, stdout and stderr are pipes;
   * the others are /dev/null. Signals are at their defaults in the child, none blocked. On a
   * thread of its own. Rejects with the errno of the failed execve (syscall "execve", path
   * `file`), or of what failed before it. The child is the caller's to reap (reapProcess).
   * Every string is its bytes, a Buffer without NUL (lib/exec encodes them).
   */
  spawnProcess(
    file: Buffer,
    searchPath: Buffer | null,
    args: Buffer[],
    env: Buffer[] | null,
    pipes: number,
  ): Promise<NativeSpawned>;
  /** waitpid(pid, WNOHANG): -1 while the child runs, else its wait status; throws (errno) for no such child. */
  reapProcess(pid: number): number;
  readonly PIPE_STDIN: number;
  readonly PIPE_STDOUT: number;
  readonly PIPE_STDERR: number;
}

// ---- Transports: native/port.cc, hangup.cc -----------------------------------------------------

export type PortEvent = 'data' | 'hangup' | 'connect' | 'reopen' | 'drain' | 'error';

/**
 * A Port's events: 'data' with a Buffer of the bytes read, or with the option `views`,
 * ('data', slab, start, end): the bytes are slab[start, end), in a slab the driver never writes
 * again there (no Buffer is made per read); 'error' with an Error; the others with nothing.
 */
export type PortEventHandler = (type: PortEvent, arg?: Buffer | Error, start?: number, end?: number) => void;

export interface NativePort {
  /**
   * Writes what the kernel takes now and queues the rest; returns the bytes still queued. The
   * rest is copied, or with `keep` sent from `data` itself, referenced until written: `data` must
   * not change until then. With `give` too, `data`'s memory is freed once written (its
   * ArrayBuffer detached, when `data` is all of it): nothing may use `data` after the call.
   */
  write(data: Buffer, keep?: boolean, give?: boolean): number;
  pause(): void;
  resume(): void;
  close(): void;
  /** Drops what is queued for a host that is gone for good (the rest of its answers); true when there was any. */
  discard(): boolean;
  readonly queued: number;
  /** Bytes copied into the queue since the port opened (what writes not kept left for later). */
  readonly copied: number;
  readonly connected: boolean;
  /**
   * What found the host there the last time it came (back): 'open' (there when the port was
   * opened), 'watch' (woken by what brings a host back: the port's waiters, the path's name made
   * anew) or 'timer' (the backoff check, the safety net).
   */
  readonly foundBy: 'open' | 'watch' | 'timer';
}

/** Watches a stream socket for its peer's close (not a mere shutdown of its sending side). */
export interface NativeHangupWatch {
  /** Stops watching; the socket stays open. */
  close(): void;
}

export interface TransportBindings {
  /** Opens a port and drives it, telling onEvent what happens (PortEventHandler). */
  Port: new (path: string, onEvent: PortEventHandler, options?: { views?: boolean }) => NativePort;
  /** onHangup runs once, when the peer of the socket at fd has closed it (or it is in error). */
  HangupWatch: new (fd: number, onHangup: () => void) => NativeHangupWatch;
  /**
   * native/malloc.cc: mallopt(M_MMAP_THRESHOLD, bytes), for the whole process (the agent's
   * entry sets it: docs/AGENT.md "Memory"); false when malloc refused it.
   */
  mallocMmapThreshold(bytes: number): boolean;
  /**
   * native/event_loop.cc: turns off libuv's idle-time metrics on this loop (Node turns them on;
   * performance.eventLoopUtilization() then reads no idle time), sparing a zero-timeout poll
   * each time the loop waits. The agent's entry calls it; false when this libuv is not one whose
   * loop state it knows (nothing changed).
   */
  stopLoopIdleTime(): boolean;
}

// ---- The addon ---------------------------------------------------------------------------------

export interface Addon
  extends
    FileBindings,
    FreezeBindings,
    SysinfoBindings,
    NetlinkBindings,
    TransportBindings,
    SystemBindings,
    SpawnBindings {}

/** Every export and its typeof: the addon is held to this when it loads, and the test to the reverse. */
export const ADDON_EXPORTS: { readonly [K in keyof Addon]-?: 'function' | 'number' | 'object' } = {
  md5File: 'function',
  Md5: 'function',
  pread: 'function',
  preadCached: 'function',
  pwrite: 'function',
  pwriteWait: 'function',
  linkFd: 'function',
  lseek: 'function',
  O_TMPFILE: 'number',
  cancelStreams: 'function',
  base64: 'function',
  freeWhole: 'function',
  base64Decode: 'function',
  base64DecodeRun: 'function',
  FdPoll: 'function',
  readDirectory: 'function',
  lstatAt: 'function',
  STAT_LAYOUT: 'object',
  freeze: 'function',
  thaw: 'function',
  fstrim: 'function',
  sysinfo: 'function',
  uname: 'function',
  LONG_BIT: 'number',
  statvfs: 'function',
  realTime: 'function',
  nvmeSmartLog: 'function',
  netLinks: 'function',
  netAddresses: 'function',
  netRoutes: 'function',
  netChangeAddress: 'function',
  netSetLinkUp: 'function',
  netChangeRoute: 'function',
  Port: 'function',
  HangupWatch: 'function',
  mallocMmapThreshold: 'function',
  stopLoopIdleTime: 'function',
  setTimeOfDay: 'function',
  getpwnam: 'function',
  spawnProcess: 'function',
  reapProcess: 'function',
  PIPE_STDIN: 'number',
  PIPE_STDOUT: 'number',
  PIPE_STDERR: 'number',
};

/** The addon of the package at `root`, checked against ADDON_EXPORTS: a stale build fails here, naming what it lacks. */
function loadAddon(root: string): Addon {
  const addon = load(root) as Record<string, unknown>;
  const wrong = Object.entries(ADDON_EXPORTS).filter(([name, kind]) => typeof addon[name] !== kind);
  if (wrong.length > 0) {
    throw new Error(
      `the ember-ga addon lacks ${wrong.map(([name, kind]) => `${name} (a ${kind})`).join(', ')}: built from other sources? (npm run rebuild-addon)`,
    );
  }
  return addon as unknown as Addon;
}

export const native: Addon = loadAddon(path.join(__dirname, '..', '..'));
