// Freezer: holds a freeze of several filesystems, all or nothing, with an auto-thaw timer and a
// release for the exit path. It is what fs-freeze / fs-unfreeze drive, and usable on its own.
//
// Rules (docs/PROTOCOL.md "Filesystem freeze"):
// - Freeze in the order given. EOPNOTSUPP (cannot freeze) is skipped; EBUSY (already frozen,
//   e.g. by an agent that died while frozen, or the same filesystem twice) is tolerated and held
//   like the others, so the next unfreeze thaws it. Any other error rolls back: what this call
//   froze is thawed in reverse order and the error is thrown; the freeze is not held. So does
//   a freeze that holds nothing (an empty list, or every mount point skipped).
// - Thaw in reverse order, every mount point even after a failure. EINVAL (not frozen) is fine;
//   ENOENT/ENOTDIR (the mount point is gone) is logged and dropped. Any other failure keeps that
//   mount point held, `frozen` stays true, and the first error is thrown: the state tells the
//   truth and a retry of unfreeze tries again.
// - Operations run one after another. An unfreeze or release arriving during a freeze cancels
//   it (the freeze rolls back after its current mount point and fails).
// - With a hook (qemu-ga's fsfreeze hook, hook.ts): `hook freeze` runs before the first ioctl
//   and its failure fails the freeze; `hook thaw` runs once everything is thawed (by unfreeze,
//   the auto-thaw, release, or the rollback of a freeze whose hook had run) and its failure is
//   the unfreeze's error, the filesystems staying thawed. A cancel kills a freeze hook running.
// - Nothing here touches the disk: thaws go through the addon's own threads (native/freeze.cc),
//   the timer is a plain event-loop timer, and when the log would land on a filesystem being
//   frozen (logBlocksOn), log lines wait in memory until the thaw.
// - Mount points are strings or, for names that are not UTF-8, Buffers of their bytes (a mount
//   table read as bytes selects those): one is the same as another with the same bytes, and log
//   lines name them as mountPathText does.
import { constants } from 'os';
import { AgentError, errnoOf, SystemError, toSystemError } from '../errors';
import { holdingLogger, type HoldingLogger, type Logger } from '../log';
import { mountPathKey, mountPathText, type MountPath } from '../mounts';
import { MAX_TIMEOUT_SECONDS } from '../timers';
import { FsfreezeHookError, runFsfreezeHook, type FsfreezeHook, type FsfreezeHookAction } from './hook';
import { freeze, thaw } from './ioctl';

export interface FreezeOps {
  freeze(mountpoint: MountPath): Promise<unknown>;
  thaw(mountpoint: MountPath): Promise<unknown>;
}

export interface FreezerOptions {
  /** The ioctls (default: the addon's freeze/thaw); tests inject fakes. */
  ops?: FreezeOps;
  log?: Logger;
  /** Called with the new value whenever `frozen` changes. */
  onChange?: (frozen: boolean) => void;
  /** Delay before an auto-thaw that failed is tried again, in ms (default 5000). */
  retryMs?: number;
  /**
   * True when writing to `log` would block while these mount points are frozen (stderr is a
   * file on one of them: Node writes files synchronously, so the event loop itself would hang
   * and nothing could thaw). Log lines are then held back until everything is thawed.
   */
  logBlocksOn?: (mountpoints: readonly MountPath[]) => boolean;
  /**
   * qemu-ga's fsfreeze hook: the path of an executable run with "freeze" before a freeze and
   * "thaw" after a thaw (runFsfreezeHook), or a function doing the same (tests).
   */
  hook?: string | FsfreezeHook;
}

export interface FreezeOptions {
  /** Thaw by itself after this many seconds with no unfreeze; 0 = never (default). */
  timeoutSeconds?: number;
  /**
   * A freeze that holds nothing (an empty list, every mount point EOPNOTSUPP) resolves with
   * nothing held and the freezer unfrozen, instead of failing (qemu-ga answers 0 filesystems).
   */
  allowNothing?: boolean;
}

/** What a freeze did. */
export interface FreezeOutcome {
  /** Every mount point now held frozen, in freeze order. */
  held: MountPath[];
  /** Those this call froze (FIFREEZE succeeded): qemu-ga's count. The rest were frozen already (EBUSY). */
  frozen: MountPath[];
  /** Those that cannot be frozen (EOPNOTSUPP), skipped. */
  skipped: MountPath[];
}

