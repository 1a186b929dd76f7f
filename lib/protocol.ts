// The wire format of docs/PROTOCOL.md "Framing": line framing and answer encoding.
import { randomBytes } from 'crypto';
import { wellFormedJson } from './wellformed';

/**
 * Longest request line accepted, in bytes (16 MiB: a file-write of up to ~11.9 MiB of data fits;
 * its base64 is 4/3 of that, plus the JSON around it).
 * A longer line is answered with one error and skipped up to its newline without being held
 * in memory.
 */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

const NL = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines (LF or CRLF). Buffers at most maxLine bytes of a pending
 * line; past that it reports the overflow once and drops bytes until the next newline.
 */
export class LineFramer {
  private parts: Buffer[] = [];
  private size = 0;
  private discarding = false;

  constructor(
    private readonly onLine: (line: Buffer) => void,
    private readonly onOverflow: () => void,
    private readonly maxLine = MAX_LINE_BYTES,
  ) {}

  /** Bytes of the pending (incomplete) line held in memory. */
  get buffered(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.discarding) {
        if (nl === -1) return;
        this.discarding = false;
      } else if (this.size + (end - start) > this.maxLine + 1) {
        // +1 leaves room for the CR of a CRLF line of exactly maxLine bytes.
        this.parts = [];
        this.size = 0;
        this.onOverflow();
        if (nl === -1) {
          this.discarding = true;
          return;
        }
      } else if (nl === -1) {
        this.parts.push(chunk.subarray(start));
        this.size += chunk.length - start;
        return;
      } else {
        let line: Buffer;
        if (this.size === 0) {
          line = chunk.subarray(start, end);
        } else {
          this.parts.push(chunk.subarray(start, end));
          line = Buffer.concat(this.parts, this.size + (end - start));
          this.parts = [];
          this.size = 0;
        }
        if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
        if (line.length > this.maxLine) this.onOverflow(); // maxLine + 1 bytes without a CR
        else this.onLine(line);
      }
      start = end + 1;
    }
  }

  /** Forgets a partial line (the peer went away). */
  reset(): void {
    this.parts = [];
    this.size = 0;
    this.discarding = false;
  }
}

// Go's encoding/json escapes these even inside strings, and writes a lone surrogate as U+FFFD
// (wellFormedJson); answers match it byte for byte.
const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};
const GO_ESCAPE_RE = /[<>&\u2028\u2029]/g;

/** The JSON text Go's encoding/json writes for `value` (bigints as digits, see jsonWithBigInts). */
export function goJson(value: unknown): string {
  const s = wellFormedJson(jsonWithBigInts(value));
  return GO_ESCAPE_RE.test(s) ? s.replace(GO_ESCAPE_RE, (c) => GO_ESCAPES[c]) : s;
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
  const s = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `\u0000${nonce}:${big.push(v) - 1}` : v));
  return s.replace(new RegExp(`"\\\\u0000${nonce}:(\\d+)"`, 'g'), (_m, i: string) => big[Number(i)].toString());
}

/**
 * A return value that is already JSON text, exactly as Go's encoding/json would write it. For
 * answers whose bulk needs no escaping (base64): JSON.stringify would scan megabytes of it on
 * the main thread for nothing, and every millisecond the main thread spends there is a
 * millisecond the port is not fed (file-read with large chunks, issue 4). And for answers built
 * a piece at a time (directory-list), which then never exist as one string.
 */
export class RawJson {
  /**
   * The JSON text, in pieces: ASCII strings (JSON punctuation), or the UTF-8 bytes of text, each
   * whole characters (a large base64 payload, a directory listing's entries: never one string),
   * so encodeRawReturn copies the pieces into the answer as bytes with no encoding pass.
   */
  readonly parts: readonly (string | Buffer)[];
  constructor(json: string | readonly (string | Buffer)[]) {
    this.parts = typeof json === 'string' ? [json] : json;
  }
  get json(): string {
    return this.parts.map((p) => (typeof p === 'string' ? p : p.toString('utf8'))).join('');
  }
}

/** `{"return":VALUE,"tag":TAG}\n` */
export function encodeReturn(value: unknown, tag: string): string {
  if (value instanceof RawJson) return `{"return":${value.json},"tag":${goJson(tag)}}\n`;
  return goJson({ return: value === undefined ? null : value, tag }) + '\n';
}

/**
 * encodeReturn() of a RawJson, straight into the bytes of the answer line: one buffer, each
 * piece copied in (a 1 MiB file-read answer costs a memcpy, where a UTF-8 pass over a joined
 * string took milliseconds of the main thread, during which nothing fed the port).
 */
export function encodeRawReturn(value: RawJson, tag: string): Buffer {
  const head = '{"return":';
  const tail = `,"tag":${goJson(tag)}}\n`;
  let len = head.length + Buffer.byteLength(tail);
  for (const p of value.parts) len += p.length;
  const out = Buffer.allocUnsafe(len);
  let off = out.write(head, 0, 'latin1');
  for (const p of value.parts) off += typeof p === 'string' ? out.write(p, off, 'latin1') : p.copy(out, off);
  out.write(tail, off, 'utf8');
  return out;
}

