// The freeze scenarios phoenix (freeze.test.ts) and qemu-ga (qemu-ga-freeze.test.ts) share, run
// once per protocol: each test file supplies a FreezeProtocol, the adapter saying how its requests
// look and what its answers must be; the scenario holds the steps and the checks both make.
// Safety as in loop-mounts.ts: only the loop mounts, a fixture mount table for every agent
// (--mounts-file), explicit mount points wherever a protocol names them, every freeze inside
// withThawGuard() (a thaw in `finally`), blocked writers in child processes, and freeze-guard
// watching for the whole suite (the last test asserts it never had to thaw anything).
import * as fs from 'fs';
import * as assert from 'uvu/assert';
import { freeze, thaw } from '../../lib';
import { withTmpfs, type RunningAgent } from './agent';
import { sleep, suite, type Suite } from './harness';
import {
  frozenSet,
  mountLoops,
  needs,
  ready,
  unmountLoops,
  withThawGuard,
  writer,
  type LoopMounts,
} from './loop-mounts';

type Ctx = LoopMounts;
type Mounts = (ctx: Ctx) => string[];

/** A protocol's adapter: how to run its agent and send its freeze requests, and the answers it expects. */
export interface FreezeProtocol<C extends { close(): void }> {
  /** Starts an agent with these flags (--mounts-file included) and connects a client. */
  start(flags: string[]): Promise<{ agent: RunningAgent; client: C }>;
  /** The freeze status answer, and what it is thawed and frozen. */
  status(c: C): Promise<unknown>;
  thawed: unknown;
  frozen: unknown;
  /** Freezes `mountpoints`, or everything the table selects when absent; the answer's return. */
  freeze(c: C, mountpoints?: string[]): Promise<unknown>;
  /** Thaws; the answer's return. */
  thaw(c: C): Promise<unknown>;
  /** Asserts the agent still serves (a ping). */
  alive(c: C): Promise<void>;
  scenarios: SharedScenarios<C>;
}

/** What each shared scenario needs from a protocol; every test name is the protocol's own. */
export interface SharedScenarios<C> {
  /** A freeze is real: writers on what it froze block until the thaw, the rest write on. */
  writerBlocks: {
    name: string;
    mountpoints?: Mounts;
    answer: unknown;
    frozen: string[];
    blocked: Mounts;
    /** Not frozen: their writers complete while the others are frozen. */
    free?: Mounts;
    /** Protocol checks right after the freeze (its log). */
    afterFreeze?: (ctx: Ctx, stderr: () => string) => void;
    thawAnswer: unknown;
    /** A second thaw, with nothing frozen: no error. */
    thawAgain: unknown;
  };
  /** A freeze failing part-way thaws what it froze; nothing is held and a new freeze works. */
  rollback: {
    name: string;
    /** A mount table of its own (default: the loop mounts). */
    table?: (ctx: Ctx) => string;
    /** Each sends a freeze that fails part-way and asserts its error. */
    failures: ((c: C, ctx: Ctx, stderr: () => string) => Promise<void>)[];
    /** The answers of a freeze of b and of the thaw after the failures. */
    again: unknown;
    thawAnswer: unknown;
  };
  /** b frozen by someone else before the agent's freeze (EBUSY): tolerated, and thawed with the rest. */
  heldElsewhere: {
    name: string;
    /** Also a tmpfs (EOPNOTSUPP) among the mount points: it is tolerated too. */
    tmpfs?: boolean;
    mountpoints?: (ctx: Ctx, tmpfs: string) => string[];
    answer: unknown;
    frozen: string[];
    thawAnswer: unknown;
  };
  /** A freeze that finds nothing to freeze leaves the agent thawed; one with something freezes. */
  nothingToFreeze: {
    name: string;
    /** A tmpfs (cannot freeze) mounted for the scenario. */
    tmpfs?: boolean;
    table?: (ctx: Ctx) => string;
    /** Each sends a freeze with nothing to freeze and asserts its answer. */
    attempts: ((c: C, ctx: Ctx, tmpfs: string) => Promise<void>)[];
    /** Asserts the agent serves as usual after them (not refused as frozen). */
    served?: (c: C, tmpfs: string) => Promise<void>;
    /** Sends a freeze with something freezable; its answer must be `answer`. */
    freezeSomething: (c: C, ctx: Ctx, tmpfs: string) => Promise<unknown>;
    answer: unknown;
    frozen: string[];
    thawAnswer: unknown;
  };
  /** A thaw with no freeze held thaws what the table selects (an earlier agent died frozen). */
  recover: {
    name: string;
    /** The mount left frozen. */
    mount: (ctx: Ctx) => string;
    table?: (ctx: Ctx) => string;
    thawAnswer: unknown;
  };
  /** While frozen a second freeze and the commands that write are refused; the rest are served. */
  refusedWhileFrozen: {
    name: string;
    answer: unknown;
    refused: { execute: string; args?: (ctx: Ctx) => Record<string, unknown> }[];
    /** Sends the refused request and asserts the refusal. */
    refusal: (c: C, execute: string, args?: Record<string, unknown>) => Promise<void>;
    /** Asserts what is still served while frozen. */
    served: (c: C) => Promise<void>;
    thawAnswer: unknown;
    thawAgain: unknown;
    /** Asserts what is served again after the thaw. */
    afterThaw?: (c: C) => Promise<void>;
  };
  /** Invalid freeze arguments: each a clear error, nothing frozen, the agent keeps serving. */
  badArguments: {
    name: string;
    cases: (ctx: Ctx) => [Record<string, unknown>, unknown][];
    /** Sends a freeze with these arguments and asserts its error is `expected`. */
    refusal: (c: C, args: Record<string, unknown>, expected: unknown) => Promise<void>;
  };
}

