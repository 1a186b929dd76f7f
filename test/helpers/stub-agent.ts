// A stand-in agent inside the test process, on a unix socket, for what a real ember-ga cannot
// show: the 0.7.1 protocol (agent-info unknown, 4096-byte reads whatever `size` says, data sent
// with eof:true dropped, requests run concurrently), answers in reverse order, silence. File
// commands work on the real filesystem.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import { encodeError, encodeReturn } from '../../lib/wire/answer';
import { LineFramer } from '../../lib/wire/framing';
import { parseRequest, type Request } from '../../lib/wire/request';

export interface StubOptions {
  /** Speak 0.7.1: Unknown command for agent-info, 4096-byte reads, eof data dropped. */
  reference?: boolean;
  /** Hold answers until this many requests have arrived, then send them in reverse order. */
  reverseBatch?: number;
  /** Commands that never get an answer. */
  silent?: string[];
  /** Milliseconds before answering a request (default: a random 0-1 ms, like concurrent goroutines). */
  delay?: (req: Request) => number;
  /** Canned return values by command (checked first), for commands the stub does not implement. */
  answers?: Record<string, unknown>;
  /** file-read answers as {"eof","bufb64"} (a key order the client's fast path does not take). */
  eofFirst?: boolean;
}

export interface Stub {
  path: string;
  /** Every request received, in arrival order. */
  requests: Request[];
  /** Most requests on one handle in flight at once. */
  maxPerHandle: number;
  connections: number;
  /** Drops the current connections (the agent "dies"). */
  dropConnections(): void;
  close(): Promise<void>;
}

export async function startStub(path: string, opts: StubOptions = {}): Promise<Stub> {
  const handles = new Map<number, { fd: number; busy: number; write: boolean }>();
  let nextHandle = 1;
  const sockets = new Set<net.Socket>();
  const stub: Stub = {
    path,
    requests: [],
    maxPerHandle: 0,
    connections: 0,
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        stub.dropConnections();
        server.close(() => r());
      }),
  };

  const run = (req: Request): unknown => {
    const a = req.arguments as Record<string, never>;
    if (opts.answers && req.execute in opts.answers) return opts.answers[req.execute];
    switch (req.execute) {
      case 'ping':
        return opts.reference ? '0.7.1' : '0.1.0-stub';
      case 'agent-info':
        if (opts.reference) throw new Error(`Unknown command: ${req.execute}`);
        return { name: 'ember-ga', version: '0.1.0-stub', max_line_bytes: 16 << 20, max_read_size: 4 << 20 };
      case 'file-open': {
        const fd = fs.openSync(a.path, a.mode === 'w' ? 'w' : 'r', a.perm ?? 0o644);
        handles.set(nextHandle, { fd, busy: 0, write: a.mode === 'w' });
        return nextHandle++;
      }
      case 'file-read': {
        const h = handles.get(a.handle_id);
        if (!h) throw new Error('Unknown handle');
        const size = opts.reference ? 4096 : Math.min(a.size ?? 4096, 4 << 20);
        const buf = Buffer.alloc(size);
        const n = fs.readSync(h.fd, buf, 0, size, null);
        if (n === 0) {
          fs.closeSync(h.fd);
          handles.delete(a.handle_id);
          return opts.eofFirst ? { eof: true, bufb64: '' } : { bufb64: '', eof: true };
        }
        const b64 = buf.subarray(0, n).toString('base64');
        return opts.eofFirst ? { eof: false, bufb64: b64 } : { bufb64: b64, eof: false };
      }
      case 'file-write': {
        const h = handles.get(a.handle_id);
        if (!h) throw new Error('Unknown handle');
        if (!(opts.reference && a.eof)) fs.writeSync(h.fd, Buffer.from(a.bufb64 as string, 'base64'));
        if (a.eof) {
          fs.closeSync(h.fd);
          handles.delete(a.handle_id);
        }
        return true;
      }
      case 'file-close': {
        const h = handles.get(a.handle_id);
        if (h) fs.closeSync(h.fd);
        handles.delete(a.handle_id);
        return true;
      }
      case 'get-file-md5sum':
        if (opts.reverseBatch) return createHash('md5').update(a.path).digest('hex'); // answer depends on the request
        return createHash('md5').update(fs.readFileSync(a.path)).digest('hex');
      case 'file-stat': {
        const st = fs.lstatSync(a.path);
        return { name: a.path, isdir: st.isDirectory(), stat: { Mode: st.mode, Size: st.size } };
      }
      default:
        throw new Error(`Unknown command: ${req.execute}`);
    }
  };

  const server = net.createServer((sock) => {
    stub.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let held: string[] = [];
    const send = (line: string) => {
      if (!opts.reverseBatch) return void sock.write(line);
      held.push(line);
      if (held.length === opts.reverseBatch) {
        sock.write(held.reverse().join(''));
        held = [];
      }
    };
    const framer = new LineFramer(
      (line) => {
        let req: Request;
        try {
          req = parseRequest(line);
        } catch (e) {
          return send(encodeError((e as Error).message, -1, ''));
        }
        stub.requests.push(req);
        if (opts.silent?.includes(req.execute)) return;
        const h = handles.get((req.arguments as { handle_id?: number }).handle_id ?? -1);
        if (h) stub.maxPerHandle = Math.max(stub.maxPerHandle, ++h.busy);
        setTimeout(
          () => {
            if (h) h.busy--;
            try {
              send(encodeReturn(run(req), req.tag));
            } catch (e) {
              const err = e as NodeJS.ErrnoException;
              send(encodeError(err.message, typeof err.errno === 'number' ? -err.errno : -1, req.tag));
            }
          },
          opts.delay ? opts.delay(req) : Math.random() < 0.5 ? 0 : 1,
        );
      },
      () => {},
    );
    sock.on('data', (d: Buffer) => framer.push(d));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return stub;
}
