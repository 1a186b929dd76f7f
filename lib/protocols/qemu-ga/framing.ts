// qemu-ga's framing: no lines, a stream of JSON values. A request ends where its outermost object
// (or array) closes, newline or not, as qemu's JSON streamer finds it; a bare scalar ends at the
// next whitespace or bracket. A 0xFF byte, which no JSON text holds, throws away whatever was
// pending (libvirt's resynchronisation, with guest-sync-delimited) and is answered with qemu's
// parse error; so is a string holding 0xFE or 0xFF. As in qemu's lexer, what follows such an
// error is skipped up to the next bracket, comma, colon, control character or 0xFE/0xFF, where
// framing starts anew: the rest of a broken string never opens one that swallows the next
// request.
//
// Given a decoder, a long string inside a value is decoded as it arrives, when it is base64
// (a guest-file-write's data): its characters are never held, copied or scanned again, and the
// request comes with the string cut out and its bytes decoded (ArrivedCut). Decoding stops at
// the first byte that is not base64; the quote, backslash and 0xFF the framer looks for are not,
// so it frames exactly as without one. A string that turns out not to be strict base64, or is
// short, has its text made again from the decoded bytes and held as any other.
import type { Base64RunDecoder, DecodedBytes } from '../../wire/base64';
import { MAX_LINE_BYTES } from '../../wire/framing';
import { PendingBytes } from '../../wire/pending';
import { qemuString } from '../../utf8';
import {
  isJsonPunctuation as isPunctuation,
  isJsonSpace as isSpace,
  MAX_REQUEST_TOKENS as MAX_TOKEN_COUNT,
  type ArrivedCut,
} from '../../wire/request';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SYNC = 0xff;
/** 0xFE: with 0xFF, the bytes no UTF-8 text holds, which qemu's lexer refuses anywhere. */
const BAD_BYTE = 0xfe;
const EQUALS = 0x3d;
/**
 * Strings shorter than this are held as text even when decoded as they arrived (parseJson cuts
 * those over 4 KiB out of the request, Node's decoder being the faster one at their size).
 */
const CUT_MIN_CHARS = 64 * 1024;

/** The base64 alphabet's bytes ('=' is padding, not one of them). */
const ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') ALPHABET[c.charCodeAt(0)] = 1;
/**
 * Consecutive 0xFF bytes answered each with its error, as qemu-ga does; past these, the rest of
 * the run is dropped unanswered, so a flood of them cannot make the agent write 80 bytes for each.
 */
const MAX_SYNC_ERRORS = 16;
/**
 * qemu's JSON streamer's MAX_NESTING: one bracket more than this (braces and brackets together)
 * is an error, and the value is dropped there; what follows is framed anew, as qemu does.
 */
const MAX_NESTING = 1024;

/**
 * What the framer hands on: a request's bytes (less the strings it cut out, with their own
 * decoded bytes to give back once the request is done) and its tokens (for beforeParse, and to
 * find a duplicate key JSON.parse dropped), or a framing error to answer. `fractions`: a number
 * in it has a fraction or an exponent (qemu reads it as a double, never as an int).
 */
export type Framed = FramedRequest | { error: string };
export interface FramedRequest {
  bytes: Buffer;
  cuts?: FramedCut[];
  tokens?: number;
  fractions?: true;
}

/** A string cut out of a request as it arrived: its place in `bytes`, characters and bytes. */
export interface FramedCut extends ArrivedCut {
  readonly chars: number;
}

/** A request's length as it arrived: its bytes and the characters cut out of them. */
export function framedLength(m: { bytes: Buffer; cuts?: FramedCut[] }): number {
  let n = m.bytes.length;
  for (const c of m.cuts ?? []) n += c.chars;
  return n;
}

/** The string being decoded as it arrives. */
interface Diversion {
  dst: Buffer;
  /** Bytes decoded into dst: the string's characters so far, less `tail`, are 4/3 as many. */
  len: number;
  /** Its characters after the last whole group decoded: up to 3, or a padded last group of 4. */
  tail: number[];
  /** Characters so far. */
  chars: number;
}

