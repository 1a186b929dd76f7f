// The agent's table of open file handles: ids from 1 upward, never reused while the agent
// runs; each handle belongs to the host session that opened it, and goes when that session ends,
// or (lifetime 'agent': qemu-ga's) to the agent, and stays until it is closed or the agent exits.
// While the agent serves both protocols, each lifetime may hold at most half of --max-handles, so
// that handles qemu-ga hosts left open cannot lock phoenix hosts out of file-open, nor the reverse.
import { constants } from 'os';
import { AgentError } from '../errors';
import type { HoldingLogger } from '../log';
import { cancelBlockedStreams, type FileHandle } from './handle';
import type { CloseOptions } from './options';

const { EMFILE } = constants.errno;

/** 'session': a phoenix host's handle, closed when its session ends; 'agent': a qemu-ga one. */
export type HandleLifetime = 'session' | 'agent';

/** What the table needs of the agent (its Context). */
export interface HandleTableContext {
  readonly config: { readonly maxHandles: number };
  readonly log: HoldingLogger;
  onExit(hook: () => void | Promise<void>, urgent?: boolean): void;
  onHostGone(hook: (session: number) => void): void;
  /** The endpoint a live host session came through (Context.endpointOf). */
  endpointOf(session: number): string | undefined;
  /** Whether hosts of both protocols may be served now (absent: yes): only then are there halves. */
  servesBothProtocols?(): boolean;
}

/** How long exit waits for handles with operations still running before it goes anyway. */
const EXIT_CLOSE_MS = 2000;

/** Ids of handles closed at end of file that are remembered, so late pipelined reads answer eof again. */
const EOF_MEMORY = 4096;

/** The agent's open handles: ids from 1 upward, never reused while the agent runs. */
export class HandleTable {
  private next = 1;
  /** Slots reserved for opens under way, by lifetime. */
  private openingSession = 0;
  private openingAgent = 0;
  private readonly open = new Map<number, FileHandle>();
  /**
   * The host session each open handle belongs to (none: an agent-lifetime handle), and the
   * endpoint it came through (told how the handle ended once that session is over: endedError).
   */
  private readonly owner = new Map<number, { session: number; endpoint: string | undefined }>();
  /** Handles closed at end of file (the last EOF_MEMORY): a hashing one's md5, once its reads are done. */
  private readonly atEof = new Map<number, { session: number | undefined; md5: Promise<string> | undefined }>();
  /** Closes and discards started when a host went away (endSession), until done. */
  private readonly discarding = new Set<Promise<void>>();
  /**
   * Handles closed when their host went away, by id (the last EOF_MEMORY): path, atomic, the
   * close, and the endpoint that host came through (only its hosts are told: see endedError).
   */
  private readonly ended = new Map<
    number,
    { path: string; atomic: boolean; done: Promise<void>; endpoint: string | undefined }
  >();

  constructor(private readonly ctx: HandleTableContext) {
    ctx.onExit(() => this.closeAll());
    // Urgent: before exit waits for requests in flight, which may be reads waiting on a FIFO.
    ctx.onExit(() => this.cancelWaits(), true);
    ctx.onHostGone((session) => this.endSession(session));
  }

  /**
   * Reserves a slot for a handle about to be opened by `call`'s host. Throws EMFILE past
   * --max-handles, or, while both protocols are served, past the half of it that handles of
   * this lifetime may hold: the other half stays for the other protocol's hosts, whatever this
   * one's leave open.
   */
  reserve(call: { readonly session: number }, lifetime: HandleLifetime = 'session'): void {
    const max = this.ctx.config.maxHandles;
    const share = Math.ceil(max / 2);
    const agent = lifetime === 'agent';
    const held = agent ? this.open.size - this.owner.size + this.openingAgent : this.owner.size + this.openingSession;
    const both = this.ctx.servesBothProtocols?.() !== false;
    if (held >= share && share < max && both) throw this.shareError(call.session, agent, held, share, max);
    if (this.open.size + this.openingSession + this.openingAgent >= max) {
      const together = both
        ? agent
          ? ', qemu-ga and phoenix hosts together'
          : ', phoenix and qemu-ga hosts together'
        : '';
      throw new AgentError(
        agent
          ? `ember-ga allows ${max} handles at once (--max-handles)${together}; close some with guest-file-close`
          : `Too many open file handles: the agent allows ${max} at once (--max-handles)${together}; close some with file-close or read them to the end`,
        EMFILE,
      );
    }
    if (agent) this.openingAgent++;
    else this.openingSession++;
  }

