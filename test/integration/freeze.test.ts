// fs-freeze, fs-unfreeze, get-freeze-status against real filesystems: ext4 images loop-mounted
// in a temp dir. Never this machine's own filesystems: every agent gets a fixture mount table
// (--mounts-file) listing only these loop mounts, and scripts/freeze-guard.js runs for the
// whole suite (the last test asserts it never had to thaw anything). Every test that freezes
// runs inside withThawGuard(): it thaws in `finally` through the library API, and a timer thaws
// with util-linux fsfreeze (another process: immune to anything stuck in this one) if the test
// hangs. Blocked writers are child processes, so nothing here waits on one without a thaw path.
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { freeze, thaw } from '../../lib';
import { CLI, errorMessage, LineClient, startAgent, type RunningAgent } from '../helpers/agent';
import {
  frozenSet,
  mountLoops,
  needs,
  ready,
  unmountLoops,
  withThawGuard,
  writer,
  type LoopMounts,
} from '../helpers/loop-mounts';
import { sleep, suite, waitFor } from '../helpers/harness';

type Ctx = LoopMounts;

const test = suite<Ctx>('freeze', {} as Ctx);

test.before(async (ctx) => {
  if (ready()) await mountLoops(ctx, 'ember-ga-freeze-'); // else the tests report what is missing (a failure under CI)
});
test.after((ctx) => unmountLoops(ctx));

/** Runs fn with an agent reading `mountsFile` (default: the loop mounts as /dev/loopN) and a client. */
async function withAgent(
  ctx: Ctx,
  flags: string[],
  fn: (c: LineClient, agent: RunningAgent) => Promise<void>,
  mountsFile = ctx.table,
): Promise<void> {
  const agent = await startAgent(['--mounts-file', mountsFile, ...flags]);
  const c = await agent.connect();
  try {
    await fn(c, agent);
  } finally {
    c.close();
    await agent.stop();
  }
}

const status = (c: LineClient) => c.ok('get-freeze-status');

test(
  'fs-freeze by mountpoints is real: a writer blocks until fs-unfreeze, then completes',
  (ctx) =>
    withThawGuard(ctx, () =>
      withAgent(ctx, [], async (c) => {
        assert.is(await status(c), false);
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a, ctx.c] }), true);
        assert.is(await status(c), true);
        assert.equal(await frozenSet(ctx), ['a', 'with space']);
        const wa = writer(ctx.a);
        const wc = writer(ctx.c);
        const wb = writer(ctx.b);
        assert.is(await wb.exited, 0, 'b was not asked for: it stays writable');
        await sleep(700);
        assert.is(wa.proc.exitCode, null, 'the writer on a is blocked');
        assert.is(wc.proc.exitCode, null, 'the writer on "with space" is blocked');
        assert.is(await c.ok('fs-unfreeze'), true);
        assert.is(await wa.exited, 0);
        assert.is(await wc.exited, 0);
        assert.is(fs.statSync(wa.file).size, 16384);
        assert.is(await status(c), false);
        assert.equal(await frozenSet(ctx), []);
      }),
    ),
  { needs, timeout: 30_000 },
);

test(
  'fs-freeze with the default rules freezes exactly what the mount table selects',
  (ctx) =>
    withThawGuard(ctx, async () => {
      // a and "with space" listed under /dev names that are no loop device (nothing opens a
      // source: the mount point is what gets frozen); b behind every kind of entry the rules skip.
      const q = (p: string) => p.replace(/ /g, '\\040');
      const dev = `/dev/ember-test-${process.pid}`;
      const table = [
        `proc /proc proc rw 0 0`,
        `${dev}-a ${q(ctx.a)} ext4 rw 0 0`,
        `${dev}-a ${q(ctx.b)} ext4 rw 0 0`, // a bind mount of a's device: skipped
        `${ctx.loop[ctx.b]} ${q(ctx.b)} ext4 rw 0 0`, // a loop device
        `//server/share ${q(ctx.b)} cifs rw 0 0`,
        `//server/old ${q(ctx.b)} smbfs rw 0 0`,
        `tmpfs ${q(ctx.b)} tmpfs rw 0 0`,
        `overlay ${q(ctx.b)} overlay rw 0 0`,
        `/dev/mapper/ember-test-${process.pid} ${q(ctx.b)} ext4 rw 0 0`,
        `/dev/dm-99 ${q(ctx.b)} ext4 rw 0 0`,
        `${dev}-c ${q(ctx.c)} ext4 rw 0 0`,
      ].join('\n');
      const file = path.join(ctx.dir, 'default-rules-mounts');
      fs.writeFileSync(file, table + '\n');
      await withAgent(
        ctx,
        [],
        async (c, agent) => {
          assert.is(await c.ok('fs-freeze'), true);
          assert.equal(await frozenSet(ctx), ['a', 'with space']);
          assert.match(agent.stderr(), `frozen: ${ctx.a}, ${ctx.c}`);
          assert.is(await c.ok('fs-unfreeze'), true);
          assert.equal(await frozenSet(ctx), []);
        },
        file,
      );
    }),
  { needs },
);

