// JSON.parse that keeps integers past 2^53 exact, as bigints. The agent prints 64-bit values with
// all their digits, as Go does (an overlayfs inode number with xino has its top bit set); plain
// JSON.parse would round them. Node 20's JSON.parse gives a reviver no source text, so such
// numbers are first turned into marked strings, which the reviver turns into bigints.
import { randomBytes } from 'crypto';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Digits past which an integer may not be exact as a number (2^53 has 16). */
const LONG = 16;
/** Marks a replaced number: a NUL no answer string carries (the agent refuses NUL in paths), then a nonce. */
const MARK = `\u0000${randomBytes(6).toString('hex')}:`;
const MARK_JSON = JSON.stringify(MARK).slice(1, -1);

/**
 * Parses JSON text like JSON.parse; an integer outside ±Number.MAX_SAFE_INTEGER comes back as a
 * bigint (every other number, and every string, as JSON.parse gives it).
 */
export function parseExactJson(text: string): unknown {
  let out = '';
  let from = 0;
  let replaced = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22) {
      // a string: skip to its closing quote
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      continue;
    }
    if (ch !== 0x2d && (ch < 0x30 || ch > 0x39)) continue;
    let end = i + 1;
    while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
    const token = text.slice(i, end);
    const digits = token.charCodeAt(0) === 0x2d ? token.length - 1 : token.length;
    if (digits >= LONG && /^-?\d+$/.test(token)) {
      const v = BigInt(token);
      if (v > MAX_SAFE || v < -MAX_SAFE) {
        out += `${text.slice(from, i)}"${MARK_JSON}${token}"`;
        from = end;
        replaced = true;
      }
    }
    i = end - 1;
  }
  if (!replaced) return JSON.parse(text);
  return JSON.parse(out + text.slice(from), (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(MARK) ? BigInt(value.slice(MARK.length)) : value,
  );
}

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}
