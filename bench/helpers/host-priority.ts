// The bridge's host side (socat, and the bench process that times the answers) stands in for
// QEMU and a host's client, which run on the host's CPUs. On the bench machine they share the
// guest's CPUs with every other process, and their waits for a CPU land on the clock as if the
// guest were slow; run at a raised priority, they stand in for a host that is not the guest.
import * as os from 'os';

/**
 * Sets this thread to `nice` (Linux's nice is per thread: the event loop's, which reads the
 * answers and starts the host side's processes; a child takes its parent thread's). Returns
 * what puts the thread back, or undefined when nothing changed (nice 0 asked for, or not
 * allowed: raising needs root or CAP_SYS_NICE). Processes started before keep their priority.
 */
export function raiseThisThread(nice: number): (() => void) | undefined {
  const before = os.getPriority();
  if (nice === 0 || nice === before) return undefined;
  try {
    os.setPriority(nice);
  } catch {
    return undefined;
  }
  return () => os.setPriority(before);
}
