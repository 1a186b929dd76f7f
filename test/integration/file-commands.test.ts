// The file commands through a real agent on a unix socket: every command, its errors, the
// improvements over 0.7.1, and the awkward files (empty, growing, sparse, odd names).
import { execFileSync, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import {
  CLI,
  LineClient,
  agentSuite,
  errorMessage,
  fails,
  runningExecutable,
  startAgent,
  tmpDir,
  withTmpfs,
  withXinoOverlay,
  type Answer,
  type RunningAgent,
} from '../helpers/agent';
import { command, root, suite, waitFor, type Requirement } from '../helpers/harness';

const test = agentSuite('file commands', 'ember-ga-files-');

type Read = { bufb64: string; eof: boolean };

/** Reads a handle to its end with one request at a time; returns the bytes and the number of reads. */
async function readAll(c: LineClient, h: number, size?: number): Promise<{ data: Buffer; reads: number[] }> {
  const parts: Buffer[] = [];
  const reads: number[] = [];
  for (;;) {
    const r = (await c.ok('file-read', size ? { handle_id: h, size } : { handle_id: h })) as Read;
    const b = Buffer.from(r.bufb64, 'base64');
    reads.push(b.length);
    if (r.eof) {
      assert.is(b.length, 0, 'eof comes with an empty buffer');
      return { data: Buffer.concat(parts), reads };
    }
    parts.push(b);
  }
}

test('file-open, 4096-byte reads, eof read closes the handle; ids never reused', async ({ c, dir }) => {
  const f = path.join(dir, 'ten-k');
  const data = crypto.randomBytes(10_000);
  fs.writeFileSync(f, data);
  const h1 = (await c.ok('file-open', { path: f })) as number;
  const h2 = (await c.ok('file-open', { path: f, mode: 'r' })) as number;
  assert.ok(Number.isInteger(h1) && h1 >= 1);
  assert.is(h2, h1 + 1);
  const { data: got, reads } = await readAll(c, h1);
  assert.ok(got.equals(data));
  assert.equal(reads, [4096, 4096, 1808, 0]);
  // Closed at eof: a write is refused, a late (pipelined) read answers eof again.
  await fails(c, 'file-write', { handle_id: h1, bufb64: 'eA==' }, -1, /^Incorrect handle id/);
  assert.equal(await c.ok('file-read', { handle_id: h1 }), { bufb64: '', eof: true });
  assert.is(await c.ok('file-close', { handle_id: h2 }), true);
  assert.is(await c.ok('file-close', { handle_id: h2 }), true); // unknown now: still true
  const h3 = await c.ok('file-open', { path: f });
  assert.is(h3, h2 + 1);
  await c.ok('file-close', { handle_id: h3 });
});

test('file-read size: large chunks, clamped to the maximum; eof chunk', async ({ c, dir }) => {
  const f = path.join(dir, 'five-m');
  const data = crypto.randomBytes(5 * 1024 * 1024 + 3);
  fs.writeFileSync(f, data);
  const h = (await c.ok('file-open', { path: f })) as number;
  const { data: got, reads } = await readAll(c, h, 16 * 1024 * 1024);
  assert.ok(got.equals(data));
  assert.equal(reads, [4 * 1024 * 1024, 1024 * 1024 + 3, 0]);
  const h2 = (await c.ok('file-open', { path: f })) as number;
  const r = (await c.ok('file-read', { handle_id: h2, size: 0 })) as Read;
  assert.is(Buffer.from(r.bufb64, 'base64').length, 4096);
  await fails(c, 'file-read', { handle_id: h2, size: -1 }, -1, /Invalid argument "size"/);
  await fails(
    c,
    'file-read',
    { handle_id: h2, size: 'big' },
    -1,
    /Invalid argument "size": expected an integer, got a string/,
  );
  await c.ok('file-close', { handle_id: h2 });
});

test('unknown handles: -1 for read and write, true for close; bad handle types named', async ({ c }) => {
  await fails(c, 'file-read', { handle_id: 999_999 }, -1, /^Incorrect handle id/);
  await fails(c, 'file-write', { handle_id: 999_999, bufb64: '' }, -1, /^Incorrect handle id/);
  assert.is(await c.ok('file-close', { handle_id: 999_999 }), true);
  await fails(
    c,
    'file-read',
    { handle_id: 'x' },
    -1,
    /Invalid argument "handle_id": expected an integer, got a string/,
  );
  await fails(c, 'file-read', {}, -1, /Missing argument "handle_id"/);
  await fails(c, 'file-open', {}, -1, /Missing argument "path"/);
  await fails(c, 'file-open', { path: '/x', mode: 'a' }, -1, /Invalid argument "mode": expected one of "r", "w"/);
  await fails(c, 'file-open', { path: '/x', perm: -1 }, -1, /Invalid argument "perm"/);
});

test('missing paths: errno 2 and Go-style messages from every command', async ({ c, dir }) => {
  const p = path.join(dir, 'does-not-exist');
  await fails(c, 'file-open', { path: p }, 2, /^open .*does-not-exist: no such file or directory$/);
  await fails(c, 'get-file-md5sum', { path: p }, 2, /^open .*: no such file or directory$/);
  await fails(c, 'file-stat', { path: p }, 2, /^lstat .*: no such file or directory$/);
  await fails(c, 'file-chmod', { path: p, perm: 420 }, 2, /^chmod .*: no such file or directory$/);
  await fails(c, 'file-chown', { path: p }, 2, /^chown .*: no such file or directory$/);
  await fails(c, 'directory-list', { path: p }, 2, /^open .*: no such file or directory$/);
  await fails(c, 'file-open', { path: path.join(p, 'sub'), mode: 'w' }, 2, /^open /);
});

test('mode "w": create with perm, truncate an existing file; eof write then close', async ({ c, dir }) => {
  const f = path.join(dir, 'written');
  const h = (await c.ok('file-open', { path: f, mode: 'w', perm: 0o600 })) as number;
  assert.is(fs.statSync(f).mode & 0o777, 0o600 & ~process.umask());
  assert.is(
    await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('hello ').toString('base64'), eof: false }),
    true,
  );
  // The improvement: the eof chunk is written (0.7.1 dropped it), then the handle is closed.
  assert.is(
    await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('world').toString('base64'), eof: true }),
    true,
  );
  assert.is(fs.readFileSync(f, 'utf8'), 'hello world');
  await fails(c, 'file-write', { handle_id: h, bufb64: '' }, -1, /^Incorrect handle id/);
  // Truncate; an empty eof chunk (what 0.7.1 hosts send) closes without writing.
  const h2 = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
  assert.is(fs.statSync(f).size, 0);
  await c.ok('file-write', { handle_id: h2, bufb64: Buffer.from('again').toString('base64') });
  await c.ok('file-write', { handle_id: h2, bufb64: '', eof: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'again');
  assert.is(fs.statSync(f).mode & 0o777, 0o600 & ~process.umask()); // perm only applies on create
});

