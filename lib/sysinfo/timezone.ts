// The local time zone now: its abbreviation ("CET", "EDT") and its offset from UTC, found the way
// glib 2.74's g_time_zone_new_local() finds it (qemu-ga answers with glib's view):
//
// - TZ unset: /etc/localtime, a TZif file (RFC 8536), used only when it is a symlink to a
//   regular file, or not a symlink at all and /var/db/zoneinfo or /etc/timezone names a zone;
//   anything else is UTC.
// - TZ set: a constant offset ("UTC", "Z", "+05:30"), else a POSIX TZ rule with explicit DST
//   dates ("CET-1CEST,M3.5.0,M10.5.0/3"), else a TZif file named by it (":Europe/Paris",
//   "Europe/Paris" under $TZDIR or /usr/share/zoneinfo, or an absolute path); else UTC.
//
// A TZif file's transitions are followed by its footer's POSIX rule, expanded for the years up
// to 2998 as glib expands it (glib's quirks kept: a "Jn" or "n" date is fixed to the month and
// day it has in a common year).
import { promises as fs } from 'fs';
import * as path from 'path';

export interface Timezone {
  /** The abbreviation in effect ("UTC", "CEST"), or the TZ text itself for a constant offset. */
  zone: string;
  /** Seconds east of UTC (3600 for CET). */
  offset: number;
}

export interface TimezoneOptions {
  /** The TZ variable (default process.env.TZ); undefined means unset. */
  tz?: string;
  /** Where relative zone names are looked up (default $TZDIR, else /usr/share/zoneinfo). */
  zoneinfoDir?: string;
  /** Prefix of /etc/localtime, /etc/timezone and /var/db/zoneinfo (default none). */
  root?: string;
  /** The instant, in seconds since the epoch (default now). */
  now?: number;
}

export interface ZoneType {
  offset: number;
  isDst: boolean;
  abbrev: string;
}

export interface Transition {
  time: number;
  type: number;
}

export interface Zone {
  types: ZoneType[];
  transitions: Transition[];
}

/** A rule's DST start or end: a month, then a week and weekday or a fixed day, and a time of day. */
export interface Boundary {
  mon: number;
  week: number;
  /** 1 (Monday) to 7 (Sunday) for Mm.w.d; 0 for a fixed day. */
  wday: number;
  mday: number;
  /** Seconds after local midnight. */
  time: number;
}

export interface Rule {
  stdName: string;
  dstName: string;
  /** Seconds east of UTC. */
  stdOffset: number;
  dstOffset: number;
  start?: Boundary;
  end?: Boundary;
}

const MIN_YEAR = 1916;
const MAX_YEAR = 2999;

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';

/** glib's parse_time: h, hh, hh[:]mm or hh[:]mm[:]ss (RFC 8536 transition times: colons, hours to 167). */
function parseTime(s: string, rfc8536: boolean): number | undefined {
  let i = 0;
  if (!isDigit(s[i])) return undefined;
  let offset = 3600 * Number(s[i++]);
  if (i === s.length) return offset;
  if (s[i] !== ':') {
    if (!isDigit(s[i])) return undefined;
    offset = offset * 10 + 3600 * Number(s[i++]);
    if (rfc8536) {
      if (isDigit(s[i])) offset = offset * 10 + 3600 * Number(s[i++]);
      if (offset > 167 * 3600) return undefined;
    } else if (offset > 24 * 3600) return undefined;
    if (i === s.length) return offset;
  }
  if (s[i] === ':') i++;
  else if (rfc8536) return undefined;
  if (!(s[i] >= '0' && s[i] <= '5')) return undefined;
  offset += 600 * Number(s[i++]);
  if (!isDigit(s[i])) return undefined;
  offset += 60 * Number(s[i++]);
  if (i === s.length) return offset;
  if (s[i] === ':') i++;
  else if (rfc8536) return undefined;
  if (!(s[i] >= '0' && s[i] <= '5')) return undefined;
  offset += 10 * Number(s[i++]);
  if (!isDigit(s[i])) return undefined;
  offset += Number(s[i++]);
  return i === s.length ? offset : undefined;
}

/** glib's parse_constant_offset: "UTC", "Z", or a signed time; seconds east. */
function constantOffset(s: string, rfc8536 = false): number | undefined {
  if (!rfc8536 && s === 'UTC') return 0;
  if (isDigit(s[0])) return parseTime(s, rfc8536);
  if (s[0] === 'Z') return !rfc8536 && s.length === 1 ? 0 : undefined;
  if (s[0] === '+') return parseTime(s.slice(1), rfc8536);
  if (s[0] === '-') {
    const t = parseTime(s.slice(1), rfc8536);
    return t === undefined ? undefined : -t;
  }
  return undefined;
}

