// Freezer's rules with fake ioctls (no root needed): order, tolerated errors, rollback,
// cancellation, auto-thaw, release, and the `frozen` state after each.
import { constants } from 'os';
import * as assert from 'uvu/assert';
import {
  Freezer,
  FsfreezeHookError,
  mountPathText,
  SystemError,
  type FsfreezeHookAction,
  type MountPath,
} from '../../../lib';
import { sleep, suite, waitFor } from '../../helpers/harness';

const test = suite('freezer');
const E = constants.errno;

/** Fake ioctls: records calls, fails where told, can hold a call until released. */
function fakeOps(fail: { freeze?: Record<string, number>; thaw?: Record<string, number> } = {}) {
  const calls: string[] = [];
  const gates = new Map<string, () => void>();
  const op = (kind: 'freeze' | 'thaw') => async (mp: MountPath) => {
    const m = mountPathText(mp);
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

test('a fallback thaw that fails leaves that mount point held and frozen true, until a retry thaws it', async () => {
  const fail = { thaw: { '/b': E.EIO } as Record<string, number> };
  const f = fakeOps(fail);
  const changes: boolean[] = [];
  const z = new Freezer({ ops: f.ops, retryMs: 50, log: logSink().log, onChange: (v) => changes.push(v) });
  const err = await rejection(z.unfreeze(['/a', '/b']));
  assert.match(err.message, /thaw/);
  assert.ok(z.frozen, 'a filesystem still frozen: the state says so');
  assert.equal(z.mountpoints, ['/b']);
  assert.equal(changes, [true]);
  // A freeze is refused while it is held, and the retry goes on thawing it.
  assert.match((await rejection(z.freeze(['/c']))).message, /already frozen/);
  await waitFor(() => f.calls.filter((c) => c === 'thaw /b').length >= 2, 2000, 'the retry');
  delete fail.thaw['/b'];
  await waitFor(() => !z.frozen, 2000, 'the retry that succeeds');
  assert.equal(z.mountpoints, []);
  assert.equal(changes, [true, false]);
});

test('a fallback mount point that cannot be opened is skipped, not held frozen', async () => {
  const calls: string[] = [];
  const ops = {
    freeze: () => Promise.resolve(),
    thaw: (m: string) => {
      calls.push(`thaw ${m}`);
      return m === '/fuse' ? Promise.reject(new SystemError(E.ENOTCONN, 'open', m)) : Promise.resolve();
    },
  };
  const { lines, log } = logSink();
  const z = new Freezer({ ops, log, retryMs: 50 });
  assert.equal(await z.unfreeze(['/a', '/fuse', '/b']), ['/b', '/a']);
  assert.not.ok(z.frozen);
  assert.equal(z.mountpoints, []);
  assert.ok(
    lines.some((l) => l.startsWith('warn /fuse:') && l.endsWith('not thawed')),
    lines.join('\n'),
  );
  await sleep(150);
  assert.equal(calls, ['thaw /b', 'thaw /fuse', 'thaw /a'], 'no retry');
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

test('mount points as bytes: handed to the ioctls as they are, one with a string of the same bytes, named as text', async () => {
  const given: MountPath[] = [];
  const f = fakeOps({ thaw: { '/m\ufffd': E.EIO } });
  const ops = {
    freeze: (m: MountPath) => (given.push(m), f.ops.freeze(m)),
    thaw: (m: MountPath) => (given.push(m), f.ops.thaw(m)),
  };
  const { lines, log } = logSink();
  const z = new Freezer({ ops, log });
  const ff = Buffer.from('/m\xff', 'latin1');
  const e9 = Buffer.from('/\u00e9');
  // "/\u00e9" and its bytes are one mount point; "/m\xff" and "/m\xfe" read alike but are two.
  const held = await z.freeze([ff, e9, '/\u00e9', Buffer.from('/m\xfe', 'latin1')]);
  assert.equal(held, [ff, e9, Buffer.from('/m\xfe', 'latin1')]);
  assert.equal(given, held, 'the Buffers themselves');
  assert.ok(lines.includes('info frozen: /m\ufffd, /\u00e9, /m\ufffd'), lines.join('\n'));
  const err = await rejection(z.unfreeze());
  assert.is((err as SystemError).code, 'EIO');
  assert.ok(lines.includes('error thaw /m\ufffd: thaw /m\ufffd: input/output error'), lines.join('\n'));
  (z as unknown as { ops: unknown }).ops = fakeOps().ops;
  await z.unfreeze();
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

test('freezeList: what this call froze, what was frozen already, what was skipped; unfreeze resolves to what it thawed', async () => {
  const f = fakeOps({ freeze: { '/busy': E.EBUSY, '/tmp': E.EOPNOTSUPP }, thaw: { '/c': E.EINVAL } });
  const z = new Freezer({ ops: f.ops });
  assert.equal(await z.freezeList(['/a', '/busy', '/tmp', '/c']), {
    held: ['/a', '/busy', '/c'],
    frozen: ['/a', '/c'],
    skipped: ['/tmp'],
  });
  assert.equal(await z.unfreeze(), ['/busy', '/a'], '/c was not frozen any more (EINVAL): not counted');
  assert.equal(await z.unfreeze(['/x', '/y']), ['/y', '/x'], 'nothing held: the fallback, in reverse');
});

test('allowNothing: a freeze that holds nothing resolves, leaving the freezer unfrozen', async () => {
  const f = fakeOps({ freeze: { '/tmp': E.EOPNOTSUPP } });
  const changes: boolean[] = [];
  const z = new Freezer({ ops: f.ops, onChange: (v) => changes.push(v) });
  assert.equal(await z.freezeList(['/tmp'], { allowNothing: true }), { held: [], frozen: [], skipped: ['/tmp'] });
  assert.equal(await z.freezeList([], { allowNothing: true }), { held: [], frozen: [], skipped: [] });
  assert.not.ok(z.frozen);
  assert.equal(changes, [true, false, true, false]);
  assert.equal(await z.freeze(['/a']), ['/a'], 'a later freeze is accepted');
  await z.unfreeze();
});

/** A hook that records its calls and fails (or hangs) where told. */
function fakeHook(fail: Partial<Record<FsfreezeHookAction, string>> = {}, hangOn?: FsfreezeHookAction) {
  const calls: string[] = [];
  const hook = async (action: FsfreezeHookAction, signal?: AbortSignal) => {
    calls.push(`hook ${action}`);
    if (action === hangOn) {
      await new Promise<void>((_, reject) =>
        signal?.addEventListener('abort', () => reject(new Error('killed')), { once: true }),
      );
    }
    const message = fail[action];
    if (message) throw new FsfreezeHookError(message, action);
  };
  return { calls, hook };
}

test('hook: "freeze" before the first ioctl, "thaw" after the last; both protocols go through here', async () => {
  const f = fakeOps();
  const h = fakeHook();
  const all: string[] = [];
  const z = new Freezer({
    ops: {
      freeze: (m) => (all.push(`freeze ${m}`), f.ops.freeze(m)),
      thaw: (m) => (all.push(`thaw ${m}`), f.ops.thaw(m)),
    },
    hook: (a, s) => (all.push(`hook ${a}`), h.hook(a, s)),
  });
  await z.freeze(['/a', '/b']);
  assert.ok(z.frozen);
  await z.unfreeze();
  assert.equal(all, ['hook freeze', 'freeze /a', 'freeze /b', 'thaw /b', 'thaw /a', 'hook thaw']);
  all.length = 0;
  await z.unfreeze();
  assert.equal(all, ['hook thaw'], 'a thaw with nothing frozen still runs the hook, as qemu-ga');
});

test('hook: a failing freeze hook fails the freeze, nothing is frozen and "thaw" is not run', async () => {
  const f = fakeOps();
  const h = fakeHook({ freeze: 'fsfreeze hook has failed with status 1' });
  const z = new Freezer({ ops: f.ops, hook: h.hook });
  const err = await rejection(z.freeze(['/a']));
  assert.instance(err, FsfreezeHookError);
  assert.is(err.message, 'fsfreeze hook has failed with status 1');
  assert.equal(f.calls, []);
  assert.equal(h.calls, ['hook freeze']);
  assert.not.ok(z.frozen);
});

test('hook: a freeze that fails after its hook ran rolls back and runs "thaw"; so does one that froze nothing', async () => {
  const f = fakeOps({ freeze: { '/bad': E.EIO, '/tmp': E.EOPNOTSUPP } });
  const h = fakeHook();
  const z = new Freezer({ ops: f.ops, hook: h.hook });
  assert.is(((await rejection(z.freeze(['/a', '/bad']))) as SystemError).code, 'EIO');
  assert.equal(h.calls, ['hook freeze', 'hook thaw']);
  assert.equal(f.calls, ['freeze /a', 'freeze /bad', 'thaw /a']);
  h.calls.length = 0;
  assert.equal((await z.freezeList(['/tmp'], { allowNothing: true })).frozen, []);
  assert.equal(h.calls, ['hook freeze', 'hook thaw']);
  assert.not.ok(z.frozen);
});

test('hook: a failing thaw hook is the unfreeze error, but everything is thawed', async () => {
  const f = fakeOps();
  const h = fakeHook({ thaw: 'fsfreeze hook has failed with status 3' });
  const { lines, log } = logSink();
  const z = new Freezer({ ops: f.ops, hook: h.hook, log });
  await z.freeze(['/a']);
  const err = await rejection(z.unfreeze());
  assert.is(err.message, 'fsfreeze hook has failed with status 3');
  assert.not.ok(z.frozen);
  assert.equal(f.calls, ['freeze /a', 'thaw /a']);
  // The auto-thaw says so in its log, and does not pretend it will retry.
  await z.freeze(['/a'], 0.05);
  await waitFor(() => lines.some((l) => l.includes('auto-thaw: every filesystem thawed, but')), 2000, 'the auto-thaw');
  assert.not.ok(z.frozen);
});

test('hook: an unfreeze while the freeze hook runs kills it; the freeze fails as cancelled, nothing frozen', async () => {
  const f = fakeOps();
  const h = fakeHook({}, 'freeze');
  const z = new Freezer({ ops: f.ops, hook: h.hook });
  const frz = z.freeze(['/a']).catch((e) => e);
  await waitFor(() => h.calls.length > 0, 1000, 'the hook to start');
  await z.unfreeze();
  assert.match(String((await frz).message), /cancelled/);
  assert.equal(f.calls, []);
  assert.not.ok(z.frozen);
});

test('hook: release (exit) thaws, then runs "thaw"', async () => {
  const f = fakeOps();
  const h = fakeHook();
  const z = new Freezer({ ops: f.ops, hook: h.hook });
  await z.freeze(['/a']);
  await z.release(100);
  assert.equal(f.calls, ['freeze /a', 'thaw /a']);
  assert.equal(h.calls, ['hook freeze', 'hook thaw']);
  assert.not.ok(z.frozen);
});

test.run();
