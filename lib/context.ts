// What a command handler sees of the agent: configuration, shared state, logging and lifecycle.
import type { HandleTable } from './files/handle-table';
import type { Freezer } from './freeze/freezer';
import type { AnswerHold } from './large-answers';
import type { HoldingLogger } from './log';
import type { SystemInfoPart } from './sysinfo';
import type { AnswerLine } from './wire/answer';

export interface AgentConfig {
  /** Mount table read by fs-freeze (a test hands the agent a fixture table). */
  mountsFile: string;
  /** Seconds after which a freeze with no fs-unfreeze thaws by itself; 0 = never. */
  freezeTimeout: number;
  /** Largest `size` a file-read may ask for, in bytes. */
  maxReadSize: number;
  /** Open file handles allowed at once. */
  maxHandles: number;
  /** Honour file-read `size` (off: behave exactly like 0.7.1, 4096-byte reads). */
  largeReads: boolean;
  /** utmp file sysinfo reads its users from. */
  utmpFile: string;
  /**
   * Bytes of request lines a host's session holds in flight (a file-write's data waiting for a
   * stalled target, say) before the agent stops reading from that host until some are done;
   * twice this for all the sessions together stops reading from every host.
   */
  maxHeldInput: number;
  /** qemu-ga's fsfreeze hook: run with "freeze" before every freeze, "thaw" after (unset: none). */
  fsfreezeHook?: string;
  /**
   * Directory qemu-ga's system commands (guest-shutdown, guest-set-time, guest-suspend-*,
   * guest-set-vcpus, guest-set-memory-blocks, guest-set-user-password) find /sys and their
   * programs under: '/' for this system's own; a test's fixture tree with stub programs (whose
   * system clock is then the file ROOT/clock: see lib/system/clock.ts).
   */
  systemRoot: string;
  /** Processes guest-exec tracks at once: running, or finished and not yet collected. */
  execMaxProcesses: number;
  /** Bytes kept of each captured output stream of a guest-exec process (qemu-ga's 16 MiB). */
  execMaxOutput: number;
  /** Bytes of captured guest-exec output held for all processes together. */
  execMaxHeldOutput: number;
}

export const defaultConfig: AgentConfig = {
  mountsFile: '/proc/self/mounts',
  freezeTimeout: 600,
  maxReadSize: 4 * 1024 * 1024,
  maxHandles: 1024,
  largeReads: true,
  utmpFile: '/var/run/utmp',
  maxHeldInput: 32 * 1024 * 1024,
  systemRoot: '/',
  execMaxProcesses: 64,
  execMaxOutput: 16 * 1024 * 1024,
  execMaxHeldOutput: 32 * 1024 * 1024,
};

export interface AgentState {
  /** True while fs-freeze holds filesystems frozen; the dispatcher refuses most commands then. */
  frozen: boolean;
}

export type ExitHook = () => void | Promise<void>;

/** What a handler knows of the request it serves, beyond its arguments. */
export interface Call {
  /** The host session that sent it (see TransportSink). */
  readonly session: number;
  /**
   * Aborted when that session ends or the agent stops: work nobody will read the answer of
   * (an md5 of a huge file, a listing, a wait on a FIFO) should stop.
   */
  readonly signal: AbortSignal;
}

