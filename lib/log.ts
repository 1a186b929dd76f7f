// Logging to stderr only: filesystems may be frozen, so the agent never writes a log file.
export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function stderrLogger(debug: boolean): Logger {
  const write = (level: string, msg: string) => process.stderr.write(`${new Date().toISOString()} ember-ga ${level}: ${msg}\n`);
  return {
    debug: debug ? (m) => write('debug', m) : () => {},
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
