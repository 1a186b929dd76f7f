// guest-set-user-password, guest-ssh-get-authorized-keys, guest-ssh-add-authorized-keys,
// guest-ssh-remove-authorized-keys: lib/system's password and SSH key actions, in qemu-ga 7.2's
// names, shapes and messages.
import { SystemError, toSystemError } from '../../../errors';
import { PasswordError, setUserPassword } from '../../../system/passwords';
import { strerror } from '../../../system/programs';
import { addAuthorizedKeys, readAuthorizedKeys, removeAuthorizedKeys, SshKeysError } from '../../../system/ssh-keys';
import { UnknownUserError } from '../../../system/users';
import { defineQgaCommand, QgaError } from '../schema';
import { childError, systemOptions } from './power';

/** glib's base64 alphabet ranks; 0xff for a character it skips. '=' ranks 0. */
const RANK = new Uint8Array(256).fill(0xff);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => {
  RANK[c.charCodeAt(0)] = i;
});
RANK[0x3d] = 0;

/**
 * A string's bytes as qemu holds them: UTF-8, with a NUL as 0xC0 0x80 (its JSON parser's
 * "modified UTF-8", so that C strings carry it), which the JSON writer turns back into \u0000.
 */
export function qemuBytes(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (!b.includes(0)) return b;
  const out: number[] = [];
  for (const c of b) {
    if (c === 0) out.push(0xc0, 0x80);
    else out.push(c);
  }
  return Buffer.from(out);
}

const MIN_CP = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

/**
 * Bytes as qemu's JSON writer reads them (mod_utf8_codepoint): UTF-8, 0xC0 0x80 as a NUL, and
 * U+FFFD for each sequence it rejects (a bad or missing byte, an overlong form, a noncharacter,
 * past U+10FFFF); a real NUL ends the string.
 */
export function qemuString(b: Buffer): string {
  let out = '';
  let p = 0;
  while (p < b.length && b[p] !== 0) {
    let byte = b[p++];
    let cp: number;
    if (byte < 0x80) cp = byte;
    else if (byte >= 0xfe || (byte & 0x40) === 0) cp = -1;
    else {
      let len = 0;
      let mask = 0x80;
      for (; byte & mask; mask >>= 1) len++;
      cp = byte & (mask - 1);
      for (let i = 1; i < len; i++) {
        byte = p < b.length ? b[p] : 0;
        if ((byte & 0xc0) !== 0x80) {
          cp = -1;
          break;
        }
        p++;
        cp = cp * 64 + (byte & 0x3f);
      }
      if (cp < 0) {
        // (a continuation byte was missing)
      } else if (cp > 0x10ffff) cp = -1;
      else if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) cp = -1;
      else if (cp < MIN_CP[len - 2] && !(cp === 0 && len === 2)) cp = -1;
    }
    out += cp < 0 ? '\ufffd' : String.fromCodePoint(cp);
  }
  return out;
}

/** qemu-ga's check of a key: not a comment, no newline. */
function checkKeys(keys: readonly string[]): void {
  for (const key of keys) {
    if (key.startsWith('#') || key.includes('\n')) throw new QgaError(`invalid OpenSSH public key: '${key}'`);
  }
}

/**
 * qemu's qbase64_decode: only base64 characters, '=' and newlines are taken (a NUL, 0xC0 0x80 in
 * qemu, is none), then decoded as glib's g_base64_decode does (a trailing partial group is
 * dropped, '=' anywhere drops the bytes it pads).
 */
export function qbase64Decode(s: string): Buffer {
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
