// Running a program and capturing what it writes, with caps: the domain of qemu-ga's guest-exec,
// usable without the agent. Spawning is GLib's way (native/spawn.cc); exits are noticed on
// SIGCHLD and every child is reaped (no zombies), whether or not anyone asks for its status.
import * as fs from 'fs';
import * as net from 'net';
import { native } from '../native';

/** qemu-ga's GUEST_EXEC_MAX_OUTPUT: bytes kept of each of a process's output streams. */
export const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;

/** Bytes of captured output that several processes share (ExecTable's); each takes what is left. */
export class OutputBudget {
  private used = 0;
  constructor(readonly limit: number) {}
  get available(): number {
    return Math.max(0, this.limit - this.used);
  }
  get held(): number {
    return this.used;
  }
  take(n: number): void {
    this.used += n;
  }
  give(n: number): void {
    this.used -= n;
  }
}

/** A C string: text (UTF-8) or its bytes as they are (qemu-ga's, where a NUL is 0xC0 0x80). */
export type ExecString = string | Uint8Array;

export interface ExecOptions {
  /** Arguments after argv[0], which is the path as given. */
  args?: readonly ExecString[];
  /** The whole environment, "NAME=value" entries (an empty list: none); default the caller's own. */
  env?: readonly ExecString[];
  /** Written to the program's stdin, which is then closed (copied at once); without it, stdin is /dev/null. */
  input?: Uint8Array;
  /** Capture stdout and stderr; without it they are /dev/null. */
  capture?: boolean;
  /** Bytes kept of each captured stream; the rest is read and dropped, and flagged. Default 16 MiB. */
  maxOutput?: number;
  /** Shared by several processes: captured bytes past what it has left are dropped as well. */
  budget?: OutputBudget;
  /** Takes `input`'s bytes until the program has read them or closed its stdin (ExecTable's check). */
  inputBudget?: OutputBudget;
  /**
   * Search PATH for a path without a '/' (default true): the PATH of `env` when it has one,
   * else the caller's, else "/bin:/usr/bin:.", as GLib's spawn does for qemu-ga.
   */
  searchPath?: boolean;
}

/** What a process wrote to one stream, as far as it was kept. */
export interface CapturedOutput {
  /** Bytes kept. */
  readonly length: number;
  /** More was written than kept (past the cap or the shared budget). */
  readonly truncated: boolean;
  /**
   * The bytes kept, in pieces, all but the last a multiple of 3 bytes long: each encodes to
   * base64 on its own, so a large output never has to exist as one buffer.
   */
  readonly pieces: readonly Buffer[];
  /** The bytes kept, as one buffer (a copy when there are several pieces). */
  bytes(): Buffer;
}

/** How a process ended and what it wrote. */
export interface ExecResult {
  /** Its exit status when it exited. */
  exitCode?: number;
  /** The number of the signal that killed it, when one did. */
  signal?: number;
  /** Captured output, empty when not captured. */
  stdout: CapturedOutput;
  stderr: CapturedOutput;
}

// Captured bytes are read into blocks of a multiple of 3 bytes (see CapturedOutput.pieces): a
// small first one, as most programs write little, then 48 KiB ones. Bytes past the caps are read
// into one scratch buffer and dropped, so output that never ends makes no garbage.
const FIRST_BLOCK = 3 * 1024;
const BLOCK = 3 * 16 * 1024;
const SCRATCH = Buffer.allocUnsafe(64 * 1024);
/** Bytes read from one pipe before the event loop gets its turn. */
const READ_TURN = 1024 * 1024;

/** One captured stream. */
class Capture implements CapturedOutput {
  private blocks: Buffer[] = [];
  private fill = 0; // bytes used of the last block
  length = 0;
  truncated = false;
  closed = false;

  constructor(
    private readonly max: number,
    private readonly budget: OutputBudget | undefined,
  ) {}

  /**
   * Reads what the pipe holds now, straight into the blocks (what is past the caps into a scratch
   * buffer, to be dropped), at most READ_TURN bytes; false at its end (or an error, as its end).
   */
  drain(fd: number): boolean {
    for (let turn = 0; turn < READ_TURN;) {
      let room = this.max - this.length;
      if (this.budget) room = Math.min(room, this.budget.available);
      let target: Buffer = SCRATCH;
      let at = 0;
      let len = SCRATCH.length;
      if (room > 0) {
        let last = this.blocks[this.blocks.length - 1];
        if (!last || this.fill === last.length) {
          last = Buffer.allocUnsafe(this.blocks.length === 0 ? FIRST_BLOCK : BLOCK);
          this.blocks.push(last);
          this.fill = 0;
        }
        [target, at, len] = [last, this.fill, Math.min(room, last.length - this.fill)];
      }
      let n: number;
      try {
        n = fs.readSync(fd, target, at, len, null);
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'EAGAIN';
      }
      if (n === 0) return false;
      turn += n;
      if (target === SCRATCH) {
        this.truncated = true;
        continue;
      }
      this.fill += n;
      this.length += n;
      this.budget?.take(n);
    }
    return true;
  }