const COMMA = 0x2c;
const COLON = 0x3a;
/** The most of a broken string its error echoes (qemu echoes all of it, up to 64 MiB). */
const MAX_ECHO = 1024;

/** Where qemu's lexer ends its recovery after an error: a structural or control character, 0xFE, 0xFF. */
function endsRecovery(b: number): boolean {
  return isPunctuation(b) || (b < 0x20 && b !== 0x09) || b >= 0xfe;
}

export class JsonStreamFramer {
  /** The pending request's bytes (copied out of its chunks once it is long: they are garbage at once). */
  private readonly pending = new PendingBytes();
  private get size(): number {
    return this.pending.size;
  }
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Inside a top-level scalar (a keyword, a number, garbage). */
  private inScalar = false;
  /** The pending value grew past the limit: its bytes are dropped, and its end answered with one error. */
  private overflow = false;
  /** 0xFF bytes in a row so far. */
  private syncRun = 0;
  /** Strings of the pending value cut out as they arrived, and their characters. */
  private cuts: FramedCut[] = [];
  private cutChars = 0;
  private div: Diversion | undefined;
  /** The last chunk ended with the quote that opens a string. */
  private textNext = false;
  /** Tokens of the pending value so far: more than qemu's MAX_TOKEN_COUNT is its error. */
  private tokens = 0;
  /** Inside a number or word of the pending value. */
  private inWord = false;
  /** The word is a number (its first byte a digit or '-'). */
  private inNumber = false;
  /** A number of the pending value has a '.', 'e' or 'E' (Framed.fractions). */
  private fractions = false;
  /** The rest of the token that went over MAX_TOKEN_COUNT is being passed over: a string or a word. */
  private dropping: 'string' | 'word' | undefined;
  /** After a lexical error: bytes are skipped up to one that endsRecovery(). */
  private recovering = false;
  /** Where the current string's opening quote is, in the pending value's bytes. */
  private stringAt = 0;

  /** `decoder`: long base64 strings are decoded as they arrive (see the top of this file). */
  constructor(
    private readonly onMessage: (m: Framed) => void,
    private readonly maxBytes = MAX_LINE_BYTES,
    private readonly decoder?: Base64RunDecoder,
  ) {}

  /** Bytes of the pending (incomplete) request so far (a string decoded as it came counted as its text). */
  get buffered(): number {
    return this.size + this.cutChars + (this.div?.chars ?? 0);
  }

