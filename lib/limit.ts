// A cap on how many of some operation run at once, for work whose cost a host chooses: later
// callers wait their turn, in order, and one whose signal aborts leaves the queue.
import { AbortError } from './errors';

export class Limiter {
  private running = 0;
  private readonly waiting = new Set<() => void>(); // a Set keeps insertion order and removes in O(1)

  constructor(readonly max: number) {}

  /** Resolves holding a slot; rejects with an AbortError, holding none, if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new AbortError(signal));
    if (this.running < this.max) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiting.delete(wake);
        reject(new AbortError(signal));
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.waiting.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  release(): void {
    const next = this.waiting.values().next();
    if (next.done) this.running--;
    else {
      this.waiting.delete(next.value); // the slot goes straight to the next caller
      next.value();
    }
  }

  /** Nothing holds a slot or waits for one. */
  get idle(): boolean {
    return this.running === 0 && this.waiting.size === 0;
  }

  /** Runs fn holding a slot. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/** Resolves when p does or when signal aborts, whichever comes first. */
export function untilAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    void p.then(done);
  });
}
