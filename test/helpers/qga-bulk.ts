// A qemu-ga host for bulk file transfers (tests and the benchmark): requests in order, one at a
// time as libvirt sends them or a few in flight; answers found by scanning only the bytes that
// arrive, and a read's data decoded by the addon as it arrives into memory made before the
// clock starts (ReadSink), so the host's own cost stays small next to the agent's: no copy of a
// 64 MB answer, no fresh memory for its data. Requests are built from the addon's base64. No
// JSON.parse of megabytes.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import { native } from '../../lib/native';

/** Takes an answer's bytes as they arrive instead of its line (see QgaBulkHost.ask). */
export interface AnswerSink {
  push(piece: Buffer): void;
  /** The answer is whole: what ask() resolves with. */
  end(): Buffer;
}

interface Waiter {
  resolve(line: Buffer): void;
  reject(e: Error): void;
  sink?: AnswerSink;
  /** What its sink threw: the answer's rest is skipped, and ask() rejects with it. */
  failed?: Error;
}

/** Feeds a waiter's sink, keeping what it throws for ask() (never for the socket's handler). */
function feed(w: Waiter, piece: Buffer): void {
  if (w.failed) return;
  try {
    w.sink!.push(piece);
  } catch (e) {
    w.failed = e as Error;
  }
}

export class QgaBulkHost {
  private parts: Buffer[] = [];
  /** The requests sent and not answered yet, in order. */
  private readonly waiters: Waiter[] = [];
  private closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      let from = 0;
      for (let nl = d.indexOf(0x0a); nl >= 0; nl = d.indexOf(0x0a, from)) {
        const w = this.waiters.shift(); // an answer nobody waits for is dropped
        if (w?.sink) {
          feed(w, d.subarray(from, nl));
          if (w.failed) w.reject(w.failed);
          else w.resolve(w.sink.end());
        } else {
          this.parts.push(d.subarray(from, nl));
          const line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
          w?.resolve(line);
        }
        this.parts = [];
        from = nl + 1;
      }
      if (from < d.length) {
        const w = this.waiters[0];
        if (w?.sink) feed(w, d.subarray(from));
        else this.parts.push(d.subarray(from));
      }
    });
    sock.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error('the agent closed the connection'));
    });
  }

  static connect(socket: string): Promise<QgaBulkHost> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socket, () => resolve(new QgaBulkHost(s)));
      s.once('error', reject);
    });
  }

  /**
   * Sends one request (a line, or its pieces); resolves with its answer line (no newline), or
   * with what `sink` made of it, or rejects on an error answer. Requests may be sent before
   * earlier ones are answered.
   */
  ask(request: string | Buffer | Buffer[], sink?: AnswerSink): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the agent closed the connection'));
    return new Promise<Buffer>((resolve, reject) => {
      this.waiters.push({ resolve, reject, sink });
      if (Array.isArray(request)) {
        this.sock.cork();
        for (const p of request) this.sock.write(p);
        this.sock.uncork();
      } else {
        this.sock.write(request);
      }
    }).then((answer) => {
      if (answer.indexOf('{"error"') === 0) throw new Error(`agent: ${answer.toString('utf8', 0, 300)}`);
      return answer;
    });
  }

  /** Forgets the requests not answered yet: their answers, when they come, are dropped. */
  forget(): void {
    this.waiters.splice(0);
  }

  close(): void {
    this.sock.destroy();
  }
}

/** p, marked handled: a request in flight may fail before its turn to be awaited comes. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

const B64 = Buffer.from('"buf-b64": "');
const EOF_TRUE = Buffer.from('"eof": true');
const QUOTE = 0x22;

/**
 * A guest-file-read answer's data decoded as it arrives into `dst` at `cursor.at`, which it moves
 * on (answers come in order: the sinks of one download share a cursor; `dst` is memory the
 * caller made before its clock started); end() gives the answer less its data.
 */
class ReadSink implements AnswerSink {
  private head: Buffer[] = [];
  private state: 'head' | 'data' | 'after' = 'head';
  /** Characters of the last group, not decoded yet (its padding included). */
  private carry: number[] = [];
  private after: Buffer[] = [];

  constructor(
    private readonly dst: Buffer,
    private readonly cursor: { at: number },
  ) {}

  push(piece: Buffer): void {
    let i = 0;
    if (this.state === 'head') {
      this.head.push(piece);
      const head = Buffer.concat(this.head); // short: answers put the data after a few fields
      const b = head.indexOf(B64);
      if (b < 0) {
        this.head = [head];
        return;
      }
      this.head = [head.subarray(0, b + B64.length)];
      this.state = 'data';
      return this.push(head.subarray(b + B64.length));
    }
    if (this.state === 'data') i = this.data(piece);
    if (this.state === 'after' && i < piece.length) this.after.push(piece.subarray(i));
  }

