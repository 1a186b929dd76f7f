// A qemu-ga host for bulk file transfers (tests and the benchmark): one request at a time, as
// libvirt sends them; answers found by scanning only the bytes that arrive and joined once, so a
// 64 MB read answer costs one copy, not one per chunk; the data taken out with indexOf, no
// JSON.parse of megabytes.
import { createHash } from 'crypto';
import * as net from 'net';

export class QgaBulkHost {
  private parts: Buffer[] = [];
  private waiter: { resolve(line: Buffer): void; reject(e: Error): void } | undefined;
  private closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      let from = 0;
      for (let nl = d.indexOf(0x0a); nl >= 0; nl = d.indexOf(0x0a, from)) {
        this.parts.push(d.subarray(from, nl));
        const line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
        this.parts = [];
        from = nl + 1;
        const w = this.waiter;
        this.waiter = undefined;
        w?.resolve(line);
      }
      if (from < d.length) this.parts.push(d.subarray(from));
    });
    sock.on('close', () => {
      this.closed = true;
      this.waiter?.reject(new Error('the agent closed the connection'));
    });
  }

  static connect(socket: string): Promise<QgaBulkHost> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socket, () => resolve(new QgaBulkHost(s)));
      s.once('error', reject);
    });
  }

  /** Sends one request line; resolves with its answer line (no newline), or rejects on an error answer. */
  ask(line: string | Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the agent closed the connection'));
    return new Promise<Buffer>((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.sock.write(line);
    }).then((answer) => {
      if (answer.indexOf('{"error"') === 0) throw new Error(`agent: ${answer.toString('utf8', 0, 300)}`);
      return answer;
    });
  }

  close(): void {
    this.sock.destroy();
  }
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

/** Reads `file` to its end in guest-file-reads of `count`; the bytes, the seconds the reads took and the data's md5. */
export async function qgaDownload(
  host: QgaBulkHost,
  file: string,
  count: number,
): Promise<{ bytes: number; seconds: number; md5: string }> {
  const h = await qgaOpen(host, file, 'rb');
  const read = `{"execute":"guest-file-read","arguments":{"handle":${h},"count":${count}}}\n`;
  const md5 = createHash('md5');
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  try {
    for (;;) {
      const line = await host.ask(read);
      const at = line.indexOf(B64) + B64.length;
      const end = line.indexOf(0x22, at);
      const data = Buffer.from(line.toString('latin1', at, end), 'base64');
      md5.update(data);
      bytes += data.length;
      if (line.indexOf(EOF_TRUE, end) >= 0) break;
    }
  } finally {
    await qgaClose(host, h);
  }
  return { bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9, md5: md5.digest('hex') };
}

/** Writes `data` to `file` in guest-file-writes of `chunk` bytes, then closes it; the seconds taken. */
export async function qgaUpload(
  host: QgaBulkHost,
  data: Buffer,
  file: string,
  chunk: number,
): Promise<{ bytes: number; seconds: number }> {
  const h = await qgaOpen(host, file, 'wb');
  const head = Buffer.from(`{"execute":"guest-file-write","arguments":{"handle":${h},"buf-b64":"`, 'latin1');
  const tail = Buffer.from('"}}\n', 'latin1');
  const t0 = process.hrtime.bigint();
  try {
    for (let off = 0; off < data.length; off += chunk) {
      const part = data.subarray(off, Math.min(data.length, off + chunk));
      const answer = await host.ask(Buffer.concat([head, Buffer.from(part.toString('base64'), 'latin1'), tail]));
      const n = Number(/"count": (\d+)/.exec(answer.toString('latin1'))![1]);
      if (n !== part.length) throw new Error(`guest-file-write wrote ${n} of ${part.length} bytes`);
    }
  } finally {
    await qgaClose(host, h); // timed too: qemu-ga writes its last buffered bytes here
  }
  return { bytes: data.length, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}
