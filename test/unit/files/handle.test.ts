// The file library on its own (lib/files): GuestFile ordering, streams, errors; md5File; the
// Go-shaped stat helpers; strict base64.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { GuestFile, SystemError, fopenFile, listDirectory, md5File, mkdirAll, openFile } from '../../../lib';
import { RawJson, encodeRawReturn, encodeReturn } from '../../../lib/wire/answer';
import { decodeBase64 } from '../../../lib/wire/base64';
import { baseName, goStat, goStatFile } from '../../../lib/files/stat';
import { native } from '../../../lib/native';
import { decodeBase64Into } from '../../../lib/wire/decode-native';
import { BufferPool, chunkPool } from '../../../lib/buffers';
import { tmpDir } from '../../helpers/agent';
import { command, root, suite, type Requirement } from '../../helpers/harness';

const test = suite<{ dir: string }>('files library', { dir: '' });

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-files-lib-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

async function rejects(p: Promise<unknown>, code: string, re?: RegExp): Promise<SystemError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, SystemError);
    assert.is((e as SystemError).code, code);
    if (re) assert.match((e as SystemError).message, re);
    return e as SystemError;
  }
  throw new Error(`expected a rejection with ${code}`);
}

test('md5File matches crypto for empty, small and multi-chunk files', async ({ dir }) => {
  for (const size of [0, 1, 4096, 3 * 1024 * 1024 + 17, 9 * 1024 * 1024 + 5]) {
    const data = crypto.randomBytes(size);
    const f = path.join(dir, `md5-${size}`);
    fs.writeFileSync(f, data);
    assert.is(await md5File(f), crypto.createHash('md5').update(data).digest('hex'), `size ${size}`);
  }
});

test('md5File errors carry code and errno like Node fs errors', async ({ dir }) => {
  const e = await rejects(md5File(path.join(dir, 'missing')), 'ENOENT', /^open .*missing: no such file or directory$/);
  assert.is(e.errno, 2);
  await rejects(md5File(dir), 'EISDIR', /^read /);
});

test('reads and writes issued without waiting run in call order', async ({ dir }) => {
  const f = path.join(dir, 'ordered');
  const w = await openFile(f, { mode: 'w' });
  const chunks = Array.from({ length: 200 }, (_, i) => crypto.randomBytes(1 + ((i * 7919) % 5000)));
  await Promise.all(chunks.map((c) => w.write(c)));
  await w.close();
  const want = Buffer.concat(chunks);
  assert.ok(fs.readFileSync(f).equals(want));

  const r = await openFile(f);
  const parts = await Promise.all(Array.from({ length: 100 }, () => r.read(777)));
  assert.ok(Buffer.concat(parts).equals(want.subarray(0, 77_700)));
  assert.is(r.position, 77_700);
  await r.close();
});

test('read at end of file gives an empty buffer; a grown file reads on', async ({ dir }) => {
  const f = path.join(dir, 'grow');
  fs.writeFileSync(f, 'abc');
  const h = await openFile(f);
  assert.is((await h.read(10)).toString(), 'abc');
  assert.is((await h.read(10)).length, 0);
  fs.appendFileSync(f, 'def');
  assert.is((await h.read(10)).toString(), 'def');
  await h.close();
});

test('readBase64 and readBase64Parts give the base64 of each chunk; the text of a large chunk comes as bytes, the addon encoding it', async ({
  dir,
}) => {
  const f = path.join(dir, 'b64');
  const data = crypto.randomBytes(3 * 1024 * 1024 + 2);
  fs.writeFileSync(f, data);
  const h = await openFile(f);
  const text = (parts: (string | Buffer)[]) =>
    parts.map((p) => (typeof p === 'string' ? p : p.toString('latin1'))).join('');
  let off = 0;
  // Around the switch to bytes (64 KiB), odd and even lengths, and a last read that ends short.
  for (const size of [1, 2, 3, 4096, 65535, 65536, 65537, 65538, 1024 * 1024, 1024 * 1024 + 1, 4 * 1024 * 1024]) {
    const parts = await h.readBase64Parts(size);
    const n = Math.min(size, data.length - off);
    assert.is(text(parts), data.toString('base64', off, off + n), `size ${size}`);
    assert.is(
      parts.some((p) => Buffer.isBuffer(p)),
      n > 65536,
      `size ${size}: as bytes`,
    );
    off += n;
  }
  assert.equal(await h.readBase64Parts(10), []);
  await h.close();
  const again = await openFile(f);
  assert.is(await again.readBase64(2 * 1024 * 1024), data.toString('base64', 0, 2 * 1024 * 1024));
  await again.close();
});