const { EBUSY, EINVAL, ENOENT, ENOTDIR, EOPNOTSUPP } = constants.errno;

interface Held {
  mountpoint: MountPath;
  /** Frozen by this freeze (false: it was already frozen, EBUSY). */
  ours: boolean;
  /** From unfreeze()'s fallback list: not known to be frozen (nothing was held). */
  fallback?: boolean;
}

export class Freezer {
  private held: Held[] = [];
  private active = false;
  private freezing = false;
  private cancelled = false;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** Kills the freeze hook of the freeze in progress (a cancel). */
  private hookAbort: AbortController | undefined;
  private readonly ops: FreezeOps;
  private readonly log: HoldingLogger;
  private readonly hook: FsfreezeHook | undefined;

  constructor(private readonly opts: FreezerOptions = {}) {
    this.ops = opts.ops ?? { freeze, thaw };
    // The agent passes its own HoldingLogger, so holding it holds every line of the agent.
    this.log = holdingLogger(opts.log);
    const hook = opts.hook;
    this.hook = typeof hook === 'string' ? (action, signal) => runFsfreezeHook(hook, action, signal) : hook;
  }

  /** True from the start of a freeze until everything it holds is thawed. */
  get frozen(): boolean {
    return this.active;
  }

  /** The mount points held frozen, in freeze order. */
  get mountpoints(): MountPath[] {
    return this.held.map((h) => h.mountpoint);
  }

  /**
   * Freezes `mountpoints` in order, all or nothing; resolves to the ones now held frozen. With
   * `timeoutSeconds` > 0 everything is thawed by itself if unfreeze() has not come by then.
   * `frozen` turns true synchronously, before the first ioctl (and before the hook).
   */
  async freeze(mountpoints: readonly MountPath[], timeoutSeconds = 0): Promise<MountPath[]> {
    return (await this.freezeList(mountpoints, { timeoutSeconds })).held;
  }

