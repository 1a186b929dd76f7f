// Line framing of the wire (docs/PROTOCOL.md "Framing"): one JSON object per line, LF or CRLF.
import { PendingBytes } from './pending';

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
  private readonly pending = new PendingBytes();
  private discarding = false;

  constructor(
    private readonly onLine: (line: Buffer) => void,
    private readonly onOverflow: () => void,
    private readonly maxLine = MAX_LINE_BYTES,
  ) {}

  /** Bytes of the pending (incomplete) line held in memory. */
  get buffered(): number {
    return this.pending.size;
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.discarding) {
        if (nl === -1) return;
        this.discarding = false;
      } else if (this.pending.size + (end - start) > this.maxLine + 1) {
        // +1 leaves room for the CR of a CRLF line of exactly maxLine bytes.
        this.pending.clear();
        this.onOverflow();
        if (nl === -1) {
          this.discarding = true;
          return;
        }
      } else if (nl === -1) {
        this.pending.add(chunk.subarray(start));
        return;
      } else {
        const line0 = chunk.subarray(start, end);
        let line = this.pending.size === 0 ? line0 : this.pending.take(line0);
        if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
        if (line.length > this.maxLine)
          this.onOverflow(); // maxLine + 1 bytes without a CR
        else this.onLine(line);
      }
      start = end + 1;
    }
  }

  /** Forgets a partial line (the peer went away). */
  reset(): void {
    this.pending.clear();
    this.discarding = false;
  }
}