/**
 * The suite of protocol p: the loop mounts mounted before the first test and unmounted after the
 * last, and the shared scenarios registered first, under p's names and with p's expectations.
 */
export function freezeSuite<C extends { close(): void }>(
  title: string,
  prefix: string,
  p: FreezeProtocol<C>,
): Suite<Ctx> {
  const test = suite<Ctx>(title, {} as Ctx);
  test.before(async (ctx) => {
    if (ready()) await mountLoops(ctx, prefix); // else the tests report what is missing (a failure under CI)
  });
  test.after((ctx) => unmountLoops(ctx));
  sharedFreezeScenarios(test, p);
  return test;
}

/** Registers the last test (freeze-guard never had to thaw) and runs the suite. */
export function runFreezeSuite(test: Suite<Ctx>): void {
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
}

/** Runs fn with an agent of protocol p reading `mountsFile` (default: the loop mounts) and a client. */
export async function withFreezeAgent<C extends { close(): void }>(
  p: FreezeProtocol<C>,
  ctx: Ctx,
  flags: string[],
  fn: (c: C, stderr: () => string) => Promise<void>,
  mountsFile = ctx.table,
): Promise<void> {
  const { agent, client } = await p.start(['--mounts-file', mountsFile, ...flags]);
  try {
    await fn(client, agent.stderr);
  } finally {
    client.close();
    await agent.stop();
  }
}

