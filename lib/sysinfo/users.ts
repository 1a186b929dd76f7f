// Who is logged in, from utmp: each user once, with the earliest of their login times.
import { promises as fs } from 'fs';
import { DEFAULT_UTMP_PATH, parseUtmp, UtType, type UtmpRecord } from './utmp';

export interface LoginUser {
  user: string;
  /** Seconds since the epoch, with the microseconds as a fraction (1700000100.000005). */
  loginTime: number;
}

/** The USER_PROCESS records' users, in the order each first appears, with their earliest login. */
export function loginUsers(records: readonly UtmpRecord[]): LoginUser[] {
  const byName = new Map<string, LoginUser>();
  for (const r of records) {
    if (r.type !== UtType.USER_PROCESS) continue;
    const loginTime = r.time + r.usec / 1_000_000;
    const seen = byName.get(r.user);
    if (seen === undefined) byName.set(r.user, { user: r.user, loginTime });
    else if (loginTime < seen.loginTime) seen.loginTime = loginTime;
  }
  return [...byName.values()];
}

/**
 * The logged-in users of the utmp file at `path`; [] when there is none (systems without utmp).
 * Other failures (unreadable, a directory) reject.
 */
export async function readLoginUsers(path = DEFAULT_UTMP_PATH): Promise<LoginUser[]> {
  let data: Buffer;
  try {
    data = await fs.readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return loginUsers(parseUtmp(data));
}
