// The agent: a transport, the framer, the dispatcher, and the lifecycle around them.
import { Dispatcher } from './dispatcher';
import { lineDone } from './memory';
import { answerBytes, encodeError } from './wire/answer';
import { LineFramer, MAX_LINE_BYTES } from './wire/framing';
import { Registry, type Command } from './registry';
import { defaultConfig, type AgentConfig, type AgentState, type Context, type ExitHook } from './context';
import { HandleTable } from './files/handle-table';
import { Freezer } from './freeze/freezer';
import { holdingLogger, stderrIsFileOn, type Logger } from './log';
import type { SessionOutput, SessionSink, Transport } from './transports/transport';
import { VERSION } from './version';

/**
 * Reading pauses while this many requests are in flight, while their request lines add up to
 * more than the held-input budget (AgentConfig.maxHeldInput), or while this much output is
 * queued for the host.
 */
const MAX_IN_FLIGHT = 256;
const MAX_QUEUED_OUTPUT = 16 * 1024 * 1024;
/** How long stop() waits for requests it could not cancel (a write into a frozen filesystem) before it exits anyway. */
const STOP_WAIT_MS = 10_000;

export interface AgentOptions {
  transport: Transport;
  commands: Iterable<Command>;
  config?: Partial<AgentConfig>;
  log?: Logger;
  maxLineBytes?: number;
}

/** One host's session (see TransportSink): its own framer, requests in flight and abort signal. */
class Session implements SessionSink {
  private readonly framer: LineFramer;
  private readonly controller = new AbortController();
  private idleWaiters: (() => void)[] = [];
  inFlight = 0;
  ended = false;

  constructor(
    readonly id: number,
    readonly output: SessionOutput,
    private readonly agent: Agent,
    maxLine: number,
  ) {
    this.framer = new LineFramer(
      (line) => agent.onLine(this, line),
      () => agent.lineTooLong(this, maxLine),
      maxLine,
    );
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }

  data(chunk: Buffer): void {
    if (!this.ended) this.framer.push(chunk);
  }

  reset(): void {
    this.framer.reset();
  }

