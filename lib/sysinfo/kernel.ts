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
  return {
    sysname: u.sysname,
    nodename: u.nodename,
    release: u.release,
    version: u.version,
    machine: u.machine,
    domain: u.domainname,
  };
}

/** sysinfo(2)'s loads are fixed point: 1 << SI_LOAD_SHIFT is 1.0. */
const LOAD_SCALE = 1 << 16;

/** sysinfo(2): uptime, load averages, RAM and swap. */
export async function memory(): Promise<Memory> {
  const s = await native.sysinfo().catch((e) => Promise.reject(toSystemError(e)));
  const unit = s.mem_unit || 1;
  // Whole KiB, rounded down: exact, since sizes in bytes stay far below 2^53.
  const kib = (units: number) => Math.floor((units * unit) / 1024);
  const load = (fixed: number) => fixed / LOAD_SCALE;
  return {
    uptime: Math.max(0, s.uptime),
    loadavg: { '1m': load(s.loads[0]), '5m': load(s.loads[1]), '15m': load(s.loads[2]) },
    ram: { total: kib(s.totalram), free: kib(s.freeram), buffer: kib(s.bufferram) },
    swap: { total: kib(s.totalswap), free: kib(s.freeswap) },
  };
}

/** The wall clock (CLOCK_REALTIME) in nanoseconds since the epoch. */
export function realTimeNs(): bigint {
  const [s, ns] = native.realTime();
  return BigInt(s) * 1_000_000_000n + BigInt(ns);
}
