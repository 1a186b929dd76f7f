// Users as the C library knows them (getpwnam_r: /etc/passwd, LDAP, sssd...).
import { errorAbout } from '../errors';
import { native } from '../native';

export interface UserEntry {
  name: string;
  uid: number;
  gid: number;
  /** The home directory. */
  dir: string;
  shell: string;
}

/** There is no user of that name. */
export class UnknownUserError extends Error {
  readonly code = 'ENOENT';
  constructor(readonly username: string) {
    super(`no such user '${username}'`);
    this.name = 'UnknownUserError';
  }
}

/** A name as C sees it: up to its first NUL. */
export function cString(s: string): string {
  const nul = s.indexOf('\0');
  return nul < 0 ? s : s.slice(0, nul);
}

/**
 * The user named `name` (up to a NUL, as C reads it). Throws an UnknownUserError when there is
 * none, a SystemError (syscall getpwnam_r) when the lookup itself failed.
 */
export async function lookUpUser(name: string): Promise<UserEntry> {
  const n = cString(name);
  let entry;
  try {
    entry = await native.getpwnam(n);
  } catch (e) {
    throw errorAbout(e, 'getpwnam_r', n);
  }
  if (entry === null) throw new UnknownUserError(n);
  return { name: entry.name, uid: entry.uid, gid: entry.gid, dir: entry.dir, shell: entry.shell };
}
