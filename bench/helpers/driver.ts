// A small host-side driver for benchmarks: one connection, requests matched to answers by tag,
// any number in flight. (The project's client library, when it lands, replaces this.)
import * as net from 'net';

export class AgentCallError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

type Waiter = { resolve(v: unknown): void; reject(e: Error): void };

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
  call<T = unknown>(execute: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const tag = String(++this.seq);
    const p = new Promise<T>((resolve, reject) => this.waiting.set(tag, { resolve: resolve as (v: unknown) => void, reject }));
    this.sock.write(JSON.stringify(args ? { execute, arguments: args, tag } : { execute, tag }) + '\r\n');
    return p;
  }

  close(): void {
    this.sock.destroy();
  }
}
