import * as assert from 'uvu/assert';
import { VERSION } from '../../lib/version';
import { spawnSync } from 'child_process';
import { parseArgs, UsageError } from '../../lib/cli';
import { CLI } from '../helpers/agent';
import { suite } from '../helpers/harness';

const test = suite('cli');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 10_000 });

test('-v and --version print the package version', () => {
  const version = VERSION;
  for (const f of ['-v', '--version', '-version']) {
    const r = run(f);
    assert.is(r.status, 0);
    assert.is(r.stdout, `${version}\n`);
  }
});

test('--help lists the reference flags', () => {
  const r = run('--help');
  assert.is(r.status, 0);
  for (const f of ['-p, --port PATH', '--debug', '-v, --version', '--listen unix:PATH', '--mounts-file'])
    assert.ok(r.stdout.includes(f), f);
});

test('an unknown flag is an error with exit 2, never ignored', () => {
  for (const args of [['--bogus'], ['-x'], ['stray'], ['-p'], ['--listen', 'tcp:1'], ['-debug=1']]) {
    const r = run(...args);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^ember-ga: /);
  }
});

test('a missing port is a clear error, exit 1', () => {
  const r = run('-p', '/nonexistent/port');
  assert.is(r.status, 1);
  assert.match(r.stderr, /open \/nonexistent\/port: no such file or directory/);
});

test('parseArgs: Go-style and GNU-style forms', () => {
  assert.equal(parseArgs(['-p', '/dev/x', '-debug']).port, '/dev/x');
  assert.equal(parseArgs(['--port=/dev/y']).port, '/dev/y');
  assert.is(parseArgs(['--debug']).debug, true);
  assert.is(parseArgs(['--freeze-timeout', '30']).config.freezeTimeout, 30);
  assert.is(parseArgs(['--listen=unix:/tmp/s']).listen, '/tmp/s');
  assert.throws(
    () => parseArgs(['--freeze-timeout', '-1']),
    (e: unknown) => e instanceof UsageError,
  );
  // Timer flags: 0 means never; past a Node timer's limit (~24.8 days) a timer would fire at once.
  assert.is(parseArgs(['--host-gone-timeout', '0.5']).hostGoneTimeout, 0.5);
  assert.is(parseArgs(['--host-gone-timeout=0']).hostGoneTimeout, 0);
  for (const flag of ['--host-gone-timeout', '--freeze-timeout']) {
    assert.throws(() => parseArgs([flag, '3000000']), /takes at most 2147483 seconds \(0 = never\)/);
  }
  assert.throws(
    () => parseArgs(['-p', '/a', '--listen', 'unix:/b']),
    (e: unknown) => e instanceof UsageError,
  );
});

test('--fsfreeze-hook / -F: the default path alone, PATH only after =', () => {
  assert.is(parseArgs(['--fsfreeze-hook']).config.fsfreezeHook, '/etc/qemu/fsfreeze-hook');
  assert.is(parseArgs(['-F']).config.fsfreezeHook, '/etc/qemu/fsfreeze-hook');
  assert.is(parseArgs(['--fsfreeze-hook=/opt/hook']).config.fsfreezeHook, '/opt/hook');
  assert.is(parseArgs(['-F=/opt/hook', '--debug']).config.fsfreezeHook, '/opt/hook');
  assert.is(parseArgs([]).config.fsfreezeHook, undefined, 'no hook unless asked, as qemu-ga');
  assert.throws(() => parseArgs(['--fsfreeze-hook', '/opt/hook']), /unexpected argument "\/opt\/hook"/);
  assert.throws(() => parseArgs(['--fsfreeze-hook=']), /--fsfreeze-hook= needs a value after =/);
});

test.run();
