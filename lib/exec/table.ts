// The processes a host started and has not yet collected, as qemu-ga keeps them for
// guest-exec-status: looked up by pid, a finished one's status given once and then forgotten.
// Unlike qemu-ga's list, this one is bounded: in processes, and in captured bytes altogether.
import { exec, OutputBudget, type ExecOptions, type ExecProcess, type ExecResult, type ExecString } from './process';

export interface ExecLimits {
  /** Processes tracked at once: running, or finished and not yet collected. */
  maxProcesses: number;
  /** Bytes kept of each captured stream of a process. */
  maxOutput: number;
  /** Bytes of captured output held for all processes together. */
  maxHeldOutput: number;
}

/** guest-exec when maxProcesses are running (or starting) and none has finished. */
export class ExecLimitError extends Error {
  readonly code = 'EAGAIN';
  constructor(readonly limit: number) {
    super(`Too many processes running (${limit}): wait for one to finish`);
    this.name = 'ExecLimitError';
  }
}

export type ExecStatus = { exited: false } | ({ exited: true } & ExecResult);

export class ExecTable {
  /** Oldest first, as qemu-ga searches its list (a pid the system reused is found oldest first). */
  private readonly entries: ExecProcess[] = [];
  private starting = 0;
  readonly budget: OutputBudget;

  constructor(
    readonly limits: ExecLimits,
    private readonly onForget: (pid: number) => void = () => {},
  ) {
    this.budget = new OutputBudget(limits.maxHeldOutput);
  }

  /** Processes tracked (running or uncollected), and being started. */
  get size(): number {
    return this.entries.length + this.starting;
  }

  /**
   * Starts a program with the table's output caps. At the process limit, the oldest finished
   * process nobody collected is forgotten to make room (onForget); when none has finished, this
   * throws ExecLimitError. exec()'s errors otherwise.
   */
  async start(path: ExecString, opts: Omit<ExecOptions, 'maxOutput' | 'budget'> = {}): Promise<ExecProcess> {
    if (this.size >= this.limits.maxProcesses) {
      const old = this.entries.find((e) => e.finished);
      if (!old) throw new ExecLimitError(this.limits.maxProcesses);
      this.remove(old);
      old.release();
      this.onForget(old.pid);
    }
    this.starting++;
    try {
      const p = await exec(path, { ...opts, maxOutput: this.limits.maxOutput, budget: this.budget });
      this.entries.push(p);
      return p;
    } finally {
      this.starting--;
    }
  }

  /** The tracked process with this pid (the oldest, should the system have reused it). */
  find(pid: number): ExecProcess | undefined {
    return this.entries.find((e) => e.pid === pid);
  }

  /**
   * guest-exec-status: undefined for a pid not tracked; `{exited: false}` while it runs; once
   * finished its result, after which the pid is forgotten (and its output's bytes given back).
   */
  collect(pid: number): ExecStatus | undefined {
    const p = this.find(pid);
    if (!p) return undefined;
    const r = p.result();
    if (!r) return { exited: false };
    this.remove(p);
    p.release(); // r keeps the bytes for the caller; the budget is free for the others
    return { exited: true, ...r };
  }

  private remove(p: ExecProcess): void {
    const i = this.entries.indexOf(p);
    if (i >= 0) this.entries.splice(i, 1);
  }
}
