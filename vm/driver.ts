// TEMPORARY: the subset of lib/client's GuestAgent that run.ts uses, over the test line client,
// until the client branch is merged into main. Then this file goes and run.ts imports
// GuestAgent from '../lib/client/guest-agent' and GuestAgentError from '../lib/client/errors'
// (same method names, options and error fields).
import * as crypto from 'crypto';
import * as fs from 'fs';
import { errorMessage, LineClient } from '../test/helpers/agent';

export class GuestAgentError extends Error {
  constructor(
    message: string,
    readonly errno: number,
    readonly remote: boolean,
  ) {
    super(message);
  }
}

const CHUNK = 1 << 20;

export class GuestAgent {
  private conn: LineClient | undefined;
  private readonly timeout: number;

  constructor(private readonly opts: { socket: string; timeout?: number; connectTimeout?: number }) {
    this.timeout = opts.timeout ?? 30_000;
  }

  private async link(): Promise<LineClient> {
    if (!this.conn || this.conn.closed) this.conn = await LineClient.connect(this.opts.socket);
    return this.conn;
  }

  async call<T = unknown>(command: string, args?: Record<string, unknown>, o: { timeout?: number } = {}): Promise<T> {
    const a = await (await this.link()).call(command, args, o.timeout ?? this.timeout);
    if (a.error) throw new GuestAgentError(errorMessage(a), a.error.code, true);
    return a.return as T;
  }

  ping(o?: { timeout?: number }): Promise<string> {
    return this.call<string>('ping', undefined, o);
  }

  async close(): Promise<void> {
    this.conn?.close();
    this.conn = undefined;
  }

  /** A local file to a guest path in 1 MiB chunks, then checked against get-file-md5sum. */
  async copyTo(src: string, guestPath: string): Promise<{ bytes: number; chunkSize: number; inFlight: number }> {
    const data = fs.readFileSync(src);
    const h = await this.call<number>('file-open', { path: guestPath, mode: 'w', perm: 0o644 });
    for (let off = 0; off === 0 || off < data.length; off += CHUNK) {
      const eof = off + CHUNK >= data.length;
      await this.call('file-write', { handle_id: h, bufb64: data.subarray(off, off + CHUNK).toString('base64'), eof });
    }
    await this.verify(guestPath, data);
    return { bytes: data.length, chunkSize: CHUNK, inFlight: 1 };
  }

  /** A guest file to a local path with 1 MiB reads, then checked against get-file-md5sum. */
  async copyFrom(guestPath: string, dest: string): Promise<{ bytes: number; chunkSize: number; inFlight: number }> {
    const h = await this.call<number>('file-open', { path: guestPath, mode: 'r' });
    const parts: Buffer[] = [];
    for (;;) {
      const r = await this.call<{ bufb64: string; eof: boolean }>('file-read', { handle_id: h, size: CHUNK });
      parts.push(Buffer.from(r.bufb64, 'base64'));
      if (r.eof) break;
    }
    const data = Buffer.concat(parts);
    await this.verify(guestPath, data);
    fs.writeFileSync(dest, data);
    return { bytes: data.length, chunkSize: CHUNK, inFlight: 1 };
  }

  private async verify(guestPath: string, data: Buffer): Promise<void> {
    const sum = await this.call<string>('get-file-md5sum', { path: guestPath });
    const local = crypto.createHash('md5').update(data).digest('hex');
    if (sum !== local) throw new GuestAgentError(`md5 mismatch for ${guestPath}: guest ${sum}, host ${local}`, -1, false);
  }
}
