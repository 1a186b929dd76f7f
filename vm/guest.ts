// The test guest: its image (built by build-image.sh), its disk, and the QEMU process. QEMU is
// killed by its PID on every way out of the host process (normal end, exception, signal).
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

export const REPO = path.resolve(__dirname, '..', '..');
export const GUEST_MAC = '52:54:00:12:34:56';
export const DISK_MIB = 96;
export const SEED_MIB = 16;

export interface Image {
  kernel: string;
  initrd: string;
}

/**
 * Runs a vm/ script in its own process group, killed whole when it overruns `timeoutMs` or the
 * host process exits; resolves with its stdout.
 */
function runScript(script: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(REPO, 'vm', script), ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    process.on('exit', killGroup);
    const timer = setTimeout(() => {
      killGroup();
      reject(new Error(`${script} took over ${timeoutMs / 1000} s`));
    }, timeoutMs);
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => (out += d));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      process.off('exit', killGroup);
      if (code !== 0) return reject(new Error(`${script} exited with ${code ?? signal}`));
      resolve(out);
    });
  });
}

const printed = (out: string, k: string) => new RegExp(`^${k}=(.+)$`, 'm').exec(out)?.[1];

/** Runs vm/build-image.sh (installs the host tools when missing; rebuilds only on a key change). */
export async function buildImage(cacheDir: string, timeoutMs: number): Promise<Image> {
  const out = await runScript('build-image.sh', [cacheDir], timeoutMs);
  const kernel = printed(out, 'kernel');
  const initrd = printed(out, 'initrd');
  if (!kernel || !initrd) throw new Error(`build-image.sh printed no kernel=/initrd=: ${out}`);
  return { kernel, initrd };
}

/** The same image with vm/systemd-layer.sh's layer: Debian's systemd and udev, ember-ga's unit and rule. */
export async function buildSystemdImage(cacheDir: string, image: Image, timeoutMs: number): Promise<Image> {
  const out = await runScript('systemd-layer.sh', [cacheDir, image.initrd], timeoutMs);
  const initrd = printed(out, 'initrd');
  if (!initrd) throw new Error(`systemd-layer.sh printed no initrd=: ${out}`);
  return { kernel: image.kernel, initrd };
}

/**
 * A fresh ext4 disk image with one seed file of random bytes (for the guest-to-host copy),
 * made with mkfs.ext4 -d so nothing has to be mounted on the host. Returns the seed's md5.
 */
export function makeDisk(dir: string): { path: string; seedMd5: string; seed: string } {
  const seedDir = path.join(dir, 'seed');
  fs.mkdirSync(seedDir, { recursive: true });
  const seed = path.join(seedDir, 'down.bin');
  const data = crypto.randomBytes(SEED_MIB << 20);
  fs.writeFileSync(seed, data);
  const disk = path.join(dir, 'disk.img');
  fs.rmSync(disk, { force: true });
  execFileSync('truncate', ['-s', `${DISK_MIB}M`, disk]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'emberdata', '-d', seedDir, disk], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { path: disk, seed, seedMd5: crypto.createHash('md5').update(data).digest('hex') };
}

export class Qemu {
  readonly proc: ChildProcess;
  readonly socket: string;
  /** The chardev socket of the second port, org.qemu.guest_agent.0 (the qemu-ga protocol). */
  readonly qgaSocket: string;
  /** QEMU's own QMP monitor (system_wakeup, query-status, its events). */
  readonly monitorSocket: string;
  readonly consoleLog: string;
  readonly startedAt = Date.now();
  private exitCode: number | null | undefined;
  private console = '';

