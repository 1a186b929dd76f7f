// lib/system/vcpus.ts on a fixture /sys/devices/system/cpu: what is written, the count of
// requests done, and the errors (qemu-ga 7.2's guest-set-vcpus semantics).
import * as assert from 'uvu/assert';
import { CannotOfflineError, setVcpus, UnexpectedEofError, vcpuDir } from '../../../lib/system';
import { SystemError } from '../../../lib/errors';
import { suite, rejection } from '../../helpers/harness';
import { SystemFixture } from '../../helpers/system-fixture';

const test = suite('system-vcpus');

const CPU = '/sys/devices/system/cpu';

function cpus(): SystemFixture {
  const fx = new SystemFixture();
  fx.mkdir(`${CPU}/cpu0`); // the boot CPU: no online file
  fx.write(`${CPU}/cpu1/online`, '1\n');
  fx.write(`${CPU}/cpu2/online`, '0\n');
  fx.write(`${CPU}/cpu3/online`, '');
  return fx;
}

const rejects = (p: PromiseLike<unknown>) => rejection(p);

test('each request in order; a state already so is left alone', async () => {
  const fx = cpus();
  try {
    const opts = { root: fx.root };
    assert.is(await setVcpus([], opts), 0);
    assert.is(
      await setVcpus(
        [
          { logicalId: 1, online: false },
          { logicalId: 2, online: true },
          { logicalId: 0, online: true },
        ],
        opts,
      ),
      3,
    );
    assert.is(fx.read(`${CPU}/cpu1/online`), '0\n');
    assert.is(fx.read(`${CPU}/cpu2/online`), '1\n');
    assert.is(await setVcpus([{ logicalId: 1, online: false }], opts), 1);
    assert.is(fx.read(`${CPU}/cpu1/online`), '0\n');
  } finally {
    fx.cleanup();
  }
});

test('the first failing is an error, a later one shortens the count', async () => {
  const fx = cpus();
  try {
    const opts = { root: fx.root };
    let e = await rejects(setVcpus([{ logicalId: 0, online: false }], opts));
    assert.instance(e, CannotOfflineError);
    assert.is(e.message, "logical processor #0 can't be offlined");
    e = await rejects(setVcpus([{ logicalId: 7, online: true }], opts));
    assert.instance(e, SystemError);
    assert.equal(
      [(e as SystemError).code, (e as SystemError).syscall, (e as SystemError).path],
      ['ENOENT', 'open', vcpuDir(7, opts)],
    );
    e = await rejects(setVcpus([{ logicalId: 3, online: true }], opts));
    assert.instance(e, UnexpectedEofError);
    assert.is((e as UnexpectedEofError).path, `${vcpuDir(3, opts)}/online`);
    const n = await setVcpus(
      [
        { logicalId: 2, online: true },
        { logicalId: 0, online: false },
        { logicalId: 1, online: false },
      ],
      opts,
    );
    assert.is(n, 1);
    assert.is(fx.read(`${CPU}/cpu2/online`), '1\n');
    assert.is(fx.read(`${CPU}/cpu1/online`), '1\n', 'nothing after the failure is done');
  } finally {
    fx.cleanup();
  }
});

test.run();
