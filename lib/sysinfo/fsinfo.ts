// Mounted filesystems on block devices, each with its sizes and the disks it lies on. Which
// mounts count is qemu-ga's rule: those of /proc/self/mountinfo with a real device number (so
// not proc, tmpfs, NFS...), and btrfs ones, whose anonymous device number is replaced by that of
// the device node they name. Bind mounts are listed again (each with its mount point).
import { promises as fs } from 'fs';
import { native } from '../native';
import { mountPathKey, mountPathOf, parseMountInfo, parseMountTable, type MountPath } from '../mounts';
import { coalesce, withTimeout } from './async';
import { disksUnder, type BlockDeviceOptions, type DiskAddress } from './blockdev';
import { mapLimit } from './sysfs';

export interface FilesystemInfo {
  /** The sysfs name of its device ("vda1", "dm-0"), or "MAJOR:MINOR" when sysfs has none. */
  name: string;
  /** As text: a name that is not UTF-8 as qemu-ga writes it (mountPathText), its bytes in `mountpointBytes`. */
  mountpoint: string;
  /** The mount point's bytes, when they are not UTF-8. */
  mountpointBytes?: Buffer;
  /** The filesystem type ("ext4"). */
  type: string;
  /** Bytes in use, and bytes in use plus those free to unprivileged users (statvfs). Absent when statvfs fails. */
  usedBytes?: number;
  totalBytes?: number;
  /** The disks it lies on, as blockdev's disksUnder finds them. */
  disks: DiskAddress[];
}

export interface FilesystemOptions extends BlockDeviceOptions {
  /** The mount table in mountinfo format (default /proc/self/mountinfo). */
  mountInfo?: string;
  /** Read when mountInfo cannot be (default /proc/self/mounts). */
  mounts?: string;
  /** statvfs(3) of a mount point (a Buffer when its name is not UTF-8); tests inject failures and hangs. */
  statvfs?: (mountpoint: MountPath) => Promise<Statvfs>;
  /** A statvfs that has not answered by then (a hung filesystem) leaves the sizes out (default 5000 ms). */
  statvfsTimeoutMs?: number;
}

/** statvfs(3)'s figures: sizes in units of frsize bytes. */
export interface Statvfs {
  frsize: bigint;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
}

interface MountedDevice {
  mountpoint: string;
  mountpointBytes?: Buffer;
  type: string;
  major: number;
  minor: number;
}

/** glibc's gnu_dev_major / gnu_dev_minor of a dev_t. */
function majorMinor(dev: bigint): [number, number] {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return [Number(BigInt.asUintN(32, major)), Number(BigInt.asUintN(32, minor))];
}

/** The device number of a block device node; 'dir' for a directory (a bind mount's source). */
async function nodeDevice(p: string): Promise<[number, number] | 'dir' | undefined> {
  const st = await fs.stat(p, { bigint: true }).catch(() => undefined);
  if (st === undefined) return undefined;
  if (st.isDirectory()) return 'dir';
  return st.isBlockDevice() ? majorMinor(st.rdev) : undefined;
}

/** The mounts fsinfo describes, in mount table order. */
async function mountedDevices(opts: FilesystemOptions): Promise<MountedDevice[]> {
  let table: Buffer;
  try {
    // As bytes: a mount point's name need not be UTF-8, and is statted by its bytes.
    table = await fs.readFile(opts.mountInfo ?? '/proc/self/mountinfo');
  } catch {
    return mountedFromMtab(opts.mounts ?? '/proc/self/mounts');
  }
  const out: MountedDevice[] = [];
  for (const m of parseMountInfo(table)) {
    let [major, minor] = m.dev.split(':').map(Number);
    if (major === 0) {
      const dev = m.fstype === 'btrfs' ? await nodeDevice(m.source) : undefined;
      if (!Array.isArray(dev)) continue;
      [major, minor] = dev;
    }
    out.push({ mountpoint: m.mountpoint, mountpointBytes: m.mountpointBytes, type: m.fstype, major, minor });
  }
  return out;
}

/** Without mountinfo: the mounts of device nodes (not bind mounts of directories, not CIFS). */
async function mountedFromMtab(file: string): Promise<MountedDevice[]> {
  let table: Buffer;
  try {
    table = await fs.readFile(file);
  } catch {
    throw new Error(`failed to open mtab file: '${file}'`);
  }
  const out: MountedDevice[] = [];
  for (const m of parseMountTable(table)) {
    if (!m.source.startsWith('/') || m.fstype === 'smbfs' || m.fstype === 'cifs') continue;
    const dev = await nodeDevice(m.source);
    if (dev === 'dir') continue;
    const [major, minor] = dev ?? [0, 0];
    out.push({ mountpoint: m.mountpoint, mountpointBytes: m.mountpointBytes, type: m.fstype, major, minor });
  }
  return out;
}

/** statvfs through the addon, one call per mount point at a time (see async.ts). */
const sharedStatvfs = coalesce((mountpoint: MountPath) => native.statvfs(mountpoint), mountPathKey);

/**
 * Every mounted block device filesystem, in qemu-ga's order (the reverse of the mount table).
 * Rejects when the mount table cannot be read or sysfs cannot be walked (a SystemError of
 * realpath, opendir or readdir).
 */
export async function listFilesystems(opts: FilesystemOptions = {}): Promise<FilesystemInfo[]> {
  const statvfs = opts.statvfs ?? sharedStatvfs;
  const timeoutMs = opts.statvfsTimeoutMs ?? 5000;
  const mounts = await mountedDevices(opts);
  const found = await mapLimit(mounts, 8, async (m): Promise<FilesystemInfo> => {
    const under = await disksUnder(`${opts.sysRoot ?? ''}/sys/dev/block/${m.major}:${m.minor}`, opts);
    const info: FilesystemInfo = {
      name: under.name,
      mountpoint: m.mountpoint,
      ...(m.mountpointBytes && { mountpointBytes: m.mountpointBytes }),
      type: m.type,
      disks: under.disks,
    };
    try {
      const s = await withTimeout(statvfs(mountPathOf(m)), timeoutMs, `statvfs: no answer within ${timeoutMs} ms`);
      const used = s.blocks - s.bfree;
      info.usedBytes = Number(BigInt.asUintN(64, used * s.frsize));
      info.totalBytes = Number(BigInt.asUintN(64, (used + s.bavail) * s.frsize));
    } catch {
      // The sizes are optional: a failing or hung statvfs leaves them out.
    }
    return info;
  });
  return found.reverse();
}