  push(chunk: Buffer): void {
    let start = 0; // first byte of the pending value within this chunk
    let i = 0;
    const n = chunk.length;
    // Where the current string's text begins, when that is in this chunk.
    let textAt = this.textNext ? 0 : -1;
    // Where the current string's quote is in this chunk (-1: in an earlier one).
    let quoteAt = -1;
    this.textNext = false;
    if (this.div) i = start = this.feed(chunk, 0);
    const pending = () => this.depth > 0 || this.inScalar;
    // The next quote, backslash and 0xFF at or after i, each searched for again only once i has
    // passed it: a string with an escape every line (MIME-style base64) must not rescan the
    // chunk to its end for each.
    let q = -2;
    let bs = -2;
    let ff = -2;
    let fe = -2;
    const next = (at: number, byte: number) => (at === -1 || at >= i ? at : chunk.indexOf(byte, i));
    while (i < n) {
      if (this.inString) {
        // Jump to the next quote, backslash or 0xFF: a long base64 string is one indexOf.
        q = next(q, QUOTE);
        const end = q < 0 ? n : q;
        bs = next(bs, BACKSLASH);
        ff = next(ff, SYNC);
        if (this.escaped) {
          this.escaped = false;
          if (chunk[i] >= BAD_BYTE) {
            i = start = this.badString(chunk, start, i, quoteAt);
            continue;
          }
          i++;
          continue;
        }
        // 0xFF or 0xFE before the string's next quote or backslash: a string no JSON text
        // holds (a control character is left to the parser, which refuses it in its own words).
        fe = next(fe, BAD_BYTE);
        const bad = Math.min(ff < 0 ? n : ff, fe < 0 ? n : fe);
        if (bad < end && (bs < 0 || bad < bs)) {
          i = start = this.badString(chunk, start, bad, quoteAt);
          continue;
        }
        if (bs >= 0 && bs < end) {
          this.escaped = true;
          i = bs + 1;
          continue;
        }
        if (q < 0) {
          // The whole text of a string opened in this chunk, and no byte of it that framing
          // looks at: decode it as it comes (a string at the top level is no argument).
          if (textAt !== i || !this.decoder || this.depth === 0 || this.overflow || this.dropping) {
            i = n;
            break;
          }
          this.hold(chunk.subarray(start, i));
          textAt = -1;
          i = start = this.divert(chunk, i);
          continue;
        }
        this.inString = false;
        i = q + 1;
        if (this.dropping) {
          this.dropping = undefined;
          start = i;
        } else if (this.depth === 0) {
          // A top-level string is a whole value.
          this.emit(chunk, start, i);
          start = i;
        }
        continue;
      }
      const b = chunk[i];
      if (this.recovering) {
        if (!endsRecovery(b)) {
          start = ++i;
          continue;
        }
        this.recovering = false;
      }
      if (b === SYNC) {
        i = this.resync(chunk, i);
        start = i;
        continue;
      }
      if (this.dropping === 'word' || this.inWord) {
        if (isSpace(b) || isPunctuation(b) || b === QUOTE) {
          if (this.dropping) start = i;
          this.dropping = undefined;
          this.inWord = false;
          continue; // the byte starts the next token (or is space)
        }
        if (this.inNumber && (b === 0x2e || b === 0x65 || b === 0x45)) this.fractions = true;
        i++;
        continue;
      }
      if (this.inScalar) {
        // Where qemu's lexer ends a keyword or number: at any byte that starts another token.
        if (isSpace(b) || isPunctuation(b) || b === QUOTE) {
          this.inScalar = false;
          this.emit(chunk, start, i);
          start = i;
          continue; // the byte starts the next value (or is space)
        }
        i++;
        continue;
      }
      if (this.depth > 0 && !isSpace(b) && ++this.tokens > MAX_TOKEN_COUNT) {
        // qemu drops the token that went over with the rest: a string or word to its end.
        this.giveUp('JSON token count limit exceeded');
        this.dropping = b === QUOTE ? 'string' : isPunctuation(b) ? undefined : 'word';
        this.inString = b === QUOTE;
        quoteAt = i;
        start = ++i;
        continue;
      }
      if (b === QUOTE) {
        this.inString = true;
        this.stringAt = this.size + (i - start);
        quoteAt = i;
        textAt = i + 1;
      } else if (b === 0x7b || b === 0x5b) {
        if (this.depth === 0) this.tokens = 1;
        if (++this.depth > MAX_NESTING) {
          this.giveUp('JSON nesting depth limit exceeded');
          start = i + 1;
        }
      } else if (b === 0x7d || b === 0x5d) {
        if (this.depth === 0) {
          // A stray closing bracket: refused on its own, as qemu's parser does.
          this.onMessage({ error: 'JSON parse error, expecting value' });
          start = i + 1;
        } else if (--this.depth === 0) {
          this.emit(chunk, start, i + 1);
          start = i + 1;
        }
      } else if (this.depth > 0) {
        if (!isSpace(b) && b !== COMMA && b !== COLON) {
          this.inWord = true; // a number or word: one token
          this.inNumber = b === 0x2d || (b >= 0x30 && b <= 0x39);
        }
      } else if (this.depth === 0) {
        if (isSpace(b)) start = i + 1;
        else if (b === COMMA || b === COLON) {
          // A token of its own between values: a value of its own, as qemu's streamer has it.
          this.emit(chunk, start, i + 1);
          start = i + 1;
        } else this.inScalar = true;
      }
      i++;
    }
    if ((this.inString && !this.dropping) || pending()) this.hold(chunk.subarray(start, n));
    this.textNext = this.inString && textAt === n; // the chunk ended with a string's opening quote
  }

