// file-open `atomic` and file-close `discard` / `md5` / `fsync` (ember-ga): a file replaced
// through an atomic handle holds its old content or all of the new, never a part, whatever goes
// wrong on the way (a discard, a failed md5 check, a full disk, the agent exiting).
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import {
  agentSuite,
  errorMessage,
  fails,
  longPath,
  runningExecutable,
  startAgent,
  tmpDir,
  unnamed,
  withBindMount,
  withFuse,
  withTmpfs,
  type RunningAgent,
} from '../helpers/agent';
import { command, root, waitFor } from '../helpers/harness';

const test = agentSuite('atomic writes and file-close options', 'ember-ga-atomic-');

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const md5 = (s: string | Buffer) => crypto.createHash('md5').update(s).digest('hex');
/** Temporary files an atomic handle left in dir. */
const temps = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith('.ember-ga-part'));
/** What an atomic handle could leave: temporary names in dir, and unnamed files the agent still holds there. */
const leftovers = (agent: RunningAgent, dir: string) => [...temps(dir), ...unnamed(agent.proc.pid!, dir)];

/** A test with an agent of its own (it stops or kills it) and a directory, both gone after. */
async function withOwnAgent(prefix: string, run: (agent: RunningAgent, dir: string) => Promise<void>): Promise<void> {
  const agent = await startAgent();
  const dir = tmpDir(prefix);
  try {
    await run(agent, dir);
  } finally {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('atomic: the file changes only at close, all at once; mode and owner carry over', async ({ agent, c, dir }) => {
  const f = path.join(dir, 'config');
  fs.writeFileSync(f, 'old content');
  fs.chmodSync(f, 0o4751); // setuid too: chown would clear it if done after chmod
  if (process.getuid?.() === 0) fs.chownSync(f, 1234, 5678);
  const before = fs.statSync(f);
  const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true, perm: 0o600 })) as number;
  await c.ok('file-write', { handle_id: h, bufb64: b64('new ') });
  await c.ok('file-write', { handle_id: h, bufb64: b64('content') });
  assert.is(fs.readFileSync(f, 'utf8'), 'old content', 'not replaced before close');
  assert.is(await c.ok('get-file-md5sum', { path: f }), md5('old content'));
  // The new data is in a file with no name yet (O_TMPFILE), which only the agent holds.
  assert.equal(temps(dir), [], 'no temporary name until the close');
  const open = unnamed(agent.proc.pid!, dir);
  assert.is(open.length, 1, 'the agent holds one unnamed file in the directory');
  assert.is(fs.readFileSync(open[0], 'utf8'), 'new content');
  assert.is(await c.ok('file-close', { handle_id: h }), true);
  const after = fs.statSync(f);
  assert.is(fs.readFileSync(f, 'utf8'), 'new content');
  assert.is(after.mode, before.mode, 'mode carried over (perm only applies to a new file)');
  assert.is(`${after.uid}:${after.gid}`, `${before.uid}:${before.gid}`);
  assert.is.not(after.ino, before.ino, 'a new inode, renamed into place');
  assert.equal(leftovers(agent, dir), []);
});

test('atomic: a new file gets perm; the eof write commits; 0.7.1-style empty eof chunk too', async ({
  agent,
  c,
  dir,
}) => {
  const f = path.join(dir, 'new-file');
  const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true, perm: 0o640 })) as number;
  assert.not.ok(fs.existsSync(f), 'nothing at the path until the commit');
  await c.ok('file-write', { handle_id: h, bufb64: b64('one chunk'), eof: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'one chunk');
  assert.is(fs.statSync(f).mode & 0o777, 0o640 & ~process.umask());
  const h2 = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
  await c.ok('file-write', { handle_id: h2, bufb64: b64('two') });
  await c.ok('file-write', { handle_id: h2, bufb64: '', eof: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'two');
  await fails(c, 'file-write', { handle_id: h2, bufb64: '' }, -1, /^Incorrect handle id/);
  assert.equal(leftovers(agent, dir), []);
});

