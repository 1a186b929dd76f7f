// The agent-wide budget of large answers (lib/large-answers.ts): shares taken in the order asked,
// never overtaken, given back once (by release, or when the host that asked goes), and an answer
// that turned out small lets its share go at once.
import * as assert from 'uvu/assert';
import { AnswerHold, LARGE_ANSWER, LargeAnswers } from '../../lib/large-answers';
import { RawJson } from '../../lib/wire/answer';
import { rejection, suite } from '../helpers/harness';

const test = suite('large answers');
const MiB = 1024 * 1024;

/** Whether p has settled after the microtasks queued now. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

test('shares go in the order asked: a small one waits behind a large one that does not fit yet', async () => {
  const budget = new LargeAnswers(64 * MiB);
  const signal = new AbortController().signal;
  const a = await budget.take(40 * MiB, signal);
  const b = budget.take(48 * MiB, signal);
  const c = budget.take(8 * MiB, signal); // would fit now, but b asked first
  assert.not.ok(await settled(b));
  assert.not.ok(await settled(c));
  assert.is(budget.takeNow(MiB, signal), undefined, 'takeNow does not overtake either');
  a.release();
  a.release(); // once only
  const [hb, hc] = await Promise.all([b, c]);
  assert.is(budget.held, 56 * MiB);
  hb.release();
  hc.release();
  assert.is(budget.held, 0);
});

test('a share larger than the budget takes all of it; one whose host goes leaves the queue', async () => {
  const budget = new LargeAnswers(64 * MiB);
  const host = new AbortController();
  const other = new AbortController();
  const all = await budget.take(100 * MiB, other.signal);
  assert.is(all.bytes, 64 * MiB);
  const gone = budget.take(64 * MiB, host.signal);
  const next = budget.take(MiB, other.signal);
  host.abort();
  await rejection(gone);
  all.release();
  assert.is((await next).bytes, MiB);
  // A held share goes with its host.
  const held = budget.takeNow(10 * MiB, host.signal);
  assert.is(held, undefined, 'nothing for a host already gone');
  const h = new AbortController();
  await budget.take(10 * MiB, h.signal);
  assert.is(budget.held, 11 * MiB);
  h.abort();
  assert.is(budget.held, MiB);
});

test('keep: a large answer keeps its share cut to its size; a small one lets it go', async () => {
  const budget = new LargeAnswers(64 * MiB);
  const signal = new AbortController().signal;
  const big: AnswerHold = await budget.take(64 * MiB, signal);
  const raw = big.keep(new RawJson(['{', Buffer.alloc(LARGE_ANSWER + 10), '}']));
  assert.is(raw.held, big);
  assert.is(budget.held, LARGE_ANSWER + 12);
  big.release();
  const small = await budget.take(64 * MiB, signal);
  const short = small.keep(new RawJson(['{"count": 0}']));
  assert.is(short.held, undefined);
  assert.is(budget.held, 0);
});

test('resize: fewer at once; more only when free and nobody waits', async () => {
  const budget = new LargeAnswers(64 * MiB);
  const signal = new AbortController().signal;
  const h = await budget.take(16 * MiB, signal);
  assert.ok(h.resize(32 * MiB));
  assert.ok(h.resize(8 * MiB));
  assert.is(budget.held, 8 * MiB);
  const waiting = budget.take(60 * MiB, signal);
  assert.not.ok(h.resize(9 * MiB), 'a waiting share is not overtaken');
  h.release();
  (await waiting).release();
  assert.is(budget.held, 0);
});

test.run();
