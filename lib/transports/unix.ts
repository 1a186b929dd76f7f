// A unix socket server, one host connection at a time (like qemu-ga's unix-listen): a second
// connection waits until the first one closes.
import * as fs from 'fs';
import * as net from 'net';
import { chunkPool } from '../files/pool';
import type { Logger } from '../log';
import type { Transport, TransportSink } from './transport';

/** Answers this long are queued from a reused buffer (see write). */
const POOLED_ANSWER = 64 * 1024;
/**
 * How long a host that has stopped sending (half-closed, or gone) keeps the connection for
 * answers still to come once another host is waiting. Past it the next host is served: a request
 * that may never end (a read on a FIFO nobody writes to) must not lock every later host out.
 */
export const HANDOVER_MS = 5_000;

export class UnixTransport implements Transport {
  private server: net.Server | undefined;
  private active: net.Socket | undefined;
  private readonly waiting: net.Socket[] = [];
  private sink: TransportSink | undefined;
  private paused = false;
  private handover: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {}

  get description(): string {
    return `unix:${this.path}`;
  }

  async start(sink: TransportSink): Promise<void> {
    this.sink = sink;
    removeStaleSocket(this.path);
    // allowHalfOpen: a host may send its requests and shut down its side (`socat -` at end of
    // input); it still gets every answer before the agent closes the connection.
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error(`listener: ${e.message}`));
  }

  private accept(sock: net.Socket): void {
    sock.on('error', (e) => this.log.debug(`connection: ${e.message}`));
    if (this.active) {
      this.log.debug('a second host connection waits for the first to close');
      sock.pause();
      this.waiting.push(sock);
      sock.once('close', () => {
        const i = this.waiting.indexOf(sock);
        if (i >= 0) this.waiting.splice(i, 1);
      });
      if (this.active.readableEnded) this.scheduleHandover(); // it has stopped sending
      return;
    }
    this.activate(sock);
  }

  /** Once HANDOVER_MS passes, the active host (which has stopped sending) makes way for the next. */
  private scheduleHandover(): void {
    const sock = this.active;
    if (this.handover || !sock) return;
    this.handover = setTimeout(() => {
      this.handover = undefined;
      if (this.active !== sock || this.waiting.length === 0) return;
      this.log.info(`the host stopped sending ${HANDOVER_MS / 1000} s ago with requests still unanswered; serving the next host`);
      sock.destroy();
    }, HANDOVER_MS);
    this.handover.unref();
  }

  private activate(sock: net.Socket): void {
    const sink = this.sink!;
    this.active = sock;
    this.log.info('host connected');
    sink.reset();
    sock.on('data', (chunk: Buffer) => sink.data(chunk));
    sock.on('drain', () => sink.drain());
    sock.once('end', () => {
      if (this.waiting.length > 0) this.scheduleHandover();
      void sink.settled().then(() => sock.end());
    });
    sock.once('close', () => {
      if (this.active !== sock) return;
      if (this.handover) clearTimeout(this.handover);
      this.handover = undefined;
      this.active = undefined;
      this.log.info('host disconnected');
      sink.reset();
      sink.hostGone(); // a new connection is a new session
      const next = this.waiting.shift();
      if (next) this.activate(next);
    });
    if (this.paused) sock.pause();
    else sock.resume();
  }

  write(line: string | Buffer): void {
    // With no host connected the answer has nowhere to go (a new connection is a new session).
    const sock = this.active;
    if (!sock || sock.destroyed) return;
    // An answer larger than the pool keeps (a directory listing's) gains nothing from a copy: the
    // copy would be just as fresh, and copying tens of MB holds the main thread.
    if (typeof line === 'string' || line.length < POOLED_ANSWER || !chunkPool.keeps(line.length)) {
      sock.write(line);
      return;
    }
    // A large answer (a file-read chunk) waits in the socket's queue while the host reads the
    // ones before it; as a fresh buffer it would outlast young-generation collections and pile
    // up in the old generation (peak RSS ~135 MiB over 512 MiB of 1 MiB downloads). A copy in a
    // reused buffer leaves the answer garbage at once; the socket gives the copy back once it is
    // written or dropped.
    const copy = chunkPool.take(line.length);
    line.copy(copy);
    sock.write(copy.subarray(0, line.length), () => chunkPool.give(copy));
  }

  get queued(): number {
    return this.active?.writableLength ?? 0;
  }

  pause(): void {
    this.paused = true;
    this.active?.pause();
  }

  resume(): void {
    this.paused = false;
    this.active?.resume();
  }

  flush(timeoutMs: number): Promise<void> {
    const sock = this.active;
    if (!sock || sock.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      sock.write('', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    // Waiting hosts were never served; the active one has had its answers (the agent flushed).
    // Neither may hold up the exit: a peer that never closes its side is cut off.
    for (const s of this.waiting) s.destroy();
    this.waiting.length = 0;
    const active = this.active;
    if (active) {
      active.end();
      const t = setTimeout(() => active.destroy(), 500);
      active.once('close', () => clearTimeout(t));
    }
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    this.active = undefined;
  }
}

function removeStaleSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    // nothing there
  }
}
