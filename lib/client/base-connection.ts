// BaseConnection: the connection lifecycle both request cores share (AgentConnection for
// phoenix's protocol, QmpConnection for qemu-ga's): one link at a time from the connector
// (link.ts), connecting again on the next call after a loss (unless told not to), the pending
// requests with their timeouts, every one of them failed with the same ECONNRESET when the link
// goes or the client closes, and features() asked once per connection. A subclass keeps what
// its protocol does differently: the framing of the agent's bytes, how an answer finds its
// request, and (qemu-ga) the sync.
import { EventEmitter } from 'events';
import { randomBytes } from 'crypto';
import { MAX_TIMER_MS } from '../timers';
import { GuestAgentError, hostError } from './errors';
import { connectorFor, type Connector, type Link, type Target } from './link';
import type { ProtocolName } from '../protocols/protocol';
import type { Features } from './types';

/** A JSON object (not null, not an array): what an answer line must parse to. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export type GuestAgentOptions = Target & {
  /** Milliseconds a request may wait for its answer (default 30 s; at most 2^31-1, else RangeError). */
  timeout?: number;
  /** Milliseconds to wait for a connection (default 10 s; at most 2^31-1). */
  connectTimeout?: number;
  /** Connect again on the next call after the connection was lost (default true). */
  reconnect?: boolean;
  /** The agent's protocol (GuestAgent): phoenix-guest-agent's (default) or qemu-guest-agent's. */
  protocol?: Protocol;
};

/** phoenix-guest-agent 0.7.1's line protocol (ember-ga's own), or qemu-guest-agent's QMP dialect. */
export type Protocol = ProtocolName;

export interface CallOptions {
  /** This request's timeout in milliseconds (default: the client's). */
  timeout?: number;
  /** Do not connect for this call: fail with ENOTCONN when there is no connection. */
  noReconnect?: boolean;
}

/** A request sent or waiting to be: what failing it takes. */
export interface PendingCall {
  /** Its tag (phoenix) or id (qemu-ga), the key in `pending`. */
  id: string;
  command: string;
  timer: NodeJS.Timeout;
  reject(err: Error): void;
}

/** Events: 'connect' (), 'disconnect' (error), and the subclass's own. */
export abstract class BaseConnection<P extends PendingCall> extends EventEmitter {
  readonly timeout: number;
  readonly connectTimeout: number;
  readonly reconnect: boolean;
  protected readonly connector: Connector;
  protected link: Link | undefined;
  private connecting: Promise<void> | undefined;
  private everConnected = false;
  private closed = false;
  /** Requests not yet answered, by tag or id, oldest first. */
  protected readonly pending = new Map<string, P>();
  /** Something came on the current connection (else a timeout may mean another host holds it). */
  protected heard = false;
  /** The longest request the agent takes, once features() has asked it; reset with each connection. */
  protected maxRequestBytes = Infinity;
  private featuresP: Promise<Features> | undefined;
  private readonly idPrefix = randomBytes(4).toString('hex') + '-';
  private seq = 0;

  constructor(opts: GuestAgentOptions, connector: Connector = connectorFor(opts)) {
    super();
    this.connector = connector;
    this.timeout = checkTimeout('timeout', opts.timeout ?? 30_000);
    this.connectTimeout = checkTimeout('connectTimeout', opts.connectTimeout ?? 10_000);
    this.reconnect = opts.reconnect ?? true;
  }

  /** A new connection's bytes start here: a fresh framer. */
  protected abstract begin(): void;
  /** Bytes from the agent. */
  protected abstract received(chunk: Buffer): void;
  /** The link is gone (lost or closed): drop what belonged to it, before its requests fail. */
  protected abstract dropped(): void;
  /** What the agent is and supports, asked over a new connection. */
  protected abstract detect(): Promise<Features>;

  get description(): string {
    return this.connector.description;
  }

  get connected(): boolean {
    return this.link !== undefined;
  }

