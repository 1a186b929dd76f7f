// The operating system's identity: the kernel's (uname(2)) and the distribution's, from
// os-release(5). The file is read as qemu-ga reads it, which is not quite os-release(5)'s shell
// syntax: as a glib key file (GKeyFile) under an "[os-release]" group, so a line glib cannot
// parse makes the whole file unusable; then each value is unquoted by qemu-ga's own rules
// (osReleaseValue), which handle double quotes only.
import { promises as fs } from 'fs';
import { uname } from './kernel';

export interface OsInfo {
  /** uname's release ("6.1.0-18-amd64"). */
  kernelRelease?: string;
  /** uname's version ("#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"). */
  kernelVersion?: string;
  /** uname's machine ("x86_64"). */
  machine?: string;
  /** os-release's ID, NAME, PRETTY_NAME, VERSION, VERSION_ID, VARIANT and VARIANT_ID. */
  id?: string;
  name?: string;
  prettyName?: string;
  version?: string;
  versionId?: string;
  variant?: string;
  variantId?: string;
}

/** Where os-release(5) is looked for, in order: the first file that parses is used. */
export const OS_RELEASE_PATHS = ['/etc/os-release', '/usr/lib/os-release'];

const FIELDS: [keyof OsInfo, string][] = [
  ['id', 'ID'],
  ['name', 'NAME'],
  ['prettyName', 'PRETTY_NAME'],
  ['version', 'VERSION'],
  ['versionId', 'VERSION_ID'],
  ['variant', 'VARIANT'],
  ['variantId', 'VARIANT_ID'],
];

const GROUP = 'os-release';
const isSpace = (c: string | undefined) => c !== undefined && ' \t\n\v\f\r'.includes(c);

/** glib's key name rule: no '=', '[' or ']' but a trailing "[locale]", no space at either end. */
function isKeyName(key: string): boolean {
  let q = 0;
  while (q < key.length && !'=[]'.includes(key[q])) q++;
  if (q === 0 || key[0] === ' ' || key[q - 1] === ' ') return false;
  if (key[q] === '[') {
    q++;
    while (q < key.length && /[\p{L}\p{Nd}\-_.@]/u.test(key[q])) q++;
    if (key[q] !== ']') return false;
    q++;
  }
  return q >= key.length;
}

/**
 * os-release text as glib's key file parser reads it with an "[os-release]" line put before it:
 * each raw value (not unquoted) by key, the last of a repeated key winning; undefined when glib
 * would refuse the file (not UTF-8, or a line that is not a comment, a group or key=value).
 */
export function parseOsRelease(data: Buffer): Map<string, string> | undefined {
  const nul = data.indexOf(0);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(nul < 0 ? data : data.subarray(0, nul));
  } catch {
    return undefined;
  }
  const groups = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  const startGroup = GROUP;
  let currentName = '';
  const parts = `[${GROUP}]\n${text}`.split('\n');
  for (let i = 0; i < parts.length; i++) {
    let line = parts[i];
    // A line ended by a newline loses one '\r' before it; the last, unended line keeps it.
    if (i < parts.length - 1 && line.endsWith('\r')) line = line.slice(0, -1);
    let s = 0;
    while (isSpace(line[s])) s++;
    const start = line.slice(s);
    if (start === '' || start[0] === '#') continue;
    const close = start.indexOf(']');
    if (start[0] === '[' && close > 0 && /^[ \t]*$/.test(start.slice(close + 1))) {
      const name = start.slice(1, start.lastIndexOf(']'));
      // eslint-disable-next-line no-control-regex
      if (name === '' || /[[\]\x00-\x1f\x7f]/.test(name)) return undefined;
      currentName = name;
      current = groups.get(name) ?? new Map<string, string>();
      groups.set(name, current);
      continue;
    }
    const eq = start.indexOf('=');
    if (eq <= 0) return undefined;
    let keyEnd = eq - 1;
    while (isSpace(start[keyEnd])) keyEnd--;
    const key = start.slice(0, keyEnd + 1);
    if (!isKeyName(key)) return undefined;
    let v = eq + 1;
    while (isSpace(start[v])) v++;
    const value = start.slice(v);
    if (currentName === startGroup && key === 'Encoding' && value.toUpperCase() !== 'UTF-8') return undefined;
    // Translations ("NAME[fr]") are never looked up.
    if (key.endsWith(']')) continue;
    current!.set(key, value);
  }
  return groups.get(GROUP);
}

/**
 * An os-release value as qemu-ga unquotes it: a value in double quotes loses them and the
 * backslash of \$ \' \" \\ \` (other backslashes stay), ending at the closing quote; when there
 * is none, the bytes the shortening left behind stay at the end, as qemu-ga's in-place rewrite
 * leaves them. Any other value is cut at its first space, then at its first ';' (single
 * quotes are kept).
 */
export function osReleaseValue(raw: string): string {
  const v = Buffer.from(raw, 'utf8');
  if (v[0] !== 0x22) {
    let s = raw;
    const sp = s.indexOf(' ');
    if (sp >= 0) s = s.slice(0, sp);
    const semi = s.indexOf(';');
    return semi >= 0 ? s.slice(0, semi) : s;
  }
  let p2 = 0;
  let p = 1;
  while (p < v.length) {
    if (v[p] === 0x5c) {
      p++;
      // $ ' " \ ` lose their backslash; anything else (the end included) keeps it.
      if (p >= v.length || !'$\'"\\`'.includes(String.fromCharCode(v[p]))) p--;
    } else if (v[p] === 0x22) {
      return v.subarray(0, p2).toString('utf8');
    }
    v[p2++] = v[p++];
  }
  return v.toString('utf8');
}

/**
 * The kernel's identity and the distribution's, from the first of `osReleasePaths` that
 * parses (fields it lacks are absent). Rejects only when uname(2) fails.
 */
export async function readOsInfo(osReleasePaths: readonly string[] = OS_RELEASE_PATHS): Promise<OsInfo> {
  const u = await uname();
  const info: OsInfo = { kernelRelease: u.release, kernelVersion: u.version, machine: u.machine };
  for (const path of osReleasePaths) {
    const keys = await fs.readFile(path).then(parseOsRelease, () => undefined);
    if (keys === undefined) continue;
    for (const [field, key] of FIELDS) {
      const raw = keys.get(key);
      if (raw !== undefined) info[field] = osReleaseValue(raw);
    }
    break;
  }
  return info;
}
