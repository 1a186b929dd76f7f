// GuestFile's fast paths (lib/files/handle.ts): reads served from the page cache on the calling
// thread, small writes waited for on the addon's write helper, and the "Now" calls that give
// what was done at once as a value. Each gives what the thread pool would, falls back to it when
// it cannot (a page-cache miss, a write that outlasts its wait, a helper still busy), and is
// never taken for a FIFO or a character device.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { constants } from 'os';
import * as assert from 'uvu/assert';
import { GuestFile, fopenFile, openFile, type SystemError } from '../../../lib';
import { native } from '../../../lib/native';
import { tmpDir, withTmpfs } from '../../helpers/agent';
import { command, root, suite } from '../../helpers/harness';

const { EAGAIN } = constants.errno;

const test = suite<{ dir: string }>('files fast paths', { dir: '' });

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-fast-paths-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

type Calls = { cached: number[]; waited: number[]; pread: number[]; pwrite: number[] };

/** Runs fn with the addon's file calls counted by fd (the real calls still made). */
async function counting<T>(fn: (calls: Calls) => Promise<T>): Promise<T> {
  const calls: Calls = { cached: [], waited: [], pread: [], pwrite: [] };
  const saved = { ...native };
  const n = native as unknown as Record<string, unknown>;
  n.preadCached = (fd: number, ...rest: [Buffer, number]) => (calls.cached.push(fd), saved.preadCached(fd, ...rest));
  n.pwriteWait = (fd: number, ...rest: [Buffer, number, string, number]) => (
    calls.waited.push(fd),
    saved.pwriteWait(fd, ...rest)
  );
  n.pread = (fd: number, ...rest: [Buffer, number, string]) => (calls.pread.push(fd), saved.pread(fd, ...rest));
  n.pwrite = (fd: number, ...rest: [Buffer, number, string]) => (calls.pwrite.push(fd), saved.pwrite(fd, ...rest));
  try {
    return await fn(calls);
  } finally {
    Object.assign(native, saved);
  }
}

async function readAll(h: GuestFile): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let b = await h.read(4096); b.length > 0; b = await h.read(4096)) parts.push(Buffer.from(b));
  return Buffer.concat(parts);
}

/** A handle on a file opened by hand: kind 'regular' takes the fast paths, none the pool's path. */
function handOpened(f: string, kind: 'regular' | undefined): GuestFile {
  return new GuestFile(fs.openSync(f, 'w'), f, 'w', undefined, undefined, kind ? { kind } : {});
}

test('openFile and fopenFile tell regular files, FIFOs and character devices apart', async ({ dir }) => {
  const f = path.join(dir, 'kinds');
  fs.writeFileSync(f, 'x');
  const fifo = path.join(dir, 'kinds.fifo');
  execFileSync('mkfifo', [fifo]);
  const handles = [
    await openFile(f),
    await openFile(f, { mode: 'w', atomic: true }),
    await openFile(fifo),
    await openFile('/dev/null', { mode: 'w' }),
    await fopenFile(f, 'r'),
    await fopenFile('/dev/null', 'w'),
  ];
  try {
    assert.equal(
      handles.map((h) => h.kind),
      ['regular', 'regular', 'special', 'special', 'regular', 'special'],
    );
  } finally {
    for (const h of handles) await h.close({ discard: h.atomic || undefined });
  }
});

