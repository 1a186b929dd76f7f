// ember-ga-ctl end to end: every subcommand against a real agent (unix socket and pty; the
// network commands inside a test namespace, freeze on a loop-mounted image), the request each
// subcommand builds against a stub that records it, exit codes and messages, and the progress
// bar in a real terminal (tmux).
import * as assert from 'uvu/assert';
import { VERSION } from '../../lib/version';
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'child_process';
import { once } from 'events';
import * as fs from 'fs';
import * as path from 'path';
import {
  fdsOn,
  longPath,
  mountExt4Image,
  startAgent,
  startAgentWith,
  tmpDir,
  unnamed,
  withTmpfs,
  type RunningAgent,
} from '../helpers/agent';
import { CTL, ctl, md5Of, partFiles, randomFile, sessionKeeper, startPtyBridge, tmux } from '../helpers/client';
import { startFreezeGuard, type GuardResult } from '../helpers/freeze-guard';
import { command, root, sleep, suite, waitFor } from '../helpers/harness';
import { TestNetns } from '../helpers/netns';
import { startStub } from '../helpers/stub-agent';

interface Ctx {
  agent: RunningAgent;
  dir: string;
}
const test = suite<Ctx>('ember-ga-ctl', {} as Ctx);
const MiB = 1024 * 1024;

