// qemu-ga's commands that change the guest: guest-shutdown, guest-set-time, guest-suspend-*,
// guest-set-vcpus, guest-set-memory-blocks, guest-set-user-password, guest-ssh-*-authorized-keys.
//
// Against qemu-ga 7.2 itself only what cannot act on this machine: requests whose arguments
// are refused before anything runs (each is checked with our own schema first, so a request
// that would run is never sent), guest-suspend-hybrid where no way to suspend can work (no
// systemd running, no pm-utils: qemu-ga never writes /sys/power/state for hybrid), and the SSH
// key commands for users that do not exist or a temporary user this test creates. Everything
// else runs on ember-ga alone with --system-root at a fixture tree of stub programs and sysfs
// files (whose clock is the file ROOT/clock).
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { allQgaCommands } from '../../lib/protocols/qemu-ga/commands';
import { checkQgaArgs } from '../../lib/protocols/qemu-ga/schema';
import { timeval } from '../../lib/system/clock';
import { tmpDir, type RunningAgent } from '../helpers/agent';
import { command, root, suite, type Requirement } from '../helpers/harness';
import { both, realQemuGa, startEmberQemuGa, startPair, stopPair, type Pair, type QmpClient } from '../helpers/qemu-ga';
import { SystemFixture } from '../helpers/system-fixture';

interface Ctx {
  p?: Pair;
  fx?: SystemFixture;
  ember?: RunningAgent & { qmp(): Promise<QmpClient> };
  e?: QmpClient;
}

const test = suite<Ctx>('qemu-ga-system', {});

test.before(async (ctx) => {
  if (realQemuGa() === undefined) ctx.p = await startPair();
  ctx.fx = new SystemFixture();
  ctx.ember = await startEmberQemuGa(['--system-root', ctx.fx.root]);
  ctx.e = await ctx.ember.qmp();
  // Before anything here could act on a system: this ember-ga's is the fixture. A CPU only the
  // fixture has, brought online (on a real system: no such CPU, nothing done).
  ctx.fx.write('/sys/devices/system/cpu/cpu4242/online', '1\n');
  const probe = await ctx.e.call('guest-set-vcpus', { vcpus: [{ 'logical-id': 4242, online: true }] });
  if (probe.return !== 1) throw new Error(`--system-root is not in effect: ${JSON.stringify(probe)}`);
});
test.after(async (ctx) => {
  ctx.e?.close();
  await ctx.ember?.stop();
  ctx.fx?.cleanup();
  await stopPair(ctx.p);
});

const MINE = [
  'guest-shutdown',
  'guest-set-time',
  'guest-suspend-disk',
  'guest-suspend-ram',
  'guest-suspend-hybrid',
  'guest-set-vcpus',
  'guest-set-memory-blocks',
  'guest-set-user-password',
  'guest-ssh-get-authorized-keys',
  'guest-ssh-add-authorized-keys',
  'guest-ssh-remove-authorized-keys',
];

