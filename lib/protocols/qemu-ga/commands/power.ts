// guest-shutdown, guest-set-time, guest-suspend-disk, guest-suspend-ram, guest-suspend-hybrid:
// lib/system's power and clock actions, in qemu-ga 7.2's names, shapes and messages.
import type { Context } from '../../../context';
import { SystemError, toSystemError } from '../../../errors';
import { ClockError, setTime } from '../../../system/clock';
import { ProgramFailedError, shutdown, suspend, SuspendError, type ShutdownMode } from '../../../system/power';
import { strerror, type SystemOptions } from '../../../system/programs';
import { defineQgaCommand, QgaError } from '../schema';

export function systemOptions(ctx: Context): SystemOptions {
  return { root: ctx.config.systemRoot };
}

/**
 * An error of running a program as qemu-ga words it: the program's failure as it is, a process
 * that could not be created as "failed to create child process: <strerror>".
 */
export function childError(e: unknown): unknown {
  if (e instanceof ProgramFailedError) return new QgaError(e.message);
  const err = toSystemError(e);
  if (err instanceof SystemError && err.syscall === 'spawn') {
    return new QgaError(`failed to create child process: ${strerror(err.errno)}`);
  }
  return e;
}

const SHUTDOWN_MODES: readonly string[] = ['halt', 'powerdown', 'reboot'];

function suspendCommand(name: string, mode: 'disk' | 'ram' | 'hybrid', doc: string) {
  return defineQgaCommand({
    name,
    doc,
    noSuccessResponse: true,
    args: {},
    handler: async (_a, ctx) => {
      ctx.log.info(`${name} called`);
      try {
        await suspend(mode, systemOptions(ctx));
      } catch (e) {
        if (e instanceof SuspendError) throw new QgaError(e.message);
        throw e;
      }
    },
  });
}

export const powerCommands = [
  defineQgaCommand({
    name: 'guest-shutdown',
    doc:
      'Runs `/sbin/shutdown -h -P|-H|-r +0 "hypervisor initiated shutdown"` for `mode` powerdown ' +
      '(default), halt or reboot. Answers nothing when shutdown(8) accepts, an error when it fails.',
    noSuccessResponse: true,
    args: { mode: { type: 'str', optional: true, doc: '"halt", "powerdown" (default) or "reboot".' } },
    handler: async (a, ctx) => {
      const mode = a.mode;
      ctx.log.info(`guest-shutdown called, mode: ${mode ?? '(null)'}`);
      if (mode !== undefined && !SHUTDOWN_MODES.includes(mode)) {
        throw new QgaError('mode is invalid (valid values are: halt|powerdown|reboot');
      }
      try {
        await shutdown((mode ?? 'powerdown') as ShutdownMode, systemOptions(ctx));
      } catch (e) {
        throw childError(e);
      }
    },
  }),
  defineQgaCommand({
    name: 'guest-set-time',
    doc:
      'Sets the system clock to `time` (nanoseconds since 1970, UTC) and the RTC from it (`hwclock ' +
      '-w`); without `time`, the system clock from the RTC (`hwclock -s`).',
    args: { time: { type: 'int', optional: true, doc: 'Nanoseconds since 1970-01-01 UTC.' } },
    handler: async (a, ctx) => {
      try {
        await setTime(a.time, systemOptions(ctx));
      } catch (e) {
        if (e instanceof ClockError) throw new QgaError(e.message);
        const err = toSystemError(e);
        if (err instanceof SystemError && err.syscall === 'settimeofday') {
          throw new QgaError(`Failed to set time to guest: ${strerror(err.errno)}`);
        }
        throw childError(e);
      }
      return {};
    },
  }),
  suspendCommand(
    'guest-suspend-disk',
    'disk',
    'Hibernates: systemd (`systemctl hibernate`), else pm-utils (`pm-hibernate`), else "disk" to ' +
      '/sys/power/state. Answers nothing once started; an error when no way works.',
  ),
  suspendCommand(
    'guest-suspend-ram',
    'ram',
    'Suspends to RAM: systemd (`systemctl suspend`), else pm-utils (`pm-suspend`), else "mem" to ' +
      '/sys/power/state. Answers nothing once started; an error when no way works.',
  ),
  suspendCommand(
    'guest-suspend-hybrid',
    'hybrid',
    'Saves to disk and suspends to RAM: systemd (`systemctl hybrid-sleep`), else pm-utils ' +
      '(`pm-suspend-hybrid`). Answers nothing once started; an error when no way works.',
  ),
];