/** Month and day of the n-th day (1-based) of year 1, a common year, as GDate's julian days give them. */
function dayOfYearOne(n: number): { mon: number; mday: number } {
  const d = new Date(Date.UTC(2001, 0, n)); // 2001, like year 1, is a common year starting on Monday
  return { mon: d.getUTCMonth() + 1, mday: d.getUTCDate() };
}

/** A TZ rule date: Mm.w.d, Jn (1..365, no Feb 29) or n (0..365), with an optional /time. */
function parseBoundary(s: string): Boundary | undefined {
  let i = 0;
  let b: Boundary;
  if (s[i] === 'M') {
    i++;
    if (!isDigit(s[i])) return undefined;
    let mon = Number(s[i++]);
    if ((mon === 1 && s[i] >= '0' && s[i] <= '2') || (mon === 0 && isDigit(s[i]))) mon = mon * 10 + Number(s[i++]);
    if (s[i++] !== '.' || mon === 0) return undefined;
    if (!(s[i] >= '1' && s[i] <= '5')) return undefined;
    const week = Number(s[i++]);
    if (s[i++] !== '.') return undefined;
    if (!(s[i] >= '0' && s[i] <= '6')) return undefined;
    const wday = Number(s[i++]) || 7;
    b = { mon, week, wday, mday: 0, time: 0 };
  } else if (s[i] === 'J' || isDigit(s[i])) {
    const ignoreLeap = s[i] === 'J';
    if (ignoreLeap) i++;
    let day = 0;
    while (isDigit(s[i])) day = day * 10 + Number(s[i++]);
    if (ignoreLeap) {
      if (day < 1 || day > 365) return undefined;
      if (day >= 59) day++;
    } else {
      if (day > 365) return undefined;
      day++;
    }
    b = { ...dayOfYearOne(day), week: 0, wday: 0, time: 0 };
  } else return undefined;
  if (s[i] === '/') {
    const t = constantOffset(s.slice(i + 1), true);
    if (t === undefined) return undefined;
    b.time = t;
    return b;
  }
  b.time = 7200;
  return i === s.length ? b : undefined;
}

/**
 * A POSIX TZ rule as glib reads it: "STDoffset" (no DST) or "STDoffsetDST[offset],start,end"
 * (glib wants the dates: "EST5EDT" alone is a zone file's name, not a rule). Names are three or
 * more letters, or <quoted> with digits and signs; offsets are hours west of UTC.
 */
export function parsePosixTz(s: string): Rule | undefined {
  let i = 0;
  const name = (): string | undefined => {
    const quoted = s[i] === '<';
    const from = quoted ? i + 1 : i;
    if (quoted) {
      do i++;
      while (i < s.length && /[A-Za-z0-9+-]/.test(s[i]));
      if (s[i] !== '>') return undefined;
    } else while (i < s.length && /[A-Za-z]/.test(s[i])) i++;
    if (i - from < 3) return undefined;
    const n = s.slice(from, i).slice(0, 32);
    if (quoted) i++;
    return n;
  };
  const offset = (): number | undefined => {
    const from = i;
    while (i < s.length && /[-+:0-9]/.test(s[i])) i++;
    return constantOffset(s.slice(from, i));
  };
  const stdName = name();
  const stdWest = stdName === undefined ? undefined : offset();
  if (stdName === undefined || stdWest === undefined) return undefined;
  if (i === s.length) return { stdName, dstName: '', stdOffset: -stdWest, dstOffset: 0 };
  const dstName = name();
  if (dstName === undefined) return undefined;
  let dstWest = offset() ?? 0;
  if (dstWest === 0) dstWest = stdWest - 3600;
  if (i === s.length || s[i++] !== ',') return undefined;
  const field = () => {
    const from = i;
    while (i < s.length && s[i] !== ',') i++;
    return parseBoundary(s.slice(from, i));
  };
  const start = field();
  if (start === undefined || s[i++] !== ',') return undefined;
  const end = field();
  if (end === undefined) return undefined;
  return { stdName, dstName, stdOffset: -stdWest, dstOffset: -dstWest, start, end };
}

