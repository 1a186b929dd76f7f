// The agent: its transports, each with a protocol front-end, the host sessions on them, the
// shared state and budgets, and the lifecycle around them.
import { setMaxListeners } from 'events';
import { lineDone } from './memory';
import { answerBytes, encodeError, heldBy, type AnswerLine } from './wire/answer';
import { LARGE_ANSWER, LARGE_ANSWERS_HELD, LargeAnswers, type AnswerHold } from './large-answers';
import { MAX_LINE_BYTES } from './wire/framing';
import { Registry, type Command } from './protocols/phoenix/registry';
import { Limiter } from './limit';
import { PhoenixProtocol } from './protocols/phoenix';
import { QgaProtocol } from './protocols/qemu-ga';
import { roomFor } from './protocols/output-gate';
import { allQgaCommands } from './protocols/qemu-ga/commands';
import type { QgaCommand } from './protocols/qemu-ga/schema';
import type { Framer, Incoming, Protocol, ProtocolName } from './protocols/protocol';
import { defaultConfig, type AgentConfig, type AgentState, type Call, type Context, type ExitHook } from './context';
import { AgentError } from './errors';
import { HandleTable } from './files/handle-table';
import { Freezer } from './freeze/freezer';
import { holdingLogger, stderrIsFileOn, type Logger } from './log';
import type { SessionOutput, SessionSink, Transport } from './transports/transport';
import { VERSION } from './version';

/**
 * An endpoint's reading pauses while its host's session has this many requests in flight, or
 * request lines in flight adding up to the held-input budget (AgentConfig.maxHeldInput), or
 * while this much output is queued on it: its own budgets, so that a host that stops reading,
 * waits on FIFOs or writes into one nobody reads holds back only itself, never the host of
 * another port or listener (libvirt's thaw on the qemu-ga port behind a stalled phoenix host).
 * Every endpoint pauses while all the sessions together have MAX_IN_FLIGHT_ALL requests in
 * flight, or HELD_INPUT_ALL budgets' worth of request lines (hosts that half-close with
 * requests pending, one after the other).
 */
const MAX_IN_FLIGHT = 256;
const MAX_IN_FLIGHT_ALL = 4 * MAX_IN_FLIGHT;
const HELD_INPUT_ALL = 2;
const MAX_QUEUED_OUTPUT = 16 * 1024 * 1024;
/** How long stop() waits for requests it could not cancel (a write into a frozen filesystem) before it exits anyway. */
const STOP_WAIT_MS = 10_000;

/** A transport and the protocol its hosts speak. */
export interface Endpoint {
  transport: Transport;
  protocol: ProtocolName;
}

export interface AgentOptions {
  /** One transport (with `protocol`, phoenix by default), or several as `endpoints`. */
  transport?: Transport;
  protocol?: ProtocolName;
  endpoints?: Endpoint[];
  /** phoenix commands. */
  commands: Iterable<Command>;
  /** qemu-ga commands (all of lib/protocols/qemu-ga/commands by default). */
  qgaCommands?: Iterable<QgaCommand>;
  config?: Partial<AgentConfig>;
  log?: Logger;
  maxLineBytes?: number;
}

/** One host's session (see TransportSink): its own framer, requests in flight and abort signal. */
class Session implements SessionSink {
  private readonly framer: Framer;
  private readonly controller = new AbortController();
  private idleWaiters: (() => void)[] = [];
  inFlight = 0;
  /** Bytes of this session's request lines in flight. */
  heldInput = 0;
  ended = false;
  /** In the framer's push: a reset waits until it is done (see reset()). */
  private pushing = false;
  private resetLater = false;