export interface Context {
  readonly config: AgentConfig;
  readonly state: AgentState;
  /** phoenix's commands: every name a host may send, aliases included (get-commands). */
  readonly registry: { names(): string[] };
  /** Holds lines back while a freeze would make writing them block (see HoldingLogger). */
  readonly log: HoldingLogger;
  readonly version: string;
  /** Ask the agent to exit once this command's answer is written. */
  shutdown(): void;
  /**
   * Run at exit (agent-shutdown, SIGTERM, SIGINT, fatal error), in reverse order of
   * registration. An `urgent` hook (thaw) runs as soon as the agent starts stopping, before it
   * waits for commands in flight, which may be blocked on a frozen filesystem; the others (close
   * handles) run after those commands have finished.
   */
  onExit(hook: ExitHook, urgent?: boolean): void;
  /**
   * Run when a host's session ends, with its id (Call.session): a unix socket closed, the port
   * now names another device, or the port stayed hung up for the host-gone timeout. The
   * session's calls have been aborted (Call.signal) by then.
   */
  onHostGone(hook: (session: number) => void): void;
  /**
   * The endpoint a host session came through, while it lasts (undefined after): its transport's
   * endpoint (`unix:PATH`, `port PATH`, or `port named NAME` for a port found by its name), the
   * same for a port that went away and came back, under another device path too.
   */
  endpointOf(session: number): string | undefined;
  /** Whether the agent has endpoints of both protocols now (the handle table's halves hold then). */
  servesBothProtocols(): boolean;
  /**
   * undefined while the host is taking our answers; otherwise a promise that resolves once the
   * output queued for it is back under the agent's limit. Producers of large answers (file-read)
   * wait on it, so a host that pipelines big reads and reads slowly cannot make the agent
   * buffer without bound (pausing input alone still lets every request in flight complete).
   * The output queued on the transport of the call's host only (another host's backlog does not
   * hold it up); once that host's session is over, on every transport.
   */
  outputRoom(call: Call): Promise<void> | undefined;
  /** Whether outputRoom(call) would be undefined now: a check that leaves no waiter behind. */
  hasOutputRoom(call: Call): boolean;
  /**
   * Counts `bytes` of an answer being produced now against the output limit until the next turn
   * of the event loop, by which time the agent has handed the answer to the transport (whose
   * queue then counts it). Without it, reads served synchronously in one burst of pipelined
   * requests would all pass outputRoom() before any answer is queued. Counted on the transport of
   * the call's host; once that host's session is over, on every one.
   */
  holdOutput(bytes: number, call: Call): void;
  /**
   * Counts `bytes` of an answer on its way against the output limit until the returned function
   * is called (a read waiting on the thread pool, from when it passed outputRoom() until it is
   * done and counted by holdOutput()). Counted where holdOutput counts.
   */
  reserveOutput(bytes: number, call: Call): () => void;
  /**
   * Runs `produce` (a bulk command's answer: a listing, a route table) once the other bulk
   * commands are done and the output queued for the hosts is under the limit; rejects when the
   * call's host goes away first.
   */
  runBulk(call: Call, name: string, produce: () => Promise<AnswerLine>): Promise<AnswerLine>;
  /**
   * A share of `bytes` (at most all of it) of the agent's budget of large answers
   * (lib/large-answers.ts), for an answer that may pass LARGE_ANSWER bytes, taken before it is
   * made: resolves once the large answers held for every host leave room for it, in the order
   * asked; rejects (AbortError) if the call's host goes first. The answer keeps it
   * (AnswerHold.keep) until it is written; a failure must release it. `inBulk`: asked by the
   * bulk command that has the bulk turn (runBulk), which gives its turn up while it waits and
   * has it back before this resolves: it must hold nothing large meanwhile.
   */
  largeAnswer(call: Call, bytes: number, inBulk?: boolean): Promise<AnswerHold>;
  /** largeAnswer() when the budget has room now and no other large answer waits; else undefined. */
  largeAnswerNow(call: Call, bytes: number): AnswerHold | undefined;
  /** The qemu-ga front-end's commands (guest-info lists them, with whether each is served now). */
  readonly qemuGa: {
    readonly commands: readonly { name: string; noSuccessResponse?: boolean; unlisted?: boolean }[];
    enabled(command: { name: string }): boolean;
  };
  /** The agent's open file handles (for as long as the agent runs; a session's go when it ends). */
  readonly handles: HandleTable;
  /** The agent's freeze (thawed by an urgent exit hook). */
  readonly freezer: Freezer;
  /** sysinfo: the last failure of each part, so each is logged once (lib/protocols/phoenix/commands/sysinfo.ts). */
  readonly sysinfoFailures: Map<SystemInfoPart, string>;
}
