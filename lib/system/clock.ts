// The system clock and the hardware clock (RTC): set the one from a time and copy it to the
// other with hwclock(8), or set the system clock from the RTC, as qemu-ga 7.2's guest-set-time.
import * as fs from 'fs';
import { errorAbout, SystemError } from '../errors';
import { native } from '../native';
import { ProgramFailedError } from './power';
import { runOrExit1, systemPath, type SystemOptions } from './programs';

export const HWCLOCK_PROGRAM = '/sbin/hwclock';

export interface ClockOptions extends SystemOptions {
  /**
   * settimeofday(2). Default: the addon's; under a root other than '/' (a fixture), writing
   * "SECONDS MICROSECONDS\n" to ROOT/clock, so that a rooted system never sets this one's clock.
   */
  setTimeOfDay?: (seconds: number, microseconds: number) => void;
}

export const CLOCK_FILE = '/clock';

function defaultSetTimeOfDay(opts: SystemOptions): (seconds: number, microseconds: number) => void {
  if ((opts.root ?? '/') === '/') return native.setTimeOfDay;
  return (seconds, microseconds) => {
    if (microseconds < 0 || microseconds > 999_999) throw new SystemError(EINVAL, 'settimeofday');
    try {
      fs.writeFileSync(systemPath(opts, CLOCK_FILE), `${seconds} ${microseconds}\n`);
    } catch (e) {
      throw errorAbout(e, 'settimeofday', '');
    }
  };
}

const EINVAL = 22;

/** Why a time was refused or could not be set; `message` in qemu-ga's words. */
export class ClockError extends Error {
  constructor(
    message: string,
    readonly code: 'ENOTSUP' | 'EINVAL',
  ) {
    super(message);
    this.name = 'ClockError';
  }
}

const NS_PER_S = 1_000_000_000n;

/**
 * The timeval settimeofday gets for `ns` nanoseconds since 1970 (as C divides: toward zero, so
 * a time before 1970 has negative microseconds, which the kernel refuses).
 */
export function timeval(ns: bigint): { seconds: number; microseconds: number } {
  return { seconds: Number(ns / NS_PER_S), microseconds: Number((ns % NS_PER_S) / 1000n) };
}

/**
 * Sets the system clock to `ns` nanoseconds since 1970 (UTC), then the RTC from it (`hwclock
 * -w`); without `ns`, sets the system clock from the RTC (`hwclock -s`). A time whose year, in
 * local time, is before 1970 or from 2070 on is refused (ClockError EINVAL), as it is when
 * /sbin/hwclock is not there to run (ClockError ENOTSUP). Rejects with the SystemError of
 * settimeofday (EPERM without CAP_SYS_TIME), or a ProgramFailedError when hwclock fails.
 */
export async function setTime(ns: bigint | number | undefined, opts: ClockOptions = {}): Promise<void> {
  const hwclock = systemPath(opts, HWCLOCK_PROGRAM);
  try {
    fs.accessSync(hwclock, fs.constants.X_OK);
  } catch {
    throw new ClockError('this feature or command is not currently supported', 'ENOTSUP');
  }
  if (ns !== undefined) {
    const tv = timeval(BigInt(ns));
    const year = new Date(tv.seconds * 1000).getFullYear(); // localtime's, as g_date_set_time_t's
    if (!(year >= 1970 && year < 2070)) throw new ClockError('Invalid time', 'EINVAL');
    (opts.setTimeOfDay ?? defaultSetTimeOfDay(opts))(tv.seconds, tv.microseconds);
  }
  const exit = await runOrExit1(hwclock, 'hwclock', [ns !== undefined ? '-w' : '-s']);
  if (exit.signal !== null) throw new ProgramFailedError('child process has terminated abnormally', hwclock, exit);
  if (exit.code !== 0) {
    throw new ProgramFailedError('hwclock failed to set hardware clock to system time', hwclock, exit);
  }
}
