// qemu-ga's guest-fsfreeze-* and guest-fstrim against real filesystems: ext4 images loop-mounted
// in a temp dir, as test/integration/freeze.test.ts does. The scenarios phoenix shares (writers
// blocked, roll-back, EBUSY, nothing to freeze, recovery, refusals while frozen, bad arguments)
// are in test/helpers/freeze-scenarios.ts, run here with qemu-ga's requests, counts and error
// classes; the rest are qemu-ga's own. Never this machine's own filesystems, and never the real
// qemu-ga: every agent gets a fixture mount table (--mounts-file) listing only these loop mounts,
// scripts/freeze-guard.js runs for the whole suite (the last test asserts it never had to thaw
// anything), every test that freezes runs inside withThawGuard() (a thaw in `finally`, and
// fsfreeze --unfreeze from a timer if the test hangs), and blocked writers are child processes, so
// nothing here waits on one without a thaw path.
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { errorMessage, LineClient, tmpDir } from '../helpers/agent';
import { DUAL_AGENT } from '../helpers/dual-agent';
import { freezeSuite, runFreezeSuite, withFreezeAgent, type FreezeProtocol } from '../helpers/freeze-scenarios';
import {
  escapeMountPoint,
  frozenSet,
  isFrozen,
  needs,
  withNonUtf8Mount,
  withThawGuard,
  writer,
  type LoopMounts,
} from '../helpers/loop-mounts';
import { sleep, waitFor } from '../helpers/harness';
import { QmpClient, realQemuGa, startEmberQemuGa, startRealQemuGa, type QmpAnswer } from '../helpers/qemu-ga';

type Ctx = LoopMounts;

const q = escapeMountPoint;