  /** The stream ended: the last block shrinks to what it holds. */
  close(): void {
    this.closed = true;
    const i = this.blocks.length - 1;
    if (i >= 0 && this.fill < this.blocks[i].length) {
      this.blocks[i] = Buffer.from(this.blocks[i].subarray(0, this.fill));
      this.fill = this.blocks[i].length;
    }
  }

  get pieces(): readonly Buffer[] {
    const i = this.blocks.length - 1;
    if (i < 0 || this.fill === this.blocks[i].length) return this.blocks;
    return [...this.blocks.slice(0, i), this.blocks[i].subarray(0, this.fill)];
  }

  bytes(): Buffer {
    return Buffer.concat(this.pieces as Buffer[], this.length);
  }

  /** A snapshot that stays as it is when this capture is released. */
  snapshot(): CapturedOutput {
    const pieces = this.pieces;
    const { length, truncated } = this;
    return { length, truncated, pieces, bytes: () => Buffer.concat(pieces as Buffer[], length) };
  }

  release(): void {
    this.budget?.give(this.length);
    this.blocks = [];
    this.fill = 0;
    this.length = 0;
  }
}

const NOTHING: CapturedOutput = { length: 0, truncated: false, pieces: [], bytes: () => Buffer.alloc(0) };

/** A program started by exec(). */
export class ExecProcess {
  private status: number | undefined; // the wait status once reaped (-1: unknown)
  private readonly out: Capture | undefined;
  private readonly err: Capture | undefined;
  private settle!: (r: ExecResult) => void;
  /** Resolves once it has exited and its captured streams are closed. */
  readonly done: Promise<ExecResult>;

  /** @internal (exec() makes these) */
  constructor(
    readonly pid: number,
    capture: boolean,
    maxOutput: number,
    budget: OutputBudget | undefined,
  ) {
    this.done = new Promise((r) => (this.settle = r));
    if (capture) {
      this.out = new Capture(maxOutput, budget);
      this.err = new Capture(maxOutput, budget);
    }
  }

  /** Exited (reaped), and the streams it wrote to are closed: nothing more can come. */
  get finished(): boolean {
    return this.status !== undefined && (this.out?.closed ?? true) && (this.err?.closed ?? true);
  }

  /** Still running (not reaped yet). */
  get running(): boolean {
    return this.status === undefined;
  }

  /** How it ended, once finished. */
  result(): ExecResult | undefined {
    if (!this.finished) return undefined;
    const s = this.status!;
    const r: ExecResult = {
      stdout: this.out?.snapshot() ?? NOTHING,
      stderr: this.err?.snapshot() ?? NOTHING,
    };
    // WIFEXITED / WIFSIGNALED; a status we could not learn (-1) is neither.
    if (s >= 0 && (s & 0x7f) === 0) r.exitCode = (s >> 8) & 0xff;
    else if (s >= 0 && (s & 0x7f) !== 0x7f) r.signal = s & 0x7f;
    return r;
  }

  /** Bytes of captured output it holds. */
  get held(): number {
    return (this.out?.length ?? 0) + (this.err?.length ?? 0);
  }

  /** Drops its captured output, giving the bytes back to the budget; result() has none after. */
  release(): void {
    this.out?.release();
    this.err?.release();
  }

  /** Sends a signal while it runs (never to a pid that may be someone else's by now). */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (!this.running) return false;
    process.kill(this.pid, signal);
    return true;
  }

  /** @internal Reads one of its output pipes (non-blocking, from native/spawn.cc) until its end. */
  capture(which: 'out' | 'err', fd: number): void {
    const cap = which === 'out' ? this.out! : this.err!;
    const poll = new native.FdPoll(fd, () => {
      if (cap.drain(fd)) {
        poll.wait(false);
        return;
      }
      poll.close(); // before the fd: epoll forgets it by number
      fs.closeSync(fd);
      cap.close();
      this.check();
    });
    poll.wait(false);
  }

  /** @internal */
  exited(status: number): void {
    this.status = status;
    this.check();
  }

  private check(): void {
    if (this.finished) this.settle(this.result()!);
  }
}