/** Requests whose arguments qemu-ga refuses before running anything. */
const BAD_ARGS: [string, unknown][] = [
  ['guest-shutdown', { mode: 1 }],
  ['guest-shutdown', { mode: null }],
  ['guest-shutdown', { mode: ['halt'] }],
  ['guest-shutdown', { mode: 'halt', force: true }],
  ['guest-set-time', { time: '1' }],
  ['guest-set-time', { time: 1.5 }],
  ['guest-set-time', { time: true }],
  ['guest-set-time', { time: null }],
  ['guest-set-time', { time: 1e20 }],
  ['guest-set-time', { x: 1 }],
  ['guest-suspend-disk', { x: 1 }],
  ['guest-suspend-ram', { mode: 'mem' }],
  ['guest-suspend-hybrid', { '': 0 }],
  ['guest-set-vcpus', {}],
  ['guest-set-vcpus', { vcpus: {} }],
  ['guest-set-vcpus', { vcpus: 'all' }],
  ['guest-set-vcpus', { vcpus: [1] }],
  ['guest-set-vcpus', { vcpus: [{}] }],
  ['guest-set-vcpus', { vcpus: [{ 'logical-id': 1 }] }],
  ['guest-set-vcpus', { vcpus: [{ online: true }] }],
  ['guest-set-vcpus', { vcpus: [{ 'logical-id': '1', online: true }] }],
  ['guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: 1 }] }],
  ['guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: true, 'can-offline': 3 }] }],
  ['guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: true, extra: 3 }] }],
  ['guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: true }, { 'logical-id': 2 }] }],
  ['guest-set-memory-blocks', {}],
  ['guest-set-memory-blocks', { 'mem-blks': null }],
  ['guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': -1 }] }],
  ['guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': 'x', online: true }] }],
  ['guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': 1.5, online: true }] }],
  ['guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': 1e30, online: true }] }],
  ['guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': 1, online: 'yes' }] }],
  ['guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': 1, online: true, x: 1 }] }],
  ['guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': 1, online: true, 'can-offline': null }] }],
  ['guest-set-user-password', {}],
  ['guest-set-user-password', { username: 'x', password: 'eA==' }],
  ['guest-set-user-password', { username: 'x', crypted: false }],
  ['guest-set-user-password', { password: 'eA==', crypted: true }],
  ['guest-set-user-password', { username: 1, password: 'eA==', crypted: true }],
  ['guest-set-user-password', { username: 'x', password: 7, crypted: true }],
  ['guest-set-user-password', { username: 'x', password: 'eA==', crypted: 'no' }],
  ['guest-set-user-password', { username: 'x', password: 'eA==', crypted: false, shell: '/bin/sh' }],
  ['guest-ssh-get-authorized-keys', {}],
  ['guest-ssh-get-authorized-keys', { username: 0 }],
  ['guest-ssh-get-authorized-keys', { username: 'x', keys: [] }],
  ['guest-ssh-add-authorized-keys', { username: 'x' }],
  ['guest-ssh-add-authorized-keys', { keys: [] }],
  ['guest-ssh-add-authorized-keys', { username: 'x', keys: 'a' }],
  ['guest-ssh-add-authorized-keys', { username: 'x', keys: [1] }],
  ['guest-ssh-add-authorized-keys', { username: 'x', keys: ['a', null] }],
  ['guest-ssh-add-authorized-keys', { username: 'x', keys: ['a'], reset: 1 }],
  ['guest-ssh-add-authorized-keys', { username: 'x', keys: ['a'], reset: null }],
  ['guest-ssh-remove-authorized-keys', { username: 'x' }],
  ['guest-ssh-remove-authorized-keys', { username: 'x', keys: {} }],
  ['guest-ssh-remove-authorized-keys', { username: 'x', keys: [], reset: true }],
];

function request(execute: string, args?: unknown, id?: unknown): string {
  return (
    JSON.stringify({
      execute,
      ...(args === undefined ? {} : { arguments: args }),
      ...(id === undefined ? {} : { id }),
    }) + '\n'
  );
}

test(
  "argument errors of every command: qemu-ga's, byte for byte",
  async ({ p }) => {
    for (const name of MINE)
      assert.ok(
        BAD_ARGS.some(([n]) => n === name),
        `no bad arguments for ${name}`,
      );
    for (const [name, args] of BAD_ARGS) {
      // Our schema must refuse it too, or it is not sent: to qemu-ga it would be a real request.
      const cmd = allQgaCommands.find((c) => c.name === name)!;
      assert.throws(() => checkQgaArgs(cmd.args, args as Record<string, unknown>), `${name} ${JSON.stringify(args)}`);
      const { real, ember } = await both(p!, request(name, args, 'x'));
      assert.is(ember.toString(), real.toString(), `${name} ${JSON.stringify(args)}`);
    }
    // Arguments that are not an object, for each.
    for (const name of MINE) {
      const { real, ember } = await both(p!, `{"execute":"${name}","arguments":[]}\n`);
      assert.is(ember.toString(), real.toString(), name);
    }
  },
  { needs: [realQemuGa] },
);

