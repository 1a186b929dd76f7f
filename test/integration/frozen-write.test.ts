// A small file-write is waited for on the addon's write helper, for a millisecond at most
// (lib/files/handle.ts): a write into a filesystem frozen by someone else (this test process
// here, not the agent's fs-freeze, which refuses writes) must not hold the agent's main thread.
// While it waits in the kernel the agent answers pings and writes elsewhere (through the thread
// pool, the helper being busy), and once the filesystem thaws the write and the ones queued
// behind it land in order; the same for qemu-ga's guest-file-write. Were the write made on the
// main thread, no ping would be answered until the thaw. On the loop-mounted ext4 images of
// test/helpers/loop-mounts.ts, never this machine's own filesystems: freeze-guard runs
// meanwhile, and withThawGuard thaws in `finally` and, should the test hang, from a timer.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { freeze } from '../../lib';
import { startAgentWith, tmpDir, type LineClient, type RunningAgent } from '../helpers/agent';
import { mountLoops, needs, unmountLoops, withThawGuard, type LoopMounts } from '../helpers/loop-mounts';
import { QmpClient } from '../helpers/qemu-ga';
import { suite } from '../helpers/harness';

const test = suite<LoopMounts & { agent: RunningAgent; qga: string }>('frozen write', {} as never);

const b64 = (b: Buffer) => b.toString('base64');

test.before(async (ctx) => {
  if (needs.some((r) => r() !== undefined)) return; // each test reports what is missing (a failure under CI)
  await mountLoops(ctx, 'ember-ga-frozen-write-');
  const dir = tmpDir('ember-ga-frozen-write-agent-');
  const socket = path.join(dir, 'ga.sock');
  ctx.qga = path.join(dir, 'qga.sock');
  ctx.agent = await startAgentWith(['--listen', `unix:${socket}`, '--listen', `qemu-ga:unix:${ctx.qga}`], socket, dir);
});

test.after(async (ctx) => {
  await ctx.agent?.stop();
  await unmountLoops(ctx);
});

/** Five pings, each answered within 2 s (a write held on the main thread would hold them until the thaw). */
async function pingsAnswered(c: LineClient): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    await c.ok('ping', undefined, 5_000);
    assert.ok(Date.now() - t0 < 2_000, `ping answered in ${Date.now() - t0} ms`);
  }
}

test(
  "a file-write into a filesystem frozen by someone else waits in the kernel, not on the agent's main thread",
  async (ctx) => {
    const c = await ctx.agent.connect();
    try {
      const chunks = [1, 2, 3, 4].map(() => crypto.randomBytes(4096));
      const target = path.join(ctx.a, 'f');
      const elsewherePath = path.join(ctx.agent.dir, 'elsewhere');
      const frozen = (await c.ok('file-open', { path: target, mode: 'w' })) as number;
      const elsewhere = (await c.ok('file-open', { path: elsewherePath, mode: 'w' })) as number;
      assert.is(await c.ok('file-write', { handle_id: frozen, bufb64: b64(chunks[0]) }), true);
      await withThawGuard(ctx, async () => {
        await freeze(ctx.a);
        // Two writes into the frozen filesystem, the second pipelined behind the first.
        for (const [i, tag] of [
          [1, 'w1'],
          [2, 'w2'],
        ] as const) {
          c.send(
            `${JSON.stringify({ execute: 'file-write', arguments: { handle_id: frozen, bufb64: b64(chunks[i]) }, tag })}\n`,
          );
        }
        await pingsAnswered(c);
        // Writes elsewhere go on too: the helper is busy with the frozen one, the thread pool takes them.
        for (const chunk of chunks)
          assert.is(await c.ok('file-write', { handle_id: elsewhere, bufb64: b64(chunk) }, 5_000), true);
        assert.is(await c.ok('file-close', { handle_id: elsewhere }), true);
        assert.ok(fs.readFileSync(elsewherePath).equals(Buffer.concat(chunks)));
        assert.ok(
          !c.lines.some((l) => /"tag":"w[12]"/.test(l)),
          `no answer to a write into the frozen filesystem yet: ${c.lines.join(' ')}`,
        );
      });
      // Thawed: the frozen writes are answered, in order, and the handle goes on.
      const answers = await c.waitLines(2, 10_000);
      assert.equal(
        answers.map((a) => [a.tag, a.return]),
        [
          ['w1', true],
          ['w2', true],
        ],
      );
      assert.is(await c.ok('file-write', { handle_id: frozen, bufb64: b64(chunks[3]) }), true);
      assert.is(await c.ok('file-close', { handle_id: frozen }), true);
      assert.ok(fs.readFileSync(target).equals(Buffer.concat(chunks)), 'every chunk landed, in order');
    } finally {
      c.close();
    }
  },
  { timeout: 90_000, needs },
);

test(
  "qemu-ga's guest-file-write into a frozen filesystem: its session waits, the agent answers the others",
  async (ctx) => {
    const c = await ctx.agent.connect();
    const q = await QmpClient.connect(ctx.qga);
    try {
      const chunk = crypto.randomBytes(4096);
      const target = path.join(ctx.b, 'g');
      const h = await q.ok<number>('guest-file-open', { path: target, mode: 'w' });
      assert.equal(await q.ok('guest-file-write', { handle: h, 'buf-b64': b64(chunk) }), { count: 4096, eof: false });
      await withThawGuard(ctx, async () => {
        await freeze(ctx.b);
        q.send(`${JSON.stringify({ execute: 'guest-file-write', arguments: { handle: h, 'buf-b64': b64(chunk) } })}\n`);
        await pingsAnswered(c);
        assert.is((await q.drain(200)).length, 0, 'no answer from the frozen filesystem yet');
      });
      assert.equal((await q.answer(10_000)).return, { count: 4096, eof: false });
      assert.equal(await q.ok('guest-file-close', { handle: h }), {});
      assert.ok(fs.readFileSync(target).equals(Buffer.concat([chunk, chunk])));
    } finally {
      q.close();
      c.close();
    }
  },
  { timeout: 90_000, needs },
);

test.run();