  /** freeze() with options, resolving to what each mount point came to. */
  freezeList(mountpoints: readonly MountPath[], options: FreezeOptions = {}): Promise<FreezeOutcome> {
    const timeoutSeconds = options.timeoutSeconds ?? 0;
    if (!(timeoutSeconds >= 0 && timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
      return Promise.reject(
        new RangeError(`timeout must be between 0 and ${MAX_TIMEOUT_SECONDS} seconds, got ${timeoutSeconds}`),
      );
    }
    if (this.active) return Promise.reject(new AgentError('Filesystems are already frozen: fs-unfreeze first'));
    if (this.opts.logBlocksOn?.(mountpoints)) this.log.hold();
    this.setActive(true);
    this.freezing = true;
    this.cancelled = false;
    const abort = (this.hookAbort = new AbortController());
    return this.serial(async () => {
      let hookRan = false;
      let outcome: FreezeOutcome;
      try {
        if (this.hook) {
          if (this.cancelled) throw cancelledError();
          await this.hook('freeze', abort.signal).catch((e) => {
            throw this.cancelled ? cancelledError() : e;
          });
          hookRan = true;
        }
        outcome = await this.freezeEach(once(mountpoints), options.allowNothing === true);
      } catch (e) {
        this.freezing = false;
        this.held = this.held.filter((h) => h.ours); // leave what was frozen before as we found it
        if (this.held.length > 0) this.log.warn(`freeze failed (${(e as Error).message}); thawing ${this.describe()}`);
        let thawed = true;
        try {
          await this.thawHeld();
        } catch (rollback) {
          thawed = false;
          this.log.error(`rollback: ${(rollback as Error).message}`);
        }
        if (hookRan && thawed) await this.runHook('thaw').catch((h) => this.log.error((h as Error).message));
        throw e;
      } finally {
        this.hookAbort = undefined;
      }
      this.freezing = false;
      if (this.held.length === 0) {
        // allowNothing: nothing was frozen, so nothing stays frozen, and the hook hears "thaw".
        this.setActive(false);
        this.log.info(`froze nothing${outcome.skipped.length ? ` (cannot be frozen: ${names(outcome.skipped)})` : ''}`);
        if (hookRan) await this.runHook('thaw').catch((h) => this.log.error((h as Error).message));
        return outcome;
      }
      this.armTimer(timeoutSeconds);
      this.log.info(
        `frozen: ${this.describe()}${timeoutSeconds > 0 ? `; thawing by itself in ${timeoutSeconds} s` : ''}`,
      );
      return outcome;
    });
  }

  /**
   * Thaws everything held, in reverse order. When nothing is held, thaws `fallback` instead (in
   * reverse order, EINVAL tolerated): how a host recovers filesystems a previous agent process
   * left frozen. Cancels a freeze in progress. Resolves to the mount points it thawed (FITHAW
   * succeeded: qemu-ga's count), once the hook, if any, has run with "thaw".
   */
  unfreeze(fallback: readonly MountPath[] = []): Promise<MountPath[]> {
    this.clearTimer();
    this.cancelFreeze();
    return this.serial(async () => {
      this.clearTimer(); // a freeze queued ahead of us may have armed it
      if (!this.active && this.held.length === 0)
        this.held = fallback.map((mountpoint) => ({ mountpoint, ours: false, fallback: true }));
      const thawed = await this.thawHeld();
      await this.runHook('thaw');
      return thawed;
    });
  }

  /**
   * For the exit path: cancels a freeze in progress and thaws everything held at once, without
   * waiting behind a queued operation (then again once the queue settles, at most `waitMs`).
   */
  async release(waitMs = 5_000): Promise<void> {
    this.clearTimer();
    this.cancelFreeze();
    if (!this.active) return;
    this.log.info(`exiting: thawing ${this.describe()}`);
    await this.thawHeld().catch((e) => this.log.error(`exit: ${(e as Error).message}`));
    const within = (p: Promise<unknown>) => {
      let t: NodeJS.Timeout | undefined;
      return Promise.race([p, new Promise((r) => (t = setTimeout(r, waitMs)))]).finally(() => clearTimeout(t));
    };
    await within(this.queue);
    const thawed = await this.thawHeld().then(
      () => true,
      (e) => {
        this.log.error(`exit: ${(e as Error).message}`);
        return false;
      },
    );
    // As qemu-ga's exit thaws through guest-fsfreeze-thaw: the hook hears "thaw" too, for as
    // long as the exit may wait (it runs in a session of its own and may outlive the agent).
    if (thawed) await within(this.runHook('thaw').catch((e) => this.log.error(`exit: ${(e as Error).message}`)));
  }

  /** A freeze in progress is to stop: after its current mount point, or now if its hook runs. */
  private cancelFreeze(): void {
    if (!this.freezing) return;
    this.cancelled = true;
    this.hookAbort?.abort();
  }

  /** Runs the hook (when there is one) for `action`, logged. */
  private async runHook(action: FsfreezeHookAction): Promise<void> {
    if (!this.hook) return;
    this.log.info(`running the fsfreeze hook: ${action}`);
    await this.hook(action);
  }

  private async freezeEach(mountpoints: MountPath[], allowNothing: boolean): Promise<FreezeOutcome> {
    const unsupported: MountPath[] = [];
    const frozen: MountPath[] = [];
    for (const mountpoint of mountpoints) {
      if (this.cancelled) throw cancelledError();
      try {
        await this.ops.freeze(mountpoint);
        this.held.push({ mountpoint, ours: true });
        frozen.push(mountpoint);
      } catch (e) {
        const err = toSystemError(e);
        const errno = errnoOf(err);
        if (errno === EBUSY) {
          this.log.info(`${mountPathText(mountpoint)} is already frozen; holding it with the others`);
          this.held.push({ mountpoint, ours: false });
        } else if (errno === EOPNOTSUPP) {
          this.log.info(`${mountPathText(mountpoint)} cannot be frozen (EOPNOTSUPP); skipped`);
          unsupported.push(mountpoint);
        } else {
          throw err;
        }
      }
    }
    if (this.cancelled) throw cancelledError();
    // A host told "frozen" would snapshot a guest whose writers never stopped.
    if (this.held.length === 0 && !allowNothing) {
      throw new AgentError(
        mountpoints.length === 0
          ? 'Nothing to freeze: no mount points given'
          : `Nothing was frozen: ${names(unsupported)} cannot be frozen (EOPNOTSUPP: the filesystem type does not support freezing)`,
      );
    }
    return { held: this.mountpoints, frozen, skipped: unsupported };
  }

  /**
   * Thaws every held mount point in reverse order; keeps the ones that failed; updates `frozen`.
   * Resolves to those a FITHAW thawed.
   */
  private async thawHeld(): Promise<MountPath[]> {
    const failed = new Set<Held>();
    const thawed: MountPath[] = [];
    let first: unknown;
    for (const h of [...this.held].reverse()) {
      try {
        await this.ops.thaw(h.mountpoint);
        thawed.push(h.mountpoint);
      } catch (e) {
        const err = toSystemError(e);
        const errno = errnoOf(err);
        if (errno === EINVAL) continue; // not frozen (any more)
        if (errno === ENOENT || errno === ENOTDIR) {
          this.log.warn(`${mountPathText(h.mountpoint)} is gone; nothing to thaw there`);
          continue;
        }
        // A fallback mount point that cannot be opened (a FUSE mount whose daemon died) was not
        // frozen by anyone here: skipped, as qemu-ga skips it, not held as frozen for ever.
        if (h.fallback && err instanceof SystemError && err.syscall === 'open') {
          this.log.warn(`${mountPathText(h.mountpoint)}: ${(err as Error).message}; not thawed`);
          continue;
        }
        this.log.error(`thaw ${mountPathText(h.mountpoint)}: ${(err as Error).message}`);
        failed.add(h);
        first ??= err;
      }
    }
    this.held = this.held.filter((h) => failed.has(h));
    if (this.held.length === 0) {
      if (!this.freezing) this.setActive(false);
    } else this.setActive(true); // a fallback thaw (nothing held before) left one frozen: say so

    if (first !== undefined) {
      // Some filesystem is still frozen (a failed rollback, unfreeze or auto-thaw): keep trying,
      // since a host that got an error may never send fs-unfreeze.
      if (!this.timer) this.armRetry();
      throw first;
    }
    return thawed;
  }

  private armRetry(): void {
    const ms = this.opts.retryMs ?? 5000;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.log.warn(`still frozen after a failed thaw: trying ${this.describe()} again`);
      this.unfreeze().then(
        () => this.log.info('retry: every filesystem thawed'),
        (e) =>
          e instanceof FsfreezeHookError
            ? this.log.error(`retry: every filesystem thawed, but ${e.message}`)
            : this.log.error(`retry failed (${(e as Error).message}); trying again in ${ms / 1000} s`),
      );
    }, ms);
    this.timer.unref(); // the agent's transport keeps the process alive; a library user's need not
  }

  private armTimer(seconds: number): void {
    this.clearTimer();
    if (seconds <= 0) return;
    this.timer = setTimeout(() => this.autoThaw(seconds), seconds * 1000);
  }

  private autoThaw(seconds: number): void {
    this.timer = undefined;
    this.log.warn(`no fs-unfreeze within ${seconds} s: thawing ${this.describe()} by itself`);
    this.unfreeze().then(
      () => this.log.info('auto-thaw: every filesystem thawed'),
      (e) =>
        e instanceof FsfreezeHookError
          ? this.log.error(`auto-thaw: every filesystem thawed, but ${e.message}`)
          : this.log.error(
              `auto-thaw failed (${(e as Error).message}); trying again in ${(this.opts.retryMs ?? 5000) / 1000} s`,
            ),
    );
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private setActive(v: boolean): void {
    if (this.active === v) return;
    this.active = v;
    if (!v) this.log.release();
    this.opts.onChange?.(v);
  }

  private describe(): string {
    return this.held.length ? names(this.mountpoints) : '(nothing)';
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => {});
    return p;
  }
}

/** Mount points as log lines and errors name them. */
function names(mountpoints: readonly MountPath[]): string {
  return mountpoints.map(mountPathText).join(', ');
}

/** The list without repeats, in order: a string and a Buffer of the same bytes are one mount point. */
function once(mountpoints: readonly MountPath[]): MountPath[] {
  const seen = new Set<string>();
  return mountpoints.filter((m) => {
    const key = mountPathKey(m);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function cancelledError(): AgentError {
  return new AgentError('fs-freeze cancelled: fs-unfreeze or shutdown arrived while freezing');
}
