// The agent's base64 decoder for long string arguments (file-write's chunks): the addon decodes
// them straight from the request line's bytes into reused buffers (a chunk's bytes live until
// its write is done; fresh buffers that live that long pile up in V8's old generation). Apart
// from base64.ts so that parsing requests never needs the addon (the host client parses too).
import { chunkPool } from '../buffers';
import { native } from '../native';
import { decodeBase64Exact, type DecodedBytes } from './base64';

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
