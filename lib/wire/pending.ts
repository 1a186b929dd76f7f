// The bytes of a request still arriving, for the framers (phoenix's lines, qemu-ga's JSON
// values). A large request arrives in many chunks (a pty's read gives 4 KiB, one wake-up 64 KiB);
// held as slices of them, every chunk lived until the request's end, outlived young-generation
// collections and piled up in the old generation until a full one. So a pending request of
// COPY_FROM bytes or more is copied into a reused buffer as it comes, and the chunks are garbage
// at once.
import { chunkPool } from '../buffers';
import { lineDone } from '../memory';

/** A pending request this long is copied into a reused buffer; shorter ones are held as slices. */
export const COPY_FROM = 64 * 1024;

export class PendingBytes {
  private parts: Buffer[] = [];
  /** From chunkPool, once the pending request reached COPY_FROM bytes. */
  private buf: Buffer | undefined;
  private bytes = 0;
  /** The length of the last large request: the next one likely needs as much room. */
  private hint = 0;

  /** Bytes pending. */
  get size(): number {
    return this.bytes;
  }

  /** Adds bytes to the pending request (kept as a slice, or copied: the caller's chunk is free after). */
  add(piece: Buffer): void {
    if (piece.length === 0) return;
    const size = this.bytes + piece.length;
    if (!this.buf && size >= COPY_FROM) {
      this.buf = chunkPool.take(Math.max(size, this.hint));
      let off = 0;
      for (const p of this.parts) off += p.copy(this.buf, off);
      this.parts = [];
    }
    if (this.buf) {
      if (this.buf.length < size) {
        const bigger = chunkPool.take(size);
        this.buf.copy(bigger, 0, 0, this.bytes);
        chunkPool.give(this.buf);
        this.buf = bigger;
      }
      piece.copy(this.buf, this.bytes);
    } else {
      this.parts.push(piece);
    }
    this.bytes = size;
  }

  /** The pending bytes followed by `last`, as one buffer of their own; nothing is pending after. */
  take(last: Buffer): Buffer {
    const total = this.bytes + last.length;
    let out: Buffer;
    if (this.buf) {
      out = Buffer.allocUnsafe(total);
      this.buf.copy(out, 0, 0, this.bytes);
      last.copy(out, this.bytes);
      // One larger than the pool keeps (a 16 MiB line) must not make every later one take as much.
      this.hint = chunkPool.keeps(total) ? total : 0;
      // The chunks it came in are garbage: as much again as the request (lib/memory.ts).
      lineDone(this.bytes);
    } else {
      out = Buffer.concat([...this.parts, last], total);
    }
    this.clear();
    return out;
  }

  /** A copy of pending bytes `from` to `to` (clamped), leaving them pending. */
  slice(from: number, to: number): Buffer {
    to = Math.min(to, this.bytes);
    if (from >= to) return Buffer.alloc(0);
    if (this.buf) return Buffer.from(this.buf.subarray(from, to));
    const out: Buffer[] = [];
    let at = 0;
    for (const p of this.parts) {
      const lo = Math.max(from - at, 0);
      const hi = Math.min(to - at, p.length);
      if (lo < hi) out.push(p.subarray(lo, hi));
      at += p.length;
      if (at >= to) break;
    }
    return Buffer.concat(out);
  }

  /** Forgets the pending bytes. */
  clear(): void {
    if (this.buf) chunkPool.give(this.buf);
    this.buf = undefined;
    this.parts = [];
    this.bytes = 0;
  }
}