test('atomic: discard and a failed md5 check leave the original as it was', async ({ agent, c, dir }) => {
  const f = path.join(dir, 'keep');
  fs.writeFileSync(f, 'original');
  const ino = fs.statSync(f).ino;
  const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
  await c.ok('file-write', { handle_id: h, bufb64: b64('half an upl') });
  assert.is(await c.ok('file-close', { handle_id: h, discard: true }), true);
  assert.is(fs.readFileSync(f, 'utf8'), 'original');
  assert.equal(leftovers(agent, dir), []);

  const h2 = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
  await c.ok('file-write', { handle_id: h2, bufb64: b64('corrupted') });
  await fails(
    c,
    'file-close',
    { handle_id: h2, md5: md5('expected data') },
    74,
    new RegExp(
      `^.*keep: md5 mismatch: the data written has md5 ${md5('corrupted')}, not ${md5('expected data')}; not replaced: the file is as it was$`,
    ),
  );
  assert.is(fs.readFileSync(f, 'utf8'), 'original');
  assert.is(fs.statSync(f).ino, ino);
  assert.equal(leftovers(agent, dir), []);
  await fails(c, 'file-write', { handle_id: h2, bufb64: '' }, -1, /^Incorrect handle id/); // closed all the same

  // The right md5 (any case) and fsync: replaced.
  const h3 = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
  await c.ok('file-write', { handle_id: h3, bufb64: b64('expected data') });
  assert.is(await c.ok('file-close', { handle_id: h3, md5: md5('expected data').toUpperCase(), fsync: true }), true);
  assert.is(fs.readFileSync(f, 'utf8'), 'expected data');
  assert.equal(leftovers(agent, dir), []);
});

test(
  'atomic: a symlink keeps pointing at the replaced file; a directory, FIFO, dangling link or mode "r" is refused',
  async ({ agent, c, dir }) => {
    const real = path.join(dir, 'real');
    const link = path.join(dir, 'link');
    fs.writeFileSync(real, 'old');
    fs.symlinkSync('real', link);
    const h = (await c.ok('file-open', { path: link, mode: 'w', atomic: true })) as number;
    await c.ok('file-write', { handle_id: h, bufb64: b64('new'), eof: true });
    assert.ok(fs.lstatSync(link).isSymbolicLink());
    assert.is(fs.readFileSync(real, 'utf8'), 'new');

    await fails(
      c,
      'file-open',
      { path: dir, mode: 'w', atomic: true },
      22,
      /^open .*: not a regular file: atomic replaces regular files only/,
    );
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await fails(c, 'file-open', { path: fifo, mode: 'w', atomic: true }, 22, /not a regular file/);
    fs.symlinkSync('missing', path.join(dir, 'dangling'));
    await fails(
      c,
      'file-open',
      { path: path.join(dir, 'dangling'), mode: 'w', atomic: true },
      2,
      /^open .*dangling: a symlink to a missing file/,
    );
    await fails(c, 'file-open', { path: real, atomic: true }, -1, /^Invalid argument "atomic": only with mode "w"$/);
    await fails(
      c,
      'file-open',
      { path: path.join(dir, 'no-such-dir', 'f'), mode: 'w', atomic: true },
      2,
      /^open .*no-such-dir\/f: no such file or directory$/,
    );
    assert.equal(leftovers(agent, dir), []);
  },
  { needs: [command('mkfifo')] },
);

