// AgentConnection: the request core under GuestAgent. Every request gets a fresh tag and its
// answer is matched by tag (answers come in completion order), each with its own timeout. The
// lifecycle (connecting, losing the link, closing) is BaseConnection's.
import { LineFramer } from '../wire/framing';
import { GuestAgentError, hostError } from './errors';
import { parseExactJson } from './exact-json';
import { readAnswer, tagOf } from './answer-scan';
import {
  BaseConnection,
  isObject,
  type CallOptions,
  type GuestAgentOptions,
  type PendingCall,
} from './base-connection';
import type { Answers, CommandName } from '../protocols/phoenix/answers';
import type { AgentInfo, Features } from './types';

export type { CallOptions, GuestAgentOptions, Protocol } from './base-connection';

/** The reference protocol's file-read size, and its safe line length (Go's bufio.Scanner). */
const REFERENCE_READ_SIZE = 4096;
const REFERENCE_LINE_BYTES = 64 * 1024;
/** Longest answer line accepted (a 4 MiB file-read is 5.6 MiB of base64). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

interface Pending extends PendingCall {
  /** A fileRead(): its answer may be decoded without JSON.parse (see readAnswer). */
  decodeRead?: boolean;
  /** Integers past 2^53 in the answer come back as bigints (parseExactJson). */
  exactInts?: boolean;
  resolve(value: unknown): void;
}

/**
 * Events: 'connect' (), 'disconnect' (error), 'unmatched' (answer object whose tag is not
 * ours: a late answer to a timed-out request, or another host's).
 */
export class AgentConnection extends BaseConnection<Pending> {
  /** Pending requests with exactInts: only while there are any is an answer's tag looked at first. */
  private exactPending = 0;
  private framer: LineFramer;

  constructor(opts: GuestAgentOptions) {
    super(opts);
    this.framer = this.newFramer();
  }

  protected begin(): void {
    this.framer = this.newFramer();
  }

  protected received(chunk: Buffer): void {
    this.framer.push(chunk);
  }

  protected dropped(): void {}

  private newFramer(): LineFramer {
    return new LineFramer(
      (line) => this.onLine(line),
      () => this.emit('unmatched', { error: `answer longer than ${MAX_ANSWER_BYTES} bytes dropped` }),
      MAX_ANSWER_BYTES,
    );
  }

  private onLine(line: Buffer): void {
    const read = readAnswer(line);
    if (read) {
      const p = this.pending.get(read.tag);
      if (p?.decodeRead) {
        this.forget(p);
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
      // qemu-ga's shape (no tag, an error with a class): a phoenix agent always echoes the tag.
      const error: unknown = answer?.error;
      if (isObject(answer) && !('tag' in answer) && isObject(error) && typeof error.class === 'string')
        this.otherProtocol('qemu-ga', line.toString('utf8'));
      this.emit('unmatched', answer);
      return;
    }
    this.forget(p);
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
    if (!this.link) return this.unlinked(command, opts, () => this.request<T>(command, build, opts, how));
    const tag = this.nextId();
    const line = build(tag);
    const tooLong = this.tooLong(command, line, 2, how.ascii);
    if (tooLong) return Promise.reject(tooLong);
    const timeout = this.timeoutOf(opts);
    if (timeout instanceof Error) return Promise.reject(timeout);
    return new Promise<T>((resolve, reject) => {
      const p: Pending = {
        id: tag,
        command,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => this.fail(p, this.noAnswerError(command, timeout)), timeout),
        decodeRead: how.decodeRead,
        exactInts: how.exactInts,
      };
      this.pending.set(tag, p);
      if (how.exactInts) this.exactPending++;
      this.link!.write(line, how.ascii);
    });
  }

  protected override forget(p: Pending): void {
    super.forget(p);
    if (p.exactInts) this.exactPending--;
  }

  /**
   * What the agent supports (features(), once per connection): ember-ga answers agent-info; an
   * agent that answers "Unknown command" speaks the 0.7.1 protocol (4096-byte reads, one request
   * per handle at a time, data sent with eof:true dropped).
   */
  protected async detect(): Promise<Features> {
    try {
      const info = await this.call<AgentInfo>('agent-info');
      this.maxRequestBytes = info.max_line_bytes;
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
