// JSON as qemu-ga writes it: ": " and ", " between members, every character outside printable
// ASCII escaped as \uXXXX, and object members in the order qemu's QDict iterates them (by hash
// bucket), so an answer is byte for byte what qemu-ga 7.2 would send for the same value.
import { RawJson } from '../../wire/answer';
import { isJsonPunctuation, isJsonSpace, StringEnds } from '../../wire/request';
import type { QSchema, QType } from './schema';

export { qemuString } from '../../utf8';

const BUCKETS = 512;

/** qemu's tdb_hash (qobject/qdict.c), in unsigned 32-bit arithmetic. */
function tdbHash(name: string): number {
  const bytes = Buffer.from(name, 'utf8');
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + (bytes[i] << (((i * 5) % 24) >>> 0))) >>> 0;
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}

const orderCache = new Map<string, string[]>();

/**
 * Keys in QDict iteration order: by bucket, and within a bucket the last inserted first (QDict
 * inserts at the head of a bucket's list).
 */
export function qdictOrder(keys: string[]): string[] {
  const id = keys.join('\u0000');
  let order = orderCache.get(id);
  if (!order) {
    order = keys
      .map((k, i) => ({ k, i, b: tdbHash(k) % BUCKETS }))
      .sort((x, y) => x.b - y.b || y.i - x.i)
      .map((e) => e.k);
    if (orderCache.size < 4096) orderCache.set(id, order);
  }
  return order;
}

/** A string as qemu's JSON writer quotes it. */
export function qmpQuote(s: string): string {
  // The common case, printable ASCII with nothing to escape, needs no pass per character.
  if (/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(s)) return `"${s}"`;
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp >= 0xd800 && cp <= 0xdfff)
      out += '\\uFFFD'; // a lone surrogate is no character
    else if (cp < 0x10000) out += `\\u${hex4(cp)}`;
    else {
      const c = cp - 0x10000;
      out += `\\u${hex4(0xd800 | (c >> 10))}\\u${hex4(0xdc00 | (c & 0x3ff))}`;
    }
  }
  return out + '"';
}

/**
 * A string's bytes as qemu holds them: UTF-8, with a NUL as 0xC0 0x80 (its JSON parser's
 * "modified UTF-8", so that C strings carry it), which the JSON writer turns back into \u0000.
 */
export function qemuBytes(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (!b.includes(0)) return b;
  const out: number[] = [];
  for (const c of b) {
    if (c === 0) out.push(0xc0, 0x80);
    else out.push(c);
  }
  return Buffer.from(out);
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/**
 * A double as printf's %.17g writes it (qemu's json_writer_double); integers as integers. An
 * infinity (what JSON.parse makes of 1e400, as qemu's strtod does) is "inf", which is no JSON.
 */
function number(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e17) return String(n);
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : n < 0 ? '-inf' : 'nan';
  let s = n.toPrecision(17);
  let exp = '';
  const e = s.indexOf('e');
  if (e >= 0) {
    exp = s.slice(e);
    s = s.slice(0, e);
    const sign = exp[1];
    const digits = exp.slice(2).padStart(2, '0');
    exp = `e${sign}${digits}`;
  }
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s + exp;
}