test(
  'file-close options on other handles: discard refused (handle stays open), md5 checked, a FIFO, unknown handle named',
  async ({ c, dir }) => {
    const f = path.join(dir, 'plain');
    const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
    await c.ok('file-write', { handle_id: h, bufb64: b64('in place') });
    await fails(
      c,
      'file-close',
      { handle_id: h, discard: true },
      22,
      /^close .*plain: discard needs a handle opened with atomic/,
    );
    await c.ok('file-write', { handle_id: h, bufb64: b64('!') }); // still open
    await fails(c, 'file-close', { handle_id: h, md5: 'xyz' }, 22, /md5 must be 32 hex digits, got "xyz"/);
    await fails(
      c,
      'file-close',
      { handle_id: h, md5: md5('something else') },
      74,
      /md5 mismatch: .*; the data written stays in the file$/,
    );
    assert.is(fs.readFileSync(f, 'utf8'), 'in place!');

    const h2 = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
    await c.ok('file-write', { handle_id: h2, bufb64: b64('checked') });
    assert.is(await c.ok('file-close', { handle_id: h2, md5: md5('checked'), fsync: true }), true);

    const r = (await c.ok('file-open', { path: f })) as number;
    await fails(
      c,
      'file-close',
      { handle_id: r, md5: md5('checked') },
      22,
      /md5 and fsync apply to a handle opened with mode "w"/,
    );

    // A FIFO has nothing to read back: the check is of the bytes written to it; fsync alone is fine.
    const fifo = path.join(dir, 'close-fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const w = (await c.ok('file-open', { path: fifo, mode: 'w' })) as number;
      await c.ok('file-write', { handle_id: w, bufb64: b64('x') });
      await c.ok('file-write', { handle_id: w, bufb64: b64('y') });
      assert.is(await c.ok('file-close', { handle_id: w, md5: md5('xy') }), true);
      const wrong = (await c.ok('file-open', { path: fifo, mode: 'w' })) as number;
      await c.ok('file-write', { handle_id: wrong, bufb64: b64('x') });
      await fails(
        c,
        'file-close',
        { handle_id: wrong, md5: md5('y') },
        74,
        /close-fifo: md5 mismatch: the data written has md5 [0-9a-f]{32}, not [0-9a-f]{32}; the data written stays in the file$/,
      );
      const w2 = (await c.ok('file-open', { path: fifo, mode: 'w' })) as number;
      assert.is(await c.ok('file-close', { handle_id: w2, fsync: true }), true);
    } finally {
      fs.closeSync(reader);
    }
    assert.is(await c.ok('file-close', { handle_id: r }), true);

    assert.is(await c.ok('file-close', { handle_id: 999_999 }), true); // 0.7.1's answer
    await fails(
      c,
      'file-close',
      { handle_id: 999_999, md5: md5('x') },
      -1,
      /^Incorrect handle id: 999999 is not an open file handle \(nothing was checked\)$/,
    );
    await fails(c, 'file-close', { handle_id: 999_999, discard: true }, -1, /nothing was discarded/);
    const h3 = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
    await fails(c, 'file-close', { handle_id: h3, md5: 5 }, -1, /^Invalid argument "md5": expected a string/);
    assert.is(await c.ok('file-close', { handle_id: h3 }), true); // the refused close left it open
  },
  { needs: [command('mkfifo')] },
);

test('atomic: a chunk refused as invalid base64 in a pipelined upload: nothing more is written, and nothing replaced', async ({
  agent,
  c,
  dir,
}) => {
  const f = path.join(dir, 'pipelined');
  fs.writeFileSync(f, 'original');
  const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
  const lines = [b64('AAA'), 'not*base64', b64('CCC')].map(
    (bufb64, i) =>
      JSON.stringify({ execute: 'file-write', arguments: { handle_id: h, bufb64, eof: i === 2 }, tag: `p${i}` }) + '\n',
  );
  c.send(lines.join(''));
  const answers = await c.waitLines(3);
  c.lines.length = 0;
  const by = (tag: string) => answers.find((a) => a.tag === tag)!;
  assert.is(by('p0').return, true);
  assert.match(
    errorMessage(by('p1')),
    /not valid base64 \(standard alphabet with = padding\); nothing was written, and this atomic handle will not replace the file$/,
  );
  assert.is(by('p2').error?.code, 22);
  assert.match(errorMessage(by('p2')), /a chunk was refused as invalid base64/);
  assert.is(fs.readFileSync(f, 'utf8'), 'original');
  assert.equal(leftovers(agent, dir), []);
  // A plain handle stays usable after the same refusal (the host may send the chunk again).
  const p = (await c.ok('file-open', { path: f + '.plain', mode: 'w' })) as number;
  await fails(c, 'file-write', { handle_id: p, bufb64: 'not*base64' }, -1, /nothing was written$/);
  await c.ok('file-write', { handle_id: p, bufb64: b64('ok'), eof: true });
  assert.is(fs.readFileSync(f + '.plain', 'utf8'), 'ok');
});