  /** EMFILE for an open past its lifetime's share: what holds it, and how to free some. */
  private shareError(session: number, agent: boolean, held: number, share: number, max: number): AgentError {
    if (agent) {
      let oldest: number | undefined;
      for (const id of this.open.keys()) {
        if (!this.owner.has(id)) {
          oldest = id;
          break;
        }
      }
      return new AgentError(
        `qemu-ga hosts hold ${held} of the ${share} handles they may at once (half of ember-ga's --max-handles, ${max}; the rest is for phoenix hosts), and a handle stays open when its host goes: close some with guest-file-close${oldest === undefined ? '' : ` (the oldest open is handle ${oldest})`}`,
        EMFILE,
      );
    }
    let mine = 0;
    for (const o of this.owner.values()) if (o.session === session) mine++;
    return new AgentError(
      `Too many open file handles: phoenix hosts hold ${held} of the ${share} they may at once (half of --max-handles, ${max}; the rest is for qemu-ga hosts), ${mine} of them this host's; close some with file-close or read them to the end (a host's handles close when it goes)`,
      EMFILE,
    );
  }

  /**
   * Adds an opened handle in a reserved slot; returns its id. With lifetime 'session' it is owned
   * by the call's session, and one whose host went away while it was being opened is closed at
   * once, as endSession() would have. With 'agent' (qemu-ga's handles: its hosts open a file on
   * one connection and read it on the next) no session end closes it: only close() or exit.
   */
  add(
    h: FileHandle,
    call: { readonly signal: AbortSignal; readonly session: number },
    lifetime: HandleLifetime = 'session',
  ): number {
    const id = this.next++;
    this.open.set(id, h);
    if (lifetime === 'agent') {
      this.openingAgent--;
      return id;
    }
    this.openingSession--;
    this.owner.set(id, { session: call.session, endpoint: this.ctx.endpointOf(call.session) });
    if (call.signal.aborted) this.endHandle(id, h); // that host answers nobody
    return id;
  }

  /** The open handle `id` if it was added with lifetime 'agent', else undefined. */
  agentHandle(id: number): FileHandle | undefined {
    return this.owner.has(id) ? undefined : this.open.get(id);
  }

  /** Gives back a slot reserve() took for an open that failed. */
  unreserve(lifetime: HandleLifetime = 'session'): void {
    if (lifetime === 'agent') this.openingAgent--;
    else this.openingSession--;
  }

  /**
   * The open handle `id` of host session `session` (phoenix's handles are their host's): the
   * same error as for an unknown id when it is another host's, or one of the agent's lifetime
   * (qemu-ga's), which a phoenix host must not read or close from under libvirt.
   */
  get(id: number, session: number): FileHandle {
    const h = this.has(id, session) ? this.open.get(id) : undefined;
    if (!h)
      throw this.endedError(id, session) ?? new AgentError(`Incorrect handle id: ${id} is not an open file handle`);
    return h;
  }

  /** True for a handle of host session `session` that a read closed at end of file. */
  closedAtEof(id: number, session: number): boolean {
    return this.atEof.get(id)?.session === session;
  }

  /** For a hashing handle closed at end of file: the md5 of all it read. */
  eofMd5(id: number): Promise<string> | undefined {
    return this.atEof.get(id)?.md5;
  }

  /**
   * Forgets the id and closes the handle after the operations queued on it. Options the handle
   * cannot honour (discard on a handle not opened with atomic) reject and leave it open.
   */
  close(id: number, atEof = false, options: CloseOptions = {}): Promise<void> {
    const h = this.open.get(id);
    if (!h) return Promise.resolve();
    const closing = h.close(options);
    if (!h.closed) return closing; // refused: the handle stays open, and in the table
    const session = this.owner.get(id)?.session;
    this.open.delete(id);
    this.owner.delete(id);
    if (atEof) {
      // Reads queued before the close still run (and find the end again): the md5 once they have.
      const md5 = h.hashing
        ? closing.then(
            () => h.md5()!,
            () => h.md5()!,
          )
        : undefined;
      this.atEof.set(id, { session, md5 });
      if (this.atEof.size > EOF_MEMORY) this.atEof.delete(this.atEof.keys().next().value as number);
    }
    return closing;
  }

