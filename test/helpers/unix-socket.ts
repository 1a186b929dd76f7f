// Shared by the tests' and the benchmarks' socat bridges (no test framework in here).
import * as fs from 'fs';

/**
 * True once a unix socket at `socketPath` is listening (/proc/net/unix: flag __SO_ACCEPTCON).
 * Its file appears at bind(), a moment before listen(): a connect in between is refused.
 */
export function unixListening(socketPath: string): boolean {
  return fs
    .readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .some((l) => l.endsWith(` ${socketPath}`) && (parseInt(l.split(/\s+/)[3], 16) & 0x10000) !== 0);
}
