// A stand-in qemu-ga inside the test process, on a unix socket, for what neither qemu-ga nor
// ember-ga will do on request: junk before a sync's 0xFF, answers that are not JSON, answers
// without an id, silence, a connection dropped mid-request, an agent that pretends to be
// ember-ga. By default it answers as qemu-ga does: guest-sync-delimited with a 0xFF before,
// guest-sync, guest-ping, a small guest-info, and CommandNotFound for anything else.
import * as net from 'net';

export interface FakeRequest {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

/**
 * What the fake does with a request: an answer (`return` or `error`, its id added when the
 * request had one), raw bytes written as they are, nothing, or the connection dropped.
 */
export type Reply =
  | { return: unknown }
  | { error: { class: string; desc: string } }
  | { raw: string | Buffer }
  | { silent: true }
  | { drop: true };

export interface FakeQga {
  path: string;
  /** Every request received, in order (guest-sync-delimited included). */
  requests: FakeRequest[];
  /** Most requests received and not yet answered at once. */
  maxOutstanding: number;
  connections: number;
  /** Writes bytes to the current connections. */
  send(bytes: string | Buffer): void;
  /** Drops the current connections (the agent "dies"). */
  dropConnections(): void;
  close(): Promise<void>;
}

export interface FakeOptions {
  /** Milliseconds before each answer (default 2): requests sent meanwhile count as outstanding. */
  delay?: number;
  /** Decides a request's reply; undefined leaves it to the default. */
  reply?: (req: FakeRequest, fake: FakeQga) => Reply | undefined;
}

function defaultReply(req: FakeRequest): Reply {
  switch (req.execute) {
    case 'guest-sync-delimited':
    case 'guest-sync':
      return { return: req.arguments?.id };
    case 'guest-ping':
      return { return: {} };
    case 'guest-info':
      return {
        return: {
          version: '7.2.0',
          supported_commands: [{ enabled: true, name: 'guest-ping', 'success-response': true }],
        },
      };
    default:
      return { error: { class: 'CommandNotFound', desc: `The command ${req.execute} has not been found` } };
  }
}

/** The answer line qemu-ga would write for `reply` to `req`. */
function answerLine(req: FakeRequest, reply: { return: unknown } | { error: unknown }): string {
  const body: Record<string, unknown> = { ...reply };
  if ('id' in req) body.id = req.id;
  return JSON.stringify(body) + '\n';
}

export async function startFakeQga(path: string, opts: FakeOptions = {}): Promise<FakeQga> {
  const sockets = new Set<net.Socket>();
  let outstanding = 0;
  const fake: FakeQga = {
    path,
    requests: [],
    maxOutstanding: 0,
    connections: 0,
    send: (bytes) => {
      for (const s of sockets) s.write(bytes);
    },
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };

  const handle = (sock: net.Socket, text: string) => {
    let req: FakeRequest;
    try {
      req = JSON.parse(text) as FakeRequest;
    } catch {
      sock.write(JSON.stringify({ error: { class: 'GenericError', desc: 'JSON parse error' } }) + '\n');
      return;
    }
    fake.requests.push(req);
    const reply = opts.reply?.(req, fake) ?? defaultReply(req);
    if ('drop' in reply) {
      sock.destroy();
      return;
    }
    if ('silent' in reply) return;
    outstanding++;
    fake.maxOutstanding = Math.max(fake.maxOutstanding, outstanding);
    setTimeout(() => {
      outstanding--;
      if (sock.destroyed) return;
      if ('raw' in reply) sock.write(reply.raw);
      else {
        if (req.execute === 'guest-sync-delimited') sock.write(Buffer.from([0xff]));
        sock.write(answerLine(req, reply));
      }
    }, opts.delay ?? 2);
  };

  const server = net.createServer((sock) => {
    fake.connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const ff = buf.indexOf(0xff);
        const nl = buf.indexOf(0x0a);
        if (ff >= 0 && (nl < 0 || ff < nl)) {
          buf = buf.subarray(ff + 1); // qemu-ga answers a lone 0xFF with a parse error: skipped by clients
          continue;
        }
        if (nl < 0) break;
        const line = buf.subarray(0, nl).toString('utf8').trim();
        buf = buf.subarray(nl + 1);
        if (line) handle(sock, line);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return fake;
}
