// Power: shut down, halt or reboot through /sbin/shutdown, and suspend (to disk, to RAM, or
// both) through systemd, pm-utils or /sys/power/state, in the order qemu-ga 7.2 tries them.
import * as fs from 'fs';
import { SystemError } from '../errors';
import {
  findProgram,
  isExecFailure,
  runOrExit1,
  runProgram,
  strerror,
  systemPath,
  type ProgramExit,
  type SystemOptions,
} from './programs';

export type ShutdownMode = 'halt' | 'powerdown' | 'reboot';

export const SHUTDOWN_PROGRAM = '/sbin/shutdown';
/** The message shutdown(8) broadcasts to logged-in users. */
export const SHUTDOWN_MESSAGE = 'hypervisor initiated shutdown';

const SHUTDOWN_FLAG: Record<ShutdownMode, string> = { halt: '-H', powerdown: '-P', reboot: '-r' };

/** A program that ran and failed, or was killed; `message` in qemu-ga's words. */
export class ProgramFailedError extends Error {
  constructor(
    message: string,
    readonly program: string,
    readonly exit: ProgramExit,
  ) {
    super(message);
    this.name = 'ProgramFailedError';
  }
}

/**
 * Asks the system to go down now: `/sbin/shutdown -h -P|-H|-r +0 "hypervisor initiated
 * shutdown"`, resolving once shutdown(8) has accepted it. Rejects with a ProgramFailedError when
 * it exits non-zero or is killed (a missing /sbin/shutdown counts as exiting 1, as qemu-ga's
 * child does), a SystemError (syscall "spawn") when no process could be started.
 */
export async function shutdown(mode: ShutdownMode = 'powerdown', opts: SystemOptions = {}): Promise<void> {
  const file = systemPath(opts, SHUTDOWN_PROGRAM);
  const exit = await runOrExit1(file, 'shutdown', ['-h', SHUTDOWN_FLAG[mode], '+0', SHUTDOWN_MESSAGE]);
  if (exit.signal !== null) throw new ProgramFailedError('child process has terminated abnormally', file, exit);
  if (exit.code !== 0) throw new ProgramFailedError('child process has failed to shutdown', file, exit);
}

// ---- Suspend -------------------------------------------------------------------------------------

export type SuspendMode = 'disk' | 'ram' | 'hybrid';

export const POWER_STATE_FILE = '/sys/power/state';

const SYSTEMD_UNIT: Record<SuspendMode, string> = {
  disk: 'systemd-hibernate',
  ram: 'systemd-suspend',
  hybrid: 'systemd-hybrid-sleep',
};
const SYSTEMCTL_VERB: Record<SuspendMode, string> = { disk: 'hibernate', ram: 'suspend', hybrid: 'hybrid-sleep' };
const PM_IS_SUPPORTED_FLAG: Record<SuspendMode, string> = {
  disk: '--hibernate',
  ram: '--suspend',
  hybrid: '--suspend-hybrid',
};
const PM_PROGRAM: Record<SuspendMode, string> = {
  disk: 'pm-hibernate',
  ram: 'pm-suspend',
  hybrid: 'pm-suspend-hybrid',
};
/** What /sys/power/state takes for a mode; hybrid has no word there. */
const STATE_WORD: Record<SuspendMode, string | undefined> = { disk: 'disk', ram: 'mem', hybrid: undefined };

/** A suspend that failed or that the system does not offer; `message` in qemu-ga's words. */
export class SuspendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SuspendError';
  }
}

/**
 * A helper run by name from the search path, as qemu-ga's g_spawn_sync runs it: its exit status
 * (0 when a signal killed it: WEXITSTATUS), -1 when it is nowhere in the path; throws a
 * SuspendError when it is there but cannot be started.
 */
async function runHelper(argv: string[], opts: SystemOptions): Promise<number> {
  let file: string | undefined;
  try {
    file = findProgram(argv[0], opts);
    if (file === undefined) return -1;
    const exit = await runProgram(file, argv[0], argv.slice(1));
    return exit.code ?? 0;
  } catch (e) {
    if (!(e instanceof SystemError)) throw e;
    const what = isExecFailure(e) ? `Failed to execute child process \u201C${argv[0]}\u201D` : 'Failed to fork';
    throw new SuspendError(`failed to create child process, error '${what} (${strerror(e.errno)})'`);
  }
}