  /** Requests sent (or queued) and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Connects (again) if not connected. */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(hostError('ENOTCONN', 'the client is closed'));
    if (this.link) return Promise.resolve();
    this.connecting ??= (async () => {
      try {
        this.begin();
        this.heard = false;
        const link = await this.connector.connect(
          {
            data: (chunk) => {
              this.heard = true;
              this.received(chunk);
            },
            close: (reason) => this.lost(reason),
          },
          this.connectTimeout,
        );
        if (this.closed) {
          link.destroy();
          throw hostError('ENOTCONN', 'the client was closed while connecting');
        }
        this.link = link;
        this.everConnected = true;
        this.emit('connect');
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  /** Closes the connection; requests in flight fail with ECONNRESET. */
  async close(): Promise<void> {
    this.closed = true;
    const link = this.link;
    this.link = undefined;
    link?.destroy();
    this.connector.close();
    this.dropped();
    this.failPending(hostError('ECONNRESET', 'the client was closed'));
  }

  /**
   * What the agent supports, asked once per connection (see the subclass's detect()); a failed
   * ask is asked again next time.
   */
  features(): Promise<Features> {
    this.featuresP ??= this.detect().catch((e) => {
      this.featuresP = undefined;
      throw e;
    });
    return this.featuresP;
  }

  /**
   * For a request made with no link: the ENOTCONN it fails with (closed, told not to connect, or
   * lost with reconnect off), else connect and then `send` it.
   */
  protected unlinked<T>(command: string, opts: CallOptions, send: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(hostError('ENOTCONN', `${command}: the client is closed`, command));
    if (opts.noReconnect || (this.everConnected && !this.reconnect))
      return Promise.reject(hostError('ENOTCONN', `${command}: not connected to ${this.description}`, command));
    return this.connect().then(send);
  }

  /** A fresh tag or id: random per client, so another host's answers are never taken for ours. */
  protected nextId(): string {
    return this.idPrefix + ++this.seq;
  }

  /** A call's timeout: its own or the client's; the TypeError or RangeError of checkTimeout. */
  protected timeoutOf(opts: CallOptions): number | Error {
    if (opts.timeout === undefined) return this.timeout;
    try {
      return checkTimeout('timeout', opts.timeout);
    } catch (e) {
      return e as Error;
    }
  }

  /**
   * EMSGSIZE when `line` (its end of line `eol` characters, not counted) is longer than the
   * agent takes; `ascii`: it is known to be ASCII. The UTF-8 length is counted only when the
   * characters alone come near the limit.
   */
  protected tooLong(command: string, line: string, eol: number, ascii?: boolean): GuestAgentError | undefined {
    if (line.length - eol <= this.maxRequestBytes / 3) return undefined;
    const bytes = ascii ? line.length - eol : Buffer.byteLength(line) - eol;
    if (bytes <= this.maxRequestBytes) return undefined;
    return hostError(
      'EMSGSIZE',
      `${command}: request of ${bytes} bytes is longer than the agent's limit of ${this.maxRequestBytes}`,
      command,
    );
  }

  /** The ETIMEDOUT of a request that got no answer within `ms`. */
  protected noAnswerError(command: string, ms: number): GuestAgentError {
    return hostError('ETIMEDOUT', `${command}: ${noAnswer(ms, this.heard, this.connector)}`, command);
  }

  /** Forgets a pending request (answered, timed out or failed); a subclass adds its own lists. */
  protected forget(p: P): void {
    clearTimeout(p.timer);
    this.pending.delete(p.id);
  }

  protected fail(p: P, err: Error): void {
    this.forget(p);
    p.reject(err);
  }

  /** Fails every pending request, oldest first, with `err` under its own command's name. */
  protected failPending(err: GuestAgentError): void {
    for (const p of this.pending.values())
      this.fail(
        p,
        new GuestAgentError(`${p.command}: ${err.message}`, {
          code: err.code,
          command: p.command,
          cause: err.cause,
          speaks: err.speaks,
        }),
      );
  }

  /**
   * The agent answered in the other protocol's shape (`line`): every request waiting fails at
   * once with EPROTO naming the protocol it speaks, instead of each timing out.
   */
  protected otherProtocol(speaks: Protocol, line: string): void {
    const mine = speaks === 'qemu-ga' ? 'phoenix' : 'qemu-ga';
    const said = line.length > 80 ? `${line.slice(0, 80)}...` : line;
    this.failPending(
      new GuestAgentError(
        `the agent at ${this.description} speaks ${speaks}'s protocol, not ${mine}'s (it answered ${said}): connect with protocol ${speaks}`,
        { code: 'EPROTO', speaks },
      ),
    );
  }

  private lost(reason: Error | undefined): void {
    this.link = undefined;
    this.featuresP = undefined;
    this.maxRequestBytes = Infinity;
    this.dropped();
    const err = hostError(
      'ECONNRESET',
      `connection to ${this.description} lost${reason ? `: ${reason.message}` : ''}`,
      undefined,
      reason,
    );
    this.failPending(err);
    this.emit('disconnect', err);
  }
}

/** A timeout's words: when nothing at all came since connecting, why that may be (Connector.silenceHint). */
function noAnswer(ms: number, heard: boolean, connector: Connector): string {
  const hint = heard ? undefined : connector.silenceHint;
  return `no answer from the agent within ${ms} ms${hint ? `; ${hint}` : ''}`;
}

/** A timeout in ms: > 0, and at most MAX_TIMER_MS (a longer timer would fire at once). */
export function checkTimeout(name: string, ms: number): number {
  if (typeof ms !== 'number' || Number.isNaN(ms))
    throw new TypeError(
      `${name} must be a number of milliseconds, got ${typeof ms === 'string' ? JSON.stringify(ms) : String(ms)}`,
    );
  if (!(ms > 0 && ms <= MAX_TIMER_MS))
    throw new RangeError(`${name} must be more than 0 and at most ${MAX_TIMER_MS} ms, got ${ms}`);
  return ms;
}
