// AgentConnection: the request core under GuestAgent. Every request gets a fresh tag and its
// answer is matched by tag (answers come in completion order), each with its own timeout. A
// lost connection fails the requests in flight; the next call connects again.
import { EventEmitter } from 'events';
import { randomBytes } from 'crypto';
import { LineFramer } from '../wire/framing';
import { MAX_TIMER_MS } from '../timers';
import { GuestAgentError, hostError } from './errors';
import { parseExactJson } from './exact-json';
import { readAnswer, tagOf } from './answer-scan';
import { connectorFor, type Connector, type Link, type Target } from './link';
import type { Answers, CommandName } from '../protocols/phoenix/answers';
import type { ProtocolName } from '../protocols/protocol';
import type { AgentInfo, Features } from './types';

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

/** The reference protocol's file-read size, and its safe line length (Go's bufio.Scanner). */
const REFERENCE_READ_SIZE = 4096;
const REFERENCE_LINE_BYTES = 64 * 1024;
/** Longest answer line accepted (a 4 MiB file-read is 5.6 MiB of base64). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

interface Pending {
  command: string;
  /** A fileRead(): its answer may be decoded without JSON.parse (see readAnswer). */
  decodeRead?: boolean;
  /** Integers past 2^53 in the answer come back as bigints (parseExactJson). */
  exactInts?: boolean;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Events: 'connect' (), 'disconnect' (error), 'unmatched' (answer object whose tag is not
 * ours: a late answer to a timed-out request, or another host's).
 */
export class AgentConnection extends EventEmitter {
  readonly timeout: number;
  readonly connectTimeout: number;
  readonly reconnect: boolean;
  private readonly connector: Connector;
  private link: Link | undefined;
  private connecting: Promise<void> | undefined;
  private everConnected = false;
  private closed = false;
  private readonly pending = new Map<string, Pending>();
  /** Pending requests with exactInts: only while there are any is an answer's tag looked at first. */
  private exactPending = 0;
  private readonly tagPrefix = randomBytes(4).toString('hex') + '-';
  private seq = 0;
  private framer: LineFramer;
  /** Something came on the current connection (else a timeout may mean another host holds it). */
  private heard = false;
  private featuresP: Promise<Features> | undefined;
  private maxLineBytes = Infinity;

  constructor(opts: GuestAgentOptions) {
    super();
    this.connector = connectorFor(opts);
    this.timeout = checkTimeout('timeout', opts.timeout ?? 30_000);
    this.connectTimeout = checkTimeout('connectTimeout', opts.connectTimeout ?? 10_000);
    this.reconnect = opts.reconnect ?? true;
    this.framer = this.newFramer();
  }

  get description(): string {
    return this.connector.description;
  }

  get connected(): boolean {
    return this.link !== undefined;
  }

  /** Connects (again) if not connected. */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(hostError('ENOTCONN', 'the client is closed'));
    if (this.link) return Promise.resolve();
    this.connecting ??= (async () => {
      try {
        this.framer = this.newFramer();
        this.heard = false;
        const link = await this.connector.connect(
          {
            data: (chunk) => {
              this.heard = true;
              this.framer.push(chunk);
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
    this.failPending(hostError('ECONNRESET', 'the client was closed'));
  }

  private newFramer(): LineFramer {
    return new LineFramer(
      (line) => this.onLine(line),
      () => this.emit('unmatched', { error: `answer longer than ${MAX_ANSWER_BYTES} bytes dropped` }),
      MAX_ANSWER_BYTES,
    );
  }

  private lost(reason: Error | undefined): void {
    this.link = undefined;
    this.featuresP = undefined;
    this.maxLineBytes = Infinity;
    const err = hostError(
      'ECONNRESET',
      `connection to ${this.description} lost${reason ? `: ${reason.message}` : ''}`,
      undefined,
      reason,
    );
    this.failPending(err);
    this.emit('disconnect', err);
  }

  private failPending(err: GuestAgentError): void {
    for (const [tag, p] of this.pending) {
      clearTimeout(p.timer);
      this.take(tag);
      p.reject(
        new GuestAgentError(`${p.command}: ${err.message}`, { code: err.code, command: p.command, cause: err.cause }),
      );
    }
  }

  private onLine(line: Buffer): void {
    const read = readAnswer(line);
    if (read) {
      const p = this.pending.get(read.tag);
      if (p?.decodeRead) {
        this.take(read.tag);
        clearTimeout(p.timer);
        p.resolve(read.result);
        return;
      }
    }
    let answer: { tag?: unknown; return?: unknown; error?: { bufb64?: unknown; code?: unknown } };
    try {
      const text = line.toString('utf8');
      answer = (
        this.exactPending > 0 && this.pending.get(tagOf(text) ?? '')?.exactInts
          ? parseExactJson(text)
          : JSON.parse(text)
      ) as typeof answer;
    } catch {
      if (line.length > 0) this.emit('unmatched', { invalid: line.toString('utf8', 0, 200) });
      return;
    }
    const p = typeof answer?.tag === 'string' ? this.pending.get(answer.tag) : undefined;
    if (!p) {
      this.emit('unmatched', answer);
      return;
    }
    this.take(answer.tag as string);
    clearTimeout(p.timer);
    if (answer.error !== undefined && answer.error !== null)
      p.reject(GuestAgentError.fromAnswer(answer.error, p.command));
    else if ('return' in answer) p.resolve(answer.return);
    else p.reject(hostError('EPROTO', `${p.command}: answer has neither "return" nor "error"`, p.command));
  }

  /**
   * Sends one request and resolves with its `return` value (typed from lib/protocols/phoenix/answers.ts for the
   * agent's commands); rejects with GuestAgentError (the guest's message and errno, or
   * ETIMEDOUT / ECONNRESET / ENOTCONN / EMSGSIZE).
   */
  call<N extends CommandName>(command: N, args?: Record<string, unknown>, opts?: CallOptions): Promise<Answers[N]>;
  call<T = unknown>(command: string, args?: Record<string, unknown>, opts?: CallOptions): Promise<T>;
  call<T = unknown>(command: string, args?: Record<string, unknown>, opts: CallOptions = {}): Promise<T> {
    return this.callWith<T>(command, args, opts);
  }

  /** call(), with how the answer is taken (exactInts: integers past 2^53 as bigints). */
  protected callWith<T>(
    command: string,
    args: Record<string, unknown> | undefined,
    opts: CallOptions,
    how: { exactInts?: boolean } = {},
  ): Promise<T> {
    return this.request<T>(
      command,
      (tag) =>
        JSON.stringify(args === undefined ? { execute: command, tag } : { execute: command, arguments: args, tag }) +
        '\r\n',
      opts,
      how,
    );
  }

  /** Sends the line build(tag) makes; `ascii`: the line is known to be ASCII (a file-write). */
  protected request<T>(
    command: string,
    build: (tag: string) => string,
    opts: CallOptions,
    how: { ascii?: boolean; decodeRead?: boolean; exactInts?: boolean } = {},
  ): Promise<T> {
    if (!this.link) {
      if (this.closed) return Promise.reject(hostError('ENOTCONN', `${command}: the client is closed`, command));
      if (opts.noReconnect || (this.everConnected && !this.reconnect))
        return Promise.reject(hostError('ENOTCONN', `${command}: not connected to ${this.description}`, command));
      return this.connect().then(() => this.request<T>(command, build, opts, how));
    }
    const tag = this.tagPrefix + ++this.seq;
    const line = build(tag);
    if (line.length - 2 > this.maxLineBytes / 3) {
      const bytes = how.ascii ? line.length - 2 : Buffer.byteLength(line) - 2; // a scan only when it could matter
      if (bytes > this.maxLineBytes)
        return Promise.reject(
          hostError(
            'EMSGSIZE',
            `${command}: request of ${bytes} bytes is longer than the agent's limit of ${this.maxLineBytes}`,
            command,
          ),
        );
    }
    let timeout: number;
    try {
      timeout = opts.timeout === undefined ? this.timeout : checkTimeout('timeout', opts.timeout);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.take(tag);
        reject(hostError('ETIMEDOUT', `${command}: ${noAnswer(timeout, this.heard, this.connector)}`, command));
      }, timeout);
      this.pending.set(tag, {
        command,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer,
        decodeRead: how.decodeRead,
        exactInts: how.exactInts,
      });
      if (how.exactInts) this.exactPending++;
      this.link!.write(line, how.ascii);
    });
  }

  /** Forgets a pending request (answered, timed out or failed). */
  private take(tag: string): Pending | undefined {
    const p = this.pending.get(tag);
    if (p) {
      this.pending.delete(tag);
      if (p.exactInts) this.exactPending--;
    }
    return p;
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * What the agent supports, asked once per connection: ember-ga answers agent-info; an agent
   * that answers "Unknown command" speaks the 0.7.1 protocol (4096-byte reads, one request per
   * handle at a time, data sent with eof:true dropped).
   */
  features(): Promise<Features> {
    this.featuresP ??= this.detect().catch((e) => {
      this.featuresP = undefined;
      throw e;
    });
    return this.featuresP;
  }

  private async detect(): Promise<Features> {
    try {
      const info = await this.call<AgentInfo>('agent-info');
      this.maxLineBytes = info.max_line_bytes;
      return {
        protocol: 'phoenix',
        emberGa: true,
        version: info.version,
        maxReadSize: info.max_read_size,
        maxLineBytes: info.max_line_bytes,
        orderedHandles: true,
        atomicWrite: info.atomic_write === true,
        readMd5: info.read_md5 === true,
      };
    } catch (e) {
      if (!(e instanceof GuestAgentError && e.remote && /^Unknown command/.test(e.message))) throw e;
    }
    const version = await this.call('ping');
    return {
      protocol: 'phoenix',
      emberGa: false,
      version,
      maxReadSize: REFERENCE_READ_SIZE,
      maxLineBytes: REFERENCE_LINE_BYTES,
      orderedHandles: false,
      atomicWrite: false,
      readMd5: false,
    };
  }
}

/** A timeout's words: when nothing at all came since connecting, why that may be (Connector.silenceHint). */
export function noAnswer(ms: number, heard: boolean, connector: Connector): string {
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
