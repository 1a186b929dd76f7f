// I/O counters of every block device and partition, from /proc/diskstats (the kernel's
// Documentation/admin-guide/iostats.rst). The line's length tells the kernel's age: 4 figures
// (a partition on kernels before 2.6.25), 11 (before 4.18), 15 (discards, 4.18) or 17 (flushes,
// 5.5); older formats lack the later counters.
import { promises as fs } from 'fs';
import { Scan } from './scan';

/** Counters of one device: I/Os, merges, 512-byte sectors, milliseconds. */
export interface DiskCounters {
  readIos?: number;
  readMerges?: number;
  readSectors?: number;
  readTicks?: number;
  writeIos?: number;
  writeMerges?: number;
  writeSectors?: number;
  writeTicks?: number;
  /** I/Os in flight now. */
  iosInProgress?: number;
  /** Milliseconds spent doing I/O. */
  totalTicks?: number;
  /** Weighted milliseconds spent doing I/O. */
  weightTicks?: number;
  discardIos?: number;
  discardMerges?: number;
  discardSectors?: number;
  discardTicks?: number;
  flushIos?: number;
  flushTicks?: number;
}

export interface DiskStats {
  name: string;
  major: number;
  minor: number;
  stats: DiskCounters;
}

export const DEFAULT_DISKSTATS = '/proc/diskstats';

/** How each figure after the name is read (sscanf's %u or %lu), in the kernel's order. */
const WIDTHS: (32 | 64)[] = [64, 64, 64, 64, 64, 64, 64, 32, 32, 32, 32, 64, 64, 64, 32, 64, 32];

/**
 * Every line of /proc/diskstats text with at least four counters, in file order, read as
 * qemu-ga reads it: a line of 4 counters is the old partition format (ios and sectors only),
 * one of 11 or more has the full set, 15 adds discards and 17 flushes. A line of 5 to 10
 * counters has none of them (its stats are empty).
 */
export function parseDiskstats(text: string): DiskStats[] {
  const out: DiskStats[] = [];
  for (const line of text.split('\n')) {
    const s = new Scan(line);
    const major = s.unsigned(32);
    const minor = major === undefined ? undefined : s.unsigned(32);
    const name = minor === undefined ? undefined : s.word();
    if (major === undefined || minor === undefined || name === undefined) continue;
    const v: number[] = [];
    for (const bits of WIDTHS) {
      const n = s.unsigned(bits);
      if (n === undefined) break;
      v.push(n);
    }
    if (v.length < 4) continue;
    const stats: DiskCounters = {};
    if (v.length === 4) {
      [stats.readIos, stats.readSectors, stats.writeIos, stats.writeSectors] = v;
    }
    if (v.length >= 11) {
      [
        stats.readIos,
        stats.readMerges,
        stats.readSectors,
        stats.readTicks,
        stats.writeIos,
        stats.writeMerges,
        stats.writeSectors,
        stats.writeTicks,
        stats.iosInProgress,
        stats.totalTicks,
        stats.weightTicks,
      ] = v;
    }
    if (v.length >= 15) [stats.discardIos, stats.discardMerges, stats.discardSectors, stats.discardTicks] = v.slice(11);
    if (v.length >= 17) [stats.flushIos, stats.flushTicks] = v.slice(15);
    out.push({ name, major, minor, stats });
  }
  return out;
}

/** Every device's counters from /proc/diskstats (or `path`). */
export async function readDiskstats(path = DEFAULT_DISKSTATS): Promise<DiskStats[]> {
  return parseDiskstats(await fs.readFile(path, 'utf8'));
}
