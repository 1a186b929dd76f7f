// A small host-side driver for benchmarks: one connection, requests matched to answers by tag,
// any number in flight. (The project's client library, when it lands, replaces this.)
//
// The host shares the machine (and the event-loop model) with the agent, so its own per-byte
// cost shows up in every figure. Like any host that moves data in bulk, it therefore handles
// file-read answers and file-write requests without a JSON pass over the payload: base64 needs
// no JSON escaping, so the payload is sliced out of, or spliced into, the line as it is.
import * as net from 'net';

export class AgentCallError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** fast: a file-read sent by read(), whose answer may skip JSON.parse. */
type Waiter = { resolve(v: unknown): void; reject(e: Error): void; fast?: boolean };

export class Driver {
  private parts: Buffer[] = [];
  private seq = 0;
  private readonly waiting = new Map<string, Waiter>();
  private closedError: Error | undefined;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    const fail = (e: Error) => {
      this.closedError = e;
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    sock.on('close', () => fail(new Error('connection closed')));
    sock.on('error', (e) => fail(e));
  }

  static connect(path: string): Promise<Driver> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(path, () => {
        s.off('error', reject);
        resolve(new Driver(s));
      });
      s.once('error', reject);
    });
  }

  private onData(d: Buffer): void {
    let start = 0;
    let nl: number;
    while ((nl = d.indexOf(10, start)) >= 0) {
      const piece = d.subarray(start, nl);
      const line = this.parts.length ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      start = nl + 1;
      const chunk = readAnswer(line);
      if (chunk && this.waiting.get(chunk.tag)?.fast) {
        const w = this.waiting.get(chunk.tag)!;
        this.waiting.delete(chunk.tag);
        w.resolve(chunk);
        continue;
      }
      const a = JSON.parse(line.toString('utf8')) as { return?: unknown; error?: { bufb64: string; code: number }; tag: string };
      const w = this.waiting.get(a.tag);
      if (!w) continue;
      this.waiting.delete(a.tag);
      if (a.error) w.reject(new AgentCallError(Buffer.from(a.error.bufb64, 'base64').toString('utf8'), a.error.code));
      else w.resolve(a.return);
    }
    if (start < d.length) this.parts.push(d.subarray(start));
  }

  /** Sends one request; resolves with its return value, rejects with AgentCallError. */
  call<T = unknown>(execute: string, args?: Record<string, unknown>, fast = false): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const tag = String(++this.seq);
    const p = new Promise<T>((resolve, reject) => this.waiting.set(tag, { resolve: resolve as (v: unknown) => void, reject, fast }));
    this.sock.write(JSON.stringify(args ? { execute, arguments: args, tag } : { execute, tag }) + '\r\n');
    return p;
  }

  /** file-read; resolves with the decoded bytes (empty at end of file). */
  read(handle: number, size?: number): Promise<{ data: Buffer; eof: boolean }> {
    return this.call<ReadChunk>('file-read', size ? { handle_id: handle, size } : { handle_id: handle }, true).then((r) => ({
      data: r.data ?? Buffer.from((r as unknown as { bufb64: string }).bufb64, 'base64'),
      eof: r.eof,
    }));
  }

  /** file-write of data (a slice of a Buffer), the line built around the base64 text directly. */
  write(handle: number, data: Buffer, eof: boolean): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const tag = String(++this.seq);
    const p = new Promise((resolve, reject) => this.waiting.set(tag, { resolve, reject }));
    this.sock.write(`{"execute":"file-write","arguments":{"handle_id":${handle},"eof":${eof},"bufb64":"${data.toString('base64')}"},"tag":"${tag}"}\r\n`, 'latin1');
    return p;
  }

  close(): void {
    this.sock.destroy();
  }
}

interface ReadChunk {
  data?: Buffer;
  eof: boolean;
  tag: string;
}

const READ_PREFIX = Buffer.from('{"return":{"bufb64":"');
const READ_MIDDLE = Buffer.from('","eof":');

/** A file-read answer, `{"return":{"bufb64":"B64","eof":BOOL},"tag":"TAG"}`, decoded without JSON.parse; else undefined. */
function readAnswer(line: Buffer): ReadChunk | undefined {
  if (line.length < 64 || !line.subarray(0, READ_PREFIX.length).equals(READ_PREFIX)) return undefined;
  const mid = line.lastIndexOf(READ_MIDDLE);
  if (mid < 0) return undefined;
  // The rest is `false},"tag":"N"}`: without its first `}` it completes `{"eof":` as one object.
  const rest = line.toString('latin1', mid + READ_MIDDLE.length);
  const brace = rest.indexOf('}');
  const tail = JSON.parse(`{"eof":${rest.slice(0, brace)}${rest.slice(brace + 1)}`) as { eof: boolean; tag: string };
  return { data: Buffer.from(line.toString('latin1', READ_PREFIX.length, mid), 'base64'), eof: tail.eof, tag: tail.tag };
}
