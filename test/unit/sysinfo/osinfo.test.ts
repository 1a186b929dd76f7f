// os-release as qemu-ga reads it (glib's key file parser, then qemu-ga's unquoting), and the
// logged-in users of utmp.
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import {
  encodeUtmp,
  loginUsers,
  osReleaseValue,
  parseOsRelease,
  parseUtmp,
  readLoginUsers,
  readOsInfo,
  UtType,
} from '../../../lib/sysinfo';
import { tmpDir } from '../../helpers/agent';
import { suite } from '../../helpers/harness';

const test = suite<{ dir: string }>('sysinfo-osinfo', { dir: '' });
test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-osinfo-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

const parse = (s: string | Buffer) => {
  const m = parseOsRelease(Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));
  return m && Object.fromEntries(m);
};

test('os-release: key=value lines, comments and blank lines, raw values', () => {
  const text = [
    '# comment',
    '',
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
    'NAME = "Debian GNU/Linux"   ',
    '  VERSION_ID="12"',
    'ID=debian',
    'ID=debian2', // the last of a repeated key wins
    'HOME_URL="https://www.debian.org/"',
    'NAME[fr]=ignored', // a translation
    '\tEMPTY=',
  ].join('\n');
  assert.equal(parse(text), {
    PRETTY_NAME: '"Debian GNU/Linux 12 (bookworm)"',
    NAME: '"Debian GNU/Linux"   ',
    VERSION_ID: '"12"',
    ID: 'debian2',
    HOME_URL: '"https://www.debian.org/"',
    EMPTY: '',
  });
});

test('os-release: CRLF lines lose the CR (not the last unended one); groups move keys away', () => {
  assert.equal(parse('ID=a\r\nNAME=b\r'), { ID: 'a', NAME: 'b\r' });
  assert.equal(parse('ID=a\n[other]\nNAME=b\n[os-release]  \nVERSION=c'), { ID: 'a', VERSION: 'c' });
});

test('os-release: glib refuses the whole file for one bad line, bad key, or bytes that are not UTF-8', () => {
  assert.is(parse('ID=a\njust words\n'), undefined);
  assert.is(parse('=value\n'), undefined);
  assert.is(parse('A]B=1\n'), undefined);
  assert.is(parse('KEY [fr]=1\n'), undefined);
  assert.is(parse('[]\n'), undefined);
  assert.is(parse('Encoding=latin1\n'), undefined);
  assert.equal(parse('Encoding=utf-8\nID=x'), { Encoding: 'utf-8', ID: 'x' });
  assert.is(parse(Buffer.from([0x49, 0x44, 0x3d, 0xff, 0x0a])), undefined);
  // Everything after a NUL is gone, as for a C string.
  assert.equal(parse(Buffer.from('ID=a\nNAME=b\0\nbad line\n')), { ID: 'a', NAME: 'b' });
});

test("os-release values: qemu-ga's unquoting", () => {
  assert.is(osReleaseValue('"Debian GNU/Linux 12 (bookworm)"'), 'Debian GNU/Linux 12 (bookworm)');
  assert.is(osReleaseValue('"a\\"b\\$c\\\\d\\`e\\\'f"'), 'a"b$c\\d`e\'f');
  assert.is(osReleaseValue('"keep \\n backslash"'), 'keep \\n backslash');
  assert.is(osReleaseValue('"cut" after'), 'cut');
  assert.is(osReleaseValue('debian'), 'debian');
  assert.is(osReleaseValue('two words'), 'two');
  assert.is(osReleaseValue('a;b c'), 'a');
  assert.is(osReleaseValue("'single quoted'"), "'single");
  assert.is(osReleaseValue(''), '');
  // No closing quote: the bytes the shortening left behind stay (qemu-ga rewrites in place).
  assert.is(osReleaseValue('"abc'), 'abcc');
  assert.is(osReleaseValue('"a\\$b'), 'a$b$b');
  assert.is(osReleaseValue('"x\\'), 'x\\\\');
});

test('readOsInfo: the first file that parses; uname always', async ({ dir }) => {
  const bad = path.join(dir, 'bad');
  const good = path.join(dir, 'good');
  fs.writeFileSync(bad, 'not a key file\n');
  fs.writeFileSync(good, 'ID=fixture\nVERSION_ID="1.0"\nVARIANT_ID=server\nPRETTY_NAME=\'x y\'\n');
  const info = await readOsInfo([path.join(dir, 'missing'), bad, good]);
  assert.equal(
    { ...info, kernelRelease: undefined, kernelVersion: undefined, machine: undefined },
    {
      kernelRelease: undefined,
      kernelVersion: undefined,
      machine: undefined,
      id: 'fixture',
      versionId: '1.0',
      variantId: 'server',
      prettyName: "'x",
    },
  );
  assert.type(info.kernelRelease, 'string');
  assert.equal(Object.keys(await readOsInfo([bad])).sort(), ['kernelRelease', 'kernelVersion', 'machine']);
});

test('users: USER_PROCESS records, each user once with the earliest login, in order of first appearance', async ({
  dir,
}) => {
  const records = parseUtmp(
    encodeUtmp([
      { type: UtType.BOOT_TIME, user: 'reboot', time: 1700000000 },
      { type: UtType.USER_PROCESS, user: 'bob', line: 'pts/1', host: '192.0.2.9', time: 1700000200, usec: 250000 },
      { type: UtType.USER_PROCESS, user: 'alice', line: 'tty1', time: 1700000300, usec: 7 },
      { type: UtType.LOGIN_PROCESS, user: 'LOGIN', line: 'tty2', time: 1700000050 },
      { type: UtType.USER_PROCESS, user: 'bob', line: 'pts/2', time: 1700000100, usec: 5 },
      { type: UtType.DEAD_PROCESS, user: 'carol', time: 1700000400 },
      { type: UtType.USER_PROCESS, user: 'bob', line: 'pts/3', time: 1700000900 },
    ]),
  );
  assert.equal(loginUsers(records), [
    { user: 'bob', loginTime: 1700000100.000005 },
    { user: 'alice', loginTime: 1700000300.000007 },
  ]);
  const file = path.join(dir, 'utmp');
  fs.writeFileSync(file, encodeUtmp([{ type: UtType.USER_PROCESS, user: 'root', time: 1700000000 }]));
  assert.equal(await readLoginUsers(file), [{ user: 'root', loginTime: 1700000000 }]);
  assert.equal(await readLoginUsers(path.join(dir, 'none')), []);
  await assert.not.throws(() => readLoginUsers(file));
  try {
    await readLoginUsers(dir);
    assert.unreachable('a directory is no utmp');
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, 'EISDIR');
  }
});

test.run();
