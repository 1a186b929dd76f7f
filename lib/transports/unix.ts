// A unix socket server, one host connection read at a time (like qemu-ga's unix-listen): a
// second connection waits until the first one stops sending. Each connection is a session.
import * as fs from 'fs';
import * as net from 'net';
import { constants } from 'os';
import { chunkPool } from '../buffers';
import type { Logger } from '../log';
import { native, type NativeHangupWatch } from '../native';
import type { SessionSink, Transport, TransportSink } from './transport';
import { OWN_PIECE, type AnswerLine } from '../wire/answer';

/** Answers this long are queued from a reused buffer (see send). */
const POOLED_ANSWER = 64 * 1024;
/** Answers in pieces this long are written piece by piece (see send). */
const LARGE_ANSWER = 4 * 1024 * 1024;
/**
 * While another host waits, a host with nothing in flight that has sent nothing for this long
 * makes way for it (its session ends): an idle connection must not lock every other host out.
 */
export const IDLE_HANDOVER_MS = 5_000;
/** Connections waiting their turn; more are refused (closed at once). */
export const MAX_WAITING = 64;
/**
 * A host that stopped sending and takes none of the answers queued for it for this long is
 * gone (its session ends): otherwise its queue would hold the output budget, and so every
 * other host, for ever. A host still connected that takes none for this long while another
 * waits makes way for it: otherwise the socket would be its for as long as it stalls.
 */
export const DRAIN_STALL_MS = 10_000;
/**
 * What one write queued on a socket costs beyond its bytes (Node's queue entry, its callback):
 * counted in `queued`, so a flood of tiny answers (a ping, a parse error) is held to the output
 * budget by what it takes in memory, not by its few bytes each.
 */
export const QUEUED_WRITE_COST = 320;

interface Connection {
  readonly sock: net.Socket;
  session?: SessionSink;
  watch?: NativeHangupWatch;
  /** When the host last sent something or got an answer (ms, for the idle handover). */
  lastActive: number;
  /** Writes given to the socket and not yet done (each is a queue entry until then). */
  unsent: number;
  /** When the host last took some of its answers, or had none waiting (ms, for the stall check). */
  takenAt: number;
  /** Bytes libuv had still to write at the last check: less since then is the host reading. */
  unwritten: number;
  /** A write's callback: it is done. */
  readonly wrote: () => void;
}

export class UnixTransport implements Transport {
  private server: net.Server | undefined;
  /** The connection being read from. */
  private active: Connection | undefined;
  private readonly waiting: Connection[] = [];
  /** Connections that have stopped sending, with answers still to come. */
  private readonly draining = new Set<Connection>();
  private sink: TransportSink | undefined;
  private paused = false;
  private idleCheck: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {}

  get description(): string {
    return `unix:${this.path}`;
  }

