// A cap on how many of some operation run at once, for work whose cost a host chooses: later
// calls wait their turn, in order.

export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  /** Runs fn once fewer than `max` runs are going on. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((r) => this.waiting.push(r)); // woken holding a finished run's slot
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot goes straight to the next caller
      else this.running--;
    }
  }
}