test(
  'auto-thaw: after the timeout argument, and after --freeze-timeout; timeout 0 never thaws',
  (ctx) =>
    withThawGuard(ctx, () =>
      withAgent(ctx, ['--freeze-timeout', '1'], async (c, agent) => {
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a], timeout: 0.5 }), true);
        assert.equal(await frozenSet(ctx), ['a']);
        await waitFor(async () => (await status(c)) === false, 5_000, 'the auto-thaw (timeout 0.5)');
        assert.equal(await frozenSet(ctx), []);
        assert.match(agent.stderr(), /no fs-unfreeze within 0\.5 s: thawing .*\/a by itself/);
        assert.match(agent.stderr(), /auto-thaw: every filesystem thawed/);

        const t0 = Date.now();
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.b] }), true);
        await waitFor(async () => (await status(c)) === false, 5_000, 'the auto-thaw (--freeze-timeout 1)');
        assert.ok(Date.now() - t0 >= 900, 'not before the second');
        assert.equal(await frozenSet(ctx), []);

        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a], timeout: 0 }), true);
        await sleep(1_500);
        assert.is(await status(c), true, 'timeout 0: still frozen');
        assert.equal(await frozenSet(ctx), ['a']);
        assert.is(await c.ok('fs-unfreeze'), true);
      }),
    ),
  { needs },
);

test(
  'all or nothing: when a later mount point fails, the earlier ones are thawed and status is false',
  (ctx) =>
    withThawGuard(ctx, () =>
      withAgent(ctx, [], async (c) => {
        const missing = path.join(ctx.dir, 'no-such-dir');
        let a = await c.call('fs-freeze', { mountpoints: [ctx.a, ctx.b, missing] });
        assert.is(errorMessage(a), `open ${missing}: no such file or directory`);
        assert.is(a.error!.code, 2);
        assert.is(await status(c), false);
        assert.equal(await frozenSet(ctx), []);

        const file = path.join(ctx.dir, 'a.img'); // a file, not a directory
        a = await c.call('fs-freeze', { mountpoints: [ctx.c, file] });
        assert.is(a.error!.code, 20, errorMessage(a)); // ENOTDIR
        assert.is(await status(c), false);
        assert.equal(await frozenSet(ctx), []);

        // Nothing is held: a new freeze is accepted.
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.b] }), true);
        assert.is(await c.ok('fs-unfreeze'), true);
      }),
    ),
  { needs },
);

test(
  'tolerated: a filesystem that cannot freeze (tmpfs, EOPNOTSUPP) and one already frozen (EBUSY)',
  (ctx) =>
    withThawGuard(ctx, async () => {
      const tmp = path.join(ctx.dir, 'tmpfs');
      fs.mkdirSync(tmp, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'ember-test', tmp]);
      try {
        await freeze(ctx.b); // frozen before the agent is asked: EBUSY
        await withAgent(ctx, [], async (c) => {
          assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a, tmp, ctx.b] }), true);
          assert.equal(await frozenSet(ctx), ['a', 'b']);
          assert.is(await c.ok('fs-unfreeze'), true);
          assert.equal(await frozenSet(ctx), [], 'b was held with the others and thawed too');
        });
      } finally {
        await thaw(ctx.b).catch(() => {});
        execFileSync('umount', [tmp]);
      }
    }),
  { needs },
);