/** Days since the epoch of a date (proleptic Gregorian, as GDate). */
function epochDay(year: number, mon: number, mday: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, mon - 1, mday);
  return Math.round(d.getTime() / 86_400_000);
}

/** The UTC second a boundary falls on in `year`, given the local offset in force before it. */
function boundaryTime(b: Boundary, year: number, offset: number): number {
  let mday = b.mday;
  if (b.wday) {
    // glib's find_relative_date: the week-th weekday wday (1 Monday .. 7 Sunday), the last if past the month.
    const daysInMonth = new Date(Date.UTC(year, b.mon, 0)).getUTCDate();
    const firstWday = new Date(Date.UTC(year, b.mon - 1, 1)).getUTCDay() || 7;
    const week = firstWday > b.wday ? b.week + 1 : b.week;
    let days = 7 * (week - 1) + b.wday - firstWday;
    while (days >= daysInMonth) days -= 7;
    mday = 1 + days;
  }
  return epochDay(year, b.mon, mday) * 86_400 + b.time - offset;
}

/** glib's init_zone_from_rules for one rule in force from 1916 to 2998. */
function zoneFromRule(r: Rule): Zone {
  const std: ZoneType = { offset: r.stdOffset, isDst: false, abbrev: r.stdName };
  if ((r.stdOffset || r.dstOffset) && !r.start && !r.end) return { types: [std], transitions: [] };
  const dst: ZoneType = { offset: r.dstOffset, isDst: true, abbrev: r.dstName };
  const transitions: Transition[] = [];
  if (r.start && r.end) {
    // Southern hemisphere: the year starts in DST (its first return to standard time is skipped).
    const dstFirst = r.start.mon > r.end.mon;
    let last = r.stdOffset;
    let skipFirstStd = true;
    for (let year = MIN_YEAR; year < MAX_YEAR; year++) {
      const stdTime = boundaryTime(r.end, year, dstFirst ? last : r.dstOffset);
      const dstTime = boundaryTime(r.start, year, dstFirst ? r.stdOffset : last);
      last = dstFirst ? r.dstOffset : r.stdOffset;
      if (dstFirst) {
        if (skipFirstStd) skipFirstStd = false;
        else transitions.push({ time: stdTime, type: 0 });
        transitions.push({ time: dstTime, type: 1 });
      } else {
        transitions.push({ time: dstTime, type: 1 }, { time: stdTime, type: 0 });
      }
    }
    if (dstFirst) {
      // The rules end in 2999 in DST: glib returns to standard time then, with a type of its own.
      transitions.push({ time: boundaryTime(r.end, MAX_YEAR, last), type: 2 });
      return { types: [std, dst, { ...std }], transitions };
    }
  }
  return { types: [std, dst], transitions };
}

/**
 * A TZif file (RFC 8536, versions 1 to 4) as glib reads it: the 64-bit data of version 2 and
 * later, then the footer's rule for the times after the last transition. undefined when it is
 * not one (glib then falls back to UTC).
 */
export function parseTzif(data: Buffer): Zone | undefined {
  const HEADER = 44;
  if (data.length < HEADER || data.toString('latin1', 0, 4) !== 'TZif') return undefined;
  const version = data[4];
  const counts = (at: number) => {
    if (at + HEADER > data.length) return undefined;
    const c = (k: number) => data.readUInt32BE(at + 20 + 4 * k);
    return { isut: c(0), isstd: c(1), leap: c(2), time: c(3), type: c(4), char: c(5) };
  };
  let at = 0;
  let n = counts(at);
  const v2 = version >= 0x32;
  if (n && v2) {
    at = HEADER + n.isut + n.isstd + 8 * n.leap + 5 * n.time + 6 * n.type + n.char;
    n = counts(at);
  }
  if (!n) return undefined;
  const timeSize = v2 ? 8 : 4;
  const trans = at + HEADER;
  const idx = trans + timeSize * n.time;
  const ttinfo = idx + n.time;
  const abbrs = ttinfo + 6 * n.type;
  if (abbrs + n.char > data.length) return undefined;
  const types: ZoneType[] = [];
  for (let k = 0; k < n.type; k++) {
    const o = ttinfo + 6 * k;
    const a = abbrs + data[o + 5];
    const nul = data.indexOf(0, a);
    types.push({
      offset: data.readInt32BE(o),
      isDst: data[o + 4] !== 0,
      abbrev: data.toString('utf8', a, nul < 0 ? data.length : nul),
    });
  }
  const transitions: Transition[] = [];
  for (let k = 0; k < n.time; k++) {
    const time = v2 ? Number(data.readBigInt64BE(trans + 8 * k)) : data.readInt32BE(trans + 4 * k);
    if (data[idx + k] >= types.length) return undefined;
    transitions.push({ time, type: data[idx + k] });
  }
  if (v2) {
    // The footer: a POSIX TZ rule between newlines, after the 64-bit data's leap and indicator records.
    const start = at + HEADER + n.isut + n.isstd + 12 * n.leap + 9 * n.time + 6 * n.type + n.char;
    if (start > data.length - 2 || data[start] !== 0x0a) return undefined;
    const last = data.indexOf(0x0a, start + 1);
    if (last < 0) return undefined;
    if (last - start > 1) {
      const rule = parsePosixTz(data.toString('latin1', start + 1, last));
      if (!rule) return undefined;
      const extra = zoneFromRule(rule);
      const base = types.length;
      const lastTime = transitions.length > 0 ? transitions[transitions.length - 1].time : undefined;
      types.push(...extra.types);
      for (const t of extra.transitions) {
        if (lastTime === undefined || lastTime < t.time) transitions.push({ time: t.time, type: base + t.type });
      }
    }
  }
  return { types, transitions };
}