test('md5: the reads are hashed, small (where read) and large (on the pool); md5() once at end of file; "r" only', async ({
  dir,
}) => {
  const f = path.join(dir, 'hashed');
  const data = crypto.randomBytes(2 * 1024 * 1024 + 3);
  fs.writeFileSync(f, data);
  const h = await openFile(f, { md5: true });
  assert.is(h.hashing, true);
  const parts = [await h.read(4096), await h.read(1024 * 1024), await h.read(100)];
  assert.is(h.md5(), undefined, 'not before the end of file');
  for (let b = await h.read(512 * 1024); b.length > 0; b = await h.read(512 * 1024)) parts.push(b);
  assert.ok(Buffer.concat(parts).equals(data));
  assert.is(h.md5(), crypto.createHash('md5').update(data).digest('hex'));
  await h.close();
  const plain = await openFile(f);
  assert.is(plain.md5(), undefined);
  await plain.close();
  const wMd5 = await openFile(path.join(dir, 'w-md5'), { mode: 'w', md5: true }).catch((e: TypeError) => e);
  assert.instance(wMd5, TypeError);
  assert.match((wMd5 as TypeError).message, /'options.md5' needs mode 'r', not 'w'/);
});

test('wrong direction, closed handle and double close', async ({ dir }) => {
  const f = path.join(dir, 'dir-check');
  const w = await openFile(f, { mode: 'w', perm: 0o600 });
  await rejects(w.read(), 'EBADF', /open for writing/);
  await w.close();
  await w.close(); // same promise, no error
  await rejects(w.write(Buffer.from('x')), 'EBADF', /file already closed/);
  const r = await openFile(f);
  await rejects(r.write(Buffer.from('x')), 'EBADF', /open for reading/);
  await r.close();
  assert.is(fs.statSync(f).mode & 0o777, 0o600 & ~process.umask());
});

test(
  'a pipe (no pread) is read and written as a stream',
  async ({ dir }) => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const r = await openFile(fifo); // returns at once: no writer needed (O_NONBLOCK)
    const w = await openFile(fifo, { mode: 'w' });
    assert.instance(w, GuestFile);
    await w.write(Buffer.from('through a pipe'));
    await w.close();
    assert.is((await r.read()).toString(), 'through a pipe');
    assert.is((await r.read()).length, 0);
    await r.close();
  },
  { needs: [command('mkfifo')] },
);

