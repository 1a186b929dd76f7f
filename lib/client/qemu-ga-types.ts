// The qemu-ga commands the client uses, their answers as qemu-guest-agent 7.2 sends them
// (qga/qapi-schema.json; member names as on the wire), in one place: QemuGaCommands returns them
// and call()/execute() are typed by QgaAnswers for these names.

/** guest-info. */
export interface QgaInfo {
  version: string;
  supported_commands: { name: string; enabled: boolean; 'success-response': boolean }[];
}

/** ember-ga-info: ember-ga's own, unlisted in guest-info; a real qemu-ga answers CommandNotFound. */
export interface EmberGaInfo {
  name: 'ember-ga';
  /** ember-ga's version (guest-info's is the qemu-ga version it follows). */
  version: string;
  /** Largest guest-file-read `count` served in one answer. */
  'max-read-count': number;
  /** Longest request accepted, in bytes. */
  'max-request-bytes': number;
  /** Requests sent before the previous one is answered are queued and answered in order. */
  pipelined: boolean;
}

/** guest-file-read. */
export interface QgaFileRead {
  count: number;
  'buf-b64': string;
  eof: boolean;
}

/** guest-file-write. */
export interface QgaFileWrite {
  count: number;
  eof: boolean;
}

/** guest-file-seek. */
export interface QgaFileSeek {
  position: number;
  eof: boolean;
}

/** guest-file-seek `whence`: qemu-ga takes the names or the C values (0, 1, 2). */
export type QgaWhence = 'set' | 'cur' | 'end' | number;

/** guest-file-open `mode`: fopen()'s. */
export type QgaOpenMode = 'r' | 'rb' | 'w' | 'wb' | 'a' | 'ab' | 'r+' | 'rb+' | 'w+' | 'wb+' | 'a+' | 'ab+';

export type QgaFreezeStatus = 'thawed' | 'frozen';

/** guest-exec's arguments. */
export interface QgaExecArgs {
  path: string;
  arg?: string[];
  /** "NAME=VALUE" strings: the whole environment (qemu-ga does not add its own). */
  env?: string[];
  /** Standard input, base64. */
  'input-data'?: string;
  'capture-output'?: boolean;
}

/** guest-exec-status: while running just `exited: false`. Output is base64, at most 16 MiB each. */
export interface QgaExecStatus {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  'out-data'?: string;
  'err-data'?: string;
  'out-truncated'?: boolean;
  'err-truncated'?: boolean;
}

/** guest-network-get-interfaces, one interface. */
export interface QgaNetworkInterface {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: { 'ip-address-type': 'ipv4' | 'ipv6'; 'ip-address': string; prefix: number }[];
  statistics?: {
    'rx-bytes': number;
    'rx-packets': number;
    'rx-errs': number;
    'rx-dropped': number;
    'tx-bytes': number;
    'tx-packets': number;
    'tx-errs': number;
    'tx-dropped': number;
  };
}

/** guest-get-osinfo: each member only where the guest's os-release / uname has it. */
export interface QgaOsInfo {
  'kernel-release'?: string;
  'kernel-version'?: string;
  machine?: string;
  id?: string;
  name?: string;
  'pretty-name'?: string;
  version?: string;
  'version-id'?: string;
  variant?: string;
  'variant-id'?: string;
}

/** guest-get-timezone: `offset` in seconds east of UTC. */
export interface QgaTimezone {
  zone?: string;
  offset: number;
}

/** guest-get-users, one logged-in user (`login-time`: seconds since the epoch, fractional). */
export interface QgaUser {
  user: string;
  domain?: string;
  'login-time': number;
}

/** The `return` of each command the client knows; anything else is `unknown`. */
export interface QgaAnswers {
  'guest-sync': number;
  'guest-sync-delimited': number;
  'guest-ping': Record<string, never>;
  'guest-info': QgaInfo;
  'ember-ga-info': EmberGaInfo;
  'guest-file-open': number;
  'guest-file-read': QgaFileRead;
  'guest-file-write': QgaFileWrite;
  'guest-file-seek': QgaFileSeek;
  'guest-file-flush': Record<string, never>;
  'guest-file-close': Record<string, never>;
  'guest-fsfreeze-status': QgaFreezeStatus;
  'guest-fsfreeze-freeze': number;
  'guest-fsfreeze-freeze-list': number;
  'guest-fsfreeze-thaw': number;
  'guest-exec': { pid: number };
  'guest-exec-status': QgaExecStatus;
  'guest-network-get-interfaces': QgaNetworkInterface[];
  'guest-get-host-name': { 'host-name': string };
  'guest-get-osinfo': QgaOsInfo;
  'guest-get-time': number;
  'guest-get-timezone': QgaTimezone;
  'guest-get-users': QgaUser[];
}

export type QgaCommandName = keyof QgaAnswers;

/** What exec() gives once the process has exited. */
export interface ExecResult {
  pid: number;
  /** The exit status, when it exited (absent when a signal killed it). */
  exitcode?: number;
  /** The signal that killed it. */
  signal?: number;
  stdout: Buffer;
  stderr: Buffer;
  /** The agent kept only the first part of an output (qemu-ga: 16 MiB). */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}