test('invalid base64: clear error, nothing written, the handle still works', async ({ c, dir }) => {
  const f = path.join(dir, 'b64');
  const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
  for (const bad of ['aGVsbG8!', 'aGVsbG8', 'aG==aGk=', '-_-_']) {
    await fails(
      c,
      'file-write',
      { handle_id: h, bufb64: bad },
      -1,
      /Invalid argument "bufb64": not valid base64.*nothing was written/,
    );
    await fails(c, 'file-write', { handle_id: h, bufb64: bad, eof: true }, -1, /not valid base64/);
  }
  await fails(c, 'file-write', { handle_id: h, bufb64: 42 }, -1, /Invalid argument "bufb64": expected a string/);
  assert.is(fs.statSync(f).size, 0);
  await c.ok('file-write', { handle_id: h, bufb64: 'b2s=', eof: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'ok');
});

test('wrong direction: write to "r", read from "w" are clear EBADF errors', async ({ c, dir }) => {
  const f = path.join(dir, 'direction');
  fs.writeFileSync(f, 'data');
  const r = (await c.ok('file-open', { path: f })) as number;
  const w = (await c.ok('file-open', { path: f + '.w', mode: 'w' })) as number;
  await fails(
    c,
    'file-write',
    { handle_id: r, bufb64: 'eA==' },
    9,
    /file-write: handle \d+ .* is open for reading \(mode "r"\); open it with mode "w" to write/,
  );
  await fails(
    c,
    'file-read',
    { handle_id: w },
    9,
    /file-read: handle \d+ .* is open for writing \(mode "w"\); open it with mode "r" to read/,
  );
  assert.is(fs.readFileSync(f, 'utf8'), 'data');
  await c.ok('file-close', { handle_id: r });
  await c.ok('file-close', { handle_id: w });
});

test(
  'force: a running executable (ETXTBSY) is replaced only with force',
  async ({ c, dir }) => {
    const { exe, proc } = await runningExecutable(dir);
    try {
      await fails(c, 'file-open', { path: exe, mode: 'w' }, 26, /^open .*busy-sleep: text file (is )?busy$/);
      const h = (await c.ok('file-open', { path: exe, mode: 'w', force: true, perm: 0o700 })) as number;
      await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('#!/bin/sh\n').toString('base64'), eof: true });
      assert.is(fs.readFileSync(exe, 'utf8'), '#!/bin/sh\n');
      assert.is(fs.statSync(exe).mode & 0o777, 0o700 & ~process.umask());
      assert.is(proc.exitCode, null); // the running program kept its (unlinked) copy
    } finally {
      proc.kill('SIGKILL');
    }
  },
  { needs: [command('sleep')] },
);

