// Logical CPUs and whether each is online, from sysfs (/sys/devices/system/cpu/cpuN/online; a
// CPU without that file, typically cpu0, cannot be taken offline).
import { promises as fs } from 'fs';
import { constants } from 'os';
import { errnoOf, errorAbout } from '../errors';
import { mapLimit, readAttribute, readdirRaw } from './sysfs';

export interface Vcpu {
  logicalId: number;
  online: boolean;
  /** False when the kernel offers no way to take it offline (no `online` attribute). */
  canOffline: boolean;
}

export const DEFAULT_SYS_CPU = '/sys/devices/system/cpu';

/** The N of a "cpuN" entry (as sscanf's "cpu%ld" reads it), or undefined for other entries. */
export function cpuIndex(name: string): number | undefined {
  const m = /^cpu[ \t\n\v\f\r]*([+-]?\d+)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Every logical CPU, in the order the kernel lists the directory. Rejects with a SystemError
 * (opendir of `dir`; open of a CPU's directory or open/pread of its `online` attribute) or an
 * EmptyAttributeError.
 */
export async function listVcpus(dir = DEFAULT_SYS_CPU): Promise<Vcpu[]> {
  const ids = (await readdirRaw(dir)).map((e) => cpuIndex(e.name)).filter((id) => id !== undefined);
  return mapLimit(ids, 8, (id) => vcpu(dir, id));
}

async function vcpu(dir: string, logicalId: number): Promise<Vcpu> {
  const cpuDir = `${dir}/cpu${logicalId}`;
  try {
    const b = await readAttribute(`${cpuDir}/online`, 1);
    return { logicalId, online: b[0] !== 0x30, canOffline: true };
  } catch (e) {
    if (errnoOf(e) !== constants.errno.ENOENT) throw e;
  }
  // No `online` attribute: the CPU is there but cannot be unplugged, unless it went away.
  await fs.stat(cpuDir).catch((e: unknown) => Promise.reject(errorAbout(e, 'open', cpuDir)));
  return { logicalId, online: true, canOffline: false };
}
