// A protocol front-end: how one host's byte stream becomes requests, and how each is answered.
// The agent, its sessions, budgets and state are the same for every protocol; phoenix 0.7.1
// (lib/protocols/phoenix/commands) and qemu-ga (lib/protocols/qemu-ga) are the two front-ends over them.
import type { Call } from '../context';
import type { AnswerLine } from '../wire/answer';

export const PROTOCOL_NAMES = ['phoenix', 'qemu-ga'] as const;
export type ProtocolName = (typeof PROTOCOL_NAMES)[number];

/** One request as its framer found it. */
export interface Incoming {
  /** Bytes it holds (counted against the held-input budget until answered). */
  readonly bytes: number;
  /**
   * Runs it: the answer line, '' for none (qemu-ga's guest-shutdown), or its promise (the line
   * itself when it was made at once, which then goes out at once). Called once.
   */
  answer(call: Call): AnswerLine | Promise<AnswerLine>;
}

/** Splits one session's bytes into requests. */
export interface Framer {
  push(chunk: Buffer): void;
  /** Forgets a partial request (the host dropped the connection). */
  reset(): void;
}

export interface Protocol {
  readonly name: ProtocolName;
  /** A framer for one session, handing each request to `deliver`; `maxBytes` bounds one request. */
  framer(deliver: (req: Incoming) => void, maxBytes: number): Framer;
}
