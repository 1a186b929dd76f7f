// listDirectory: each entry byte for byte as Node's lstat and JSON.stringify give it, in byte
// order of names; cancellation; entries removed while listing.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { SystemError, listDirectory, type FileStat } from '../lib';
import { listDirectoryBatches, goStat } from '../lib/files/stat';
import { tmpDir } from './helpers/agent';
import { command, root, suite } from './helpers/harness';

const test = suite<{ dir: string }>('directory listing', { dir: '' });

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-dirlist-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** The listing as Node's readdir and bigint lstat give it, one entry at a time: the reference. */
function expectedListing(dir: string, n = 0): FileStat[] {
  let names = fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
  if (n > 0) names = names.slice(0, n);
  const prefix = Buffer.from(dir.endsWith('/') ? dir : dir + '/');
  return names.map((b) => {
    const s = fs.lstatSync(Buffer.concat([prefix, b]), { bigint: true });
    return { name: b.toString('utf8'), isdir: s.isDirectory(), stat: goStat(s) };
  });
}

/** Entries of every kind, names that are not UTF-8 or that JSON and Go escape, times before 1970. */
function oddDirectory(dir: string, name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  const names = ['a', 'B', '<b>&c', '\u2028x\u2029', 'é', '日本', 'emoji😀', 'q"uote', 'back\\slash', 'ctl\x01\x1f\x7f', 'new\nline', ' sp', '.hidden', '..x', 'z'.repeat(255)];
  for (const n of names) fs.writeFileSync(path.join(d, n), n);
  for (const bytes of [[0xff, 0x41], [0xc3], [0xe6, 0x97], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0x80]]) {
    fs.writeFileSync(Buffer.concat([Buffer.from(`${d}/bad`), Buffer.from(bytes), Buffer.from('end')]), '');
  }
  fs.mkdirSync(path.join(d, 'dir'));
  fs.symlinkSync('/nonexistent', path.join(d, 'link'));
  fs.symlinkSync('dir', path.join(d, 'linkdir'));
  fs.linkSync(path.join(d, 'a'), path.join(d, 'hardlink'));
  fs.utimesSync(path.join(d, 'a'), -1.5, 4102444800.123);
  fs.truncateSync(path.join(d, 'é'), 2 ** 40);
  execFileSync('mkfifo', [path.join(d, 'fifo')]);
  execFileSync('mknod', [path.join(d, 'chr'), 'c', '1', '3']);
  execFileSync('mknod', [path.join(d, 'blk'), 'b', '259', '65537']); // a minor past 255
  return d;
}

test('listDirectory: each entry as Node\'s lstat gives it, byte for byte, in byte order of names', async ({ dir }) => {
  const d = oddDirectory(dir, 'odd-lib');
  for (const n of [0, 1, 7, -1, 1000]) {
    assert.is(JSON.stringify(await listDirectory(d, n)), JSON.stringify(expectedListing(d, n)), `n=${n}`);
  }
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  assert.equal(await listDirectory(empty, 5), []);
}, { needs: [root, command('mkfifo'), command('mknod')] });

/** Files open in this process. */
const openFds = () => fs.readdirSync('/proc/self/fd').length;

test('listDirectory: a signal cancels it with ECANCELED, and its directory is closed', async ({ dir }) => {
  const d = path.join(dir, 'cancel');
  fs.mkdirSync(d);
  for (let i = 0; i < 2000; i++) fs.writeFileSync(path.join(d, `f${i}`), '');
  const before = openFds();
  const ac = new AbortController();
  ac.abort();
  const early = await listDirectory(d, 0, { signal: ac.signal }).catch((e: unknown) => e);
  assert.instance(early, SystemError);
  assert.is((early as SystemError).code, 'ECANCELED');
  assert.match((early as SystemError).message, /cancel\/?: listing cancelled$/);

  const mid = new AbortController();
  const batches = listDirectoryBatches(d, 0, { signal: mid.signal });
  assert.ok((await batches.next()).value.length > 0);
  mid.abort();
  const late = await batches.next().catch((e: unknown) => e);
  assert.is((late as SystemError).code, 'ECANCELED');
  assert.is(openFds(), before, 'the directory fd is closed');
  assert.is((await listDirectory(d)).length, 2000, 'unaffected without a signal');
  assert.is(openFds(), before);
});

test('listDirectory: entries removed while listing are left out', async ({ dir }) => {
  const d = path.join(dir, 'shrinking');
  fs.mkdirSync(d);
  const names = Array.from({ length: 1200 }, (_, i) => `f${String(i).padStart(4, '0')}`);
  for (const n of names) fs.writeFileSync(path.join(d, n), '');
  const batches = listDirectoryBatches(d);
  const got = (await batches.next()).value as FileStat[];
  for (const n of names.slice(1100)) fs.unlinkSync(path.join(d, n)); // in a batch not yet lstat-ed
  for await (const b of batches) got.push(...b);
  assert.equal(got.map((e) => e.name), names.slice(0, 1100));
});

test.run();
