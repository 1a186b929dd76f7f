// The virtio-serial port (or a pty standing in for it), through the addon's event-loop driver.
import { native, type NativePort, type PortEventHandler } from '../native';
import { toSystemError } from '../errors';
import type { Logger } from '../log';
import type { SessionSink, Transport, TransportSink } from './transport';
import { OWN_PIECE } from '../wire/answer';

/**
 * An answer's pieces of OWN_PIECE bytes or more (a large read's base64: a 1 MiB chunk's, each
 * 4 MiB of a 48 MiB qemu-ga read's 64 MiB) are sent from their own buffers, never copied, and
 * given to the port's driver, which frees each one's memory as soon as it is written. Copied, a
 * copy was held beside them until a collection freed them, two or three 64 MiB answers at a
 * time; kept without being freed, 1 MiB chunks outlived young-generation collections and ~70 MB
 * of them waited for a full one. Shorter pieces (the JSON around the base64) are copied as the
 * port does not take them, except in answers longer than KEEP_ANSWER (a listing's tens of MB, a
 * piece per 256 entries), whose pieces are kept as they are: old by the time they are written.
 */
const KEEP_ANSWER = 4 * 1024 * 1024;

/**
 * While large answers wait to be known written (SessionOutput's `written`), how often the port's
 * queue is looked at: the driver tells only when it has emptied.
 */
const WRITTEN_CHECK_MS = 20;

/** How long the port may stay hung up before the host's session counts as over (--host-gone-timeout). */
export const HOST_GONE_MS = 60_000;

export interface PortOptions {
  /** Milliseconds of hang-up after which the host's session is over (sink.hostGone); 0: never. */
  hostGoneMs?: number;
  /** Opens the port (the addon's Port; a test gives a stand-in). */
  open?: (path: string, onEvent: PortEventHandler) => NativePort;
  /** The port's name (org.guest-agent.0), when it was found by it: its endpoint (Transport.endpoint). */
  name?: string;
}