test(
  'freezing nothing is an error: status stays false and other commands still work',
  (ctx) =>
    withThawGuard(ctx, async () => {
      // Only filesystems the default rules skip; then a tmpfs named explicitly (EOPNOTSUPP).
      const table = path.join(ctx.dir, 'nothing-freezable-mounts');
      fs.writeFileSync(table, 'proc /proc proc rw 0 0\ntmpfs /run tmpfs rw 0 0\n/dev/loop7 /snap/x squashfs ro 0 0\n');
      const tmp = path.join(ctx.dir, 'tmpfs-only');
      fs.mkdirSync(tmp, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'ember-test', tmp]);
      try {
        await withAgent(
          ctx,
          [],
          async (c) => {
            let a = await c.call('fs-freeze');
            assert.is(
              errorMessage(a),
              `Nothing to freeze: the default rules skip every filesystem in ${table} (not a block device: /proc (proc), /run (tmpfs); a loop device: /snap/x (squashfs))`,
            );
            assert.is(a.error!.code, -1);
            assert.is(await status(c), false);
            a = await c.call('fs-freeze', { mountpoints: [tmp] });
            assert.is(
              errorMessage(a),
              `Nothing was frozen: ${tmp} cannot be frozen (EOPNOTSUPP: the filesystem type does not support freezing)`,
            );
            assert.is(await status(c), false);
            assert.is(
              ((await c.ok('file-stat', { path: tmp })) as { isdir: boolean }).isdir,
              true,
              'commands are not refused as frozen',
            );
            assert.is(
              await c.ok('fs-freeze', { mountpoints: [tmp, ctx.a] }),
              true,
              'with something freezable it freezes',
            );
            assert.equal(await frozenSet(ctx), ['a']);
            assert.is(await c.ok('fs-unfreeze'), true);
          },
          table,
        );
      } finally {
        execFileSync('umount', [tmp]);
      }
    }),
  { needs },
);

test(
  'while frozen other commands are refused; double freeze refused, double thaw fine',
  (ctx) =>
    withThawGuard(ctx, () =>
      withAgent(ctx, [], async (c) => {
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a] }), true);
        let a = await c.call('agent-shutdown');
        assert.is(errorMessage(a), 'All filesystems are frozen. Cannot execute: agent-shutdown');
        assert.is(a.error!.code, -1);
        a = await c.call('fs-freeze', { mountpoints: [ctx.b] });
        assert.is(errorMessage(a), 'All filesystems are frozen. Cannot execute: fs-freeze');
        assert.equal(await frozenSet(ctx), ['a'], 'the refused freeze froze nothing');
        assert.is(typeof (await c.ok('ping')), 'string');
        assert.ok(((await c.ok('get-commands')) as string[]).includes('get-freeze-status'));
        assert.is(await status(c), true);
        assert.is(await c.ok('fs-unfreeze'), true);
        assert.is(await c.ok('fs-unfreeze'), true, 'a second fs-unfreeze is no error');
        assert.is(await status(c), false);
        assert.equal(await frozenSet(ctx), []);
      }),
    ),
  { needs },
);

test(
  'fs-freeze and fs-unfreeze in one write: the unfreeze cancels the freeze, nothing stays frozen',
  (ctx) =>
    withThawGuard(ctx, () =>
      withAgent(ctx, [], async (c) => {
        c.send(
          JSON.stringify({ execute: 'fs-freeze', arguments: { mountpoints: [ctx.a, ctx.b] }, tag: 'f' }) +
            '\r\n' +
            JSON.stringify({ execute: 'fs-unfreeze', tag: 'u' }) +
            '\r\n',
        );
        const answers = await c.waitLines(2);
        const f = answers.find((a) => a.tag === 'f')!;
        const u = answers.find((a) => a.tag === 'u')!;
        assert.match(errorMessage(f), /^fs-freeze cancelled/);
        assert.is(u.return, true);
        c.lines.length = 0;
        assert.is(await status(c), false);
        assert.equal(await frozenSet(ctx), []);
      }),
    ),
  { needs },
);

