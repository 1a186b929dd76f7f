// Helpers of the client and ember-ga-ctl tests: requirements on the agent's command set, a pty
// bridge standing in for QEMU's chardev pty, files of random data, md5 of local files.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'child_process';
import { createHash, randomFillSync } from 'crypto';
import { once } from 'events';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { allCommands } from '../../lib/protocols/phoenix/commands';
import { REPO } from './agent';
import { waitFor, type Requirement } from './harness';

export const CTL = path.join(REPO, 'dist', 'lib', 'client', 'ctl.js');

/** The built agent has this command (the file, freeze and net groups come from other branches). */
export function agentHas(name: string): Requirement {
  return () => (allCommands.some((c) => c.name === name) ? undefined : `needs the agent's ${name} command`);
}

/** A file of `size` random bytes; returns its md5. */
export function randomFile(file: string, size: number): string {
  const fd = fs.openSync(file, 'w');
  const hash = createHash('md5');
  const buf = Buffer.alloc(Math.min(size, 4 << 20));
  try {
    for (let left = size; left > 0;) {
      const n = Math.min(left, buf.length);
      randomFillSync(buf, 0, n);
      hash.update(buf.subarray(0, n));
      fs.writeSync(fd, buf, 0, n);
      left -= n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

export function md5Of(file: string): string {
  return createHash('md5').update(fs.readFileSync(file)).digest('hex');
}

/** Leftover temporary files of failed copies in a directory. */
export function partFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.ember-ga-part'));
}

/**
 * QEMU's chardev pty, simulated: socat holds the pty's master and bridges it to the agent's
 * unix socket; the host side (the client) opens the pty at `device`.
 */
export async function startPtyBridge(
  dir: string,
  agentSocket: string,
  name = 'pty',
): Promise<{ proc: ChildProcess; device: string; stop(): Promise<void> }> {
  const device = path.join(dir, name);
  const proc = spawn('socat', [`PTY,link=${device},raw,echo=0`, `UNIX-CONNECT:${agentSocket}`], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await waitFor(() => fs.existsSync(device), 5_000, 'socat to create the pty');
  return {
    proc,
    device,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill();
      await exited;
    },
  };
}

/**
 * A unix socket at `path` in front of the agent that keeps one connection to the agent across the
 * connections made to it (one at a time): the agent's host session outlives a client that
 * exits, so a file the client left open stays open there, whatever the agent does when a host
 * goes, and a test sees what the client itself closed. Answers for a client that left are dropped.
 */
export async function sessionKeeper(
  agentSocket: string,
  path: string,
): Promise<{ path: string; close(): Promise<void> }> {
  const upstream = net.createConnection(agentSocket);
  await once(upstream, 'connect');
  let current: net.Socket | undefined;
  upstream.on('data', (d: Buffer) => current?.write(d));
  const server = net.createServer((sock) => {
    current = sock;
    sock.on('data', (d: Buffer) => upstream.write(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      if (current === sock) current = undefined;
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    close: async () => {
      current?.destroy();
      upstream.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Runs ember-ga-ctl to completion (asynchronously, so an in-process stub agent can answer). */
export function ctl(
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<{ status: number | null; stdout: string; stderr: string; stdoutBuf: Buffer }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CTL, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeout ?? 20_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(t);
      const buf = Buffer.concat(out);
      resolve({ status, stdout: buf.toString('utf8'), stderr: err, stdoutBuf: buf });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(opts.input ?? '');
  });
}

export function tmux(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync('tmux', args, { encoding: 'utf8' });
}