  settled(): Promise<void> {
    if (this.ended || this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** A request of this session got its answer. */
  answered(): void {
    this.inFlight--;
    if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Aborts the session's calls (Call.signal); their answers, cancellation errors mostly, still go out. */
  cancel(why: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error(why));
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.framer.reset();
    this.cancel('the host session ended');
    for (const w of this.idleWaiters.splice(0)) w();
    this.agent.sessionEnded(this);
  }
}

export class Agent {
  readonly ctx: Context;
  private readonly transport: Transport;
  private readonly dispatcher: Dispatcher;
  private readonly maxLineBytes: number;
  private readonly exitHooks: ExitHook[] = [];
  private readonly hostGoneHooks: ((session: number) => void)[] = [];
  private readonly urgentExitHooks: ExitHook[] = [];
  private readonly sessions = new Set<Session>();
  private nextSession = 1;
  private inFlight = 0;
  /** Bytes of the request lines in flight: what their requests hold (decoded data, arguments). */
  private heldInput = 0;
  private paused = false;
  private stopping: Promise<void> | undefined;
  private shutdownRequested = false;
  private idleWaiters: (() => void)[] = [];
  private roomWaiters: (() => void)[] = [];
  private heldOutput = 0;
  /** Resolves when the agent has stopped (agent-shutdown, stop()). */
  readonly stopped: Promise<void>;
  private markStopped!: () => void;

  constructor(opts: AgentOptions) {
    const log = holdingLogger(opts.log);
    const state: AgentState = { frozen: false };
    const registry = new Registry(opts.commands);
    this.transport = opts.transport;
    this.maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
    this.stopped = new Promise((r) => (this.markStopped = r));
    const ctx: Omit<Context, 'handles' | 'freezer' | 'sysinfoFailures'> = {
      config: { ...defaultConfig, ...opts.config },
      state,
      registry,
      log,
      version: VERSION,
      shutdown: () => {
        this.shutdownRequested = true;
      },
      onExit: (hook, urgent = false) => {
        (urgent ? this.urgentExitHooks : this.exitHooks).push(hook);
      },
      onHostGone: (hook) => {
        this.hostGoneHooks.push(hook);
      },
      outputRoom: () => {
        if (this.hasRoom()) return undefined;
        return new Promise<void>((r) => this.roomWaiters.push(r));
      },
      holdOutput: (bytes) => {
        // Everything held in this turn is released together at the next one: one timer, not
        // one per read (a 4 KiB download makes thousands of these a second).
        if (this.heldOutput === 0) {
          setImmediate(() => {
            this.heldOutput = 0;
            this.wakeRoomWaiters();
          });
        }
        this.heldOutput += bytes;
      },
    };
    // State that lives as long as the agent. The freeze is thawed first when the agent stops
    // (urgent: requests in flight may be blocked on it); the handle table closes what is left
    // after them, and a session's handles when that session ends.
    // While stderr is a file on a filesystem being frozen, the Freezer holds every log line of
    // the agent (ctx.log), not only its own, until the thaw.
    const freezer = new Freezer({ log, logBlocksOn: stderrIsFileOn, onChange: (frozen) => (state.frozen = frozen) });
    ctx.onExit(() => freezer.release(), true);
    this.ctx = Object.assign(ctx, { freezer, handles: new HandleTable(ctx), sysinfoFailures: new Map() });
    this.dispatcher = new Dispatcher(this.ctx);
  }

  async start(): Promise<void> {
    await this.transport.start({
      begin: (output) => {
        const s = new Session(this.nextSession++, output, this, this.maxLineBytes);
        this.sessions.add(s);
        return s;
      },
      drain: () => {
        this.wakeRoomWaiters();
        this.updateFlow();
      },
    });
    this.ctx.log.info(`ember-ga ${VERSION} serving on ${this.transport.description}`);
  }

  /** A session ended (Session.end): its work was aborted; now the hooks (close its handles). */
  sessionEnded(session: Session): void {
    this.sessions.delete(session);
    for (const hook of this.hostGoneHooks) {
      try {
        hook(session.id);
      } catch (e) {
        this.ctx.log.warn(`after the host went away: ${(e as Error).message}`);
      }
    }
    this.wakeRoomWaiters();
    this.updateFlow();
  }

  /** A line longer than the limit (Session's framer): one error, and the line is skipped. */
  lineTooLong(session: Session, max: number): void {
    this.ctx.log.warn(`request line longer than ${max} bytes dropped`);
    session.output(encodeError(`Request line too long: the limit is ${max} bytes`, -1, ''));
  }

  /** A request line of a session (Session's framer). */
  onLine(session: Session, line: Buffer): void {
    if (this.stopping) return;
    if (isBlank(line)) return; // a blank line is no request: nothing to answer
    this.inFlight++;
    session.inFlight++;
    const bytes = line.length; // not the line: it would live as long as the request
    this.heldInput += bytes;
    this.updateFlow();
    this.dispatcher
      .dispatch(line, { session: session.id, signal: session.signal })
      // dispatch() answers every failure itself; should it ever throw, the request still ends.
      .catch((e: Error) => encodeError(`Internal error: ${e.message}`, -1, ''))
      .then((answer) => {
        // The host that asked is gone: the next one must not take this answer for its own (a host
        // that sends no tags would).
        if (!session.ended) session.output(answer);
        else this.ctx.log.debug('an answer for a host that is gone dropped');
        lineDone(bytes + answerBytes(answer));
        this.inFlight--;
        this.heldInput -= bytes;
        session.answered();
        this.updateFlow();
        if (this.shutdownRequested && !this.stopping) {
          this.ctx.log.info('agent-shutdown requested');
          void this.stop();
        }
        if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
  }

  /** Resolves when no request is in flight. */
  private settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Lets waiting producers go on once output is under the limit (or nothing is queued any more). */
  private wakeRoomWaiters(): void {
    if (this.hasRoom()) for (const w of this.roomWaiters.splice(0)) w();
  }

  private hasRoom(): boolean {
    return this.stopping !== undefined || this.transport.queued + this.heldOutput < MAX_QUEUED_OUTPUT;
  }

  /**
   * Backpressure: stop reading while too much is in flight, held or queued for the host. One
   * request is always let in, however long its line (up to the line limit).
   */
  private updateFlow(): void {
    if (this.stopping) return;
    const over =
      this.inFlight >= MAX_IN_FLIGHT ||
      (this.inFlight > 0 && this.heldInput >= this.ctx.config.maxHeldInput) ||
      this.transport.queued >= MAX_QUEUED_OUTPUT;
    if (over && !this.paused) {
      this.paused = true;
      this.transport.pause();
    } else if (!over && this.paused) {
      this.paused = false;
      this.transport.resume();
    }
  }

  /**
   * Stops reading, cancels the work in flight (Call.signal; the urgent exit hooks cancel
   * waits on streams), lets requests finish and their answers go out, runs the exit hooks
   * (thaw, close handles) and closes the transport. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.transport.pause();
      this.wakeRoomWaiters();
      await this.runHooks(this.urgentExitHooks);
      for (const s of this.sessions) s.cancel('the agent is stopping');
      if (this.inFlight > 0) {
        await Promise.race([this.settled(), delay(STOP_WAIT_MS)]);
      }
      await this.transport.flush(2_000);
      await this.runExitHooks();
      await this.transport.close();
      this.markStopped();
    })();
    return this.stopping;
  }
  /** Runs the exit hooks only, urgent ones first (for a fatal error, where nothing else can be trusted). */
  async runExitHooks(): Promise<void> {
    await this.runHooks(this.urgentExitHooks);
    await this.runHooks(this.exitHooks);
  }

  private async runHooks(list: ExitHook[]): Promise<void> {
    const hooks = list.splice(0).reverse();
    for (const h of hooks) {
      try {
        await h();
      } catch (e) {
        this.ctx.log.error(`exit hook failed: ${(e as Error).message}`);
      }
    }
  }
}

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