/** Resolves with what p settles to, or 'timeout' after ms (a wedged call must fail the test, not hang it). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

test(
  'idle FIFO reads wait on the event loop: more of them than pool threads leave the pool free',
  async ({ dir }) => {
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const readers: GuestFile[] = [];
    const writers: number[] = [];
    const reads: Promise<unknown>[] = [];
    try {
      for (let i = 0; i < pool + 4; i++) {
        const fifo = path.join(dir, `idle-${i}`);
        execFileSync('mkfifo', [fifo]);
        readers.push(await openFile(fifo));
        if (i % 2 === 0) writers.push(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)); // half with a writer that never writes
        const p = readers[i].read();
        p.catch(() => undefined);
        reads.push(p);
      }
      await new Promise((r) => setTimeout(r, 100));
      // Everything below needs the thread pool: with a thread per waiting read it would never run.
      const f = path.join(dir, 'plain');
      fs.writeFileSync(f, 'still served');
      assert.is(await within(md5File(f), 5000), crypto.createHash('md5').update('still served').digest('hex'));
      assert.is(await within(fs.promises.readFile(f, 'utf8'), 5000), 'still served');
      // A waiting read still gets its data when it comes.
      fs.writeSync(writers[0], 'late');
      assert.is(String(await within(reads[0], 5000)), 'late');
    } finally {
      // Closing a read handle cancels its waiting read at once (ECANCELED), and the close completes.
      const closed = await within(Promise.all(readers.map((r) => r.close())), 5000);
      writers.forEach((w) => fs.closeSync(w));
      assert.is.not(closed, 'timeout');
    }
    for (const p of reads.slice(1)) await rejects(p, 'ECANCELED', /the handle was closed/);
  },
  { needs: [command('mkfifo')] },
);

test(
  'long md5s (disk-sized files) run on threads of their own: the thread pool stays free',
  async ({ dir }) => {
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const big = path.join(dir, 'sparse-2g');
    fs.closeSync(fs.openSync(big, 'w'));
    fs.truncateSync(big, 2 * 1024 * 1024 * 1024); // holes read as zeros: seconds of hashing each
    const sums = Array.from({ length: pool }, () => md5File(big));
    await new Promise((r) => setTimeout(r, 100));
    const f = path.join(dir, 'small');
    fs.writeFileSync(f, 'x');
    const t0 = Date.now();
    assert.is(await within(fs.promises.readFile(f, 'utf8'), 5000), 'x');
    assert.ok(Date.now() - t0 < 1000, `a pool call waited ${Date.now() - t0} ms behind the md5s`);
    const got = await Promise.all(sums);
    assert.ok(
      got.every((g) => /^[0-9a-f]{32}$/.test(g) && g === got[0]),
      got.join(' '),
    );
  },
  { timeout: 60_000 },
);

test(
  'a FIFO read sent just ahead of close (pipelined, not started yet) is cancelled too, holding no thread',
  async ({ dir }) => {
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const handles: GuestFile[] = [];
    const reads: Promise<unknown>[] = [];
    const closes: Promise<unknown>[] = [];
    for (let i = 0; i < pool + 2; i++) {
      const fifo = path.join(dir, `pipelined-${i}`);
      execFileSync('mkfifo', [fifo]);
      const h = await openFile(fifo);
      handles.push(h);
      const r = h.read(); // queued; its first call finds out the file is a stream
      r.catch(() => undefined);
      reads.push(r);
      closes.push(h.close()); // before that read has started
    }
    assert.is.not(await within(Promise.all(closes), 5000), 'timeout');
    for (const r of reads) await rejects(r as Promise<unknown>, 'ECANCELED', /the handle was closed/);
    const f = path.join(dir, 'after');
    fs.writeFileSync(f, 'free');
    assert.is(await within(fs.promises.readFile(f, 'utf8'), 5000), 'free');
  },
  { needs: [command('mkfifo')] },
);

test(
  '/dev/kmsg read to its end: reads wait on the event loop (no pool thread), get new records, and close cancels them',
  async () => {
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const handles: GuestFile[] = [];
    const pending: Promise<Buffer>[] = [];
    try {
      for (let i = 0; i < pool + 1; i++) {
        const h = await openFile('/dev/kmsg');
        handles.push(h);
        // Read every record there is (one per read), until a read waits: the end of the log.
        for (;;) {
          const r = h.read(8192);
          const got = await within(r, 200);
          if (got === 'timeout') {
            r.catch(() => undefined);
            pending.push(r);
            break;
          }
          assert.ok(got.length > 0);
        }
      }
      const f = path.join(os.tmpdir(), `ember-kmsg-${process.pid}`);
      fs.writeFileSync(f, 'free');
      assert.is(await within(fs.promises.readFile(f, 'utf8'), 5000), 'free', 'the pool is free');
      fs.rmSync(f);
      // A new record wakes a waiting read (records that came meanwhile are read first).
      const mark = `ember-ga test ${process.pid} ${Date.now()}`;
      fs.writeFileSync('/dev/kmsg', `${mark}\n`); // without the newline the record stays open, unreadable
      let next: Promise<Buffer> = pending[0];
      let seen = '';
      for (let i = 0; i < 100 && !seen.includes(mark); i++) {
        const got = await within(next, 5000);
        assert.is.not(got, 'timeout', `a read still waits after the new record (read so far: ${seen.slice(-200)})`);
        seen += (got as Buffer).toString();
        if (!seen.includes(mark)) next = handles[0].read(8192);
      }
      assert.match(seen, mark);
    } finally {
      const closed = await within(Promise.all(handles.map((h) => h.close())), 5000);
      assert.is.not(closed, 'timeout');
    }
    // The others, waiting again or not woken, were cancelled by close or got the record.
    for (const p of pending.slice(1)) {
      const r = await p.then(
        (b) => b.toString(),
        (e: SystemError) => e.code,
      );
      assert.ok(r === 'ECANCELED' || r.includes('ember-ga test'), r);
    }
  },
  { needs: [root] },
);

test(
  'a FIFO read gives up its output room while it waits, and leaves once its host is gone, reading nothing',
  async ({ dir }) => {
    const fifo = path.join(dir, 'gated');
    execFileSync('mkfifo', [fifo]);
    const h = await openFile(fifo);
    const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    const host = new AbortController();
    let reserved = 0;
    let full = false;
    // The agent's gate (lib/protocols/output-gate.ts) in miniature: no room once `full`.
    const gate = {
      room: () => (full ? new Promise<void>(() => {}) : undefined),
      hasRoom: () => !full,
      hold: () => {},
      reserve: (n: number) => {
        reserved += n;
        return () => (reserved -= n);
      },
      signal: host.signal,
    };
    try {
      const read = h.readBase64(4096, gate);
      read.catch(() => undefined);
      // Reserved from the room check; given up once the read, on the event loop, waits for data.
      for (let i = 0; i < 100 && reserved > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.is(reserved, 0, 'nothing reserved while the FIFO has nothing to say');
      // Data comes while the host is behind, and the host then goes: the read must not wait
      // for room that host will never make, nor take the data for nobody.
      full = true;
      fs.writeSync(writer, 'kept');
      await new Promise((r) => setTimeout(r, 100));
      host.abort();
      const got = await within(
        read.then(
          () => 'read',
          (e: Error) => e.name,
        ),
        5000,
      );
      assert.is(got, 'AbortError');
      assert.is(reserved, 0);
      const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      const buf = Buffer.alloc(16);
      try {
        assert.is(buf.toString('utf8', 0, fs.readSync(rfd, buf)), 'kept', 'the data stays in the FIFO');
      } finally {
        fs.closeSync(rfd);
      }
    } finally {
      fs.closeSync(writer);
      await h.close();
    }
  },
  { needs: [command('mkfifo')] },
);

/** /dev/kmsg to read (the kernel log), which a container may not have. */
const kmsg: Requirement = () => (fs.existsSync('/dev/kmsg') ? undefined : 'needs /dev/kmsg');

