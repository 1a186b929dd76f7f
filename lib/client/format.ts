// Human output for ember-ga-ctl: sizes, modes, times, tables.
import type { ExactFileStat, NetIface, GuestRoute, SysInfo, Features } from './types';
import type { QgaNetworkInterface, QgaOsInfo, QgaTimezone, QgaUser } from './qemu-ga-types';

const C_ESCAPES: Record<string, string> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '\\': '\\\\',
};

/** A control character as ls -b writes it: a C escape, else the octal of its UTF-8 bytes (ESC -> \033). */
function escapeChar(c: string): string {
  return C_ESCAPES[c] ?? [...Buffer.from(c)].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('');
}

/**
 * A guest-supplied string (a file name, a host name, an error message) for a terminal, as GNU
 * `ls --quoting-style=escape` (-b) writes names: control characters (C0, DEL, C1) as `\n`, `\t`,
 * `\033`..., a backslash as `\\`. A hostile guest can then neither split a row nor send its own
 * terminal escapes to the admin's terminal.
 */
export function escaped(s: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String(s).replace(/[\\\x00-\x1f\x7f-\x9f]/g, escapeChar);
}

/** Human output as a whole: every control character but the newlines it is made of escaped (see escaped()). */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/g, escapeChar);
}

/** 1536 -> "1.5 KiB". */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Seconds -> "3d 4h 05m" / "4m 02s". */
export function duration(sec: number): string {
  const s = Math.floor(sec);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h ${String(m).padStart(2, '0')}m`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}m ${String(s % 60).padStart(2, '0')}s`;
}

const TYPES: Record<number, [string, string]> = {
  0o140000: ['s', 'socket'],
  0o120000: ['l', 'symbolic link'],
  0o100000: ['-', 'regular file'],
  0o060000: ['b', 'block device'],
  0o040000: ['d', 'directory'],
  0o020000: ['c', 'character device'],
  0o010000: ['p', 'fifo'],
};

/** st_mode -> "drwxr-xr-x" like ls. */
export function modeString(mode: number): string {
  const t = TYPES[mode & 0o170000]?.[0] ?? '?';
  const rwx = (bits: number, special: boolean, ch: string) =>
    (bits & 4 ? 'r' : '-') +
    (bits & 2 ? 'w' : '-') +
    (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    t +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}

export function fileType(mode: number): string {
  return TYPES[mode & 0o170000]?.[1] ?? 'unknown';
}

const two = (n: number) => String(n).padStart(2, '0');

/** Minutes east of UTC -> "+0530" / "-0800". */
function offsetOf(minutesEast: number): string {
  const m = Math.abs(minutesEast);
  return `${minutesEast < 0 ? '-' : '+'}${two(Math.floor(m / 60))}${two(m % 60)}`;
}

/**
 * Seconds since the epoch as this host's local time, with its offset from UTC, as `ls -l
 * --time-style=full-iso` prints it: "2026-11-25 14:40:02 +0100" (`nsec`: ".123456789" after the
 * seconds; `minutes`: no seconds). The host's zone (TZ), not the guest's, which the phoenix
 * protocol does not tell: the offset says which it is.
 */
export function localTime(sec: number, o: { nsec?: number; minutes?: boolean } = {}): string {
  const d = new Date(sec * 1000);
  const day = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
  let clock = `${two(d.getHours())}:${two(d.getMinutes())}`;
  if (!o.minutes) clock += `:${two(d.getSeconds())}`;
  if (o.nsec !== undefined) clock += `.${String(o.nsec).padStart(9, '0')}`;
  return `${day} ${clock} ${offsetOf(-d.getTimezoneOffset())}`;
}

function time(t: { Sec: number; Nsec: number }): string {
  return localTime(t.Sec, { nsec: t.Nsec });
}

/** Left-aligned columns; `right` lists the columns aligned right (numbers). */
export function table(header: string[], rows: (string | number | bigint)[][], right: number[] = []): string {
  const cells = [header, ...rows.map((r) => r.map((c) => escaped(String(c))))];
  const width = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : right.includes(i) ? c.padStart(width[i]) : c.padEnd(width[i])))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function listing(entries: ExactFileStat[]): string {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return table(
    ['MODE', 'LINKS', 'UID', 'GID', 'SIZE', 'MODIFIED', 'NAME'],
    sorted.map((e) => [
      modeString(e.stat.Mode),
      e.stat.Nlink,
      e.stat.Uid,
      e.stat.Gid,
      e.stat.Size,
      localTime(e.stat.Mtim.Sec),
      e.name + (e.isdir ? '/' : ''),
    ]),
    [1, 2, 3, 4],
  );
}

