// The agent: a transport, the framer, the dispatcher, and the lifecycle around them.
import { Dispatcher } from './dispatcher';
import { lineDone } from './memory';
import { encodeError, LineFramer, MAX_LINE_BYTES } from './protocol';
import { Registry, type Command } from './registry';
import { defaultConfig, type AgentConfig, type AgentState, type Context, type ExitHook } from './context';
import { holdingLogger, type HoldingLogger, type Logger } from './log';
import type { Transport } from './transports/transport';
import { VERSION } from './version';

/** Reading pauses while this many requests are in flight or this much output is queued. */
const MAX_IN_FLIGHT = 256;
const MAX_QUEUED_OUTPUT = 16 * 1024 * 1024;

export interface AgentOptions {
  transport: Transport;
  commands: Iterable<Command>;
  config?: Partial<AgentConfig>;
  log?: Logger;
  maxLineBytes?: number;
}

export class Agent {
  readonly ctx: Context;
  private readonly transport: Transport;
  private readonly framer: LineFramer;
  private readonly dispatcher: Dispatcher;
  private readonly exitHooks: ExitHook[] = [];
  private readonly hostGoneHooks: (() => void)[] = [];
  /** Host sessions ended so far (TransportSink.hostGone): an answer goes only to its own session's host. */
  private sessionsEnded = 0;
  private readonly urgentExitHooks: ExitHook[] = [];
  private readonly stores = new Map<symbol, unknown>();
  private inFlight = 0;
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
    this.stopped = new Promise((r) => (this.markStopped = r));
    this.ctx = {
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
      hostSession: () => this.sessionsEnded,
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
      store: <T>(key: symbol, create: () => T): T => {
        if (!this.stores.has(key)) this.stores.set(key, create());
        return this.stores.get(key) as T;
      },
    };
    this.dispatcher = new Dispatcher(this.ctx);
    this.framer = new LineFramer(
      (line) => this.onLine(line),
      () => {
        const max = opts.maxLineBytes ?? MAX_LINE_BYTES;
        log.warn(`request line longer than ${max} bytes dropped`);
        this.transport.write(encodeError(`Request line too long: the limit is ${max} bytes`, -1, ''));
      },
      opts.maxLineBytes ?? MAX_LINE_BYTES,
    );
  }

  async start(): Promise<void> {
    await this.transport.start({
      data: (chunk) => this.framer.push(chunk),
      reset: () => {
        this.framer.reset();
        this.wakeRoomWaiters();
        this.updateFlow(); // output meant for the old host may be gone: reading may go on
      },
      drain: () => {
        this.wakeRoomWaiters();
        this.updateFlow();
      },
      hostGone: () => {
        this.sessionsEnded++;
        for (const hook of this.hostGoneHooks) {
          try {
            hook();
          } catch (e) {
            this.ctx.log.warn(`after the host went away: ${(e as Error).message}`);
          }
        }
      },
      settled: () => this.settled(),
    });
    this.ctx.log.info(`ember-ga ${VERSION} serving on ${this.transport.description}`);
  }

  private onLine(line: Buffer): void {
    if (this.stopping) return;
    if (isBlank(line)) return; // a blank line is no request: nothing to answer
    this.inFlight++;
    this.updateFlow();
    const bytes = line.length; // not the line: it would live as long as the request
    const session = this.sessionsEnded;
    this.dispatcher.dispatch(line).then((answer) => {
      // The host that asked is gone: the next one must not take this answer for its own (a host
      // that sends no tags would).
      if (session === this.sessionsEnded) this.transport.write(answer);
      else this.ctx.log.debug('an answer for a host that is gone dropped');
      lineDone(bytes + answer.length);
      this.inFlight--;
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

  /** Backpressure: stop reading while too much is in flight or queued for the host. */
  private updateFlow(): void {
    if (this.stopping) return;
    const over = this.inFlight >= MAX_IN_FLIGHT || this.transport.queued >= MAX_QUEUED_OUTPUT;
    if (over && !this.paused) {
      this.paused = true;
      this.transport.pause();
    } else if (!over && this.paused) {
      this.paused = false;
      this.transport.resume();
    }
  }

  /**
   * Stops reading, lets requests in flight finish and their answers go out, runs the exit hooks
   * (thaw, close handles) and closes the transport. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.transport.pause();
      this.wakeRoomWaiters();
      await this.runHooks(this.urgentExitHooks);
      if (this.inFlight > 0) {
        await Promise.race([this.settled(), delay(10_000)]);
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
