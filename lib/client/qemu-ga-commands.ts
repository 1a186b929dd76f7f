// QemuGaCommands: typed methods for the qemu-ga commands the client knows (GuestAgent.qga), one
// request each, plus exec(): guest-exec, then guest-exec-status until the process has exited.
import { hostError } from './errors';
import type { CallOptions } from './connection';
import type { QmpConnection } from './qmp-connection';
import type {
  ExecResult,
  QgaExecArgs,
  QgaExecStatus,
  QgaFileSeek,
  QgaFileWrite,
  QgaFreezeStatus,
  QgaInfo,
  QgaNetworkInterface,
  QgaOpenMode,
  QgaOsInfo,
  QgaTimezone,
  QgaUser,
  QgaWhence,
} from './qemu-ga-types';

/** guest-file-read's answer, decoded. */
export interface QgaReadResult {
  data: Buffer;
  eof: boolean;
}

export interface ExecOptions {
  /** The process's whole environment, "NAME=VALUE" (default: the agent's own). */
  env?: string[];
  /** Its standard input (default: none, /dev/null). */
  input?: Buffer | string;
  /** Collect stdout and stderr (default true; qemu-ga keeps at most 16 MiB of each). */
  capture?: boolean;
  /** Milliseconds to wait for the process to exit (default: no limit). */
  timeout?: number;
  /** Stops waiting (ABORT_ERR); the process runs on: qemu-ga cannot signal it. */
  signal?: AbortSignal;
}

/** First and longest pause between guest-exec-status polls. */
const POLL_FIRST_MS = 5;
const POLL_MAX_MS = 200;

export class QemuGaCommands {
  constructor(private readonly conn: QmpConnection) {}

  /** guest-ping: resolves once the agent answered. */
  async ping(opts?: CallOptions): Promise<void> {
    await this.conn.execute('guest-ping', undefined, opts);
  }

  /** guest-sync: echoes `id`. */
  sync(id: number, opts?: CallOptions): Promise<number> {
    return this.conn.execute('guest-sync', { id }, opts);
  }

  /** guest-info: the qemu-ga version and every command, with whether it is enabled now. */
  info(opts?: CallOptions): Promise<QgaInfo> {
    return this.conn.execute('guest-info', undefined, opts);
  }

  /** guest-file-open: a handle. `mode` is fopen()'s (default "r"). */
  fileOpen(path: string, mode: QgaOpenMode = 'r', opts?: CallOptions): Promise<number> {
    return this.conn.execute('guest-file-open', { path, mode }, opts);
  }

  /** guest-file-read: up to `count` bytes (qemu-ga's default 4096); eof does not close the handle. */
  async fileRead(handle: number, count?: number, opts?: CallOptions): Promise<QgaReadResult> {
    const r = await this.conn.execute('guest-file-read', count === undefined ? { handle } : { handle, count }, opts);
    if (r === null || typeof r !== 'object' || typeof r['buf-b64'] !== 'string')
      throw hostError('EPROTO', 'guest-file-read: answer is not {count, buf-b64, eof}', 'guest-file-read');
    return { data: Buffer.from(r['buf-b64'], 'base64'), eof: r.eof === true };
  }

  /** guest-file-write: `count` is how many bytes the agent wrote. */
  fileWrite(handle: number, data: Buffer, opts?: CallOptions): Promise<QgaFileWrite> {
    return this.conn.execute('guest-file-write', { handle, 'buf-b64': data.toString('base64') }, opts);
  }

  /** guest-file-seek: the new position. */
  fileSeek(handle: number, offset: number, whence: QgaWhence, opts?: CallOptions): Promise<QgaFileSeek> {
    return this.conn.execute('guest-file-seek', { handle, offset, whence }, opts);
  }

  /** guest-file-flush: fflush(), not fsync(). */
  async fileFlush(handle: number, opts?: CallOptions): Promise<void> {
    await this.conn.execute('guest-file-flush', { handle }, opts);
  }

  async fileClose(handle: number, opts?: CallOptions): Promise<void> {
    await this.conn.execute('guest-file-close', { handle }, opts);
  }

