// lib/system/memory-blocks.ts on a fixture /sys/devices/system/memory: an outcome per block,
// with qemu-ga 7.2's results and errnos.
import * as assert from 'uvu/assert';
import { memoryBlockDir, setMemoryBlocks } from '../../../lib/system';
import { suite } from '../../helpers/harness';
import { SystemFixture } from '../../helpers/system-fixture';

const test = suite('system-memory-blocks');

const MEM = '/sys/devices/system/memory';

test('an outcome for each block, whatever became of the others', async () => {
  const fx = new SystemFixture();
  try {
    fx.write(`${MEM}/memory0/state`, 'online\n');
    fx.write(`${MEM}/memory1/state`, 'offline\n');
    fx.mkdir(`${MEM}/memory2`); // an old kernel: no state file
    fx.write(`${MEM}/memory3/state`, '');
    fx.write(`${MEM}/memory4`, 'not a directory');
    const out = await setMemoryBlocks(
      [
        { index: 0, online: false },
        { index: 1, online: true },
        { index: 1, online: true },
        { index: 9, online: true },
        { index: 2, online: true },
        { index: 2, online: false },
        { index: 3, online: true },
        { index: 4, online: true },
      ],
      { root: fx.root },
    );
    assert.equal(out, [
      { result: 'success' },
      { result: 'success' },
      { result: 'success' },
      { result: 'not-found', errno: 2 },
      { result: 'success', errno: 2 },
      { result: 'operation-not-supported', errno: 2 },
      { result: 'operation-failed', errno: 0 },
      { result: 'operation-failed', errno: 20 },
    ]);
    assert.is(fx.read(`${MEM}/memory0/state`), 'offline');
    // (sysfs replaces the attribute; the fixture file keeps the tail of the longer word)
    assert.ok(fx.read(`${MEM}/memory1/state`).startsWith('online'));
  } finally {
    fx.cleanup();
  }
});

test('no memory directory: not supported, for every block', async () => {
  const fx = new SystemFixture();
  try {
    assert.equal(await setMemoryBlocks([{ index: 0, online: true }], { root: fx.root }), [
      { result: 'operation-not-supported', errno: 2 },
    ]);
  } finally {
    fx.cleanup();
  }
});

test('a block index is printed as qemu-ga prints it: signed 64-bit', () => {
  assert.ok(memoryBlockDir(-1).endsWith('/memory-1'));
  assert.ok(memoryBlockDir(2n ** 64n - 2n).endsWith('/memory-2'));
  assert.is(memoryBlockDir(12), `${MEM}/memory12`);
});

test.run();
