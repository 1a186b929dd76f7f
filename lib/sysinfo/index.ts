// The sysinfo report: every part gathered at once, none able to fail the whole answer. A part
// that fails or takes too long (a hung statfs) is answered with its empty value (zeros, "", [])
// and reported through onPartError, so a host's dashboard always gets the full shape.
import { listDisks, type DiskOptions, type ListedDisk } from './disks';
import { LONG_BIT, memory, uname, type Memory, type Uname } from './kernel';
import { coalesce, withTimeout } from './async';
import { DEFAULT_UTMP_PATH, readUsers, type User } from './utmp';

export interface SystemInfo extends Memory {
  uname: Uname;
  long_bit: number;
  users: User[];
  /** A mount point whose name is not UTF-8 comes with its bytes (ListedDisk), which the answer is written from. */
  disks: ListedDisk[];
}

export type SystemInfoPart = 'uname' | 'memory' | 'users' | 'disks';

export interface SystemInfoOptions extends Omit<DiskOptions, 'warn' | 'sizes'> {
  /** utmp file (default /var/run/utmp). */
  utmpPath?: string;
  /** A part that has not answered by then is given up on (default 2000 ms). */
  partTimeoutMs?: number;
  /** Told about each part that failed (the answer then carries its empty value). */
  onPartError?: (part: SystemInfoPart, error: Error) => void;
}

/** One utmp read per path at a time (see async.ts). */
const sharedReadUsers = coalesce(readUsers);

const emptyUname: Uname = { sysname: '', nodename: '', release: '', version: '', machine: '', domain: '' };
const emptyMemory: Memory = {
  uptime: 0,
  loadavg: { '1m': 0, '5m': 0, '15m': 0 },
  ram: { total: 0, free: 0, buffer: 0 },
  swap: { total: 0, free: 0 },
};

/** p, or `empty` (after telling onError) when p rejects or does not settle within ms. */
function part<T>(
  name: SystemInfoPart,
  p: Promise<T>,
  empty: T,
  ms: number,
  onError: (part: SystemInfoPart, e: Error) => void,
): Promise<T> {
  return withTimeout(p, ms, `no answer within ${ms} ms`).catch((e: unknown) => {
    onError(name, e instanceof Error ? e : new Error(String(e)));
    return empty;
  });
}

/** The whole report; never rejects. */
export async function systemInfo(opts: SystemInfoOptions = {}): Promise<SystemInfo> {
  const onError = opts.onPartError ?? (() => {});
  const ms = opts.partTimeoutMs ?? 2000;
  const warn = (message: string) => onError('disks', new Error(message));
  const [u, m, users, disks] = await Promise.all([
    part('uname', uname(), emptyUname, ms, onError),
    part('memory', memory(), emptyMemory, ms, onError),
    part('users', sharedReadUsers(opts.utmpPath ?? DEFAULT_UTMP_PATH), [], ms, onError),
    part(
      'disks',
      listDisks({ sysBlock: opts.sysBlock, mountInfo: opts.mountInfo, statfsTimeoutMs: opts.statfsTimeoutMs, warn }),
      [],
      ms,
      onError,
    ),
  ]);
  return { uname: u, long_bit: LONG_BIT, uptime: m.uptime, loadavg: m.loadavg, ram: m.ram, swap: m.swap, users, disks };
}

export { listDisks, mountOf, fsSizes, type Disk, type DiskOptions, type ListedDisk, type Sizes } from './disks';
export { mountPathText, parseMountInfo, type Mount, type MountPath } from '../mounts';
export { LONG_BIT, memory, uname, type Memory, type Uname } from './kernel';
export { coalesce, withTimeout } from './async';
export {
  UTMP_RECORD_SIZE,
  UtType,
  encodeUtmp,
  parseUtmp,
  readUsers,
  remoteUsers,
  type User,
  type UtmpRecord,
} from './utmp';
export { realTimeNs } from './kernel';
export { listBlockDevices, disksUnder, type BlockDevice, type BlockDeviceOptions, type DiskAddress } from './blockdev';
export { type CcwAddress, type DiskBusType, type PciAddress } from './blockdev';
export { listFilesystems, type FilesystemInfo, type FilesystemOptions, type Statvfs } from './fsinfo';
export { parseCpuStats, readCpuStats, CLK_TCK, type CpuStats } from './cpustats';
export { parseDiskstats, readDiskstats, type DiskCounters, type DiskStats } from './diskstats';
export { listMemoryBlocks, memoryBlockSize, type MemoryBlock } from './memory-blocks';
export { listVcpus, cpuIndex, type Vcpu } from './vcpus';
export { parseOsRelease, osReleaseValue, readOsInfo, OS_RELEASE_PATHS, type OsInfo } from './osinfo';
export { localTimezone, parsePosixTz, parseTzif, type Timezone, type TimezoneOptions } from './timezone';
export { loginUsers, readLoginUsers, type LoginUser } from './users';
export { EmptyAttributeError } from './sysfs';
export { parseSmartLog, readNvmeSmart, type NvmeSmart } from './nvme';
