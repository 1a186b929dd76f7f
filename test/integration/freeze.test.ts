// phoenix's fs-freeze, fs-unfreeze, get-freeze-status against real filesystems: ext4 images
// loop-mounted in a temp dir. The scenarios qemu-ga shares (writers blocked, roll-back, EBUSY,
// nothing to freeze, recovery, refusals while frozen, bad arguments) are in
// test/helpers/freeze-scenarios.ts, run here with phoenix's requests and answers; the rest are
// phoenix's own. Never this machine's own filesystems: every agent gets a fixture mount table
// (--mounts-file) listing only these loop mounts, and scripts/freeze-guard.js runs for the whole
// suite (the last test asserts it never had to thaw anything). Every test that freezes runs inside
// withThawGuard(): it thaws in `finally` through the library API, and a timer thaws with
// util-linux fsfreeze (another process: immune to anything stuck in this one) if the test hangs.
// Blocked writers are child processes, so nothing here waits on one without a thaw path.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { freeze, thaw } from '../../lib';
import { CLI, errorMessage, LineClient, startAgent, type RunningAgent } from '../helpers/agent';
import { freezeSuite, runFreezeSuite, withFreezeAgent, type FreezeProtocol } from '../helpers/freeze-scenarios';
import {
  frozenSet,
  isFrozen,
  needs,
  withNonUtf8Mount,
  withThawGuard,
  writer,
  type LoopMounts,
} from '../helpers/loop-mounts';
import { sleep, waitFor } from '../helpers/harness';

type Ctx = LoopMounts;

const phoenix: FreezeProtocol<LineClient> = {
  async start(flags) {
    const agent = await startAgent(flags);
    return { agent, client: await agent.connect() };
  },
  status: (c) => c.ok('get-freeze-status'),
  thawed: false,
  frozen: true,
  freeze: (c, mountpoints) => c.ok('fs-freeze', mountpoints && { mountpoints }),
  thaw: (c) => c.ok('fs-unfreeze'),
  alive: async (c) => assert.is(typeof (await c.ok('ping')), 'string'),
  scenarios: {
    writerBlocks: {
      name: 'fs-freeze by mountpoints is real: a writer blocks until fs-unfreeze, then completes',
      mountpoints: (ctx) => [ctx.a, ctx.c],
      answer: true,
      frozen: ['a', 'with space'],
      blocked: (ctx) => [ctx.a, ctx.c],
      free: (ctx) => [ctx.b],
      thawAnswer: true,
      thawAgain: true,
    },
    rollback: {
      name: 'all or nothing: when a later mount point fails, the earlier ones are thawed and status is false',
      failures: [
        async (c, ctx) => {
          const missing = path.join(ctx.dir, 'no-such-dir');
          const a = await c.call('fs-freeze', { mountpoints: [ctx.a, ctx.b, missing] });
          assert.is(errorMessage(a), `open ${missing}: no such file or directory`);
          assert.is(a.error!.code, 2);
        },
        async (c, ctx) => {
          const file = path.join(ctx.dir, 'a.img'); // a file, not a directory
          const a = await c.call('fs-freeze', { mountpoints: [ctx.c, file] });
          assert.is(a.error!.code, 20, errorMessage(a)); // ENOTDIR
        },
      ],
      again: true,
      thawAnswer: true,
    },
    heldElsewhere: {
      name: 'tolerated: a filesystem that cannot freeze (tmpfs, EOPNOTSUPP) and one already frozen (EBUSY)',
      tmpfs: true,
      mountpoints: (ctx, tmp) => [ctx.a, tmp, ctx.b],
      answer: true,
      frozen: ['a', 'b'],
      thawAnswer: true,
    },
    nothingToFreeze: {
      name: 'freezing nothing is an error: status stays false and other commands still work',
      // Only filesystems the default rules skip; then a tmpfs named explicitly (EOPNOTSUPP).
      tmpfs: true,
      table: (ctx) => {
        const table = path.join(ctx.dir, 'nothing-freezable-mounts');
        fs.writeFileSync(
          table,
          'proc /proc proc rw 0 0\ntmpfs /run tmpfs rw 0 0\n/dev/loop7 /snap/x squashfs ro 0 0\n',
        );
        return table;
      },
      attempts: [
        async (c, ctx) => {
          const a = await c.call('fs-freeze');
          assert.is(
            errorMessage(a),
            `Nothing to freeze: the default rules skip every filesystem in ${path.join(ctx.dir, 'nothing-freezable-mounts')} (not a block device: /proc (proc), /run (tmpfs); a loop device: /snap/x (squashfs))`,
          );
          assert.is(a.error!.code, -1);
        },
        async (c, _ctx, tmp) => {
          const a = await c.call('fs-freeze', { mountpoints: [tmp] });
          assert.is(
            errorMessage(a),
            `Nothing was frozen: ${tmp} cannot be frozen (EOPNOTSUPP: the filesystem type does not support freezing)`,
          );
        },
      ],
      served: async (c, tmp) =>
        assert.is(
          ((await c.ok('file-stat', { path: tmp })) as { isdir: boolean }).isdir,
          true,
          'commands are not refused as frozen',
        ),
      freezeSomething: (c, ctx, tmp) => c.ok('fs-freeze', { mountpoints: [tmp, ctx.a] }),
      answer: true,
      frozen: ['a'],
      thawAnswer: true,
    },
    recover: {
      name: 'fs-unfreeze with no freeze held thaws what the mount table selects (a previous agent died frozen)',
      mount: (ctx) => ctx.a,
      table: (ctx) => {
        const file = path.join(ctx.dir, 'recover-mounts');
        fs.writeFileSync(file, `/dev/ember-test-${process.pid}-a ${ctx.a} ext4 rw 0 0\n`);
        return file;
      },
      thawAnswer: true,
    },
    refusedWhileFrozen: {
      name: 'while frozen other commands are refused; double freeze refused, double thaw fine',
      answer: true,
      refused: [{ execute: 'agent-shutdown' }, { execute: 'fs-freeze', args: (ctx) => ({ mountpoints: [ctx.b] }) }],
      refusal: async (c, execute, args) => {
        const a = await c.call(execute, args);
        assert.is(errorMessage(a), `All filesystems are frozen. Cannot execute: ${execute}`);
        assert.is(a.error!.code, -1);
      },
      served: async (c) => assert.ok(((await c.ok('get-commands')) as string[]).includes('get-freeze-status')),
      thawAnswer: true,
      thawAgain: true,
    },
    badArguments: {
      name: 'bad arguments: clear errors, nothing frozen, the agent keeps serving',
      cases: (ctx) => [
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
      ],
      refusal: async (c, args, re) => assert.match(errorMessage(await c.call('fs-freeze', args)), re as RegExp),
    },
  },
};

