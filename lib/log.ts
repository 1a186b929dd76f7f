// Logging to stderr only: filesystems may be frozen, so the agent never writes a log file.
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
  const write = (level: string, msg: string) => process.stderr.write(`${new Date().toISOString()} ember-ga ${level}: ${msg}\n`);
  return {
    debug: debug ? (m) => write('debug', m) : () => {},
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