export function statText(s: ExactFileStat): string {
  const st = s.stat;
  return (
    [
      `  File: ${escaped(s.name)}`,
      `  Type: ${fileType(st.Mode)}`,
      `  Size: ${st.Size} (${bytes(Number(st.Size))})   Blocks: ${st.Blocks}   IO Block: ${st.Blksize}`,
      `  Mode: ${(st.Mode & 0o7777).toString(8).padStart(4, '0')} (${modeString(st.Mode)})   Uid: ${st.Uid}   Gid: ${st.Gid}`,
      `Device: ${st.Dev}   Inode: ${st.Ino}   Links: ${st.Nlink}${st.Rdev ? `   Rdev: ${st.Rdev}` : ''}`,
      `Access: ${time(st.Atim)}`,
      `Modify: ${time(st.Mtim)}`,
      `Change: ${time(st.Ctim)}`,
    ].join('\n') + '\n'
  );
}

export function agentLine(f: Features): string {
  const version = escaped(String(f.version));
  if (f.protocol === 'qemu-ga')
    return f.emberGa
      ? `ember-ga ${escaped(String(f.emberVersion))}, qemu-ga ${version} protocol (reads up to ${bytes(f.maxReadSize)}, requests up to ${bytes(f.maxLineBytes)}, pipelined copies)`
      : `qemu-ga ${version} (4 KiB chunks, one request at a time)`;
  return f.emberGa
    ? `ember-ga ${version} (reads up to ${bytes(f.maxReadSize)}, lines up to ${bytes(f.maxLineBytes)}, pipelined copies${f.atomicWrite ? ', atomic uploads' : ''}${f.readMd5 ? ', hashed downloads' : ''})`
    : `${version}, 0.7.1 protocol (4 KiB chunks, one request per handle)`;
}

export function sysinfoText(f: Features, s: SysInfo): string {
  const u = s.uname;
  const lines = [
    `agent:    ${agentLine(f)}`,
    `host:     ${escaped(u.nodename)} (${escaped(`${u.sysname} ${u.release} ${u.machine}`)}, ${s.long_bit}-bit)`,
    `uptime:   ${duration(s.uptime)}`,
    `load:     ${s.loadavg['1m'].toFixed(2)} ${s.loadavg['5m'].toFixed(2)} ${s.loadavg['15m'].toFixed(2)}`,
    `memory:   ${bytes(s.ram.total * 1024)} total, ${bytes(s.ram.free * 1024)} free, ${bytes(s.ram.buffer * 1024)} buffers`,
    `swap:     ${bytes(s.swap.total * 1024)} total, ${bytes(s.swap.free * 1024)} free`,
  ];
  let out = lines.join('\n') + '\n';
  if (s.disks.length > 0) {
    out +=
      '\n' +
      table(
        ['DISK', 'MOUNTED ON', 'SIZE', 'USED', 'AVAIL'],
        s.disks.map((d) => [
          d.name,
          d.is_mounted ? d.mountpoint : '-',
          bytes(d.size_total * 1024),
          bytes(d.size_used * 1024),
          bytes(d.size_avail * 1024),
        ]),
        [2, 3, 4],
      );
  }
  if (s.users.length > 0) {
    out +=
      '\n' +
      table(
        ['USER', 'TTY', 'FROM', 'LOGIN'],
        s.users.map((x) => [x.name, x.device, x.host, localTime(x.login_time, { minutes: true })]),
      );
  }
  return out;
}

export function ifacesText(list: NetIface[]): string {
  return table(
    ['INDEX', 'NAME', 'FLAGS', 'HWADDR', 'ADDRESSES'],
    list.map((i) => [i.index, i.name, i.flags || '-', i.hwaddr || '-', i.ips.join(' ') || '-']),
    [0],
  );
}