const test = freezeSuite('freeze', 'ember-ga-freeze-', phoenix);

/** Runs fn with an agent reading `mountsFile` (default: the loop mounts as /dev/loopN) and a client. */
const withAgent = (
  ctx: Ctx,
  flags: string[],
  fn: (c: LineClient, stderr: () => string) => Promise<void>,
  mountsFile?: string,
): Promise<void> => withFreezeAgent(phoenix, ctx, flags, fn, mountsFile);

const status = (c: LineClient) => c.ok('get-freeze-status');

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
        async (c, stderr) => {
          assert.is(await c.ok('fs-freeze'), true);
          assert.equal(await frozenSet(ctx), ['a', 'with space']);
          assert.match(stderr(), `frozen: ${ctx.a}, ${ctx.c}`);
          assert.is(await c.ok('fs-unfreeze'), true);
          assert.equal(await frozenSet(ctx), []);
        },
        file,
      );
    }),
  { needs },
);

test(
  'a mount point whose name is not UTF-8 (m\\xff) is frozen by its bytes with the default rules, and thawed',
  (ctx) =>
    withNonUtf8Mount(ctx, async (m) => {
      // Under /dev names that are no loop device, as above; the mount table lists the bytes.
      const dev = `/dev/ember-test-${process.pid}`;
      const table = m.table('non-utf8-mounts', [
        `${dev}-a ${ctx.a} ext4 rw 0 0`,
        Buffer.concat([Buffer.from(`${dev}-m `), m.bytes, Buffer.from(' ext4 rw 0 0')]),
      ]);
      await withAgent(
        ctx,
        [],
        async (c, stderr) => {
          assert.is(await c.ok('fs-freeze'), true);
          assert.ok(await isFrozen(m.alias), 'm\\xff is frozen');
          assert.equal(await frozenSet(ctx), ['a']);
          // Named as qemu-ga's JSON writer names it.
          assert.match(stderr(), `frozen: ${ctx.a}, ${ctx.dir}/m\ufffd;`);
          assert.is(await c.ok('fs-unfreeze'), true);
          assert.not.ok(await isFrozen(m.alias), 'm\\xff is thawed');
          assert.equal(await frozenSet(ctx), []);
        },
        table,
      );
      // A missing one fails the freeze, named as qemu-ga's writer names it ("\xf0\x80\x80" is
      // one U+FFFD there), and the freeze rolls back.
      const gone = Buffer.concat([Buffer.from(`${ctx.dir}/gone`), Buffer.from([0xf0, 0x80, 0x80]), Buffer.from('b')]);
      const partial = m.table('non-utf8-gone-mounts', [
        Buffer.concat([Buffer.from(`${dev}-m `), m.bytes, Buffer.from(' ext4 rw 0 0')]),
        Buffer.concat([Buffer.from(`${dev}-gone `), gone, Buffer.from(' ext4 rw 0 0')]),
      ]);
      await withAgent(
        ctx,
        [],
        async (c) => {
          const a = await c.call('fs-freeze');
          assert.is(errorMessage(a), `open ${ctx.dir}/gone\ufffdb: no such file or directory`);
          assert.is(a.error!.code, 2);
          assert.not.ok(await isFrozen(m.alias), 'rolled back');
          assert.is(await status(c), false);
        },
        partial,
      );
    }),
  { needs },
);