test.before(async (ctx) => {
  ctx.agent = await startAgent();
  ctx.dir = tmpDir();
});
test.after(async (ctx) => {
  await ctx.agent.stop();
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

test('ping, commands, info (human and --json), version', async ({ agent }) => {
  const s = ['-s', agent.socket];
  let r = await ctl([...s, 'ping']);
  assert.is(r.status, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\S*\n$/);
  assert.is(r.stderr, '');
  r = await ctl([...s, '--json', 'ping']);
  assert.is(JSON.parse(r.stdout), r.stdout.trim().slice(1, -1));
  r = await ctl([...s, 'commands']);
  assert.ok(r.stdout.split('\n').includes('file-open'));
  r = await ctl([...s, 'info']);
  assert.is(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /^agent: +ember-ga \S+ \(reads up to 4\.00 MiB, lines up to 16\.0 MiB, pipelined copies, atomic uploads, hashed downloads\)$/m,
  );
  assert.match(
    r.stdout,
    new RegExp(`^host: +${execFileSync('uname', ['-n'], { encoding: 'utf8' }).trim()} \\(Linux `, 'm'),
  );
  assert.match(r.stdout, /^memory: +\d/m);
  r = await ctl(['--json', 'sysinfo', '-s', agent.socket]); // global options after the subcommand too
  const j = JSON.parse(r.stdout);
  assert.is(j.agent.emberGa, true);
  assert.is(j.sysinfo.uname.sysname, 'Linux');
  r = await ctl(['--version']);
  assert.is(r.stdout.trim(), VERSION);
});

test('mkdir, chmod, chown, stat, ls, md5', async ({ agent, dir }) => {
  const s = ['-s', agent.socket];
  const d = path.join(dir, 'made', 'deep er');
  let r = await ctl([...s, 'mkdir', '-m', '750', d]);
  assert.is(r.status, 0, r.stderr);
  assert.is(fs.statSync(d).mode & 0o777, 0o750);
  fs.writeFileSync(path.join(d, 'f.txt'), 'hello\n');
  r = await ctl([...s, 'chmod', '0604', path.join(d, 'f.txt')]);
  assert.is(r.status, 0, r.stderr);
  assert.is(fs.statSync(path.join(d, 'f.txt')).mode & 0o777, 0o604);
  const uid = process.getuid!();
  const gid = process.getgid!();
  r = await ctl([...s, 'chown', `${uid}:${gid}`, path.join(d, 'f.txt')]);
  assert.is(r.status, 0, r.stderr);
  r = await ctl([...s, 'stat', path.join(d, 'f.txt')]);
  assert.match(r.stdout, /^ {2}File: f\.txt$/m);
  assert.match(r.stdout, /Type: regular file/);
  assert.match(r.stdout, /Size: 6 \(6 B\)/);
  assert.match(r.stdout, new RegExp(`Mode: 0604 \\(-rw----r--\\) +Uid: ${uid} +Gid: ${gid}`));
  r = await ctl([...s, '--json', 'stat', d]);
  assert.is(JSON.parse(r.stdout).isdir, true);
  r = await ctl([...s, 'ls', path.dirname(d)]);
  assert.match(r.stdout, /^MODE +LINKS +UID +GID +SIZE +MODIFIED +NAME\n/);
  assert.match(r.stdout, /^drwxr-x--- .* deep er\/$/m);
  r = await ctl([...s, '--json', 'ls', '-n', '1', d]);
  assert.equal(
    JSON.parse(r.stdout).map((e: { name: string }) => e.name),
    ['f.txt'],
  );
  r = await ctl([...s, 'md5', path.join(d, 'f.txt')]);
  assert.is(r.stdout, `${md5Of(path.join(d, 'f.txt'))}  ${path.join(d, 'f.txt')}\n`);
});

test('cp both ways, into directories, stdin and stdout; cat; nothing on stderr when piped', async ({ agent, dir }) => {
  const s = ['-s', agent.socket];
  const src = path.join(dir, 'payload.bin');
  const sum = randomFile(src, 3 * MiB + 17);
  const gdir = path.join(dir, 'guest-side');
  fs.mkdirSync(gdir);
  let r = await ctl([...s, 'cp', src, `guest:${gdir}/`]);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  assert.is(md5Of(path.join(gdir, 'payload.bin')), sum);
  r = await ctl([...s, 'cp', '--perm', '600', src, `guest:${gdir}`]); // an existing directory, no slash
  assert.is(fs.statSync(path.join(gdir, 'payload.bin')).mode & 0o777, 0o644); // existing file keeps its mode
  // Replaced (a new inode renamed into place) by default; --in-place writes the same inode.
  const ino = fs.statSync(path.join(gdir, 'payload.bin')).ino;
  r = await ctl([...s, '--json', 'cp', '--in-place', src, `guest:${gdir}/payload.bin`]);
  assert.is(JSON.parse(r.stdout).atomic, false);
  assert.is(fs.statSync(path.join(gdir, 'payload.bin')).ino, ino);
  r = await ctl([...s, '--json', 'cp', src, `guest:${gdir}/payload.bin`]);
  assert.is(JSON.parse(r.stdout).atomic, true);
  assert.is.not(fs.statSync(path.join(gdir, 'payload.bin')).ino, ino);
  assert.is(md5Of(path.join(gdir, 'payload.bin')), sum);
  const ldir = path.join(dir, 'host-side');
  fs.mkdirSync(ldir);
  r = await ctl([...s, 'cp', `guest:${gdir}/payload.bin`, ldir]);
  assert.is(r.status, 0, r.stderr);
  assert.is(md5Of(path.join(ldir, 'payload.bin')), sum);
  r = await ctl([...s, '--json', 'cp', `guest:${gdir}/payload.bin`, path.join(ldir, 'renamed')]);
  const res = JSON.parse(r.stdout);
  assert.equal([res.bytes, res.md5, res.verified, res.emberGa], [3 * MiB + 17, sum, true, true]);
  // stdin -> guest, guest -> stdout, cat
  const data = fs.readFileSync(src);
  r = await ctl([...s, 'cp', '--perm', '0640', '-', `guest:${gdir}/from-stdin`], { input: data });
  assert.is(r.status, 0, r.stderr);
  assert.is(md5Of(path.join(gdir, 'from-stdin')), sum);
  assert.is(fs.statSync(path.join(gdir, 'from-stdin')).mode & 0o777, 0o640);
  r = await ctl([...s, 'cp', `guest:${gdir}/from-stdin`, '-']);
  assert.ok(r.stdoutBuf.equals(data));
  r = await ctl([...s, 'cat', `${gdir}/from-stdin`]);
  assert.ok(r.stdoutBuf.equals(data));
  assert.is(r.stderr, '');
  // stdin into a directory has no name to use
  r = await ctl([...s, 'cp', '-', `guest:${gdir}/`], { input: 'x' });
  assert.is(r.status, 2);
  assert.match(r.stderr, /name the guest file/);
});

test('cp as cp(1) does: a replaced local file keeps its mode, links are written through, --json to stdout is the data alone', async ({
  agent,
  dir,
}) => {
  const s = ['-s', agent.socket];
  const src = path.join(dir, 'cp1-src');
  fs.writeFileSync(src, 'new data\n');
  // A download over a 0600 file (a key) leaves it 0600; over a 0755 script, executable.
  for (const mode of [0o600, 0o755]) {
    const dest = path.join(dir, `cp1-${mode.toString(8)}`);
    fs.writeFileSync(dest, 'old');
    fs.chmodSync(dest, mode);
    const r = await ctl([...s, 'cp', `guest:${src}`, dest]);
    assert.is(r.status, 0, r.stderr);
    assert.is(fs.readFileSync(dest, 'utf8'), 'new data\n');
    assert.is(fs.statSync(dest).mode & 0o777, mode);
  }
  // A local link to a file: the file it names gets the data, the link stays.
  const target = path.join(dir, 'cp1-target');
  const link = path.join(dir, 'cp1-link');
  fs.writeFileSync(target, 'orig');
  fs.symlinkSync(target, link);
  let r = await ctl([...s, 'cp', `guest:${src}`, link]);
  assert.is(r.status, 0, r.stderr);
  assert.ok(fs.lstatSync(link).isSymbolicLink());
  assert.is(fs.readFileSync(target, 'utf8'), 'new data\n');
  // A guest link to a directory is a directory to copy into.
  const gdir = path.join(dir, 'cp1-gdir');
  fs.mkdirSync(gdir);
  fs.symlinkSync(gdir, path.join(dir, 'cp1-gdir-link'));
  r = await ctl([...s, 'cp', src, `guest:${dir}/cp1-gdir-link`]);
  assert.is(r.status, 0, r.stderr);
  assert.is(fs.readFileSync(path.join(gdir, 'cp1-src'), 'utf8'), 'new data\n');
  // To stdout under --json: the file's bytes and nothing after them.
  r = await ctl([...s, '--json', 'cp', `guest:${src}`, '-']);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, 'new data\n');
  // A guest directory as the source is the guest's answer, not the host's.
  r = await ctl([...s, '--json', 'cp', `guest:${gdir}`, path.join(dir, 'cp1-nowhere')]);
  assert.is(r.status, 1);
  assert.is(JSON.parse(r.stderr).error.side, 'guest');
});

test('cp to a guest path too long for an atomic replace (ENAMETOOLONG) writes it in place, and warns', async ({
  agent,
  dir,
}) => {
  const src = path.join(dir, 'long-src');
  const sum = randomFile(src, MiB + 1);
  const f = longPath(path.join(dir, 'long'), 4090);
  let r = await ctl(['-s', agent.socket, '--json', 'cp', src, `guest:${f}`]);
  assert.is(r.status, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).atomic, false);
  assert.is(r.stderr, '');
  assert.is(md5Of(f), sum);
  r = await ctl(['-s', agent.socket, 'cp', src, `guest:${f}`]);
  assert.is(r.status, 0, r.stderr);
  assert.match(
    r.stderr,
    /^ember-ga-ctl: warning: guest:\/\S+ written in place, not atomically: open \/\S+: file name too long for an atomic replace: the temporary file beside it would have a path of \d+ bytes, over the 4095 a path may have\n$/,
  );
  // Where the open in place fails too (no such directory), nothing was written: no warning.
  r = await ctl(['-s', agent.socket, 'cp', src, `guest:${path.join(dir, 'no-such-dir', 'f')}`]);
  assert.is(r.status, 1);
  assert.not.match(r.stderr, /warning/);
  assert.match(r.stderr, /no such file or directory/);
});

