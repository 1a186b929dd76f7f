// Block devices as sysfs describes them: where a disk sits on its bus (the PCI controller, the
// SCSI target and unit, the s390 channel subsystem address), what udev knows of it (the device
// node, the serial number, a device-mapper name), which devices a virtual one is built on, and
// its partitions. The walk follows qemu-ga's, so that the answers are the same: sysfs paths are
// read the way its sscanf calls read them, directories are listed in the kernel's order, and
// udev is asked what libudev would answer (the device node from the device's uevent file, other
// properties from udev's database, /run/udev/data/bMAJOR:MINOR; without udev running there is
// no serial and no device-mapper name).
import { promises as fs } from 'fs';
import { constants } from 'os';
import * as path from 'path';
import { errnoOf, errorAbout } from '../errors';
import { readNvmeSmart, type NvmeSmart } from './nvme';
import { cscanf } from './scan';
import { mapLimit, readAttributeText, readdirRaw } from './sysfs';

/** How a disk is attached (qemu-ga's GuestDiskBusType; the walk finds the first six). */
export type DiskBusType =
  | 'ide'
  | 'scsi'
  | 'virtio'
  | 'sata'
  | 'nvme'
  | 'unknown'
  | 'fdc'
  | 'xen'
  | 'usb'
  | 'uml'
  | 'sd'
  | 'ieee1394'
  | 'ssa'
  | 'fibre'
  | 'raid'
  | 'iscsi'
  | 'sas'
  | 'mmc'
  | 'virtual'
  | 'file-backed-virtual';

/** A PCI address; every part -1 when the disk is not on PCI. */
export interface PciAddress {
  domain: number;
  bus: number;
  slot: number;
  function: number;
}

/** An s390 channel I/O device address. */
export interface CcwAddress {
  cssid: number;
  ssid: number;
  subchno: number;
  devno: number;
}

export interface DiskAddress {
  pciController: PciAddress;
  busType: DiskBusType;
  /** The IDE bus, or a virtio-scsi disk's channel on s390. */
  bus: number;
  target: number;
  unit: number;
  /** udev's ID_SERIAL. */
  serial?: string;
  /** The device node, /dev/NAME. */
  dev?: string;
  ccwAddress?: CcwAddress;
}

/** A disk or partition of listBlockDevices. */
export interface BlockDevice {
  /** Its device node (/dev/vda, /dev/vda1). */
  name: string;
  partition: boolean;
  /**
   * A disk's: the device nodes of the devices it is built on (a device-mapper or md device's),
   * [] for others, absent when sysfs has no `slaves` directory for it. A partition's: its disk.
   */
  dependencies?: string[];
  /** A disk's address, unless it is virtual (loop, dm, md, zram) or the walk cannot place it. */
  address?: DiskAddress;
  /** A device-mapper device's name (udev's DM_NAME). */
  alias?: string;
  /** An NVMe disk's SMART / health information, when the controller gives it. */
  smart?: NvmeSmart;
}

export interface BlockDeviceOptions {
  /** Prefix of /sys (default none), for fixture trees. */
  sysRoot?: string;
  /** udev's runtime directory (default /run/udev). */
  udevRoot?: string;
  /** Reads an NVMe disk's SMART log (default readNvmeSmart); tests inject one. */
  nvmeSmart?: (dev: string) => Promise<NvmeSmart>;
}

export const DEFAULT_UDEV_ROOT = '/run/udev';

/** The drivers of PCI functions the walk knows how to read disks' places from. */
const PCI_DRIVERS = new Set(['ata_piix', 'sym53c8xx', 'virtio-pci', 'ahci', 'nvme']);

interface UdevDevice {
  devnode?: string;
  properties: Map<string, string>;
}

/**
 * What libudev answers for the device at syspath (udev_device_new_from_syspath): undefined when
 * it is no device (a device directory without a uevent file, or not there at all).
 */