/** No way to suspend can work here: systemd is not running and pm-utils is not installed. */
const noSuspendHere: Requirement = () => {
  if (fs.existsSync('/run/systemd/system')) return 'systemd runs here: a suspend could work';
  for (const p of ['pm-is-supported', 'pm-suspend-hybrid']) {
    if (command(p)() === undefined) return `${p} is installed: a suspend could work`;
  }
  return undefined;
};

test(
  'guest-suspend-hybrid where nothing can suspend: the same error as qemu-ga',
  async ({ p }) => {
    const { real, ember } = await both(p!, request('guest-suspend-hybrid'));
    assert.is(ember.toString(), real.toString());
  },
  { needs: [realQemuGa, noSuspendHere] },
);

test(
  'SSH keys of users that do not exist, and of one without a home: as qemu-ga',
  async ({ p }) => {
    const cases: [string, unknown][] = [
      ['guest-ssh-get-authorized-keys', { username: 'ember-ga-no-such-user' }],
      ['guest-ssh-get-authorized-keys', { username: '' }],
      ['guest-ssh-get-authorized-keys', { username: 'ember-ga-no\u0000such' }],
      ['guest-ssh-get-authorized-keys', { username: 'nobody' }],
      ['guest-ssh-add-authorized-keys', { username: 'ember-ga-no-such-user', keys: ['ssh-ed25519 AAAA x'] }],
      ['guest-ssh-add-authorized-keys', { username: 'ember-ga-no-such-user', keys: [] }],
      ['guest-ssh-add-authorized-keys', { username: 'ember-ga-no-such-user', keys: ['ok', '# comment'] }],
      ['guest-ssh-add-authorized-keys', { username: 'ember-ga-no-such-user', keys: ['a\nb'], reset: true }],
      ['guest-ssh-add-authorized-keys', { username: 'ember-ga-no-such-user', keys: ['\u00e9t\u00e9\n'] }],
      ['guest-ssh-remove-authorized-keys', { username: 'ember-ga-no-such-user', keys: ['x'] }],
      ['guest-ssh-remove-authorized-keys', { username: 'ember-ga-no-such-user', keys: ['#x'] }],
      ['guest-ssh-remove-authorized-keys', { username: 'ember-ga-no-such-user', keys: ['#\u0000x\u00ff'] }],
      ['guest-ssh-add-authorized-keys', { username: 'nobody\u0000', keys: ['k\u0000ey'] }],
    ];
    for (const [name, args] of cases) {
      const { real, ember } = await both(p!, request(name, args));
      assert.is(ember.toString(), real.toString(), `${name} ${JSON.stringify(args)}`);
    }
  },
  { needs: [realQemuGa] },
);

// ---- A temporary user's keys, on both agents ------------------------------------------------------

interface FileState {
  mode: string;
  uid: number;
  gid: number;
  content?: string;
}

/** ~/.ssh and its authorized_keys: modes, owners, the file's bytes, what else is in .ssh. */
function sshState(home: string): { dir?: FileState; file?: FileState; others: string[] } {
  const dir = path.join(home, '.ssh');
  const file = path.join(dir, 'authorized_keys');
  const state = (p: string, withContent: boolean): FileState | undefined => {
    try {
      const st = fs.lstatSync(p);
      return {
        mode: (st.mode & 0o170777).toString(8),
        uid: st.uid,
        gid: st.gid,
        ...(withContent && st.isFile() ? { content: fs.readFileSync(p).toString('base64') } : {}),
      };
    } catch {
      return undefined;
    }
  };
  let others: string[] = [];
  try {
    others = fs.readdirSync(dir).filter((n) => n !== 'authorized_keys');
  } catch {
    // no directory
  }
  return { dir: state(dir, false), file: state(file, true), others };
}

type Step = { call: [string, Record<string, unknown>] } | { setup: (home: string, uid: number) => void };

