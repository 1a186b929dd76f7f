// Request lines: JSON.parse, with long base64 string values cut out and decoded first, and the
// request's shape checked (not yet its command's arguments).
import { randomBytes } from 'crypto';
import { Base64Text, type Base64Decoder, type DecodedBytes } from './base64';
import { AnswerError, withoutStacks } from '../errors';
import { describe } from './json';
import { beforeParse } from '../memory';

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
 * Lines at least this long are searched for long base64 strings to cut out (cutBase64Strings),
 * and strings at least this long are cut: a 4 KiB file-write's 5.4 KB of base64 already cost
 * JSON.parse more than finding and decoding it; shorter ones cost next to nothing.
 */
const CUT_LINE_BYTES = 4 * 1024;
const CUT_STRING_BYTES = 4 * 1024;
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
  const strings = new StringEnds(line);
  let copied = 0;
  let pos = 0;
  for (;;) {
    const open = line.indexOf(QUOTE, pos);
    if (open < 0) break;
    const close = strings.closing(open);
    if (close < 0) {
      // Unterminated: JSON.parse says so.
      for (const c of cuts) c.decoded.release();
      return undefined;
    }
    pos = close + 1;
    if (strings.escaped || close - open - 1 < CUT_STRING_BYTES || isKey(line, pos)) continue;
    const decoded = decode(line, open + 1, close);
    if (!decoded) continue; // JSON.parse gives its value (or its error)
    pieces.push(line.subarray(copied, open), Buffer.from(`${CUT_MARK_JSON}${cuts.length}"`, 'latin1'));
    cuts.push(new Base64Text(() => line.toString('latin1', open + 1, close), decoded));
    copied = pos;
  }
  if (cuts.length === 0) return undefined;
  pieces.push(line.subarray(copied));
  return { rest: Buffer.concat(pieces), cuts };
}

/**
 * Finds where the strings of one line end, the way JSON does: outside strings there are no
 * quotes, and inside one a backslash escapes the next character. The next backslash is kept
 * between calls, so that no byte of the line is searched twice.
 */
export class StringEnds {
  private backslash: number;
  /** The next quote at or after where it was last looked for (a string of escapes is not searched again per escape). */
  private quote = -2;
  /** Whether the string closing() last found has an escape. */
  escaped = false;

  constructor(private readonly line: Buffer) {
    this.backslash = line.indexOf(BACKSLASH);
  }

  /** The quote that closes the string opened at `open`, or -1 when none does. */
  closing(open: number): number {
    const line = this.line;
    this.escaped = false;
    for (let from = open + 1; ;) {
      if (this.quote !== -1 && this.quote < from) this.quote = line.indexOf(QUOTE, from);
      const close = this.quote;
      if (close < 0) return -1;
      if (this.backslash !== -1 && this.backslash < from) this.backslash = line.indexOf(BACKSLASH, from);
      if (this.backslash === -1 || this.backslash > close) return close;
      this.escaped = true;
      from = this.backslash + 2; // the escaped character is never the closing quote
    }
  }
}

/** JSON's white space. */
export function isJsonSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** The bytes that are JSON tokens on their own: braces, brackets, comma and colon. */
export function isJsonPunctuation(b: number): boolean {
  return b === 0x7b || b === 0x7d || b === 0x5b || b === 0x5d || b === 0x2c || b === 0x3a;
}

/** Is the string that ended before `pos` an object's key (a colon follows it)? */
function isKey(line: Buffer, pos: number): boolean {
  let i = pos;
  while (i < line.length && isJsonSpace(line[i])) i++;
  return line[i] === 0x3a;
}

/** JSON.parse, its SyntaxError made without a stack: a bad line's error is an answer (withoutStacks). */
function parseText(text: string): unknown {
  return withoutStacks(() => JSON.parse(text) as unknown);
}

/**
 * JSON.parse of a line. With a decoder, long base64 strings are cut out first
 * (cutBase64Strings): each comes back as a Base64Text when it is a value of the request's
 * "arguments" object, and as its text anywhere else. `cuts` are all of them, for their release.
 * An invalid line is parsed whole, so its error is JSON.parse's own, positions included.
 */