test('get-file-md5sum: lowercase hex; empty file; directory is EISDIR', async ({ c, dir }) => {
  const f = path.join(dir, 'md5');
  const data = crypto.randomBytes(12 * 1024 * 1024 + 1); // past the two-thread threshold
  fs.writeFileSync(f, data);
  assert.is(await c.ok('get-file-md5sum', { path: f }), crypto.createHash('md5').update(data).digest('hex'));
  fs.writeFileSync(f + '.empty', '');
  assert.is(await c.ok('get-file-md5sum', { path: f + '.empty' }), 'd41d8cd98f00b204e9800998ecf8427e');
  await fails(c, 'get-file-md5sum', { path: dir }, 21, /^read /);
});

test('a directory opened for reading: file-read is EISDIR, the agent goes on', async ({ c, dir }) => {
  const h = (await c.ok('file-open', { path: dir })) as number;
  await fails(c, 'file-read', { handle_id: h }, 21, /^read .*: /);
  assert.is(await c.ok('file-close', { handle_id: h }), true);
});

test(
  'a full filesystem: ENOSPC, then every later write on the handle fails too',
  async ({ c, dir }) => {
    await withTmpfs(dir, 'tiny', 'size=64k', async (mnt) => {
      const h = (await c.ok('file-open', { path: path.join(mnt, 'f'), mode: 'w' })) as number;
      const chunk = crypto.randomBytes(16 * 1024).toString('base64');
      const answers: Answer[] = [];
      for (let i = 0; i < 8; i++) answers.push(await c.call('file-write', { handle_id: h, bufb64: chunk }));
      const first = answers.findIndex((a) => a.error);
      assert.ok(first > 0 && first <= 4, `first failure at ${first}`);
      assert.is(answers[first].error!.code, 28);
      assert.match(errorMessage(answers[first]), /^write .*: no space left on device$/);
      for (const a of answers.slice(first + 1)) {
        assert.is(a.error?.code, 28);
        assert.match(errorMessage(a), /an earlier write failed .*nothing more is written to this handle/);
      }
      assert.is(await c.ok('file-close', { handle_id: h }), true);
    });
  },
  { needs: [root, command('mount')] },
);

test('empty file: first read is eof; an empty upload creates an empty file', async ({ c, dir }) => {
  const f = path.join(dir, 'empty');
  fs.writeFileSync(f, '');
  const h = (await c.ok('file-open', { path: f })) as number;
  assert.equal(await c.ok('file-read', { handle_id: h }), { bufb64: '', eof: true });
  const w = (await c.ok('file-open', { path: f + '.up', mode: 'w' })) as number;
  await c.ok('file-write', { handle_id: w, bufb64: '', eof: true });
  assert.is(fs.statSync(f + '.up').size, 0);
});

test('a file that grows while it is read: the new bytes are read, eof at the new end', async ({ c, dir }) => {
  const f = path.join(dir, 'growing');
  fs.writeFileSync(f, Buffer.alloc(4096, 1));
  const h = (await c.ok('file-open', { path: f })) as number;
  const r1 = (await c.ok('file-read', { handle_id: h })) as Read;
  assert.is(Buffer.from(r1.bufb64, 'base64').length, 4096);
  fs.appendFileSync(f, Buffer.alloc(100, 2));
  const { data } = await readAll(c, h);
  assert.ok(data.equals(Buffer.alloc(100, 2)));
});

