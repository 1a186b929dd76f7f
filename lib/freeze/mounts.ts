// Which mount points fs-freeze freezes by default: a pure function of the mount table (the
// format of /proc/self/mounts), with symlink resolution injected so it can be tested on fixture
// tables without the devices existing. Given the table's bytes, a mount point whose name is not
// UTF-8 is selected as its bytes (a Buffer), which the freeze library takes as a path.
import * as fs from 'fs';
import { mountPathOf, parseMountTable, type MountEntry, type MountPath } from '../mounts';

/** Maps a device path to the path it really names (follows symlinks); returns it unchanged when it cannot. */
export type DeviceResolver = (source: string) => string;

/** The real resolver: realpath, or the source itself when it does not exist. Synchronous on purpose (see freezer.ts). */
export const realDevice: DeviceResolver = (source) => {
  try {
    return fs.realpathSync(source);
  } catch {
    return source;
  }
};

const isLoop = (dev: string) => dev.startsWith('/dev/loop');
const isDeviceMapper = (dev: string) =>
  dev.startsWith('/dev/mapper/') || /^dm-/.test(dev.slice(dev.lastIndexOf('/') + 1));

/** A mount table entry with the reason the default rules skip it (undefined: selected). */
export interface MountChoice extends MountEntry {
  skipped?: string;
}

/**
 * The mount points phoenix-guest-agent 0.7.1 freezes, in mount table order: each device once
 * (the first mount of it; bind mounts and btrfs subvolumes share the device), skipping sources
 * that do not start with `/` (tmpfs, proc, overlay...), smbfs and cifs, loop devices and
 * device-mapper devices (`dm-*`, also behind /dev/mapper or other symlinks). Loop and
 * device-mapper checks apply to the source and to what it resolves to, and "the same device"
 * means the same resolved path, so `/dev/disk/by-uuid/X` and `/dev/sda1` count once.
 * The table as text gives strings; as bytes, a Buffer for each mount point not named in UTF-8.
 */
export function selectFreezable(table: string, resolve?: DeviceResolver): string[];
export function selectFreezable(table: string | Buffer, resolve?: DeviceResolver): MountPath[];
export function selectFreezable(table: string | Buffer, resolve: DeviceResolver = realDevice): MountPath[] {
  return classifyMounts(table, resolve)
    .filter((m) => m.skipped === undefined)
    .map(mountPathOf);
}

/** Every entry of the mount table with selectFreezable's verdict on it, in table order. */
export function classifyMounts(table: string | Buffer, resolve: DeviceResolver = realDevice): MountChoice[] {
  const firstMount = new Map<string, string>(); // resolved device -> its selected mount point
  return parseMountTable(table).map((m): MountChoice => {
    if (!m.source.startsWith('/')) return { ...m, skipped: 'not a block device' };
    if (m.fstype === 'smbfs' || m.fstype === 'cifs') return { ...m, skipped: 'a network filesystem' };
    const dev = resolve(m.source);
    if (isLoop(m.source) || isLoop(dev)) return { ...m, skipped: 'a loop device' };
    if (isDeviceMapper(m.source) || isDeviceMapper(dev)) return { ...m, skipped: 'a device-mapper device' };
    const first = firstMount.get(dev);
    if (first !== undefined) return { ...m, skipped: `the device of ${first} again` };
    firstMount.set(dev, m.mountpoint);
    return m;
  });
}

/** Is this mount source a directory? (qemu-ga skips those: bind mounts, in a table that names them so.) */
export type SourceIsDirectory = (source: string) => boolean;

/** The real check: stat; a source that cannot be stat'ed is no directory (qemu-ga keeps those). */
export const sourceIsDirectory: SourceIsDirectory = (source) => {
  try {
    return fs.statSync(source).isDirectory();
  } catch {
    return false;
  }
};

/**
 * The mount points qemu-ga 7.2 freezes, thaws and trims, in mount table order (it freezes in
 * the reverse order): every entry whose source starts with `/`, except cifs, smbfs and sources
 * that are directories (qga/commands-posix.c, build_fs_mount_list_from_mtab, the rules qemu-ga
 * applies to a table in this format). Unlike selectFreezable, loop and device-mapper devices are
 * kept (LVM and LUKS roots are what libvirt hosts snapshot), and a device mounted twice is listed
 * twice as in 7.2 (freezing it again is EBUSY, which qemu-ga ignores and does not count).
 * Strings and Buffers as selectFreezable's.
 */
export function selectQemuGa(table: string, isDirectory?: SourceIsDirectory): string[];
export function selectQemuGa(table: string | Buffer, isDirectory?: SourceIsDirectory): MountPath[];
export function selectQemuGa(table: string | Buffer, isDirectory: SourceIsDirectory = sourceIsDirectory): MountPath[] {
  return parseMountTable(table)
    .filter((m) => m.source.startsWith('/') && m.fstype !== 'smbfs' && m.fstype !== 'cifs' && !isDirectory(m.source))
    .map(mountPathOf);
}
