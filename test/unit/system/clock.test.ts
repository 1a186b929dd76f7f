// lib/system/clock.ts on a fixture system: the time settimeofday gets, the hwclock runs, the
// refusals. The system clock is a recorder here (or ROOT/clock): never this machine's.
import * as assert from 'uvu/assert';
import { ClockError, ProgramFailedError, setTime, timeval } from '../../../lib/system';
import { suite, rejection } from '../../helpers/harness';
import { SystemFixture } from '../../helpers/system-fixture';

const test = suite('system-clock');

const rejects = (p: PromiseLike<unknown>) => rejection(p);

test('timeval: seconds and microseconds as C divides', () => {
  assert.equal(timeval(1_700_000_000_123_456_789n), { seconds: 1_700_000_000, microseconds: 123_456 });
  assert.equal(timeval(999n), { seconds: 0, microseconds: 0 });
  assert.equal(timeval(-1_500_000_000n), { seconds: -1, microseconds: -500_000 });
});

test('a time: settimeofday, then hwclock -w; none: hwclock -s alone', async () => {
  const fx = new SystemFixture();
  try {
    fx.stub('/sbin/hwclock');
    const set: [number, number][] = [];
    const opts = { root: fx.root, setTimeOfDay: (s: number, us: number) => void set.push([s, us]) };
    await setTime(1_700_000_000_123_456_789n, opts);
    // A JSON number as the host sends it: the double nearest, within a microsecond.
    await setTime(Number('1700000000123456789'), opts);
    await setTime(undefined, opts);
    assert.equal(set, [
      [1_700_000_000, 123_456],
      [1_700_000_000, 123_456],
    ]);
    assert.equal(fx.calls(), ['hwclock [-w]', 'hwclock [-w]', 'hwclock [-s]']);
  } finally {
    fx.cleanup();
  }
});

test('under a root, the clock is ROOT/clock', async () => {
  const fx = new SystemFixture();
  try {
    fx.stub('/sbin/hwclock');
    await setTime(1_700_000_000_500_000_000n, { root: fx.root });
    assert.is(fx.read('/clock'), '1700000000 500000\n');
  } finally {
    fx.cleanup();
  }
});

test('refusals: no hwclock, a year outside 1970-2069, hwclock failing', async () => {
  const fx = new SystemFixture();
  try {
    const set: number[] = [];
    const opts = { root: fx.root, setTimeOfDay: (s: number) => void set.push(s) };
    let e = await rejects(setTime(1_700_000_000_000_000_000n, opts));
    assert.instance(e, ClockError);
    assert.is(e.message, 'this feature or command is not currently supported');
    fx.stub('/sbin/hwclock', { exit: 1 });
    for (const ns of [3_200_000_000_000_000_000n, -100_000_000_000_000_000n, 9_000_000_000_000_000_000n]) {
      e = await rejects(setTime(ns, opts));
      assert.is(e.message, 'Invalid time', String(ns));
    }
    assert.equal(set, []);
    assert.equal(fx.calls(), []);
    e = await rejects(setTime(undefined, opts));
    assert.instance(e, ProgramFailedError);
    assert.is(e.message, 'hwclock failed to set hardware clock to system time');
    fx.stub('/sbin/hwclock', { killed: true });
    e = await rejects(setTime(undefined, opts));
    assert.is(e.message, 'child process has terminated abnormally');
  } finally {
    fx.cleanup();
  }
});

test('settimeofday failing: its SystemError, and no hwclock', async () => {
  const fx = new SystemFixture();
  try {
    fx.stub('/sbin/hwclock');
    const e = await rejects(
      setTime(1_700_000_000_000_000_000n, {
        root: fx.root,
        setTimeOfDay: () => {
          throw Object.assign(new Error('settimeofday: Operation not permitted'), {
            errno: 1,
            syscall: 'settimeofday',
          });
        },
      }),
    );
    assert.is((e as Error & { syscall: string }).syscall, 'settimeofday');
    assert.equal(fx.calls(), []);
  } finally {
    fx.cleanup();
  }
});

test.run();