test(
  'atomic: refused early where rename cannot work: a bind-mounted file, a trailing slash, a read-only directory',
  async ({ agent, c, dir }) => {
    const f = path.join(dir, 'bind-target');
    const src = path.join(dir, 'bind-source');
    fs.writeFileSync(f, 'target');
    fs.writeFileSync(src, 'mounted over it');
    await withBindMount(src, f, async () => {
      await fails(
        c,
        'file-open',
        { path: f, mode: 'w', atomic: true },
        22,
        /^open .*bind-target: a mount point \(a bind-mounted file\): rename cannot replace it; write it without atomic$/,
      );
    });
    await fails(
      c,
      'file-open',
      { path: path.join(dir, 'new-name/'), mode: 'w', atomic: true },
      21,
      /^open .*new-name\/: is a directory$/,
    );
    await withTmpfs(dir, 'ro', 'size=64k', async (ro) => {
      fs.writeFileSync(path.join(ro, 'f'), 'x');
      execFileSync('mount', ['-o', 'remount,ro', ro]);
      await fails(
        c,
        'file-open',
        { path: path.join(ro, 'f'), mode: 'w', atomic: true },
        30,
        /^open .*ro\/f: cannot create the temporary file beside it: read-only file system; without atomic the file is written in place$/,
      );
    });
    assert.equal(leftovers(agent, dir), []);
  },
  { needs: [root, command('mount')] },
);

test('atomic: refused at the open (ENAMETOOLONG) where the temporary path beside the file would pass PATH_MAX', async ({
  agent,
  c,
  dir,
}) => {
  // The temporary path is the target's plus 24 bytes: `.` before the name, `.XXXXXXXX.ember-ga-part` after.
  const f = longPath(dir, 4095 - 24 + 1);
  await fails(
    c,
    'file-open',
    { path: f, mode: 'w', atomic: true },
    36,
    /^open .*\/f+: file name too long for an atomic replace: the temporary file beside it would have a path of 4096 bytes, over the 4095 a path may have; without atomic the file is written in place$/,
  );
  fs.writeFileSync(f, 'old');
  await fails(c, 'file-open', { path: f, mode: 'w', atomic: true }, 36, /without atomic the file is written in place$/);
  const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
  await c.ok('file-write', { handle_id: h, bufb64: b64('in place'), eof: true });
  assert.is(fs.readFileSync(f, 'utf8'), 'in place');
  // One byte shorter fits: replaced at the close.
  const g = longPath(dir, 4095 - 24);
  fs.writeFileSync(g, 'old');
  const a = (await c.ok('file-open', { path: g, mode: 'w', atomic: true })) as number;
  await c.ok('file-write', { handle_id: a, bufb64: b64('replaced'), eof: true });
  assert.is(fs.readFileSync(g, 'utf8'), 'replaced');
  // A new file's name longer than NAME_MAX: refused at the open as a plain open refuses it, not at the rename.
  await fails(
    c,
    'file-open',
    { path: path.join(dir, 'n'.repeat(256)), mode: 'w', atomic: true },
    36,
    /^open .*: file name too long$/,
  );
  assert.equal(leftovers(agent, path.dirname(g)), []);
});

test(
  'atomic: a full filesystem fails the writes, then the close; the original stays',
  async ({ agent, c, dir }) => {
    await withTmpfs(dir, 'tiny', 'size=64k', async (mnt) => {
      const f = path.join(mnt, 'f');
      fs.writeFileSync(f, 'small original');
      const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
      const chunk = b64(crypto.randomBytes(16 * 1024));
      let failed = 0;
      for (let i = 0; i < 8; i++)
        if ((await c.call('file-write', { handle_id: h, bufb64: chunk })).error?.code === 28) failed++;
      assert.ok(failed > 0, 'the writes filled the filesystem');
      await fails(
        c,
        'file-close',
        { handle_id: h },
        28,
        /^.*\/f: not replaced: an earlier write failed \(write .*: no space left on device\); the file is as it was$/,
      );
      assert.is(fs.readFileSync(f, 'utf8'), 'small original');
      assert.equal(leftovers(agent, mnt), []);
    });
  },
  { needs: [root, command('mount')] },
);