test(
  'fs-unfreeze with no freeze held thaws what the mount table selects (a previous agent died frozen)',
  (ctx) =>
    withThawGuard(ctx, async () => {
      const file = path.join(ctx.dir, 'recover-mounts');
      fs.writeFileSync(file, `/dev/ember-test-${process.pid}-a ${ctx.a} ext4 rw 0 0\n`);
      await freeze(ctx.a);
      await withAgent(
        ctx,
        [],
        async (c) => {
          assert.is(await status(c), false, 'this agent holds no freeze');
          assert.is(await c.ok('fs-unfreeze'), true);
          assert.equal(await frozenSet(ctx), []);
        },
        file,
      );
    }),
  { needs },
);

test(
  'bad arguments: clear errors, nothing frozen, the agent keeps serving',
  (ctx) =>
    withThawGuard(ctx, () =>
      withAgent(ctx, [], async (c) => {
        const bad: [Record<string, unknown>, RegExp][] = [
          [{ mountpoints: [] }, /^Invalid argument "mountpoints": expected at least one mount point/],
          [
            { mountpoints: ['relative/dir'] },
            /^Invalid argument "mountpoints": "relative\/dir" is not an absolute path$/,
          ],
          [{ mountpoints: ctx.a }, /^Invalid argument "mountpoints": expected an array of strings, got a string$/],
          [{ mountpoints: [ctx.a, 7] }, /^Invalid argument "mountpoints": expected an array of strings/],
          [
            { mountpoints: [ctx.a], timeout: -1 },
            /^Invalid argument "timeout": expected a number from 0 to 2147483, got -1$/,
          ],
          [{ mountpoints: [ctx.a], timeout: 'soon' }, /^Invalid argument "timeout": expected a number, got a string$/],
          [
            { mountpoints: [ctx.a], timeout: 1e12 },
            /^Invalid argument "timeout": expected a number from 0 to 2147483, got 1000000000000$/,
          ],
        ];
        for (const [args, re] of bad) {
          const a = await c.call('fs-freeze', args);
          assert.match(errorMessage(a), re);
          assert.is(await status(c), false);
        }
        assert.equal(await frozenSet(ctx), []);
        assert.is(typeof (await c.ok('ping')), 'string');
      }),
    ),
  { needs },
);

test(
  'a thaw is never queued behind writers blocked on the frozen filesystem (thread pool full)',
  (ctx) =>
    withThawGuard(
      ctx,
      async () => {
        // In this process: 8 writes to a frozen filesystem occupy all 4 libuv pool threads.
        await freeze(ctx.a);
        let done = 0;
        const writes = Array.from({ length: 8 }, (_, i) =>
          fs.promises.writeFile(path.join(ctx.a, `pool-${i}`), 'x').then(() => done++),
        );
        await sleep(300);
        assert.is(done, 0, 'the writes are blocked');
        const thawed = await thaw(ctx.a); // on the pool this would wait forever
        assert.equal(thawed, { mountpoint: ctx.a, frozen: false });
        await Promise.all(writes);
        assert.is(done, 8);
      },
      10_000,
    ),
  { needs },
);

test(
  'stderr redirected to a file on the frozen filesystem: the agent still answers and auto-thaws',
  (ctx) =>
    withThawGuard(ctx, async () => {
      // Node writes to a file synchronously: one log line written while frozen would hang the
      // event loop for good. The freezer holds its log lines back until the thaw.
      const logFile = path.join(ctx.a, 'agent.log');
      const fd = fs.openSync(logFile, 'a');
      const socket = path.join(ctx.dir, 'stderr-file.sock');
      const proc = spawn(process.execPath, [CLI, '--listen', `unix:${socket}`, '--mounts-file', ctx.table], {
        stdio: ['ignore', 'ignore', fd],
      });
      fs.closeSync(fd);
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      try {
        await waitFor(() => fs.readFileSync(logFile, 'utf8').includes('serving on'), 10_000, 'the agent to start');
        const c = await LineClient.connect(socket);
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a], timeout: 0.5 }, 5_000), true);
        assert.is(await status(c), true);
        await waitFor(async () => (await status(c)) === false, 5_000, 'the auto-thaw');
        assert.equal(await frozenSet(ctx), []);
        c.close();
        const log = fs.readFileSync(logFile, 'utf8');
        assert.match(log, /frozen: .*\/a; thawing by itself in 0.5 s \(at .*, held back while frozen\)/);
        assert.match(log, /auto-thaw: every filesystem thawed/);
      } finally {
        proc.kill('SIGTERM');
        await exited;
      }
    }),
  { needs },
);