test('a read served from the page cache equals the off-thread read; a page-cache miss (EAGAIN) falls back to it', async ({
  dir,
}) => {
  const f = path.join(dir, 'cached.bin');
  const data = crypto.randomBytes(64 * 1024 + 123);
  fs.writeFileSync(f, data);
  const fd = fs.openSync(f, 'r');
  fs.fsyncSync(fd); // clean pages: the eviction below can drop them
  try {
    // Served from the cache: every read on the calling thread, none on the pool.
    const cached = await counting(async (calls) => {
      const h = await openFile(f);
      const got = await readAll(h);
      await h.close();
      assert.ok(calls.cached.length > 0, 'the reads were tried in the page cache');
      assert.is(calls.pread.length, 0, 'and none went to the pool');
      return got;
    });
    assert.ok(cached.equals(data), 'cached reads give the file');
    // Dropped from the cache (dd's nocache: fadvise DONTNEED): RWF_NOWAIT says EAGAIN, and the
    // pool reads the same bytes.
    const evict = () => execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
    evict();
    assert.is(native.preadCached(fd, Buffer.alloc(4096), 0), -EAGAIN, 'the file is out of the page cache');
    // That miss started the kernel's read-ahead, which fills the cache again, later on a busy
    // disk: evicted again once it is done, until a read finds the pages gone.
    let missed = false;
    for (let attempt = 0; attempt < 5 && !missed; attempt++) {
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      evict();
      const offThread = await counting(async (calls) => {
        const h = await openFile(f);
        const first = await h.read(4096);
        missed = calls.pread.length > 0;
        const got = Buffer.concat([Buffer.from(first), await readAll(h)]);
        await h.close();
        return got;
      });
      assert.ok(offThread.equals(data), 'the reads after an eviction give the same bytes');
    }
    assert.ok(missed, 'a page-cache miss went to the pool');
  } finally {
    fs.closeSync(fd);
  }
});

