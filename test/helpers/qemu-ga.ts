// Conformance with the real thing: qemu-guest-agent 7.2 (Debian's qemu-guest-agent package) and
// ember-ga's qemu-ga front-end, each on its own unix socket, sent the same bytes.
//
// Never send guest-fsfreeze-*, guest-shutdown, guest-suspend-*, guest-set-time, guest-set-vcpus,
// guest-set-memory-blocks or guest-set-user-password to either on this machine: they act on the
// machine itself (freeze tests use ember-ga with a fixture mount table; the rest run in the
// QEMU guest of `npm run test:vm`).
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { command, waitFor, type Requirement } from './harness';
import { startAgent, tmpDir, type RunningAgent } from './agent';

/** Skips (fails under CI) without Debian's qemu-ga. */
export const realQemuGa: Requirement = command('qemu-ga');

/** An answer as qemu-ga sends it. */
export interface QmpAnswer {
  return?: unknown;
  error?: { class: string; desc: string };
  id?: unknown;
}

/**
 * A client of one qemu-ga socket: sends bytes, and reads answers, each a JSON value ending in a
 * newline (optionally after guest-sync-delimited's 0xFF).
 */
export class QmpClient {
  private buf = Buffer.alloc(0);
  /** Chunks received since the last newline: joined once one ends a line (a 64 MiB answer comes in thousands). */
  private pending: Buffer[] = [];
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.pending.push(d);
      if (d.indexOf(0x0a) < 0) return;
      this.buf = Buffer.concat([this.buf, ...this.pending.splice(0)]);
      for (const w of this.waiters.splice(0)) w();
    });
    sock.on('error', () => {}); // ECONNRESET from an agent killed by a test: 'close' follows
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static connect(socket: string): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socket, () => resolve(new QmpClient(s)));
      s.once('error', reject);
    });
  }

  send(bytes: string | Buffer): void {
    this.sock.write(bytes);
  }

  /** The next answer line's raw bytes (newline included), within ms. */
  async rawAnswer(ms = 10_000): Promise<Buffer> {
    const deadline = Date.now() + ms;
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0) {
        const line = this.buf.subarray(0, nl + 1);
        this.buf = this.buf.subarray(nl + 1);
        return line;
      }
      if (this.closed) throw new Error('the agent closed the connection');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer within ${ms} ms (have ${JSON.stringify(this.buf.toString())})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Bytes that arrive within ms (for checking that nothing does). */
  async drain(ms: number): Promise<Buffer> {
    await new Promise((r) => setTimeout(r, ms));
    const b = Buffer.concat([this.buf, ...this.pending.splice(0)]);
    this.buf = Buffer.alloc(0);
    return b;
  }

  async answer(ms?: number): Promise<QmpAnswer> {
    const raw = await this.rawAnswer(ms);
    return JSON.parse(raw.subarray(raw[0] === 0xff ? 1 : 0).toString('utf8')) as QmpAnswer;
  }

  /** One request, its answer. */
  async call(execute: string, args?: Record<string, unknown>, ms?: number): Promise<QmpAnswer> {
    this.send(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    return this.answer(ms);
  }

  /** The `return` of a request that must succeed. */
  async ok<T = unknown>(execute: string, args?: Record<string, unknown>, ms?: number): Promise<T> {
    const a = await this.call(execute, args, ms);
    if (a.error) throw new Error(`${execute} failed: ${a.error.class}: ${a.error.desc}`);
    return a.return as T;
  }

  close(): void {
    this.sock.destroy();
  }
}

export interface RealQemuGa {
  proc: ChildProcess;
  socket: string;
  dir: string;
  connect(): Promise<QmpClient>;
  stop(): Promise<void>;
}

/**
 * Starts qemu-ga 7.2 on a unix socket of its own (its state dir and pidfile in a temporary dir);
 * `wrap` runs it under a command, e.g. ['ip', 'netns', 'exec', NS].
 */