function writeTable(ctx: Ctx, name: string, lines: string[]): string {
  const file = path.join(ctx.dir, name);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** The error of an answer that must fail. */
function error(a: QmpAnswer): { class: string; desc: string } {
  if (!a.error) throw new Error(`expected an error, got ${JSON.stringify(a)}`);
  return a.error;
}

const qemuGa: FreezeProtocol<QmpClient> = {
  async start(flags) {
    const agent = await startEmberQemuGa(flags);
    return { agent, client: await agent.qmp() };
  },
  status: (c) => c.ok<string>('guest-fsfreeze-status'),
  thawed: 'thawed',
  frozen: 'frozen',
  freeze: (c, mountpoints) =>
    mountpoints ? c.ok('guest-fsfreeze-freeze-list', { mountpoints }) : c.ok('guest-fsfreeze-freeze'),
  thaw: (c) => c.ok('guest-fsfreeze-thaw'),
  alive: async (c) => assert.equal(await c.ok('guest-ping'), {}),
  scenarios: {
    writerBlocks: {
      name: 'guest-fsfreeze-freeze freezes every filesystem of the table in reverse order; a writer stalls until the thaw; counts',
      answer: 3,
      frozen: ['a', 'b', 'with space'],
      afterFreeze: (ctx, stderr) => assert.match(stderr(), `frozen: ${ctx.c}, ${ctx.b}, ${ctx.a}`), // qemu-ga's order: last mounted first
      blocked: (ctx) => [ctx.b],
      thawAnswer: 3,
      thawAgain: 0,
    },
    rollback: {
      name: 'a failure part-way rolls back: what this froze is thawed, the error is qemu-ga, the agent stays thawed',
      // Frozen in reverse order: "with space", b, then the missing one fails.
      table: (ctx) =>
        writeTable(ctx, 'partial-mounts', [
          `/dev/ember-test-${process.pid} ${q(path.join(ctx.dir, 'gone'))} ext4 rw 0 0`,
          ...[ctx.b, ctx.c].map((m) => `${ctx.loop[m]} ${q(m)} ext4 rw 0 0`),
        ]),
      failures: [
        async (c, ctx, stderr) => {
          assert.equal(error(await c.call('guest-fsfreeze-freeze')), {
            class: 'GenericError',
            desc: `failed to open ${path.join(ctx.dir, 'gone')}: No such file or directory`,
          });
          assert.match(stderr(), `; thawing ${ctx.c}, ${ctx.b}`, 'the two frozen before the failure were rolled back');
        },
      ],
      again: 1,
      thawAnswer: 1,
    },
    heldElsewhere: {
      name: 'already frozen by someone else: not counted by the freeze, thawed and counted by the thaw (as qemu-ga)',
      answer: 2,
      frozen: ['a', 'b', 'with space'],
      thawAnswer: 3,
    },
    nothingToFreeze: {
      name: 'guest-fsfreeze-freeze-list with nothing listed in the table: 0 frozen, and the agent is not left frozen',
      attempts: [
        async (c, ctx) => {
          const unknown = path.join(ctx.dir, 'not-a-mount-point');
          assert.is(await c.ok('guest-fsfreeze-freeze-list', { mountpoints: [unknown, '/no/such/dir'] }), 0);
        },
        async (c) => assert.is(await c.ok('guest-fsfreeze-freeze-list', { mountpoints: [] }), 0),
      ],
      freezeSomething: (c) => c.ok('guest-fsfreeze-freeze-list', {}), // no list: everything
      answer: 3,
      frozen: ['a', 'b', 'with space'],
      thawAnswer: 3,
    },
    recover: {
      name: 'no freeze held: a thaw recovers what an earlier agent left frozen, and counts it (as qemu-ga)',
      mount: (ctx) => ctx.c,
      thawAnswer: 1,
    },
    refusedWhileFrozen: {
      name: 'while frozen only the allow-list is served; the rest get CommandNotFound with qemu-ga message',
      answer: 1,
      refused: ['guest-fsfreeze-freeze', 'guest-fsfreeze-freeze-list', 'guest-fstrim'].map((execute) => ({ execute })),
      refusal: async (c, name) =>
        assert.equal(error(await c.call(name)), {
          class: 'CommandNotFound',
          desc: `Command ${name} has been disabled: the agent is in frozen state`,
        }),
      served: async (c) => {
        assert.is(await c.ok('guest-sync', { id: 42 }), 42);
        const info = await c.ok<{ supported_commands: { name: string; enabled: boolean }[] }>('guest-info');
        const enabled = Object.fromEntries(info.supported_commands.map((x) => [x.name, x.enabled]));
        assert.equal(
          [
            'guest-fsfreeze-status',
            'guest-fsfreeze-freeze',
            'guest-fsfreeze-freeze-list',
            'guest-fsfreeze-thaw',
            'guest-fstrim',
          ].map((n) => enabled[n]),
          [true, false, false, true, false],
        );
      },
      thawAnswer: 1,
      thawAgain: 0,
      afterThaw: async (c) =>
        assert.equal(await c.ok('guest-fstrim', { minimum: 1 << 30 }).then(() => 'served'), 'served'),
    },
    badArguments: {
      name: "bad arguments: errors in qemu's words, nothing frozen, the agent keeps serving",
      cases: (ctx) => [
        [{ mountpoints: ctx.a }, "Invalid parameter type for 'mountpoints', expected: array"],
        [{ mountpoints: [ctx.a, 7] }, "Invalid parameter type for 'mountpoints[1]', expected: string"],
      ],
      refusal: async (c, args, desc) =>
        assert.equal(error(await c.call('guest-fsfreeze-freeze-list', args)), { class: 'GenericError', desc }),
    },
  },
};

const test = freezeSuite('qemu-ga-freeze', 'ember-ga-qga-freeze-', qemuGa);

const withQga = (
  ctx: Ctx,
  flags: string[],
  fn: (c: QmpClient, stderr: () => string) => Promise<void>,
  mountsFile?: string,
): Promise<void> => withFreezeAgent(qemuGa, ctx, flags, fn, mountsFile);

const status = (c: QmpClient) => c.ok<string>('guest-fsfreeze-status');

test(
  'guest-fsfreeze-freeze-list: only the listed mount points; one not in the table is ignored, as qemu-ga',
  (ctx) =>
    withThawGuard(ctx, () =>
      withQga(ctx, [], async (c, stderr) => {
        const unknown = path.join(ctx.dir, 'not-a-mount-point');
        assert.is(await c.ok('guest-fsfreeze-freeze-list', { mountpoints: [unknown, ctx.c, ctx.a] }), 2);
        assert.equal(await frozenSet(ctx), ['a', 'with space']);
        assert.match(stderr(), `frozen: ${ctx.c}, ${ctx.a}`, 'still in reverse mount order, not the list order');
        assert.match(stderr(), `ignored: ${unknown}`);
        assert.is(await c.ok('guest-fsfreeze-thaw'), 2);
        assert.equal(await frozenSet(ctx), []);
      }),
    ),
  { needs },
);

test(
  'a mount point whose name is not UTF-8 (m\\xff): frozen, thawed and trimmed by its bytes, named as qemu-ga names it',
  (ctx) =>
    withNonUtf8Mount(ctx, async (m) => {
      const line = (source: string, mp: Buffer) =>
        Buffer.concat([Buffer.from(`${source} `), mp, Buffer.from(' ext4 rw 0 0')]);
      const table = m.table('non-utf8-mounts', [
        ...fs.readFileSync(ctx.table, 'utf8').trimEnd().split('\n'),
        line(m.loop, m.bytes),
      ]);
      const name = `${ctx.dir}/m\ufffd`; // qemu's JSON writer: U+FFFD for the byte 0xff
      await withQga(
        ctx,
        [],
        async (c, stderr) => {
          assert.is(await c.ok('guest-fsfreeze-freeze'), 4);
          assert.ok(await isFrozen(m.alias), 'm\\xff is frozen');
          assert.equal(await frozenSet(ctx), ['a', 'b', 'with space']);
          assert.match(stderr(), `frozen: ${name}, ${ctx.c}, ${ctx.b}, ${ctx.a}`);
          assert.is(await c.ok('guest-fsfreeze-thaw'), 4);
          assert.not.ok(await isFrozen(m.alias), 'm\\xff is thawed');
          assert.equal(await frozenSet(ctx), []);
          // A host's list is JSON strings: "m\uFFFD" is not the name's bytes, so nothing is frozen.
          assert.is(await c.ok('guest-fsfreeze-freeze-list', { mountpoints: [name] }), 0);
          assert.not.ok(await isFrozen(m.alias));
          const trim = await c.ok<{ paths: { path: string; trimmed?: number; error?: string }[] }>('guest-fstrim');
          assert.is(trim.paths[0].path, name);
          assert.is(typeof trim.paths[0].trimmed, 'number', JSON.stringify(trim.paths[0]));
        },
        table,
      );
      // A missing one: qemu-ga's error names it through its writer ("\xf0\x80\x80" is one
      // U+FFFD there), and what was frozen before it is thawed.
      const gone = Buffer.concat([Buffer.from(`${ctx.dir}/gone`), Buffer.from([0xf0, 0x80, 0x80]), Buffer.from('b')]);
      const partial = m.table('non-utf8-gone-mounts', [
        line(`/dev/ember-test-${process.pid}`, gone),
        line(m.loop, m.bytes),
      ]);
      await withQga(
        ctx,
        [],
        async (c) => {
          assert.equal(error(await c.call('guest-fsfreeze-freeze')), {
            class: 'GenericError',
            desc: `failed to open ${ctx.dir}/gone\ufffdb: No such file or directory`,
          });
          assert.not.ok(await isFrozen(m.alias), 'rolled back');
          assert.is(await status(c), 'thawed');
        },
        partial,
      );
    }),
  { needs, timeout: 30_000 },
);

/** The dual agent (phoenix + qemu-ga on one Freezer) for the time fn takes. */
async function withDual(
  ctx: Ctx,
  flags: string[],
  fn: (p: LineClient, g: QmpClient, stderr: () => string) => Promise<void>,
): Promise<void> {
  const dir = tmpDir('ember-ga-dual-');
  const [ps, gs] = [path.join(dir, 'phoenix.sock'), path.join(dir, 'qga.sock')];
  const proc = spawn(process.execPath, [DUAL_AGENT, ps, gs, '--mounts-file', ctx.table, ...flags], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let p: LineClient | undefined;
  let g: QmpClient | undefined;
  try {
    await waitFor(
      () => {
        if (proc.exitCode !== null) throw new Error(`dual agent exited: ${err}`);
        return (err.match(/serving on/g) ?? []).length === 2;
      },
      10_000,
      'the dual agent to listen',
    );
    p = await LineClient.connect(ps);
    g = await QmpClient.connect(gs);
    await fn(p, g, () => err);
  } finally {
    p?.close();
    g?.close();
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test(
  'one freezer for both protocols: a qemu-ga freeze is seen and thawed by phoenix, and the other way round',
  (ctx) =>
    withThawGuard(ctx, () =>
      withDual(ctx, [], async (p, g) => {
        assert.is(await g.ok('guest-fsfreeze-freeze'), 3);
        assert.is(await p.ok('get-freeze-status'), true);
        let a = await p.call('fs-freeze', { mountpoints: [ctx.a] });
        assert.is(errorMessage(a), 'All filesystems are frozen. Cannot execute: fs-freeze');
        assert.is(await p.ok('fs-unfreeze'), true);
        assert.is(await g.ok('guest-fsfreeze-status'), 'thawed');
        assert.equal(await frozenSet(ctx), []);

        assert.is(await p.ok('fs-freeze', { mountpoints: [ctx.a, ctx.c] }), true);
        assert.is(await g.ok('guest-fsfreeze-status'), 'frozen');
        assert.equal(error(await g.call('guest-fsfreeze-freeze')), {
          class: 'CommandNotFound',
          desc: 'Command guest-fsfreeze-freeze has been disabled: the agent is in frozen state',
        });
        const w = writer(ctx.a);
        await sleep(500);
        assert.is(w.proc.exitCode, null, 'the writer on a is blocked');
        assert.is(await g.ok('guest-fsfreeze-thaw'), 2);
        assert.is(await w.exited, 0);
        assert.is(await p.ok('get-freeze-status'), false);
        assert.equal(await frozenSet(ctx), []);
        a = await p.call('fs-unfreeze');
        assert.is(a.return, true, 'a thaw after the other protocol thawed is fine');
      }),
    ),
  { needs },
);

test(
  'guest-fstrim trims every filesystem of the table: paths newest first, the space a deleted file held is discarded',
  (ctx) =>
    withThawGuard(ctx, () =>
      withQga(ctx, [], async (c) => {
        type Trim = { paths: { path: string; trimmed?: number; minimum?: number; error?: string }[] };
        let r = await c.ok<Trim>('guest-fstrim');
        assert.equal(
          r.paths.map((x) => x.path),
          [ctx.c, ctx.b, ctx.a],
        );
        for (const x of r.paths) {
          assert.is(x.error, undefined, JSON.stringify(x));
          assert.is(typeof x.trimmed, 'number');
          assert.ok(x.minimum! >= 0, JSON.stringify(x)); // the kernel raises 0 to the discard granularity
        }
        // 8 MiB written to b's image, deleted: the next trim gives it back to the image file.
        const img = `${ctx.b}.img`;
        const big = path.join(ctx.b, 'big');
        execFileSync('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1M', 'count=8', 'conv=fsync', 'status=none']);
        const before = fs.statSync(img).blocks * 512;
        fs.rmSync(big);
        execFileSync('sync', ['-f', ctx.b]);
        r = await c.ok<Trim>('guest-fstrim', { minimum: 4096 });
        const b = r.paths.find((x) => x.path === ctx.b)!;
        assert.ok(b.trimmed! >= 8 << 20, JSON.stringify(b));
        assert.ok(b.minimum! >= 4096, JSON.stringify(b));
        const after = fs.statSync(img).blocks * 512;
        assert.ok(before - after >= 6 << 20, `the image shrank by ${before - after} bytes`);

        assert.equal(error(await c.call('guest-fstrim', { minimum: 'x' })), {
          class: 'GenericError',
          desc: "Invalid parameter type for 'minimum', expected: integer",
        });
      }),
    ),
  { needs },
);

test(
  "guest-fstrim: qemu-ga's per-path errors (cannot open, cannot trim) and the other paths still trimmed",
  (ctx) =>
    withThawGuard(ctx, async () => {
      const tmp = path.join(ctx.dir, 'tmpfs-trim');
      fs.mkdirSync(tmp, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'ember-test', tmp]);
      const missing = path.join(ctx.dir, 'gone');
      try {
        // A tmpfs listed under a /dev name (a real one's source is "tmpfs", which qemu-ga skips).
        const table = writeTable(ctx, 'trim-mounts', [
          `${ctx.loop[ctx.a]} ${q(ctx.a)} ext4 rw 0 0`,
          `/dev/ember-test-${process.pid} ${q(tmp)} tmpfs rw 0 0`,
          `/dev/ember-test-${process.pid}-gone ${q(missing)} ext4 rw 0 0`,
        ]);
        await withQga(
          ctx,
          [],
          async (c) => {
            const r = await c.ok<{ paths: Record<string, unknown>[] }>('guest-fstrim');
            assert.equal(r.paths.slice(0, 2), [
              { path: missing, error: 'failed to open: No such file or directory' },
              { path: tmp, error: 'trim not supported' },
            ]);
            assert.is(r.paths[2].path, ctx.a);
            assert.is(typeof r.paths[2].trimmed, 'number');
          },
          table,
        );
      } finally {
        execFileSync('umount', [tmp]);
      }
    }),
  { needs },
);

/** A hook script logging "ACTION writable|blocked" (whether a's filesystem takes a write then) to LOG. */
function hookScript(ctx: Ctx, name: string, failOn?: string): { hook: string; log: string } {
  const log = path.join(ctx.dir, `${name}.log`);
  const hook = path.join(ctx.dir, name);
  fs.writeFileSync(
    hook,
    [
      '#!/bin/sh',
      `if timeout 2 touch ${JSON.stringify(path.join(ctx.a, 'hook-probe'))}; then w=writable; else w=blocked; fi`,
      `echo "$1 $w" >> ${JSON.stringify(log)}`,
      failOn ? `[ "$1" = ${failOn} ] && exit 7` : '',
      'exit 0',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { hook, log };
}

const hookLog = (log: string) => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []);

test(
  '--fsfreeze-hook: "freeze" before the freeze and "thaw" after the thaw, for freezes from either protocol',
  (ctx) =>
    withThawGuard(ctx, async () => {
      const { hook, log } = hookScript(ctx, 'hook-ok');
      await withQga(ctx, [`--fsfreeze-hook=${hook}`], async (c) => {
        assert.is(await c.ok('guest-fsfreeze-freeze'), 3);
        assert.equal(hookLog(log), ['freeze writable']);
        assert.is(await c.ok('guest-fsfreeze-thaw'), 3);
        assert.equal(hookLog(log), ['freeze writable', 'thaw writable']);
      });
      fs.rmSync(log);
      await withDual(ctx, [`--fsfreeze-hook=${hook}`], async (p, g) => {
        assert.is(await p.ok('fs-freeze', { mountpoints: [ctx.a] }), true);
        assert.equal(hookLog(log), ['freeze writable']);
        assert.is(await g.ok('guest-fsfreeze-thaw'), 1);
        assert.equal(hookLog(log), ['freeze writable', 'thaw writable']);
        assert.is(await g.ok('guest-fsfreeze-freeze-list', { mountpoints: [ctx.b] }), 1);
        assert.is(await p.ok('fs-unfreeze'), true);
        assert.equal(hookLog(log), ['freeze writable', 'thaw writable', 'freeze writable', 'thaw writable']);
      });
    }),
  { needs, timeout: 40_000 },
);

test(
  'a failing freeze hook fails the freeze with qemu-ga message: nothing frozen, no "thaw"',
  (ctx) =>
    withThawGuard(ctx, async () => {
      const { hook, log } = hookScript(ctx, 'hook-fails', 'freeze');
      await withQga(ctx, [`--fsfreeze-hook=${hook}`], async (c) => {
        assert.equal(error(await c.call('guest-fsfreeze-freeze')), {
          class: 'GenericError',
          desc: 'fsfreeze hook has failed with status 7',
        });
        assert.is(await status(c), 'thawed');
        assert.equal(await frozenSet(ctx), []);
        assert.equal(hookLog(log), ['freeze writable']);
      });
      const missing = path.join(ctx.dir, 'no-such-hook');
      await withDual(ctx, [`--fsfreeze-hook=${missing}`], async (p, g) => {
        const a = await p.call('fs-freeze', { mountpoints: [ctx.a] });
        assert.is(errorMessage(a), `can't access fsfreeze hook '${missing}': No such file or directory`);
        assert.is(await p.ok('get-freeze-status'), false);
        assert.equal(error(await g.call('guest-fsfreeze-thaw')), {
          class: 'GenericError',
          desc: `can't access fsfreeze hook '${missing}': No such file or directory`,
        });
        assert.equal(await frozenSet(ctx), []);
      });
    }),
  { needs },
);

test(
  'guest-info lists the freeze commands as qemu-ga 7.2 does (read-only: nothing sent to qemu-ga freezes)',
  async (ctx) => {
    const real = await startRealQemuGa();
    try {
      await withQga(ctx, [], async (c) => {
        const r = await real.connect();
        try {
          type Info = { supported_commands: { name: string; enabled: boolean; 'success-response': boolean }[] };
          const names = /^guest-(fsfreeze-|fstrim)/;
          const pick = (i: Info) => i.supported_commands.filter((x) => names.test(x.name));
          const theirs = pick(await r.ok<Info>('guest-info'));
          assert.is(theirs.length, 5);
          assert.equal(pick(await c.ok<Info>('guest-info')), theirs);
        } finally {
          r.close();
        }
      });
    } finally {
      await real.stop();
    }
  },
  { needs: [...needs, realQemuGa] },
);

runFreezeSuite(test);
