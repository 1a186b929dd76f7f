// QmpConnection: the request core for an agent that speaks qemu-guest-agent's protocol (qemu-ga
// itself, or ember-ga --protocol qemu-ga), over the same links as AgentConnection (link.ts), with
// the same lifecycle (BaseConnection).
//
// Synchronisation is libvirt's: before the first request on a connection, and again after a
// timeout or anything that is not an answer, the client sends a 0xFF byte (the agent drops any
// partial request it holds) and guest-sync-delimited with a random id, then ignores everything
// up to the 0xFF the agent puts before that answer and every answer until the one that echoes
// the id. Each request carries an "id" and is matched by it. A real qemu-ga gets one request at a
// time, as libvirt sends them; an ember-ga (it answers ember-ga-info, which qemu-ga does not
// have) gets them pipelined, since it answers in order.
import { randomInt } from 'crypto';
import { GuestAgentError, hostError } from './errors';
import {
  BaseConnection,
  isObject,
  type CallOptions,
  type GuestAgentOptions,
  type PendingCall,
} from './base-connection';
import { connectorFor, type Connector } from './link';
import type { EmberGaInfo, QgaAnswers, QgaCommandName, QgaInfo } from './qemu-ga-types';
import type { Features } from './types';

/** Longest answer line accepted (a 48 MiB read is 64 MiB of base64). */
const MAX_ANSWER_BYTES = 80 * 1024 * 1024;
/** qemu-ga's JSON parser drops a request of more than 64 MiB (qobject/json-streamer.c). */
const QEMU_GA_MAX_REQUEST = 64 * 1024 * 1024;
/** qemu-ga's guest-file-read count when none is given (QGA_READ_COUNT_DEFAULT). */
export const QEMU_GA_READ_COUNT = 4096;

/** An answer as the agent sends it. */
export interface QmpAnswer {
  return?: unknown;
  error?: { class?: unknown; desc?: unknown };
  id?: unknown;
}

interface Pending extends PendingCall {
  line: string;
  sent: boolean;
  /** Resolved with the whole answer (execute() takes its `return`). */
  resolve(a: QmpAnswer): void;
}

interface Sync {
  id: number;
  /** The 0xFF before the sync's answer has come. */
  sentinel: boolean;
  timer: NodeJS.Timeout;
}

/**
 * Splits the agent's bytes into answer lines. A 0xFF byte drops the partial line before it and
 * is reported (guest-sync-delimited's sentinel); a line longer than `max` is dropped whole.
 */
class QmpStream {
  private parts: Buffer[] = [];
  private size = 0;
  private overflowed = false;

  constructor(
    private readonly onLine: (line: Buffer) => void,
    private readonly onSentinel: () => void,
    private readonly onOverflow: () => void,
    private readonly max: number,
  ) {}

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      const nl = chunk.indexOf(0x0a, i);
      const ff = chunk.indexOf(0xff, i);
      const end = nl < 0 ? ff : ff < 0 ? nl : Math.min(nl, ff);
      if (end < 0) {
        this.add(chunk.subarray(i));
        return;
      }
      if (chunk[end] === 0xff) {
        this.reset();
        this.onSentinel();
      } else {
        this.add(chunk.subarray(i, end));
        const line = this.overflowed ? undefined : Buffer.concat(this.parts, this.size);
        this.reset();
        if (line && line.length > 0) this.onLine(line);
      }
      i = end + 1;
    }
  }

  reset(): void {
    this.parts = [];
    this.size = 0;
    this.overflowed = false;
  }

  private add(b: Buffer): void {
    if (this.overflowed || b.length === 0) return;
    if (this.size + b.length > this.max) {
      this.parts = [];
      this.size = 0;
      this.overflowed = true;
      this.onOverflow();
      return;
    }
    this.parts.push(b);
    this.size += b.length;
  }
}

/**
 * Events: 'connect' (), 'disconnect' (error), 'sync' (id: the stream is in step again),
 * 'unmatched' (an answer nobody waits for, or `{invalid: TEXT}` for bytes that are not one;
 * not for what a sync skips).
 */
export class QmpConnection extends BaseConnection<Pending> {
  /** Requests not sent yet, in order. */
  private readonly queue: Pending[] = [];
  /** Requests sent and not answered, oldest first. */
  private readonly wire: Pending[] = [];
  private sync: Sync | undefined;
  private synced = false;
  /** Requests may be sent before the previous one is answered (an ember-ga). */
  private pipelined = false;
  private readonly stream: QmpStream;