async function udevDevice(syspath: string, opts: BlockDeviceOptions): Promise<UdevDevice | undefined> {
  let real: string;
  try {
    real = await fs.realpath(syspath);
  } catch {
    return undefined;
  }
  const uevent = await readAttributeText(path.join(real, 'uevent'));
  if (uevent === undefined) {
    if (real.includes('/sys/devices/')) return undefined;
    const st = await fs.stat(real).catch(() => undefined);
    if (!st?.isDirectory()) return undefined;
  }
  const properties = new Map<string, string>();
  for (const line of (uevent ?? '').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) properties.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const devname = properties.get('DEVNAME');
  const major = properties.get('MAJOR');
  const minor = properties.get('MINOR');
  if (major !== undefined && minor !== undefined) {
    const db = await readAttributeText(path.join(opts.udevRoot ?? DEFAULT_UDEV_ROOT, 'data', `b${major}:${minor}`));
    for (const line of (db ?? '').split('\n')) {
      if (!line.startsWith('E:')) continue;
      const eq = line.indexOf('=');
      if (eq > 2) properties.set(line.slice(2, eq), line.slice(eq + 1));
    }
  }
  return {
    devnode: devname === undefined ? undefined : devname.startsWith('/') ? devname : `/dev/${devname}`,
    properties,
  };
}

/** realpath, failing as a SystemError of syscall "realpath". */
async function realpath(p: string): Promise<string> {
  return fs.realpath(p).catch((e: unknown) => Promise.reject(errorAbout(e, 'realpath', p)));
}

/** Whether the device at p is virtual (loop, dm, md, zram: under /sys/devices/virtual/block). */
async function isVirtual(p: string): Promise<boolean> {
  return (await realpath(p)).includes('/devices/virtual/block/');
}

async function readlinkBase(p: string): Promise<string | undefined> {
  return fs.readlink(p).then(
    (t) => path.basename(t),
    () => undefined,
  );
}

/** The sorted numbers of the "ataN" (or "hostN") entries of dir, at most 8 of them. */
async function hostNumbers(dir: string, ata: boolean): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdirRaw(dir)) {
    if (out.length >= 8) break;
    const v = cscanf(e.name, ata ? 'ata%d' : 'host%d').values;
    if (v.length === 1) out.push(v[0]);
  }
  return out.sort((a, b) => (a >>> 0) - (b >>> 0));
}

/** Fills disk from a device below a PCI function; false when the walk cannot place it. */
async function fromPci(syspath: string, disk: DiskAddress): Promise<boolean> {
  const p = syspath.indexOf('/devices/pci');
  const first = p < 0 ? undefined : cscanf(syspath.slice(p + 12), '%*x:%*x/%x:%x:%x.%x%n');
  if (first === undefined || first.values.length < 4) return false;
  let pci = first.values;
  let pos = p + 12 + first.n[0]!;
  let driver: string | undefined;
  for (;;) {
    driver = await readlinkBase(`${syspath.slice(0, pos)}/driver`);
    if (driver !== undefined && PCI_DRIVERS.has(driver)) break;
    // A bridge: the disk's controller is further down the path.
    const next = cscanf(syspath.slice(pos), '/%x:%x:%x.%x%n');
    if (next.values.length !== 4) return false;
    pci = next.values;
    pos += next.n[0]!;
  }
  let tgt: number[] | undefined = undefined;
  const t = syspath.indexOf('/target');
  if (t >= 0) {
    const v = cscanf(syspath.slice(t + 7), '%*u:%*u:%*u/%*u:%u:%u:%u').values;
    if (v.length === 3) tgt = v;
  }
  let hostAt = syspath.indexOf('/ata');
  const ata = hostAt >= 0;
  if (!ata) hostAt = syspath.indexOf('/host');
  let host: number | undefined;
  let hosts: number[] = [];
  if (hostAt >= 0) {
    const v = cscanf(syspath.slice(hostAt + (ata ? 4 : 5)), '%u').values;
    if (v.length === 1) {
      host = v[0];
      hosts = await hostNumbers(syspath.slice(0, hostAt), ata);
    }
  }
  disk.pciController = { domain: pci[0], bus: pci[1], slot: pci[2], function: pci[3] };
  switch (driver) {
    case 'ata_piix': {
      // A host per IDE bus; target*:0:<unit>:0.
      const i = host === undefined || !tgt ? -1 : hosts.indexOf(host);
      if (i < 0) return false;
      disk.busType = 'ide';
      disk.bus = i;
      disk.unit = tgt![1];
      return true;
    }
    case 'sym53c8xx':
      if (!tgt) return false;
      disk.busType = 'scsi';
      disk.unit = tgt[1];
      return true;
    case 'virtio-pci':
      // virtio-scsi: target*:0:0:<unit>; virtio-blk: one disk per device.
      disk.busType = tgt ? 'scsi' : 'virtio';
      if (tgt) disk.unit = tgt[2];
      return true;
    case 'ahci': {
      // One host per port.
      const i = host === undefined || !tgt ? -1 : hosts.indexOf(host);
      if (i < 0) return false;
      disk.busType = 'sata';
      disk.unit = i;
      return true;
    }
    default:
      disk.busType = 'nvme';
      return true;
  }
}

