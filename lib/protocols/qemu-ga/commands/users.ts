// guest-set-user-password, guest-ssh-get-authorized-keys, guest-ssh-add-authorized-keys,
// guest-ssh-remove-authorized-keys: lib/system's password and SSH key actions, in qemu-ga 7.2's
// names, shapes and messages.
import { SystemError, toSystemError } from '../../../errors';
import { PasswordError, setUserPassword } from '../../../system/passwords';
import { strerror } from '../../../system/programs';
import { addAuthorizedKeys, getAuthorizedKeys, removeAuthorizedKeys, SshKeysError } from '../../../system/ssh-keys';
import { cString, UnknownUserError } from '../../../system/users';
import { defineQgaCommand, QgaError } from '../schema';
import { childError, systemOptions } from './power';

/** glib's base64 alphabet ranks; 0xff for a character it skips. '=' ranks 0. */
const RANK = new Uint8Array(256).fill(0xff);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => {
  RANK[c.charCodeAt(0)] = i;
});
RANK[0x3d] = 0;

/**
 * qemu's qbase64_decode of a C string (up to a NUL): only base64 characters, '=' and newlines
 * are taken, then decoded as glib's g_base64_decode does (a trailing partial group is dropped,
 * '=' anywhere drops the bytes it pads).
 */
export function qbase64Decode(text: string): Buffer {
  const s = cString(text);
  if (!/^[A-Za-z0-9+/=\n]*$/.test(s)) throw new QgaError('Base64 data contains invalid characters');
  const out: number[] = [];
  let v = 0;
  let i = 0;
  const last = [0, 0];
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    const rank = RANK[c];
    if (rank === 0xff) continue;
    last[1] = last[0];
    last[0] = c;
    v = ((v << 6) | rank) & 0xffffff;
    if (++i === 4) {
      out.push(v >> 16);
      if (last[1] !== 0x3d) out.push((v >> 8) & 0xff);
      if (last[0] !== 0x3d) out.push(v & 0xff);
      i = 0;
    }
  }
  return Buffer.from(out);
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
      ctx.log.info(`guest-set-user-password called, username: ${cString(a.username)}`);
      try {
        await setUserPassword(a.username, password, a.crypted, systemOptions(ctx));
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
        return { keys: (await getAuthorizedKeys(a.username)).reverse() };
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
      ctx.log.info(`guest-ssh-add-authorized-keys called, username: ${cString(a.username)}`);
      try {
        await addAuthorizedKeys(a.username, a.keys, { reset: a.reset === true });
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
      ctx.log.info(`guest-ssh-remove-authorized-keys called, username: ${cString(a.username)}`);
      try {
        await removeAuthorizedKeys(a.username, a.keys);
      } catch (e) {
        throw keysError(e);
      }
      return {};
    },
  }),
];
