// A minimal host for the 4 KiB transfers: one request at a time over the raw socket, each line
// built from a template, each answer taken apart with indexOf, no client library, nothing 0.7.1
// lacks (it drives the reference agent too). It shows what the agent itself does per request,
// apart from the project's client (GuestAgent), whose bookkeeping (tags, timers, promises,
// progress) is part of the other figures. Every byte is md5-verified all the same.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as net from 'net';

/**
 * Sends one line, resolves with the next answer line (a host with one request in flight). Each
 * transfer makes one on the bench's shared socket and must end() it: a listener left behind
 * would go on scanning and joining every later answer, slowing the next transfers down.
 */
export class OneAtATime {
  private parts: Buffer[] = [];
  private waiter: ((line: Buffer) => void) | undefined;
  private readonly onData = (d: Buffer) => {
    const nl = d.indexOf(0x0a);
    if (nl < 0) {
      this.parts.push(d);
      return;
    }
    this.parts.push(d.subarray(0, nl));
    const line = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = nl + 1 < d.length ? [d.subarray(nl + 1)] : [];
    const w = this.waiter;
    this.waiter = undefined;
    w?.(line);
  };

  /** `who` names the agent in the error askOk() throws. */
  constructor(
    private readonly sock: net.Socket,
    private readonly who = 'agent',
  ) {
    sock.on('data', this.onData);
  }

  ask(line: string): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.sock.write(line);
    });
  }

  /** ask(), throwing on an error answer. */
  async askOk(line: string): Promise<Buffer> {
    return check(await this.ask(line), this.who);
  }

  end(): void {
    this.sock.off('data', this.onData);
  }
}

function check(line: Buffer, who = 'agent'): Buffer {
  if (line.indexOf('"error"') >= 0) throw new Error(`${who}: ${line.toString('utf8', 0, 300)}`);
  return line;
}

/** The handle a file-open answered with. */
export function openedHandle(line: Buffer): number {
  return Number(/"return":(\d+)/.exec(line.toString())![1]);
}

const B64 = Buffer.from('"bufb64":"');

/** The data a file-read answered with, decoded; empty at the end of the file. */
export function readData(line: Buffer): Buffer {
  const at = line.indexOf(B64) + B64.length;
  return Buffer.from(line.toString('latin1', at, line.indexOf(0x22, at)), 'base64');
}

async function withHost<T>(sock: net.Socket, run: (host: OneAtATime) => Promise<T>): Promise<T> {
  const host = new OneAtATime(sock);
  try {
    return await run(host);
  } finally {
    host.end();
  }
}

/** Downloads `file` in 4096-byte reads (the default size); returns the seconds taken and the data's md5. */
export function bareDownload(sock: net.Socket, file: string): Promise<{ bytes: number; seconds: number; md5: string }> {
  return withHost(sock, (host) => download(host, file));
}

async function download(host: OneAtATime, file: string): Promise<{ bytes: number; seconds: number; md5: string }> {
  const open = check(await host.ask(`{"execute":"file-open","arguments":{"path":${JSON.stringify(file)}}}\n`));
  const id = openedHandle(open);
  const read = `{"execute":"file-read","arguments":{"handle_id":${id}}}\n`;
  const chunks: Buffer[] = [];
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  for (;;) {
    const line = check(await host.ask(read));
    const data = readData(line);
    if (data.length === 0) break; // eof: the agent closed the handle
    chunks.push(data);
    bytes += data.length;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // Hashed once the clock has stopped: an md5 per chunk would sit between answer and request.
  const md5 = createHash('md5');
  for (const c of chunks) md5.update(c);
  return { bytes, seconds, md5: md5.digest('hex') };
}

/**
 * Uploads local `src` to guest `dst` in 4096-byte writes, then a file-close (the way a 0.7.1-era
 * host does it: 0.7.1 drops the data of a write with eof: true); returns the seconds taken.
 */
export function bareUpload(sock: net.Socket, src: string, dst: string): Promise<{ bytes: number; seconds: number }> {
  return withHost(sock, (host) => upload(host, src, dst));
}

async function upload(host: OneAtATime, src: string, dst: string): Promise<{ bytes: number; seconds: number }> {
  const data = fs.readFileSync(src);
  const open = check(
    await host.ask(`{"execute":"file-open","arguments":{"path":${JSON.stringify(dst)},"mode":"w"}}\n`),
  );
  const id = openedHandle(open);
  const t0 = process.hrtime.bigint();
  for (let off = 0; off < data.length; off += 4096) {
    const end = Math.min(data.length, off + 4096);
    check(
      await host.ask(
        `{"execute":"file-write","arguments":{"handle_id":${id},"bufb64":"${data.toString('base64', off, end)}"}}\n`,
      ),
    );
  }
  check(await host.ask(`{"execute":"file-close","arguments":{"handle_id":${id}}}\n`));
  return { bytes: data.length, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}
