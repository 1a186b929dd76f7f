// Time each CPU has spent in each state since boot, from /proc/stat's "cpuN" lines (proc(5)),
// in milliseconds: the kernel counts in clock ticks (USER_HZ).
import { promises as fs } from 'fs';
import { atoi, Scan } from './scan';

/** Milliseconds per state; the later states are absent on kernels that do not count them. */
export interface CpuStats {
  cpu: number;
  user: number;
  nice: number;
  system: number;
  idle: number;
  /** Since Linux 2.5.41. */
  iowait?: number;
  /** Since Linux 2.6.0 (with softirq). */
  irq?: number;
  softirq?: number;
  /** Since Linux 2.6.11. */
  steal?: number;
  /** Since Linux 2.6.24. */
  guest?: number;
  /** Since Linux 2.6.33. */
  guestnice?: number;
}

export const DEFAULT_PROC_STAT = '/proc/stat';

/**
 * USER_HZ, the unit of /proc/stat: sysconf(_SC_CLK_TCK), which is 100 on every architecture
 * Node runs on (only alpha and ia64 differed).
 */
export const CLK_TCK = 100;

/**
 * The "cpuN" lines of /proc/stat text, in file order (the "cpu" total is left out), read as
 * qemu-ga reads them: a cpu line with fewer than four figures ends the list there.
 */
export function parseCpuStats(text: string, clkTck = CLK_TCK): CpuStats[] {
  const out: CpuStats[] = [];
  const ms = (ticks: number) => Math.floor((ticks * 1000) / clkTck);
  for (const line of text.split('\n')) {
    const s = new Scan(line);
    const name = s.word();
    if (name === undefined || !name.startsWith('cpu') || name.length === 3) continue;
    const v: number[] = [];
    for (let i = 0; i < 10; i++) {
      const n = s.unsigned(64);
      if (n === undefined) break;
      v.push(n);
    }
    if (v.length < 4) break;
    const [user, nice, system, idle, iowait, irq, softirq, steal, guest, guestnice] = v.map(ms);
    const c: CpuStats = { cpu: atoi(name.slice(3)), user, nice, system, idle };
    if (v.length > 4) c.iowait = iowait;
    if (v.length > 5) {
      c.irq = irq;
      c.softirq = softirq;
    }
    if (v.length > 7) c.steal = steal;
    if (v.length > 8) c.guest = guest;
    if (v.length > 9) c.guestnice = guestnice;
    out.push(c);
  }
  return out;
}

/** Every CPU's times from /proc/stat (or `path`). */
export async function readCpuStats(path = DEFAULT_PROC_STAT): Promise<CpuStats[]> {
  return parseCpuStats(await fs.readFile(path, 'utf8'));
}
