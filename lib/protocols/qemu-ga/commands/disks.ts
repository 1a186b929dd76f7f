// qemu-ga's block device listings: guest-get-disks, guest-get-fsinfo and guest-get-diskstats
// (lib/sysinfo has the data; this file has qemu-ga's names, shapes and error texts).
import { SystemError, toSystemError } from '../../../errors';
import { listBlockDevices, type DiskAddress } from '../../../sysinfo/blockdev';
import type { NvmeSmart } from '../../../sysinfo/nvme';
import { readDiskstats, DEFAULT_DISKSTATS, type DiskCounters } from '../../../sysinfo/diskstats';
import { listFilesystems } from '../../../sysinfo/fsinfo';
import { errorText } from '../dispatcher';
import { defineQgaCommand, QgaError } from '../schema';
import { cError } from './system';

/** A GuestDiskAddress. */
function address(d: DiskAddress): Record<string, unknown> {
  const pci = d.pciController;
  return {
    'pci-controller': { domain: pci.domain, bus: pci.bus, slot: pci.slot, function: pci.function },
    'bus-type': d.busType,
    bus: d.bus,
    target: d.target,
    unit: d.unit,
    serial: d.serial,
    dev: d.dev,
    'ccw-address': d.ccwAddress && {
      cssid: d.ccwAddress.cssid,
      ssid: d.ccwAddress.ssid,
      subchno: d.ccwAddress.subchno,
      devno: d.ccwAddress.devno,
    },
  };
}

/** A GuestDiskSmart: the NVMe variant, the only one qemu-ga fills. */
function smart(s: NvmeSmart): Record<string, unknown> {
  return {
    type: 'nvme',
    'critical-warning': s.criticalWarning,
    temperature: s.temperature,
    'available-spare': s.availableSpare,
    'available-spare-threshold': s.availableSpareThreshold,
    'percentage-used': s.percentageUsed,
    'data-units-read-lo': s.dataUnitsReadLo,
    'data-units-read-hi': s.dataUnitsReadHi,
    'data-units-written-lo': s.dataUnitsWrittenLo,
    'data-units-written-hi': s.dataUnitsWrittenHi,
    'host-read-commands-lo': s.hostReadCommandsLo,
    'host-read-commands-hi': s.hostReadCommandsHi,
    'host-write-commands-lo': s.hostWriteCommandsLo,
    'host-write-commands-hi': s.hostWriteCommandsHi,
    'controller-busy-time-lo': s.controllerBusyTimeLo,
    'controller-busy-time-hi': s.controllerBusyTimeHi,
    'power-cycles-lo': s.powerCyclesLo,
    'power-cycles-hi': s.powerCyclesHi,
    'power-on-hours-lo': s.powerOnHoursLo,
    'power-on-hours-hi': s.powerOnHoursHi,
    'unsafe-shutdowns-lo': s.unsafeShutdownsLo,
    'unsafe-shutdowns-hi': s.unsafeShutdownsHi,
    'media-errors-lo': s.mediaErrorsLo,
    'media-errors-hi': s.mediaErrorsHi,
    'number-of-error-log-entries-lo': s.numberOfErrorLogEntriesLo,
    'number-of-error-log-entries-hi': s.numberOfErrorLogEntriesHi,
  };
}

/** qemu-ga's names for the counters. */
const COUNTERS: [keyof DiskCounters, string][] = [
  ['readIos', 'read-ios'],
  ['readMerges', 'read-merges'],
  ['readSectors', 'read-sectors'],
  ['readTicks', 'read-ticks'],
  ['writeIos', 'write-ios'],
  ['writeMerges', 'write-merges'],
  ['writeSectors', 'write-sectors'],
  ['writeTicks', 'write-ticks'],
  ['iosInProgress', 'ios-pgr'],
  ['totalTicks', 'total-ticks'],
  ['weightTicks', 'weight-ticks'],
  ['discardIos', 'discard-ios'],
  ['discardMerges', 'discard-merges'],
  ['discardSectors', 'discard-sectors'],
  ['discardTicks', 'discard-ticks'],
  ['flushIos', 'flush-ios'],
  ['flushTicks', 'flush-ticks'],
];

/** A sysfs walk's failure as qemu-ga words it: `realpath("...")`, `opendir("...")`, `readdir("...")`. */
function walkError(e: unknown): QgaError {
  const err = toSystemError(e);
  if (err instanceof SystemError && err.syscall !== undefined && err.path !== undefined) {
    return cError(`${err.syscall}("${err.path}")`, err);
  }
  return new QgaError(errorText(e));
}

export const diskCommands = [
  defineQgaCommand({
    name: 'guest-get-disks',
    doc: "Every disk of /sys/block with a size, and its partitions: `name` (device node), `partition`, `dependencies`, `address` (bus, PCI controller, serial), `alias` (device-mapper name), `smart` (an NVMe disk's health log).",
    bulk: true,
    args: {},
    handler: async () => {
      const devices = await listBlockDevices().catch((e: unknown) =>
        Promise.reject(cError(`Can't open directory "/sys/block"`, e)),
      );
      return devices.map((d) => ({
        name: d.name,
        partition: d.partition,
        dependencies: d.dependencies,
        address: d.address && address(d.address),
        alias: d.alias,
        smart: d.smart && smart(d.smart),
      }));
    },
  }),
  defineQgaCommand({
    name: 'guest-get-fsinfo',
    doc: 'Every mounted filesystem on a block device: `name`, `mountpoint`, `type`, `used-bytes` and `total-bytes` (statvfs), and the disks it lies on.',
    bulk: true,
    args: {},
    handler: async () => {
      const filesystems = await listFilesystems().catch((e: unknown) => Promise.reject(walkError(e)));
      return filesystems.map((f) => ({
        name: f.name,
        mountpoint: f.mountpoint,
        type: f.type,
        'used-bytes': f.usedBytes,
        'total-bytes': f.totalBytes,
        disk: f.disks.map(address),
      }));
    },
  }),
  defineQgaCommand({
    name: 'guest-get-diskstats',
    doc: "I/O counters of every block device and partition (/proc/diskstats): `name`, `major`, `minor`, `stats` (I/Os, merges, sectors, milliseconds; the kernel's format decides which).",
    bulk: true,
    args: {},
    handler: async () => {
      const all = await readDiskstats().catch((e: unknown) =>
        Promise.reject(cError(`open("${DEFAULT_DISKSTATS}")`, e)),
      );
      return all.map((d) => ({
        name: d.name,
        major: d.major,
        minor: d.minor,
        stats: Object.fromEntries(COUNTERS.map(([k, name]) => [name, d.stats[k]])),
      }));
    },
  }),
];
