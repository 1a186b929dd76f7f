// qemu-ga's framing: no lines, a stream of JSON values. A request ends where its outermost object
// (or array) closes, newline or not, as qemu's JSON streamer finds it; a bare scalar ends at the
// next whitespace or bracket. A 0xFF byte, which no JSON text holds, throws away whatever was
// pending (libvirt's resynchronisation, with guest-sync-delimited) and is answered with qemu's
// parse error.
import { MAX_LINE_BYTES } from '../../wire/framing';
import { PendingBytes } from '../../wire/pending';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SYNC = 0xff;
/**
 * Consecutive 0xFF bytes answered each with its error, as qemu-ga does; past these, the rest of
 * the run is dropped unanswered, so a flood of them cannot make the agent write 80 bytes for each.
 */
const MAX_SYNC_ERRORS = 16;

/** What the framer hands on: a request's bytes, or a framing error to answer. */
export type Framed = { bytes: Buffer } | { error: string };

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

export class JsonStreamFramer {
  private readonly pending = new PendingBytes();
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Inside a top-level scalar (a keyword, a number, garbage). */
  private inScalar = false;
  /** The pending value grew past the limit: its bytes are dropped, and its end answered with one error. */
  private overflow = false;
  /** 0xFF bytes in a row so far. */
  private syncRun = 0;

  constructor(
    private readonly onMessage: (m: Framed) => void,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {}

  /** Bytes of the pending (incomplete) request held in memory. */
  get buffered(): number {
    return this.pending.size;
  }

  push(chunk: Buffer): void {
    let start = 0; // first byte of the pending value within this chunk
    let i = 0;
    const n = chunk.length;
    const pending = () => this.depth > 0 || this.inScalar;
    // The next quote, backslash and 0xFF at or after i, each searched for again only once i has
    // passed it: a string with an escape every line (MIME-style base64) must not rescan the
    // chunk to its end for each.
    let q = -2;
    let bs = -2;
    let ff = -2;
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
          if (chunk[i] === SYNC) {
            i = this.resync(chunk, i);
            start = i;
            continue;
          }
          i++;
          continue;
        }
        if (ff >= 0 && ff < end && (bs < 0 || ff < bs)) {
          i = this.resync(chunk, ff);
          start = i;
          continue;
        }
        if (bs >= 0 && bs < end) {
          this.escaped = true;
          i = bs + 1;
          continue;
        }
        if (q < 0) {
          i = n;
          break;
        }
        this.inString = false;
        i = q + 1;
        if (this.depth === 0) {
          // A top-level string is a whole value.
          this.emit(chunk, start, i);
          start = i;
        }
        continue;
      }
      const b = chunk[i];
      if (b === SYNC) {
        i = this.resync(chunk, i);
        start = i;
        continue;
      }
      if (this.inScalar) {
        if (isSpace(b) || b === 0x7b || b === 0x5b || b === QUOTE) {
          this.inScalar = false;
          this.emit(chunk, start, i);
          start = i;
          continue; // the byte starts the next value (or is space)
        }
        i++;
        continue;
      }
      if (b === QUOTE) {
        this.inString = true;
      } else if (b === 0x7b || b === 0x5b) {
        this.depth++;
      } else if (b === 0x7d || b === 0x5d) {
        if (this.depth === 0) {
          // A stray closing bracket: refused on its own, as qemu's parser does.
          this.onMessage({ error: 'JSON parse error, expecting value' });
          start = i + 1;
        } else if (--this.depth === 0) {
          this.emit(chunk, start, i + 1);
          start = i + 1;
        }
      } else if (this.depth === 0) {
        if (isSpace(b)) start = i + 1;
        else this.inScalar = true;
      }
      i++;
    }
    if (this.inString || pending()) this.hold(chunk.subarray(start, n));
  }

  /** Forgets a partial request (the peer went away). */
  reset(): void {
    this.pending.clear();
    this.depth = 0;
    this.inString = this.escaped = this.inScalar = this.overflow = false;
  }

  /** A 0xFF at `at`: what was pending is dropped, and qemu's error for the stray byte answered. */
  private resync(_chunk: Buffer, at: number): number {
    this.reset();
    if (++this.syncRun > MAX_SYNC_ERRORS) return at + 1;
    this.onMessage({ error: "JSON parse error, stray '\uFFFD'" }); // the replacement character qemu decodes 0xFF to
    return at + 1;
  }

  private hold(piece: Buffer): void {
    if (this.overflow || piece.length === 0) return;
    if (this.pending.size + piece.length > this.maxBytes) {
      this.overflow = true;
      this.pending.clear();
      return;
    }
    this.pending.add(piece);
  }

  private emit(chunk: Buffer, from: number, to: number): void {
    this.syncRun = 0;
    const piece = chunk.subarray(from, to);
    if (!this.overflow && this.pending.size + piece.length > this.maxBytes) this.overflow = true;
    if (this.overflow) {
      this.reset();
      this.onMessage({ error: `JSON parse error, request longer than ${this.maxBytes} bytes` });
      return;
    }
    const bytes = this.pending.size === 0 ? piece : this.pending.take(piece);
    this.onMessage({ bytes });
  }
}
