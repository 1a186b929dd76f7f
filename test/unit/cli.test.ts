import * as assert from 'uvu/assert';
import { VERSION } from '../../lib/version';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs, protocolFor, usage, UsageError } from '../../lib/cli';
import { CLI, tmpDir } from '../helpers/agent';
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
  for (const f of [
    '-p, --port [PROTO:]PATH',
    '--debug',
    '-v, --version',
    '--listen [PROTO:]unix:PATH',
    '--mounts-file',
  ])
    assert.ok(r.stdout.includes(f), f);
});

test('an unknown flag is an error with exit 2, never ignored', () => {
  for (const args of [['--bogus'], ['-x'], ['stray'], ['-p'], ['--listen', 'tcp:1'], ['-debug=1']]) {
    const r = run(...args);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^ember-ga: [^\n]+\n\(ember-ga --help lists the flags\)\n$/);
  }
});

test('a missing port is a clear error, exit 1', () => {
  const r = run('-p', '/nonexistent/port');
  assert.is(r.status, 1);
  assert.match(r.stderr, /open \/nonexistent\/port: no such file or directory/);
});

test('parseArgs: Go-style and GNU-style forms', () => {
  assert.equal(parseArgs(['-p', '/dev/x', '-debug']).endpoints, [
    { kind: 'port', path: '/dev/x', protocol: undefined },
  ]);
  assert.equal(parseArgs(['--port=/dev/y']).endpoints, [{ kind: 'port', path: '/dev/y', protocol: undefined }]);
  assert.is(parseArgs(['--debug']).debug, true);
  assert.is(parseArgs(['--freeze-timeout', '30']).config.freezeTimeout, 30);
  assert.equal(parseArgs(['--listen=unix:/tmp/s']).endpoints, [{ kind: 'unix', path: '/tmp/s', protocol: undefined }]);
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
});

test('--unit-root alone is a usage error, never ignored (the agent would start serving)', () => {
  for (const args of [
    ['--unit-root', '/img'],
    ['--unit-root=/img', '-p', '/dev/x'],
  ])
    assert.throws(
      () => parseArgs(args),
      (e: unknown) =>
        e instanceof UsageError && e.message === '--unit-root goes with --install-unit or --uninstall-unit',
      args.join(' '),
    );
  assert.equal(
    [
      parseArgs(['--unit-root', '/img', '--install-unit']).unitRoot,
      parseArgs(['--uninstall-unit', '--unit-root=/img']).unit,
    ],
    ['/img', 'uninstall'],
  );
});

test('--max-handles takes at least 1: 0 would fail every open', () => {
  assert.is(parseArgs(['--max-handles', '1']).config.maxHandles, 1);
  for (const v of ['0', '-1', '1.5'])
    assert.throws(
      () => parseArgs(['--max-handles', v]),
      (e: unknown) => e instanceof UsageError && /^--max-handles takes a whole number >= 1, got /.test(e.message),
      v,
    );
  assert.throws(() => parseArgs(['--max-handles=0']), /--max-handles takes a whole number >= 1, got "0"/);
});

test('--help answers whatever else is given: it is never a usage error', () => {
  for (const args of [
    ['--unit-root', '/img', '--help'],
    ['--protocol', 'qemu-ga', '-h'],
  ])
    assert.ok(parseArgs(args).help, args.join(' '));
});