  /**
   * `consoleLog`: where the guest's serial console is written (kept after the run).
   * `initEnv`: name=value pairs for /init, passed on the kernel command line.
   * `opts.append`: more of the kernel command line (the systemd guest's rdinit=...);
   * `opts.memMiB`: guest memory (512 MiB unless told); `opts.maxMemMiB`: room for memory the
   * host hot-plugs through the monitor (two DIMM slots); `opts.smp`: vCPUs (1 unless told), run
   * by one host thread (`thread=single`) however many there are: the machine is shared;
   * `opts.reboot`: a guest reboot restarts the guest (else QEMU exits, as for a power-off).
   */
  constructor(
    image: Image,
    disk: string,
    dir: string,
    consoleLog: string,
    initEnv: Record<string, string | number> = {},
    opts: { append?: string[]; memMiB?: number; maxMemMiB?: number; smp?: number; reboot?: boolean } = {},
  ) {
    this.socket = path.join(dir, 'ga.sock');
    this.qgaSocket = path.join(dir, 'qga.sock');
    this.monitorSocket = path.join(dir, 'qmp.sock');
    this.consoleLog = consoleLog;
    for (const s of [this.socket, this.qgaSocket, this.monitorSocket]) fs.rmSync(s, { force: true });
    const args = [
      '-accel',
      'tcg,thread=single',
      '-cpu',
      'max',
      '-m',
      `${opts.memMiB ?? 512}${opts.maxMemMiB ? `,slots=2,maxmem=${opts.maxMemMiB}M` : ''}`,
      '-smp',
      String(opts.smp ?? 1),
      '-display',
      'none',
      ...(opts.reboot ? [] : ['-no-reboot']),
      '-nodefaults',
      '-serial',
      'stdio',
      '-monitor',
      'none',
      '-qmp',
      `unix:${this.monitorSocket},server=on,wait=off`,
      '-kernel',
      image.kernel,
      '-initrd',
      image.initrd,
      '-append',
      [
        'console=ttyS0 panic=-1 quiet',
        ...Object.entries(initEnv).map(([k, v]) => `${k}=${v}`),
        ...(opts.append ?? []),
      ].join(' '),
      '-device',
      'virtio-serial-pci',
      '-chardev',
      `socket,id=ga,path=${this.socket},server=on,wait=off`,
      '-device',
      'virtserialport,chardev=ga,name=org.guest-agent.0',
      // libvirt's port, on the same bus: the agent in the guest serves both
      '-chardev',
      `socket,id=qga,path=${this.qgaSocket},server=on,wait=off`,
      '-device',
      'virtserialport,chardev=qga,name=org.qemu.guest_agent.0',
      '-drive',
      // discard=unmap: a guest-fstrim punches holes in the image, which the host sees
      `file=${disk},format=raw,if=none,id=d0,discard=unmap`,
      '-device',
      'virtio-blk-pci,drive=d0',
      // a NIC connected to nothing: a hub port with no other member, so no packet leaves
      '-netdev',
      'hubport,id=n0,hubid=0',
      '-device',
      `virtio-net-pci,netdev=n0,mac=${GUEST_MAC}`,
    ];
    this.proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = fs.createWriteStream(this.consoleLog);
    const collect = (d: Buffer) => {
      log.write(d);
      this.console += d.toString('utf8');
      if (this.console.length > 1 << 20) this.console = this.console.slice(-65536);
    };
    this.proc.stdout!.on('data', collect);
    this.proc.stderr!.on('data', collect);
    this.proc.once('exit', (code) => {
      this.exitCode = code;
      log.end();
    });
    this.proc.once('error', (e) => {
      // not started at all (no qemu-system-x86_64): report it like an exit
      collect(Buffer.from(`cannot run qemu-system-x86_64: ${e.message}\n`));
      this.exitCode ??= -1;
    });
    Qemu.live.add(this);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get exited(): boolean {
    return this.exitCode !== undefined;
  }

  /** QEMU's exit status once it exited (null when a signal ended it). */
  get exitStatus(): number | null | undefined {
    return this.exitCode;
  }

  consoleText(): string {
    return this.console;
  }

  /** Host CPU seconds QEMU has used so far (utime + stime from /proc/PID/stat). */
  cpuSeconds(): number {
    const stat = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
    return ticks / clockTicks();
  }

  /** Connects to the chardev socket QEMU serves (waits for it to appear). */
  async connect(deadlineMs: number): Promise<net.Socket> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      if (this.exited) throw new Error(`QEMU exited (${this.exitCode}):\n${this.console.slice(-2000)}`);
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(this.socket, () => resolve(s));
          s.once('error', reject);
        });
      } catch (e) {
        if (Date.now() > end) throw e;
        await sleep(100);
      }
    }
  }

  kill(): void {
    Qemu.live.delete(this);
    if (!this.exited) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** kill(), then waits for the process to be gone (it holds a lock on the disk image until then). */
  async killAndWait(ms = 10_000): Promise<void> {
    this.kill();
    const end = Date.now() + ms;
    while (!this.exited && Date.now() < end) await sleep(50);
    if (!this.exited) throw new Error(`QEMU (pid ${this.pid}) still running ${ms} ms after SIGKILL`);
  }

  /** Every QEMU still running; killed by killAll() on any exit path. */
  static live = new Set<Qemu>();

  static killAll(): void {
    for (const q of [...Qemu.live]) q.kill();
  }
}

