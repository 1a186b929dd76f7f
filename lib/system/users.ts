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

/**
 * The user named `name`. Throws an UnknownUserError when there is none (a name with a NUL names
 * no one), a SystemError (syscall getpwnam_r) when the lookup itself failed.
 */
export async function lookUpUser(name: string): Promise<UserEntry> {
  if (name.includes('\0')) throw new UnknownUserError(name);
  let entry;
  try {
    entry = await native.getpwnam(name);
  } catch (e) {
    throw errorAbout(e, 'getpwnam_r', name);
  }
  if (entry === null) throw new UnknownUserError(name);
  return { name: entry.name, uid: entry.uid, gid: entry.gid, dir: entry.dir, shell: entry.shell };
}
