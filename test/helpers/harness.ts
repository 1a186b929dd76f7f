// uvu with two additions every test file uses: a per-test timeout (uvu has none, and a hung
// test must not hang CI), and requirements (root, a command on PATH, a kernel feature). A test
// whose requirement is missing is skipped with its reason, except under CI (CI=true), where the
// skip is a failure so nothing silently stops being tested.
import { execFileSync } from 'child_process';
import { suite as uvuSuite } from 'uvu';
import { withTimeout as timeout } from '../../lib/timers';

export interface TestOptions {
  /** Milliseconds before the test fails as hung (default 30 s). */
  timeout?: number;
  /** Each entry returns undefined when satisfied, else the reason the test cannot run. */
  needs?: Requirement[];
}

export type Requirement = () => string | undefined;

export const root: Requirement = () => (process.getuid?.() === 0 ? undefined : 'needs root');

export function command(name: string): Requirement {
  return () => {
    try {
      execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
      return undefined;
    } catch {
      return `needs ${name} on PATH`;
    }
  };
}

export const inCI = process.env.CI === 'true';

type Fn<C> = (ctx: C) => void | Promise<void>;

export interface Suite<C> {
  (name: string, fn: Fn<C>, opts?: TestOptions): void;
  before(fn: Fn<C>): void;
  after(fn: Fn<C>): void;
  run(): void;
}

export function suite<C extends object = Record<string, unknown>>(title: string, context?: C): Suite<C> {
  const s = uvuSuite<C>(title, context);
  const test = ((name: string, fn: Fn<C>, opts: TestOptions = {}) => {
    const missing = (opts.needs ?? []).map((r) => r()).find((r) => r !== undefined);
    if (missing !== undefined) {
      if (inCI) {
        s(name, () => {
          throw new Error(`cannot run under CI: ${missing}`);
        });
      } else {
        s.skip(`${name} (skipped: ${missing})`, () => {});
        process.stderr.write(`  skip: ${title} / ${name}: ${missing}\n`);
      }
      return;
    }
    const timeout = opts.timeout ?? 30_000;
    s(name, (ctx) =>
      withTimeout(
        Promise.resolve().then(() => fn(ctx)),
        timeout,
        `${title} / ${name}`,
      ),
    );
  }) as Suite<C>;
  test.before = (fn) =>
    s.before((ctx) =>
      withTimeout(
        Promise.resolve().then(() => fn(ctx)),
        60_000,
        `${title} (before)`,
      ),
    );
  test.after = (fn) =>
    s.after((ctx) =>
      withTimeout(
        Promise.resolve().then(() => fn(ctx)),
        60_000,
        `${title} (after)`,
      ),
    );
  test.run = () => s.run();
  return test;
}

/** p, or a rejection saying "WHAT: timed out after MS ms". */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return timeout(p, ms, `${what}: timed out after ${ms} ms`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls cond every `every` ms until it is truthy or `ms` passes (then throws `what`). */
export async function waitFor<T>(cond: () => T | Promise<T>, ms: number, what: string, every = 20): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** The error `p` rejects with (an instance of `cls` when given); fails the test when it resolves. */
export async function rejection<E extends Error = Error>(
  p: PromiseLike<unknown>,
  cls?: new (...args: never[]) => E,
): Promise<E> {
  try {
    await p;
  } catch (e) {
    if (cls && !(e instanceof cls)) throw new Error(`expected a ${cls.name}, got ${String(e)}`);
    return e as E;
  }
  throw new Error('expected a rejection');
}

/**
 * The bytes Buffer#indexOf passes over while `fn` runs (each call: from where it starts to what
 * it finds, or to the end): a search's cost counted, not timed.
 */
export function bytesSearched(fn: () => void): number {
  const original = Buffer.prototype.indexOf;
  let searched = 0;
  Buffer.prototype.indexOf = function (this: Buffer, value: unknown, from?: unknown, enc?: unknown) {
    const at = original.call(this, value as number, from as number, enc as BufferEncoding);
    const start = typeof from === 'number' ? from : 0;
    searched += (at < 0 ? this.length : at) - start;
    return at;
  };
  try {
    fn();
  } finally {
    Buffer.prototype.indexOf = original;
  }
  return searched;
}
