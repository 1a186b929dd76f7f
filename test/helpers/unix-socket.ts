// Shared by the tests' and the benchmarks' socat bridges (no test framework in here).
import * as fs from 'fs';
import * as net from 'net';

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

/**
 * A connection to the unix socket at `socketPath`, once connected: raw (no 'data' listener, so
 * it reads nothing unless asked), its errors ignored (a host the agent may cut off). Destroy it.
 */
export async function rawConnection(socketPath: string): Promise<net.Socket> {
  const s = net.createConnection(socketPath);
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  return s;
}