/** The type in force at `now`: after the last transition at or before it, else the first standard type. */
function typeAt(zone: Zone, now: number): ZoneType {
  let i = 0;
  while (i < zone.transitions.length && zone.transitions[i].time <= now) i++;
  if (i > 0) return zone.types[zone.transitions[i - 1].type];
  return zone.types.find((t) => !t.isDst) ?? zone.types[0];
}

const UTC: Zone = { types: [{ offset: 0, isDst: false, abbrev: 'UTC' }], transitions: [] };

async function readZoneFile(file: string): Promise<Zone | undefined> {
  try {
    return parseTzif(await fs.readFile(file));
  } catch {
    return undefined;
  }
}

async function isDir(p: string): Promise<boolean> {
  return fs.stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** glib's zone_identifier_unix: whether /etc/localtime is to be used at all. */
async function localtimeUsable(root: string): Promise<boolean> {
  const localtime = path.join(root, '/etc/localtime');
  let notASymlink = false;
  try {
    const target = await fs.readlink(localtime);
    const resolved = path.isAbsolute(target) ? path.join(root, target) : path.join(root, '/etc', target);
    const st = await fs.lstat(resolved).catch(() => undefined);
    if (st === undefined) return false;
    if (st.isFile()) return true;
    notASymlink = true; // a symlink to a symlink: glib asks the files below instead
  } catch (e) {
    notASymlink = (e as NodeJS.ErrnoException).code === 'EINVAL';
  }
  if (!notASymlink) return false;
  for (const f of ['/var/db/zoneinfo', '/etc/timezone']) {
    if (
      await fs.readFile(path.join(root, f)).then(
        () => true,
        () => false,
      )
    )
      return true;
  }
  return false;
}

async function loadZone(opts: TimezoneOptions): Promise<Zone> {
  const tz = 'tz' in opts ? opts.tz : process.env.TZ;
  const root = opts.root ?? '';
  if (tz === undefined) {
    if (!(await localtimeUsable(root))) return UTC;
    return (await readZoneFile(path.join(root, '/etc/localtime'))) ?? UTC;
  }
  const constant = constantOffset(tz);
  if (constant !== undefined) return { types: [{ offset: constant, isDst: false, abbrev: tz }], transitions: [] };
  const rule = parsePosixTz(tz);
  if (rule) return zoneFromRule(rule);
  const zoneinfo =
    opts.zoneinfoDir ??
    process.env.TZDIR ??
    ((await isDir('/usr/share/zoneinfo')) || !(await isDir('/usr/share/lib/zoneinfo'))
      ? '/usr/share/zoneinfo'
      : '/usr/share/lib/zoneinfo');
  const name = tz.startsWith(':') ? tz.slice(1) : tz;
  const file = path.isAbsolute(name) ? name : path.join(zoneinfo, name);
  return (await readZoneFile(file)) ?? UTC;
}

/** The local time zone's abbreviation and offset at `now` (see the header). Never rejects. */
export async function localTimezone(opts: TimezoneOptions = {}): Promise<Timezone> {
  const zone = await loadZone(opts);
  const t = typeAt(zone, opts.now ?? Math.floor(Date.now() / 1000));
  return { zone: t.abbrev, offset: t.offset };
}