test(
  'cp as an agent that is not root, over a root-owned file (EPERM): written in place, with one warning line; none for a FIFO',
  async ({ dir }) => {
    // The agent runs as nobody; the shared directory and the root-owned file are writable by all.
    const base = tmpDir();
    fs.chmodSync(base, 0o777);
    const shared = path.join(dir, 'shared-eperm');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o777);
    fs.chmodSync(dir, 0o755);
    const theirs = path.join(shared, 'theirs');
    fs.writeFileSync(theirs, 'old');
    fs.chmodSync(theirs, 0o666);
    const fifo = path.join(shared, 'fifo');
    execFileSync('mkfifo', ['-m', '666', fifo]);
    const src = path.join(dir, 'eperm-src');
    const sum = randomFile(src, 100_000);
    const socket = path.join(base, 'ga.sock');
    const nobody = await startAgentWith(['--listen', `unix:${socket}`], socket, base, [
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
    ]);
    let reader: ChildProcess | undefined;
    try {
      const ino = fs.statSync(theirs).ino;
      let r = await ctl(['-s', socket, 'cp', src, `guest:${theirs}`]);
      assert.is(r.status, 0, r.stderr);
      assert.is(r.stdout, '');
      assert.is(
        r.stderr,
        `ember-ga-ctl: warning: guest:${theirs} written in place, not atomically: open ${theirs}: cannot give the new file the owner of the old one (0:0): operation not permitted\n`,
      );
      assert.equal([md5Of(theirs), fs.statSync(theirs).ino, fs.statSync(theirs).uid], [sum, ino, 0]);
      // --json: the result says it (atomic: false), stderr stays empty.
      r = await ctl(['-s', socket, '--json', 'cp', src, `guest:${theirs}`]);
      assert.is(r.status, 0, r.stderr);
      assert.equal([JSON.parse(r.stdout).atomic, r.stderr], [false, '']);
      // A FIFO can only be written in place: no warning.
      reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
      const got: Buffer[] = [];
      reader.stdout!.on('data', (d: Buffer) => got.push(d));
      const read = once(reader, 'close');
      r = await ctl(['-s', socket, 'cp', '--no-verify', src, `guest:${fifo}`]);
      await read;
      assert.is(r.status, 0, r.stderr);
      assert.is(r.stderr, '');
      assert.is(Buffer.concat(got).length, 100_000);
    } finally {
      reader?.kill();
      await nobody.stop();
    }
  },
  { needs: [root, command('setpriv'), command('mkfifo')] },
);

/**
 * `run` with a socket in front of the agent that keeps the agent's host session across
 * ember-ga-ctl's runs: what a run leaves open stays open, so a test sees what it closed itself.
 */
async function keepingSession(agent: RunningAgent, dir: string, run: (socket: string) => Promise<void>): Promise<void> {
  const keeper = await sessionKeeper(agent.socket, path.join(dir, 'keeper.sock'));
  try {
    await run(keeper.path);
  } finally {
    await keeper.close();
  }
}

test(
  'cp --in-place into a full filesystem (ENOSPC): the agent holds nothing of the file after, and its space is free once deleted',
  async ({ agent, dir }) =>
    keepingSession(agent, dir, async (socket) => {
      const src = path.join(dir, 'enospc-src');
      randomFile(src, 3 * MiB);
      await withTmpfs(dir, 'full', 'size=1m', async (mnt) => {
        const f = path.join(mnt, 'f');
        const r = await ctl(['-s', socket, 'cp', '--in-place', '--chunk-size', '262144', src, `guest:${f}`]);
        assert.is(r.status, 1);
        assert.match(r.stderr, /^ember-ga-ctl: guest: write .*\/f: no space left on device\n$/);
        assert.equal(fdsOn(agent.proc.pid!, f), []);
        fs.rmSync(f);
        const st = fs.statfsSync(mnt);
        assert.is(st.bfree, st.blocks, 'the space of the deleted file is free');
      });
    }),
  { needs: [root, command('mount')] },
);

