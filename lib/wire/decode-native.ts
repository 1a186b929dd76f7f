// The agent's base64 decoder for long string arguments (file-write's chunks): the addon decodes
// them straight from the request line's bytes into reused buffers (a chunk's bytes live until
// its write is done; fresh buffers that live that long pile up in V8's old generation). Apart
// from base64.ts so that parsing requests never needs the addon (the host client parses too).
import { chunkPool } from '../buffers';
import { onCollectAll } from '../memory';
import { native } from '../native';
import { decodeBase64Exact, type Base64RunDecoder, type DecodedBytes } from './base64';

const EQUALS = 0x3d;
/**
 * Text shorter than this (a 4 KiB file-write's) is decoded by Node (SIMD, several times
 * OpenSSL's speed at this size) into a buffer of its own: small enough for the collector, and
 * most are written before the next request comes.
 */
const SMALL_TEXT = 64 * 1024;

/**
 * line[start, end) decoded as strict base64 into a reused buffer, given back by release() (a
 * second release does nothing); undefined when the text is not strict base64.
 */
export function decodeBase64Into(line: Buffer, start: number, end: number): DecodedBytes | undefined {
  const n = end - start;
  if (n < SMALL_TEXT) {
    const bytes = decodeBase64Exact(line.toString('latin1', start, end));
    return bytes && { bytes, release: () => {} };
  }
  const pad = n >= 4 && line[end - 1] === EQUALS ? (line[end - 2] === EQUALS ? 2 : 1) : 0;
  const buf = chunkPool.take(Math.max(0, Math.floor(n / 4) * 3 - pad));
  const len = native.base64Decode(line, start, end, buf);
  if (len < 0) {
    chunkPool.give(buf);
    return undefined;
  }
  let given = false;
  return {
    bytes: buf.subarray(0, len),
    release: () => {
      if (given) return;
      given = true;
      chunkPool.give(buf);
    },
  };
}

/** Destinations of strings decoded as they arrive kept for reuse, at most. */
const KEEP_RUN_BUFFERS = 3;
/** Kept ones are dropped after this long with none taken (left to the collector). */
const KEEP_RUN_MS = 1000;

/**
 * The agent's decoder of strings as they arrive (JsonStreamFramer): the addon's, into
 * destinations as large as a request's longest string, reused while a host streams writes (a
 * fresh one for each left tens of MB of garbage, and a full collection for each write to free
 * it). Only the pages written are resident; kept ones are dropped once writes stop for a second,
 * or before a full collection (collectAll).
 */
class RunDecoder implements Base64RunDecoder {
  private readonly kept: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The memory of every destination made: bytes in it are no garbage to collect (see reusedMemory). */
  readonly made = new WeakSet<ArrayBufferLike>();

  /** Lets the kept destinations go (to the collector). */
  drop(): void {
    this.kept.length = 0;
  }

  take(size: number): Buffer {
    const i = this.kept.findIndex((b) => b.length === size);
    this.touch();
    if (i >= 0) return this.kept.splice(i, 1)[0];
    const buf = Buffer.allocUnsafeSlow(size);
    this.made.add(buf.buffer);
    return buf;
  }

  give(buf: Buffer): void {
    if (this.kept.length < KEEP_RUN_BUFFERS) this.kept.push(buf);
    this.touch();
  }

  run(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
    return native.base64DecodeRun(src, start, end, dst, at);
  }

  private touch(): void {
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.drop();
      }, KEEP_RUN_MS);
      this.timer.unref();
    }
  }
}

const decoder = new RunDecoder();
export const runDecoder: Base64RunDecoder = decoder;
// A full collection is made before an allocation of tens of MB: what is kept here must not add to it.
onCollectAll(() => decoder.drop());

/**
 * Are these bytes in a destination of runDecoder's (a guest-file-write's data, decoded as it
 * arrived)? Their memory is reused, not left for a collection to free.
 */
export function reusedMemory(bytes: Buffer): boolean {
  return decoder.made.has(bytes.buffer);
}