/** A virtio disk not on PCI (s390): virtio-scsi's target*:0:<target>:<unit>, else virtio-blk. */
function fromNonPciVirtio(syspath: string, disk: DiskAddress): boolean {
  if (!syspath.includes('/virtio') || !syspath.includes('/block')) return false;
  const t = syspath.indexOf('/target');
  const v = t < 0 ? [] : cscanf(syspath.slice(t + 7), '%*u:%*u:%*u/%*u:%u:%u:%u').values;
  if (v.length === 3) {
    disk.busType = 'scsi';
    [disk.bus, disk.target, disk.unit] = v;
  } else disk.busType = 'virtio';
  return true;
}

/** An s390 channel I/O device: its css address, and its virtio disk's place if it is one. */
function fromCcw(syspath: string, disk: DiskAddress): boolean {
  const p = syspath.indexOf('/devices/css');
  const v = p < 0 ? [] : cscanf(syspath.slice(p + 12), '%*x/%x.%x.%x/%*x.%*x.%x/').values;
  if (v.length < 4) return false;
  disk.ccwAddress = { cssid: v[0], ssid: v[1], subchno: v[2], devno: v[3] };
  if (syspath.slice(p).includes('/virtio')) fromNonPciVirtio(syspath, disk);
  return true;
}

/** What fsinfo-style walks collect: a name (the first device's) and the disks, last found first. */
interface Collected {
  name?: string;
  disks: DiskAddress[];
}

async function fromRealDevice(syspath: string, into: Collected, opts: BlockDeviceOptions): Promise<void> {
  const disk: DiskAddress = {
    pciController: { domain: -1, bus: -1, slot: -1, function: -1 },
    busType: 'unknown',
    bus: 0,
    target: 0,
    unit: 0,
  };
  const udev = await udevDevice(syspath, opts);
  if (udev?.devnode !== undefined) disk.dev = udev.devnode;
  const serial = udev?.properties.get('ID_SERIAL');
  if (serial) disk.serial = serial;
  let placed: boolean;
  if (syspath.includes('/devices/pci')) placed = await fromPci(syspath, disk);
  else if (syspath.includes('/devices/css')) placed = fromCcw(syspath, disk);
  else if (syspath.includes('/virtio')) placed = fromNonPciVirtio(syspath, disk);
  else placed = false;
  if (placed || disk.dev !== undefined || disk.serial !== undefined) into.disks.unshift(disk);
}

/** The disks under the device at devpath: itself if real, else those its `slaves` are built on. */
async function collect(devpath: string, into: Collected, opts: BlockDeviceOptions): Promise<void> {
  let syspath: string;
  try {
    syspath = await fs.realpath(devpath);
  } catch (e) {
    // A device node without sysfs entry (in a container, say) names the filesystem and no more.
    if (errnoOf(e) !== constants.errno.ENOENT) throw errorAbout(e, 'realpath', devpath);
    into.name ??= path.basename(devpath);
    return;
  }
  into.name ??= path.basename(syspath);
  if (!(await isVirtual(syspath))) return fromRealDevice(syspath, into, opts);
  const slaves = `${syspath}/slaves`;
  let entries;
  try {
    entries = await readdirRaw(slaves);
  } catch (e) {
    if (errnoOf(e) === constants.errno.ENOENT) return;
    throw e;
  }
  for (const e of entries) if (e.isSymbolicLink) await collect(`${slaves}/${e.name}`, into, opts);
}