/** DIR/f holding 'before', and an atomic upload to it with `data` written and the handle left open. */
async function uploadUnderway(agent: RunningAgent, dir: string, data: string | Buffer) {
  const f = path.join(dir, 'f');
  fs.writeFileSync(f, 'before');
  const c = await agent.connect();
  const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
  await c.ok('file-write', { handle_id: h, bufb64: b64(data) });
  return { c, f, h };
}

test('atomic: handles still open when the agent exits are discarded, not committed', () =>
  withOwnAgent('ember-ga-atomic-exit-', async (agent, dir) => {
    const { c, f } = await uploadUnderway(agent, dir, 'partial');
    const plain = (await c.ok('file-open', { path: path.join(dir, 'plain'), mode: 'w' })) as number;
    await c.ok('file-write', { handle_id: plain, bufb64: b64('kept') });
    assert.is(unnamed(agent.proc.pid!, dir).length, 1);
    assert.is(await agent.stop(), 0); // the host still connected: its going away would discard first
    c.close();
    assert.is(fs.readFileSync(f, 'utf8'), 'before');
    assert.equal(fs.readdirSync(dir).sort(), ['f', 'plain']);
    assert.is(fs.readFileSync(path.join(dir, 'plain'), 'utf8'), 'kept'); // a plain handle's data stays
  }));

