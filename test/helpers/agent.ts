// Starting a real agent process for a test, and a minimal line client for talking to it.
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { suite, waitFor, type Suite } from './harness';
import { rawConnection } from './unix-socket';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(REPO, 'dist', 'lib', 'cli.js');

export interface Answer {
  return?: unknown;
  error?: { bufb64: string; code: number };
  tag: string;
}

/** The decoded message of an error answer. */
export function errorMessage(a: Answer): string {
  if (!a.error) throw new Error(`expected an error answer, got ${JSON.stringify(a)}`);
  return Buffer.from(a.error.bufb64, 'base64').toString('utf8');
}

/** CPU time a process has used: utime + stime, in clock ticks (1/100 s). */
export function cpuTicks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** A memory figure of a process from /proc/PID/status, in KiB ('VmRSS', 'VmHWM'). */
export function memKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

export function tmpDir(prefix = 'ember-ga-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A path of exactly `bytes` bytes (up to PATH_MAX's 4095) below `root`, whose directory is made
 * with mkdir of components of at most 255 bytes; the file's name is 100 to 200 bytes.
 */
export function longPath(root: string, bytes: number): string {
  let dir = root;
  for (;;) {
    const left = bytes - Buffer.byteLength(dir) - 1; // after the next '/'
    if (left <= 200) break;
    dir = path.join(dir, 'd'.repeat(Math.min(255, left - 101)));
    fs.mkdirSync(dir, { recursive: true }); // may be there from a longer path's
  }
  return path.join(dir, 'f'.repeat(bytes - Buffer.byteLength(dir) - 1));
}

/** The fds of pid whose target (what /proc/PID/fd/N links to) passes `keep`: /proc/PID/fd/N paths. */
function fdsWhere(pid: number, keep: (target: string) => boolean): string[] {
  return fs
    .readdirSync(`/proc/${pid}/fd`)
    .map((n) => `/proc/${pid}/fd/${n}`)
    .filter((fd) => {
      let target: string;
      try {
        target = fs.readlinkSync(fd);
      } catch {
        return false; // closed meanwhile (a pool thread's, say)
      }
      return keep(target);
    });
}

/** Files pid holds open in dir that have no name (O_TMPFILE): /proc/PID/fd/N paths. */
export function unnamed(pid: number, dir: string): string[] {
  const prefix = `${fs.realpathSync(dir)}/#`;
  return fdsWhere(pid, (target) => target.startsWith(prefix) && target.endsWith(' (deleted)'));
}

/** The fds pid holds open on `file`, also once it is deleted: /proc/PID/fd/N paths. */
export function fdsOn(pid: number, file: string): string[] {
  const real = path.join(fs.realpathSync(path.dirname(file)), path.basename(file));
  return fdsWhere(pid, (target) => target === real || target === `${real} (deleted)`);
}

/** A raw connection: send bytes, collect answer lines. */
export class LineClient {
  private buf = '';
  readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  private seq = 0;
  closed = false;