/** Does systemd offer the mode? `systemctl status UNIT` exits 1 to 3 (LSB) for a known unit. */
async function systemdSupports(mode: SuspendMode, opts: SystemOptions): Promise<boolean> {
  const status = await runHelper(['systemctl', 'status', SYSTEMD_UNIT[mode]], opts);
  return status > 0 && status < 4;
}

async function systemdSuspend(mode: SuspendMode, opts: SystemOptions): Promise<void> {
  const verb = SYSTEMCTL_VERB[mode];
  const status = await runHelper(['systemctl', verb], opts);
  if (status === 0) return;
  if (status === -1) throw new SuspendError(`the helper program 'systemctl ${verb}' was not found`);
  throw new SuspendError(`the helper program 'systemctl ${verb}' returned an unexpected exit status code (${status})`);
}

async function pmutilsSupports(mode: SuspendMode, opts: SystemOptions): Promise<boolean> {
  const status = await runHelper(['pm-is-supported', PM_IS_SUPPORTED_FLAG[mode]], opts);
  if (status === 0) return true;
  if (status === -1) return false;
  throw new SuspendError(`the helper program 'pm-is-supported' returned an unexpected exit status code (${status})`);
}

async function pmutilsSuspend(mode: SuspendMode, opts: SystemOptions): Promise<void> {
  const program = PM_PROGRAM[mode];
  const status = await runHelper([program], opts);
  if (status === 0) return;
  if (status === -1) throw new SuspendError(`the helper program '${program}' was not found`);
  throw new SuspendError(`the helper program '${program}' returned an unexpected exit status code (${status})`);
}

/** Does /sys/power/state list the mode's word (among its first 31 bytes, as qemu-ga reads it)? */
async function sysStateSupports(mode: SuspendMode, opts: SystemOptions): Promise<boolean> {
  const word = STATE_WORD[mode];
  if (word === undefined) throw new SuspendError('unknown guest suspend mode');
  let text: Buffer;
  try {
    const fh = await fs.promises.open(systemPath(opts, POWER_STATE_FILE), 'r');
    try {
      const buf = Buffer.alloc(31);
      const { bytesRead } = await fh.read(buf, 0, 31, null);
      text = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
  return text.includes(word);
}

async function sysStateSuspend(mode: SuspendMode, opts: SystemOptions): Promise<void> {
  const word = STATE_WORD[mode];
  if (word === undefined) throw new SuspendError('unknown guest suspend mode');
  try {
    // Returns once the system has resumed.
    await fs.promises.writeFile(systemPath(opts, POWER_STATE_FILE), word, { flag: 'w' });
  } catch {
    throw new SuspendError('child process has failed to suspend');
  }
}

/**
 * Suspends the system, trying what qemu-ga 7.2 tries in its order: systemd (`systemctl status
 * systemd-hibernate|-suspend|-hybrid-sleep`, then `systemctl hibernate|suspend|hybrid-sleep`),
 * pm-utils (`pm-is-supported --hibernate|...`, then `pm-hibernate|pm-suspend|pm-suspend-hybrid`),
 * then writing "disk" or "mem" to /sys/power/state. The first way that works ends it; resolves
 * when the suspend was started (systemctl returns at once; the sysfs write only after resume).
 * Rejects with a SuspendError: "the requested suspend mode is not supported by the guest" when
 * no way offers the mode, else only for a failure of the last way (the sysfs write, or
 * "unknown guest suspend mode" for hybrid, which has none): as in qemu-ga, a way offered that
 * failed, with none after it, resolves.
 */
export async function suspend(mode: SuspendMode, opts: SystemOptions = {}): Promise<void> {
  let supported = false;
  let last: unknown;
  const attempt = async (supports: () => Promise<boolean>, run: () => Promise<void>): Promise<boolean> => {
    last = undefined;
    try {
      if (!(await supports())) return false;
      supported = true;
      await run();
      return true;
    } catch (e) {
      if (!(e instanceof SuspendError)) throw e;
      last = e;
      return false;
    }
  };
  if (
    await attempt(
      () => systemdSupports(mode, opts),
      () => systemdSuspend(mode, opts),
    )
  )
    return;
  if (
    await attempt(
      () => pmutilsSupports(mode, opts),
      () => pmutilsSuspend(mode, opts),
    )
  )
    return;
  if (
    await attempt(
      () => sysStateSupports(mode, opts),
      () => sysStateSuspend(mode, opts),
    )
  )
    return;
  if (!supported) throw new SuspendError('the requested suspend mode is not supported by the guest');
  if (last !== undefined) throw last;
}
