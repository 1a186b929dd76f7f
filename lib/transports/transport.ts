// What the agent needs of a connection to the host, and what a transport tells it.
//
// A host's session lasts from its connection to its end: a unix socket's connection, or the
// port from the host's first byte until the port has stayed hung up for the host-gone timeout
// (or names another device). Requests belong to the session that sent them; when it ends, its
// work is cancelled, its file handles are closed and answers still to come are dropped.

import type { AnswerLine } from '../wire/answer';

/**
 * The answers of one session go out through this (pieces one after the other, as one line). The
 * pieces of an answer in pieces are the transport's from then on: it may send from those very
 * buffers and free their memory once sent, so nothing may use them after. `written`, when given
 * (a large answer: see lib/large-answers.ts), is called once the line is written, or dropped
 * with the rest of a host's output when that host is gone.
 */
export type SessionOutput = (line: AnswerLine, written?: () => void) => void;

/** What a transport tells the agent about one host's session. */
export interface SessionSink {
  /** Bytes from the host. */
  data(chunk: Buffer): void;
  /** The host dropped the connection but the session goes on (the port's brief hang-up): forget any partial line. */
  reset(): void;
  /**
   * The host has stopped sending (a half-closed socket): resolves once every request it sent
   * has been answered, or at once when the session has ended.
   */
  settled(): Promise<void>;
  /** True while the session has requests in flight. */
  readonly busy: boolean;
  /** The session is over (the host closed, or is gone for good): cancel, close and drop. */
  end(): void;
}

export interface TransportSink {
  /** A host connected: a new session, whose answers go to `output`. */
  begin(output: SessionOutput): SessionSink;
  /** The output queue emptied. */
  drain(): void;
}

export interface Transport {
  readonly description: string;
  /**
   * Who the hosts on the other side are, the same when the endpoint comes back (a port found by
   * its name, whatever device path it has then); `description` where absent.
   */
  readonly endpoint?: string;
  start(sink: TransportSink): Promise<void>;
  /** Bytes written but not yet taken by the kernel, for every session. */
  readonly queued: number;
  /** Stops (resumes) reading from the host being served. */
  pause(): void;
  resume(): void;
  /** Resolves once queued output is written (or after timeoutMs). */
  flush(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