const STEPS = (user: string): Step[] => {
  const call = (name: string, args: Record<string, unknown> = {}): Step => ({
    call: [name, { username: user, ...args }],
  });
  const get = call('guest-ssh-get-authorized-keys');
  const add = (keys: string[], reset?: boolean) =>
    call('guest-ssh-add-authorized-keys', reset === undefined ? { keys } : { keys, reset });
  const remove = (keys: string[]) => call('guest-ssh-remove-authorized-keys', { keys });
  const writeKeys = (text: string | Buffer, mode = 0o600, owner = true): Step => ({
    setup: (home, uid) => {
      fs.mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
      const f = path.join(home, '.ssh', 'authorized_keys');
      fs.writeFileSync(f, text);
      fs.chmodSync(f, mode);
      if (owner) fs.chownSync(f, uid, uid);
      else fs.chownSync(f, 0, 0);
    },
  });
  return [
    get,
    remove(['k1']),
    add(['k1 a', 'k2 b', 'k1 a']),
    get,
    add(['k3 c', '', ' k4 ']),
    get,
    add(['k2 b', 'k5 e']),
    remove(['k1 a', 'nope', ' k4 ']),
    get,
    add(['#c']),
    add(['ssh-ed25519 AAAA\u00e9 \u00fcser@h\u00f6st', 'k\u0000nul']),
    get,
    writeKeys(Buffer.concat([Buffer.from('bad '), Buffer.from([0xff, 0xfe, 0xc0, 0x80]), Buffer.from(' \u00e9\nk\n')])),
    get,
    add(['k6'], true),
    get,
    add([], true),
    get,
    writeKeys('ssh-ed25519 AAA one\r\n# comment\n\n  ssh-rsa BBB two  \n\tssh-dss CCC three\n'),
    get,
    remove(['ssh-ed25519 AAA one']),
    remove(['# comment']),
    add(['ssh-x new']),
    get,
    writeKeys('nul\u0000after\nk7\n', 0o644, false),
    get,
    add(['k8'], false),
    get,
    { setup: (home) => fs.rmSync(path.join(home, '.ssh'), { recursive: true, force: true }) },
    add(['k9'], true),
    get,
    // authorized_keys that cannot be read: remove answers the read's error and writes nothing.
    { setup: (home) => fs.rmSync(path.join(home, '.ssh'), { recursive: true, force: true }) },
    { setup: (home) => fs.mkdirSync(path.join(home, '.ssh', 'authorized_keys'), { recursive: true }) },
    remove(['k9']),
    { setup: (home) => fs.rmSync(path.join(home, '.ssh'), { recursive: true, force: true }) },
    { setup: (home) => fs.writeFileSync(path.join(home, '.ssh'), 'a file') },
    add(['k10']),
    remove(['k10']),
    get,
  ];
};

/** Runs the steps on one agent: each answer (its bytes) and the state after it. */
async function runSteps(q: QmpClient, user: string, home: string, uid: number): Promise<string[]> {
  fs.rmSync(path.join(home, '.ssh'), { recursive: true, force: true });
  const out: string[] = [];
  for (const step of STEPS(user)) {
    if ('setup' in step) {
      step.setup(home, uid);
      out.push(`setup: ${JSON.stringify(sshState(home))}`);
      continue;
    }
    q.send(request(step.call[0], step.call[1]));
    const answer = (await q.rawAnswer()).toString();
    out.push(`${step.call[0]} ${JSON.stringify(step.call[1])} -> ${answer.trim()} ${JSON.stringify(sshState(home))}`);
  }
  return out;
}

test(
  "a temporary user's keys: the same answers, files, modes and owners as qemu-ga",
  async ({ p }) => {
    const user = `ember-ga-t${process.pid}`;
    const home = tmpDir('ember-ga-home-');
    try {
      execFileSync('useradd', ['-M', '-d', home, user], { stdio: 'pipe' });
      const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
      const real = await runSteps(p!.q, user, home, uid);
      const ember = await runSteps(p!.e, user, home, uid);
      for (let i = 0; i < real.length; i++) assert.is(ember[i], real[i], `step ${i + 1}`);
      // The steps did what they say (a test that cannot fail proves nothing).
      assert.ok(real.some((l) => l.includes('"keys": ["k4", "k3 c", "k2 b", "k1 a"]')));
      assert.ok(real.some((l) => l.includes('"mode":"40700"') && l.includes(`"uid":${uid}`)));
    } finally {
      try {
        execFileSync('userdel', [user], { stdio: 'pipe' });
      } catch {
        // not created
      }
      fs.rmSync(home, { recursive: true, force: true });
    }
  },
  { needs: [realQemuGa, root, command('useradd'), command('userdel')], timeout: 60_000 },
);

