// qemu-ga's fsfreeze hook (its -F option): an executable run with "freeze" before filesystems are
// frozen and with "thaw" after they are thawed, so applications can flush and pause around a
// snapshot (the stock /etc/qemu/fsfreeze-hook runs every script in /etc/qemu/fsfreeze-hook.d).
// As in qemu-ga (qga/commands-posix.c, execute_fsfreeze_hook): checked with access(X_OK), run in
// a session of its own with stdin, stdout and stderr on /dev/null, and any exit but 0 is a failure
// with qemu-ga's message.
import { spawn } from 'child_process';
import * as fs from 'fs';
import { AbortError, errnoMessage, errnoOf } from '../errors';

/** The path qemu-ga runs when -F is given without one. */
export const DEFAULT_FSFREEZE_HOOK = '/etc/qemu/fsfreeze-hook';

export type FsfreezeHookAction = 'freeze' | 'thaw';

/** Runs the hook for an action; rejects with an FsfreezeHookError, or an AbortError when `signal` ends it. */
export type FsfreezeHook = (action: FsfreezeHookAction, signal?: AbortSignal) => Promise<void>;

/** The hook could not run or did not succeed; the message is qemu-ga's. */
export class FsfreezeHookError extends Error {
  constructor(
    message: string,
    readonly action: FsfreezeHookAction,
  ) {
    super(message);
    this.name = 'FsfreezeHookError';
  }
}

/** strerror() as C prints it, capitalised (qemu-ga's error_setg_errno). */
function strerror(e: unknown): string {
  const errno = errnoOf(e);
  const m = errno === undefined ? String((e as Error).message ?? e) : errnoMessage(errno);
  return m.charAt(0).toUpperCase() + m.slice(1);
}

/**
 * Runs `path action`. Resolves when it exits 0. An aborted `signal` kills its process group
 * (SIGKILL: it is in a session of its own, and whatever it started goes with it).
 */
export function runFsfreezeHook(path: string, action: FsfreezeHookAction, signal?: AbortSignal): Promise<void> {
  try {
    // Synchronous on purpose: never queued on libuv's pool, which writers blocked on a frozen
    // filesystem may fill (a thaw hook runs only after everything is thawed, but a pool stuck
    // behind another freeze holder's writers would still be stuck).
    fs.accessSync(path, fs.constants.X_OK);
  } catch (e) {
    return Promise.reject(new FsfreezeHookError(`can't access fsfreeze hook '${path}': ${strerror(e)}`, action));
  }
  if (signal?.aborted) return Promise.reject(new AbortError(signal));
  return new Promise((resolve, reject) => {
    const child = spawn(path, [action], { stdio: 'ignore', detached: true });
    const onAbort = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(signal?.aborted ? new AbortError(signal) : err);
      else resolve();
    };
    // exec failed (not an executable format, say): qemu-ga's child exits with EXIT_FAILURE then.
    child.once('error', () => settle(new FsfreezeHookError('fsfreeze hook has failed with status 1', action)));
    child.once('close', (code, sig) => {
      if (sig !== null) settle(new FsfreezeHookError('fsfreeze hook has terminated abnormally', action));
      else if (code !== 0) settle(new FsfreezeHookError(`fsfreeze hook has failed with status ${code}`, action));
      else settle(signal?.aborted ? new AbortError(signal) : undefined);
    });
  });
}