export function parseJson(line: Buffer | string, decode?: Base64Decoder): { value: unknown; cuts: Base64Text[] } {
  const cut =
    decode && typeof line !== 'string' && line.length >= CUT_LINE_BYTES ? cutBase64Strings(line, decode) : undefined;
  if (cut) return placeCuts(cut.rest, cut.cuts, () => line);
  return { value: parseText(typeof line === 'string' ? line : line.toString('utf8')), cuts: [] };
}

/**
 * A string its framer cut out of a request as the request arrived, decoded (JsonStreamFramer):
 * the request's bytes keep its quotes, with nothing between them at `at`.
 */
export interface ArrivedCut {
  readonly at: number;
  readonly decoded: DecodedBytes;
  /** Its text, made again from the decoded bytes (for the rare request that needs it whole). */
  text(): Buffer;
}

/**
 * parseJson for a request whose framer already cut strings out (ArrivedCut): the same value,
 * the same Base64Text for each cut string that is a value of "arguments", and the same error for
 * an invalid request (it is then parsed whole, its strings put back). Other long strings in it
 * are left to JSON.parse.
 */
export function parseJsonCut(bytes: Buffer, arrived: readonly ArrivedCut[]): { value: unknown; cuts: Base64Text[] } {
  const pieces: Buffer[] = [];
  const cuts: Base64Text[] = [];
  let from = 0;
  arrived.forEach((c, i) => {
    pieces.push(bytes.subarray(from, c.at), Buffer.from(`${CUT_MARK_JSON.slice(1)}${i}`, 'latin1'));
    cuts.push(new Base64Text(() => c.text().toString('latin1'), c.decoded));
    from = c.at;
  });
  pieces.push(bytes.subarray(from));
  return placeCuts(Buffer.concat(pieces), cuts, () => wholeRequest(bytes, arrived));
}

/** A request with the strings its framer cut out put back: the bytes as they arrived. */
export function wholeRequest(bytes: Buffer, arrived: readonly ArrivedCut[]): Buffer {
  const pieces: Buffer[] = [];
  let from = 0;
  for (const c of arrived) {
    pieces.push(bytes.subarray(from, c.at), c.text());
    from = c.at;
  }
  pieces.push(bytes.subarray(from));
  return Buffer.concat(pieces);
}

/**
 * JSON.parse of `rest` (a request with its cut strings' markers), each cut string put back where
 * JSON.parse put its marker, as a value of "arguments" (an object). One found anywhere else (a
 * nested value, a key, a duplicate key's loser, a "__proto__") is needed as the string it is,
 * and an invalid request needs JSON.parse's own message: `whole()` is then parsed instead.
 */
function placeCuts(
  rest: Buffer,
  cuts: Base64Text[],
  whole: () => Buffer | string,
): { value: unknown; cuts: Base64Text[] } {
  try {
    const value: unknown = parseText(rest.toString('utf8'));
    const args = value !== null && typeof value === 'object' ? (value as Record<string, unknown>).arguments : undefined;
    let placed = 0;
    if (args !== null && typeof args === 'object' && !Array.isArray(args)) {
      const obj = args as Record<string, unknown>;
      for (const key of Object.keys(obj)) {
        const v = obj[key];
        if (typeof v !== 'string' || !v.startsWith(CUT_MARK) || key === '__proto__') continue;
        obj[key] = cuts[Number(v.slice(CUT_MARK.length))];
        placed++;
      }
    }
    if (placed === cuts.length) return { value, cuts };
  } catch {
    // Parsed whole below, for JSON.parse's own message.
  }
  const line = whole(); // before the release: a cut's text is made from its decoded bytes
  for (const c of cuts) c.decoded.release();
  return { value: parseText(typeof line === 'string' ? line : line.toString('utf8')), cuts: [] };
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
  // Only a line longer than the depth limit can pass either limit (MAX_REQUEST_TOKENS is larger).
  if (typeof line !== 'string' && line.length > MAX_NESTING_DEPTH) {
    const { tokens, depth } = countJson(line, MAX_REQUEST_TOKENS, MAX_NESTING_DEPTH);
    if (tokens > MAX_REQUEST_TOKENS) {
      throw new RequestError(`Invalid JSON: more than ${MAX_REQUEST_TOKENS} tokens in one request`, '');
    }
    if (depth > MAX_NESTING_DEPTH) {
      throw new RequestError(`Invalid JSON: nested more than ${MAX_NESTING_DEPTH} deep`, '');
    }
    beforeParse(tokens);
  }
  try {
    ({ value, cuts } = parseJson(line, opts.decodeBase64));
  } catch (e) {
    throw new RequestError(`Invalid JSON: ${(e as Error).message}`, '');
  }
  // Only the decoded bytes: a Base64Text holds the whole line, which must not live on with this.
  const decoded = cuts.map((c) => c.decoded);
  const release =
    decoded.length === 0
      ? noRelease
      : () => {
          for (const d of decoded) d.release();
        };
  try {
    const req = checkShape(value) as Request;
    req.release = release;
    return req;
  } catch (e) {
    release();
    throw e;
  }
}