  /** Forgets a partial request (the peer went away). */
  reset(): void {
    this.drop();
    this.depth = this.tokens = 0;
    this.inString = this.escaped = this.inScalar = this.overflow = this.textNext = this.inWord = false;
    this.fractions = false;
    this.recovering = false;
    this.dropping = undefined;
  }

  /** Drops the pending value at one of qemu's limits, answered with `error`; framing starts anew. */
  private giveUp(error: string): void {
    this.onMessage({ error });
    this.reset();
  }

  /** Drops what is held of the pending value, strings decoded as they came included. */
  private drop(): void {
    this.pending.clear();
    for (const c of this.cuts) c.decoded.release();
    this.cuts = [];
    this.cutChars = 0;
    if (this.div) this.decoder!.give(this.div.dst);
    this.div = undefined;
  }

  /** Starts decoding the string whose text begins at chunk[at] (its quote held), as it arrives. */
  private divert(chunk: Buffer, at: number): number {
    if (this.overflow) return at; // the quote made the value too long
    const dst = this.decoder!.take(Math.floor(this.maxBytes / 4) * 3);
    this.div = { dst, len: 0, tail: [], chars: 0 };
    return this.feed(chunk, at);
  }

  /**
   * Decodes the string's text from chunk[i] on: where it stopped, at the chunk's end (the
   * string goes on), or at a byte that is not base64 (the closing quote, or any other; then
   * the string is done with decoding, cut out or held as text, and the caller frames on from
   * that byte).
   */
  private feed(chunk: Buffer, i: number): number {
    const d = this.div!;
    const n = chunk.length;
    while (i < n) {
      if (d.tail.length === 0) {
        const used = this.decoder!.run(chunk, i, n, d.dst, d.len);
        i += used;
        d.len += (used / 4) * 3;
        d.chars += used;
        if (this.buffered > this.maxBytes) return this.tooLong(i);
        if (i === n) break;
      }
      // Fewer than 4 characters of base64 left, padding, or a byte that is not base64.
      const c = chunk[i];
      const t = d.tail;
      const padded = t.length > 0 && t[t.length - 1] === EQUALS;
      if (ALPHABET[c] && !padded && t.length < 4) {
        t.push(c);
        if (t.length === 4) {
          if (d.len + 3 > d.dst.length) return this.tooLong(i);
          const used = this.decoder!.run(Buffer.from(t), 0, 4, d.dst, d.len);
          d.len += (used / 4) * 3;
          d.tail = [];
        }
      } else if (c === EQUALS && (t.length === 2 || t.length === 3)) {
        t.push(c); // "xx==" and "xxx=" end the text
      } else if (c === QUOTE && (t.length === 0 || (t.length === 4 && padded))) {
        return this.endString(i);
      } else {
        this.undivert();
        return i;
      }
      i++;
      d.chars++;
      if (this.buffered > this.maxBytes) return this.tooLong(i);
    }
    return n;
  }

  /** The string decoded as it came ends (at chunk[at], its quote): cut out, or held as text when short. */
  private endString(at: number): number {
    const d = this.div!;
    if (d.chars < CUT_MIN_CHARS || (d.tail.length > 0 && d.len + 3 > d.dst.length)) {
      this.undivert();
      return at;
    }
    const { dst, tail, chars } = d;
    const body = d.len;
    let len = body;
    if (tail.length > 0) {
      // A padded last group: its bytes, less one for each '='.
      const group = Buffer.from(tail.map((c) => (c === EQUALS ? 0x41 : c)));
      this.decoder!.run(group, 0, 4, dst, len);
      len += 3 - tail.filter((c) => c === EQUALS).length;
    }
    let given = false;
    const decoder = this.decoder!;
    const decoded: DecodedBytes = {
      bytes: dst.subarray(0, len),
      release: () => {
        if (given) return;
        given = true;
        decoder.give(dst);
      },
    };
    const last = Buffer.from(tail);
    this.cuts.push({
      at: this.size,
      chars,
      decoded,
      // Whole groups encode back to the very characters they came from; a padded last group
      // may not (bits past the data are dropped), so its characters are kept.
      text: () => Buffer.concat([Buffer.from(dst.toString('base64', 0, body), 'latin1'), last]),
    });
    this.cutChars += chars;
    this.div = undefined;
    return at;
  }