test(
  'stderr a file on the frozen filesystem, --debug, the host reconnecting: every log line is held, fs-unfreeze answers',
  (ctx) =>
    withThawGuard(ctx, async () => {
      // Not only the freezer logs: the dispatcher (--debug) and the transport (host connected /
      // disconnected) do too, and any of their lines written while frozen would hang the agent.
      const logFile = path.join(ctx.a, 'agent-debug.log');
      const fd = fs.openSync(logFile, 'a');
      const socket = path.join(ctx.dir, 'stderr-debug.sock');
      const proc = spawn(process.execPath, [CLI, '--debug', '--listen', `unix:${socket}`, '--mounts-file', ctx.table], {
        stdio: ['ignore', 'ignore', fd],
      });
      fs.closeSync(fd);
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      try {
        await waitFor(() => fs.readFileSync(logFile, 'utf8').includes('serving on'), 10_000, 'the agent to start');
        let c = await LineClient.connect(socket);
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a], timeout: 0 }, 5_000), true);
        c.close(); // "host disconnected" is logged while frozen
        c = await LineClient.connect(socket);
        assert.is(await status(c), true);
        assert.is(await c.ok('fs-unfreeze', undefined, 5_000), true);
        assert.equal(await frozenSet(ctx), []);
        c.close();
        await waitFor(
          () => /host disconnected \(at .*, held back while frozen\)/.test(fs.readFileSync(logFile, 'utf8')),
          5_000,
          'the held lines',
        );
      } finally {
        proc.kill('SIGTERM');
        await exited;
      }
    }),
  { needs },
);

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  test(
    `${sig} thaws before the agent exits`,
    (ctx) =>
      withThawGuard(ctx, async () => {
        const agent = await startAgent(['--mounts-file', ctx.table]);
        const c = await agent.connect();
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a, ctx.b] }), true);
        const w = writer(ctx.b);
        agent.proc.kill(sig);
        assert.is(await agent.exited, 0);
        c.close();
        await agent.stop();
        assert.equal(await frozenSet(ctx), []);
        assert.is(await w.exited, 0, 'the blocked writer completed');
        assert.match(agent.stderr(), /exiting: thawing .*\/a, .*\/b/);
      }),
    { needs },
  );
}

test(
  'a fatal error (uncaught exception) thaws before the agent exits',
  (ctx) =>
    withThawGuard(ctx, async () => {
      // Preloaded into the agent: SIGUSR2 throws from the event loop, an uncaught exception.
      const hook = path.join(ctx.dir, 'fatal-hook.js');
      fs.writeFileSync(
        hook,
        "process.on('SIGUSR2', () => setImmediate(() => { throw new Error('fatal error injected by the test'); }));\n",
      );
      const saved = process.env.NODE_OPTIONS;
      process.env.NODE_OPTIONS = `--require ${hook}`;
      let agent: RunningAgent;
      try {
        agent = await startAgent(['--mounts-file', ctx.table]);
      } finally {
        if (saved === undefined) delete process.env.NODE_OPTIONS;
        else process.env.NODE_OPTIONS = saved;
      }
      const c = await agent.connect();
      try {
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a] }), true);
        agent.proc.kill('SIGUSR2');
        assert.is(await agent.exited, 1);
        assert.match(agent.stderr(), /fatal: Error: fatal error injected by the test/);
        assert.equal(await frozenSet(ctx), []);
      } finally {
        c.close();
        await agent.stop();
      }
    }),
  { needs },
);

test(
  "freeze-guard never had to thaw this machine's own filesystems",
  async (ctx) => {
    const { code, report } = await ctx.guard.stop();
    assert.equal(report.thawed, [], 'freeze-guard thawed something');
    assert.is(code, 0);
    assert.ok(report.guarded.length > 0, 'it was guarding at least the root filesystem');
  },
  { needs },
);

test.run();
