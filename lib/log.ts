// Logging to stderr only: filesystems may be frozen, so the agent never writes a log file.
import * as fs from 'fs';
import type { MountPath } from './mounts';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function stderrLogger(debug: boolean): Logger {
  // A broken stderr (EPIPE: whoever read our log went away) must not become an uncaught
  // exception, whose handler logs, which fails again: a loop at full CPU. Lines are dropped.
  process.stderr.on('error', () => {});
  const write = (level: string, msg: string) =>
    process.stderr.write(`${new Date().toISOString()} ember-ga ${level}: ${msg}\n`);
  return {
    debug: debug ? (m) => write('debug', m) : () => {},
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Most lines a HoldingLogger keeps while holding; past it they are counted, not kept. */
const MAX_HELD_LINES = 1000;

/**
 * The agent's logger. While stderr is a file on a filesystem the agent has frozen, a write would
 * block the event loop (Node writes files synchronously), and with it every thaw. hold() keeps
 * lines in memory instead; release() writes them out once everything is thawed.
 */
export class HoldingLogger implements Logger {
  private held: [keyof Logger, string][] | undefined;
  private dropped = 0;

  constructor(private readonly inner: Logger) {}

  hold(): void {
    this.held ??= [];
  }

  release(): void {
    const lines = this.held;
    this.held = undefined;
    if (!lines) return;
    for (const [level, msg] of lines) this.inner[level](msg);
    if (this.dropped > 0) this.inner.warn(`${this.dropped} log lines dropped while frozen`);
    this.dropped = 0;
  }

  private emit(level: keyof Logger, msg: string): void {
    if (!this.held) this.inner[level](msg);
    else if (this.held.length < MAX_HELD_LINES)
      this.held.push([level, `${msg} (at ${new Date().toISOString()}, held back while frozen)`]);
    else this.dropped++;
  }

  debug(m: string): void {
    this.emit('debug', m);
  }
  info(m: string): void {
    this.emit('info', m);
  }
  warn(m: string): void {
    this.emit('warn', m);
  }
  error(m: string): void {
    this.emit('error', m);
  }
}

/** `log` itself when it is already a HoldingLogger (so one hold covers every user), else one wrapping it. */
export function holdingLogger(log: Logger = silentLogger): HoldingLogger {
  return log instanceof HoldingLogger ? log : new HoldingLogger(log);
}

/**
 * True when stderr (the log) is a file on one of these filesystems: Node writes files
 * synchronously, so a log line written while it is frozen would hang the event loop, and with it
 * every thaw. (A pipe, a tty or the journal's socket never blocks on a freeze.)
 */
export function stderrIsFileOn(mountpoints: readonly MountPath[]): boolean {
  let dev: number;
  try {
    const st = fs.fstatSync(2);
    if (!st.isFile()) return false;
    dev = st.dev;
  } catch {
    return false;
  }
  return mountpoints.some((m) => {
    try {
      return fs.statSync(m).dev === dev;
    } catch {
      return false;
    }
  });
}