test('cat into a pipe whose reader goes away (| head -c 10): the handle is closed, then it dies of SIGPIPE as cat does, saying nothing', async ({
  agent,
  dir,
}) =>
  keepingSession(agent, dir, async (socket) => {
    const big = path.join(dir, 'big');
    randomFile(big, 64 * MiB);
    const head = path.join(dir, 'head');
    const script = '"$0" "$1" -s "$2" cat "$3" | head -c 10 > "$4"; echo "${PIPESTATUS[0]}"';
    const r = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile('bash', ['-c', script, process.execPath, CTL, socket, big, head], (e, stdout, stderr) =>
        e ? reject(e) : resolve({ stdout, stderr }),
      ),
    );
    assert.is(r.stdout, '141\n', 'died of SIGPIPE, as cat does');
    assert.is(r.stderr, '');
    assert.ok(fs.readFileSync(head).equals(fs.readFileSync(big).subarray(0, 10)));
    assert.equal(fdsOn(agent.proc.pid!, big), [], 'no handle left open on the agent');
  }));

test(
  "cp stopped by SIGINT, SIGTERM or SIGHUP closes its guest handle (an upload's data dropped), then dies of that signal",
  async ({ agent, dir }) =>
    keepingSession(agent, dir, async (socket) => {
      const pid = agent.proc.pid!;
      /** ember-ga-ctl cp SRC DST, stopped by `sig` once `ready` holds; its exit signal and stderr. */
      const stop = async (sig: NodeJS.Signals, args: string[], ready: () => boolean, input?: string) => {
        const p = spawn(process.execPath, [CTL, '-s', socket, 'cp', ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
        let stderr = '';
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = once(p, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
        if (input !== undefined) p.stdin.write(input); // and stdin stays open: the copy waits for more
        await waitFor(ready, 10_000, `the copy to get under way (${sig})`);
        await sleep(100);
        p.kill(sig);
        const [, signal] = await exited;
        p.stdin.destroy();
        return { signal, stderr };
      };
      // A download waiting for data: a read from a FIFO whose writer never writes.
      const fifo = path.join(dir, 'sig-fifo');
      execFileSync('mkfifo', [fifo]);
      const writer = fs.openSync(fifo, fs.constants.O_RDWR);
      try {
        for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
          const r = await stop(sig, [`guest:${fifo}`, path.join(dir, 'sig-dest')], () => fdsOn(pid, fifo).length > 0);
          assert.is(r.signal, sig);
          assert.match(r.stderr, /^ember-ga-ctl: host: copy guest:.*sig-fifo: aborted\n$/);
          assert.equal(fdsOn(pid, fifo), [], `${sig}: the handle was closed`);
        }
      } finally {
        fs.closeSync(writer);
      }
      assert.equal(partFiles(dir), []);
      // An upload waiting for more of stdin: its atomic handle discarded.
      const up = path.join(dir, 'sig-up');
      fs.writeFileSync(up, 'before');
      const r = await stop('SIGTERM', ['-', `guest:${up}`], () => unnamed(pid, dir).length > 0, 'part of the new data');
      assert.is(r.signal, 'SIGTERM');
      assert.equal(unnamed(pid, dir), [], 'the new data was dropped');
      assert.is(fs.readFileSync(up, 'utf8'), 'before');
    }),
  { needs: [command('mkfifo'), command('bash'), command('head')] },
);

test('cp guest:/dev/null and cat of a character device: empty, verified against the md5 of what the agent read', async ({
  agent,
  dir,
}) => {
  const x = path.join(dir, 'x');
  let r = await ctl(['-s', agent.socket, '--json', 'cp', 'guest:/dev/null', x]);
  assert.is(r.status, 0, r.stderr);
  assert.equal([JSON.parse(r.stdout).bytes, JSON.parse(r.stdout).verified], [0, true]);
  assert.is(fs.readFileSync(x).length, 0);
  r = await ctl(['-s', agent.socket, 'cat', '/dev/null']);
  assert.equal([r.status, r.stdout, r.stderr], [0, '', '']);
});

test('errors: the guest message on stderr and exit 1; usage errors exit 2; no partial file', async ({ agent, dir }) => {
  const s = ['-s', agent.socket];
  let r = await ctl([...s, 'stat', '/nonexistent/ember']);
  assert.is(r.status, 1);
  assert.is(r.stderr, 'ember-ga-ctl: guest: lstat /nonexistent/ember: no such file or directory\n');
  assert.is(r.stdout, '');
  r = await ctl([...s, 'cp', 'guest:/nonexistent/ember', path.join(dir, 'never')]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^ember-ga-ctl: guest: lstat \/nonexistent\/ember: no such file or directory\n$/);
  assert.not.ok(fs.existsSync(path.join(dir, 'never')));
  assert.equal(
    fs.readdirSync(dir).filter((n) => n.includes('ember-ga-part')),
    [],
  );
  r = await ctl([...s, 'cp', path.join(dir, 'no-such-local'), 'guest:/tmp/x']);
  assert.is(r.status, 1);
  assert.is(r.stderr, `ember-ga-ctl: host: stat ${path.join(dir, 'no-such-local')}: no such file or directory\n`);
  r = await ctl([...s, 'mkdir', '/proc/ember-cannot']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^ember-ga-ctl: guest: mkdir \/proc\/ember-cannot: /);
  for (const args of [
    ['ping'],
    [...s],
    [...s, 'bogus'],
    [...s, 'chmod', 'rwx', '/tmp'],
    [...s, 'chown', 'root', '/tmp'],
    [...s, 'cp', 'a', 'b'],
    [...s, 'cp', 'guest:rel', 'b'],
    [...s, 'raw', '{nope'],
    [...s, 'raw', '[1]'],
    [...s, 'link', 'sideways', 'eth0'],
    [...s, 'route', 'add', 'via', '192.0.2.1'],
    [...s, 'route', 'add', '198.51.100.0/24', 'scope', 'galaxy'],
    [...s, '-w', '0', 'ping'],
  ]) {
    r = await ctl(args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /ember-ga-ctl: /, args.join(' '));
  }
  r = await ctl(['-s', path.join(dir, 'no.sock'), 'ping']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^ember-ga-ctl: host: cannot connect to unix:.*no\.sock: no such file or directory\n$/);
  r = await ctl(['ping'], { env: { EMBER_GA_SOCKET: agent.socket } });
  assert.is(r.status, 0, r.stderr);
  r = await ctl(['-s', agent.socket, 'ping'], { env: { EMBER_GA_DEVICE: '/nonexistent/dev' } }); // the command line wins
  assert.is(r.status, 0, r.stderr);
  r = await ctl(['-s', agent.socket, '-d', '/dev/null', 'ping']);
  assert.is(r.status, 2);
});

test('numeric flags: 0, negative, fractional or past the timer limit is a usage error on one line', async ({
  agent,
  dir,
}) => {
  const s = ['-s', agent.socket];
  const src = path.join(dir, 'numeric-src');
  fs.writeFileSync(src, 'x');
  const cases: [string[], string][] = [
    [
      ['cp', '--chunk-size', '0', src, 'guest:/tmp/x'],
      "option '--chunk-size <bytes>' argument '0' is invalid. expected a whole number of bytes >= 1",
    ],
    [
      ['cp', '--chunk-size', '-1', src, 'guest:/tmp/x'],
      "option '--chunk-size <bytes>' argument '-1' is invalid. expected a whole number of bytes >= 1",
    ],
    [
      ['cp', '--chunk-size', '1.5', src, 'guest:/tmp/x'],
      "option '--chunk-size <bytes>' argument '1.5' is invalid. expected a whole number of bytes >= 1",
    ],
    [
      ['-w', '0', 'ping'],
      "option '-w, --wait <seconds>' argument '0' is invalid. expected a number of seconds > 0, at most 2147483",
    ],
    [
      ['-w', '3000000', 'ping'],
      "option '-w, --wait <seconds>' argument '3000000' is invalid. expected a number of seconds > 0, at most 2147483",
    ],
    [
      ['freeze', '--timeout', '1e12'],
      "option '--timeout <seconds>' argument '1e12' is invalid. expected a number of seconds from 0 (never) to 2147483",
    ],
    [['ls', '-n', '-1', '/'], "option '-n, --limit <n>' argument '-1' is invalid. expected a whole number >= 0"],
  ];
  for (const [args, msg] of cases) {
    const r = await ctl([...s, ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.is(r.stderr, `ember-ga-ctl: ${msg}\n`);
  }
  // A wrong command line (not a bad value) still gets the hint.
  const r = await ctl([...s, 'bogus']);
  assert.is(r.stderr, "ember-ga-ctl: unknown command 'bogus'\n(ember-ga-ctl --help lists the commands)\n");
  assert.is((await ctl([...s, 'cp', '--chunk-size', '1', src, `guest:${dir}/numeric-dst`])).status, 0);
  assert.is(fs.readFileSync(path.join(dir, 'numeric-dst'), 'utf8'), 'x');
});

test('raw: any request, its answer as JSON; a guest error exits 1', async ({ agent, dir }) => {
  const empty = path.join(dir, 'empty');
  fs.writeFileSync(empty, '');
  let r = await ctl([
    '-s',
    agent.socket,
    'raw',
    JSON.stringify({ execute: 'get-file-md5sum', arguments: { path: empty } }),
  ]);
  assert.is(r.stdout, '"d41d8cd98f00b204e9800998ecf8427e"\n');
  r = await ctl(['-s', agent.socket, 'raw', '{"execute":"file-read","arguments":{"handle_id":"x"}}']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /handle_id/);
});

test(
  '--device: a pty standing in for QEMU chardev pty',
  async ({ agent, dir }) => {
    const bridge = await startPtyBridge(dir, agent.socket, 'ctl-pty');
    try {
      let r = await ctl(['-d', bridge.device, 'ping']);
      assert.is(r.status, 0, r.stderr);
      const src = path.join(dir, 'pty-src');
      const sum = randomFile(src, MiB + 3);
      // The agent serves one host connection at a time: one bridge, each ctl run reopens the pty.
      r = await ctl(['-d', bridge.device, 'cp', src, `guest:${dir}/pty-dst`]);
      assert.is(r.status, 0, r.stderr);
      assert.is(md5Of(path.join(dir, 'pty-dst')), sum);
    } finally {
      await bridge.stop();
    }
  },
  { needs: [command('socat')] },
);

test(
  'freeze, frozen, thaw on a loop-mounted image (fixture mount table, freeze-guard watching)',
  async ({ dir }) => {
    const guard = await startFreezeGuard({ report: path.join(dir, 'guard.json'), maxSeconds: 120 });
    const mnt = path.join(dir, 'mnt');
    mountExt4Image(mnt);
    const table = path.join(dir, 'mounts');
    fs.writeFileSync(table, ''); // the default selection is empty: only what is named gets frozen
    const guardTimer = setTimeout(() => spawn('fsfreeze', ['--unfreeze', mnt], { stdio: 'ignore' }), 20_000);
    let agent: RunningAgent | undefined;
    let guarded: GuardResult;
    try {
      agent = await startAgent(['--mounts-file', table]);
      const s = ['-s', agent.socket];
      let r = await ctl([...s, 'freeze', '--timeout', '30', mnt]);
      assert.is(r.status, 0, r.stderr);
      assert.is(r.stdout, 'frozen\n');
      r = await ctl([...s, 'frozen']);
      assert.is(r.stdout, 'frozen\n');
      r = await ctl([...s, 'ls', '/']);
      assert.is(r.status, 1);
      assert.match(r.stderr, /All filesystems are frozen/);
      r = await ctl([...s, 'thaw']);
      assert.is(r.stdout, 'thawed\n');
      r = await ctl([...s, '--json', 'frozen']);
      assert.is(r.stdout, 'false\n');
      r = await ctl([...s, 'freeze', '/nonexistent/ember']);
      assert.is(r.status, 1);
      assert.match(r.stderr, /^ember-ga-ctl: .*\/nonexistent\/ember/);
    } finally {
      clearTimeout(guardTimer);
      spawnSync('fsfreeze', ['--unfreeze', mnt], { stdio: 'ignore' }); // EINVAL when not frozen: fine
      await agent?.stop();
      guarded = await guard.stop();
      execFileSync('umount', [mnt]);
    }
    const { code, report } = guarded;
    assert.equal(report.thawed, [], 'freeze-guard never had to thaw this machine');
    assert.is(code, 0);
  },
  { needs: [root, command('mkfs.ext4'), command('fsfreeze')], timeout: 40_000 },
);

test(
  'ifaces, addr, link, routes, route inside a test namespace, checked with ip -j',
  async () => {
    const ns = TestNetns.create();
    let agent: RunningAgent | undefined;
    try {
      agent = await ns.startAgent();
      const s = ['-s', agent.socket];
      let r = await ctl([...s, 'ifaces']);
      assert.match(r.stdout, /^INDEX +NAME +FLAGS +HWADDR +ADDRESSES\n/);
      assert.match(r.stdout, /^ +1 +lo +loopback +- +-$/m); // a new namespace's lo: down, no addresses
      assert.match(r.stdout, /^ +\d+ +a +broadcast\|multicast +([0-9a-f]{2}:){5}[0-9a-f]{2} +-$/m);
      r = await ctl([...s, 'addr', 'add', '192.0.2.10/24', 'dev', 'a']);
      assert.is(r.status, 0, r.stderr);
      r = await ctl([...s, 'addr', 'add', '2001:db8::10/64', 'a']);
      assert.is(r.status, 0, r.stderr);
      r = await ctl([...s, 'link', 'up', 'a']);
      assert.is(r.status, 0, r.stderr);
      ns.ip('link', 'set', 'dev', 'b', 'up');
      await ns.settle();
      const a = ns.json<{ flags: string[]; addr_info: { local: string }[] }[]>('address', 'show', 'dev', 'a')[0];
      assert.ok(a.flags.includes('UP'));
      assert.ok(a.addr_info.some((x) => x.local === '192.0.2.10'));
      r = await ctl([...s, '--json', 'ifaces']);
      assert.ok(
        JSON.parse(r.stdout)
          .find((i: { name: string }) => i.name === 'a')
          .ips.includes('192.0.2.10/24'),
      );
      r = await ctl([...s, 'route', 'add', '198.51.100.0/24', 'via', '192.0.2.1', 'dev', 'a']);
      assert.is(r.status, 0, r.stderr);
      r = await ctl([...s, 'route', 'add', '203.0.113.0/24', 'dev', 'a', 'src', '192.0.2.10', 'scope', 'link']);
      assert.is(r.status, 0, r.stderr);
      r = await ctl([...s, 'route', 'add', 'default', 'via', '192.0.2.1']);
      assert.is(r.status, 0, r.stderr);
      const routes = ns.json<{ dst: string; gateway?: string; prefsrc?: string; scope?: string }[]>(
        '-4',
        'route',
        'show',
      );
      assert.ok(routes.some((x) => x.dst === '198.51.100.0/24' && x.gateway === '192.0.2.1'));
      assert.ok(routes.some((x) => x.dst === '203.0.113.0/24' && x.prefsrc === '192.0.2.10' && x.scope === 'link'));
      assert.ok(routes.some((x) => x.dst === 'default' && x.gateway === '192.0.2.1'));
      r = await ctl([...s, 'routes', '-4']);
      assert.match(r.stdout, /^DESTINATION +GATEWAY +DEV +SRC +SCOPE\n/);
      assert.match(r.stdout, /^default +192\.0\.2\.1 +a +- +global$/m);
      assert.match(r.stdout, /^198\.51\.100\.0\/24 +192\.0\.2\.1 +a +- +global$/m);
      assert.match(r.stdout, /^203\.0\.113\.0\/24 +- +a +192\.0\.2\.10 +link$/m);
      assert.match(r.stdout, /^192\.0\.2\.0\/24 +- +a +192\.0\.2\.10 +link$/m);
      r = await ctl([...s, 'routes', '-6']);
      assert.match(r.stdout, /^2001:db8::\/64 +- +a +- +global$/m);
      r = await ctl([...s, 'route', 'del', '198.51.100.0/24', 'via', '192.0.2.1', 'dev', 'a']);
      assert.is(r.status, 0, r.stderr);
      assert.not.ok(ns.json<{ dst: string }[]>('-4', 'route', 'show').some((x) => x.dst === '198.51.100.0/24'));
      r = await ctl([...s, 'route', 'del', '198.51.100.0/24', 'via', '192.0.2.1', 'dev', 'a']);
      assert.is(r.status, 1);
      assert.match(r.stderr, /^ember-ga-ctl: .+/);
      r = await ctl([...s, 'addr', 'del', '192.0.2.10/24', 'a']);
      assert.is(r.status, 0, r.stderr);
      r = await ctl([...s, 'link', 'down', 'a']);
      assert.is(r.status, 0, r.stderr);
      assert.not.ok(ns.json<{ flags: string[] }[]>('link', 'show', 'dev', 'a')[0].flags.includes('UP'));
      r = await ctl([...s, 'addr', 'add', '192.0.2.11/24', 'dev', 'ember-nope0']);
      assert.is(r.status, 1);
      assert.match(r.stderr, /ember-nope0/);
      r = await ctl([...s, 'link', 'up', 'ember-nope0']);
      assert.is(r.status, 1);
      assert.match(r.stderr, /ember-nope0/);
    } finally {
      await agent?.stop();
      ns.destroy();
    }
  },
  { needs: [root, command('ip')], timeout: 40_000 },
);

test('the request each subcommand sends (stub agent recording them)', async () => {
  const dir = tmpDir();
  const stub = await startStub(path.join(dir, 's.sock'), {
    answers: {
      'fs-freeze': true,
      'fs-unfreeze': true,
      'get-freeze-status': false,
      'ipaddr-add': true,
      'ipaddr-del': true,
      'net-iface-up': true,
      'net-iface-down': true,
      'route-add': true,
      'route-del': true,
      'file-chmod': true,
      'file-chown': true,
      'directory-create': true,
      'agent-shutdown': true,
      'get-route-list': [
        { ifname: 'eth0', scope: 0, dst: { ip: '', mask: '' }, src: '', gateway: '2001:db8::1' },
        {
          ifname: 'eth0',
          scope: 253,
          dst: { ip: '2001:db8:1::', mask: 'ffff:ffff:ffff:ffff::' },
          src: '',
          gateway: '',
        },
      ],
    },
  });
  const s = ['-s', stub.path];
  const cases: [string[], string, Record<string, unknown> | undefined][] = [
    [['freeze'], 'fs-freeze', undefined],
    [['freeze', '--timeout', '90', '/a', '/b c'], 'fs-freeze', { mountpoints: ['/a', '/b c'], timeout: 90 }],
    [['thaw'], 'fs-unfreeze', undefined],
    [['frozen'], 'get-freeze-status', undefined],
    [['addr', 'add', '192.0.2.1/24', 'eth0'], 'ipaddr-add', { ip: '192.0.2.1/24', ifname: 'eth0' }],
    [['addr', 'del', '2001:db8::1/64', 'dev', 'eth0'], 'ipaddr-del', { ip: '2001:db8::1/64', ifname: 'eth0' }],
    [['link', 'up', 'eth1'], 'net-iface-up', { ifname: 'eth1' }],
    [['link', 'down', 'eth1'], 'net-iface-down', { ifname: 'eth1' }],
    [['routes'], 'get-route-list', { family: 0 }],
    [['routes', '-6'], 'get-route-list', { family: 10 }],
    [
      ['route', 'add', '198.51.100.0/24', 'via', '192.0.2.1', 'dev', 'eth0', 'src', '192.0.2.5', 'scope', '0'],
      'route-add',
      { dst: '198.51.100.0/24', gateway: '192.0.2.1', ifname: 'eth0', src: '192.0.2.5', scope: 0 },
    ],
    [['route', 'del', 'default', 'via', '2001:db8::1'], 'route-del', { dst: '::/0', gateway: '2001:db8::1' }],
    [
      ['route', 'add', '203.0.113.0/24', 'dev', 'eth0', 'scope', 'link'],
      'route-add',
      { dst: '203.0.113.0/24', ifname: 'eth0', scope: 253 },
    ],
    [['chmod', '4755', '/x'], 'file-chmod', { path: '/x', perm: 0o4755 }],
    [['chown', '1000', '/x'], 'file-chown', { path: '/x', uid: 1000, gid: 1000 }],
    [['mkdir', '/x/y'], 'directory-create', { path: '/x/y' }],
    [['shutdown'], 'agent-shutdown', undefined],
  ];
  try {
    for (const [args, execute, expected] of cases) {
      const before = stub.requests.length;
      const r = await ctl([...s, ...args]);
      assert.is(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      const req = stub.requests.slice(before).find((q) => q.execute !== 'agent-info');
      assert.ok(req, args.join(' '));
      assert.is(req!.execute, execute, args.join(' '));
      assert.equal(req!.arguments, expected ?? {}, args.join(' '));
    }
    const r = await ctl([...s, 'routes']);
    assert.is(
      r.stdout,
      'DESTINATION      GATEWAY      DEV   SRC  SCOPE\ndefault          2001:db8::1  eth0  -    global\n2001:db8:1::/64  -            eth0  -    link\n',
    );
  } finally {
    await stub.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('-w bounds the end of a copy too: an upload whose file-close never comes, a download whose get-file-md5sum never comes', async () => {
  const dir = tmpDir();
  // An ember-ga with atomic_write ends an upload with file-close (md5, fsync); one without
  // read_md5 checks a download with get-file-md5sum. Neither answer comes.
  const stub = await startStub(path.join(dir, 's.sock'), {
    answers: {
      'agent-info': {
        name: 'ember-ga',
        version: '0.1.0-stub',
        max_line_bytes: 16 << 20,
        max_read_size: 4 << 20,
        atomic_write: true,
      },
    },
    silent: ['file-close', 'get-file-md5sum'],
  });
  try {
    const src = path.join(dir, 'src');
    randomFile(src, 100_000);
    let started = Date.now();
    // -w 1: 1 s, and 5 ms for the 100,000 bytes the agent would read back.
    let r = await ctl(['-s', stub.path, 'cp', '-w', '1', src, `guest:${dir}/up`], { timeout: 15_000 });
    const upload = Date.now() - started;
    assert.is(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /^ember-ga-ctl: host: copy to guest:\S+\/up: file-close: no answer from the agent within 1005 ms; the guest file is either unchanged or completely replaced/,
    );
    assert.ok(upload < 5_000, `the upload failed after ${upload} ms`);
    assert.ok(stub.requests.some((q) => q.execute === 'file-close'));
    started = Date.now();
    r = await ctl(['--json', '-w', '1', '-s', stub.path, 'cp', `guest:${src}`, path.join(dir, 'down')], {
      timeout: 15_000,
    });
    const download = Date.now() - started;
    assert.is(r.status, 1, r.stderr);
    assert.equal(JSON.parse(r.stderr).error, {
      code: 'ETIMEDOUT',
      message: 'get-file-md5sum: no answer from the agent within 1005 ms',
      side: 'host',
    });
    assert.ok(download < 5_000, `the download failed after ${download} ms`);
    assert.not.ok(fs.existsSync(path.join(dir, 'down')));
  } finally {
    await stub.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'cp in a real terminal (tmux) draws the progress bar with rate and ETA',
  async ({ agent, dir }) => {
    const src = path.join(dir, 'tty-src');
    const sum = randomFile(src, 48 * MiB);
    const dst = path.join(dir, 'tty-dst');
    const session = `ember-ctl-${process.pid}`;
    const cmd = `${process.execPath} ${CTL} -s ${agent.socket} cp --chunk-size 262144 guest:${src} ${dst}; echo EXIT=$?; sleep 30`;
    const started = tmux('new-session', '-d', '-s', session, '-x', '150', '-y', '10', cmd);
    assert.is(started.status, 0, started.stderr);
    const frames: string[] = [];
    try {
      const screen = (await waitFor<string | undefined>(
        () => {
          const p = tmux('capture-pane', '-p', '-t', session).stdout;
          frames.push(p);
          return /EXIT=\d+/.test(p) ? p : undefined;
        },
        30_000,
        'ember-ga-ctl cp to finish in tmux',
        50,
      )) as string;
      assert.match(screen, /EXIT=0/);
      // The bar, its percentage, sizes, rate and ETA, then the summary line.
      assert.match(screen, /tty-src \[=+\] 100% 48\.0 MiB\/48\.0 MiB [\d.]+ [KMG]iB\/s ETA \S+/);
      assert.match(screen, /tty-src: 48\.0 MiB in [\d.]+ s \([\d.]+ [KMG]iB\/s\), md5 verified/);
      assert.is(md5Of(dst), sum);
    } finally {
      tmux('kill-session', '-t', session);
    }
  },
  { needs: [command('tmux')] },
);

test.run();