test('parseArgs: several -p and --listen, each with an optional PROTO: prefix, in the order given', () => {
  const o = parseArgs([
    '-p',
    'qemu-ga:/dev/vport0p2',
    '-p',
    '/dev/virtio-ports/org.guest-agent.0',
    '--listen',
    'unix:/run/a.sock',
    '--listen=qemu-ga:unix:/run/q.sock',
    '-p=phoenix:/dev/ttyS1',
    '--protocol',
    'qemu-ga',
  ]);
  assert.equal(o.endpoints, [
    { kind: 'port', path: '/dev/vport0p2', protocol: 'qemu-ga' },
    { kind: 'port', path: '/dev/virtio-ports/org.guest-agent.0', protocol: undefined },
    { kind: 'unix', path: '/run/a.sock', protocol: undefined },
    { kind: 'unix', path: '/run/q.sock', protocol: 'qemu-ga' },
    { kind: 'port', path: '/dev/ttyS1', protocol: 'phoenix' },
  ]);
  assert.is(o.protocol, 'qemu-ga'); // for the two without a prefix
  // A prefix that is no protocol's name is part of the path.
  assert.equal(parseArgs(['-p', 'other:/x']).endpoints[0].path, 'other:/x');
  assert.equal(parseArgs(['-p', './qemu-ga:x']).endpoints[0], {
    kind: 'port',
    path: './qemu-ga:x',
    protocol: undefined,
  });
  const usage = (args: string[], re: RegExp) =>
    assert.throws(
      () => parseArgs(args),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
      args.join(' '),
    );
  usage(['-p', '/a', '-p', '/a'], /-p \/a given twice/);
  usage(['--listen', 'unix:/a', '--listen', 'phoenix:unix:/a'], /--listen \/a given twice/);
  usage(['-p', 'qemu-ga:'], /-p takes \[PROTO:\]PATH/);
  usage(['--listen', 'qemu-ga:/a'], /--listen takes \[PROTO:\]unix:PATH/);
  usage(['--listen', 'qemu-ga:unix:'], /--listen takes/);
  usage(['--protocol', 'qemu-ga'], /--protocol applies to -p and --listen/);
  usage(['--port-scan', '-1'], /--port-scan takes a number >= 0/);
  // No -p, no --listen: the ports are found by name; where and how often can be told.
  const found = parseArgs(['--virtio-ports-dir', '/x/sys', '--dev-dir=/x/dev', '--port-scan', '0.5']);
  assert.equal([found.endpoints, found.sysDir, found.devDir, found.portScan], [[], '/x/sys', '/x/dev', 0.5]);
});

test("protocolFor: as asked, else by the port's name (its path, or sysfs for a /dev/vportNpM node)", () => {
  const dir = tmpDir();
  try {
    const sys = path.join(dir, 'sys');
    fs.mkdirSync(path.join(sys, 'vport0p1'), { recursive: true });
    fs.mkdirSync(path.join(sys, 'vport0p2'), { recursive: true });
    fs.writeFileSync(path.join(sys, 'vport0p1', 'name'), 'org.guest-agent.0\n');
    fs.writeFileSync(path.join(sys, 'vport0p2', 'name'), 'org.qemu.guest_agent.0\n');
    // udev's symlink to the node, as /dev/virtio-ports/NAME -> ../vport0p2
    fs.writeFileSync(path.join(dir, 'vport0p2'), '');
    fs.symlinkSync(path.join(dir, 'vport0p2'), path.join(dir, 'qga-link'));
    assert.is(protocolFor(undefined, '/dev/virtio-ports/org.qemu.guest_agent.0', sys), 'qemu-ga');
    assert.is(protocolFor(undefined, '/dev/virtio-ports/org.guest-agent.0', sys), 'phoenix');
    assert.is(protocolFor(undefined, '/dev/vport0p2', sys), 'qemu-ga');
    assert.is(protocolFor(undefined, '/dev/vport0p1', sys), 'phoenix');
    assert.is(protocolFor(undefined, path.join(dir, 'qga-link'), sys), 'qemu-ga');
    assert.is(protocolFor(undefined, '/dev/ttyS0', sys), 'phoenix');
    assert.is(protocolFor('phoenix', '/dev/vport0p2', sys), 'phoenix');
    assert.is(protocolFor(undefined, undefined, sys), 'phoenix');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--help wraps every flag to 100 columns', () => {
  for (const line of usage().split('\n')) assert.ok(line.length <= 100, line);
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