test(
  "fopen's reads of /dev/kmsg: whole records, none lost to a count shorter than the log, and no wait at its end",
  async () => {
    const mark = `ember-ga kmsg ${process.pid} ${Date.now()}`;
    fs.writeFileSync('/dev/kmsg', `${mark}\n`); // without the newline the record stays open, unreadable
    const h = await fopenFile('/dev/kmsg', 'r');
    try {
      // Records are read one a read, and one too long for what is left of a read is skipped by
      // the kernel (EINVAL): each answer is what one read gave, and the next goes on from there.
      // At the end of the log the device says EAGAIN: fread's read (qemu-ga's guest-file-read)
      // then answers, not waiting for more.
      let log = '';
      for (let reads = 0; ; reads++) {
        assert.ok(reads < 100_000, 'the log never ends');
        const r = await within(
          h.readFull(reads % 2 ? 4096 : 4 << 20).catch((e: SystemError) => e.code),
          5000,
        );
        assert.is.not(r, 'timeout', 'a read waited for more log records');
        if (r === 'EAGAIN') break;
        assert.type(r, 'object', String(r));
        const { count, base64, eof } = r as { count: number; base64: (string | Buffer)[]; eof: boolean };
        const text = base64.map((p) => Buffer.from(String(p), 'base64').toString()).join('');
        assert.ok(count > 0 && !eof);
        // A record: "PRIORITY,SEQUENCE,TIME,FLAGS;MESSAGE\n", then its " KEY=VALUE\n" lines.
        assert.ok(
          text.endsWith('\n') && (text.match(/^\d+,\d+,\d+,[^;\n]*;/gm) ?? []).length === 1,
          `one record: ${text}`,
        );
        log += text;
      }
      assert.match(log, mark);
    } finally {
      await h.close();
    }
  },
  { needs: [root, kmsg] },
);

test(
  'a write to a full FIFO waits on the event loop for the reader, and nothing is lost',
  async ({ dir }) => {
    const fifo = path.join(dir, 'full');
    execFileSync('mkfifo', [fifo]);
    const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const w = await openFile(fifo, { mode: 'w' });
      const data = crypto.randomBytes(1024 * 1024); // 16 times a pipe's default buffer
      let wrote = false;
      const writing = w.write(data).then(() => (wrote = true));
      await new Promise((r) => setTimeout(r, 100));
      assert.is(wrote, false, 'the pipe is full and nobody reads yet');
      const f = path.join(dir, 'plain2');
      fs.writeFileSync(f, 'x');
      assert.is.not(await within(fs.promises.readFile(f, 'utf8'), 5000), 'timeout'); // the pool is free
      const got: Buffer[] = [];
      const buf = Buffer.alloc(65536);
      for (let n = 0; n < data.length;) {
        try {
          const k = fs.readSync(rfd, buf, 0, buf.length, null);
          got.push(Buffer.from(buf.subarray(0, k)));
          n += k;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          await new Promise((r) => setTimeout(r, 1));
        }
      }
      assert.is(await within(writing, 5000), true);
      assert.ok(Buffer.concat(got).equals(data));
      await w.close();
    } finally {
      fs.closeSync(rfd);
    }
  },
  { needs: [command('mkfifo')] },
);

