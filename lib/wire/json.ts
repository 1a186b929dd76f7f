// JSON text as Go's encoding/json writes it (the reference's answers, byte for byte), and the
// words error messages use for a host's values.
import { randomBytes } from 'crypto';

// Lone UTF-16 surrogates in JSON text. A host can send one ("\udc00": JSON.parse keeps it), and
// JSON.stringify writes it back as that escape, which strict parsers refuse. Go's encoding/json,
// the reference's, reads it as U+FFFD and writes U+FFFD; so does everything here. Plain regular
// expressions: String.prototype.toWellFormed needs Node 20, and the agent runs on 18.

// JSON.stringify writes paired surrogates as they are and only lone ones as \ud800-\udfff
// escapes; an escaped backslash is matched as a pair so that "\\ud800" (text) is left alone.
const LONE_SURROGATE_ESCAPE = /\\(?:\\|ud[89a-f][0-9a-f]{2})/g;

/** JSON text from JSON.stringify, with each lone surrogate written as U+FFFD. */
export function wellFormedJson(json: string): string {
  if (!json.includes('\\u')) return json;
  return json.replace(LONE_SURROGATE_ESCAPE, (m) => (m === '\\\\' ? m : '\ufffd'));
}

/** A value a host sent, quoted for an error message: JSON text, lone surrogates as U+FFFD. */
export function quote(value: unknown): string {
  return wellFormedJson(JSON.stringify(value) ?? String(value));
}

// Go's encoding/json escapes these even inside strings, and writes a lone surrogate as U+FFFD
// (wellFormedJson); answers match it byte for byte. Backspace and form feed are \u0008 and
// \u000c before Go 1.22, which 0.7.1 predates, where JSON.stringify writes \b and \f (an escaped
// backslash is matched whole, so that the b of "\\b" is left alone).
const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
  '\\\\': '\\\\',
  '\\b': '\\u0008',
  '\\f': '\\u000c',
};
const GO_ESCAPE_RE = /[<>&\u2028\u2029]|\\[\\bf]/g;

/** The JSON text Go's encoding/json writes for `value` (bigints as digits, see jsonWithBigInts). */
export function goJson(value: unknown): string {
  const s = wellFormedJson(jsonWithBigInts(value));
  return GO_ESCAPE_RE.test(s) ? s.replace(GO_ESCAPE_RE, (c) => GO_ESCAPES[c]) : s;
}

/**
 * The JSON text Go's encoding/json writes for a Go string holding `bytes` (a name the kernel
 * gives as bytes): each byte that does not begin valid UTF-8 is the escape `\ufffd`, where a
 * U+FFFD that is there as text is written as it is; the rest as goJson writes text.
 */
export function goBytesJson(bytes: Buffer): string {
  let out = '';
  let start = 0;
  for (let i = 0; i < bytes.length;) {
    const n = utf8Length(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += `${goJson(bytes.toString('utf8', start, i)).slice(1, -1)}\\ufffd`;
    start = ++i;
  }
  return `"${out}${goJson(bytes.toString('utf8', start)).slice(1, -1)}"`;
}

/** A name's JSON as Go writes it: from its `bytes` when it has them (not UTF-8), else from its text. */
export function goNameJson(text: string, bytes: Buffer | undefined): string {
  return bytes ? goBytesJson(bytes) : goJson(text);
}

/**
 * The length of the UTF-8 sequence at bytes[i], or 0 where none begins there, as Go's
 * utf8.DecodeRune takes it: no overlong forms, surrogates or code points past U+10FFFF.
 */
function utf8Length(b: Buffer, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c === 0xe0) lo = 0xa0;
    else if (c === 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c === 0xf0) lo = 0x90;
    else if (c === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + n > b.length || b[i + 1] < lo || b[i + 1] > hi) return 0;
  for (let k = 2; k < n; k++) if (b[i + k] < 0x80 || b[i + k] > 0xbf) return 0;
  return n;
}

/** JSON.stringify, with any bigint in `value` written as its plain digits (the way Go prints an int64). */
export function jsonWithBigInts(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (e) {
    if (!(e instanceof TypeError && /BigInt/.test(e.message))) throw e;
    return stringifyWithBigInts(value);
  }
}

/**
 * JSON.stringify with bigints written as plain digits, the way Go prints an int64 or uint64
 * (file-stat: an inode number past 2^53). Each bigint goes out first as a string holding a
 * marker no other string can hold (a control character and a random nonce), which is then
 * replaced by the digits.
 */
function stringifyWithBigInts(value: unknown): string {
  const nonce = randomBytes(8).toString('hex');
  const big: bigint[] = [];
  const s = JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'bigint' ? `\u0000${nonce}:${big.push(v) - 1}` : v,
  );
  return s.replace(new RegExp(`"\\\\u0000${nonce}:(\\d+)"`, 'g'), (_m, i: string) => big[Number(i)].toString());
}

/** "a string", "an array", "null", ... for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}
