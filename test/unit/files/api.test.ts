// The file library's public surface as a Node tool author meets it: openFile's options checked
// as fs checks its own (and fs's modes and perm strings accepted), GuestStats shaped like
// fs.Stats with bigints where 64 bits are needed, and GuestFile's read-only position.
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { GuestFile, listDirectory, openFile, statFile, type OpenOptions } from '../../../lib/files';
import { GuestStats, goStat, type GoStat } from '../../../lib/files/stat';
import { tmpDir } from '../../helpers/agent';
import { suite } from '../../helpers/harness';

const test = suite<{ dir: string }>('files library API', { dir: '' });

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-files-api-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

type NodeError = Error & { code?: string };

/** What `p` rejects with; fails when it resolves. */
async function rejection(p: Promise<unknown>): Promise<NodeError> {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) {
    if (r.v instanceof GuestFile) await r.v.close();
    throw new Error('expected a rejection');
  }
  return r.e as NodeError;
}

/** The same mistake given to fs.openSync: what fs throws, for comparison. */
function fsThrows(f: () => unknown): NodeError {
  try {
    f();
  } catch (e) {
    return e as NodeError;
  }
  throw new Error('fs did not throw');
}

test('openFile refuses what fs refuses, with its class, code and a message naming the option', async ({ dir }) => {
  const f = path.join(dir, 'bad-options');
  const cases: [unknown, typeof TypeError, string, RegExp][] = [
    [
      { mode: 'q' },
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /^The property 'options.mode' must be one of 'r', 'r\+', 'w', 'w\+', 'a', 'a\+'. Received 'q'$/,
    ],
    [
      { mode: 1 },
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /^The "options.mode" property must be of type string. Received type number \(1\)$/,
    ],
    [{ mode: 'rw' }, TypeError, 'ERR_INVALID_ARG_VALUE', /'options.mode'/],
    [
      { mode: 'w', perm: 'rw-r--r--' },
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      /^The property 'options.perm' must be a 32-bit unsigned integer or an octal string. Received 'rw-r--r--'$/,
    ],
    [{ mode: 'w', perm: '0o9' }, TypeError, 'ERR_INVALID_ARG_VALUE', /'options.perm'/],
    [
      { mode: 'w', perm: -1 },
      RangeError,
      'ERR_OUT_OF_RANGE',
      /^The value of "options.perm" is out of range. It must be >= 0 && <= 4294967295. Received -1$/,
    ],
    [{ mode: 'w', perm: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE', /It must be an integer/],
    [{ mode: 'w', perm: true }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options.perm" property must be of type number/],
    [
      { mode: 'w', force: 'yes' },
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      /"options.force" property must be of type boolean/,
    ],
    [{ atomic: 1 }, TypeError, 'ERR_INVALID_ARG_TYPE', /"options.atomic" property must be of type boolean/],
    [{ mode: 'a', atomic: true }, TypeError, 'ERR_INVALID_ARG_VALUE', /'options.atomic' needs mode 'w', not 'a'/],
    [{ mode: 'r+', md5: true }, TypeError, 'ERR_INVALID_ARG_VALUE', /'options.md5' needs mode 'r', not 'r\+'/],
    [null, TypeError, 'ERR_INVALID_ARG_TYPE', /^The "options" argument must be of type object. Received null$/],
    ['w', TypeError, 'ERR_INVALID_ARG_TYPE', /"options" argument must be of type object/],
  ];
  for (const [options, Kind, code, re] of cases) {
    const e = await rejection(openFile(f, options as OpenOptions));
    const what = JSON.stringify(options);
    assert.instance(e, Kind, what);
    assert.is(e.code, code, what);
    assert.match(e.message, re, what);
    assert.match(e.stack ?? '', new RegExp(`^${Kind.name} \\[${code}\\]: `), what);
  }
  assert.not.ok(fs.existsSync(f), 'nothing was created');
  // The same mistakes as fs makes them: the same class, code and message.
  const perm = await rejection(openFile(f, { mode: 'w', perm: 'rw' }));
  const fsPerm = fsThrows(() => fs.openSync(f, 'w', 'rw'));
  assert.is(perm.code, fsPerm.code);
  assert.is(perm.message, fsPerm.message.replace("'mode'", "'options.perm'").replace('argument', 'property'));
  const range = await rejection(openFile(f, { mode: 'w', perm: 2 ** 32 }));
  const fsRange = fsThrows(() => fs.openSync(f, 'w', 2 ** 32));
  assert.is(range.code, fsRange.code);
  assert.is(range.message, fsRange.message.replace('"mode"', '"options.perm"'));
  const p = await rejection(openFile(42 as unknown as string));
  assert.is(p.code, 'ERR_INVALID_ARG_TYPE');
  assert.is(p.message, 'The "path" argument must be of type string. Received type number (42)'); // fs: "or Buffer or URL"
  const nul = await rejection(openFile(f + '\0x'));
  assert.is(nul.code, 'ERR_INVALID_ARG_VALUE');
});

test("openFile takes perm as fs takes a mode: a number or an octal string ('644', '0o644')", async ({ dir }) => {
  const old = process.umask(0);
  try {
    for (const [perm, want] of [
      ['644', 0o644],
      ['0o640', 0o640],
      ['0600', 0o600],
      [0o604, 0o604],
      [0o104755, 0o4755], // a whole st_mode: & 0o7777, setuid kept
    ] as const) {
      const f = path.join(dir, `perm-${String(perm)}`);
      const h = await openFile(f, { mode: 'w', perm });
      await h.close();
      assert.is(fs.statSync(f).mode & 0o7777, want, `perm ${String(perm)}`);
    }
  } finally {
    process.umask(old);
  }
});

test("openFile's modes are fs's: 'a' appends, 'a+' and 'w+' read too, 'r+' keeps the content", async ({ dir }) => {
  const f = path.join(dir, 'modes');
  fs.writeFileSync(f, 'hello ');
  const a = await openFile(f, { mode: 'a' });
  assert.is(a.mode, 'w');
  await a.write(Buffer.from('world'));
  assert.is(a.position, 11, 'an append moves the position to the end');
  await a.close();
  assert.is(fs.readFileSync(f, 'utf8'), 'hello world');

  const ap = await openFile(f, { mode: 'a+' });
  assert.is(ap.mode, 'rw');
  assert.is((await ap.read(5)).toString(), 'hello', "'a+' reads from the start");
  await ap.write(Buffer.from('!'));
  await ap.close();
  assert.is(fs.readFileSync(f, 'utf8'), 'hello world!');

  const rp = await openFile(f, { mode: 'r+' });
  await rp.write(Buffer.from('J'));
  assert.is((await rp.read(4)).toString(), 'ello');
  await rp.close();
  assert.is(fs.readFileSync(f, 'utf8'), 'Jello world!');

  const wp = await openFile(f, { mode: 'w+' });
  assert.is(fs.statSync(f).size, 0, "'w+' truncates");
  await wp.write(Buffer.from('abc'));
  await wp.seek(0, 0);
  assert.is((await wp.read(10)).toString(), 'abc');
  await wp.close();

  const missing = await rejection(openFile(path.join(dir, 'nope'), { mode: 'r+' }));
  assert.is(missing.code, 'ENOENT', "'r+' does not create");
  const created = await openFile(path.join(dir, 'new-a'), { mode: 'a', perm: '600' });
  await created.close();
  assert.is(fs.statSync(path.join(dir, 'new-a')).mode & 0o777, 0o600 & ~process.umask());
});

test('GuestFile: position is read-only from outside, and moves with reads and seeks', async ({ dir }) => {
  const f = path.join(dir, 'position');
  fs.writeFileSync(f, 'x'.repeat(100));
  const h = await openFile(f);
  assert.instance(h, GuestFile);
  assert.is(h.position, 0);
  await h.read(30);
  assert.is(h.position, 30);
  assert.throws(() => {
    (h as { position: number }).position = 5; // a getter without a setter: strict mode throws
  }, TypeError);
  assert.is(h.position, 30);
  await h.seek(-10, 2);
  assert.is(h.position, 90);
  assert.is(Object.getOwnPropertyDescriptor(GuestFile.prototype, 'position')?.set, undefined);
  await h.close();
});

test('GuestFile: operations apply in call order, a write issued after a seek or a read never joins an earlier write', async ({
  dir,
}) => {
  // A large first write keeps the later ones queued, where small writes are gathered into one.
  const f = path.join(dir, 'order');
  const w = await openFile(f, { mode: 'w+' });
  const big = w.write(Buffer.alloc(128 * 1024, 'A'));
  const b = w.write(Buffer.from('BBBB'));
  const s = w.seek(0, 0);
  const c = w.write(Buffer.from('CCCC'));
  await Promise.all([big, b, s, c]);
  assert.is(w.position, 4);
  await w.close();
  const got = fs.readFileSync(f);
  assert.is(got.length, 128 * 1024 + 4);
  assert.is(got.subarray(0, 4).toString(), 'CCCC');
  assert.is(got.subarray(-4).toString(), 'BBBB');

  fs.writeFileSync(f, '.'.repeat(200 * 1024));
  const rw = await openFile(f, { mode: 'r+' });
  const writes = [rw.write(Buffer.alloc(128 * 1024, 'x')), rw.write(Buffer.from('1111'))];
  const read = rw.read(4);
  writes.push(rw.write(Buffer.from('2222')));
  await Promise.all(writes);
  assert.is((await read).toString(), '....', 'the read sees the file as it was when it was issued');
  await rw.close();
  assert.is(
    fs
      .readFileSync(f)
      .subarray(128 * 1024, 128 * 1024 + 12)
      .toString(),
    '1111....2222',
  );
});

/** What fs.lstatSync says, in GuestStats' fields. */
function expected(p: string) {
  const b = fs.lstatSync(p, { bigint: true });
  const n = fs.lstatSync(p);
  return {
    dev: n.dev,
    mode: n.mode,
    nlink: n.nlink,
    uid: n.uid,
    gid: n.gid,
    rdev: n.rdev,
    blksize: n.blksize,
    ino: b.ino,
    size: n.size,
    blocks: n.blocks,
    atimeMs: n.atimeMs,
    mtimeMs: n.mtimeMs,
    ctimeMs: n.ctimeMs,
    atimeNs: b.atimeNs,
    mtimeNs: b.mtimeNs,
    ctimeNs: b.ctimeNs,
  };
}

test("statFile: fs.Stats' names and values, numbers to divide, bigint ino and ns times", async ({ dir }) => {
  const f = path.join(dir, 'stat-me');
  fs.writeFileSync(f, 'x'.repeat(3000));
  fs.utimesSync(f, new Date(1_000_000_123), new Date(2_000_000_456));
  fs.symlinkSync(f, path.join(dir, 'stat-link'));
  fs.mkdirSync(path.join(dir, 'stat-dir'));
  const s = await statFile(f);
  assert.instance(s, GuestStats);
  assert.is(s.name, 'stat-me');
  const { name, ...fields } = s;
  assert.is(name, 'stat-me');
  assert.equal(fields, expected(f));
  assert.is(s.size / 1000, 3, 'size is a number');
  assert.is(typeof s.ino, 'bigint');
  assert.is(s.mtimeMs, 2_000_000_456);
  assert.is(s.mtimeNs, 2_000_000_456_000_000n);
  assert.equal(s.mtime, new Date(2_000_000_456));
  assert.ok(s.isFile() && !s.isDirectory() && !s.isSymbolicLink());
  const l = await statFile(path.join(dir, 'stat-link'));
  assert.ok(l.isSymbolicLink() && !l.isFile(), 'lstat: the link itself');
  assert.is(l.size, f.length);
  const d = await statFile(path.join(dir, 'stat-dir') + '/');
  assert.is(d.name, 'stat-dir');
  assert.ok(d.isDirectory());
  assert.ok((await statFile('/dev/null')).isCharacterDevice());
  assert.is((await statFile('/dev/null')).rdev, fs.lstatSync('/dev/null').rdev);
  assert.is((await rejection(statFile(path.join(dir, 'none')))).code, 'ENOENT');
  assert.is((await rejection(statFile(7 as unknown as string))).code, 'ERR_INVALID_ARG_TYPE');
});

test('GuestStats: a 64-bit inode stays exact (bigint), times before 1970 too', () => {
  const g: GoStat = {
    Dev: 2049,
    Ino: 2n ** 63n + 2n, // overlayfs with xino sets the top bit
    Nlink: 1,
    Mode: 0o100644,
    Uid: 0,
    Gid: 0,
    X__pad0: 0,
    Rdev: 0,
    Size: 2 ** 40,
    Blksize: 4096,
    Blocks: 8,
    Atim: { Sec: -2, Nsec: 500_000_000 },
    Mtim: { Sec: 0, Nsec: 1 },
    Ctim: { Sec: 1, Nsec: 0 },
    X__unused: [0, 0, 0],
  };
  const s = new GuestStats('big', g);
  assert.is(s.ino, 9223372036854775810n);
  assert.is(s.size, 2 ** 40);
  assert.is(s.atimeNs, -1_500_000_000n);
  assert.is(s.atimeMs, -1500);
  assert.is(s.mtimeNs, 1n);
  assert.is(s.ctimeMs, 1000);
  // From Node's bigint lstat, where the same inode arrives negative (signed 64 bits).
  const raw = fs.lstatSync('/', { bigint: true });
  const fake = Object.assign(Object.create(Object.getPrototypeOf(raw) as object) as fs.BigIntStats, raw, {
    ino: -(2n ** 63n) + 2n,
  });
  assert.is(new GuestStats('/', goStat(fake)).ino, 9223372036854775810n);
});

test('listDirectory: GuestStats per entry, as statFile gives each', async ({ dir }) => {
  const d = path.join(dir, 'list');
  fs.mkdirSync(d);
  for (const n of ['b', 'a']) fs.writeFileSync(path.join(d, n), n);
  fs.mkdirSync(path.join(d, 'sub'));
  const list = await listDirectory(d);
  assert.equal(
    list.map((e) => e.name),
    ['a', 'b', 'sub'],
  );
  for (const e of list) {
    assert.instance(e, GuestStats);
    assert.equal(e, await statFile(path.join(d, e.name)), e.name);
  }
  assert.ok(list[2].isDirectory());
  assert.is((await listDirectory(d, 1)).length, 1);
  assert.is((await rejection(listDirectory(d, 1.5))).code, 'ERR_OUT_OF_RANGE');
  assert.is((await rejection(listDirectory(d, '1' as unknown as number))).code, 'ERR_INVALID_ARG_TYPE');
});

test.run();