test(
  'md5File refuses streams (a FIFO, /dev/zero) with EINVAL instead of hashing forever',
  async ({ dir }) => {
    const fifo = path.join(dir, 'md5-fifo');
    execFileSync('mkfifo', [fifo]);
    await rejects(md5File(fifo), 'EINVAL', /not a regular file or block device/);
    await rejects(md5File('/dev/zero'), 'EINVAL', /md5 \/dev\/zero: not a regular file/);
  },
  { needs: [command('mkfifo')] },
);

test(
  'a FIFO with no reader: "w" fails at once with ENXIO instead of waiting',
  async ({ dir }) => {
    const fifo = path.join(dir, 'lonely-fifo');
    execFileSync('mkfifo', [fifo]);
    await rejects(openFile(fifo, { mode: 'w' }), 'ENXIO');
  },
  { needs: [command('mkfifo')] },
);

test('openFile errors: ENOENT, EISDIR for "w" on a directory', async ({ dir }) => {
  await rejects(openFile(path.join(dir, 'nope')), 'ENOENT', /^open .*nope: no such file or directory$/);
  await rejects(openFile(dir, { mode: 'w' }), 'EISDIR');
});

test('atomic handles: close() renames into place, close({ discard }) and a failed md5 leave the original', async ({
  dir,
}) => {
  const f = path.join(dir, 'atomic');
  fs.writeFileSync(f, 'old');
  const parts = () => fs.readdirSync(dir).filter((n) => n.endsWith('.ember-ga-part'));
  const a = await openFile(f, { mode: 'w', atomic: true });
  assert.ok(a.atomic);
  void a.write(Buffer.from('new'));
  await rejects(a.close({ md5: '0'.repeat(32) }), 'EBADMSG', /md5 mismatch: .* not replaced: the file is as it was$/);
  assert.is(fs.readFileSync(f, 'utf8'), 'old');
  const b = await openFile(f, { mode: 'w', atomic: true });
  await b.write(Buffer.from('dropped'));
  await b.close({ discard: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'old');
  const c = await openFile(f, { mode: 'w', atomic: true });
  await c.write(Buffer.from('new'));
  await c.close({ md5: crypto.createHash('md5').update('new').digest('hex'), fsync: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'new');
  assert.equal(parts(), []);
  const plain = await openFile(f, { mode: 'w' });
  assert.not.ok(plain.atomic);
  await rejects(plain.close({ discard: true }), 'EINVAL', /discard needs a handle opened with atomic/);
  assert.not.ok(plain.closed, 'a refused close leaves the handle open');
  await plain.close();
  const rAtomic = await openFile(f, { atomic: true }).catch((e: TypeError) => e);
  assert.instance(rAtomic, TypeError);
  assert.match((rAtomic as TypeError).message, /'options.atomic' needs mode 'w', not 'r'/);
  // A second close asking for something else is refused, not silently ignored.
  const d = await openFile(f, { mode: 'w', atomic: true });
  await d.write(Buffer.from('newer'));
  const first = d.close();
  await rejects(d.close({ discard: true }), 'EBUSY', /already being closed with other options/);
  assert.is(d.close(), first);
  await first;
  assert.is(fs.readFileSync(f, 'utf8'), 'newer');
});

test("goStat: 64-bit fields exact; Node's signed dev/ino/nlink/rdev read as Go's uint64", () => {
  const fields = {
    dev: 2049n,
    ino: -(2n ** 63n) + 2n,
    nlink: 1n,
    mode: 0o100644n,
    uid: 0n,
    gid: 0n,
    rdev: -1n,
    size: 2n ** 60n,
    blksize: 4096n,
    blocks: 8n,
  };
  const times = { atimeNs: 1_500_000_000n, mtimeNs: 0n, ctimeNs: -1n };
  const st = goStat({ ...fields, ...times } as unknown as fs.BigIntStats);
  assert.is(st.Ino, 2n ** 63n + 2n); // overlayfs xino: top bit set, negative in Node's BigIntStats
  assert.is(st.Rdev, 2n ** 64n - 1n);
  assert.is(st.Size, 2n ** 60n);
  assert.is(st.Dev, 2049); // small values stay numbers
  assert.is(st.Blocks, 8);
  assert.equal(st.Ctim, { Sec: -1, Nsec: 999_999_999 });
});

test('goStatFile (file-stat): Go field names in order, lstat, nanosecond times', async ({ dir }) => {
  const f = path.join(dir, 'stat-me');
  fs.writeFileSync(f, 'hello');
  fs.utimesSync(f, new Date(1_000_000_123), new Date(2_000_000_456));
  fs.symlinkSync(f, path.join(dir, 'stat-link'));
  const s = await goStatFile(f);
  const want = fs.lstatSync(f, { bigint: true });
  assert.equal(Object.keys(s), ['name', 'isdir', 'stat']);
  assert.equal(Object.keys(s.stat), [
    'Dev',
    'Ino',
    'Nlink',
    'Mode',
    'Uid',
    'Gid',
    'X__pad0',
    'Rdev',
    'Size',
    'Blksize',
    'Blocks',
    'Atim',
    'Mtim',
    'Ctim',
    'X__unused',
  ]);
  assert.is(s.name, 'stat-me');
  assert.is(s.isdir, false);
  assert.is(s.stat.Size, 5);
  assert.is(s.stat.Ino, Number(want.ino));
  assert.is(s.stat.Mode, Number(want.mode));
  assert.equal(s.stat.Atim, { Sec: 1_000_000, Nsec: 123_000_000 });
  assert.equal(s.stat.Mtim, { Sec: 2_000_000, Nsec: 456_000_000 });
  assert.equal(s.stat.Ctim, {
    Sec: Number(want.ctimeNs / 1_000_000_000n),
    Nsec: Number(want.ctimeNs % 1_000_000_000n),
  });
  assert.equal(s.stat.X__unused, [0, 0, 0]);
  const l = await goStatFile(path.join(dir, 'stat-link'));
  assert.is(l.stat.Mode & 0o170000, 0o120000); // the link itself
  assert.is((await goStatFile(dir + '/')).isdir, true);
});

test('baseName follows Go: trailing slashes dropped, "/" stays', () => {
  assert.is(baseName('/a/b'), 'b');
  assert.is(baseName('/a/b//'), 'b');
  assert.is(baseName('/'), '/');
  assert.is(baseName('rel'), 'rel');
});

test('listDirectory sorted by name, n limits, mkdirAll creates parents with perm', async ({ dir }) => {
  const d = path.join(dir, 'list', 'deep', 'er');
  await mkdirAll(d, 0o700);
  await mkdirAll(d, 0o700); // existing: fine
  assert.is(fs.statSync(d).mode & 0o777, 0o700);
  assert.is(fs.statSync(path.dirname(d)).mode & 0o777, 0o700);
  for (const n of ['b', 'a', 'C', 'é', 'a b']) fs.writeFileSync(path.join(d, n), n);
  const all = await listDirectory(d);
  assert.equal(
    all.map((e) => e.name),
    ['C', 'a', 'a b', 'b', 'é'],
  );
  assert.equal(
    (await listDirectory(d, 2)).map((e) => e.name),
    ['C', 'a'],
  );
  assert.equal(
    await listDirectory(path.join(dir, 'list', 'deep', 'er', 'a'), 0).catch((e: SystemError) => e.code),
    'ENOTDIR',
  );
  await rejects(mkdirAll(path.join(d, 'a', 'sub')), 'ENOTDIR', /^mkdir .*\/a: not a directory$/);
});

test('decodeBase64 is strict: bad characters, bad length, URL alphabet, inner padding', () => {
  assert.equal(decodeBase64('aGVsbG8K'), Buffer.from('hello\n'));
  assert.equal(decodeBase64(''), Buffer.alloc(0));
  assert.equal(decodeBase64('aGk='), Buffer.from('hi'));
  assert.equal(decodeBase64('aGVs\r\nbG8K'), Buffer.from('hello\n')); // line breaks, as Go accepts
  for (const bad of ['aGVsbG8', 'aGVsbG8!', 'aG Vs', 'aGk', '-_-_', 'aG==aGk=', 'a===', '====', 'aGVsbG8K\u00e9AAA']) {
    assert.is(decodeBase64(bad), undefined, JSON.stringify(bad));
  }
});

test("the addon's base64Decode agrees with decodeBase64 (less line breaks), across its block size too", () => {
  const decode = (text: string, dst = Buffer.alloc(Math.floor(text.length / 4) * 3)) => {
    const src = Buffer.from(`"${text}"`, 'latin1'); // at an offset, as in a request line
    const n = native.base64Decode(src, 1, src.length - 1, dst);
    return n < 0 ? undefined : dst.subarray(0, n);
  };
  const cases = [
    '',
    'QQ==',
    'QUI=',
    'QUJD',
    'QR==',
    'aGVsbG8K',
    'aGVs\r\nbG8K',
    'aGVsbG8',
    'aGVsbG8!',
    'aG Vs',
    ' QUJD',
    'QUJD    ',
    'QUJD\n\n\n\n',
    '-_-_',
    'QUJ-',
    'QUJD----',
    'aG==aGk=',
    'QQ==QUJD',
    'a===',
    '====',
    'QU=D',
    'aGVsbG8K\u00e9AAA',
    'QUJD\u0000AAA',
  ];
  // Random strings over an alphabet rich in the characters that matter: every verdict must agree.
  const alphabet = 'AQZaz09+/= \r\n-_.';
  let seed = 7;
  for (let i = 0; i < 4000; i++) {
    let t = '';
    const len = 4 * (1 + (i % 4)) + (i % 7 === 0 ? 1 : 0);
    for (let k = 0; k < len; k++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      t += seed % 5 === 0 ? alphabet[seed % alphabet.length] : 'QUJDRUZH'[seed % 8];
    }
    cases.push(t);
  }
  for (const t of cases) {
    const want = /[\r\n]/.test(t) ? undefined : decodeBase64(t);
    assert.equal(decode(t), want, JSON.stringify(t));
  }
  // Past OpenSSL's int-sized blocks (3 MiB of text here): 4 MiB of data, then one bad character at the end or past the first block.
  const data = crypto.randomBytes(4 * 1024 * 1024 + 2);
  const b64 = data.toString('base64');
  assert.ok(decode(b64)!.equals(data));
  assert.is(decode(`${b64.slice(0, -4)}QU!D`), undefined);
  assert.is(decode(`${b64.slice(0, 3 << 20)} ${b64.slice((3 << 20) + 1)}`), undefined);
  assert.throws(() => native.base64Decode(Buffer.from('QUJD'), 0, 4, Buffer.alloc(2)), /too small/);
  // Exactly the decoded length is written: guard bytes after an exact-size destination stay as they were.
  for (const [text, want] of [
    ['QUI=', 'AB'],
    ['QQ==', 'A'],
    ['QUJD', 'ABC'],
    [crypto.randomBytes((3 << 20) + 7).toString('base64'), undefined],
  ] as const) {
    const len = want?.length ?? (3 << 20) + 7;
    const area = Buffer.alloc(len + 8, 0xee);
    const src = Buffer.from(text);
    assert.is(native.base64Decode(src, 0, src.length, area.subarray(0, len)), len);
    if (want) assert.is(area.toString('latin1', 0, len), want);
    else assert.ok(area.subarray(0, len).equals(Buffer.from(text, 'base64')));
    assert.ok(area.subarray(len).equals(Buffer.alloc(8, 0xee)), `nothing written past ${len} bytes`);
  }
  assert.is(native.base64Decode(Buffer.from('A==='), 0, 4, Buffer.alloc(1)), -1);
  // The destination needs the decoded length only, not whole 3-byte groups: a 1 MiB chunk fits 1 MiB.
  const one = Buffer.alloc(1);
  assert.is(native.base64Decode(Buffer.from('QQ=='), 0, 4, one), 1);
  assert.equal(one, Buffer.from('A'));
  const mib = crypto.randomBytes(1024 * 1024);
  const exact = Buffer.alloc(mib.length);
  const text = Buffer.from(mib.toString('base64'));
  assert.is(native.base64Decode(text, 0, text.length, exact), mib.length);
  assert.ok(exact.equals(mib));
  assert.throws(() => native.base64Decode(Buffer.from('QUJD'), 0, 5, Buffer.alloc(3)), /within the source/);
});

test('BufferPool: power-of-two buffers reused, never one in use; small ones exact and not kept; no more than `keep`, nor one over keep/4', () => {
  const MiB = 1024 * 1024;
  const pool = new BufferPool(8 * MiB);
  const a = pool.take(100 * 1024);
  assert.is(a.length, 128 * 1024);
  pool.give(a);
  assert.is(pool.kept, 128 * 1024);
  const b = pool.take(65 * 1024);
  assert.is(b, a, 'the same buffer, reused');
  assert.is(pool.kept, 0);
  assert.is.not(pool.take(100 * 1024), b, 'one in use is never handed out again');
  const small = pool.take(6 * 1024);
  assert.is(small.length, 6 * 1024);
  pool.give(small);
  assert.is(pool.kept, 0, 'a small buffer is not kept');
  assert.is(pool.take(MiB).length, MiB, 'a 1 MiB chunk takes a 1 MiB buffer');
  const big = pool.take(4 * MiB);
  pool.give(big);
  assert.is(pool.kept, 0, 'a buffer over keep/4 is not kept');
  for (const buf of [1, 2, 3, 4, 5].map(() => pool.take(2 * MiB))) pool.give(buf);
  assert.is(pool.kept, 8 * MiB);
});

test('decodeBase64Into: decoded into the chunk pool, given back once, also when the text is not strict base64', () => {
  const data = crypto.randomBytes(100 * 1024);
  const text = Buffer.from(`"${data.toString('base64')}"`);
  const before = chunkPool.kept;
  const a = decodeBase64Into(text, 1, text.length - 1)!;
  assert.ok(a.bytes.equals(data));
  assert.is(a.bytes.buffer.byteLength, 128 * 1024);
  a.release();
  a.release();
  assert.is(chunkPool.kept, before + 128 * 1024);
  const b = decodeBase64Into(text, 1, text.length - 1)!;
  assert.is(b.bytes.buffer, a.bytes.buffer, 'the same memory, reused');
  b.release();
  // Not strict base64: the buffer it took goes straight back.
  const bad = Buffer.from(text);
  bad[1000] = 0x21; // '!'
  assert.is(decodeBase64Into(bad, 1, bad.length - 1), undefined);
  assert.is(chunkPool.kept, before + 128 * 1024);
  assert.is(decodeBase64Into(text, 1, text.length - 1)!.bytes.buffer, a.bytes.buffer);
});

test('RawJson answers are spliced verbatim, with the tag still Go-escaped', () => {
  const line = encodeReturn(new RawJson('{"bufb64":"QUJD","eof":false}'), '<t>');
  assert.is(line, '{"return":{"bufb64":"QUJD","eof":false},"tag":"\\u003ct\\u003e"}\n');
  assert.equal(JSON.parse(line), { return: { bufb64: 'QUJD', eof: false }, tag: '<t>' });
  // The same answer as bytes from pieces (what the agent writes), with a non-ASCII tag.
  const pieces = new RawJson(['{"bufb64":"', 'QUJD', Buffer.from('RUZH'), '","eof":false}']);
  assert.is(pieces.json, '{"bufb64":"QUJDRUZH","eof":false}');
  for (const tag of ['<t>', 'é-ü-\u2028', '']) {
    const bytes = encodeRawReturn(pieces, tag);
    assert.instance(bytes, Buffer);
    assert.is(bytes.toString('utf8'), encodeReturn(new RawJson('{"bufb64":"QUJDRUZH","eof":false}'), tag));
  }
});

test('memory: once enabled, a young-generation collection every 2 MiB of large lines, none for small ones or before', () => {
  const script = `
    const m = require(${JSON.stringify(path.join(__dirname, '..', '..', '..', 'lib', 'memory.js'))});
    const mark = (s) => process.stdout.write('== ' + s + '\\n');
    m.lineDone(64 << 20); mark('not enabled');
    process.stdout.write(String(m.enableCollections()) + '\\n');
    for (let i = 0; i < 1000; i++) m.lineDone(60 * 1024); mark('small lines');
    m.lineDone(1 << 20); mark('1 MiB');
    m.lineDone(1 << 20); mark('2 MiB');
    for (let i = 0; i < 5; i++) m.lineDone(1 << 20); mark('7 MiB');`;
  const out = execFileSync(process.execPath, ['--trace-gc', '-e', script], { encoding: 'utf8' });
  // What each step collected on request ("testing" in V8's trace), step by step.
  const steps: Record<string, number> = {};
  let n = 0;
  for (const line of out.split('\n')) {
    if (/Scavenge.*testing/.test(line)) n++;
    const m = /^== (.*)$/.exec(line);
    if (m) {
      steps[m[1]] = n;
      n = 0;
    }
  }
  assert.match(out, /^true$/m);
  assert.equal(steps, { 'not enabled': 0, 'small lines': 0, '1 MiB': 0, '2 MiB': 1, '7 MiB': 2 });
});

test.run();
