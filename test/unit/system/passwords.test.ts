// lib/system/passwords.ts with a stub chpasswd that records its arguments and input.
import * as assert from 'uvu/assert';
import { PasswordError, ProgramFailedError, setUserPassword } from '../../../lib/system';
import { suite, rejection } from '../../helpers/harness';
import { SystemFixture } from '../../helpers/system-fixture';

const test = suite('system-passwords');

const rejects = (p: PromiseLike<unknown>) => rejection(p);

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

test('"USER:PASSWORD\\n" on chpasswd\'s input, -e when crypted; the password up to a NUL', async () => {
  const fx = new SystemFixture();
  try {
    fx.stub('/usr/sbin/chpasswd', { stdin: true });
    const opts = { root: fx.root };
    await setUserPassword('alice', 's3cret p\u00e4ss', false, opts);
    await setUserPassword('bob', Buffer.from('$6$salt$hash'), true, opts);
    await setUserPassword('carol', Buffer.from('pw\0\nrest'), false, opts);
    assert.equal(fx.calls(), [
      'chpasswd',
      `chpasswd stdin ${b64('alice:s3cret p\u00e4ss\n')}`,
      'chpasswd [-e]',
      `chpasswd stdin ${b64('bob:$6$salt$hash\n')}`,
      'chpasswd',
      `chpasswd stdin ${b64('carol:pw\n')}`,
    ]);
  } finally {
    fx.cleanup();
  }
});

test('refusals before chpasswd runs, and its failure', async () => {
  const fx = new SystemFixture();
  try {
    const opts = { root: fx.root };
    let e = await rejects(setUserPassword('alice', 'pw', false, opts));
    assert.instance(e, PasswordError);
    assert.is(e.message, "cannot find 'passwd' program in PATH");
    fx.stub('/usr/sbin/chpasswd', { exit: 1, stdin: true });
    e = await rejects(setUserPassword('alice', 'a\nb', false, opts));
    assert.is(e.message, 'forbidden characters in raw password');
    // A NUL in a user name is refused, not cut: "carol\0x" must not set carol's password.
    for (const user of ['a:b', 'a\nb', 'carol\0x']) {
      e = await rejects(setUserPassword(user, 'pw', false, opts));
      assert.is(e.message, 'forbidden characters in username');
    }
    assert.equal(fx.calls(), []);
    e = await rejects(setUserPassword('nosuchuser', 'pw', false, opts));
    assert.instance(e, ProgramFailedError);
    assert.is(e.message, 'child process has failed to set user password');
    fx.stub('/usr/sbin/chpasswd', { killed: true });
    e = await rejects(setUserPassword('alice', 'pw', false, opts));
    assert.is(e.message, 'child process has terminated abnormally');
  } finally {
    fx.cleanup();
  }
});

test.run();
