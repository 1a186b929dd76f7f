// Freezer's rules with fake ioctls (no root needed): order, tolerated errors, rollback,
// cancellation, auto-thaw, release, and the `frozen` state after each.
import { constants } from 'os';
import * as assert from 'uvu/assert';
import { Freezer, SystemError } from '../../../lib';
import { sleep, suite, waitFor } from '../../helpers/harness';

const test = suite('freezer');
const E = constants.errno;

/** Fake ioctls: records calls, fails where told, can hold a call until released. */
function fakeOps(fail: { freeze?: Record<string, number>; thaw?: Record<string, number> } = {}) {
  const calls: string[] = [];
  const gates = new Map<string, () => void>();
  const op = (kind: 'freeze' | 'thaw') => async (m: string) => {
    calls.push(`${kind} ${m}`);
    const gate = gates.get(`${kind} ${m}`);
    if (gate) await new Promise<void>((r) => gates.set(`${kind} ${m}`, r)).then(() => gates.delete(`${kind} ${m}`));
    const errno = fail[kind]?.[m];
    if (errno) throw new SystemError(errno, kind, m);
    return { mountpoint: m, frozen: kind === 'freeze' };
  };
  return {
    calls,
    ops: { freeze: op('freeze'), thaw: op('thaw') },
    /** The next call `kind m` waits until open(kind, m) is called. */
    hold: (key: string) => gates.set(key, () => {}),
    open: (key: string) => gates.get(key)!(),
  };
}