  private data(piece: Buffer): number {
    let i = 0;
    while (i < piece.length) {
      if (this.carry.length === 0) {
        const used = native.base64DecodeRun(piece, i, piece.length, this.dst, this.cursor.at);
        i += used;
        this.cursor.at += (used / 4) * 3;
        if (i === piece.length) break;
      }
      const c = piece[i++];
      if (c === QUOTE) {
        if (this.carry.length !== 0) throw new Error('guest-file-read answered base64 cut short');
        this.state = 'after';
        this.after.push(Buffer.from([QUOTE]));
        return i;
      }
      this.carry.push(c);
      if (this.carry.length === 4) {
        const group = Buffer.alloc(3);
        const n = native.base64Decode(Buffer.from(this.carry), 0, 4, group);
        if (n < 0) throw new Error('guest-file-read answered invalid base64');
        if (this.cursor.at + n > this.dst.length) throw new Error('guest-file-read answered more than the file holds');
        group.copy(this.dst, this.cursor.at, 0, n);
        this.cursor.at += n;
        this.carry = [];
      }
    }
    return i;
  }

  end(): Buffer {
    return Buffer.concat([...this.head, ...this.after]);
  }
}

/** guest-file-open's handle. */
export async function qgaOpen(host: QgaBulkHost, file: string, mode: string): Promise<number> {
  const a = await host.ask(
    `{"execute":"guest-file-open","arguments":{"path":${JSON.stringify(file)},"mode":"${mode}"}}\n`,
  );
  return Number(/"return": (\d+)/.exec(a.toString('latin1'))![1]);
}

export async function qgaClose(host: QgaBulkHost, handle: number): Promise<void> {
  await host.ask(`{"execute":"guest-file-close","arguments":{"handle":${handle}}}\n`);
}

/**
 * Reads `file` to its end in guest-file-reads of `count`, `depth` of them in flight; the bytes,
 * the seconds the reads took (open and close aside) and the data's md5, hashed once the clock
 * has stopped. The agent runs on this machine: the file's size says how much memory the data
 * needs, made (and touched) before the clock starts.
 */
export async function qgaDownload(
  host: QgaBulkHost,
  file: string,
  count: number,
  depth = 1,
): Promise<{ bytes: number; seconds: number; md5: string; reads: number }> {
  const dst = Buffer.alloc(fs.statSync(file).size);
  let reads = 0; // answers up to the one at end of file
  const h = await qgaOpen(host, file, 'rb');
  const read = `{"execute":"guest-file-read","arguments":{"handle":${h},"count":${count}}}\n`;
  const cursor = { at: 0 }; // where the next answer's data goes
  const t0 = process.hrtime.bigint();
  let seconds: number;
  try {
    const inFlight: Promise<Buffer>[] = [];
    const send = () => inFlight.push(quiet(host.ask(read, new ReadSink(dst, cursor))));
    for (let i = 0; i < depth; i++) send();
    for (;;) {
      const line = await inFlight.shift()!;
      reads++;
      if (line.indexOf(EOF_TRUE) >= 0) break;
      send();
    }
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await Promise.all(inFlight); // reads sent past the end: empty
  } finally {
    host.forget();
    await qgaClose(host, h);
  }
  const bytes = cursor.at;
  return { bytes, seconds, md5: createHash('md5').update(dst.subarray(0, bytes)).digest('hex'), reads };
}

/**
 * Writes `data` to `file` in guest-file-writes of `chunk` bytes, `depth` in flight, then closes
 * it; the seconds taken, the close included (qemu-ga writes its last buffered bytes there).
 */
export async function qgaUpload(
  host: QgaBulkHost,
  data: Buffer,
  file: string,
  chunk: number,
  depth = 1,
): Promise<{ bytes: number; seconds: number }> {
  const h = await qgaOpen(host, file, 'wb');
  const head = Buffer.from(`{"execute":"guest-file-write","arguments":{"handle":${h},"buf-b64":"`, 'latin1');
  const tail = Buffer.from('"}}\n', 'latin1');
  const check = (answer: Buffer, want: number) => {
    const n = Number(/"count": (\d+)/.exec(answer.toString('latin1'))![1]);
    if (n !== want) throw new Error(`guest-file-write wrote ${n} of ${want} bytes`);
  };
  const t0 = process.hrtime.bigint();
  try {
    const inFlight: { answer: Promise<Buffer>; bytes: number }[] = [];
    for (let off = 0; off < data.length; off += chunk) {
      const part = data.subarray(off, Math.min(data.length, off + chunk));
      inFlight.push({ answer: quiet(host.ask([head, native.base64(part, part.length), tail])), bytes: part.length });
      if (inFlight.length >= depth) {
        const w = inFlight.shift()!;
        check(await w.answer, w.bytes);
      }
    }
    for (const w of inFlight) check(await w.answer, w.bytes);
  } finally {
    await qgaClose(host, h);
  }
  return { bytes: data.length, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}
