// The kernel's own figures, from the addon (native/sysinfo.cc): uname(2), sysinfo(2), LONG_BIT.
import { toSystemError } from '../errors';
import { native } from '../native';

export interface Uname {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  /** The NIS domain name ("(none)" when unset, as the kernel gives it). */
  domain: string;
}

export interface Memory {
  /** Seconds since boot (whole seconds, rounded up, as sysinfo(2) gives it). */
  uptime: number;
  /** The kernel's fixed-point load averages divided by 65536, e.g. 0.0185546875. */
  loadavg: { '1m': number; '5m': number; '15m': number };
  /** KiB, the numbers `free -k` shows (total, free) and its buffers (`free -w -k`). */
  ram: { total: number; free: number; buffer: number };
  swap: { total: number; free: number };
}

/** What `getconf LONG_BIT` prints: the width of a C long in this userspace (64 or 32). */
export const LONG_BIT: number = native.LONG_BIT;

/** uname(2). */
export async function uname(): Promise<Uname> {
  const u = await native.uname().catch((e) => Promise.reject(toSystemError(e)));
  return { sysname: u.sysname, nodename: u.nodename, release: u.release, version: u.version, machine: u.machine, domain: u.domainname };
}

/** sysinfo(2): uptime, load averages, RAM and swap. */
export async function memory(): Promise<Memory> {
  const s = await native.sysinfo().catch((e) => Promise.reject(toSystemError(e)));
  return {
    uptime: s.uptime,
    loadavg: { '1m': s.loads[0], '5m': s.loads[1], '15m': s.loads[2] },
    ram: { total: s.totalram, free: s.freeram, buffer: s.bufferram },
    swap: { total: s.totalswap, free: s.freeswap },
  };
}
