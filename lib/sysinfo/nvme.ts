// An NVMe disk's SMART / health information (NVMe 1.4, log page 02h), read with the admin
// command qemu-ga issues. 128-bit counters come as two 64-bit halves, low first.
import { native } from '../native';
import { toSystemError } from '../errors';

export interface NvmeSmart {
  criticalWarning: number;
  /** Kelvin. */
  temperature: number;
  /** Percent. */
  availableSpare: number;
  availableSpareThreshold: number;
  percentageUsed: number;
  /** Thousands of 512-byte units. */
  dataUnitsReadLo: bigint;
  dataUnitsReadHi: bigint;
  dataUnitsWrittenLo: bigint;
  dataUnitsWrittenHi: bigint;
  hostReadCommandsLo: bigint;
  hostReadCommandsHi: bigint;
  hostWriteCommandsLo: bigint;
  hostWriteCommandsHi: bigint;
  /** Minutes. */
  controllerBusyTimeLo: bigint;
  controllerBusyTimeHi: bigint;
  powerCyclesLo: bigint;
  powerCyclesHi: bigint;
  powerOnHoursLo: bigint;
  powerOnHoursHi: bigint;
  unsafeShutdownsLo: bigint;
  unsafeShutdownsHi: bigint;
  mediaErrorsLo: bigint;
  mediaErrorsHi: bigint;
  numberOfErrorLogEntriesLo: bigint;
  numberOfErrorLogEntriesHi: bigint;
}

/** The fields of a SMART / health log page (512 bytes, little-endian). */
export function parseSmartLog(log: Buffer): NvmeSmart {
  const u64 = (at: number) => log.readBigUInt64LE(at);
  return {
    criticalWarning: log[0],
    temperature: log.readUInt16LE(1),
    availableSpare: log[3],
    availableSpareThreshold: log[4],
    percentageUsed: log[5],
    dataUnitsReadLo: u64(32),
    dataUnitsReadHi: u64(40),
    dataUnitsWrittenLo: u64(48),
    dataUnitsWrittenHi: u64(56),
    hostReadCommandsLo: u64(64),
    hostReadCommandsHi: u64(72),
    hostWriteCommandsLo: u64(80),
    hostWriteCommandsHi: u64(88),
    controllerBusyTimeLo: u64(96),
    controllerBusyTimeHi: u64(104),
    powerCyclesLo: u64(112),
    powerCyclesHi: u64(120),
    powerOnHoursLo: u64(128),
    powerOnHoursHi: u64(136),
    unsafeShutdownsLo: u64(144),
    unsafeShutdownsHi: u64(152),
    mediaErrorsLo: u64(160),
    mediaErrorsHi: u64(168),
    numberOfErrorLogEntriesLo: u64(176),
    numberOfErrorLogEntriesHi: u64(184),
  };
}

/** The SMART / health information of the NVMe device node `dev` (/dev/nvme0n1); rejects with a SystemError. */
export async function readNvmeSmart(dev: string): Promise<NvmeSmart> {
  const log = await native.nvmeSmartLog(dev).catch((e: unknown) => Promise.reject(toSystemError(e)));
  return parseSmartLog(log);
}