// Children are reaped by pid when SIGCHLD comes (libuv reaps only its own children, by pid, so
// the two never take each other's). The listener is there while any child of ours may be alive.
const alive = new Map<number, ExecProcess>();
let starting = 0;

function reapAll(): void {
  for (const [pid, p] of alive) {
    let status: number;
    try {
      status = native.reapProcess(pid);
      if (status === -1) continue; // running
    } catch {
      status = -1; // ECHILD: reaped by someone else, how it ended is lost
    }
    alive.delete(pid);
    p.exited(status);
  }
  listen();
}

let listening = false;
/**
 * While a child may be alive: keeps the event loop alive (as a Node child process does: the
 * SIGCHLD listener does not), and looks now and then, should a SIGCHLD ever go unseen.
 */
let keepAlive: NodeJS.Timeout | undefined;
const RECHECK_MS = 1000;

function listen(): void {
  const want = alive.size > 0 || starting > 0;
  if (want === listening) return;
  listening = want;
  if (want) {
    process.on('SIGCHLD', reapAll);
    keepAlive = setInterval(reapAll, RECHECK_MS);
  } else {
    process.off('SIGCHLD', reapAll);
    clearInterval(keepAlive);
    keepAlive = undefined;
  }
}

/** A C string's bytes, for the addon; a NUL (which would end it early) is a TypeError. */
function cBytes(s: ExecString, what: string): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s.buffer, s.byteOffset, s.byteLength);
  if (b.includes(0)) throw new TypeError(`${what} contains a NUL byte`);
  return b;
}

const PATH_IS = Buffer.from('PATH=');

/** The PATH glib's spawn searches for qemu-ga: the child's, else the agent's, else its default. */
function searchPathFor(env: readonly Buffer[] | undefined): Buffer {
  const fromEnv = env?.find((e) => e.subarray(0, PATH_IS.length).equals(PATH_IS));
  if (fromEnv !== undefined) return fromEnv.subarray(PATH_IS.length);
  return Buffer.from(process.env.PATH ?? '/bin:/usr/bin:.');
}

/**
 * Starts `path`. Rejects with a SystemError when it cannot run: syscall "execve" and the errno
 * execve gave (ENOENT, EACCES, ENOEXEC...), or the call that failed before ("fork", "pipe2").
 * A path, argument or entry with a NUL byte is a TypeError.
 */
export async function exec(path: ExecString, opts: ExecOptions = {}): Promise<ExecProcess> {
  const file = cBytes(path, 'the path');
  const args = (opts.args ?? []).map((a) => cBytes(a, 'an argument'));
  const env = opts.env?.map((e) => cBytes(e, 'an environment entry'));
  const capture = opts.capture === true;
  const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
  const pipes = (opts.input ? native.PIPE_STDIN : 0) | (capture ? native.PIPE_STDOUT | native.PIPE_STDERR : 0);
  const input = opts.input ? Buffer.from(opts.input) : undefined; // ours: the caller may reuse its own
  const inputBudget = input && opts.inputBudget;
  inputBudget?.take(input!.length); // before any await: ExecTable checked it in this same turn
  starting++;
  listen(); // before the fork: an exit must find the listener (or the check below)
  let spawned;
  try {
    spawned = await native.spawnProcess(
      file,
      opts.searchPath === false ? null : searchPathFor(env),
      [file, ...args],
      env ?? null,
      pipes,
    );
  } catch (e) {
    inputBudget?.give(input!.length);
    throw e;
  } finally {
    starting--;
    listen();
  }
  const p = new ExecProcess(spawned.pid, capture, maxOutput, opts.budget);
  alive.set(p.pid, p);
  listen();
  if (spawned.stdin >= 0) writeInput(spawned.stdin, input!, inputBudget);
  else inputBudget?.give(input!.length);
  if (capture) {
    p.capture('out', spawned.stdout);
    p.capture('err', spawned.stderr);
  }
  reapAll(); // it may have exited before it was in `alive`
  return p;
}

function writeInput(fd: number, input: Buffer, budget: OutputBudget | undefined): void {
  const s = new net.Socket({ fd, readable: false, writable: true });
  // Held until written or dropped: a program that never reads its stdin holds it while it runs.
  if (budget) s.once('close', () => budget.give(input.length));
  s.on('error', () => s.destroy()); // EPIPE: the program closed its stdin without reading it all
  // Closed once written: the program sees the end of its input.
  if (input.length === 0) s.destroy();
  else s.write(input, () => s.destroy());
}
