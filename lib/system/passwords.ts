// A user's password, set with chpasswd(8) as qemu-ga 7.2's guest-set-user-password sets it:
// "USER:PASSWORD\n" on its standard input, `-e` when the password is already crypt()ed.
import type { SystemError } from '../errors';
import { ProgramFailedError } from './power';
import { runOrExit1, strerror, whichProgram, type SystemOptions } from './programs';

/** A password that cannot be set: bad characters, or no chpasswd; `message` in qemu-ga's words. */
export class PasswordError extends Error {
  constructor(
    message: string,
    readonly code: 'EINVAL' | 'ENOENT' | 'EPIPE',
    override readonly cause?: SystemError,
  ) {
    super(message);
    this.name = 'PasswordError';
  }
}

/** The bytes of a C string: up to the first NUL. */
function cBytes(b: Buffer): Buffer {
  const nul = b.indexOf(0);
  return nul < 0 ? b : b.subarray(0, nul);
}

/**
 * Sets `username`'s password to `password` through chpasswd found in the search path; strings
 * are taken as UTF-8; `crypted`: it is a crypt(3) hash (`chpasswd -e`). The password ends at a
 * NUL, as a C string does. A password with a newline, or a user name with a newline, a colon or
 * a NUL, is refused (PasswordError EINVAL), as is a system without chpasswd (ENOENT). chpasswd's
 * refusal (no such user, say) is a ProgramFailedError. Rejects with a SystemError (syscall
 * "spawn") when no process could be started.
 */
export async function setUserPassword(
  username: string | Buffer,
  password: string | Buffer,
  crypted: boolean,
  opts: SystemOptions = {},
): Promise<void> {
  const pass = cBytes(typeof password === 'string' ? Buffer.from(password, 'utf8') : password);
  const user = typeof username === 'string' ? Buffer.from(username, 'utf8') : username;
  if (pass.includes(0x0a)) throw new PasswordError('forbidden characters in raw password', 'EINVAL');
  if (user.includes(0x0a) || user.includes(0x3a) || user.includes(0)) {
    throw new PasswordError('forbidden characters in username', 'EINVAL');
  }
  const chpasswd = whichProgram('chpasswd', opts);
  if (chpasswd === undefined) throw new PasswordError("cannot find 'passwd' program in PATH", 'ENOENT');
  const line = Buffer.concat([user, Buffer.from(':'), pass, Buffer.from('\n')]);
  const exit = await runOrExit1(chpasswd, 'chpasswd', crypted ? ['-e'] : [], line);
  if (exit.inputError) {
    throw new PasswordError(
      `cannot write new account password: ${strerror(exit.inputError.errno)}`,
      'EPIPE',
      exit.inputError,
    );
  }
  if (exit.signal !== null) throw new ProgramFailedError('child process has terminated abnormally', chpasswd, exit);
  if (exit.code !== 0) throw new ProgramFailedError('child process has failed to set user password', chpasswd, exit);
}