/** `{"error":{"bufb64":BASE64(message),"code":N},"tag":TAG}\n` */
export function encodeError(message: string, code: number, tag: string): string {
  return goJson({ error: { bufb64: Buffer.from(message, 'utf8').toString('base64'), code }, tag }) + '\n';
}

/** A request line, parsed and checked for shape (not yet for its command's arguments). */
export interface Request {
  execute: string;
  arguments: Record<string, unknown>;
  tag: string;
  /**
   * Gives back the memory of the arguments a decoder decoded (see Base64Text); call it once the
   * request is answered. Does nothing when there are none.
   */
  release(): void;
}

/**
 * Strict base64 (standard alphabet, padded, as Go's encoding/json writes []byte; line breaks
 * are skipped like Go does). Buffer.from alone silently drops bad characters, so the decoded
 * length is checked against the length the text implies.
 */
export function decodeBase64(text: string): Buffer | undefined {
  let s = text;
  if (s.length % 4 !== 0 || s.includes('-') || s.includes('_')) {
    if (!/[\r\n]/.test(s)) return undefined;
    s = s.replace(/[\r\n]/g, '');
    if (s.length % 4 !== 0 || s.includes('-') || s.includes('_')) return undefined;
  }
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const buf = Buffer.from(s, 'base64');
  return buf.length === (s.length / 4) * 3 - pad ? buf : undefined;
}

/** Decoded bytes in memory that is given back (and may then be reused) with release(). */
export interface DecodedBytes {
  readonly bytes: Buffer;
  release(): void;
}

/**
 * Decodes line[start, end) as strict base64 with no line breaks (decodeBase64's rules otherwise);
 * undefined when it is not that. The agent's (lib/decode.ts) decodes in the addon, straight from
 * the line's bytes into reused buffers.
 */
export type Base64Decoder = (line: Buffer, start: number, end: number) => DecodedBytes | undefined;

/**
 * A long base64 string value cut out of a request line (cutBase64Strings), decoded. parseRequest
 * puts one in "arguments" where JSON.parse would have put the string; checkArgs turns it into the
 * string for a "string" argument, or gives a "base64" one its bytes. It holds the request line
 * (for `text`): it belongs to the synchronous part of a dispatch, not to a handler.
 */
export class Base64Text {
  constructor(
    private readonly line: Buffer,
    private readonly start: number,
    private readonly end: number,
    readonly decoded: DecodedBytes,
  ) {}

  /** The string's value: it is base64, so ASCII, and has no escapes. */
  get text(): string {
    return this.line.toString('latin1', this.start, this.end);
  }
}

/** Lines at least this long are searched for long base64 strings to cut out (cutBase64Strings). */
const CUT_LINE_BYTES = 16 * 1024;
/** Strings at least this long are cut out; shorter ones cost JSON.parse next to nothing. */
const CUT_STRING_BYTES = 8 * 1024;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/**
 * What stands for a cut-out string in the rest of the line: NUL, this process's nonce and the
 * string's index. No string a host sends can be one without knowing the nonce.
 */
const CUT_MARK = `\u0000ember-ga-cut:${randomBytes(12).toString('hex')}:`;
const CUT_MARK_JSON = JSON.stringify(CUT_MARK).slice(0, -1); // opening quote and escaped mark

/**
 * A request line with its long base64 string values cut out: `rest` is the line with each
 * replaced by a short marker string, `cuts` the strings, decoded. A 1 MiB file-write line then
 * costs a base64 decode instead of a UTF-8 decode and a JSON.parse pass over 1.4 MB (with the
 * garbage both leave), which kept the main thread from reading the port.
 *
 * Exact by construction: a string is cut only when it has no escapes and its text is strict
 * base64, so its bytes are its value, the same as JSON.parse would give; and only a value, never
 * a key. Strings are found the way JSON finds them: outside strings there are no quotes, and
 * inside one a backslash escapes the next character. Undefined when nothing is cut.
 */
function cutBase64Strings(line: Buffer, decode: Base64Decoder): { rest: Buffer; cuts: Base64Text[] } | undefined {
  const pieces: Buffer[] = [];
  const cuts: Base64Text[] = [];
  let copied = 0;
  let pos = 0;
  let backslash = line.indexOf(BACKSLASH);
  for (;;) {
    const open = line.indexOf(QUOTE, pos);
    if (open < 0) break;
    let from = open + 1;
    let escaped = false;
    let close: number;
    for (;;) {
      close = line.indexOf(QUOTE, from);
      if (close < 0) {
        // Unterminated: JSON.parse says so.
        for (const c of cuts) c.decoded.release();
        return undefined;
      }
      if (backslash !== -1 && backslash < from) backslash = line.indexOf(BACKSLASH, from);
      if (backslash === -1 || backslash > close) break;
      escaped = true;
      from = backslash + 2; // the escaped character is never the closing quote
    }
    pos = close + 1;
    if (escaped || close - open - 1 < CUT_STRING_BYTES || isKey(line, pos)) continue;
    const decoded = decode(line, open + 1, close);
    if (!decoded) continue; // JSON.parse gives its value (or its error)
    pieces.push(line.subarray(copied, open), Buffer.from(`${CUT_MARK_JSON}${cuts.length}"`, 'latin1'));
    cuts.push(new Base64Text(line, open + 1, close, decoded));
    copied = pos;
  }
  if (cuts.length === 0) return undefined;
  pieces.push(line.subarray(copied));
  return { rest: Buffer.concat(pieces), cuts };
}

