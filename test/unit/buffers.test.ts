// lib/buffers.ts: what the pool keeps for reuse, and when it lets go.
import * as assert from 'uvu/assert';
import { BufferPool, slabBuffer } from '../../lib/buffers';
import { collectAll, enableCollections } from '../../lib/memory';
import { native } from '../../lib/native';
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

test("small answers' slabs come from malloc's heap, not mappings faulted in anew each time", () => {
  // As the agent runs (lib/cli.ts): blocks of 128 KiB or more are mappings of their own.
  assert.ok(native.mallocMmapThreshold(128 * 1024));
  assert.ok(enableCollections());
  const answers = (n: number) => {
    for (let i = 0; i < n; i++) slabBuffer(5510).fill(i); // a 4 KiB read's answer, touched as it is written
  };
  answers(2000);
  collectAll();
  const before = process.resourceUsage().minorPageFault;
  for (let round = 0; round < 10; round++) {
    answers(1000); // ~5.3 MiB of answers, then the slabs are freed
    collectAll();
  }
  const faults = process.resourceUsage().minorPageFault - before;
  // A mapped 256 KiB slab took 64 faults every 47 answers: ~13,600 here.
  assert.ok(faults < 2000, `${faults} page faults for 10,000 answers`);
});

test.run();