const noRelease = () => {};

/**
 * The most JSON tokens (brackets, commas, colons, strings, numbers, words) one request may hold,
 * as qemu's parser allows (its MAX_TOKEN_COUNT; the qemu-ga framer holds its values to it too). JSON.parse of a 16 MiB line of empty objects
 * or nested arrays makes millions of them: 470 MB and two seconds of the main thread. Under
 * this limit, at most some 60 MB.
 */
export const MAX_REQUEST_TOKENS = 2 * 1024 * 1024;

/**
 * The deepest arrays and objects may nest in one request: Go's encoding/json (maxNestingDepth,
 * the reference agent's parser) reads 10000 deep and refuses 10001. A 2 MiB line of 1,048,560
 * nested arrays alone took the agent to 160 MiB.
 */
export const MAX_NESTING_DEPTH = 10_000;

/**
 * The JSON tokens in `line` and the deepest its arrays and objects nest, found the way a JSON
 * lexer finds them: a string is one token (passed over with indexOf: a file-write's base64 costs
 * a few calls). Stops at the token past `maxTokens`, at the bracket past `maxDepth`, and at an
 * unterminated string (JSON.parse says so), with what was counted up to there.
 */
export function countJson(line: Buffer, maxTokens: number, maxDepth: number): { tokens: number; depth: number } {
  const strings = new StringEnds(line);
  let tokens = 0;
  let depth = 0;
  let deepest = 0;
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const b = line[i];
    if (b === QUOTE) {
      inWord = false;
      if (++tokens > maxTokens) break;
      i = strings.closing(i);
      if (i < 0) break;
    } else if (isJsonSpace(b)) {
      inWord = false;
    } else if (isJsonPunctuation(b)) {
      inWord = false;
      if (++tokens > maxTokens) break;
      if (b === 0x5b || b === 0x7b) {
        deepest = Math.max(deepest, ++depth);
        if (deepest > maxDepth) break;
      } else if (b === 0x5d || b === 0x7d) depth--;
    } else if (!inWord) {
      inWord = true; // a number or word: one token
      if (++tokens > maxTokens) break;
    }
  }
  return { tokens, depth: deepest };
}

/** The request object's execute, arguments and tag, checked for type. */
function checkShape(value: unknown): Omit<Request, 'release'> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RequestError(`Invalid request: expected a JSON object, got ${describe(value)}`, '');
  }
  const obj = value as Record<string, unknown>;
  let tag = '';
  if (obj.tag !== undefined && obj.tag !== null) {
    if (typeof obj.tag !== 'string')
      throw new RequestError(`Invalid request: "tag" must be a string, got ${describe(obj.tag)}`, '');
    tag = obj.tag;
  }
  if (typeof obj.execute !== 'string') {
    throw new RequestError(
      obj.execute === undefined
        ? 'Invalid request: "execute" is missing'
        : `Invalid request: "execute" must be a string, got ${describe(obj.execute)}`,
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

/** A request the agent cannot take, answered as an error. */
export class RequestError extends AnswerError {
  constructor(
    message: string,
    readonly tag: string,
  ) {
    super(message);
  }
}