/** Registers the shared scenarios with protocol p's names and expectations. */
function sharedFreezeScenarios<C extends { close(): void }>(test: Suite<Ctx>, p: FreezeProtocol<C>): void {
  const s = p.scenarios;
  const withAgent = (ctx: Ctx, fn: (c: C, stderr: () => string) => Promise<void>, mountsFile?: string): Promise<void> =>
    withFreezeAgent(p, ctx, [], fn, mountsFile);

  test(
    s.writerBlocks.name,
    (ctx) =>
      withThawGuard(ctx, () =>
        withAgent(ctx, async (c, stderr) => {
          const w = s.writerBlocks;
          assert.is(await p.status(c), p.thawed);
          assert.is(await p.freeze(c, w.mountpoints?.(ctx)), w.answer);
          assert.is(await p.status(c), p.frozen);
          assert.equal(await frozenSet(ctx), w.frozen);
          w.afterFreeze?.(ctx, stderr);
          const blocked = w.blocked(ctx).map((m) => ({ m, ...writer(m) }));
          const free = (w.free?.(ctx) ?? []).map((m) => ({ m, ...writer(m) }));
          for (const x of free) assert.is(await x.exited, 0, `${x.m} was not asked for: it stays writable`);
          await sleep(700);
          for (const x of blocked) assert.is(x.proc.exitCode, null, `the writer on ${x.m} is blocked`);
          assert.is(await p.thaw(c), w.thawAnswer);
          for (const x of blocked) {
            assert.is(await x.exited, 0, 'the writer completes after the thaw');
            assert.is(fs.statSync(x.file).size, 16384);
          }
          assert.is(await p.status(c), p.thawed);
          assert.equal(await frozenSet(ctx), []);
          assert.is(await p.thaw(c), w.thawAgain, 'nothing frozen: nothing thawed, no error');
        }),
      ),
    { needs, timeout: 30_000 },
  );

  test(
    s.rollback.name,
    (ctx) =>
      withThawGuard(ctx, () =>
        withAgent(
          ctx,
          async (c, stderr) => {
            for (const fail of s.rollback.failures) {
              await fail(c, ctx, stderr);
              assert.is(await p.status(c), p.thawed);
              assert.equal(await frozenSet(ctx), []);
            }
            assert.is(await p.freeze(c, [ctx.b]), s.rollback.again, 'nothing held: it freezes again');
            assert.is(await p.thaw(c), s.rollback.thawAnswer);
          },
          s.rollback.table?.(ctx),
        ),
      ),
    { needs },
  );

  test(
    s.heldElsewhere.name,
    (ctx) =>
      withThawGuard(ctx, async () => {
        const h = s.heldElsewhere;
        const run = async (tmp: string) => {
          try {
            await freeze(ctx.b); // frozen before the agent is asked: EBUSY
            await withAgent(ctx, async (c) => {
              assert.is(await p.status(c), p.thawed, 'this agent holds no freeze');
              assert.is(await p.freeze(c, h.mountpoints?.(ctx, tmp)), h.answer);
              assert.equal(await frozenSet(ctx), h.frozen);
              assert.is(await p.thaw(c), h.thawAnswer);
              assert.equal(await frozenSet(ctx), [], 'b was held with the others and thawed too');
            });
          } finally {
            await thaw(ctx.b).catch(() => {});
          }
        };
        await (h.tmpfs ? withTmpfs(ctx.dir, 'tmpfs', 'size=1m', run) : run(''));
      }),
    { needs },
  );

  test(
    s.nothingToFreeze.name,
    (ctx) =>
      withThawGuard(ctx, async () => {
        const n = s.nothingToFreeze;
        const run = (tmp: string) =>
          withAgent(
            ctx,
            async (c) => {
              for (const attempt of n.attempts) {
                await attempt(c, ctx, tmp);
                assert.is(await p.status(c), p.thawed);
              }
              await n.served?.(c, tmp);
              assert.is(await n.freezeSomething(c, ctx, tmp), n.answer, 'with something freezable it freezes');
              assert.equal(await frozenSet(ctx), n.frozen);
              assert.is(await p.thaw(c), n.thawAnswer);
              assert.equal(await frozenSet(ctx), []);
            },
            n.table?.(ctx),
          );
        await (n.tmpfs ? withTmpfs(ctx.dir, 'tmpfs-only', 'size=1m', run) : run(''));
      }),
    { needs },
  );

  test(
    s.recover.name,
    (ctx) =>
      withThawGuard(ctx, async () => {
        await freeze(s.recover.mount(ctx));
        await withAgent(
          ctx,
          async (c) => {
            assert.is(await p.status(c), p.thawed, 'this agent holds no freeze');
            assert.is(await p.thaw(c), s.recover.thawAnswer);
            assert.equal(await frozenSet(ctx), []);
          },
          s.recover.table?.(ctx),
        );
      }),
    { needs },
  );

  test(
    s.refusedWhileFrozen.name,
    (ctx) =>
      withThawGuard(ctx, () =>
        withAgent(ctx, async (c) => {
          const r = s.refusedWhileFrozen;
          assert.is(await p.freeze(c, [ctx.a]), r.answer);
          for (const { execute, args } of r.refused) await r.refusal(c, execute, args?.(ctx));
          assert.equal(await frozenSet(ctx), ['a'], 'the refused freeze froze nothing');
          await p.alive(c);
          await r.served(c);
          assert.is(await p.status(c), p.frozen);
          assert.is(await p.thaw(c), r.thawAnswer);
          assert.is(await p.thaw(c), r.thawAgain, 'a second thaw is no error');
          assert.is(await p.status(c), p.thawed);
          assert.equal(await frozenSet(ctx), []);
          await r.afterThaw?.(c);
        }),
      ),
    { needs },
  );

  test(
    s.badArguments.name,
    (ctx) =>
      withThawGuard(ctx, () =>
        withAgent(ctx, async (c) => {
          for (const [args, expected] of s.badArguments.cases(ctx)) {
            await s.badArguments.refusal(c, args, expected);
            assert.is(await p.status(c), p.thawed);
          }
          assert.equal(await frozenSet(ctx), []);
          await p.alive(c);
        }),
      ),
    { needs },
  );
}