test(
  'file-open md5 ("r"): the answer at end of file carries the md5 of every byte the reads sent',
  async ({ c, dir }) => {
    const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('hex');
    type HashedRead = Read & { md5?: string };
    /** Reads h to its end, one request at a time with these sizes in turn; the bytes and the last answer. */
    const readHashed = async (h: number, sizes: number[]) => {
      const parts: Buffer[] = [];
      for (let i = 0; ; i++) {
        const r = (await c.ok('file-read', { handle_id: h, size: sizes[i % sizes.length] })) as HashedRead;
        if (r.eof) return { data: Buffer.concat(parts), last: r };
        parts.push(Buffer.from(r.bufb64, 'base64'));
      }
    };
    const f = path.join(dir, 'hashed');
    const data = crypto.randomBytes(3 * 1024 * 1024 + 5);
    fs.writeFileSync(f, data);
    // Large reads (hashed on the pool thread that reads) and small ones (hashed where read) mixed.
    const h = (await c.ok('file-open', { path: f, md5: true })) as number;
    const all = await readHashed(h, [1024 * 1024, 4096, 100_000]);
    assert.ok(all.data.equals(data));
    assert.equal(
      Object.entries(all.last),
      [
        ['bufb64', ''],
        ['eof', true],
        ['md5', md5(data)],
      ],
      'the 0.7.1 answer, md5 after eof',
    );
    // A read sent after the close at end of file answers the same again.
    assert.equal(await c.ok('file-read', { handle_id: h }), all.last);

    // A file that grows while it is read: the md5 is of what was read, the new bytes included.
    const g = path.join(dir, 'hashed-growing');
    fs.writeFileSync(g, Buffer.alloc(4096, 1));
    const hg = (await c.ok('file-open', { path: g, md5: true })) as number;
    await c.ok('file-read', { handle_id: hg });
    fs.appendFileSync(g, Buffer.alloc(100, 2));
    assert.is(
      (await readHashed(hg, [4096])).last.md5,
      md5(Buffer.concat([Buffer.alloc(4096, 1), Buffer.alloc(100, 2)])),
    );

    // Pipelined reads past the end: every answer at end of file has the same md5.
    const hp = (await c.ok('file-open', { path: f, md5: true })) as number;
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => c.ok('file-read', { handle_id: hp, size: 1024 * 1024 }) as Promise<HashedRead>),
    );
    assert.equal(
      answers.slice(4),
      Array.from({ length: 4 }, () => ({ bufb64: '', eof: true, md5: md5(data) })),
    );

    // A character device (get-file-md5sum refuses one) and a FIFO (stream reads) are hashed too.
    const n = (await c.ok('file-open', { path: '/dev/null', md5: true })) as number;
    assert.equal(await c.ok('file-read', { handle_id: n }), { bufb64: '', eof: true, md5: md5(Buffer.alloc(0)) });
    const fifo = path.join(dir, 'hashed-fifo');
    execFileSync('mkfifo', [fifo]);
    const writer = fs.openSync(fifo, fs.constants.O_RDWR);
    const hf = (await c.ok('file-open', { path: fifo, md5: true })) as number;
    fs.writeSync(writer, 'through a fifo');
    const first = (await c.ok('file-read', { handle_id: hf })) as HashedRead;
    assert.is(Buffer.from(first.bufb64, 'base64').toString(), 'through a fifo');
    fs.closeSync(writer); // the last writer: end of file
    assert.equal(await c.ok('file-read', { handle_id: hf }), {
      bufb64: '',
      eof: true,
      md5: md5(Buffer.from('through a fifo')),
    });

    // Without md5, the 0.7.1 answer exactly; md5 with "w" is refused.
    const plain = (await c.ok('file-open', { path: '/dev/null' })) as number;
    assert.equal(Object.entries((await c.ok('file-read', { handle_id: plain })) as object), [
      ['bufb64', ''],
      ['eof', true],
    ]);
    await fails(
      c,
      'file-open',
      { path: path.join(dir, 'w-md5'), mode: 'w', md5: true },
      -1,
      /^Invalid argument "md5": only with mode "r"$/,
    );
    assert.not.ok(fs.existsSync(path.join(dir, 'w-md5')));
    assert.is(((await c.ok('agent-info')) as { read_md5?: boolean }).read_md5, true);
  },
  { needs: [command('mkfifo')] },
);

test('sparse file: holes read as zeros, stat shows Size past Blocks', async ({ c, dir }) => {
  const f = path.join(dir, 'sparse');
  const fd = fs.openSync(f, 'w');
  fs.writeSync(fd, Buffer.from('tail'), 0, 4, 8 * 1024 * 1024);
  fs.closeSync(fd);
  const want = fs.readFileSync(f);
  const h = (await c.ok('file-open', { path: f })) as number;
  const { data } = await readAll(c, h, 1024 * 1024);
  assert.ok(data.equals(want));
  assert.is(await c.ok('get-file-md5sum', { path: f }), crypto.createHash('md5').update(want).digest('hex'));
  const st = (await c.ok('file-stat', { path: f })) as { stat: { Size: number; Blocks: number } };
  assert.is(st.stat.Size, 8 * 1024 * 1024 + 4);
  assert.ok(st.stat.Blocks * 512 < st.stat.Size, `Blocks ${st.stat.Blocks}`);
});

test('paths with spaces and non-ASCII names', async ({ c, dir }) => {
  const d = path.join(dir, 'dir with space', 'ünïcødé 文件');
  assert.is(await c.ok('directory-create', { path: d }), true);
  const f = path.join(d, 'a file – ü.txt');
  const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
  await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('ü').toString('base64'), eof: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'ü');
  const st = (await c.ok('file-stat', { path: f })) as { name: string };
  assert.is(st.name, 'a file – ü.txt');
  const list = (await c.ok('directory-list', { path: d })) as { name: string }[];
  assert.equal(
    list.map((e) => e.name),
    ['a file – ü.txt'],
  );
  const r = (await c.ok('file-open', { path: f })) as number;
  assert.is(Buffer.from(((await c.ok('file-read', { handle_id: r })) as Read).bufb64, 'base64').toString(), 'ü');
  await c.ok('file-close', { handle_id: r });
});

