// The pty bridge the benchmarks run through, the way the reference figures were taken:
// `socat PTY,link=DIR/pty,raw,echo=0 UNIX-LISTEN:DIR/host.sock` stands in for QEMU's
// virtio-serial chardev: the agent opens the pty with -p, the host connects to the socket.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { native, type NativePort } from '../../lib/native';
import { GuestAgent } from '../../lib/client/guest-agent';
import { unixListening } from '../../test/helpers/unix-socket';

export const REPO = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(REPO, 'dist', 'lib', 'cli.js');

/** Processes this run started; killed if it exits early (a crash, ^C) so none is left behind. */
const children = new Set<ChildProcess>();
process.once('exit', () => children.forEach((c) => c.kill('SIGKILL')));
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => process.exit(130));
}

export interface Bridge {
  dir: string;
  /** The guest side: the pty's slave, a symlink made by socat. */
  pty: string;
  /** The host side: a unix socket socat listens on (one connection). */
  hostSocket: string;
  close(): Promise<void>;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** SIGTERM, then SIGKILL if it has not exited within 3 s; resolves once it has exited. */
export function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/** socat's side of a bridge in `dir`: the pty (a symlink socat makes) and the host socket it listens on. */
export interface HostSide {
  pty: string;
  hostSocket: string;
  /** Exits when its one host connection closes (or is stopped). */
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts socat in `dir`, making DIR/pty and listening on DIR/host.sock; a second one in the
 * same dir (after the first exited) is the host side coming back: a new pty behind the same path.
 */
export async function startHostSide(dir: string): Promise<HostSide> {
  const pty = path.join(dir, 'pty');
  const hostSocket = path.join(dir, 'host.sock');
  fs.rmSync(hostSocket, { force: true });
  const socat = spawn('socat', [`PTY,link=${pty},raw,echo=0`, `UNIX-LISTEN:${hostSocket}`], { stdio: 'ignore' });
  children.add(socat);
  socat.once('exit', () => children.delete(socat));
  // Not installed, or it quit (a bad address): say so instead of an unhandled 'error' event
  // taking the whole run down, or a wait for a pty that will never appear.
  let failed: string | undefined;
  socat.once('error', (e: NodeJS.ErrnoException) => {
    failed =
      e.code === 'ENOENT'
        ? 'socat not found: install it (apt-get install socat; `bash scripts/test-deps.sh socat` does that as root)'
        : `socat: ${e.message}`;
  });
  socat.once('exit', (code, sig) => (failed ??= `socat exited (${sig ?? `status ${code}`}) before the bridge was up`));
  try {
    await until(
      () => failed !== undefined || (fs.existsSync(pty) && unixListening(hostSocket)),
      5000,
      'socat to create the pty and listen on the socket',
    );
    if (failed) throw new Error(failed);
  } catch (e) {
    await kill(socat);
    throw e;
  }
  return { pty, hostSocket, proc: socat, stop: () => kill(socat) };
}

export async function startBridge(): Promise<Bridge> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ember-ga-bench-'));
  let side: HostSide;
  try {
    side = await startHostSide(dir);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    pty: side.pty,
    hostSocket: side.hostSocket,
    close: async () => {
      await side.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A plain socket to the bridge's host side (socat serves one connection). */
export function connectHost(bridge: { hostSocket: string }): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(bridge.hostSocket, () => resolve(c));
    c.once('error', reject);
  });
}

/**
 * How to start an agent on the bridge's pty: ember-ga (the default), or another agent's
 * executable, such as the reference (referenceAgent()).
 */
export interface AgentCommand {
  /** "ember-ga", "reference": for messages. */
  name: string;
  file: string;
  args(pty: string): string[];
  env?: NodeJS.ProcessEnv;
  /** What its log prints once it serves; without it, the host's first ping (answered) is the check. */
  ready?: RegExp;
}

/** ember-ga from dist/. EMBER_BENCH_NODE_FLAGS adds node flags ("--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it). */
export const EMBER_GA: AgentCommand = {
  name: 'ember-ga',
  file: process.execPath,
  args: (pty) => [...(process.env.EMBER_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean), CLI, '-p', pty],
  ready: /serving on/,
};

/**
 * The zero-work stand-in guest speaking phoenix (stand-in-guest.ts), serving `file` for
 * downloads: an agent that does nothing, for the hosts that drive agents.
 */
export function standInGuest(file: string): AgentCommand {
  return {
    name: 'stand-in',
    file: process.execPath,
    args: (pty) => [path.join(__dirname, 'stand-in-guest.js'), pty, 'phoenix', file],
    ready: /^ready$/m,
  };
}

/** Where scripts/build-reference.sh puts phoenix-guest-agent 0.7.1. */
export const REFERENCE_BUILD = path.join(REPO, '.cache', 'reference', 'phoenix-guest-agent');

/**
 * The reference agent, phoenix-guest-agent 0.7.1, when built (scripts/build-reference.sh, or
 * EMBER_BENCH_REFERENCE=PATH): measured in the same run, through the same bridge and hosts.
 * It is built with a current Go, whose runtime preempts goroutines with signals; 0.7.1's
 * epoll loop treats the EINTR that causes as fatal (its Go did not do that), so preemption by
 * signal is off (GODEBUG=asyncpreemptoff=1), as in the Go it was released with.
 */
export function referenceAgent(): AgentCommand | undefined {
  const file = process.env.EMBER_BENCH_REFERENCE || REFERENCE_BUILD;
  if (!fs.existsSync(file)) {
    if (process.env.EMBER_BENCH_REFERENCE) throw new Error(`EMBER_BENCH_REFERENCE: ${file} does not exist`);
    return undefined;
  }
  return { name: 'reference', file, args: (pty) => ['-p', pty], env: { ...process.env, GODEBUG: 'asyncpreemptoff=1' } };
}

export interface BridgedAgent {
  bridge: Bridge;
  pid: number;
  client: GuestAgent;
  stderr(): string;
  stop(): Promise<void>;
}

/** socat bridge + the agent on its pty (ember-ga unless told) + a connected GuestAgent (the project's client). */
export async function startBridgedAgent(cmd: AgentCommand = EMBER_GA): Promise<BridgedAgent> {
  const { bridge, proc, err } = await spawnBridgedAgent(cmd);
  const stop = async () => {
    await kill(proc);
    await bridge.close();
  };
  try {
    const client = await GuestAgent.connect({ socket: bridge.hostSocket, timeout: 120_000 });
    await client.ping({ timeout: 10_000 }).catch(async (e) => {
      await client.close();
      throw new Error(`${cmd.name} did not answer a ping: ${(e as Error).message}; its log: ${err()}`);
    });
    return {
      bridge,
      pid: proc.pid!,
      client,
      stderr: err,
      stop: async () => {
        await client.close();
        await stop();
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** startBridgedAgent() with a plain socket to the bridge instead of the client, for a host of one's own. */
export async function startBareBridgedAgent(
  cmd: AgentCommand = EMBER_GA,
): Promise<{ sock: net.Socket; pid: number; stop(): Promise<void> }> {
  const { bridge, proc, err } = await spawnBridgedAgent(cmd);
  let sock: net.Socket | undefined;
  const stop = async () => {
    sock?.destroy();
    await kill(proc);
    await bridge.close();
  };
  try {
    sock = await connectHost(bridge);
    if (!cmd.ready) await rawPing(sock, cmd, err);
    return { sock, pid: proc.pid!, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One ping over a plain socket, its answer read off before the socket is handed on. */
function rawPing(sock: net.Socket, cmd: AgentCommand, log: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    const t = setTimeout(() => finish(new Error(`${cmd.name} did not answer a ping; its log: ${log()}`)), 10_000);
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\n'))
        finish(got.includes('"return"') ? undefined : new Error(`${cmd.name} answered a ping with ${got.trim()}`));
    };
    const finish = (e?: Error) => {
      clearTimeout(t);
      sock.off('data', onData);
      if (e) reject(e);
      else resolve();
    };
    sock.on('data', onData);
    sock.write('{"execute":"ping","tag":"bench"}\n');
  });
}

/** A bridge and the agent on its pty, nothing connected to the host side yet. */
export async function spawnBridgedAgent(
  cmd: AgentCommand,
): Promise<{ bridge: Bridge; proc: ChildProcess; err: () => string }> {
  const bridge = await startBridge();
  // The log goes to a file, not a pipe: a pipe would break if this process died first.
  const logPath = path.join(bridge.dir, 'agent.log');
  const log = fs.openSync(logPath, 'w');
  const proc = spawn(cmd.file, cmd.args(bridge.pty), { stdio: ['ignore', log, log], env: cmd.env ?? process.env });
  fs.closeSync(log);
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const err = () => fs.readFileSync(logPath, 'utf8');
  let spawnError: Error | undefined;
  proc.once('error', (e) => (spawnError = e));
  try {
    await until(
      () =>
        spawnError !== undefined ||
        proc.exitCode !== null ||
        (cmd.ready ? cmd.ready.test(err()) : proc.pid !== undefined),
      10_000,
      `${cmd.name} to start`,
    );
    if (spawnError) throw new Error(`${cmd.name} (${cmd.file}): ${spawnError.message}`);
    if (proc.exitCode !== null) throw new Error(`${cmd.name} exited: ${err()}`);
  } catch (e) {
    await kill(proc);
    await bridge.close();
    throw e;
  }
  return { bridge, proc, err };
}

export interface RawThroughput {
  /** Guest to host (what a download moves), MiB/s. */
  down: number;
  /** Host to guest (what an upload moves), MiB/s. */
  up: number;
}

/**
 * The bridge's own throughput in each direction, with the agent's port driver on the guest side
 * and a plain socket on the host side: the ceiling any agent could reach. On a shared machine,
 * take it more than once, next to the measurements it is the baseline of, and keep the best.
 */
export async function bridgeThroughput(bytes = 64 * 1024 * 1024): Promise<RawThroughput> {
  return { down: await rawOneWay('down', bytes), up: await rawOneWay('up', bytes) };
}

async function rawOneWay(dir: 'down' | 'up', bytes: number): Promise<number> {
  const bridge = await startBridge();
  let port: NativePort | undefined;
  let sock: net.Socket | undefined;
  try {
    let received = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const drains: (() => void)[] = [];
    port = new native.Port(
      bridge.pty,
      (type, _arg, start, end) => {
        if (type === 'data' && dir === 'up') {
          received += end! - start!;
          if (received >= bytes) done();
        } else if (type === 'drain') {
          drains.splice(0).forEach((f) => f());
        }
      },
      { views: true },
    );
    sock = await connectHost(bridge);
    if (dir === 'down') {
      sock.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= bytes) done();
      });
    }
    await new Promise((r) => setTimeout(r, 50));
    const chunk = Buffer.alloc(256 * 1024, 0x41);
    const t0 = process.hrtime.bigint();
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (dir === 'down') {
        if (port.write(chunk) > 4 * chunk.length) await new Promise<void>((r) => drains.push(r));
      } else if (!sock.write(chunk)) {
        await new Promise((r) => sock!.once('drain', r));
      }
    }
    await finished;
    return bytes / (1024 * 1024) / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    sock?.destroy();
    port?.close();
    await bridge.close();
  }
}

/** A line as long as the base64 of `chunk` bytes, newline included: a file-read answer's or a file-write request's size. */
function base64LineBytes(chunk: number): number {
  return Math.ceil(chunk / 3) * 4 + 1;
}

/**
 * The bridge's request/response ceiling, with no agent: a stand-in guest in a process of its own
 * (as the agent is) answers each request line at once. 'down' (a download): short requests,
 * answers as long as the base64 of `chunk` bytes. 'up' (an upload): requests that long, short
 * answers. `depth` requests in flight. Returns the payload rate (chunk bytes per exchange),
 * MiB/s. Traffic in both directions at once costs the pty bridge throughput, which this shows
 * apart from anything an agent does.
 */
export async function bridgeRequestResponse(
  chunk: number,
  depth: number,
  bytes: number,
  dir: 'down' | 'up' = 'down',
): Promise<number> {
  const bridge = await startBridge();
  const guest = spawn(
    process.execPath,
    [path.join(__dirname, 'stand-in-guest.js'), bridge.pty, String(dir === 'down' ? base64LineBytes(chunk) : 16)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(guest);
  guest.once('exit', () => children.delete(guest));
  let sock: net.Socket | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      guest.stdout!.once('data', () => resolve());
      guest.once('exit', (code) => reject(new Error(`stand-in guest exited (${code})`)));
    });
    const request = dir === 'down' ? Buffer.from('r\n') : Buffer.alloc(base64LineBytes(chunk), 0x41);
    request[request.length - 1] = 0x0a;
    const s = await connectHost(bridge);
    sock = s;
    const total = Math.ceil(bytes / chunk);
    let sent = 0;
    let got = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    s.on('data', (d: Buffer) => {
      for (let i = d.indexOf(0x0a); i >= 0; i = d.indexOf(0x0a, i + 1)) {
        if (++got >= total) done();
        else if (sent < total) {
          sent++;
          s.write(request);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = process.hrtime.bigint();
    for (; sent < Math.min(depth, total); sent++) s.write(request);
    await finished;
    return (total * chunk) / (1024 * 1024) / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    sock?.destroy();
    await kill(guest);
    await bridge.close();
  }
}
