// The dispatcher's base64 decoder (protocol.ts Base64Decoder) for long string arguments, which
// are file-write's chunks: the addon decodes them straight from the request line's bytes
// (fileio.base64Decode, OpenSSL's decoder held to strict base64) into buffers that are reused.
//
// Why reused: a chunk's bytes live until its write is done, which with a host pipelining 1 MiB
// chunks is a few chunks' time. Fresh buffers that live that long outlast the young-generation
// collections the agent asks for (lib/memory.ts) and pile up in the old generation until a full
// collection: RSS went from ~72 to ~125 MiB over 256 MiB of 1 MiB uploads when each chunk had
// its own. Reused ones are never garbage.
import { fileio } from './files/native';
import type { DecodedBytes } from './protocol';

/** Sizes of reused buffers: powers of two from this up (a 1 MiB chunk fits one of 1 MiB). */
const MIN_BUFFER = 64 * 1024;
/** At most this many bytes of buffers wait for reuse; more are left to the garbage collector. */
export const KEEP_BYTES = 16 * 1024 * 1024;

const free = new Map<number, Buffer[]>();
let kept = 0;

/** Bytes of buffers waiting for reuse (for tests). */
export function keptBytes(): number {
  return kept;
}

function take(size: number): Buffer {
  const buf = free.get(size)?.pop();
  if (!buf) return Buffer.allocUnsafeSlow(size);
  kept -= size;
  return buf;
}

function giveBack(buf: Buffer): void {
  if (kept + buf.length > KEEP_BYTES) return;
  kept += buf.length;
  const list = free.get(buf.length);
  if (list) list.push(buf);
  else free.set(buf.length, [buf]);
}

/**
 * line[start, end) decoded as strict base64 into a reused buffer, given back by release() (a
 * second release does nothing); undefined when the text is not strict base64.
 */
export function decodeBase64Into(line: Buffer, start: number, end: number): DecodedBytes | undefined {
  let size = MIN_BUFFER;
  while (size < Math.floor((end - start) / 4) * 3) size *= 2;
  const buf = take(size);
  const n = fileio.base64Decode(line, start, end, buf);
  if (n < 0) {
    giveBack(buf);
    return undefined;
  }
  let given = false;
  return {
    bytes: buf.subarray(0, n),
    release: () => {
      if (given) return;
      given = true;
      giveBack(buf);
    },
  };
}