test('file-stat: lstat with Go field names; isdir false for a symlink to a directory', async ({ c, dir }) => {
  fs.symlinkSync(dir, path.join(dir, 'link-to-dir'));
  const s = (await c.ok('file-stat', { path: path.join(dir, 'link-to-dir') })) as {
    name: string;
    isdir: boolean;
    stat: Record<string, unknown>;
  };
  assert.is(s.name, 'link-to-dir');
  assert.is(s.isdir, false);
  assert.is((s.stat.Mode as number) & 0o170000, 0o120000);
  const d = (await c.ok('file-stat', { path: dir })) as typeof s;
  assert.is(d.isdir, true);
  const want = fs.lstatSync(dir, { bigint: true });
  assert.equal(d.stat, {
    Dev: Number(want.dev),
    Ino: Number(want.ino),
    Nlink: Number(want.nlink),
    Mode: Number(want.mode),
    Uid: Number(want.uid),
    Gid: Number(want.gid),
    X__pad0: 0,
    Rdev: Number(want.rdev),
    Size: Number(want.size),
    Blksize: Number(want.blksize),
    Blocks: Number(want.blocks),
    Atim: { Sec: Number(want.atimeNs / 1_000_000_000n), Nsec: Number(want.atimeNs % 1_000_000_000n) },
    Mtim: { Sec: Number(want.mtimeNs / 1_000_000_000n), Nsec: Number(want.mtimeNs % 1_000_000_000n) },
    Ctim: { Sec: Number(want.ctimeNs / 1_000_000_000n), Nsec: Number(want.ctimeNs % 1_000_000_000n) },
    X__unused: [0, 0, 0],
  });
  // Byte order of the answer's keys is Go's struct order.
  c.send(JSON.stringify({ execute: 'file-stat', arguments: { path: dir }, tag: 'order' }) + '\r\n');
  await waitFor(() => c.lines.some((l) => l.includes('"order"')), 5000, 'the answer');
  const line = c.lines.splice(
    c.lines.findIndex((l) => l.includes('"order"')),
    1,
  )[0];
  assert.match(
    line,
    /^\{"return":\{"name":"[^"]+","isdir":true,"stat":\{"Dev":\d+,"Ino":\d+,"Nlink":\d+,"Mode":\d+,"Uid":\d+,"Gid":\d+,"X__pad0":0,"Rdev":\d+,"Size":\d+,"Blksize":\d+,"Blocks":\d+,"Atim":\{"Sec":\d+,"Nsec":\d+\},"Mtim":\{"Sec":\d+,"Nsec":\d+\},"Ctim":\{"Sec":\d+,"Nsec":\d+\},"X__unused":\[0,0,0\]\}\},"tag":"order"\}$/,
  );
});

test(
  'file-stat and directory-list: an inode number past 2^53 (overlayfs xino) goes out exact',
  async ({ c, dir }) => {
    await withXinoOverlay(dir, async (merged, f, ino) => {
      for (const [cmd, args, tag] of [
        ['file-stat', { path: f }, 'big-stat'],
        ['directory-list', { path: merged }, 'big-list'],
      ] as const) {
        c.send(JSON.stringify({ execute: cmd, arguments: args, tag }) + '\r\n');
        await waitFor(() => c.lines.some((l) => l.includes(`"${tag}"`)), 5000, `the ${cmd} answer`);
        // Taken out of the shared client's lines: a later test counting answers must not see it.
        const line = c.lines.splice(
          c.lines.findIndex((l) => l.includes(`"${tag}"`)),
          1,
        )[0];
        assert.ok(line.includes(`"Ino":${ino},`), `${cmd}: ${line}`);
      }
    });
  },
  { needs: [root, command('mount'), command('stat')] },
);

test('directory-create (mkdir -p, perm) and directory-list (sorted, n)', async ({ c, dir }) => {
  const d = path.join(dir, 'tree', 'a', 'b');
  assert.is(await c.ok('directory-create', { path: d, perm: 0o750 }), true);
  assert.is(fs.statSync(d).mode & 0o777, 0o750 & ~process.umask());
  assert.is(fs.statSync(path.dirname(d)).mode & 0o777, 0o750 & ~process.umask());
  assert.is(await c.ok('directory-create', { path: d }), true); // exists: fine
  for (const n of ['zeta', 'alpha', 'Mid', '10', '9']) fs.writeFileSync(path.join(d, n), n);
  fs.mkdirSync(path.join(d, 'sub'));
  const all = (await c.ok('directory-list', { path: d })) as { name: string; isdir: boolean; stat: { Size: number } }[];
  assert.equal(
    all.map((e) => e.name),
    ['10', '9', 'Mid', 'alpha', 'sub', 'zeta'],
  );
  assert.equal(
    all.map((e) => e.isdir),
    [false, false, false, false, true, false],
  );
  assert.is(all[3].stat.Size, 5);
  assert.equal(
    ((await c.ok('directory-list', { path: d, n: 2 })) as { name: string }[]).map((e) => e.name),
    ['10', '9'],
  );
  assert.is(((await c.ok('directory-list', { path: d, n: -1 })) as unknown[]).length, 6);
  fs.mkdirSync(path.join(dir, 'tree', 'empty'));
  assert.equal(await c.ok('directory-list', { path: path.join(dir, 'tree', 'empty'), n: 5 }), []);
  await fails(c, 'directory-list', { path: path.join(d, 'alpha') }, 20, /not a directory$/);
  await fails(c, 'directory-create', { path: path.join(d, 'alpha') }, 20, /^mkdir .*alpha: not a directory$/);
  await fails(c, 'directory-create', { path: path.join(d, 'alpha', 'x') }, 20, /^mkdir .*alpha: not a directory$/);
});

test(
  'file-chmod (setuid and sticky honoured) and file-chown (root)',
  async ({ c, dir }) => {
    const f = path.join(dir, 'modes');
    fs.writeFileSync(f, '');
    assert.is(await c.ok('file-chmod', { path: f, perm: 0o4751 }), true);
    assert.is(fs.statSync(f).mode & 0o7777, 0o4751);
    assert.is(await c.ok('file-chmod', { path: f, perm: 0o100644 }), true); // a whole st_mode: type bits ignored
    assert.is(fs.statSync(f).mode & 0o7777, 0o644);
    await fails(c, 'file-chmod', { path: f }, -1, /Missing argument "perm"/);
    assert.is(await c.ok('file-chown', { path: f, uid: 1234, gid: 5678 }), true);
    assert.equal([fs.statSync(f).uid, fs.statSync(f).gid], [1234, 5678]);
    assert.is(await c.ok('file-chown', { path: f, uid: -1, gid: 42 }), true);
    assert.equal([fs.statSync(f).uid, fs.statSync(f).gid], [1234, 42]);
    assert.is(await c.ok('file-chown', { path: f }), true); // defaults: 0, 0
    assert.equal([fs.statSync(f).uid, fs.statSync(f).gid], [0, 0]);
  },
  { needs: [root] },
);

test('pipelined reads on one handle: answered in request order, bytes exact, eof past the end', async ({ c, dir }) => {
  assert.equal(c.lines, [], 'answers left over by an earlier test would count as these');
  const f = path.join(dir, 'pipelined-read');
  const data = crypto.randomBytes(200 * 1024 + 11);
  fs.writeFileSync(f, data);
  const h = (await c.ok('file-open', { path: f })) as number;
  const n = 60; // 51 reads of data, then reads past the end
  let batch = '';
  for (let i = 0; i < n; i++)
    batch += JSON.stringify({ execute: 'file-read', arguments: { handle_id: h }, tag: `p${i}` }) + '\r\n';
  c.send(batch);
  const answers: Answer[] = await c.waitLines(n);
  const byTag = new Map(answers.map((a) => [a.tag, a]));
  c.lines.length = 0;
  const parts: Buffer[] = [];
  let eofAt = -1;
  for (let i = 0; i < n; i++) {
    const a = byTag.get(`p${i}`)!;
    if (a.error) assert.unreachable(errorMessage(a));
    const r = a.return as Read;
    if (r.eof) {
      if (eofAt < 0) eofAt = i;
      assert.is(r.bufb64, '');
    } else {
      assert.is(eofAt, -1, 'data after eof');
      parts.push(Buffer.from(r.bufb64, 'base64'));
    }
  }
  assert.is(eofAt, 51);
  assert.ok(Buffer.concat(parts).equals(data));
});

test('pipelined writes on one handle land in request order', async ({ c, dir }) => {
  assert.equal(c.lines, [], 'answers left over by an earlier test would count as these');
  const f = path.join(dir, 'pipelined-write');
  const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
  const chunks = Array.from({ length: 300 }, (_, i) => crypto.randomBytes(1 + ((i * 131) % 9000)));
  let batch = '';
  chunks.forEach((b, i) => {
    batch +=
      JSON.stringify({
        execute: 'file-write',
        arguments: { handle_id: h, bufb64: b.toString('base64'), eof: i === chunks.length - 1 },
        tag: `w${i}`,
      }) + '\r\n';
  });
  c.send(batch);
  const answers = await c.waitLines(chunks.length);
  c.lines.length = 0;
  assert.ok(
    answers.every((a) => a.return === true),
    JSON.stringify(answers.find((a) => a.error)),
  );
  assert.ok(fs.readFileSync(f).equals(Buffer.concat(chunks)));
});

test(
  '64 MiB random file round-trips both ways with 4 KiB and 1 MiB chunks',
  async ({ c, dir }) => {
    const f = path.join(dir, 'big');
    const data = crypto.randomBytes(64 * 1024 * 1024);
    fs.writeFileSync(f, data);
    assert.is(await c.ok('get-file-md5sum', { path: f }), crypto.createHash('md5').update(data).digest('hex'));
    for (const chunk of [4096, 1024 * 1024]) {
      // Download, 32 requests in flight, in order by tag.
      const h = (await c.ok('file-open', { path: f })) as number;
      const parts: Buffer[] = [];
      const inflight: Promise<Answer>[] = [];
      const read = () => c.call('file-read', chunk === 4096 ? { handle_id: h } : { handle_id: h, size: chunk }, 30_000);
      for (let i = 0; i < 32; i++) inflight.push(read());
      for (;;) {
        const a = await inflight.shift()!;
        const r = a.return as Read;
        if (r.eof) break;
        parts.push(Buffer.from(r.bufb64, 'base64'));
        inflight.push(read());
      }
      await Promise.all(inflight);
      const down = Buffer.concat(parts);
      assert.is(down.length, data.length, `download with ${chunk}-byte chunks`);
      assert.ok(down.equals(data), `download with ${chunk}-byte chunks`);
      // Upload the downloaded bytes, 32 writes in flight, the last with eof.
      const up = path.join(dir, `up-${chunk}`);
      const w = (await c.ok('file-open', { path: up, mode: 'w' })) as number;
      const writes: Promise<Answer>[] = [];
      for (let off = 0; off < down.length; off += chunk) {
        writes.push(
          c.call(
            'file-write',
            { handle_id: w, bufb64: down.toString('base64', off, off + chunk), eof: off + chunk >= down.length },
            30_000,
          ),
        );
        if (writes.length >= 32) assert.is((await writes.shift()!).return, true);
      }
      for (const a of await Promise.all(writes)) assert.is(a.return, true);
      assert.ok(fs.readFileSync(up).equals(data), `upload with ${chunk}-byte chunks`);
      fs.rmSync(up);
    }
  },
  { timeout: 60_000 },
);

test.run();

const limits = suite('file handle limits and lifecycle');

/** Runs fn against a fresh agent started with flags and a fresh temp dir; cleans both up. */
async function withAgent(
  flags: string[],
  fn: (agent: RunningAgent, c: LineClient, dir: string) => Promise<void>,
): Promise<void> {
  const agent = await startAgent(flags);
  const dir = tmpDir('ember-ga-files-');
  try {
    const c = await agent.connect();
    await fn(agent, c, dir);
    c.close();
  } finally {
    agent.proc.kill('SIGKILL'); // no-op once it exited
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

limits("--max-handles 8, phoenix only: a host's ninth open is a clear EMFILE error until one closes", async () => {
  // No qemu-ga endpoint: no halves (test/integration/qemu-ga-files.test.ts has the agent serving both).
  const agent = await startAgent(['--max-handles', '8']);
  try {
    const c = await agent.connect();
    const ids: number[] = [];
    for (let i = 0; i < 8; i++) ids.push((await c.ok('file-open', { path: '/proc/self/status' })) as number);
    assert.equal(ids, [1, 2, 3, 4, 5, 6, 7, 8]);
    await fails(
      c,
      'file-open',
      { path: '/proc/self/status' },
      24,
      /Too many open file handles: the agent allows 8 at once \(--max-handles\)/,
    );
    await c.ok('file-close', { handle_id: 3 });
    assert.is(await c.ok('file-open', { path: '/proc/self/status' }), 9);
    // Failed opens do not use up slots or ids.
    await fails(c, 'file-open', { path: '/nonexistent' }, 24, /Too many open file handles/);
    await c.ok('file-close', { handle_id: 9 });
    await fails(c, 'file-open', { path: '/nonexistent' }, 2, /no such file/);
    assert.is(await c.ok('file-open', { path: '/proc/self/status' }), 10);
    c.close();
  } finally {
    await agent.stop();
  }
});

limits('--no-large-reads: size is ignored, 4096-byte reads like 0.7.1', () =>
  withAgent(['--no-large-reads'], async (_agent, c, dir) => {
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, Buffer.alloc(100_000, 7));
    const h = (await c.ok('file-open', { path: f })) as number;
    const r = (await c.ok('file-read', { handle_id: h, size: 65536 })) as Read;
    assert.is(Buffer.from(r.bufb64, 'base64').length, 4096);
  }),
);

limits('handles left open are closed at exit, and the written data is there', () =>
  withAgent([], async (agent, c, dir) => {
    const f = path.join(dir, 'left-open');
    const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
    await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('kept').toString('base64') });
    await c.ok('file-open', { path: f });
    assert.is(await c.ok('agent-shutdown'), true);
    assert.is(await agent.exited, 0);
    assert.match(agent.stderr(), /closing 2 file handle\(s\) left open/);
    assert.is(fs.readFileSync(f, 'utf8'), 'kept');
  }),
);