  constructor(
    readonly id: number,
    readonly transport: Transport,
    readonly output: SessionOutput,
    private readonly agent: Agent,
    protocol: Protocol,
    maxBytes: number,
  ) {
    this.framer = protocol.framer((req) => agent.onRequest(this, req), maxBytes);
    // Each call still running listens for the abort (a digest, a listing, a wait on a FIFO): a
    // host may pipeline hundreds, which is no leak.
    setMaxListeners(0, this.controller.signal);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** What its requests run with: the session's id and abort signal (one object for all of them). */
  get call(): Call {
    this.callOf ??= { session: this.id, signal: this.controller.signal };
    return this.callOf;
  }
  private callOf: Call | undefined;

  get busy(): boolean {
    return this.inFlight > 0;
  }

  data(chunk: Buffer): void {
    if (this.ended) return;
    this.pushing = true;
    try {
      this.framer.push(chunk);
    } finally {
      this.pushing = false;
      if (this.resetLater) {
        this.resetLater = false;
        this.framer.reset();
      }
    }
  }

  reset(): void {
    // An answer made at once goes out from within push(), and the port may see the host hang up
    // in that write: the rest of the chunk, received before, is framed first (as it was when
    // answers went out later), and only what is left of it after is forgotten.
    if (this.pushing) this.resetLater = true;
    else this.framer.reset();
  }

  settled(): Promise<void> {
    if (this.ended || this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** A request of this session got its answer. */
  answered(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
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
  private readonly endpoints: Endpoint[];
  private readonly protocols: Record<ProtocolName, Protocol>;
  private readonly maxLineBytes: number;
  private readonly exitHooks: ExitHook[] = [];
  private readonly hostGoneHooks: ((session: number) => void)[] = [];
  private readonly urgentExitHooks: ExitHook[] = [];
  private readonly sessions = new Map<number, Session>();
  private nextSession = 1;
  private inFlight = 0;
  /** Bytes of the request lines in flight: what their requests hold (decoded data, arguments). */
  private heldInput = 0;
  /** The endpoints whose reading is paused (updateFlow). */
  private readonly pausedTransports = new Set<Transport>();
  /** Each endpoint's session being read: the last one its transport began. */
  private readonly reading = new Map<Transport, Session>();
  private stopping: Promise<void> | undefined;
  private shutdownRequested = false;
  private idleWaiters: (() => void)[] = [];
  /** Producers waiting for room on a transport (undefined: on every transport). */
  private roomWaiters: { transport: Transport | undefined; wake: () => void }[] = [];
  /** Output being produced this turn, not yet queued on its transport (holdOutput). */
  private readonly heldOutput = new Map<Transport | undefined, number>();
  /** Output reserved by reads under way (reserveOutput), until each is done. */
  private readonly reservedOutput = new Map<Transport, number>();
  /** One bulk command's answer made at a time (runBulk). */
  private readonly bulk = new Limiter(1);
  /** The bulk command that has the turn, while it runs. */
  private bulkTurn: BulkTurn | undefined;
  /** Large answers, from before they are made until they are written, for every host together. */
  private readonly large = new LargeAnswers(LARGE_ANSWERS_HELD);
  /** Resolves when the agent has stopped (agent-shutdown, stop()). */
  readonly stopped: Promise<void>;
  private markStopped!: () => void;

  constructor(opts: AgentOptions) {
    const log = holdingLogger(opts.log);
    const state: AgentState = { frozen: false };
    const registry = new Registry(opts.commands);
    // Endpoints may also come and go later (addEndpoint, removeEndpoint): the list may start empty.
    if (!opts.endpoints && !opts.transport) throw new Error('the agent needs a transport');
    this.endpoints = [...(opts.endpoints ?? [{ transport: opts.transport!, protocol: opts.protocol ?? 'phoenix' }])];
    this.maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
    this.stopped = new Promise((r) => (this.markStopped = r));
    const ctx: Omit<Context, 'handles' | 'freezer' | 'sysinfoFailures' | 'qemuGa'> = {
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
      endpointOf: (session) => {
        const t = this.sessions.get(session)?.transport;
        return t && (t.endpoint ?? t.description);
      },
      // Ports come and go (found by name): the halves hold while both protocols have one.
      servesBothProtocols: () =>
        this.endpoints.some((e) => e.protocol === 'qemu-ga') && this.endpoints.some((e) => e.protocol === 'phoenix'),
      outputRoom: (call) => {
        const transport = this.transportOf(call);
        if (this.hasRoom(transport)) return undefined;
        return new Promise<void>((wake) => this.roomWaiters.push({ transport, wake }));
      },
      hasOutputRoom: (call) => this.hasRoom(this.transportOf(call)),
      holdOutput: (bytes, call) => {
        // Everything held in this turn is released together at the next one: one timer, not
        // one per read (a 4 KiB download makes thousands of these a second).
        if (this.heldOutput.size === 0) {
          setImmediate(() => {
            this.heldOutput.clear();
            this.wakeRoomWaiters();
          });
        }
        const transport = this.transportOf(call);
        this.heldOutput.set(transport, (this.heldOutput.get(transport) ?? 0) + bytes);
      },
      reserveOutput: (bytes, call) => {
        // For a host that is there: one gone reads nothing out, and a read of its that never ends
        // (a device with nothing more to say) must not hold the next host's room.
        const transport = this.transportOf(call);
        if (!transport || call.signal.aborted) return () => {};
        this.reservedOutput.set(transport, (this.reservedOutput.get(transport) ?? 0) + bytes);
        let done = false;
        const release = () => {
          if (done) return;
          done = true;
          call.signal.removeEventListener('abort', release);
          const left = (this.reservedOutput.get(transport) ?? 0) - bytes;
          if (left > 0) this.reservedOutput.set(transport, left);
          else this.reservedOutput.delete(transport);
          this.wakeRoomWaiters();
        };
        call.signal.addEventListener('abort', release, { once: true });
        return release;
      },
      runBulk: (call, name, produce) => this.runBulk(call, name, produce),
      largeAnswer: (call, bytes, inBulk = false) => this.largeAnswer(call, bytes, inBulk),
      largeAnswerNow: (call, bytes) => this.large.takeNow(bytes, call.signal),
    };
    // State that lives as long as the agent. The freeze is thawed first when the agent stops
    // (urgent: requests in flight may be blocked on it); the handle table closes what is left
    // after them, and a session's handles when that session ends.
    // While stderr is a file on a filesystem being frozen, the Freezer holds every log line of
    // the agent (ctx.log), not only its own, until the thaw.
    const freezer = new Freezer({
      log,
      logBlocksOn: stderrIsFileOn,
      onChange: (frozen) => (state.frozen = frozen),
      hook: ctx.config.fsfreezeHook,
    });
    ctx.onExit(() => freezer.release(), true);
    const handles = new HandleTable(ctx);
    const full = Object.assign(ctx, { freezer, handles, sysinfoFailures: new Map(), qemuGa: undefined! });
    const qga = new QgaProtocol(full, [...(opts.qgaCommands ?? allQgaCommands)]);
    this.ctx = Object.assign(full, { qemuGa: qga.dispatcher });
    this.protocols = { phoenix: new PhoenixProtocol(this.ctx, registry), 'qemu-ga': qga };
  }

  async start(): Promise<void> {
    for (const e of this.endpoints) await this.startEndpoint(e);
  }

  private async startEndpoint({ transport, protocol }: Endpoint): Promise<void> {
    await transport.start({
      begin: (output) => {
        const s = new Session(this.nextSession++, transport, output, this, this.protocols[protocol], this.maxLineBytes);
        this.sessions.set(s.id, s);
        this.reading.set(transport, s);
        this.updateFlow(); // the new host's own budgets are not spent
        return s;
      },
      drain: () => {
        this.wakeRoomWaiters();
        this.updateFlow();
      },
    });
    // Held back like the others while the shared budgets are spent. A pause() before start()
    // may have found nothing to pause (the port not open yet): undone, and asked again now.
    if (this.pausedTransports.delete(transport)) transport.resume();
    this.updateFlow();
    this.ctx.log.info(`ember-ga ${VERSION} serving on ${transport.description} (${protocol})`);
  }

  /** The endpoints served now. */
  get serving(): readonly Endpoint[] {
    return this.endpoints;
  }

  /**
   * Serves one more endpoint (a port that appeared), with the same state, handles and budgets
   * as the others. Rejects, serving nothing new, when its transport cannot start.
   */
  async addEndpoint(e: Endpoint): Promise<void> {
    if (this.stopping) throw new Error('the agent is stopping');
    this.endpoints.push(e);
    try {
      await this.startEndpoint(e);
    } catch (err) {
      this.endpoints.splice(this.endpoints.indexOf(e), 1);
      await e.transport.close().catch(() => undefined);
      throw err;
    }
    // stop() closes what it finds in the list; one added while it began must go too.
    if (this.stopping && this.endpoints.includes(e)) await this.removeEndpoint(e.transport);
  }

  /**
   * Stops serving one endpoint (its port went away): its host's session ends as when the host is
   * gone (work cancelled, handles closed, answers still to come dropped); the others go on.
   */
  async removeEndpoint(transport: Transport): Promise<void> {
    const i = this.endpoints.findIndex((e) => e.transport === transport);
    if (i < 0) return;
    this.endpoints.splice(i, 1);
    this.pausedTransports.delete(transport);
    this.reading.delete(transport);
    await transport.close();
    this.ctx.log.info(`no longer serving on ${transport.description}`);
    // Its queued output is gone from the budget: waiting producers and reading may go on.
    this.wakeRoomWaiters();
    this.updateFlow();
  }

  /**
   * A bulk command's answer (Command.bulk): produced once the other bulk commands are done and
   * the output queued for the hosts is under the limit, so answers that may each take megabytes
   * (listings, route tables) never pile up faster than the hosts read them. It waits for room
   * on its host's endpoint before its turn, not in it: a host that does not read its answers
   * must not hold every endpoint's bulk commands back.
   */
  private async runBulk(call: Call, name: string, produce: () => Promise<AnswerLine>): Promise<AnswerLine> {
    // A request whose host is gone leaves the queue and the wait for room at once.
    for (;;) {
      if (!(await roomFor(this.ctx, call))) throw cancelled(name);
      await this.bulk.acquire(call.signal).catch(() => {
        throw cancelled(name);
      });
      // Its host's own answers may have filled the queue while it waited for its turn.
      if (this.hasRoom(this.transportOf(call))) break;
      this.bulk.release();
    }
    const turn: BulkTurn = { call, holding: true };
    this.bulkTurn = turn;
    try {
      if (call.signal.aborted) throw cancelled(name);
      const answer = await produce();
      this.ctx.holdOutput(answerBytes(answer), call); // counted until the agent has queued it
      return answer;
    } finally {
      if (this.bulkTurn === turn) this.bulkTurn = undefined;
      if (turn.holding) this.bulk.release();
    }
  }

  /** Context.largeAnswer: a bulk command waits for its share out of its turn. */
  private async largeAnswer(call: Call, bytes: number, inBulk: boolean): Promise<AnswerHold> {
    const turn = this.bulkTurn;
    if (!inBulk || turn?.call !== call) return this.large.take(bytes, call.signal);
    const now = this.large.takeNow(bytes, call.signal);
    if (now) return now;
    // A large answer held for a host that reads none of it (another endpoint's, say) must not
    // keep every bulk command waiting: the turn is the next one's meanwhile.
    this.bulkTurn = undefined;
    turn.holding = false;
    this.bulk.release();
    let hold: AnswerHold | undefined;
    try {
      hold = await this.large.take(bytes, call.signal);
      await this.bulk.acquire(call.signal);
    } catch (e) {
      hold?.release();
      throw e;
    }
    turn.holding = true;
    this.bulkTurn = turn;
    return hold;
  }

  /** A session ended (Session.end): its work was aborted; now the hooks (close its handles). */
  sessionEnded(session: Session): void {
    this.sessions.delete(session.id);
    if (this.reading.get(session.transport) === session) this.reading.delete(session.transport);
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

  /** A request of a session (Session's framer). */
  onRequest(session: Session, req: Incoming): void {
    if (this.stopping) return;
    this.inFlight++;
    session.inFlight++;
    const bytes = req.bytes; // not the request: it would live as long as its answer
    this.heldInput += bytes;
    session.heldInput += bytes;
    let answer: AnswerLine | Promise<AnswerLine>;
    try {
      answer = req.answer(session.call);
    } catch (e) {
      answer = internalError(e as Error);
    }
    // An answer made at once goes out at once (answered() updates the flow); one to come holds
    // its place in the budgets meanwhile.
    if (answer instanceof Promise) {
      this.updateFlow();
      void answer.catch(internalError).then((a) => this.answered(session, bytes, a));
    } else this.answered(session, bytes, answer);
  }

  /** A request of `bytes` from `session` has its answer. */
  private answered(session: Session, bytes: number, answer: AnswerLine): void {
    // The host that asked is gone: the next one must not take this answer for its own (a host
    // that sends no tags would).
    const answerLength = answerBytes(answer); // before output: the transport may free its pieces
    // A large answer's share of the budget is held until its transport has written it.
    const held = answerLength > LARGE_ANSWER ? heldBy(answer) : undefined;
    if (!session.ended) {
      if (answerLength > 0) session.output(answer, held?.release);
    } else {
      held?.release();
      this.ctx.log.debug('an answer for a host that is gone dropped');
    }
    lineDone(bytes + answerLength);
    this.inFlight--;
    this.heldInput -= bytes;
    session.heldInput -= bytes;
    session.answered();
    this.updateFlow();
    if (this.shutdownRequested && !this.stopping) {
      this.ctx.log.info('agent-shutdown requested');
      void this.stop();
    }
    if (this.inFlight === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when no request is in flight. */
  private settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Lets waiting producers go on once their transport's output is under the limit (or nothing is queued any more). */
  private wakeRoomWaiters(): void {
    if (this.roomWaiters.length === 0) return;
    const waiting = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiting) {
      if (this.hasRoom(w.transport)) w.wake();
      else this.roomWaiters.push(w);
    }
  }

  /** The transport of a call's host; undefined once its session is over. */
  private transportOf(call: Call): Transport | undefined {
    return this.sessions.get(call.session)?.transport;
  }

  /** Room for output on `transport`, or on every transport when it is undefined. */
  private hasRoom(transport: Transport | undefined): boolean {
    if (this.stopping !== undefined) return true;
    const all = this.heldOutput.size === 0 ? 0 : (this.heldOutput.get(undefined) ?? 0); // reservations have a transport
    if (transport) return this.roomOn(transport, all);
    for (const e of this.endpoints) if (!this.roomOn(e.transport, all)) return false;
    return true;
  }

  private roomOn(transport: Transport, alsoHeld: number): boolean {
    const held = this.heldOutput.size === 0 ? 0 : (this.heldOutput.get(transport) ?? 0);
    const reserved = this.reservedOutput.size === 0 ? 0 : (this.reservedOutput.get(transport) ?? 0);
    return transport.queued + held + reserved + alsoHeld < MAX_QUEUED_OUTPUT;
  }

  /**
   * Backpressure, an endpoint at a time: stop reading one whose host has too much in flight or
   * queued, and every one while the shared budgets are spent. One request is always let in,
   * however long its line (up to the line limit).
   */
  private updateFlow(): void {
    if (this.stopping) return;
    const held = this.ctx.config.maxHeldInput;
    const shared = this.inFlight >= MAX_IN_FLIGHT_ALL || (this.inFlight > 0 && this.heldInput >= HELD_INPUT_ALL * held);
    for (const { transport } of this.endpoints) {
      const s = this.reading.get(transport);
      const over =
        shared ||
        (s !== undefined && (s.inFlight >= MAX_IN_FLIGHT || (s.inFlight > 0 && s.heldInput >= held))) ||
        transport.queued >= MAX_QUEUED_OUTPUT;
      if (over === this.pausedTransports.has(transport)) continue;
      if (over) {
        this.pausedTransports.add(transport);
        transport.pause();
      } else {
        this.pausedTransports.delete(transport);
        transport.resume();
      }
    }
  }

  /**
   * Stops reading, cancels the work in flight (Call.signal; the urgent exit hooks cancel
   * waits on streams), lets requests finish and their answers go out, runs the exit hooks
   * (thaw, close handles) and closes the transport. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const e of this.endpoints) e.transport.pause();
      this.wakeRoomWaiters();
      await this.runHooks(this.urgentExitHooks);
      for (const s of this.sessions.values()) s.cancel('the agent is stopping');
      if (this.inFlight > 0) {
        await Promise.race([this.settled(), delay(STOP_WAIT_MS)]);
      }
      await Promise.all(this.endpoints.map((e) => e.transport.flush(2_000)));
      await this.runExitHooks();
      await Promise.all(this.endpoints.map((e) => e.transport.close()));
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

/** The bulk command that has the turn (runBulk), and whether it holds it now (see largeAnswer). */
interface BulkTurn {
  readonly call: Call;
  holding: boolean;
}

/** The dispatchers answer every failure themselves; should one ever throw, the request still ends. */
function internalError(e: Error): string {
  return encodeError(`Internal error: ${e.message}`, -1, '');
}

function cancelled(name: string): AgentError {
  return new AgentError(`${name}: cancelled: the host that asked is gone`, 125);
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