  /** The string is not one to cut: its text so far, made again, is held, and framing goes on. */
  private undivert(): void {
    const d = this.div!;
    this.div = undefined;
    const text = Buffer.concat([Buffer.from(d.dst.toString('base64', 0, d.len), 'latin1'), Buffer.from(d.tail)]);
    this.decoder!.give(d.dst);
    this.hold(text);
  }

  /** The pending value grew past the limit while a string was being decoded. */
  private tooLong(at: number): number {
    this.drop();
    this.overflow = true;
    return at;
  }

  /** A 0xFF at `at`: what was pending is dropped, and qemu's error for the stray byte answered. */
  private resync(chunk: Buffer, at: number): number {
    return this.lexError(chunk.subarray(at, at + 1), chunk, at); // "stray '\uFFFD'"
  }

  /**
   * A byte no string may hold, at chunk[at] (the pending value's bytes run from chunk[start]):
   * the value is dropped, and qemu's error echoes the string from its quote to that byte; what
   * follows is skipped as qemu's lexer skips it. Returns where framing goes on.
   */
  private badString(chunk: Buffer, start: number, at: number, quoteAt: number): number {
    // A string passed over (at the token limit) or past the size limit was not held: its quote
    // and what this chunk has of it.
    const unheld = () =>
      quoteAt >= 0
        ? chunk.subarray(quoteAt, at + 1).subarray(0, MAX_ECHO)
        : Buffer.concat([Buffer.from('"'), chunk.subarray(0, at + 1).subarray(0, MAX_ECHO - 1)]);
    const token =
      this.overflow || this.dropping ? unheld() : this.pendingFrom(this.stringAt, chunk.subarray(start, at + 1));
    return this.lexError(token, chunk, at);
  }

  /**
   * qemu's lexer refused chunk[at], the end of `token`: the pending value is dropped, the error
   * echoes the token (qemu's JSON writer decodes 0xFF to U+FFFD), and what follows is skipped
   * until recovery ends. A run of 0xFF bytes is answered MAX_SYNC_ERRORS times at most.
   */
  private lexError(token: Buffer, chunk: Buffer, at: number): number {
    this.reset();
    this.recovering = true;
    if (chunk[at] === SYNC && ++this.syncRun > MAX_SYNC_ERRORS) return at + 1;
    this.onMessage({ error: `JSON parse error, stray '${qemuString(token)}'` });
    return at + 1;
  }

  /** The pending value's bytes from `from` on, followed by `last` (up to MAX_ECHO of them). */
  private pendingFrom(from: number, last: Buffer): Buffer {
    if (this.div) this.undivert();
    const held = this.size;
    if (from >= held) return last.subarray(from - held, from - held + MAX_ECHO);
    return Buffer.concat([this.pending.slice(from, from + MAX_ECHO), last]).subarray(0, MAX_ECHO);
  }

  private hold(piece: Buffer): void {
    if (this.overflow || piece.length === 0) return;
    if (this.buffered + piece.length > this.maxBytes) {
      this.drop();
      this.overflow = true;
      return;
    }
    this.pending.add(piece);
  }

  private emit(chunk: Buffer, from: number, to: number): void {
    this.syncRun = 0;
    const tokens = this.tokens;
    const fractions = this.fractions;
    this.tokens = 0;
    this.fractions = false;
    const piece = chunk.subarray(from, to);
    if (!this.overflow && this.buffered + piece.length > this.maxBytes) this.overflow = true;
    if (this.overflow) {
      this.reset();
      this.onMessage({ error: `JSON parse error, request longer than ${this.maxBytes} bytes` });
      return;
    }
    const bytes = this.size === 0 ? piece : this.pending.take(piece);
    const cuts = this.cuts;
    this.cuts = [];
    this.cutChars = 0;
    const m: FramedRequest = cuts.length > 0 ? { bytes, cuts, tokens } : { bytes, tokens };
    if (fractions) m.fractions = true;
    this.onMessage(m);
  }
}