limits(
  'FIFOs nobody writes to: reads wait without holding threads or output room, file-close cancels one, md5 refuses, exit is not held up',
  () =>
    withAgent([], async (agent, c, dir) => {
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      // More waiting reads than libuv has pool threads (4): each once held one, and file-open,
      // get-file-md5sum and the rest then waited behind them for good. Each asks for 4 MiB: six
      // such answers are past the host's 16 MiB of output, which a read waiting for data once
      // held, so the next read of a plain file waited for room that only data in the FIFO gave.
      const ids: number[] = [];
      for (let i = 0; i < 6; i++) ids.push((await c.ok('file-open', { path: fifo })) as number); // no writer: does not wait
      for (const id of ids)
        c.send(
          JSON.stringify({ execute: 'file-read', arguments: { handle_id: id, size: 4 << 20 }, tag: `stuck-${id}` }) +
            '\r\n',
        );
      const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK); // connects, never writes
      try {
        await new Promise((r) => setTimeout(r, 300));
        assert.is(c.lines.length, 0, 'the reads wait for data');
        await fails(c, 'get-file-md5sum', { path: fifo }, 22, /not a regular file or block device/);
        const f = path.join(dir, 'plain');
        fs.writeFileSync(f, 'served');
        const h = (await c.ok('file-open', { path: f }, 5000)) as number;
        assert.is(
          Buffer.from(((await c.ok('file-read', { handle_id: h }, 5000)) as Read).bufb64, 'base64').toString(),
          'served',
        );
        assert.is(
          await c.ok('get-file-md5sum', { path: f }, 5000),
          crypto.createHash('md5').update('served').digest('hex'),
        );
        // Closing a handle whose read waits: the close answers, and so does the read (ECANCELED).
        assert.is(await c.ok('file-close', { handle_id: ids[0] }, 5000), true);
        const stuck = (await c.waitLines(1, 5000)).find((a) => a.tag === `stuck-${ids[0]}`);
        assert.ok(stuck?.error, 'the cancelled read answers an error');
        assert.is(stuck!.error!.code, 125);
        assert.match(errorMessage(stuck!), /cancelled: the handle was closed/);
        agent.proc.kill('SIGTERM');
        assert.is(
          await Promise.race([agent.exited, new Promise((r) => setTimeout(() => r('still running'), 15_000))]),
          0,
        );
      } finally {
        fs.closeSync(writer);
      }
    }),
  { needs: [command('mkfifo')], timeout: 30_000 },
);

