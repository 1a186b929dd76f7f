// Buffers that are reused instead of left to the garbage collector, for chunks whose bytes live
// for a while (until a write to the file or to the host is done). Fresh buffers that live that
// long outlast young-generation collections and pile up in the old generation until a full one;
// reused ones are never garbage.

/** Sizes of reused buffers: powers of two from this up (a 1 MiB chunk fits one of 1 MiB). */
const MIN_BUFFER = 64 * 1024;

/** The size of the buffers take(size) gives from the pool: the power of two that holds size. */
function sizeClass(size: number): number {
  let cls = MIN_BUFFER;
  while (cls < size) cls *= 2;
  return cls;
}

/**
 * Kept buffers nothing took for this long are let go, their memory freed at once: what one
 * transfer kept (an upload's 1 MiB chunks) is not held through the next (a download's).
 */
const IDLE_MS = 2_000;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private keptBytes = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private takenSince = false;

  /** `keep`: at most this many bytes of buffers wait for reuse; more are left to the collector. */
  constructor(
    readonly keep: number,
    private readonly idleMs = IDLE_MS,
  ) {}

  /** Bytes of buffers waiting for reuse. */
  get kept(): number {
    return this.keptBytes;
  }

  /**
   * A buffer of at least `size` bytes: under MIN_BUFFER one of exactly `size` (not reused: many
   * small ones must not each hold a large buffer), otherwise one of the pool's size class (slice it).
   */
  take(size: number): Buffer {
    if (size < MIN_BUFFER) return Buffer.allocUnsafe(size);
    const cls = sizeClass(size);
    this.takenSince = true;
    const buf = this.free.get(cls)?.pop();
    if (!buf) return Buffer.allocUnsafeSlow(cls);
    this.keptBytes -= cls;
    return buf;
  }

  /** Whether the buffer take(size) gives can ever be kept for reuse (see give()). */
  keeps(size: number): boolean {
    return size >= MIN_BUFFER && sizeClass(size) <= this.keep / 4;
  }

  /**
   * Gives back a buffer from take(), whole; nothing may use it afterwards. Kept only while the
   * pool is under `keep`, and only if it is a size class of at most a quarter of `keep` (one
   * huge chunk must not fill the pool for good).
   */
  give(buf: Buffer): void {
    if (buf.length < MIN_BUFFER || buf.length > this.keep / 4 || this.keptBytes + buf.length > this.keep) return;
    this.keptBytes += buf.length;
    const list = this.free.get(buf.length);
    if (list) list.push(buf);
    else this.free.set(buf.length, [buf]);
    this.watchIdle();
  }

  /** Lets the kept buffers go once a whole IDLE_MS passes with no take(). */
  private watchIdle(): void {
    if (this.idleTimer) return;
    this.takenSince = false;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.takenSince) this.watchIdle();
      else this.letGo();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  private letGo(): void {
    for (const list of this.free.values()) {
      // Each is the whole of its ArrayBuffer (allocUnsafeSlow) and nobody else's: moved out by a
      // transfer, its memory goes with the young clone at the next collection, not with the
      // old-generation buffer at the next full one.
      for (const buf of list) {
        const ab = buf.buffer as ArrayBuffer;
        if (buf.byteOffset === 0 && ab.byteLength === buf.length) structuredClone(ab, { transfer: [ab] });
      }
    }
    this.free.clear();
    this.keptBytes = 0;
  }
}

/**
 * The agent's pool for chunks of file data in flight: decoded file-write data, large answers
 * queued on a unix socket. Kept buffers stay resident, so it keeps what a host pipelining four
 * 1 MiB chunks each way needs, not more.
 */
export const chunkPool = new BufferPool(16 * 1024 * 1024);

/**
 * Slabs small buffers are carved from, and the largest such buffer (larger ones are their own).
 * A slab stays under malloc's mmap threshold (128 KiB, lib/cli.ts), so it comes from the heap,
 * whose pages stay resident: a mapped one was faulted in page by page, every 47 answers.
 */
const SLAB = 64 * 1024;
const SLAB_MAX = 16 * 1024;
let slab = Buffer.allocUnsafeSlow(0);
let slabUsed = 0;

/**
 * A buffer of `size` bytes (uninitialized) for short-lived data up to SLAB_MAX, carved from a
 * shared slab as Node's own pool does for buffers under 4 KiB: one ArrayBuffer, with its
 * allocation and its collection, per SLAB bytes instead of per buffer (a 4 KiB file-read's
 * answer is 5.5 KB, each a backing store of its own for the collector otherwise). A buffer is
 * never handed out twice; a slab is freed once no buffer of it is left, so one kept for long
 * keeps its slab.
 */
export function slabBuffer(size: number): Buffer {
  if (size > SLAB_MAX) return Buffer.allocUnsafe(size);
  if (slabUsed + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB);
    slabUsed = 0;
  }
  const b = slab.subarray(slabUsed, slabUsed + size);
  slabUsed += (size + 7) & ~7; // 8-byte aligned, as Node's pool
  return b;
}