  async start(sink: TransportSink): Promise<void> {
    this.sink = sink;
    await claimSocketPath(this.path);
    // allowHalfOpen: a host may send its requests and shut down its side (`socat -` at end of
    // input); it still gets every answer before the agent closes the connection.
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error(`listener: ${e.message}`));
  }

  private accept(sock: net.Socket): void {
    sock.on('error', (e) => this.log.debug(`connection: ${e.message}`));
    const conn: Connection = {
      sock,
      lastActive: Date.now(),
      unsent: 0,
      takenAt: Date.now(),
      unwritten: 0,
      wrote: () => {
        conn.takenAt = Date.now();
        // The socket's 'drain' comes before its writes' callbacks: the budget hears of these here.
        if (--conn.unsent === 0 && sock.writableLength === 0) this.sink?.drain();
      },
    };
    // A host that closes is gone at once, even while it is not read from (waiting its turn, or
    // paused by backpressure) and so cannot be seen to end.
    this.watchHangup(conn);
    sock.once('close', () => this.unwatch(conn));
    if (!this.active) {
      this.activate(conn);
      return;
    }
    if (this.waiting.length >= MAX_WAITING) {
      this.log.warn(`${MAX_WAITING} host connections already wait their turn; a new one is refused`);
      sock.destroy();
      return;
    }
    this.log.debug('a second host connection waits for the first to finish');
    sock.pause();
    this.waiting.push(conn);
    sock.once('close', () => {
      const i = this.waiting.indexOf(conn);
      if (i >= 0) this.waiting.splice(i, 1);
    });
    this.startChecks();
  }

  private activate(conn: Connection): void {
    const sink = this.sink!;
    const { sock } = conn;
    this.active = conn;
    conn.lastActive = Date.now();
    this.log.info('host connected');
    const session = sink.begin((line, written) => this.send(conn, line, written));
    conn.session = session;
    sock.on('data', (chunk: Buffer) => {
      conn.lastActive = Date.now();
      session.data(chunk);
    });
    sock.on('drain', () => {
      conn.lastActive = Date.now(); // it is reading its answers
      conn.takenAt = conn.lastActive;
      sink.drain();
    });
    sock.once('end', () => {
      // The host has stopped sending: the next host is served now, and this one still gets its
      // answers, unless it has closed for good (then its session ends, its work is cancelled).
      this.stopReading(conn);
      this.draining.add(conn);
      this.startChecks();
      void session.settled().then(() => sock.end());
    });
    sock.once('close', () => {
      this.draining.delete(conn);
      this.log.info('host disconnected');
      session.end();
      this.stopReading(conn);
      sink.drain(); // its queued output is gone
    });
    if (this.paused) sock.pause();
    else sock.resume();
  }

  /** `conn` is no longer the one read from: the next waiting host's turn. */
  private stopReading(conn: Connection): void {
    if (this.active !== conn) return;
    this.active = undefined;
    const next = this.waiting.shift();
    if (next) this.activate(next);
  }

  /** Destroys the socket once its peer has closed it (not merely stopped sending). */
  private watchHangup(conn: Connection): void {
    const fd = (conn.sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (conn.watch || fd === undefined || fd < 0) return;
    try {
      conn.watch = new native.HangupWatch(fd, () => {
        conn.watch = undefined;
        this.log.debug('a host closed its connection');
        conn.sock.destroy();
      });
    } catch (e) {
      this.log.debug(`cannot watch a connection for its close: ${(e as Error).message}`);
    }
  }

  private unwatch(conn: Connection): void {
    conn.watch?.close();
    conn.watch = undefined;
  }

  /**
   * While hosts wait or hosts drain, once a second: an idle active host makes way for a waiting
   * one (IDLE_HANDOVER_MS), and a draining host that takes none of its answers is cut off
   * (DRAIN_STALL_MS). Idle means nothing in flight, no answer still queued for it, and reading
   * not held back by the agent (its requests may be waiting in the socket).
   */
  private startChecks(): void {
    if (this.idleCheck) return;
    this.idleCheck = setInterval(() => this.check(), 1000);
    this.idleCheck.unref();
  }

  private check(): void {
    const now = Date.now();
    for (const conn of this.draining) {
      if (conn.sock.writableLength === 0 || now - conn.lastActive < DRAIN_STALL_MS) continue;
      this.log.info(`a host that stopped sending took none of its answers for ${DRAIN_STALL_MS / 1000} s; closing it`);
      conn.sock.destroy();
    }
    const conn = this.active;
    if (conn && this.waiting.length > 0 && !this.paused && !conn.session?.busy && conn.sock.writableLength === 0) {
      if (now - conn.lastActive >= IDLE_HANDOVER_MS) {
        this.log.info(
          `the host sent nothing for ${IDLE_HANDOVER_MS / 1000} s while another waits; serving the next host`,
        );
        conn.sock.destroy();
      }
    } else if (conn && this.waiting.length > 0 && this.stalled(conn, now)) {
      this.log.info(
        `the host took none of its answers for ${DRAIN_STALL_MS / 1000} s while another waits; serving the next host`,
      );
      conn.sock.destroy();
    }
    if (this.waiting.length === 0 && this.draining.size === 0) this.stopChecks();
  }

  /** Has the host of `conn` taken none of the answers queued for it for DRAIN_STALL_MS? */
  private stalled(conn: Connection, now: number): boolean {
    if (conn.sock.writableLength === 0) {
      conn.takenAt = now;
      return false;
    }
    // A large answer is one write: libuv's count of its bytes still unwritten shows the host
    // reading it before the write is done.
    const unwritten = (conn.sock as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? 0;
    if (unwritten < conn.unwritten) conn.takenAt = now;
    conn.unwritten = unwritten;
    return now - conn.takenAt >= DRAIN_STALL_MS;
  }

  private stopChecks(): void {
    if (this.idleCheck) clearInterval(this.idleCheck);
    this.idleCheck = undefined;
  }

  /** An answer for the host of `conn`; dropped once that connection is gone. */
  private send(conn: Connection, line: AnswerLine, written?: () => void): void {
    const { sock } = conn;
    if (sock.destroyed || !sock.writable) {
      written?.();
      return;
    }
    conn.lastActive = Date.now();
    if (written) {
      this.writeHeld(conn, line, written);
      return;
    }
    if (typeof line !== 'string' && !Buffer.isBuffer(line)) {
      const pieces = line as readonly Buffer[];
      let bytes = 0;
      for (const piece of pieces) bytes += piece.length;
      // An answer in pieces: one the pool keeps (a 1 MiB chunk's, around its base64) is copied
      // into a reused buffer like a large answer in one (below); a larger one is written as it is.
      if (bytes >= POOLED_ANSWER && chunkPool.keeps(bytes)) {
        this.writeCopy(conn, pieces, bytes, true);
        return;
      }
      // Corked, a small answer's pieces go in one writev; a large one's are written each on its
      // own, so each is freed once written, as the port's writer does, not all at the end.
      const cork = bytes < LARGE_ANSWER;
      if (cork) sock.cork();
      for (const piece of pieces) {
        conn.unsent++;
        sock.write(
          piece,
          cork || piece.length < OWN_PIECE ? conn.wrote : () => (conn.wrote(), native.freeWhole(piece)),
        );
      }
      if (cork) sock.uncork();
      return;
    }
    // An answer larger than the pool keeps (a directory listing's) gains nothing from a copy: the
    // copy would be just as fresh, and copying tens of MB holds the main thread.
    if (typeof line === 'string' || line.length < POOLED_ANSWER || !chunkPool.keeps(line.length)) {
      conn.unsent++;
      sock.write(line, conn.wrote);
      return;
    }
    this.writeCopy(conn, [line], line.length, false);
  }

  /**
   * A large answer the agent's budget holds until it is written (SessionOutput): each piece
   * written on its own and freed once written (an answer's own pieces), `written` called after
   * the last. (Such answers are past what the pool keeps: never copied.)
   */
  private writeHeld(conn: Connection, line: AnswerLine, written: () => void): void {
    const own = typeof line !== 'string' && !Buffer.isBuffer(line);
    const pieces = own ? (line as readonly Buffer[]) : [typeof line === 'string' ? Buffer.from(line, 'utf8') : line];
    pieces.forEach((piece, i) => {
      conn.unsent++;
      conn.sock.write(piece, () => {
        conn.wrote();
        if (own && piece.length >= OWN_PIECE) native.freeWhole(piece);
        if (i === pieces.length - 1) written();
      });
    });
  }

  /**
   * A large answer (a file-read chunk) waits in the socket's queue while the host reads the ones
   * before it: a copy in a reused buffer leaves the answer garbage at once, where the answer
   * itself would outlast young-generation collections. The socket gives it back once written or
   * dropped. `own`: the pieces are an answer's in pieces, freed once copied.
   */
  private writeCopy(conn: Connection, pieces: readonly Buffer[], bytes: number, own: boolean): void {
    const copy = chunkPool.take(bytes);
    let off = 0;
    for (const piece of pieces) {
      off += piece.copy(copy, off);
      if (own && piece.length >= OWN_PIECE) native.freeWhole(piece);
    }
    conn.unsent++;
    conn.sock.write(copy.subarray(0, bytes), () => {
      conn.wrote();
      chunkPool.give(copy);
    });
  }

  private get writingConnections(): Connection[] {
    const all = [...this.draining];
    if (this.active) all.push(this.active);
    return all;
  }

  private get writing(): net.Socket[] {
    return this.writingConnections.map((c) => c.sock);
  }

  get queued(): number {
    let n = 0;
    for (const c of this.writingConnections) n += c.sock.writableLength + c.unsent * QUEUED_WRITE_COST;
    return n;
  }

  pause(): void {
    this.paused = true;
    this.active?.sock.pause();
  }

  resume(): void {
    this.paused = false;
    this.active?.sock.resume();
  }

  flush(timeoutMs: number): Promise<void> {
    const busy = this.writing.filter((s) => s.writableLength > 0 && !s.destroyed);
    if (busy.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      let left = busy.length;
      const done = () => {
        if (--left > 0) return;
        clearTimeout(t);
        resolve();
      };
      for (const s of busy) {
        // An ended socket (a half-closed host whose answers are all queued) takes no more
        // writes, not even an empty one: a write after end destroys it, answers and all.
        if (s.writableEnded) s.once('close', done);
        else s.write('', done);
      }
    });
  }

  async close(): Promise<void> {
    this.stopChecks();
    // Waiting hosts were never served; the others have had their answers (the agent flushed).
    // None may hold up the exit: a peer that never closes its side is cut off.
    for (const c of this.waiting.splice(0)) c.sock.destroy();
    for (const sock of this.writing) {
      sock.end();
      const t = setTimeout(() => sock.destroy(), 500);
      sock.once('close', () => clearTimeout(t));
    }
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

/**
 * Makes `path` free for the listener: a stale socket (its agent gone) is removed, but a live
 * agent answering there is not displaced. Anything that is not a socket is left for listen()
 * to refuse (EADDRINUSE).
 */
async function claimSocketPath(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false)); // ECONNREFUSED: nobody listens there
  });
  if (live) {
    const err = new Error(
      `listen ${path}: another process is listening on this socket (another ember-ga?); stop it or choose another path`,
    ) as NodeJS.ErrnoException;
    err.code = 'EADDRINUSE';
    err.errno = constants.errno.EADDRINUSE;
    err.syscall = 'listen';
    err.path = path;
    throw err;
  }
  fs.unlinkSync(path);
}
