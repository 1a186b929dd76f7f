// Block devices for sysinfo: every /sys/block entry with a `device` link (real disks: vda, sda,
// nvme0n1; not loop, zram, dm or md devices, which have none), as "/dev/NAME", with the mount
// point and sizes of the filesystem on it.
//
// Which mount belongs to a disk: a filesystem on the whole disk (/dev/vda mounted at /) or on
// one of its partitions (/dev/vda1 at /, /dev/vda15 at /boot/efi). Mounts are matched to devices
// by device number (mountinfo's major:minor against sysfs' `dev`), which also catches /dev/root
// and /dev/disk/by-uuid/... sources, or by the source naming /dev/NAME (btrfs reports an
// anonymous device number). When several mounts match, the disk reports the one nearest the
// root of the tree (fewest path components, then first in the mount table): "/" over
// "/boot/efi"; its sizes are that filesystem's, as `df -k MOUNTPOINT` shows them.
import { promises as fs } from 'fs';
import * as path from 'path';
import { mountPathKey, mountPathOf, parseMountInfo, type Mount, type MountPath } from '../mounts';
import { coalesce, withTimeout } from './async';

export interface Disk {
  name: string;
  is_mounted: boolean;
  mountpoint: string;
  /** KiB: the filesystem's size, used blocks (total - free) and blocks available to users. */
  size_total: number;
  size_used: number;
  size_avail: number;
}

export interface DiskOptions {
  /** The directory listing block devices (default /sys/block). */
  sysBlock?: string;
  /** The mount table, in /proc/PID/mountinfo format (default /proc/self/mountinfo). */
  mountInfo?: string;
  /** Told about a part that failed without failing the list (unreadable mount table, statfs). */
  warn?: (message: string) => void;
  /** A statfs that has not answered by then (a hung filesystem) gives zero sizes (default 1000 ms). */
  statfsTimeoutMs?: number;
  /** Sizes of the filesystem at a mount point (default fsSizes, coalesced); tests inject failures. */
  sizes?: (mountpoint: MountPath) => Promise<Sizes>;
}

/**
 * A disk as listDisks lists it. `mountpoint` names a mount point whose name is not UTF-8 as
 * mountPathText does, and `mountpointBytes` holds its bytes (an answer writes it from them).
 */
export interface ListedDisk extends Disk {
  mountpointBytes?: Buffer;
}

export type Sizes = Pick<Disk, 'size_total' | 'size_used' | 'size_avail'>;

export const DEFAULT_SYS_BLOCK = '/sys/block';
export const DEFAULT_MOUNTINFO = '/proc/self/mountinfo';

interface BlockDevice {
  name: string;
  /** "major:minor" of the disk and of each of its partitions. */
  devs: Set<string>;
  /** "/dev/NAME" of the disk and of each partition. */
  paths: Set<string>;
}

async function readDev(dir: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path.join(dir, 'dev'), 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** A disk and its partitions (subdirectories NAME* holding a `partition` file), or undefined. */
async function blockDevice(sysBlock: string, name: string): Promise<BlockDevice | undefined> {
  const dir = path.join(sysBlock, name);
  if (!(await exists(path.join(dir, 'device')))) return undefined;
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  const parts = await Promise.all(
    entries
      .filter((e) => e.startsWith(name) && e !== name)
      .map(async (p) =>
        (await exists(path.join(dir, p, 'partition'))) ? { name: p, dev: await readDev(path.join(dir, p)) } : undefined,
      ),
  );
  const dev = await readDev(dir);
  const all = [{ name, dev }, ...parts.filter((p) => p !== undefined)];
  return {
    name,
    devs: new Set(all.flatMap((p) => (p.dev ? [p.dev] : []))),
    paths: new Set(all.map((p) => `/dev/${p.name}`)),
  };
}

/** Path depth for choosing a disk's mount: "/" is 0, "/boot/efi" is 2. */
function depth(mountpoint: string): number {
  return mountpoint.split('/').filter((s) => s !== '').length;
}

/** The mount to report for a disk (see the header), or undefined when none is mounted. */
export function mountOf(devs: Set<string>, paths: Set<string>, mounts: Mount[]): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    if (!devs.has(m.dev) && !paths.has(m.source)) continue;
    if (best === undefined || depth(m.mountpoint) < depth(best.mountpoint)) best = m;
  }
  return best;
}

/** `df -k` figures of the filesystem mounted at mountpoint (a Buffer: by its bytes), in KiB. */
export async function fsSizes(mountpoint: MountPath): Promise<Sizes> {
  const s = await fs.statfs(mountpoint, { bigint: true });
  const kib = (blocks: bigint) => Number((blocks * s.bsize) / 1024n);
  return { size_total: kib(s.blocks), size_used: kib(s.blocks - s.bfree), size_avail: kib(s.bavail) };
}

/** fsSizes, one statfs per mount point at a time (see async.ts). */
const sharedFsSizes = coalesce(fsSizes, mountPathKey);

/**
 * Every disk, sorted by name. Only an unreadable sysBlock directory throws: an unreadable mount
 * table lists every disk as not mounted, and a disk whose statfs fails is listed as mounted with
 * zero sizes; both are reported through `warn`.
 */
export async function listDisks(opts: DiskOptions = {}): Promise<ListedDisk[]> {
  const sysBlock = opts.sysBlock ?? DEFAULT_SYS_BLOCK;
  const mountInfo = opts.mountInfo ?? DEFAULT_MOUNTINFO;
  const warn = opts.warn ?? (() => {});
  const sizes = opts.sizes ?? sharedFsSizes;
  const timeoutMs = opts.statfsTimeoutMs ?? 1000;
  const [names, mounts] = await Promise.all([
    fs.readdir(sysBlock),
    // As bytes: a mount point's name need not be UTF-8, and is statted by its bytes.
    fs.readFile(mountInfo).then(parseMountInfo, (e: Error) => {
      warn(`cannot read the mount table: ${e.message}`);
      return [] as Mount[];
    }),
  ]);
  const devices = (await Promise.all(names.sort().map((n) => blockDevice(sysBlock, n)))).filter((d) => d !== undefined);
  return Promise.all(
    devices.map(async (d): Promise<ListedDisk> => {
      const m = mountOf(d.devs, d.paths, mounts);
      const disk: ListedDisk = {
        name: `/dev/${d.name}`,
        is_mounted: m !== undefined,
        mountpoint: m?.mountpoint ?? '',
        ...(m?.mountpointBytes && { mountpointBytes: m.mountpointBytes }),
        size_total: 0,
        size_used: 0,
        size_avail: 0,
      };
      if (m === undefined) return disk;
      try {
        return {
          ...disk,
          ...(await withTimeout(sizes(mountPathOf(m)), timeoutMs, `statfs: no answer within ${timeoutMs} ms`)),
        };
      } catch (e) {
        warn(`${disk.name} at ${m.mountpoint}: ${(e as Error).message}`);
        return disk;
      }
    }),
  );
}