  /** Whether `id` is an open handle of host session `session` (see get()). */
  has(id: number, session: number): boolean {
    return this.owner.get(id)?.session === session && this.open.has(id);
  }

  /**
   * A host's session ended: its handles are closed, whatever waits on them cancelled (a read
   * on a FIFO nobody writes to, a write to one nobody reads). Atomic ones are discarded, so the
   * path keeps its old content and the new data's space is freed. No later host can know these
   * handles (a 0.7.1 host never reuses one across connections), and each kept would hold an fd,
   * and a deleted file's disk space, until the agent exits.
   */
  private endSession(session: number): void {
    for (const [id, h] of this.open) if (this.owner.get(id)?.session === session) this.endHandle(id, h);
  }

  private endHandle(id: number, h: FileHandle): void {
    this.ctx.log.info(
      `host gone: ${h.atomic ? 'discarding the unfinished atomic upload to' : 'closing'} ${h.path} (handle ${id})`,
    );
    h.cancelWaits('the host that opened it is gone');
    const endpoint = this.owner.get(id)?.endpoint;
    const done = this.close(id, false, { discard: h.atomic });
    this.ended.set(id, { path: h.path, atomic: h.atomic, done, endpoint });
    if (this.ended.size > EOF_MEMORY) this.ended.delete(this.ended.keys().next().value as number);
    const discarding = done
      .catch((e: Error) => this.ctx.log.warn(`closing handle ${id}: ${e.message}`))
      .finally(() => this.discarding.delete(discarding));
    this.discarding.add(discarding); // exit waits for it (no request does)
  }

  /** For a handle closed when its host went away: settles as that close did; else undefined. */
  endOf(id: number): Promise<void> | undefined {
    return this.ended.get(id)?.done;
  }

  /**
   * The error for a handle closed when its host went away, asked by host session `session`,
   * else undefined: a later request on it must not pass for a success (file-close's 0.7.1 answer
   * for an unknown handle is true). Only for a host of the endpoint that one came through (the
   * same host coming back): to any other the id is unknown, and the file's path not its to know.
   */
  endedError(id: number, session: number): AgentError | undefined {
    const d = this.ended.get(id);
    if (d === undefined || d.endpoint === undefined || d.endpoint !== this.ctx.endpointOf(session)) return undefined;
    if (d.atomic)
      return new AgentError(
        `Handle ${id} was discarded when the host that opened it went away: ${d.path} was not replaced (its data is dropped); upload it again`,
      );
    return new AgentError(`Handle ${id} was closed when the host that opened it went away (${d.path}); open it again`);
  }

  /**
   * At exit: stream I/O that waits (a read on a FIFO nobody writes to) fails at once. The cancel
   * of calls waiting on the pool is for the whole process, for good: only when handles are open.
   */
  private cancelWaits(): void {
    if (this.open.size === 0) return;
    cancelBlockedStreams(); // stream I/O on devices epoll cannot watch, waiting on the pool
    for (const h of this.open.values()) h.cancelWaits(); // stream I/O waiting on the event loop
  }

  /**
   * At exit. A read on a pipe nobody writes to must not keep the agent from exiting: waiting
   * stream I/O is cancelled first, and after EXIT_CLOSE_MS exit goes on regardless.
   */
  private async closeAll(): Promise<void> {
    this.cancelWaits();
    const ids = [...this.open.keys()];
    if (ids.length === 0 && this.discarding.size === 0) return;
    if (ids.length > 0) this.ctx.log.info(`closing ${ids.length} file handle(s) left open`);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, EXIT_CLOSE_MS).unref()));
    // An atomic handle's data was never committed: its temporary file goes, the original stays.
    const closing = ids.map((id) => this.close(id, false, { discard: this.open.get(id)!.atomic }));
    await Promise.race([Promise.allSettled([...closing, ...this.discarding]), late]);
    clearTimeout(timer);
  }
}
