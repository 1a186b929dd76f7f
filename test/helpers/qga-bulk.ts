// A qemu-ga host for bulk file transfers (tests and the benchmark): requests in order, one at a
// time as libvirt sends them or a few in flight; answers found by scanning only the bytes that
// arrive and joined once, so a 64 MB read answer costs one copy, not one per chunk; the data
// taken out with indexOf and decoded by the addon, and requests built from the addon's base64,
// so the host's own cost stays small next to the agent's. No JSON.parse of megabytes.
import { createHash } from 'crypto';
import * as net from 'net';
import { native } from '../../lib/native';

export class QgaBulkHost {
  private parts: Buffer[] = [];
  /** The requests sent and not answered yet, in order. */
  private readonly waiters: { resolve(line: Buffer): void; reject(e: Error): void }[] = [];
  private closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      let from = 0;
      for (let nl = d.indexOf(0x0a); nl >= 0; nl = d.indexOf(0x0a, from)) {
        this.parts.push(d.subarray(from, nl));
        const line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
        this.parts = [];
        from = nl + 1;
        this.waiters.shift()?.resolve(line); // an answer nobody waits for is dropped
      }
      if (from < d.length) this.parts.push(d.subarray(from));
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
   * rejects on an error answer. Requests may be sent before earlier ones are answered.
   */
  ask(request: string | Buffer | Buffer[]): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the agent closed the connection'));
    return new Promise<Buffer>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
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
 * has stopped.
 */
export async function qgaDownload(
  host: QgaBulkHost,
  file: string,
  count: number,
  depth = 1,
): Promise<{ bytes: number; seconds: number; md5: string }> {
  const h = await qgaOpen(host, file, 'rb');
  const read = `{"execute":"guest-file-read","arguments":{"handle":${h},"count":${count}}}\n`;
  const chunks: Buffer[] = [];
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  let seconds: number;
  try {
    const inFlight: Promise<Buffer>[] = [];
    const send = () => inFlight.push(quiet(host.ask(read)));
    for (let i = 0; i < depth; i++) send();
    for (;;) {
      const line = await inFlight.shift()!;
      const at = line.indexOf(B64) + B64.length;
      const end = line.indexOf(0x22, at);
      const data = Buffer.allocUnsafe(Math.floor(((end - at) / 4) * 3));
      const n = native.base64Decode(line, at, end, data);
      if (n < 0) throw new Error('guest-file-read answered invalid base64');
      chunks.push(data.subarray(0, n));
      bytes += n;
      if (line.indexOf(EOF_TRUE, end) >= 0) break;
      send();
    }
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await Promise.all(inFlight); // reads sent past the end: empty
  } finally {
    host.forget();
    await qgaClose(host, h);
  }
  const md5 = createHash('md5');
  for (const c of chunks) md5.update(c);
  return { bytes, seconds, md5: md5.digest('hex') };
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
