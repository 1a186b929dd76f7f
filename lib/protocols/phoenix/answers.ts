// What every command answers, declared once: handlers are typed by it (defineCommand), the host
// client returns it (lib/client), and docs/COMMANDS.md prints it (npm run docs).
import type { FileStat, Int64 } from '../../files/stat';
import type { Disk } from '../../sysinfo/disks';

export type { FileStat, GoStat, Int64, Timespec } from '../../files/stat';
export type { Disk } from '../../sysinfo/disks';

/** agent-info (ember-ga only). */
export interface AgentInfo {
  name: string;
  version: string;
  /** Longest request line accepted, in bytes. */
  max_line_bytes: number;
  /** Largest file-read `size` honoured (4096 under --no-large-reads). */
  max_read_size: number;
  /** file-open `atomic` and file-close `discard`, `fsync`, `md5` (absent from agents before them). */
  atomic_write?: boolean;
  /** file-open `md5`: the md5 of what the reads sent, in the answer at end of file (absent before it). */
  read_md5?: boolean;
}

/** file-read. */
export interface ReadAnswer {
  /** The bytes read, base64; "" at end of file. */
  bufb64: string;
  /** End of file: the handle is closed. */
  eof: boolean;
  /** At end of file of a handle opened with md5: the md5 of every byte its reads sent. */
  md5?: string;
}

export interface SysInfo {
  uname: { sysname: string; nodename: string; release: string; version: string; machine: string; domain: string };
  long_bit: number;
  /** Seconds. */
  uptime: number;
  loadavg: { '1m': number; '5m': number; '15m': number };
  /** KiB. */
  ram: { total: number; free: number; buffer: number };
  /** KiB. */
  swap: { total: number; free: number };
  users: { name: string; device: string; host: string; login_time: number }[];
  disks: Disk[];
}

/** get-netifaces. */
export interface NetIface {
  index: number;
  name: string;
  /** "" when none. */
  hwaddr: string;
  /** "up|broadcast|multicast", "" when none set. */
  flags: string;
  /** CIDR strings. */
  ips: string[];
}

/** get-route-list. */
export interface GuestRoute {
  ifname: string;
  scope: number;
  /** A default route has `{ip: "", mask: ""}`. */
  dst: { ip: string; mask: string };
  src: string;
  gateway: string;
  /** ember-ga: a multipath route's paths (its own ifname and gateway are ""). Absent otherwise. */
  nexthops?: { ifname: string; gateway: string }[];
}

/** Each command's answer (its `return`), by name. */
export interface Answers {
  ping: string;
  'get-commands': string[];
  'agent-info': AgentInfo;
  'agent-shutdown': true;
  'file-open': number;
  'file-read': ReadAnswer;
  'file-write': true;
  'file-close': true;
  'get-file-md5sum': string;
  'file-chown': true;
  'file-chmod': true;
  'file-stat': FileStat<Int64>;
  'directory-create': true;
  'directory-list': FileStat<Int64>[];
  sysinfo: SysInfo;
  'fs-freeze': true;
  'fs-unfreeze': true;
  'get-freeze-status': boolean;
  'get-netifaces': NetIface[];
  'ipaddr-add': true;
  'ipaddr-del': true;
  'net-iface-up': true;
  'net-iface-down': true;
  'get-route-list': GuestRoute[];
  'route-add': true;
  'route-del': true;
}

export type CommandName = keyof Answers;
