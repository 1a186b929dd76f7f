// The wire format of ../shared/PROTOCOL.md "Framing": line framing and answer encoding.
import { randomBytes } from 'crypto';

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

// Go's encoding/json escapes these even inside strings; answers match it byte for byte.
const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};
const GO_ESCAPE_RE = /[<>&\u2028\u2029]/g;

function goJson(value: unknown): string {
  const s = jsonWithBigInts(value);
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
 * millisecond the port is not fed (file-read with large chunks, issue 4).
 */
export class RawJson {
  /**
   * The JSON text, in pieces: strings, or the bytes of text (a large base64 payload, never a
   * string). ASCII only: base64 and JSON punctuation, so encodeRawReturn copies the pieces into
   * the answer as bytes with no encoding pass.
   */
  readonly parts: readonly (string | Buffer)[];
  constructor(json: string | readonly (string | Buffer)[]) {
    this.parts = typeof json === 'string' ? [json] : json;
  }
  get json(): string {
    return this.parts.map((p) => (typeof p === 'string' ? p : p.toString('latin1'))).join('');
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
}

/** Parses one line; throws Error with a readable message (and `tag` when one was found). */
export function parseRequest(line: Buffer | string): Request {
  let value: unknown;
  try {
    value = JSON.parse(typeof line === 'string' ? line : line.toString('utf8'));
  } catch (e) {
    throw new RequestError(`Invalid JSON: ${(e as Error).message}`, '');
  }
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
