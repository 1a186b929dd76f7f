// scripts/freeze-guard.js, the freeze tests' safety net, tested without freezing anything of
// this machine's own: a fixture mount table (--mounts-file) points it at ext4 images this test
// loop-mounts, and only those are frozen (fsfreeze -f on the loop mount), thawed in `finally`.
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { freeze, parseMountTable } from '../../lib';
import { mountExt4Image, tmpDir } from '../helpers/agent';
import { FREEZE_GUARD, startFreezeGuard, type RunningGuard } from '../helpers/freeze-guard';
import { command, root, suite, waitFor, withTimeout } from '../helpers/harness';

const test = suite('freeze-guard');
const guardRun = (args: string[]) => spawnSync(process.execPath, [FREEZE_GUARD, ...args], { encoding: 'utf8' });

test('usage: --help, and exit 2 for an unknown flag, a stray argument or a bad number', () => {
  let r = guardRun(['--help']);
  assert.is(r.status, 0);
  assert.match(r.stdout, /--report FILE/);
  for (const args of [['--bogus'], ['extra'], ['--interval', 'soon'], ['--interval', '0'], ['--max-seconds=-1']]) {
    r = guardRun(args);
    assert.is(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^freeze-guard: [^]*\nusage: /, args.join(' '));
  }
});

test(
  'guards the real mount table: block devices but loop devices; stops by itself after --max-seconds',
  async () => {
    const dir = tmpDir('ember-ga-freeze-guard-');
    try {
      const guard = await startFreezeGuard({ report: path.join(dir, 'guard.json'), maxSeconds: 0.5 });
      assert.is(await withTimeout(guard.exited, 5_000, 'the guard stopping by itself'), 0);
      const { report } = await guard.stop();
      assert.equal(report.thawed, []);
      // What it should guard, from the same table: each /dev source but /dev/loop* once, at its
      // first mount point that is a directory.
      const want: string[] = [];
      const seen = new Set<string>();
      for (const m of parseMountTable(fs.readFileSync('/proc/self/mounts', 'utf8'))) {
        if (!m.source.startsWith('/dev/') || m.source.startsWith('/dev/loop') || seen.has(m.source)) continue;
        if (!fs.statSync(m.mountpoint, { throwIfNoEntry: false })?.isDirectory()) continue;
        seen.add(m.source);
        want.push(m.mountpoint);
      }
      assert.equal(report.guarded, want);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs: [root] },
);

test(
  'thaws a loop-mounted image the test froze, records it and exits 1; skips loop, non-/dev and repeated sources and files',
  async () => {
    const dir = tmpDir('ember-ga-freeze-guard-');
    const a = path.join(dir, 'guarded a'); // a space: \040 in the table
    const b = path.join(dir, 'b');
    const mounted: string[] = [];
    let guard: RunningGuard | undefined;
    const thawAll = () => {
      for (const m of mounted) spawnSync('fsfreeze', ['--unfreeze', m], { stdio: 'ignore' }); // EINVAL when not frozen: fine
    };
    // If the test hangs, thaw from another process; `finally` thaws in any case.
    const timer = setTimeout(thawAll, 20_000);
    try {
      for (const m of [a, b]) {
        mountExt4Image(m);
        mounted.push(m);
      }
      const loopOfB = parseMountTable(fs.readFileSync('/proc/self/mounts', 'utf8')).find(
        (m) => m.mountpoint === b,
      )!.source;
      assert.match(loopOfB, /^\/dev\/loop/);
      // a under a /dev name that is no loop device, the way a machine's own disk is listed.
      const dev = `/dev/ember-guard-test-${process.pid}`;
      const table = path.join(dir, 'mounts');
      fs.writeFileSync(
        table,
        [
          'proc /proc proc rw 0 0',
          `tmpfs ${b} tmpfs rw 0 0`,
          `${dev} ${path.join(dir, 'b.img')} ext4 rw 0 0`, // a bind-mounted file: the device's next mount point is guarded
          `${dev} ${a.replace(/ /g, '\\040')} ext4 rw 0 0`,
          `${dev} ${b} ext4 rw 0 0`, // the same device again (a bind mount): skipped
          `${loopOfB} ${b} ext4 rw 0 0`, // a loop device: skipped
        ].join('\n') + '\n',
      );

      guard = await startFreezeGuard({
        report: path.join(dir, 'guard.json'),
        interval: 0.05,
        mountsFile: table,
        quiet: true,
      });
      execFileSync('fsfreeze', ['--freeze', b]);
      const t0 = Date.now() / 1000;
      execFileSync('fsfreeze', ['--freeze', a]);
      await waitFor(
        () => guard!.stderr().includes(`freeze-guard: ${a} was frozen; thawed it\n`),
        5_000,
        'the guard to thaw a',
      );
      const t1 = Date.now() / 1000;

      // a takes writes again (a child process: a write to a frozen a would block it, not us).
      const dd = spawn(
        'dd',
        ['if=/dev/zero', `of=${path.join(a, 'after-thaw')}`, 'bs=4096', 'count=4', 'conv=fsync', 'status=none'],
        { stdio: 'ignore' },
      );
      assert.is(await withTimeout(new Promise((r) => dd.once('exit', r)), 5_000, 'a write to a after the thaw'), 0);
      // b, listed only as a loop device or behind a repeated source, is still frozen.
      const probe = await freeze(b).then(
        () => 'froze it',
        (e: NodeJS.ErrnoException) => e.code,
      );
      assert.is(probe, 'EBUSY', 'b stays frozen: the guard left it alone');
      execFileSync('fsfreeze', ['--unfreeze', b]);

      const { code, report } = await guard.stop();
      assert.is(code, 1, 'it had to thaw: exit 1');
      assert.equal(report.guarded, [a]);
      assert.is(report.thawed.length, 1, JSON.stringify(report.thawed));
      assert.is(report.thawed[0].mountpoint, a);
      assert.ok(
        report.thawed[0].at >= t0 - 0.01 && report.thawed[0].at <= t1 + 0.01,
        `at ${report.thawed[0].at} within [${t0}, ${t1}]`,
      );
    } finally {
      clearTimeout(timer);
      thawAll();
      await guard?.stop().catch(() => {}); // it holds a open: stopped before the umount
      for (const m of mounted.reverse()) execFileSync('umount', [m]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs: [root, command('mkfs.ext4'), command('fsfreeze')] },
);

test.run();