test('readBase64PartsNow and readFullNow: a cached read is a value, the same pieces as the promise gives', async ({
  dir,
}) => {
  const f = path.join(dir, 'now.bin');
  const data = crypto.randomBytes(3 * 4096 + 5);
  fs.writeFileSync(f, data);
  const a = await openFile(f);
  const b = await openFile(f);
  try {
    for (;;) {
      const now = a.readBase64PartsNow(4096);
      assert.ok(!(now instanceof Promise), 'a read from the page cache is done at once');
      const later = await b.readBase64Parts(4096);
      assert.equal(now, later);
      if (later.length === 0) break;
    }
    assert.is(a.position, data.length);
    const c = await fopenFile(f, 'r');
    const d = await fopenFile(f, 'r');
    // All of it, or nothing (the end): done at once. A part (the end of the file within it) is
    // left to the pool, which reads on to the end.
    for (const [size, atOnce] of [
      [0, true],
      [4096, true],
      [100, true],
      [1 << 20, false],
      [4096, true],
    ] as const) {
      const now = c.readFullNow(size);
      assert.is(!(now instanceof Promise), atOnce, `fread of ${size} done at once`);
      assert.equal(await now, await d.readFull(size));
    }
    await Promise.all([c.close(), d.close()]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('a large fread whose host left stops between slices and leaves the position where it was', async ({ dir }) => {
  const f = path.join(dir, 'left.bin');
  const data = crypto.randomBytes(10 << 20);
  fs.writeFileSync(f, data);
  const h = await fopenFile(f, 'r');
  try {
    const gone = new AbortController();
    gone.abort();
    const before = await h.readFull(8 << 20, undefined, gone.signal).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.is(before?.name, 'AbortError');
    assert.is(h.position, 0);
    // The host leaves during the first slice: no second slice is read.
    const leaving = new AbortController();
    const err = await counting(async (calls) => {
      const pread = native.pread;
      (native as unknown as Record<string, unknown>).pread = (...a: Parameters<typeof pread>) => {
        leaving.abort();
        return pread(...a);
      };
      try {
        return await h.readFull(8 << 20, undefined, leaving.signal).then(
          () => undefined,
          (e: Error) => e,
        );
      } finally {
        (native as unknown as Record<string, unknown>).pread = pread;
        assert.is(calls.pread.length, 1, 'one slice read, then the read stopped');
      }
    });
    assert.is(err?.name, 'AbortError');
    assert.is(h.position, 0);
    // The next host gets those bytes: nothing was skipped.
    const r = await h.readFull(8 << 20);
    assert.is(r.count, 8 << 20);
    assert.ok(Buffer.from(r.base64.join(''), 'base64').equals(data.subarray(0, 8 << 20)));
  } finally {
    await h.close();
  }
});

test('a hashing handle: a read done at once is hashed after its caller is done, in order with every other read', async ({
  dir,
}) => {
  const f = path.join(dir, 'hashed.bin');
  const data = crypto.randomBytes(300 * 1024 + 17);
  fs.writeFileSync(f, data);
  const h = await openFile(f, { md5: true });
  // The handle's running md5, its update() counted (an own property over the addon's method).
  const md5 = (h as unknown as { hash: { update(b: Buffer, n: number): void } }).hash;
  const update = md5.update.bind(md5);
  const hashed: number[] = [];
  Object.defineProperty(md5, 'update', {
    value: (b: Buffer, n: number) => {
      hashed.push(n);
      update(b, n);
    },
  });
  try {
    const first = h.readBase64PartsNow(4096);
    assert.ok(!(first instanceof Promise), 'served from the page cache');
    assert.equal(hashed, [], 'not hashed before its caller has answered');
    await Promise.resolve();
    assert.equal(hashed, [4096], 'hashed right after');
    // Small reads at once, large ones hashed on the pool, one read served by the pool between
    // two done at once: the md5 at the end is that of the file.
    for (const size of [4096, 100 * 1024, 4096, 4096, 1]) await h.readBase64Parts(size);
    const p1 = h.readBase64Parts(4096); // runs at once
    const p2 = h.readBase64Parts(200 * 1024); // queued behind nothing: hashed on the pool
    await Promise.all([p1, p2]);
    while ((await h.read(4096)).length > 0);
    assert.is(h.md5(), crypto.createHash('md5').update(data).digest('hex'));
  } finally {
    await h.close();
  }
});

test(
  'FIFOs and character devices never take a fast path, reading or writing',
  async ({ dir }) => {
    const fifo = path.join(dir, 'never.fifo');
    execFileSync('mkfifo', [fifo]);
    await counting(async (calls) => {
      const r = await openFile(fifo);
      const w = await openFile(fifo, { mode: 'w' });
      const zero = await openFile('/dev/zero');
      const devNull = await openFile('/dev/null', { mode: 'w' });
      const special = [r.fd, w.fd, zero.fd, devNull.fd];
      await w.write(Buffer.from('through the FIFO'));
      assert.is((await r.read()).toString(), 'through the FIFO');
      assert.is((await zero.read(16)).length, 16);
      await devNull.write(Buffer.alloc(4096));
      for (const h of [r, w, zero, devNull]) await h.close();
      assert.equal(
        [...calls.cached, ...calls.waited].filter((fd) => special.includes(fd)),
        [],
        'no page-cache read or waited write on a FIFO or device',
      );
    });
    // The same calls on a regular file take them.
    await counting(async (calls) => {
      const f = path.join(dir, 'never.bin');
      const w = await openFile(f, { mode: 'w' });
      await w.write(Buffer.from('a regular file'));
      await w.close();
      const r = await openFile(f);
      assert.is((await r.read()).toString(), 'a regular file');
      await r.close();
      assert.is(calls.waited.length, 1);
      assert.is(calls.cached.length, 1);
    });
  },
  { needs: [command('mkfifo')] },
);

test('waited writes: what they write equals the pool path, in order, across every size up to the limit and past it', async ({
  dir,
}) => {
  const sizes = [1, 4096, 5000, 64 * 1024, 64 * 1024 + 1, 200 * 1024, 3];
  const chunks = sizes.map((n) => crypto.randomBytes(n));
  const write = async (f: string, kind: 'regular' | undefined) => {
    const h = handOpened(f, kind);
    for (const c of chunks) await h.write(c);
    assert.is(h.position, Buffer.concat(chunks).length);
    await h.close();
    return fs.readFileSync(f);
  };
  const { waited, pwrite } = await counting(async (calls) => {
    const a = await write(path.join(dir, 'waited.bin'), 'regular');
    const b = await write(path.join(dir, 'pool.bin'), undefined);
    assert.ok(a.equals(Buffer.concat(chunks)));
    assert.ok(b.equals(a));
    return calls;
  });
  // Waited up to 64 KiB; the two larger chunks (and any write the helper was too slow for) on the pool.
  assert.is(waited.length, 5, 'every write of at most 64 KiB was offered to the helper');
  assert.ok(pwrite.length >= 2 + sizes.length, `pool writes ${pwrite.length}`);
});

test("writeNow and writeSomeNow: true and the count when the write was done at once; qemu-ga's writeSome gives what the pool's does", async ({
  dir,
}) => {
  const f = path.join(dir, 'some.bin');
  const h = await fopenFile(f, 'w+');
  const chunk = crypto.randomBytes(4096);
  // A busy machine may keep the helper past its wait: then a promise, which settles the same.
  const n = h.writeSomeNow(chunk);
  assert.is(typeof n === 'number' ? n : await n, 4096);
  assert.is(await h.writeSome(chunk), 4096);
  await h.close();
  assert.ok(fs.readFileSync(f).equals(Buffer.concat([chunk, chunk])));
  const g = await openFile(path.join(dir, 'now.bin'), { mode: 'w' });
  const w = g.writeNow(chunk);
  if (w !== true) await w;
  await g.close();
  assert.ok(fs.readFileSync(path.join(dir, 'now.bin')).equals(chunk));
  // Appending ("a"): the helper's pwrite lands at the end, and the position follows it there.
  const app = path.join(dir, 'append.bin');
  fs.writeFileSync(app, 'head');
  const a = await fopenFile(app, 'a');
  assert.is(await a.writeSome(Buffer.from('tail')), 4);
  assert.is(a.position, 8);
  await a.close();
  assert.is(fs.readFileSync(app, 'utf8'), 'headtail');
});

test('a waited write still under way when the wait ends: the helper takes no other until it is done, and it settles like pwrite', async ({
  dir,
}) => {
  const f = path.join(dir, 'late.bin');
  const fd = fs.openSync(f, 'w');
  try {
    const chunk = crypto.randomBytes(4096);
    // With no wait at all the helper is almost always still writing when the wait ends.
    let late: Promise<number> | undefined;
    for (let i = 0; i < 2000 && !late; i++) {
      const r = native.pwriteWait(fd, chunk, 0, f, 0);
      if (r instanceof Promise) late = r;
    }
    assert.ok(late, 'a write outlasted a wait of 0 us');
    // Its outcome is taken on the event loop: until then, the helper is busy.
    assert.is(native.pwriteWait(fd, chunk, 4096, f, 1_000_000), undefined);
    assert.is(await late, 4096);
    // Done: the helper takes writes again (a generous wait: this machine may be busy).
    const again = native.pwriteWait(fd, chunk, 4096, f, 1_000_000);
    assert.is(again instanceof Promise ? await again : again, 4096);
    assert.ok(fs.readFileSync(f).equals(Buffer.concat([chunk, chunk])));
  } finally {
    fs.closeSync(fd);
  }
});

/** This thread's CPU now (/proc/self/stat, field 39), and the CPUs a thread of this process may use. */
function cpuNow(): number {
  const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[36]);
}
function allowedCpus(tid: string): string {
  return /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))![1];
}

test('the write helper runs on the CPU of the thread that hands it the write', async ({ dir }) => {
  const f = path.join(dir, 'pinned.bin');
  const fd = fs.openSync(f, 'w');
  try {
    const chunk = Buffer.alloc(4096, 7);
    const settle = (r: number | Promise<number> | undefined) => (r instanceof Promise ? r : Promise.resolve(r));
    await settle(native.pwriteWait(fd, chunk, 0, f, 1_000_000)); // the helper starts, and says its id
    const helper = fs
      .readdirSync('/proc/self/task')
      .find((t) => fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'ember-ga:write');
    assert.ok(helper, 'the write helper thread is there');
    // The main thread may move between the write and the look: a few tries, each checked.
    let seen = '';
    let followed = false;
    for (let i = 0; i < 20 && !followed; i++) {
      const before = cpuNow();
      await settle(native.pwriteWait(fd, chunk, 4096, f, 1_000_000));
      seen = allowedCpus(helper);
      followed = cpuNow() === before && seen === String(before);
    }
    assert.ok(followed, `the helper is held to the writing thread's CPU (it may use ${seen})`);
    assert.ok(fs.readFileSync(f).equals(Buffer.concat([chunk, chunk])));
  } finally {
    fs.closeSync(fd);
  }
});

test("a waited write's error: within the wait, a rejected promise with pwrite's error", async ({ dir }) => {
  const f = path.join(dir, 'readonly.bin');
  fs.writeFileSync(f, '');
  const fd = fs.openSync(f, 'r');
  try {
    const viaWait = native.pwriteWait(fd, Buffer.alloc(16), 0, f, 1_000_000);
    assert.instance(viaWait, Promise);
    const errs = await Promise.all(
      [viaWait as Promise<number>, native.pwrite(fd, Buffer.alloc(16), 0, f)].map((p) =>
        p.then(
          () => assert.unreachable('a write on a read-only fd failed'),
          (e: NodeJS.ErrnoException) => `${e.message} ${e.errno} ${e.syscall} ${e.path}`,
        ),
      ),
    );
    assert.is(errs[0], errs[1]);
  } finally {
    fs.closeSync(fd);
  }
});

test(
  'a full filesystem: a waited write fails as the pool write does, and so does every later write',
  async ({ dir }) => {
    await withTmpfs(dir, 'full', 'size=64k', async (mnt) => {
      const fail = async (kind: 'regular' | undefined, some: boolean): Promise<string[]> => {
        const f = path.join(mnt, `fill-${kind ?? 'pool'}`);
        const h = handOpened(f, kind);
        const errors: string[] = [];
        try {
          for (let i = 0; i < 40 && errors.length < 2; i++) {
            const chunk = Buffer.alloc(4096, 1);
            await (some ? h.writeSome(chunk) : h.write(chunk)).catch((e: SystemError) =>
              errors.push(`${e.code}: ${e.message}`),
            );
          }
        } finally {
          await h.close().catch(() => undefined);
          fs.rmSync(f);
        }
        return errors.map((e) => e.split(f).join('FILE'));
      };
      for (const some of [false, true]) {
        const waited = await fail('regular', some);
        const pool = await fail(undefined, some);
        assert.is(waited.length, 2);
        assert.match(waited[0], /^ENOSPC: write FILE: no space left on device/);
        assert.equal(waited, pool, some ? 'writeSome' : 'write');
      }
    });
  },
  { needs: [root, command('mount')] },
);

test('a write waited on but not done holds the later operations of its handle behind it', async ({ dir }) => {
  const f = path.join(dir, 'held.bin');
  const a = crypto.randomBytes(4096);
  const b = crypto.randomBytes(4096);
  const saved = native.pwriteWait;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  // The first waited write "outlasts its wait": it lands only once released.
  (native as { pwriteWait: typeof saved }).pwriteWait = (fd, buf, offset, p) =>
    gate.then(() => native.pwrite(fd, buf, offset, p));
  try {
    const h = await openFile(f, { mode: 'w' });
    const first = h.write(a);
    (native as { pwriteWait: typeof saved }).pwriteWait = saved;
    const second = h.write(b); // queued behind the first: the pool's path
    const order: string[] = [];
    void first.then(() => order.push('first'));
    void second.then(() => order.push('second'));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(order, [], 'nothing is done while the first write is under way');
    release();
    await Promise.all([first, second]);
    await h.close();
    assert.equal(order, ['first', 'second']);
    assert.ok(fs.readFileSync(f).equals(Buffer.concat([a, b])));
  } finally {
    (native as { pwriteWait: typeof saved }).pwriteWait = saved;
  }
});

test.run();