/** The rejection of p (fails the test if p resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

function logSink() {
  const lines: string[] = [];
  const log = {
    debug: () => {},
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
  return { lines, log };
}

test('freezes in order, thaws in reverse order; frozen turns true at once and false after', async () => {
  const f = fakeOps();
  const changes: boolean[] = [];
  const z = new Freezer({ ops: f.ops, onChange: (v) => changes.push(v) });
  const p = z.freeze(['/a', '/b', '/c']);
  assert.ok(z.frozen, 'frozen before the first ioctl completes');
  assert.equal(await p, ['/a', '/b', '/c']);
  await z.unfreeze();
  assert.equal(f.calls, ['freeze /a', 'freeze /b', 'freeze /c', 'thaw /c', 'thaw /b', 'thaw /a']);
  assert.not.ok(z.frozen);
  assert.equal(changes, [true, false]);
});

test('a failure rolls back what was frozen, in reverse order, and the freeze is not held', async () => {
  const f = fakeOps({ freeze: { '/c': E.EIO } });
  const z = new Freezer({ ops: f.ops });
  const err = await z.freeze(['/a', '/b', '/c', '/d']).catch((e) => e);
  assert.instance(err, SystemError);
  assert.is(err.code, 'EIO');
  assert.equal(f.calls, ['freeze /a', 'freeze /b', 'freeze /c', 'thaw /b', 'thaw /a']);
  assert.not.ok(z.frozen);
  assert.equal(z.mountpoints, []);
});

test('EOPNOTSUPP is skipped, EBUSY held (and thawed at unfreeze) but not thawed by a rollback', async () => {
  const f = fakeOps({ freeze: { '/tmp': E.EOPNOTSUPP, '/busy': E.EBUSY } });
  const z = new Freezer({ ops: f.ops });
  assert.equal(await z.freeze(['/a', '/tmp', '/busy']), ['/a', '/busy']);
  await z.unfreeze();
  assert.equal(f.calls.slice(3), ['thaw /busy', 'thaw /a']);

  const g = fakeOps({ freeze: { '/busy': E.EBUSY, '/bad': E.EPERM } });
  const y = new Freezer({ ops: g.ops });
  await y.freeze(['/a', '/busy', '/bad']).catch(() => {});
  assert.equal(
    g.calls,
    ['freeze /a', 'freeze /busy', 'freeze /bad', 'thaw /a'],
    'what was frozen before stays as found',
  );
  assert.not.ok(y.frozen);
});

test('a freeze that holds nothing fails and leaves the freezer unfrozen (every one EOPNOTSUPP, or none given)', async () => {
  const f = fakeOps({ freeze: { '/run': E.EOPNOTSUPP, '/dev/shm': E.EOPNOTSUPP } });
  const changes: boolean[] = [];
  const z = new Freezer({ ops: f.ops, onChange: (v) => changes.push(v) });
  const err = await rejection(z.freeze(['/run', '/dev/shm']));
  assert.is(
    err.message,
    'Nothing was frozen: /run, /dev/shm cannot be frozen (EOPNOTSUPP: the filesystem type does not support freezing)',
  );
  assert.not.ok(z.frozen);
  assert.equal(changes, [true, false]);
  assert.is((await rejection(z.freeze([]))).message, 'Nothing to freeze: no mount points given');
  assert.not.ok(z.frozen);
  assert.equal(f.calls, ['freeze /run', 'freeze /dev/shm'], 'nothing to thaw');
  assert.equal(await z.freeze(['/a', '/run']), ['/a'], 'a later freeze is accepted');
  await z.unfreeze();
});

test('thaw: EINVAL and a vanished mount point are fine; another failure keeps it held and frozen', async () => {
  const f = fakeOps({ thaw: { '/b': E.EINVAL, '/gone': E.ENOENT, '/c': E.EIO } });
  const { lines, log } = logSink();
  const z = new Freezer({ ops: f.ops, log });
  await z.freeze(['/a', '/b', '/gone', '/c']);
  const err = await z.unfreeze().catch((e) => e);
  assert.is(err.code, 'EIO');
  assert.equal(
    f.calls.slice(4),
    ['thaw /c', 'thaw /gone', 'thaw /b', 'thaw /a'],
    'every one tried despite the failure',
  );
  assert.ok(z.frozen, 'still frozen: /c could not be thawed');
  assert.equal(z.mountpoints, ['/c']);
  assert.ok(lines.some((l) => l.startsWith('warn /gone is gone')));
  // The retry thaws what is left.
  const retry = fakeOps();
  (z as unknown as { ops: unknown }).ops = retry.ops;
  await z.unfreeze();
  assert.equal(retry.calls, ['thaw /c']);
  assert.not.ok(z.frozen);
});

test('a rollback whose thaw fails leaves no guest frozen for good: the thaw is retried by itself', async () => {
  const f = fakeOps({ freeze: { '/bad': E.EIO }, thaw: { '/a': E.EIO } });
  const z = new Freezer({ ops: f.ops, retryMs: 50 });
  const err = await rejection(z.freeze(['/a', '/bad']));
  assert.is((err as SystemError).code, 'EIO');
  assert.ok(z.frozen, '/a could not be thawed by the rollback');
  const fixed = fakeOps();
  (z as unknown as { ops: unknown }).ops = fixed.ops; // the filesystem recovers
  await waitFor(() => !z.frozen, 2000, 'the retry to thaw /a without any fs-unfreeze');
  assert.equal(fixed.calls, ['thaw /a']);
});

test('a second freeze while frozen is refused; duplicates in the list freeze once', async () => {
  const f = fakeOps();
  const z = new Freezer({ ops: f.ops });
  assert.equal(await z.freeze(['/a', '/a', '/b']), ['/a', '/b']);
  assert.match((await rejection(z.freeze(['/c']))).message, /already frozen/);
  await z.unfreeze();
  assert.equal(f.calls, ['freeze /a', 'freeze /b', 'thaw /b', 'thaw /a']);
});

test('unfreeze during a freeze cancels it: the freeze rolls back and fails, nothing stays frozen', async () => {
  const f = fakeOps();
  f.hold('freeze /b');
  const z = new Freezer({ ops: f.ops });
  const frz = z.freeze(['/a', '/b', '/c']).catch((e) => e);
  await waitFor(() => f.calls.includes('freeze /b'), 1000, 'freeze /b to start');
  const unf = z.unfreeze();
  f.open('freeze /b');
  const err = await frz;
  await unf;
  assert.match(String(err.message), /cancelled/);
  assert.equal(f.calls, ['freeze /a', 'freeze /b', 'thaw /b', 'thaw /a']);
  assert.not.ok(z.frozen);
});

test('unfreeze with nothing held thaws the fallback list in reverse, EINVAL tolerated', async () => {
  const f = fakeOps({ thaw: { '/a': E.EINVAL } });
  const z = new Freezer({ ops: f.ops });
  await z.unfreeze(['/a', '/b']);
  assert.equal(f.calls, ['thaw /b', 'thaw /a']);
  assert.not.ok(z.frozen);
});

test('auto-thaw after the timeout, logged; a failed auto-thaw is retried', async () => {
  const f = fakeOps({ thaw: { '/b': E.EIO } });
  const { lines, log } = logSink();
  const changes: boolean[] = [];
  const z = new Freezer({ ops: f.ops, log, retryMs: 50, onChange: (v) => changes.push(v) });
  await z.freeze(['/a', '/b'], 0.1);
  await sleep(50);
  assert.ok(z.frozen, 'not before the timeout');
  await waitFor(() => f.calls.includes('thaw /a'), 2000, 'auto-thaw');
  assert.ok(z.frozen, '/b failed to thaw: still frozen');
  assert.ok(
    lines.some((l) => /^warn no fs-unfreeze within 0.1 s: thawing \/a, \/b/.test(l)),
    lines.join('\n'),
  );
  assert.ok(
    lines.some((l) => /^error auto-thaw failed/.test(l)),
    lines.join('\n'),
  );
  (z as unknown as { ops: unknown }).ops = fakeOps().ops; // /b thaws now
  await waitFor(() => !z.frozen, 2000, 'the retry');
  assert.equal(changes, [true, false]);
  assert.ok(
    lines.some((l) => l === 'info retry: every filesystem thawed'),
    lines.join('\n'),
  );
});

test('unfreeze before the timeout disarms the timer', async () => {
  const f = fakeOps();
  const z = new Freezer({ ops: f.ops });
  await z.freeze(['/a'], 0.05);
  await z.unfreeze();
  await sleep(120);
  assert.equal(f.calls, ['freeze /a', 'thaw /a']);
});

test('release (exit path) thaws at once, also during a freeze that hangs', async () => {
  const f = fakeOps();
  f.hold('freeze /b');
  const z = new Freezer({ ops: f.ops });
  const frz = z.freeze(['/a', '/b']).catch((e) => e);
  await waitFor(() => f.calls.includes('freeze /b'), 1000, 'freeze /b to start');
  await z.release(50); // the freeze of /b never returns within 50 ms
  assert.ok(f.calls.includes('thaw /a'), 'thawed /a without waiting for the hung freeze');
  f.open('freeze /b');
  assert.match(String((await frz).message), /cancelled/);
  assert.equal(f.calls.filter((c) => c === 'thaw /b').length, 1, 'the late freeze of /b was rolled back');
  assert.not.ok(z.frozen);
});

test('logBlocksOn: log lines are held back while frozen and written after the thaw', async () => {
  const f = fakeOps();
  const { lines, log } = logSink();
  const z = new Freezer({ ops: f.ops, log, logBlocksOn: (ms) => ms.includes('/var') });
  await z.freeze(['/var', '/a'], 0.05);
  await waitFor(() => !z.frozen, 2000, 'the auto-thaw');
  const i = lines.findIndex((l) => l.startsWith('info frozen: /var, /a'));
  assert.ok(i >= 0 && /held back while frozen/.test(lines[i]), lines.join('\n'));
  assert.ok(
    lines.some((l) => /^warn no fs-unfreeze within 0.05 s: .*held back while frozen/.test(l)),
    lines.join('\n'),
  );
  // Not on a frozen filesystem: written at once.
  lines.length = 0;
  await z.freeze(['/b']);
  assert.ok(
    lines.some((l) => l === 'info frozen: /b'),
    lines.join('\n'),
  );
  await z.unfreeze();
});

test('bad timeout values are refused before anything is frozen', async () => {
  const f = fakeOps();
  const z = new Freezer({ ops: f.ops });
  assert.match((await rejection(z.freeze(['/a'], -1))).message, /timeout must be between/);
  assert.match((await rejection(z.freeze(['/a'], Number.NaN))).message, /timeout must be between/);
  assert.match((await rejection(z.freeze(['/a'], 1e10))).message, /timeout must be between/);
  assert.equal(f.calls, []);
  assert.not.ok(z.frozen);
});

test.run();
