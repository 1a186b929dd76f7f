// lib/buffers.ts: what the pool keeps for reuse, and when it lets go.
import * as assert from 'uvu/assert';
import { BufferPool } from '../../lib/buffers';
import { sleep, suite } from '../helpers/harness';

const test = suite('buffer pool');
const MiB = 1024 * 1024;

test('kept buffers nothing takes for a while are let go, their memory freed; a pool in use keeps them', async () => {
  const pool = new BufferPool(8 * MiB, 100);
  const a = pool.take(MiB);
  const b = pool.take(MiB);
  pool.give(a);
  pool.give(b);
  assert.is(pool.kept, 2 * MiB);
  // In use: a take every 40 ms, for longer than the idle time.
  for (let i = 0; i < 6; i++) {
    await sleep(40);
    pool.give(pool.take(MiB));
  }
  assert.is(pool.kept, 2 * MiB, 'kept while in use');
  await sleep(350);
  assert.is(pool.kept, 0, 'let go once idle');
  // Freed, not left to a full collection: the buffers no longer hold their memory.
  assert.is(a.length + b.length, 0);
  const c = pool.take(MiB);
  assert.ok(c !== a && c !== b && c.length === MiB, 'a fresh buffer after');
});

test.run();