test('atomic: when the host goes away its atomic uploads are discarded (their space freed); its plain handles are closed', () =>
  withOwnAgent('ember-ga-atomic-gone-', async (agent, dir) => {
    const { c, f, h } = await uploadUnderway(agent, dir, crypto.randomBytes(256 * 1024));
    const plain = (await c.ok('file-open', { path: path.join(dir, 'plain'), mode: 'w' })) as number;
    assert.is(unnamed(agent.proc.pid!, dir).length, 1);
    c.close();
    await waitFor(() => unnamed(agent.proc.pid!, dir).length === 0, 5_000, 'the unnamed file to be dropped');
    assert.is(fs.readFileSync(f, 'utf8'), 'before');
    assert.equal(fs.readdirSync(dir).sort(), ['f', 'plain']);
    // The next host: both handles are gone (0.7.1 kept the plain one open, and its fd, for ever).
    const c2 = await agent.connect();
    // Never an answer that passes for success: file-close of an unknown handle is true in 0.7.1.
    await fails(
      c2,
      'file-write',
      { handle_id: h, bufb64: b64('late') },
      -1,
      /^Handle \d+ was discarded when the host that opened it went away: .*\/f was not replaced/,
    );
    await fails(c2, 'file-close', { handle_id: h }, -1, /was discarded when the host that opened it went away/);
    assert.is(await c2.ok('file-close', { handle_id: h, discard: true }), true, 'a discard is what happened');
    await fails(
      c2,
      'file-write',
      { handle_id: plain, bufb64: b64('late'), eof: true },
      -1,
      /^Handle \d+ was closed when the host that opened it went away \(.*\/plain\); open it again$/,
    );
    const fds = fs.readdirSync(`/proc/${agent.proc.pid}/fd`).map((n) => {
      try {
        return fs.readlinkSync(`/proc/${agent.proc.pid}/fd/${n}`);
      } catch {
        return '';
      }
    });
    assert.not.ok(
      fds.some((t) => t.endsWith('/plain')),
      "the agent still holds the plain handle's fd",
    );
    // An upload whose last chunk was answered before the host left is committed, not discarded.
    const done = (await c2.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
    assert.is(await c2.ok('file-write', { handle_id: done, bufb64: b64('complete'), eof: true }), true);
    c2.close();
    const c3 = await agent.connect();
    assert.is(await c3.ok('get-file-md5sum', { path: f }), md5('complete'));
    assert.equal(leftovers(agent, dir), []);
    c3.close();
  }));

test('atomic: an agent killed outright (SIGKILL) mid-upload leaves the file as it was and nothing beside it', () =>
  withOwnAgent('ember-ga-atomic-kill-', async (agent, dir) => {
    const { c, f } = await uploadUnderway(agent, dir, crypto.randomBytes(64 * 1024));
    c.close();
    agent.proc.kill('SIGKILL');
    await agent.stop();
    assert.is(agent.proc.signalCode, 'SIGKILL');
    assert.is(fs.readFileSync(f, 'utf8'), 'before');
    assert.equal(fs.readdirSync(dir), ['f'], 'the unnamed file went with the process');
  }));

test(
  'atomic on a filesystem without O_TMPFILE (FUSE): a named temporary file, renamed at close, removed on discard and at exit',
  () =>
    withOwnAgent('ember-ga-atomic-fuse-', async (agent, dir) => {
      await withFuse(dir, 'fuse', async (mnt) => {
        const c = await agent.connect();
        const f = path.join(mnt, 'f.txt');
        fs.writeFileSync(f, 'old');
        const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
        await c.ok('file-write', { handle_id: h, bufb64: b64('new data') });
        const [temp] = temps(mnt);
        assert.match(temp ?? '', /^\.f\.txt\.[0-9a-f]{8}\.ember-ga-part$/);
        assert.is(fs.readFileSync(path.join(mnt, temp), 'utf8'), 'new data');
        assert.is(fs.readFileSync(f, 'utf8'), 'old');
        assert.is(await c.ok('file-close', { handle_id: h, md5: md5('new data') }), true);
        assert.is(fs.readFileSync(f, 'utf8'), 'new data');
        assert.equal(temps(mnt), []);

        const d = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
        await c.ok('file-write', { handle_id: d, bufb64: b64('dropped') });
        assert.is(temps(mnt).length, 1);
        assert.is(await c.ok('file-close', { handle_id: d, discard: true }), true);
        assert.equal(temps(mnt), []);

        const m = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
        await c.ok('file-write', { handle_id: m, bufb64: b64('corrupted') });
        await fails(c, 'file-close', { handle_id: m, md5: md5('what was sent') }, 74, /not replaced/);
        assert.equal(temps(mnt), []);
        assert.is(fs.readFileSync(f, 'utf8'), 'new data');

        const e = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
        await c.ok('file-write', { handle_id: e, bufb64: b64('at exit') });
        assert.is(temps(mnt).length, 1);
        c.close();
        assert.is(await agent.stop(), 0);
        assert.equal(temps(mnt), [], 'the agent removed its temporary file at exit');
        assert.is(fs.readFileSync(f, 'utf8'), 'new data');
      });
    }),
  {
    needs: [
      root,
      command('bindfs'),
      command('mount'),
      () => (fs.existsSync('/dev/fuse') ? undefined : 'needs /dev/fuse'),
    ],
  },
);

test(
  'atomic: a running executable is replaced without force (no ETXTBSY: its inode is not written)',
  async ({ c, dir }) => {
    const { exe, proc } = await runningExecutable(dir);
    try {
      await fails(c, 'file-open', { path: exe, mode: 'w' }, 26, /text file (is )?busy/);
      const h = (await c.ok('file-open', { path: exe, mode: 'w', atomic: true })) as number;
      await c.ok('file-write', { handle_id: h, bufb64: b64('#!/bin/sh\n'), eof: true });
      assert.is(fs.readFileSync(exe, 'utf8'), '#!/bin/sh\n');
      assert.is(fs.statSync(exe).mode & 0o7777, 0o755);
      assert.is(proc.exitCode, null); // still running its own copy
    } finally {
      proc.kill('SIGKILL');
    }
  },
  { needs: [command('sleep')] },
);

test('agent-info says atomic_write', async ({ c }) => {
  const info = (await c.ok('agent-info')) as { atomic_write?: unknown };
  assert.is(info.atomic_write, true);
});

test.run();