  constructor(opts: GuestAgentOptions, connector: Connector = connectorFor(opts)) {
    super(opts, connector);
    this.stream = new QmpStream(
      (line) => this.onLine(line),
      () => {
        if (this.sync) this.sync.sentinel = true;
      },
      () => this.garbage(`an answer longer than ${MAX_ANSWER_BYTES} bytes`),
      MAX_ANSWER_BYTES,
    );
  }

  // The sync comes with a new connection's first request.
  protected begin(): void {
    this.stream.reset();
    this.synced = false;
  }

  protected received(chunk: Buffer): void {
    this.stream.push(chunk);
  }

  protected dropped(): void {
    this.stream.reset();
    this.endSync();
    this.synced = false;
    this.pipelined = false;
  }

  /** Synchronises now (as before a first request), resolving once the agent answered the sync. */
  async resync(opts: CallOptions = {}): Promise<void> {
    this.synced = false;
    await this.request('guest-ping', undefined, opts);
  }

  /**
   * Sends one request and resolves with its `return` (typed by QgaAnswers for the commands the
   * client knows); rejects with GuestAgentError: the agent's error answer (`errorClass` its
   * class), or ETIMEDOUT / ECONNRESET / ENOTCONN / EMSGSIZE / EPROTO.
   */
  execute<N extends QgaCommandName>(
    command: N,
    args?: Record<string, unknown>,
    opts?: CallOptions,
  ): Promise<QgaAnswers[N]>;
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: CallOptions): Promise<T>;
  async execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: CallOptions = {}): Promise<T> {
    const a = await this.request(command, args, opts);
    if (a.error !== undefined && a.error !== null) throw GuestAgentError.fromQmpError(a.error, command);
    return a.return as T;
  }

  /**
   * Sends one request and resolves with the whole answer, `{"return": ...}` or `{"error": ...}`
   * (its `id` removed: it is the client's). For a passthrough that shows the answer as it came.
   */
  request(command: string, args: Record<string, unknown> | undefined, opts: CallOptions = {}): Promise<QmpAnswer> {
    if (!this.link) return this.unlinked(command, opts, () => this.request(command, args, opts));
    const timeout = this.timeoutOf(opts);
    if (timeout instanceof Error) return Promise.reject(timeout);
    const id = this.nextId();
    const line =
      JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }) + '\n';
    const tooLong = this.tooLong(command, line, 1);
    if (tooLong) return Promise.reject(tooLong);
    return new Promise<QmpAnswer>((resolve, reject) => {
      const p: Pending = {
        id,
        command,
        line,
        sent: false,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(p, timeout), timeout),
      };
      this.pending.set(id, p);
      this.queue.push(p);
      this.pump();
    });
  }

  /**
   * What the agent is (features(), once per connection): ember-ga answers ember-ga-info (then
   * requests are pipelined and reads may be large); qemu-ga answers it CommandNotFound.
   */
  protected async detect(): Promise<Features> {
    let ember: EmberGaInfo | undefined;
    try {
      ember = await this.execute('ember-ga-info');
    } catch (e) {
      if (!(e instanceof GuestAgentError && e.remote && e.errorClass === 'CommandNotFound')) throw e;
    }
    const info = await this.execute<QgaInfo>('guest-info');
    if (ember) {
      this.pipelined = ember.pipelined === true;
      this.maxRequestBytes = ember['max-request-bytes'];
    } else {
      this.maxRequestBytes = QEMU_GA_MAX_REQUEST;
    }
    const f: Features = {
      protocol: 'qemu-ga',
      emberGa: ember !== undefined,
      version: info.version,
      maxReadSize: ember ? ember['max-read-count'] : QEMU_GA_READ_COUNT,
      maxLineBytes: this.maxRequestBytes,
      orderedHandles: this.pipelined,
      atomicWrite: false,
      readMd5: false,
    };
    if (ember) f.emberVersion = ember.version;
    return f;
  }

  // ---- the stream ----

  /** Sends what may be sent: a sync first when out of step, then one request (or all, pipelined). */
  private pump(): void {
    if (!this.link || this.sync || this.queue.length === 0) return;
    if (!this.synced) {
      this.startSync();
      return;
    }
    while (this.queue.length > 0 && (this.pipelined || this.wire.length === 0)) {
      const p = this.queue.shift()!;
      p.sent = true;
      this.wire.push(p);
      this.link.write(p.line);
    }
  }

  private startSync(): void {
    const id = randomInt(1, 2 ** 31);
    const timer = setTimeout(() => {
      this.endSync();
      const err = hostError(
        'ETIMEDOUT',
        `no answer to guest-sync-delimited from ${this.description} within ${this.timeout} ms: ${
          (!this.heard && this.connector.silenceHint) || 'is the agent running?'
        }`,
        'guest-sync-delimited',
      );
      for (const p of this.queue.splice(0)) this.fail(p, err);
    }, this.timeout);
    this.sync = { id, sentinel: false, timer };
    // The 0xFF first: the agent drops any partial request a previous client left (qemu-ga answers
    // it with a parse error, skipped with the rest).
    this.link!.write(
      '\xff' + JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n',
      true, // latin1: the 0xFF goes out as one byte
    );
  }

  private endSync(): void {
    if (!this.sync) return;
    clearTimeout(this.sync.timer);
    this.sync = undefined;
  }

  private onLine(line: Buffer): void {
    const text = line.toString('utf8');
    let a: unknown;
    try {
      a = JSON.parse(text);
    } catch {
      a = undefined;
    }
    // phoenix's shape: its answers always carry a "tag", which no qemu-ga answer has.
    if (isObject(a) && 'tag' in a) {
      this.endSync();
      this.synced = false;
      this.otherProtocol('phoenix', text);
      return;
    }
    if (!isObject(a) || !('return' in a || 'error' in a)) {
      this.garbage(text.trim() === '' ? undefined : text);
      return;
    }
    const answer = a as QmpAnswer;
    const p = typeof answer.id === 'string' ? this.pending.get(answer.id) : undefined;
    if (this.sync) {
      if (this.sync.sentinel && answer.id === undefined && answer.return === this.sync.id) {
        const id = this.sync.id;
        this.endSync();
        this.synced = true;
        this.emit('sync', id);
        this.pump();
      } else if (p?.sent) this.settle(p, answer);
      // Anything else is what the sync skips (the answer to its own 0xFF, stale answers).
      return;
    }
    if ('id' in answer) {
      if (p?.sent) this.settle(p, answer);
      else this.emit('unmatched', answer);
      return;
    }
    // No id: an error is the agent's word on a request it could not parse, the oldest one sent;
    // a return is an answer from an agent that does not echo ids, taken only one at a time.
    const oldest = this.wire[0];
    if (oldest && 'error' in answer) {
      this.synced = false; // the rest of that request may still be in the agent's parser
      this.settle(oldest, answer);
    } else if (oldest && !this.pipelined) this.settle(oldest, answer);
    else this.emit('unmatched', answer);
  }

  /** Bytes that are not an answer: resynchronise; one at a time, the request waiting fails. */
  private garbage(text: string | undefined): void {
    if (this.sync) return;
    if (text !== undefined) this.emit('unmatched', { invalid: text.slice(0, 200) });
    this.synced = false;
    if (!this.pipelined && this.wire.length === 1) {
      const p = this.wire[0];
      this.fail(
        p,
        hostError(
          'EPROTO',
          `${p.command}: the agent sent something that is not a qemu-ga answer${text === undefined ? '' : ` (${JSON.stringify(text.slice(0, 80))})`}`,
          p.command,
        ),
      );
    }
    this.pump();
  }

  private settle(p: Pending, answer: QmpAnswer): void {
    this.forget(p);
    const { id: _id, ...rest } = answer;
    p.resolve(rest);
    this.pump();
  }

  protected override forget(p: Pending): void {
    super.forget(p);
    const list = p.sent ? this.wire : this.queue;
    const i = list.indexOf(p);
    if (i >= 0) list.splice(i, 1);
  }

  private expire(p: Pending, timeout: number): void {
    // An answer that comes later would be taken for another's by an agent without ids, and the
    // agent is still busy with it: resynchronise before the next request.
    if (p.sent) this.synced = false;
    this.fail(p, this.noAnswerError(p.command, timeout));
    this.pump();
  }
}