export class PortTransport implements Transport {
  private port: NativePort | undefined;
  private drainWaiters: (() => void)[] = [];
  private goneTimer: NodeJS.Timeout | undefined;
  /** The session of the host on the port; a new one begins when the last one is over. */
  private session: SessionSink | undefined;
  private sink: TransportSink | undefined;
  private readonly hostGoneMs: number;
  private readonly name: string | undefined;
  private readonly open: NonNullable<PortOptions['open']>;
  /** Bytes given to the port since it was made: those not queued any more are written (or dropped). */
  private sent = 0;
  /** Lines to be told written (SessionOutput's `written`), in order, each at the count of bytes that ends it. */
  private heldLines: { end: number; written: () => void }[] = [];
  private writtenCheck: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    opts: PortOptions = {},
  ) {
    this.hostGoneMs = opts.hostGoneMs ?? HOST_GONE_MS;
    this.name = opts.name;
    this.open = opts.open ?? ((p, onEvent) => new native.Port(p, onEvent, { views: true }));
  }

  get description(): string {
    return `port ${this.path}`;
  }

  get endpoint(): string {
    return this.name === undefined ? this.description : `port named ${this.name}`;
  }

  async start(sink: TransportSink): Promise<void> {
    this.sink = sink;
    this.newSession();
    try {
      this.port = this.open(this.path, (type, arg, start, end) => {
        switch (type) {
          case 'data':
            // A view of the driver's slab (the bytes stay put there), or a Buffer of their own.
            this.session!.data(start === undefined ? (arg as Buffer) : (arg as Buffer).subarray(start, end));
            break;
          case 'hangup':
            this.log.info(`host disconnected from ${this.path}; waiting for it`);
            this.pollWritten(); // nothing is written while it is away: no looking meanwhile
            this.session!.reset();
            sink.drain(); // output queued for the host may be gone: reading may go on
            // QEMU keeps a host's bytes while it reconnects, so a brief hang-up does not end its
            // session; one that lasts does.
            this.stopGoneTimer();
            if (this.hostGoneMs === 0) break;
            this.goneTimer = setTimeout(() => {
              this.goneTimer = undefined;
              this.log.info(`no host on ${this.path} for ${this.hostGoneMs / 1000} s: its session is over`);
              // What is still queued for it (a virtio port takes nothing while its host is away)
              // would start the next host's stream with the rest of a line.
              if (this.port?.discard()) this.drained();
              this.newSession();
            }, this.hostGoneMs);
            this.goneTimer.unref();
            break;
          case 'connect':
            // Found by the backoff timer, not at once: what should have woken the driver did not.
            this.log.info(
              `host connected on ${this.path}${this.port?.foundBy === 'timer' ? ' (found by the backoff check)' : ''}`,
            );
            this.stopGoneTimer();
            this.pollWritten();
            break;
          case 'reopen':
            this.log.info(`${this.path} now names another device; reopened it`);
            this.stopGoneTimer();
            this.newSession();
            this.pollWritten();
            break;
          case 'drain':
            this.drained();
            break;
          case 'error':
            this.log.warn((arg as Error).message);
            break;
        }
      });
    } catch (e) {
      // No host can reach a port that did not open: its session ends before it began.
      this.session?.end();
      this.session = undefined;
      throw toSystemError(e);
    }
  }

  /** Ends the session under way, if any, and begins the next host's. */
  private newSession(): void {
    this.session?.end();
    this.session = this.sink!.begin((line, written) => {
      if (typeof line === 'string') {
        const bytes = Buffer.from(line, 'utf8');
        this.sent += bytes.length;
        this.port?.write(bytes);
      } else if (Buffer.isBuffer(line)) {
        this.sent += line.length;
        this.port?.write(line);
      } else {
        let bytes = 0;
        for (const piece of line) bytes += piece.length;
        this.sent += bytes;
        const large = bytes > KEEP_ANSWER;
        for (const piece of line) {
          const own = piece.length >= OWN_PIECE;
          this.port?.write(piece, large || own, own);
        }
      }
      if (written) this.whenWritten(written);
    });
  }

  /** Calls `written` once what was given to the port so far is out of its queue. */
  private whenWritten(written: () => void): void {
    this.heldLines.push({ end: this.sent, written });
    this.checkWritten();
    this.pollWritten();
  }

  /** Looks at the queue every WRITTEN_CHECK_MS while lines wait to be told written and a host is there to take them. */
  private pollWritten(): void {
    const poll = this.heldLines.length > 0 && this.port?.connected === true;
    if (poll && !this.writtenCheck) {
      this.writtenCheck = setInterval(() => this.checkWritten(), WRITTEN_CHECK_MS);
      this.writtenCheck.unref();
    } else if (!poll && this.writtenCheck) {
      clearInterval(this.writtenCheck);
      this.writtenCheck = undefined;
    }
  }

  private checkWritten(): void {
    const out = this.sent - (this.port?.queued ?? 0);
    while (this.heldLines.length > 0 && this.heldLines[0].end <= out) this.heldLines.shift()!.written();
    if (this.heldLines.length === 0) this.pollWritten();
  }

  get queued(): number {
    return this.port?.queued ?? 0;
  }

  pause(): void {
    this.port?.pause();
  }

  resume(): void {
    this.port?.resume();
  }

  flush(timeoutMs: number): Promise<void> {
    if (!this.port || this.port.queued === 0 || !this.port.connected) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.drainWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Nothing is queued any more: flush() and the agent's budgets hear it. */
  private drained(): void {
    this.checkWritten();
    this.wakeDrainWaiters();
    this.sink?.drain();
  }

  private wakeDrainWaiters(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  async close(): Promise<void> {
    this.stopGoneTimer();
    this.session?.end();
    this.session = undefined;
    this.port?.close();
    this.port = undefined;
    this.checkWritten(); // all of it dropped
    this.wakeDrainWaiters();
  }

  private stopGoneTimer(): void {
    if (this.goneTimer) clearTimeout(this.goneTimer);
    this.goneTimer = undefined;
  }
}