/** What ember-ga-ctl info gathers over qemu-ga: each part only where its command is enabled. */
export interface QgaSystem {
  'host-name'?: string;
  osinfo?: QgaOsInfo;
  /** guest-get-time: nanoseconds since the epoch. */
  time?: number;
  timezone?: QgaTimezone;
  users?: QgaUser[];
  /** guest-info: commands enabled, of all listed. */
  commands: { enabled: number; listed: number };
}

function offsetText(seconds: number): string {
  return offsetOf(Math.round(seconds / 60));
}

export function qgaSystemText(f: Features, s: QgaSystem): string {
  const lines = [`agent:    ${agentLine(f)}`];
  if (s['host-name'] !== undefined) lines.push(`host:     ${escaped(s['host-name'])}`);
  const o = s.osinfo;
  if (o) {
    const kernel = [o['kernel-release'], o.machine].filter((x) => x).join(' ');
    lines.push(
      `os:       ${escaped(o['pretty-name'] ?? o.name ?? o.id ?? '?')}${kernel ? `, Linux ${escaped(kernel)}` : ''}`,
    );
  }
  if (s.time !== undefined) {
    const t = new Date(Math.floor(s.time / 1e6)).toISOString().slice(0, 19).replace('T', ' ');
    const tz = s.timezone ? `, timezone ${escaped(s.timezone.zone ?? '?')} ${offsetText(s.timezone.offset)}` : '';
    lines.push(`time:     ${t} UTC${tz}`); // the guest's clock in UTC, its own zone beside it
  }
  lines.push(`commands: ${s.commands.enabled} enabled of ${s.commands.listed}`);
  let out = lines.join('\n') + '\n';
  if (s.users && s.users.length > 0) {
    out +=
      '\n' +
      table(
        ['USER', 'DOMAIN', 'LOGIN'],
        s.users.map((x) => [x.user, x.domain ?? '-', localTime(x['login-time'], { minutes: true })]),
      );
  }
  return out;
}

/** guest-network-get-interfaces as a table: addresses with their prefix, byte counters. */
export function qgaIfacesText(list: QgaNetworkInterface[]): string {
  return table(
    ['NAME', 'HWADDR', 'ADDRESSES', 'RX', 'TX'],
    list.map((i) => [
      i.name,
      i['hardware-address'] || '-',
      (i['ip-addresses'] ?? []).map((a) => `${a['ip-address']}/${a.prefix}`).join(' ') || '-',
      i.statistics ? bytes(i.statistics['rx-bytes']) : '-',
      i.statistics ? bytes(i.statistics['tx-bytes']) : '-',
    ]),
  );
}

/** Prefix length of a mask: "255.255.255.0" -> 24, "ffff:ffff::" -> 32. */
export function maskBits(mask: string): number {
  let bits = 0;
  if (mask.includes('.')) {
    for (const o of mask.split('.')) bits += popcount(Number(o));
  } else {
    const [head, tail = ''] = mask.split('::');
    for (const g of [...head.split(':'), ...tail.split(':')]) if (g) bits += popcount(parseInt(g, 16));
  }
  return bits;
}

function popcount(n: number): number {
  let c = 0;
  for (let v = n; v; v >>>= 1) c += v & 1;
  return c;
}

export function routeDst(r: GuestRoute): string {
  return r.dst.ip === '' ? 'default' : `${r.dst.ip}/${maskBits(r.dst.mask)}`;
}

const SCOPES: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host', 255: 'nowhere' };

/** One row per route; a multipath route has one row per path, the destination on the first only. */
export function routesText(list: GuestRoute[]): string {
  return table(
    ['DESTINATION', 'GATEWAY', 'DEV', 'SRC', 'SCOPE'],
    list.flatMap((r) => {
      const scope = SCOPES[r.scope] ?? String(r.scope);
      const paths = r.nexthops?.length ? r.nexthops : [{ gateway: r.gateway, ifname: r.ifname }];
      return paths.map((p, i) => [i === 0 ? routeDst(r) : '', p.gateway || '-', p.ifname || '-', r.src || '-', scope]);
    }),
  );
}