/** An event QEMU's monitor sent (SUSPEND, WAKEUP, SHUTDOWN...), with when it arrived. */
export interface MonitorEvent {
  event: string;
  data?: Record<string, unknown>;
  at: number;
}

/**
 * A client of QEMU's own QMP monitor (not the guest agent): `execute` a command (answers matched
 * by id), and every event kept in `events`, in order.
 */
export class Monitor {
  readonly events: MonitorEvent[] = [];
  private buf = '';
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.onMessage(JSON.parse(line) as Record<string, unknown>);
      }
    });
    sock.on('close', () => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new Error('QEMU closed its monitor'));
      this.pending.clear();
    });
    sock.on('error', () => {}); // 'close' follows
  }

  private onMessage(m: Record<string, unknown>): void {
    if (typeof m.event === 'string') {
      this.events.push({ event: m.event, data: m.data as Record<string, unknown> | undefined, at: Date.now() });
    } else if ('QMP' in m) {
      // the greeting
    } else if (typeof m.id === 'number' && this.pending.has(m.id)) {
      const p = this.pending.get(m.id)!;
      this.pending.delete(m.id);
      const err = m.error as { class: string; desc: string } | undefined;
      if (err) p.reject(new Error(`${err.class}: ${err.desc}`));
      else p.resolve(m.return);
    }
  }

  /** Connects to the monitor socket of `qemu` (waiting for it to appear) and leaves capability negotiation. */
  static async connect(qemu: Qemu, ms = 20_000): Promise<Monitor> {
    const end = Date.now() + ms;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(qemu.monitorSocket, () => resolve(s));
          s.once('error', reject);
        });
        const m = new Monitor(sock);
        await m.execute('qmp_capabilities');
        return m;
      } catch (e) {
        if (qemu.exited || Date.now() > end) throw e;
        await sleep(100);
      }
    }
  }

  /** Runs a monitor command: its `return`; rejects with the class and desc of an error. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, ms = 15_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.closed) return reject(new Error('QEMU closed its monitor'));
      const id = this.nextId++;
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to ${command} from QEMU's monitor within ${ms} ms`));
      }, ms);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    });
  }

  /** The first event named `name` at index `from` or later of `events`, waited for up to `ms`. */
  async waitEvent(name: string, from: number, ms: number): Promise<MonitorEvent> {
    const end = Date.now() + ms;
    for (;;) {
      const e = this.events.slice(from).find((x) => x.event === name);
      if (e) return e;
      if (this.closed) throw new Error(`QEMU closed its monitor before a ${name} event`);
      if (Date.now() > end) throw new Error(`no ${name} event from QEMU within ${ms} ms`);
      await sleep(50);
    }
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }
}

let clkTck: number | undefined;
function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Directories removed on any exit path, after QEMU is killed. */
export const scratchDirs = new Set<string>();

function cleanUp(): void {
  Qemu.killAll();
  for (const d of scratchDirs) fs.rmSync(d, { recursive: true, force: true });
  scratchDirs.clear();
}

// Whatever way the host process ends, QEMU goes with it.
process.on('exit', cleanUp);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    cleanUp();
    process.stderr.write(`\ntest:vm: ${sig}, QEMU killed\n`);
    process.exit(130);
  });
}