/** Is the string that ended before `pos` an object's key (a colon follows it)? */
function isKey(line: Buffer, pos: number): boolean {
  let i = pos;
  while (i < line.length && (line[i] === 0x20 || line[i] === 0x09 || line[i] === 0x0a || line[i] === 0x0d)) i++;
  return line[i] === 0x3a;
}

/**
 * JSON.parse of a line. With a decoder, long base64 strings are cut out first
 * (cutBase64Strings): each comes back as a Base64Text when it is a value of the request's
 * "arguments" object, and as its text anywhere else. `cuts` are all of them, for their release.
 * An invalid line is parsed whole, so its error is JSON.parse's own, positions included.
 */
function parseJson(line: Buffer | string, decode?: Base64Decoder): { value: unknown; cuts: Base64Text[] } {
  const cut = decode && typeof line !== 'string' && line.length >= CUT_LINE_BYTES ? cutBase64Strings(line, decode) : undefined;
  if (cut) {
    const found: { holder: Record<string, unknown>; key: string; cut: Base64Text }[] = [];
    try {
      const value: unknown = JSON.parse(cut.rest.toString('utf8'), function (this: Record<string, unknown>, key: string, v: unknown) {
        if (typeof v !== 'string' || !v.startsWith(CUT_MARK)) return v;
        const c = cut.cuts[Number(v.slice(CUT_MARK.length))];
        found.push({ holder: this, key, cut: c });
        return c;
      });
      const args = value !== null && typeof value === 'object' ? (value as Record<string, unknown>).arguments : undefined;
      // Anywhere but as a value of "arguments" (an object), a cut string is the string.
      for (const f of found) if (f.holder !== args || Array.isArray(args)) f.holder[f.key] = f.cut.text;
      return { value: value instanceof Base64Text ? value.text : value, cuts: cut.cuts };
    } catch {
      for (const c of cut.cuts) c.decoded.release();
      // Parsed whole below, for JSON.parse's own message.
    }
  }
  return { value: JSON.parse(typeof line === 'string' ? line : line.toString('utf8')), cuts: [] };
}

/**
 * Parses one line; throws Error with a readable message (and `tag` when one was found). With a
 * `decodeBase64` decoder (the dispatcher's), a long base64 string value of "arguments" (a
 * file-write chunk) comes as a Base64Text, already decoded, until release(); without one, every
 * value is what JSON.parse gives.
 */
export function parseRequest(line: Buffer | string, opts: { decodeBase64?: Base64Decoder } = {}): Request {
  let value: unknown;
  let cuts: Base64Text[];
  try {
    ({ value, cuts } = parseJson(line, opts.decodeBase64));
  } catch (e) {
    throw new RequestError(`Invalid JSON: ${(e as Error).message}`, '');
  }
  // Only the decoded bytes: a Base64Text holds the whole line, which must not live on with this.
  const decoded = cuts.map((c) => c.decoded);
  const release = decoded.length === 0 ? noRelease : () => {
    for (const d of decoded) d.release();
  };
  try {
    return { ...checkShape(value), release };
  } catch (e) {
    release();
    throw e;
  }
}

const noRelease = () => {};

/** The request object's execute, arguments and tag, checked for type. */
function checkShape(value: unknown): Omit<Request, 'release'> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RequestError(`Invalid request: expected a JSON object, got ${describe(value)}`, '');
  }
  const obj = value as Record<string, unknown>;
  let tag = '';
  if (obj.tag !== undefined && obj.tag !== null) {
    if (typeof obj.tag !== 'string') throw new RequestError(`Invalid request: "tag" must be a string, got ${describe(obj.tag)}`, '');
    tag = obj.tag;
  }
  if (typeof obj.execute !== 'string') {
    throw new RequestError(
      obj.execute === undefined ? 'Invalid request: "execute" is missing' : `Invalid request: "execute" must be a string, got ${describe(obj.execute)}`,
      tag,
    );
  }
  let args: Record<string, unknown> = {};
  if (obj.arguments !== undefined && obj.arguments !== null) {
    if (typeof obj.arguments !== 'object' || Array.isArray(obj.arguments)) {
      throw new RequestError(`Invalid request: "arguments" must be an object, got ${describe(obj.arguments)}`, tag);
    }
    args = obj.arguments as Record<string, unknown>;
  }
  return { execute: obj.execute, arguments: args, tag };
}

export class RequestError extends Error {
  constructor(message: string, readonly tag: string) {
    super(message);
  }
}

/** "a string", "an array", "null", ... for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}
