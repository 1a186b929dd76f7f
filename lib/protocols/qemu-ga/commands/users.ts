// guest-set-user-password, guest-ssh-get-authorized-keys, guest-ssh-add-authorized-keys,
// guest-ssh-remove-authorized-keys: lib/system's password and SSH key actions, in qemu-ga 7.2's
// names, shapes and messages.
import { SystemError, toSystemError } from '../../../errors';
import { PasswordError, setUserPassword } from '../../../system/passwords';
import { strerror } from '../../../system/programs';
import { addAuthorizedKeys, readAuthorizedKeys, removeAuthorizedKeys, SshKeysError } from '../../../system/ssh-keys';
import { UnknownUserError } from '../../../system/users';
import { qbase64Decode } from '../base64';
import { qemuBytes, qemuString } from '../json';
import { defineQgaCommand, QgaError } from '../schema';
import { childError, systemOptions } from './power';

/** qemu-ga's check of a key: not a comment, no newline. */
function checkKeys(keys: readonly string[]): void {
  for (const key of keys) {
    if (key.startsWith('#') || key.includes('\n')) throw new QgaError(`invalid OpenSSH public key: '${key}'`);
  }
}

/** A lookup or key file failure in qemu-ga's words. */
function keysError(e: unknown): unknown {
  if (e instanceof UnknownUserError) return new QgaError(`failed to lookup user '${e.username}': Success`);
  if (e instanceof SshKeysError) return new QgaError(e.message);
  const err = toSystemError(e);
  if (err instanceof SystemError && err.syscall === 'getpwnam_r') {
    return new QgaError(`failed to lookup user '${err.path ?? ''}': ${strerror(err.errno)}`);
  }
  return e;
}

export const userCommands = [
  defineQgaCommand({
    name: 'guest-set-user-password',
    doc: "Sets a user's password with chpasswd (`-e` when `crypted`), the password given in base64.",
    args: {
      username: { type: 'str', doc: 'The user.' },
      password: { type: 'str', doc: 'The password (a crypt(3) hash when `crypted`), base64.' },
      crypted: { type: 'bool', doc: 'The password is already crypt()ed.' },
    },
    handler: async (a, ctx) => {
      const password = qbase64Decode(a.password);
      if (password === null) throw new QgaError('Base64 data contains invalid characters');
      ctx.log.info(`guest-set-user-password called, username: ${a.username}`);
      try {
        await setUserPassword(qemuBytes(a.username), password, a.crypted, systemOptions(ctx));
      } catch (e) {
        if (e instanceof PasswordError) throw new QgaError(e.message);
        throw childError(e);
      }
      return {};
    },
  }),
  defineQgaCommand({
    name: 'guest-ssh-get-authorized-keys',
    doc: "The keys in a user's ~/.ssh/authorized_keys (comments and blank lines left out), last line first.",
    args: { username: { type: 'str', doc: 'The user.' } },
    handler: async (a) => {
      try {
        // qemu-ga lists them from the last line up.
        return { keys: (await readAuthorizedKeys(a.username)).map(qemuString).reverse() };
      } catch (e) {
        throw keysError(e);
      }
    },
  }),
  defineQgaCommand({
    name: 'guest-ssh-add-authorized-keys',
    doc: "Adds keys to a user's ~/.ssh/authorized_keys (`reset`: in place of what is there), each once; makes ~/.ssh (0700) and the file (0600), the user's.",
    args: {
      username: { type: 'str', doc: 'The user.' },
      keys: { type: { array: 'str' }, doc: 'Public keys, one authorized_keys line each.' },
      reset: { type: 'bool', optional: true, doc: 'Replace the keys there.' },
    },
    handler: async (a, ctx) => {
      ctx.log.info(`guest-ssh-add-authorized-keys called, username: ${a.username}`);
      checkKeys(a.keys);
      try {
        await addAuthorizedKeys(a.username, a.keys.map(qemuBytes), { reset: a.reset === true });
      } catch (e) {
        throw keysError(e);
      }
      return {};
    },
  }),
  defineQgaCommand({
    name: 'guest-ssh-remove-authorized-keys',
    doc: "Takes keys out of a user's ~/.ssh/authorized_keys (lines equal to one of them); no file is no error.",
    args: {
      username: { type: 'str', doc: 'The user.' },
      keys: { type: { array: 'str' }, doc: 'Public keys, as their authorized_keys lines.' },
    },
    handler: async (a, ctx) => {
      ctx.log.info(`guest-ssh-remove-authorized-keys called, username: ${a.username}`);
      checkKeys(a.keys);
      try {
        await removeAuthorizedKeys(a.username, a.keys.map(qemuBytes));
      } catch (e) {
        throw keysError(e);
      }
      return {};
    },
  }),
];