/** `value` as qemu-ga writes it. A RawJson is taken as its text. undefined members are left out. */
export function qmpJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (value instanceof RawJson) return value.json;
  switch (typeof value) {
    case 'string':
      return qmpQuote(value);
    case 'number':
      return number(value);
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(value)) return value.length === 0 ? '[]' : `[${value.map(qmpJson).join(', ')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined);
      if (keys.length === 0) return '{}';
      return `{${qdictOrder(keys)
        .map((k) => `${qmpQuote(k)}: ${qmpJson(obj[k])}`)
        .join(', ')}}`;
    }
    default:
      throw new TypeError(`cannot write ${typeof value} as JSON`);
  }
}

/**
 * `v` as qemu read it, when JSON.parse lost it: an integer that is not a safe one is read again
 * from the request's text at `path` (integerAt); undefined for anything else.
 */
export function exactInteger(v: unknown, json: Buffer, path: readonly string[]): bigint | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v) || Number.isSafeInteger(v)) return undefined;
  return integerAt(json, path);
}

/**
 * The integer written at `path` (object members from the top: ['id'], ['arguments', 'id']) in a
 * request's JSON text, exactly, when it is one: JSON.parse keeps only the double nearest to it,
 * where qemu reads an int64 or uint64. The last member of a name counts, as for JSON.parse.
 * Only asked of a number that is not a safe integer: the request has parsed, so the text is JSON.
 */
export function integerAt(json: Buffer, path: readonly string[]): bigint | undefined {
  const n = json.length;
  let i = 0;
  let found: string | undefined;
  const space = () => {
    while (i < n && isJsonSpace(json[i])) i++;
  };
  const string = (): string => {
    const start = i++;
    while (i < n && json[i] !== 0x22) i += json[i] === 0x5c ? 2 : 1;
    i++;
    return json.toString('utf8', start, i);
  };
  /** Past one value; its text when it is a scalar. */
  const value = (): string | undefined => {
    space();
    const c = json[i];
    if (c === 0x22) return string();
    if (c !== 0x7b && c !== 0x5b) {
      const start = i;
      while (i < n && !(isJsonPunctuation(json[i]) || isJsonSpace(json[i]))) i++;
      return json.toString('latin1', start, i);
    }
    for (let depth = 0; i < n;) {
      const d = json[i];
      if (d === 0x22) {
        string();
        continue;
      }
      i++;
      if (d === 0x7b || d === 0x5b) depth++;
      else if ((d === 0x7d || d === 0x5d) && --depth === 0) break;
    }
    return undefined;
  };
  const members = (level: number): void => {
    i++; // {
    for (;;) {
      space();
      if (i >= n || json[i] === 0x7d) {
        i++;
        return;
      }
      const key = JSON.parse(string()) as string;
      space();
      i++; // :
      space();
      if (key !== path[level]) value();
      else if (level === path.length - 1) found = value();
      else if (json[i] === 0x7b) {
        found = undefined; // a later member of the name replaces an earlier one whole
        members(level + 1);
      } else value();
      space();
      if (json[i] === 0x2c) i++;
    }
  };
  space();
  if (json[i] === 0x7b) members(0);
  return found !== undefined && /^-?(0|[1-9][0-9]*)$/.test(found) ? BigInt(found) : undefined;
}

/**
 * The arguments written as numbers with a fraction or an exponent (`5.0`, `1e3`) in a request's
 * JSON text, named as qemu's errors name them: `count`, `vcpus[0].logical-id`. qemu reads those
 * as doubles, which no int argument takes, where JSON.parse makes 5 of `5.0`. Only asked of a
 * request the framer saw such a number in (Framed.fractions); the request has parsed, and has no
 * duplicate key. Only members `schema` declares are named (any other is refused anyway): a
 * hostile request's long unknown keys build no names. Linear in the text.
 */
export function fractionArgs(json: Buffer, schema: QSchema): Set<string> {
  const names = new Set<string>();
  const n = json.length;
  let i = 0;
  const space = () => {
    while (i < n && isJsonSpace(json[i])) i++;
  };
  const strings = new StringEnds(json); // no byte searched twice: the walk only goes on
  /** Past the string whose quote is at i. */
  const string = () => {
    const close = strings.closing(i);
    i = close < 0 ? n : close + 1;
  };
  /** Past one value of type `t` named `name` ('' for "arguments" itself); neither: not an argument. */
  const value = (name: string | undefined, t: QType | undefined, top = false): void => {
    space();
    const c = json[i];
    if (c === 0x22) return string();
    if (c === 0x7b || c === 0x5b) {
      const members: Record<string, { type: QType }> | undefined =
        c === 0x7b ? (top ? { arguments: { type: { object: schema } } } : objectOf(t)) : undefined;
      const items = c === 0x5b ? arrayOf(t) : undefined;
      i++;
      for (let index = 0; ; index++) {
        space();
        if (json[i] === 0x2c) i++;
        space();
        if (i >= n || json[i] === 0x7d || json[i] === 0x5d) {
          i++;
          return;
        }
        let member: string | undefined;
        let type: QType | undefined;
        if (c === 0x7b) {
          const start = i;
          string();
          if (members) {
            const key = JSON.parse(json.toString('utf8', start, i)) as string;
            if (Object.prototype.hasOwnProperty.call(members, key)) {
              type = members[key].type;
              member = top ? '' : name ? `${name}.${key}` : key;
            }
          }
          space();
          i++; // :
        } else if (items) {
          type = items;
          member = `${name}[${index}]`;
        }
        value(member, type);
      }
    }
    const start = i;
    while (i < n && !(isJsonPunctuation(json[i]) || isJsonSpace(json[i]))) i++;
    if (name !== undefined && /^-?[0-9].*[.eE]/.test(json.toString('latin1', start, i))) names.add(name);
  };
  value(undefined, undefined, true);
  return names;
}

/** The members of an object type (or of an alternate's object). */
function objectOf(t: QType | undefined): QSchema | undefined {
  if (t === undefined || typeof t === 'string') return undefined;
  if ('object' in t) return t.object;
  if ('alternate' in t)
    for (const a of t.alternate) {
      const o = objectOf(a);
      if (o) return o;
    }
  return undefined;
}

/** The items' type of an array type (or of an alternate's array). */
function arrayOf(t: QType | undefined): QType | undefined {
  if (t === undefined || typeof t === 'string') return undefined;
  if ('array' in t) return t.array;
  if ('alternate' in t)
    for (const a of t.alternate) {
      const items = arrayOf(a);
      if (items) return items;
    }
  return undefined;
}
