// The agent-wide budget of large answers (docs/AGENT.md "Budgets"). Each endpoint's output limit
// bounds the answers queued there, but one large answer always gets past it (a 48 MiB qemu-ga
// read's 64 MiB), so hosts of several endpoints that read none of theirs added up. An answer
// that may pass LARGE_ANSWER bytes takes its bytes from this budget before it is made, and the
// answer keeps them until it is written or its host is gone; smaller answers never wait on it.
import { AbortError } from './errors';
import type { RawJson } from './wire/answer';

/** Answers that may be longer than this are large: they are made within the budget. */
export const LARGE_ANSWER = 6 * 1024 * 1024;
/** Bytes of large answers held at once, for every host together: one 48 MiB read's answer. */
export const LARGE_ANSWERS_HELD = 64 * 1024 * 1024;

/** A large answer's share of the budget: from before it is made until it is written. */
export class AnswerHold {
  private done = false;

  constructor(
    private readonly budget: LargeAnswers,
    private held: number,
    private readonly signal: AbortSignal,
  ) {
    // Its host gone, its answer is dropped (or never made).
    signal.addEventListener('abort', this.release, { once: true });
  }

  get bytes(): number {
    return this.done ? 0 : this.held;
  }

  /** Gives the bytes back; once. */
  readonly release = (): void => {
    if (this.done) return;
    this.done = true;
    this.signal.removeEventListener('abort', this.release);
    this.budget.give(this.held);
  };

  /** Holds `bytes` (at most the budget) instead: fewer at once, more only when the budget has them now. */
  resize(bytes: number): boolean {
    const want = this.budget.clamp(bytes);
    if (this.done) return false;
    if (want > this.held && !this.budget.tryTake(want - this.held)) return false;
    if (want < this.held) this.budget.give(this.held - want);
    this.held = want;
    return true;
  }

  /**
   * The answer made within this hold: a large one keeps it (RawJson.held, until the agent has it
   * written), cut to its size; one that turned out not to be large (a short read) lets it go.
   */
  keep<T extends RawJson>(raw: T): T {
    let bytes = 0;
    for (const p of raw.parts) bytes += p.length; // its strings are ASCII: a character a byte
    if (bytes <= LARGE_ANSWER) this.release();
    else {
      this.resize(bytes);
      raw.held = this;
    }
    return raw;
  }
}

/** The budget: bytes taken in the order asked, a request larger than all of it taking all of it. */
export class LargeAnswers {
  private free: number;
  private readonly waiting = new Set<{ bytes: number; wake: () => void }>();

  constructor(readonly max: number) {
    this.free = max;
  }

  clamp(bytes: number): number {
    return Math.min(Math.max(0, Math.ceil(bytes)), this.max);
  }

  /** Takes `bytes` now when they are free and nobody waits before (a large answer waiting is not overtaken). */
  tryTake(bytes: number): boolean {
    if (this.waiting.size > 0 || bytes > this.free) return false;
    this.free -= bytes;
    return true;
  }

  /** A hold of `bytes` when the budget has them now; otherwise undefined. */
  takeNow(bytes: number, signal: AbortSignal): AnswerHold | undefined {
    const want = this.clamp(bytes);
    return !signal.aborted && this.tryTake(want) ? new AnswerHold(this, want, signal) : undefined;
  }

  /** A hold of `bytes`, once the answers before it leave room; rejects with an AbortError, holding nothing, if `signal` aborts first. */
  take(bytes: number, signal: AbortSignal): Promise<AnswerHold> {
    if (signal.aborted) return Promise.reject(new AbortError(signal));
    const want = this.clamp(bytes);
    if (this.tryTake(want)) return Promise.resolve(new AnswerHold(this, want, signal));
    return new Promise((resolve, reject) => {
      const waiter = {
        bytes: want,
        wake: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(new AnswerHold(this, want, signal));
        },
      };
      const onAbort = () => {
        this.waiting.delete(waiter);
        reject(new AbortError(signal));
        this.wake(); // it may have been what the others waited behind
      };
      this.waiting.add(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  give(bytes: number): void {
    this.free += bytes;
    this.wake();
  }

  /** Bytes held now, for every host together. */
  get held(): number {
    return this.max - this.free;
  }

  private wake(): void {
    for (const w of this.waiting) {
      if (w.bytes > this.free) return;
      this.free -= w.bytes;
      this.waiting.delete(w);
      w.wake();
    }
  }
}