test(
  'a link planted at ~/.ssh or ~/.ssh/authorized_keys is never written through (ember-ga)',
  async ({ e }) => {
    const user = `ember-ga-l${process.pid}`;
    const home = tmpDir('ember-ga-home-');
    const elsewhere = tmpDir('ember-ga-target-');
    try {
      execFileSync('useradd', ['-M', '-d', home, user], { stdio: 'pipe' });
      fs.writeFileSync(path.join(elsewhere, 'authorized_keys'), 'root key\n');
      fs.symlinkSync(elsewhere, path.join(home, '.ssh'));
      let a = await e!.call('guest-ssh-add-authorized-keys', { username: user, keys: ['user key'] });
      assert.is(a.error?.desc, `failed to open directory '${home}/.ssh': Too many levels of symbolic links`);
      a = await e!.call('guest-ssh-remove-authorized-keys', { username: user, keys: ['root key'] });
      assert.ok(a.error, 'remove through a linked ~/.ssh');
      assert.is(fs.readFileSync(path.join(elsewhere, 'authorized_keys'), 'utf8'), 'root key\n');
      assert.is(fs.statSync(path.join(elsewhere, 'authorized_keys')).uid, 0);
      fs.rmSync(path.join(home, '.ssh'));
      fs.mkdirSync(path.join(home, '.ssh'));
      fs.symlinkSync(path.join(elsewhere, 'authorized_keys'), path.join(home, '.ssh', 'authorized_keys'));
      a = await e!.call('guest-ssh-add-authorized-keys', { username: user, keys: ['user key'] });
      assert.match(a.error?.desc ?? '', /Too many levels of symbolic links/);
      assert.is(fs.readFileSync(path.join(elsewhere, 'authorized_keys'), 'utf8'), 'root key\n');
      // A reset reads nothing: the link itself is replaced, what it led to is left alone.
      a = await e!.call('guest-ssh-add-authorized-keys', { username: user, keys: ['user key'], reset: true });
      assert.equal(a.return, {});
      assert.is(fs.readFileSync(path.join(home, '.ssh', 'authorized_keys'), 'utf8'), 'user key');
      assert.ok(!fs.lstatSync(path.join(home, '.ssh', 'authorized_keys')).isSymbolicLink());
      assert.is(fs.readFileSync(path.join(elsewhere, 'authorized_keys'), 'utf8'), 'root key\n');
    } finally {
      try {
        execFileSync('userdel', [user], { stdio: 'pipe' });
      } catch {
        // not created
      }
      fs.rmSync(home, { recursive: true, force: true });
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  },
  { needs: [root, command('useradd'), command('userdel')] },
);

test(
  "a ~/.ssh swapped between a link and a directory while keys are added: another file's keys never land in the user's (ember-ga)",
  async ({ e }) => {
    const user = `ember-ga-s${process.pid}`;
    const home = tmpDir('ember-ga-home-');
    const elsewhere = tmpDir('ember-ga-target-');
    const ssh = path.join(home, '.ssh');
    const alt = path.join(home, '.ssh-alt');
    // Swaps ~/.ssh and ~/.ssh-alt (a link to `elsewhere`, a directory) over and over, each swap
    // atomic (renameat2 RENAME_EXCHANGE), until killed.
    const swapper = [
      'import ctypes, sys',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'a, b = sys.argv[1].encode(), sys.argv[2].encode()',
      'while True: libc.renameat2(-100, a, -100, b, 2)',
    ].join('\n');
    let swapping: ReturnType<typeof spawn> | undefined;
    try {
      execFileSync('useradd', ['-M', '-d', home, user], { stdio: 'pipe' });
      fs.writeFileSync(path.join(elsewhere, 'authorized_keys'), 'root key\n');
      fs.mkdirSync(ssh, 0o700);
      fs.symlinkSync(elsewhere, alt);
      swapping = spawn('python3', ['-c', swapper, ssh, alt], { stdio: 'ignore' });
      let added = 0;
      for (let i = 0; i < 300; i++) {
        const a = await e!.call('guest-ssh-add-authorized-keys', { username: user, keys: [`user key ${i}`] });
        if (a.return) added++;
      }
      swapping.kill();
      await new Promise((r) => swapping!.once('exit', r));
      assert.ok(added > 0, 'some adds went through the directory');
      for (const dir of [ssh, alt]) {
        const f = path.join(dir, 'authorized_keys');
        if (!fs.lstatSync(dir).isDirectory() || !fs.existsSync(f)) continue;
        assert.not.match(fs.readFileSync(f, 'utf8'), /root key/, `${f} got the other file's keys`);
      }
      assert.is(fs.readFileSync(path.join(elsewhere, 'authorized_keys'), 'utf8'), 'root key\n');
    } finally {
      swapping?.kill();
      try {
        execFileSync('userdel', [user], { stdio: 'pipe' });
      } catch {
        // not created
      }
      fs.rmSync(home, { recursive: true, force: true });
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  },
  { needs: [root, command('useradd'), command('userdel'), command('python3')], timeout: 60_000 },
);

// ---- ember-ga on a fixture system -----------------------------------------------------------------

/** The answer to `name`, or "no answer" when the guest-ping sent after it is answered first. */
async function answerOrNone(q: QmpClient, name: string, args?: unknown): Promise<unknown> {
  q.send(request(name, args));
  q.send(request('guest-ping', undefined, 'ping'));
  const a = await q.answer();
  if (a.id === 'ping') return 'no answer';
  const ping = await q.answer();
  assert.is(ping.id, 'ping');
  return a;
}

test('guest-shutdown: shutdown(8) run, no answer; its failure answered', async ({ e, fx }) => {
  fx!.stub('/sbin/shutdown');
  fx!.clearCalls();
  assert.is(await answerOrNone(e!, 'guest-shutdown'), 'no answer');
  assert.is(await answerOrNone(e!, 'guest-shutdown', { mode: 'reboot' }), 'no answer');
  assert.is(await answerOrNone(e!, 'guest-shutdown', { mode: 'halt' }), 'no answer');
  assert.equal(fx!.calls(), [
    'shutdown [-h] [-P] [+0] [hypervisor initiated shutdown]',
    'shutdown [-h] [-r] [+0] [hypervisor initiated shutdown]',
    'shutdown [-h] [-H] [+0] [hypervisor initiated shutdown]',
  ]);
  for (const mode of ['poweroff', 'halt\u0000', '']) {
    assert.equal(await answerOrNone(e!, 'guest-shutdown', { mode }), {
      error: { class: 'GenericError', desc: 'mode is invalid (valid values are: halt|powerdown|reboot' },
    });
  }
  fx!.stub('/sbin/shutdown', { exit: 1 });
  assert.equal(await answerOrNone(e!, 'guest-shutdown'), {
    error: { class: 'GenericError', desc: 'child process has failed to shutdown' },
  });
});

test('guest-shutdown with no /sbin/shutdown: an error, not silence', async ({ e, fx }) => {
  fs.rmSync(fx!.at('/sbin/shutdown'), { force: true });
  assert.equal(await answerOrNone(e!, 'guest-shutdown'), {
    error: { class: 'GenericError', desc: 'child process has failed to shutdown' },
  });
});

test('guest-set-time: the (fixture) clock, then hwclock; errors', async ({ e, fx }) => {
  fs.rmSync(fx!.at('/sbin/hwclock'), { force: true });
  fs.rmSync(fx!.at('/clock'), { force: true });
  let a = await e!.call('guest-set-time', { time: 3_200_000_000_000_000_000 });
  assert.equal(a.error, { class: 'GenericError', desc: 'this feature or command is not currently supported' });
  fx!.stub('/sbin/hwclock');
  fx!.clearCalls();
  // About now, so that even a fixture that failed would hardly move a clock.
  const now = Number(BigInt(Date.now()) * 1_000_000n + 123_456n);
  assert.equal(await e!.ok('guest-set-time', { time: now }), {});
  const tv = timeval(BigInt(now));
  assert.is(fx!.read('/clock'), `${tv.seconds} ${tv.microseconds}\n`);
  assert.equal(await e!.ok('guest-set-time'), {});
  assert.equal(fx!.calls(), ['hwclock [-w]', 'hwclock [-s]']);
  a = await e!.call('guest-set-time', { time: 3_200_000_000_000_000_000 });
  assert.equal(a.error, { class: 'GenericError', desc: 'Invalid time' });
  // The fixture's clock failing as settimeofday would.
  fs.rmSync(fx!.at('/clock'));
  fx!.mkdir('/clock');
  a = await e!.call('guest-set-time', { time: now });
  assert.equal(a.error, { class: 'GenericError', desc: 'Failed to set time to guest: Is a directory' });
  fs.rmdirSync(fx!.at('/clock'));
  fx!.stub('/sbin/hwclock', { exit: 2 });
  a = await e!.call('guest-set-time');
  assert.equal(a.error, { class: 'GenericError', desc: 'hwclock failed to set hardware clock to system time' });
});

test('guest-suspend-*: the first way that works, no answer; none: an error', async ({ e, fx }) => {
  fs.rmSync(fx!.at('/sys/power'), { recursive: true, force: true });
  for (const m of ['disk', 'ram', 'hybrid']) {
    assert.equal(await answerOrNone(e!, `guest-suspend-${m}`), {
      error: { class: 'GenericError', desc: 'the requested suspend mode is not supported by the guest' },
    });
  }
  fx!.write('/sys/power/state', 'freeze mem disk\n');
  assert.is(await answerOrNone(e!, 'guest-suspend-ram'), 'no answer');
  assert.is(fx!.read('/sys/power/state'), 'mem');
  fx!.stub('/usr/bin/systemctl', { exit: 3 });
  fx!.clearCalls();
  assert.is(await answerOrNone(e!, 'guest-suspend-disk'), 'no answer');
  assert.equal(fx!.calls(), ['systemctl [status] [systemd-hibernate]', 'systemctl [hibernate]']);
  fs.rmSync(fx!.at('/usr/bin/systemctl'));
});

test('guest-set-vcpus: the count done, the first failure as an error', async ({ e, fx }) => {
  const cpu = '/sys/devices/system/cpu';
  fx!.mkdir(`${cpu}/cpu0`);
  fx!.write(`${cpu}/cpu1/online`, '1\n');
  fx!.write(`${cpu}/cpu2/online`, '');
  const set = (vcpus: unknown) => e!.call('guest-set-vcpus', { vcpus });
  assert.equal((await set([])).return, 0);
  assert.equal((await set([{ 'logical-id': 1, online: false, 'can-offline': false }])).return, 1);
  assert.is(fx!.read(`${cpu}/cpu1/online`), '0\n');
  assert.equal(
    (
      await set([
        { 'logical-id': 1, online: true },
        { 'logical-id': 0, online: false },
      ])
    ).return,
    1,
  );
  assert.is(fx!.read(`${cpu}/cpu1/online`), '1\n');
  const dir = `${fx!.root}${cpu}`;
  assert.equal((await set([{ 'logical-id': 0, online: false }])).error?.desc, "logical processor #0 can't be offlined");
  assert.equal(
    (await set([{ 'logical-id': 5, online: true }])).error?.desc,
    `open("${dir}/cpu5/"): No such file or directory`,
  );
  assert.equal(
    (await set([{ 'logical-id': 2, online: true }])).error?.desc,
    `pread("${dir}/cpu2//online"): unexpected EOF`,
  );
});

test('guest-set-memory-blocks: a result for each block', async ({ e, fx }) => {
  const mem = '/sys/devices/system/memory';
  fx!.write(`${mem}/memory0/state`, 'online\n');
  fx!.mkdir(`${mem}/memory7`);
  const answer = await e!.ok('guest-set-memory-blocks', {
    'mem-blks': [
      { 'phys-index': 0, online: false },
      { 'phys-index': 3, online: true },
      { 'phys-index': 7, online: true, 'can-offline': true },
      { 'phys-index': -1, online: false },
    ],
  });
  assert.equal(answer, [
    { 'phys-index': 0, response: 'success' },
    { 'phys-index': 3, response: 'not-found', 'error-code': 2 },
    { 'phys-index': 7, response: 'success', 'error-code': 2 },
    { 'phys-index': 2 ** 64, response: 'not-found', 'error-code': 2 },
  ]);
  assert.is(fx!.read(`${mem}/memory0/state`), 'offline');
  // The uint64 as qemu-ga writes it, every digit.
  e!.send(request('guest-set-memory-blocks', { 'mem-blks': [{ 'phys-index': -1, online: false }] }));
  assert.match((await e!.rawAnswer()).toString(), /"phys-index": 18446744073709551615/);
  assert.equal(await e!.ok('guest-set-memory-blocks', { 'mem-blks': [] }), []);
});

test('guest-set-user-password: chpasswd fed "USER:PASSWORD\\n", -e when crypted; refusals', async ({ e, fx }) => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let a = await e!.call('guest-set-user-password', { username: 'alice', password: b64('pw'), crypted: false });
  assert.equal(a.error, { class: 'GenericError', desc: "cannot find 'passwd' program in PATH" });
  fx!.stub('/usr/sbin/chpasswd', { stdin: true });
  fx!.clearCalls();
  assert.equal(
    await e!.ok('guest-set-user-password', { username: 'alice', password: b64('s3cr\u00e9t'), crypted: false }),
    {},
  );
  assert.equal(
    await e!.ok('guest-set-user-password', { username: 'bob', password: b64('$6$x$y') + '\n', crypted: true }),
    {},
  );
  assert.equal(fx!.calls(), [
    'chpasswd',
    `chpasswd stdin ${b64('alice:s3cr\u00e9t\n')}`,
    'chpasswd [-e]',
    `chpasswd stdin ${b64('bob:$6$x$y\n')}`,
  ]);
  const refused: [Record<string, unknown>, string][] = [
    [{ username: 'a', password: 'not base64!' }, 'Base64 data contains invalid characters'],
    [{ username: 'a', password: b64('two\nlines') }, 'forbidden characters in raw password'],
    [{ username: 'a:b', password: b64('pw') }, 'forbidden characters in username'],
    [{ username: 'a\nb', password: b64('pw') }, 'forbidden characters in username'],
  ];
  fx!.clearCalls();
  for (const [args, desc] of refused) {
    a = await e!.call('guest-set-user-password', { ...args, crypted: false });
    assert.equal(a.error, { class: 'GenericError', desc }, JSON.stringify(args));
  }
  assert.equal(fx!.calls(), []);
  fx!.stub('/usr/sbin/chpasswd', { exit: 1 });
  a = await e!.call('guest-set-user-password', { username: 'nobody-here', password: b64('pw'), crypted: false });
  assert.equal(a.error, { class: 'GenericError', desc: 'child process has failed to set user password' });
});

test('guest-info: the commands listed, shutdown and suspend without a success answer', async ({ e }) => {
  const info = await e!.ok<{ supported_commands: { name: string; 'success-response': boolean }[] }>('guest-info');
  for (const name of MINE) {
    const c = info.supported_commands.find((x) => x.name === name);
    assert.ok(c, name);
    assert.is(c!['success-response'], !(name === 'guest-shutdown' || name.startsWith('guest-suspend-')), name);
  }
});

test.run();