  constructor(readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => {});
  }

  static connect(socketPath: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(socketPath, () => resolve(new LineClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** Waits until at least n answer lines have arrived in total, returns all of them parsed. */
  async waitLines(n: number, ms = 10_000): Promise<Answer[]> {
    const end = Date.now() + ms;
    while (this.lines.length < n) {
      if (this.closed) throw new Error(`connection closed after ${this.lines.length} of ${n} answers`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`got ${this.lines.length} of ${n} answers in ${ms} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.lines.map((l) => JSON.parse(l) as Answer);
  }

  /** Sends one request with a fresh tag and waits for the answer with that tag. */
  async call(execute: string, args?: Record<string, unknown>, ms = 10_000): Promise<Answer> {
    const tag = `t${++this.seq}`;
    this.send(JSON.stringify(args === undefined ? { execute, tag } : { execute, arguments: args, tag }) + '\r\n');
    const end = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex((l) => (JSON.parse(l) as Answer).tag === tag);
      if (i >= 0) return JSON.parse(this.lines.splice(i, 1)[0]) as Answer;
      await this.waitLines(this.lines.length + 1, Math.max(1, end - Date.now()));
    }
  }

  /** call() that expects success and returns the value. */
  async ok(execute: string, args?: Record<string, unknown>, ms?: number): Promise<unknown> {
    const a = await this.call(execute, args, ms);
    if (a.error) throw new Error(`${execute} failed: ${errorMessage(a)} (code ${a.error.code})`);
    return a.return;
  }

  close(): void {
    this.sock.destroy();
  }
}

export interface RunningAgent {
  proc: ChildProcess;
  socket: string;
  dir: string;
  stderr: () => string;
  exited: Promise<number | null>;
  connect(): Promise<LineClient>;
  /** SIGTERM (then SIGKILL after 5 s) and cleanup; returns the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `ember-ga --listen unix:SOCKET ...extra` and waits until the socket accepts. */
export async function startAgent(extra: string[] = []): Promise<RunningAgent> {
  const dir = tmpDir();
  const socket = path.join(dir, 'ga.sock');
  return startAgentWith(['--listen', `unix:${socket}`, ...extra], socket, dir);
}

/** `wrap` runs the agent under a command, e.g. ['ip', 'netns', 'exec', NS] (which execs it). */
export async function startAgentWith(
  args: string[],
  socket: string,
  dir: string,
  wrap: string[] = [],
): Promise<RunningAgent> {
  const argv = [...wrap, process.execPath, CLI, ...args];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let dead = false;
  void exited.then(() => (dead = true));
  await waitFor(
    () => {
      if (dead) throw new Error(`agent exited early: ${err}`);
      return /serving on/.test(err);
    },
    10_000,
    'the agent to start',
  );
  const agent: RunningAgent = {
    proc,
    socket,
    dir,
    stderr: () => err,
    exited,
    connect: () => LineClient.connect(socket),
    stop: async () => {
      if (!dead) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
      return exited;
    },
  };
  return agent;
}

export interface AgentContext {
  agent: RunningAgent;
  c: LineClient;
  dir: string;
}

/** A suite whose tests share one agent (started with `flags`), a connection to it and a scratch directory; all cleaned up after. */
export function agentSuite(title: string, dirPrefix: string, flags: string[] = []): Suite<AgentContext> {
  const test = suite<AgentContext>(title, {} as AgentContext);
  test.before(async (ctx) => {
    ctx.agent = await startAgent(flags);
    ctx.c = await ctx.agent.connect();
    ctx.dir = tmpDir(dirPrefix);
  });
  test.after(async (ctx) => {
    ctx.c.close();
    await ctx.agent.stop();
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  });
  return test;
}

/** Expects an error answer with this code and a message matching re. */
export async function fails(
  c: LineClient,
  execute: string,
  args: Record<string, unknown>,
  code: number,
  re: RegExp,
): Promise<void> {
  const a = await c.call(execute, args);
  assert.ok(a.error, `${execute} ${JSON.stringify(args)} should fail, got ${JSON.stringify(a)}`);
  assert.is(a.error!.code, code, `${execute}: ${errorMessage(a)}`);
  assert.match(errorMessage(a), re);
}

/**
 * A copy of `sleep` at DIR/busy-sleep, running (so opening it for writing is ETXTBSY); the caller
 * kills `proc`.
 */
export async function runningExecutable(dir: string): Promise<{ exe: string; proc: ChildProcess }> {
  const exe = path.join(dir, 'busy-sleep');
  fs.copyFileSync(execFileSync('sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).trim(), exe);
  fs.chmodSync(exe, 0o755);
  const proc = spawn(exe, ['30'], { stdio: 'ignore' });
  try {
    await waitFor(
      () => fs.readFileSync(`/proc/${proc.pid}/stat`, 'utf8').includes('busy-sleep'),
      5000,
      'the executable to run',
    );
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  return { exe, proc };
}

/**
 * A new 16 MiB ext4 image MNT.img, loop-mounted on a new directory MNT. `umount MNT` detaches
 * the loop device too (mount -o loop sets autoclear). Needs root, mkfs.ext4 and mount.
 */
export function mountExt4Image(mnt: string): void {
  const img = `${mnt}.img`;
  execFileSync('truncate', ['-s', '16M', img]);
  execFileSync('mkfs.ext4', ['-q', img]);
  fs.mkdirSync(mnt);
  execFileSync('mount', ['-o', 'loop', img, mnt]);
}

/**
 * An ext4 image loop-mounted at DIR/NAME followed by the byte 0xff (a mount point whose name is
 * not UTF-8) for the time `run` takes; unmounted and removed after. mount(8) is given an ASCII
 * symlink to it (`alias`), as child process arguments are UTF-8. Needs root and mkfs.ext4.
 */
export async function withNonUtf8Ext4(
  dir: string,
  name: string,
  run: (m: { bytes: Buffer; alias: string }) => Promise<void>,
): Promise<void> {
  const bytes = Buffer.concat([Buffer.from(path.join(dir, name)), Buffer.from([0xff])]);
  const alias = path.join(dir, `${name}-ff`);
  const img = `${alias}.img`;
  execFileSync('truncate', ['-s', '16M', img]);
  execFileSync('mkfs.ext4', ['-q', img]);
  fs.mkdirSync(bytes);
  fs.symlinkSync(Buffer.concat([Buffer.from(name), Buffer.from([0xff])]), alias);
  try {
    execFileSync('mount', ['-o', 'loop', img, alias]);
    try {
      await run({ bytes, alias });
    } finally {
      unmount(alias);
    }
  } finally {
    fs.rmSync(alias);
    fs.rmdirSync(bytes);
    fs.rmSync(img);
  }
}

/** A tmpfs mounted with `options` on a new directory DIR/NAME for the time `run` takes; unmounted after. Needs root and mount. */
export async function withTmpfs(
  dir: string,
  name: string,
  options: string,
  run: (mnt: string) => Promise<void>,
): Promise<void> {
  const mnt = path.join(dir, name);
  fs.mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', ...(options ? ['-o', options] : []), 'tmpfs', mnt]);
  try {
    await run(mnt);
  } finally {
    unmount(mnt);
  }
}

/**
 * Unmounts mnt; lazily if still busy (an agent holding a file there after a failed assertion):
 * the assertion's error is the one to see, and no mount may outlive the test.
 */
function unmount(mnt: string): void {
  try {
    execFileSync('umount', [mnt], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', mnt]);
  }
}

/**
 * DIR/NAME as a FUSE filesystem (bindfs of DIR/NAME.src) for the time `run` takes: a filesystem
 * without O_TMPFILE (EOPNOTSUPP), as NFS and most FUSE ones are. Unmounted after. Needs root,
 * bindfs and the fuse module.
 */
export async function withFuse(dir: string, name: string, run: (mnt: string) => Promise<void>): Promise<void> {
  const mnt = path.join(dir, name);
  const src = path.join(dir, `${name}.src`);
  fs.mkdirSync(mnt, { recursive: true });
  fs.mkdirSync(src, { recursive: true });
  execFileSync('bindfs', [src, mnt]);
  try {
    await run(mnt);
  } finally {
    unmount(mnt); // before anything removes files: not through the mount
  }
}

/** `source` bind-mounted on `target` (both made by the caller) for the time `run` takes; unmounted after. Needs root and mount. */
export async function withBindMount(source: string, target: string, run: () => Promise<void>): Promise<void> {
  execFileSync('mount', ['--bind', source, target]);
  try {
    await run();
  } finally {
    execFileSync('umount', [target]);
  }
}

/**
 * An overlayfs with `xino=on` under DIR/overlay (lower layer on a tmpfs, upper on DIR's
 * filesystem), holding one file whose inode number carries the layer in its top bits: past
 * 2^53. `run` gets the merged directory, the file and its inode number (from stat(1)); both
 * mounts are gone afterwards. Needs root, mount and stat.
 */
export async function withXinoOverlay(
  dir: string,
  run: (merged: string, file: string, ino: bigint) => Promise<void>,
): Promise<void> {
  const o = path.join(dir, 'overlay');
  for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(o, d), { recursive: true });
  const merged = path.join(o, 'merged');
  await withTmpfs(o, 'lower', '', async (lower) => {
    fs.writeFileSync(path.join(lower, 'f'), 'x');
    execFileSync('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lower},upperdir=${o}/upper,workdir=${o}/work,xino=on`,
      merged,
    ]);
    try {
      const file = path.join(merged, 'f');
      const ino = BigInt(execFileSync('stat', ['-c', '%i', file], { encoding: 'utf8' }).trim());
      assert.ok(ino > BigInt(Number.MAX_SAFE_INTEGER), `inode ${ino} is not past 2^53: xino did not apply`);
      await run(merged, file, ino);
    } finally {
      execFileSync('umount', [merged]);
    }
  });
}

/**
 * A phoenix host on `socket` that opens a 128 MiB sparse file made in `dir`, asks for twenty 4 MiB
 * reads of it (~110 MB of answers, far past the agent's 16 MiB output budget) and reads none of
 * them: a raw connection with no 'data' listener. Destroy it when done.
 */
export async function stalledReader(socket: string, dir: string): Promise<net.Socket> {
  const big = path.join(dir, 'big');
  fs.closeSync(fs.openSync(big, 'w'));
  fs.truncateSync(big, 128 * 1024 * 1024);
  const sock = await rawConnection(socket);
  sock.write(JSON.stringify({ execute: 'file-open', arguments: { path: big } }) + '\n');
  let opened = '';
  await waitFor(() => (opened += String(sock.read() ?? '')).includes('\n'), 5_000, 'the file-open answer');
  const h = Number(/"return":(\d+)/.exec(opened)![1]);
  sock.write((JSON.stringify({ execute: 'file-read', arguments: { handle_id: h, size: 4194304 } }) + '\n').repeat(20));
  return sock;
}
