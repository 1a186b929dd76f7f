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
  /**
   * Bytes of input written to programs and not yet read by them, for all processes together
   * (default maxHeldOutput). A start whose input would pass it is refused unless none is held.
   */
  maxHeldInput?: number;
}

/** guest-exec when maxProcesses are running (or starting) and none has finished. */
export class ExecLimitError extends Error {
  readonly code = 'EAGAIN';
  constructor(
    readonly limit: number,
    message = `Too many processes running (${limit}): wait for one to finish`,
  ) {
    super(message);
    this.name = 'ExecLimitError';
  }
}

export type ExecStatus = { exited: false } | ({ exited: true } & ExecResult);

export class ExecTable {
  /** Oldest first, as qemu-ga searches its list (a pid the system reused is found oldest first). */
  private readonly entries: ExecProcess[] = [];
  private starting = 0;
  readonly budget: OutputBudget;
  /** Input not yet read by the programs it was given to (maxHeldInput). */
  readonly inputBudget: OutputBudget;

  constructor(
    readonly limits: ExecLimits,
    private readonly onForget: (pid: number) => void = () => {},
  ) {
    this.budget = new OutputBudget(limits.maxHeldOutput);
    this.inputBudget = new OutputBudget(limits.maxHeldInput ?? limits.maxHeldOutput);
  }

  /** Processes tracked (running or uncollected), and being started. */
  get size(): number {
    return this.entries.length + this.starting;
  }

  /**
   * Starts a program with the table's output caps. At the process limit, the oldest finished
   * process nobody collected is forgotten to make room (onForget); when none has finished, this
   * throws ExecLimitError; so it does when its input would take the input not yet read past
   * maxHeldInput (programs that never read their stdin would otherwise hold any amount).
   * exec()'s errors otherwise.
   */
  async start(
    path: ExecString,
    opts: Omit<ExecOptions, 'maxOutput' | 'budget' | 'inputBudget'> = {},
  ): Promise<ExecProcess> {
    const input = opts.input?.length ?? 0;
    const held = this.inputBudget;
    if (input > 0 && held.held > 0 && input > held.available) {
      const mib = held.limit / 1048576;
      const size = mib >= 1 ? `${Math.round(mib)} MiB` : `${Math.round(held.limit / 1024)} KiB`;
      throw new ExecLimitError(
        held.limit,
        `Too much input-data not yet read by the programs it was given to (${size}): wait for them to read it or end`,
      );
    }
    if (this.size >= this.limits.maxProcesses) {
      const old = this.entries.find((e) => e.finished);
      if (!old) throw new ExecLimitError(this.limits.maxProcesses);
      this.remove(old);
      old.release();
      this.onForget(old.pid);
    }
    this.starting++;
    try {
      const p = await exec(path, {
        ...opts,
        maxOutput: this.limits.maxOutput,
        budget: this.budget,
        inputBudget: this.inputBudget,
      });
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