/**
 * The disks a block device lies on (the device itself when it is a real disk or partition; for
 * a dm, md or loop device, the real devices under it, recursively), last found first, and the
 * name of the device (its sysfs name, "dm-0"). Rejects with a SystemError (realpath, opendir,
 * readdir) when sysfs cannot be read.
 */
export async function disksUnder(
  devpath: string,
  opts: BlockDeviceOptions = {},
): Promise<{ name: string; disks: DiskAddress[] }> {
  const into: Collected = { disks: [] };
  await collect(devpath, into, opts);
  return { name: into.name ?? '', disks: into.disks };
}

/** The device node of the device at syspath (udev's), or undefined. */
async function devnodeOf(syspath: string, opts: BlockDeviceOptions): Promise<string | undefined> {
  return (await udevDevice(syspath, opts))?.devnode;
}

/** A disk of /sys/block and its partitions, or undefined when it is skipped. */
async function describeDisk(name: string, opts: BlockDeviceOptions): Promise<BlockDevice[] | undefined> {
  const sysBlock = `${opts.sysRoot ?? ''}/sys/block`;
  const diskDir = `${sysBlock}/${name}`;
  const size = await readAttributeText(`${diskDir}/size`);
  if (size === undefined || size === '0\n') return undefined;
  const udev = await udevDevice(diskDir, opts);
  if (udev?.devnode === undefined) return undefined;
  const dev = udev.devnode;
  const disk: BlockDevice = { name: dev, partition: false };
  const alias = udev.properties.get('DM_NAME');
  if (alias) disk.alias = alias;
  const virtual = await isVirtual(diskDir).catch(() => true);
  if (!virtual) {
    const under = await disksUnder(diskDir, opts).catch(() => undefined);
    if (under?.disks[0] !== undefined) disk.address = under.disks[0];
  }
  if (disk.address?.busType === 'nvme') {
    const smart = await (opts.nvmeSmart ?? readNvmeSmart)(dev).catch(() => undefined);
    if (smart !== undefined) disk.smart = smart;
  }
  const deps = await readdirRaw(`${diskDir}/slaves`).catch(() => undefined);
  if (deps !== undefined) {
    disk.dependencies = [];
    for (const d of deps) {
      const node = await devnodeOf(`${diskDir}/slaves/${d.name}`, opts);
      if (node !== undefined) disk.dependencies.unshift(node);
    }
  }
  const out = [disk];
  // Partitions: subdirectories named NAME<digit>... or NAMEp<digit>...
  for (const e of await readdirRaw(diskDir).catch(() => [])) {
    if (!e.isDirectory || !e.name.startsWith(name)) continue;
    const rest = e.name.slice(name.length);
    if (!/^p?\d/.test(rest)) continue;
    const node = await devnodeOf(`${diskDir}/${e.name}`, opts);
    if (node !== undefined) out.push({ name: node, partition: true, dependencies: [dev] });
  }
  return out;
}

/**
 * Every disk of /sys/block with a size and a device node, and each one's partitions. In qemu-ga's order: the reverse of
 * the kernel's listing, each disk after its partitions (last first). Rejects with a SystemError
 * (opendir) only when /sys/block cannot be listed.
 */
export async function listBlockDevices(opts: BlockDeviceOptions = {}): Promise<BlockDevice[]> {
  const entries = (await readdirRaw(`${opts.sysRoot ?? ''}/sys/block`)).filter((e) => e.isSymbolicLink);
  const found = await mapLimit(entries, 8, (e) => describeDisk(e.name, opts));
  return found.flatMap((d) => d ?? []).reverse();
}