test(
  'auto-thaw: after the timeout argument, and after --freeze-timeout; timeout 0 never thaws',
  (ctx) =>
    withThawGuard(ctx, () =>
      withAgent(ctx, ['--freeze-timeout', '1'], async (c, stderr) => {
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a], timeout: 0.5 }), true);
        assert.equal(await frozenSet(ctx), ['a']);
        await waitFor(async () => (await status(c)) === false, 5_000, 'the auto-thaw (timeout 0.5)');
        assert.equal(await frozenSet(ctx), []);
        assert.match(stderr(), /no fs-unfreeze within 0\.5 s: thawing .*\/a by itself/);
        assert.match(stderr(), /auto-thaw: every filesystem thawed/);

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

/**
 * Runs fn once an agent with `flags` serves on a socket, its stderr the file `log` on a's
 * filesystem (which fn freezes); the agent is stopped after.
 */
async function withStderrOnA(
  ctx: Ctx,
  log: string,
  flags: string[],
  fn: (socket: string, logFile: string) => Promise<void>,
): Promise<void> {
  const logFile = path.join(ctx.a, `${log}.log`);
  const fd = fs.openSync(logFile, 'a');
  const socket = path.join(ctx.dir, `${log}.sock`);
  const proc = spawn(process.execPath, [CLI, ...flags, '--listen', `unix:${socket}`, '--mounts-file', ctx.table], {
    stdio: ['ignore', 'ignore', fd],
  });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    await waitFor(() => fs.readFileSync(logFile, 'utf8').includes('serving on'), 10_000, 'the agent to start');
    await fn(socket, logFile);
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
}

test(
  'stderr redirected to a file on the frozen filesystem: the agent still answers and auto-thaws',
  (ctx) =>
    withThawGuard(ctx, async () => {
      // Node writes to a file synchronously: one log line written while frozen would hang the
      // event loop for good. The freezer holds its log lines back until the thaw.
      await withStderrOnA(ctx, 'stderr-file', [], async (socket, logFile) => {
        const c = await LineClient.connect(socket);
        assert.is(await c.ok('fs-freeze', { mountpoints: [ctx.a], timeout: 0.5 }, 5_000), true);
        assert.is(await status(c), true);
        await waitFor(async () => (await status(c)) === false, 5_000, 'the auto-thaw');
        assert.equal(await frozenSet(ctx), []);
        c.close();
        const log = fs.readFileSync(logFile, 'utf8');
        assert.match(log, /frozen: .*\/a; thawing by itself in 0.5 s \(at .*, held back while frozen\)/);
        assert.match(log, /auto-thaw: every filesystem thawed/);
      });
    }),
  { needs },
);

test(
  'stderr a file on the frozen filesystem, --debug, the host reconnecting: every log line is held, fs-unfreeze answers',
  (ctx) =>
    withThawGuard(ctx, async () => {
      // Not only the freezer logs: the dispatcher (--debug) and the transport (host connected /
      // disconnected) do too, and any of their lines written while frozen would hang the agent.
      await withStderrOnA(ctx, 'stderr-debug', ['--debug'], async (socket, logFile) => {
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
      });
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

runFreezeSuite(test);