export async function startRealQemuGa(extra: string[] = [], wrap: string[] = []): Promise<RealQemuGa> {
  const dir = tmpDir('ember-ga-qemu-ga-');
  const socket = path.join(dir, 'qga.sock');
  fs.mkdirSync(path.join(dir, 'state'));
  const proc = spawn(
    wrap[0] ?? 'qemu-ga',
    [
      ...(wrap.length ? [...wrap.slice(1), 'qemu-ga'] : []),
      '-m',
      'unix-listen',
      '-p',
      socket,
      '-t',
      path.join(dir, 'state'),
      '-f',
      path.join(dir, 'qga.pid'),
      '-l',
      path.join(dir, 'qga.log'),
      ...extra,
    ],
    {
      stdio: 'ignore',
    },
  );
  // Never what keeps the test process alive, and never left behind it: a test that fails
  // before its stop() would otherwise leave qemu-ga running and the runner waiting on it.
  proc.unref();
  const killOnExit = () => proc.kill('SIGKILL');
  process.once('exit', killOnExit);
  let dead = false;
  const exited = new Promise<void>((r) =>
    proc.once('exit', () => {
      dead = true;
      r();
    }),
  );
  await waitFor(
    () => {
      if (dead) throw new Error(`qemu-ga exited: ${readLog(dir)}`);
      return fs.existsSync(socket);
    },
    10_000,
    'qemu-ga to listen',
  );
  return {
    proc,
    socket,
    dir,
    connect: () => QmpClient.connect(socket),
    stop: async () => {
      process.removeListener('exit', killOnExit);
      if (!dead) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readLog(dir: string): string {
  try {
    return fs.readFileSync(path.join(dir, 'qga.log'), 'utf8');
  } catch {
    return '';
  }
}

/** ember-ga serving qemu-ga's protocol on a unix socket. */
export async function startEmberQemuGa(extra: string[] = []): Promise<RunningAgent & { qmp(): Promise<QmpClient> }> {
  const agent = await startAgent(['--protocol', 'qemu-ga', ...extra]);
  return Object.assign(agent, { qmp: () => QmpClient.connect(agent.socket) });
}

/** Both agents, a client of each. */
export interface Pair {
  real: RealQemuGa;
  ember: RunningAgent;
  q: QmpClient;
  e: QmpClient;
}

export async function startPair(emberFlags: string[] = [], qemuGaFlags: string[] = []): Promise<Pair> {
  const [real, ember] = await Promise.all([startRealQemuGa(qemuGaFlags), startEmberQemuGa(emberFlags)]);
  const [q, e] = await Promise.all([real.connect(), ember.qmp()]);
  return { real, ember, q, e };
}

export async function stopPair(p: Pair | undefined): Promise<void> {
  if (!p) return;
  p.q.close();
  p.e.close();
  await Promise.all([p.real.stop(), p.ember.stop()]);
}

/** The same bytes to both; their next answers' bytes. */
export async function both(p: Pair, bytes: string | Buffer): Promise<{ real: Buffer; ember: Buffer }> {
  p.q.send(bytes);
  p.e.send(bytes);
  const [real, ember] = await Promise.all([p.q.rawAnswer(), p.e.rawAnswer()]);
  return { real, ember };
}

/**
 * Differences between two answers, field by field: paths (`return.0.name`) where they differ,
 * except those `ignore` matches (values that differ between any two runs: a time, a pid).
 */
export function diffAnswers(real: unknown, ember: unknown, ignore: RegExp[] = [], at = ''): string[] {
  if (ignore.some((re) => re.test(at))) return [];
  if (real === null || ember === null || typeof real !== 'object' || typeof ember !== 'object') {
    return Object.is(real, ember)
      ? []
      : [`${at || '.'}: qemu-ga ${JSON.stringify(real)}, ember-ga ${JSON.stringify(ember)}`];
  }
  if (Array.isArray(real) !== Array.isArray(ember)) return [`${at}: array on one side only`];
  const out: string[] = [];
  const keys = new Set([...Object.keys(real), ...Object.keys(ember)]);
  for (const k of keys) {
    const sub = at ? `${at}.${k}` : k;
    if (!(k in real)) out.push(`${sub}: only ember-ga has it`);
    else if (!(k in ember)) out.push(`${sub}: only qemu-ga has it`);
    else out.push(...diffAnswers((real as never)[k], (ember as never)[k], ignore, sub));
  }
  return out;
}