const setpriv: Requirement = command('setpriv');

limits(
  'permission denied as an unprivileged user (nobody): EACCES and EPERM; its own file replaced atomically',
  async () => {
    const dir = tmpDir('ember-ga-files-');
    fs.chmodSync(dir, 0o755);
    const sockDir = path.join(dir, 'sock');
    fs.mkdirSync(sockDir, { mode: 0o777 });
    fs.chmodSync(sockDir, 0o777);
    const secret = path.join(dir, 'secret');
    fs.writeFileSync(secret, 'root only', { mode: 0o600 });
    const locked = path.join(dir, 'locked');
    fs.mkdirSync(locked, { mode: 0o700 });
    const socket = path.join(sockDir, 'ga.sock');
    const proc = spawn(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, '--listen', `unix:${socket}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    try {
      await waitFor(
        () => {
          if (proc.exitCode !== null) throw new Error(`agent exited: ${err}`);
          return /serving on/.test(err);
        },
        10_000,
        'the unprivileged agent',
      );
      const c = await LineClient.connect(socket);
      await fails(c, 'file-open', { path: secret }, 13, /^open .*secret: permission denied$/);
      await fails(c, 'get-file-md5sum', { path: secret }, 13, /^open .*secret: permission denied$/);
      await fails(c, 'file-open', { path: secret, mode: 'w' }, 13, /permission denied/);
      await fails(
        c,
        'directory-create',
        { path: path.join(dir, 'new', 'deeper') },
        13,
        /^mkdir .*new: permission denied$/,
      );
      await fails(c, 'directory-list', { path: locked }, 13, /permission denied/);
      await fails(
        c,
        'file-chown',
        { path: secret, uid: 65534, gid: 65534 },
        1,
        /^chown .*secret: operation not permitted$/,
      );
      await fails(c, 'file-chmod', { path: secret, perm: 0o777 }, 1, /^chmod .*secret: operation not permitted$/);
      assert.is(fs.readFileSync(secret, 'utf8'), 'root only');
      // An atomic replace that could not keep the file's owner is refused, the file untouched.
      const shared = path.join(dir, 'shared');
      fs.mkdirSync(shared, { mode: 0o777 });
      fs.chmodSync(shared, 0o777);
      const theirs = path.join(shared, 'theirs');
      fs.writeFileSync(theirs, 'owned by root, writable by all');
      fs.chmodSync(theirs, 0o666);
      await fails(
        c,
        'file-open',
        { path: theirs, mode: 'w', atomic: true },
        1,
        /^open .*theirs: cannot give the new file the owner of the old one \(0:0\): operation not permitted; without atomic the file is written in place$/,
      );
      assert.is(fs.readFileSync(theirs, 'utf8'), 'owned by root, writable by all');
      assert.equal(fs.readdirSync(shared), ['theirs']);
      // Its own file it replaces: the unnamed new file is linked in without CAP_DAC_READ_SEARCH.
      const mine = path.join(shared, 'mine');
      fs.writeFileSync(mine, 'old');
      fs.chownSync(mine, 65534, 65534);
      const h = (await c.ok('file-open', { path: mine, mode: 'w', atomic: true })) as number;
      await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('new').toString('base64') });
      assert.is(await c.ok('file-close', { handle_id: h, md5: '22af645d1859cb5ca6da0c484f1f37ea', fsync: true }), true);
      assert.is(fs.readFileSync(mine, 'utf8'), 'new');
      assert.is(fs.statSync(mine).uid, 65534);
      assert.equal(fs.readdirSync(shared).sort(), ['mine', 'theirs']);
      assert.ok(typeof (await c.ok('ping')) === 'string'); // still serving
      c.close();
    } finally {
      proc.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs: [root, setpriv] },
);

limits.run();