  fsfreezeStatus(opts?: CallOptions): Promise<QgaFreezeStatus> {
    return this.conn.execute('guest-fsfreeze-status', undefined, opts);
  }

  /** guest-fsfreeze-freeze, or -freeze-list with `mountpoints`: how many filesystems were frozen. */
  fsfreezeFreeze(mountpoints?: string[], opts?: CallOptions): Promise<number> {
    return mountpoints === undefined
      ? this.conn.execute('guest-fsfreeze-freeze', undefined, opts)
      : this.conn.execute('guest-fsfreeze-freeze-list', { mountpoints }, opts);
  }

  /** guest-fsfreeze-thaw: how many filesystems were thawed. */
  fsfreezeThaw(opts?: CallOptions): Promise<number> {
    return this.conn.execute('guest-fsfreeze-thaw', undefined, opts);
  }

  /** guest-exec: starts a process, its pid. */
  async execStart(args: QgaExecArgs, opts?: CallOptions): Promise<number> {
    return (await this.conn.execute('guest-exec', { ...args }, opts)).pid;
  }

  /** guest-exec-status; once it says `exited`, the agent forgets the pid. */
  execStatus(pid: number, opts?: CallOptions): Promise<QgaExecStatus> {
    return this.conn.execute('guest-exec-status', { pid }, opts);
  }

  /** Runs `path` with `args` in the guest and waits for it to exit (guest-exec, guest-exec-status). */
  async exec(path: string, args: string[] = [], o: ExecOptions = {}): Promise<ExecResult> {
    const what = `exec ${path}`;
    const req: QgaExecArgs = { path, arg: args, 'capture-output': o.capture ?? true };
    if (o.env !== undefined) req.env = o.env;
    if (o.input !== undefined) req['input-data'] = Buffer.from(o.input).toString('base64');
    if (o.signal?.aborted) throw hostError('ABORT_ERR', `${what}: aborted`);
    const pid = await this.execStart(req);
    const deadline = o.timeout === undefined ? Infinity : Date.now() + o.timeout;
    let pause = POLL_FIRST_MS;
    for (;;) {
      const s = await this.execStatus(pid);
      if (s.exited) {
        const r: ExecResult = {
          pid,
          stdout: Buffer.from(s['out-data'] ?? '', 'base64'),
          stderr: Buffer.from(s['err-data'] ?? '', 'base64'),
          stdoutTruncated: s['out-truncated'] === true,
          stderrTruncated: s['err-truncated'] === true,
        };
        if (s.exitcode !== undefined) r.exitcode = s.exitcode;
        if (s.signal !== undefined) r.signal = s.signal;
        return r;
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw hostError('ETIMEDOUT', `${what}: pid ${pid} still running after ${o.timeout} ms (it runs on)`);
      await pauseFor(Math.min(pause, left), o.signal, `${what}: aborted while pid ${pid} runs on`);
      pause = Math.min(pause * 2, POLL_MAX_MS);
    }
  }

  networkInterfaces(opts?: CallOptions): Promise<QgaNetworkInterface[]> {
    return this.conn.execute('guest-network-get-interfaces', undefined, opts);
  }

  async hostName(opts?: CallOptions): Promise<string> {
    return (await this.conn.execute('guest-get-host-name', undefined, opts))['host-name'];
  }

  osInfo(opts?: CallOptions): Promise<QgaOsInfo> {
    return this.conn.execute('guest-get-osinfo', undefined, opts);
  }

  /** guest-get-time: the guest's clock, nanoseconds since the epoch. */
  time(opts?: CallOptions): Promise<number> {
    return this.conn.execute('guest-get-time', undefined, opts);
  }

  timezone(opts?: CallOptions): Promise<QgaTimezone> {
    return this.conn.execute('guest-get-timezone', undefined, opts);
  }

  users(opts?: CallOptions): Promise<QgaUser[]> {
    return this.conn.execute('guest-get-users', undefined, opts);
  }
}

function pauseFor(ms: number, signal: AbortSignal | undefined, abortMessage: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(hostError('ABORT_ERR', abortMessage));
    const onAbort = () => {
      clearTimeout(t);
      reject(hostError('ABORT_ERR', abortMessage));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
