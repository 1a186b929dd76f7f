// ember-ga-ctl as a command line among others: the same version flag and socket syntax as the
// agent, JSON errors under --json, times that say their zone, errors that say which side failed
// and name the user's path, downloads that leave nothing when interrupted (with the addon's
// unnamed files, and without the addon), quiet broken pipes, and a hint when another host holds
// the agent's one connection.
import * as assert from 'uvu/assert';
import { execFile, spawn, spawnSync, type ChildProcess } from 'child_process';
import { once } from 'events';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { VERSION } from '../../lib/version';
import { CLI, REPO, fdsOn, startAgent, tmpDir, unnamed, withTmpfs, type RunningAgent } from '../helpers/agent';
import { CTL, ctl, md5Of, randomFile } from '../helpers/client';
import { command, root, suite, waitFor } from '../helpers/harness';
import { startStub } from '../helpers/stub-agent';
import { unixListening } from '../helpers/unix-socket';

interface Ctx {
  agent: RunningAgent;
  dir: string;
}
const test = suite<Ctx>('ember-ga-ctl command line', {} as Ctx);
const MiB = 1024 * 1024;

test.before(async (ctx) => {
  ctx.agent = await startAgent();
  ctx.dir = tmpDir();
});
test.after(async (ctx) => {
  await ctx.agent.stop();
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** The one line of JSON an error under --json is, parsed. */
function jsonError(stderr: string): { code: string; message: string; side: string; class?: string } {
  const lines = stderr.split('\n');
  assert.equal(lines.length, 2, `one line on stderr, got ${JSON.stringify(stderr)}`);
  const e = JSON.parse(lines[0]) as { error: { code: string; message: string; side: string } };
  assert.equal(Object.keys(e), ['error']);
  return e.error;
}

test('-v and --version: the same on ember-ga and ember-ga-ctl', async () => {
  for (const flag of ['-v', '--version']) {
    const agent = spawnSync(process.execPath, [CLI, flag], { encoding: 'utf8' });
    assert.equal([agent.status, agent.stdout], [0, `${VERSION}\n`], `ember-ga ${flag}`);
    const r = await ctl([flag]);
    assert.equal([r.status, r.stdout, r.stderr], [0, `${VERSION}\n`, ''], `ember-ga-ctl ${flag}`);
  }
});

test('--listen and -s take unix:PATH, as the agent does, and a plain PATH', async ({ agent, dir }) => {
  for (const [i, spelled] of [(p: string) => `unix:${p}`, (p: string) => p].entries()) {
    const sock = path.join(dir, `listen-${i}.sock`);
    const run = ctl(['--listen', spelled(sock), 'ping']);
    // QEMU's part (chardev socket, server=off): connect to the listener and carry the bytes to the agent.
    await waitFor(() => unixListening(sock), 5_000, 'ember-ga-ctl to listen'); // listening, not just bound
    const qemu = net.createConnection(sock);
    const guest = net.createConnection(agent.socket);
    qemu.pipe(guest).pipe(qemu);
    qemu.on('error', () => {});
    guest.on('error', () => {});
    const r = await run;
    qemu.destroy();
    guest.destroy();
    assert.equal([r.status, r.stdout, r.stderr], [0, `${VERSION}\n`, ''], spelled(sock));
    assert.not.ok(fs.existsSync(sock), 'the listening socket is removed');
  }
  const r = await ctl(['-s', `unix:${agent.socket}`, 'ping']);
  assert.equal([r.status, r.stdout], [0, `${VERSION}\n`]);
});

test('-d refuses what is not a pty or character device before opening it: a regular file is never written', async ({
  dir,
}) => {
  const victim = path.join(dir, 'victim.txt');
  fs.writeFileSync(victim, 'precious data\n');
  fs.mkdirSync(path.join(dir, 'a-dir'), { recursive: true });
  for (const [target, kind] of [
    [victim, 'a regular file'],
    [path.join(dir, 'a-dir'), 'a directory'],
  ]) {
    const r = await ctl(['-d', target, '-w', '1', 'ping']);
    assert.equal(
      [r.status, r.stdout, r.stderr],
      [2, '', `ember-ga-ctl: --device ${target}: ${kind}, not a pty or character device\n`],
    );
  }
  const r = await ctl(['-w', '1', 'ping'], { env: { EMBER_GA_DEVICE: victim } });
  assert.is(r.status, 2);
  assert.is(fs.readFileSync(victim, 'utf8'), 'precious data\n');
  // A missing one: the connection's own error.
  const missing = await ctl(['-d', path.join(dir, 'no-such-pty'), 'ping']);
  assert.equal(
    [missing.status, missing.stderr],
    [1, `ember-ga-ctl: host: cannot connect to ${path.join(dir, 'no-such-pty')}: no such file or directory\n`],
  );
});

test('--json: errors are one JSON line on stderr, {error: {code, message, side}}; stdout stays empty', async ({
  agent,
  dir,
}) => {
  const s = ['-s', agent.socket, '--json'];
  // The agent's error answer.
  let r = await ctl([...s, 'stat', '/nonexistent/ember']);
  assert.equal([r.status, r.stdout], [1, '']);
  assert.equal(jsonError(r.stderr), {
    code: 'ENOENT',
    message: 'lstat /nonexistent/ember: no such file or directory',
    side: 'guest',
  });
  r = await ctl([...s, 'raw', '{"execute":"no-such-command"}']);
  assert.equal(jsonError(r.stderr), { code: 'EGUEST', message: 'Unknown command: no-such-command', side: 'guest' });
  // Failures here: the connection, a local file.
  r = await ctl(['--json', '-s', path.join(dir, 'none.sock'), 'ping']);
  assert.is(r.status, 1);
  const e = jsonError(r.stderr);
  assert.equal([e.code, e.side], ['ENOENT', 'host']);
  assert.match(e.message, /^cannot connect to unix:.*none\.sock: no such file or directory$/);
  r = await ctl([...s, 'cp', path.join(dir, 'no-such-local'), `guest:${dir}/x`]);
  assert.equal(jsonError(r.stderr), {
    code: 'ENOENT',
    message: `stat ${path.join(dir, 'no-such-local')}: no such file or directory`,
    side: 'host',
  });
  // Usage errors, commander's own included: exit 2, JSON only (no help text around it).
  for (const [args, message] of [
    [['bogus'], "unknown command 'bogus'"],
    [['-w', '0', 'ping'], /^option '-w, --wait <seconds>' argument '0' is invalid\./],
    [['link', 'sideways', 'eth0'], 'link takes up or down, got "sideways"'],
    [[], /^which command\?/],
  ] as [string[], string | RegExp][]) {
    r = await ctl([...s, ...args]);
    assert.is(r.status, 2, args.join(' '));
    assert.is(r.stdout, '', args.join(' '));
    const u = jsonError(r.stderr);
    assert.equal([u.code, u.side], ['EUSAGE', 'host'], args.join(' '));
    if (typeof message === 'string') assert.is(u.message, message);
    else assert.match(u.message, message);
  }
  // Without --json: one line, the side first.
  r = await ctl(['-s', agent.socket, 'stat', '/nonexistent/ember']);
  assert.is(r.stderr, 'ember-ga-ctl: guest: lstat /nonexistent/ember: no such file or directory\n');
  // A change prints {} under --json (one JSON value per run).
  r = await ctl([...s, 'mkdir', path.join(dir, 'made')]);
  assert.equal([r.status, r.stdout], [0, '{}\n']);
});

test('what the user typed is printed as typed: errors naming it, and md5 lines md5sum -c reads back', async ({
  agent,
  dir,
}) => {
  const s = ['-s', agent.socket];
  let r = await ctl([...s, 'stat', 'rel"x']);
  assert.is(r.status, 2);
  assert.match(r.stderr, /"rel\\"x"/); // JSON.stringify's one backslash, not escaped again
  assert.not.match(r.stderr, /\\\\/);
  const f = path.join(dir, 'back\\slash');
  randomFile(f, 1000);
  r = await ctl([...s, 'md5', f]);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, `\\${md5Of(f)}  ${f.replace(/\\/g, '\\\\')}\n`);
  const check = spawnSync('md5sum', ['-c'], { input: r.stdout, encoding: 'utf8' });
  assert.is(check.status, 0, check.stdout + check.stderr);
});

test('ls and stat print local times with their offset from UTC (TZ decides)', async ({ agent, dir }) => {
  const d = path.join(dir, 'times');
  fs.mkdirSync(d);
  const f = path.join(d, 'f');
  fs.writeFileSync(f, 'x');
  fs.utimesSync(f, new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)));
  const cases: [string, string][] = [
    ['Asia/Kolkata', '2026-01-02 08:34:05'],
    ['America/Los_Angeles', '2026-01-01 19:04:05'],
    ['UTC', '2026-01-02 03:04:05'],
  ];
  for (const [tz, local] of cases) {
    const offset = { 'Asia/Kolkata': '+0530', 'America/Los_Angeles': '-0800', UTC: '+0000' }[tz];
    let r = await ctl(['-s', agent.socket, 'ls', d], { env: { TZ: tz } });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^-\\S+ .* ${local} \\${offset}  f$`, 'm'), `${tz}: ${r.stdout}${r.stderr}`);
    r = await ctl(['-s', agent.socket, 'stat', f], { env: { TZ: tz } });
    assert.match(r.stdout, new RegExp(`^Modify: ${local}\\.6\\d{8} \\${offset}$`, 'm'), tz); // utimes takes a float
  }
});

test('guest strings reach the terminal escaped as ls -b does: no split rows, no terminal escapes; --json as is', async ({
  agent,
  dir,
}) => {
  // eslint-disable-next-line no-control-regex
  const control = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;
  const d = path.join(dir, 'hostile');
  fs.mkdirSync(d);
  const names = ['two\nrows', 'red\x1b[31m', 'back\\slash', 'tab\there', 'c1\u009b2J'];
  for (const n of names) fs.writeFileSync(path.join(d, n), '');
  const s = ['-s', agent.socket];
  let r = await ctl([...s, 'ls', d]);
  assert.is(r.status, 0, r.stderr);
  const shown = r.stdout
    .split('\n')
    .slice(1, -1)
    .map((l) => l.split('  ').pop());
  assert.equal(shown, ['back\\\\slash', 'c1\\302\\2332J', 'red\\033[31m', 'tab\\there', 'two\\nrows']);
  assert.not.match(r.stdout, control);
  r = await ctl([...s, '--json', 'ls', d]);
  assert.equal(
    JSON.parse(r.stdout)
      .map((e: { name: string }) => e.name)
      .sort(),
    [...names].sort(),
  );
  r = await ctl([...s, 'stat', path.join(d, 'red\x1b[31m')]);
  assert.match(r.stdout, /^ {2}File: .*red\\033\[31m\n/);
  // The agent's error message names the path: one line, escaped.
  r = await ctl([...s, 'stat', path.join(d, 'gone\n\x1b[2J')]);
  assert.is(r.stderr, `ember-ga-ctl: guest: lstat ${d}/gone\\n\\033[2J: no such file or directory\n`);
  // What a hostile agent says of itself.
  const stub = await startStub(path.join(dir, 'hostile.sock'), {
    reference: true,
    answers: {
      ping: '0.7.1\x1b]0;pwned\x07',
      'get-commands': ['ping', 'evil\x1b[2J'],
      'get-file-md5sum': 'd41d8cd98f00b204e9800998ecf8427e\x1b[31m',
      sysinfo: {
        uname: {
          sysname: 'Linux',
          nodename: 'vm\r\x1b[Khost',
          release: '6',
          version: '',
          machine: 'x86_64',
          domain: '',
        },
        long_bit: 64,
        uptime: 1,
        loadavg: { '1m': 0, '5m': 0, '15m': 0 },
        ram: { total: 1, free: 1, buffer: 0 },
        swap: { total: 0, free: 0 },
        users: [{ name: 'root\x1b[8m', device: 'pts/0', host: '', login_time: 0 }],
        disks: [],
      },
    },
  });
  try {
    const h = ['-s', stub.path];
    const runs = await Promise.all([
      ctl([...h, 'ping']),
      ctl([...h, 'commands']),
      ctl([...h, 'md5', '/x']),
      ctl([...h, 'info']),
    ]);
    for (const run of runs) {
      assert.is(run.status, 0, run.stderr);
      assert.not.match(run.stdout, control, run.stdout);
    }
    assert.is(runs[0].stdout, '0.7.1\\033]0;pwned\\a\n');
    assert.is(runs[1].stdout, 'ping\nevil\\033[2J\n');
    assert.match(runs[3].stdout, /^host: +vm\\r\\033\[Khost \(/m);
    assert.match(runs[3].stdout, /^root\\033\[8m +pts\/0/m);
  } finally {
    await stub.close();
  }
});

test('guest paths are absolute for every subcommand, as for cp; guest:PATH is taken where only a guest path goes', async ({
  agent,
  dir,
}) => {
  const s = ['-s', agent.socket];
  for (const args of [
    ['ls', 'rel'],
    ['ls', '.'],
    ['stat', './x'],
    ['md5', 'x'],
    ['cat', 'x'],
    ['cat', 'guest:x'],
    ['mkdir', 'a/b'],
    ['chmod', '644', 'x'],
    ['chown', '0', 'x'],
  ]) {
    const r = await ctl([...s, ...args]);
    const arg = args[args.length - 1];
    assert.equal(
      [r.status, r.stdout, r.stderr],
      [2, '', `ember-ga-ctl: guest paths are absolute: ${JSON.stringify(arg)}\n`],
      args.join(' '),
    );
  }
  const f = path.join(dir, 'prefixed');
  fs.writeFileSync(f, 'through guest:\n');
  let r = await ctl([...s, 'cat', `guest:${f}`]);
  assert.equal([r.status, r.stdout, r.stderr], [0, 'through guest:\n', '']);
  r = await ctl([...s, 'md5', `guest:${f}`]);
  assert.equal([r.status, r.stdout], [0, `${md5Of(f)}  ${f}\n`]);
  r = await ctl([...s, 'stat', `guest:${f}`]);
  assert.match(r.stdout, /^ {2}File: prefixed\n/);
  r = await ctl([...s, 'ls', `guest:${dir}`]);
  assert.match(r.stdout, / prefixed$/m);
});

test('extra arguments are a usage error, not ignored; ls -n 0 means all, as its help says', async ({ agent }) => {
  const s = ['-s', agent.socket];
  for (const [args, name, expected] of [
    [['ping', 'extra'], 'ping', '0 arguments but got 1'],
    [['frozen', 'a', 'b'], 'frozen', '0 arguments but got 2'],
    [['stat', '/a', '/b'], 'stat', '1 argument but got 2'],
  ] as const) {
    const r = await ctl([...s, ...args]);
    assert.equal(
      [r.status, r.stdout, r.stderr.split('\n')[0]],
      [2, '', `ember-ga-ctl: too many arguments for '${name}'. Expected ${expected}.`],
    );
  }
  const help = await ctl(['ls', '--help']);
  assert.match(help.stdout, /-n, --limit <n> +at most n entries \(0: all\)/);
  const all = await ctl([...s, '--json', 'ls', '/']);
  const zero = await ctl([...s, '--json', 'ls', '-n', '0', '/']);
  assert.ok(JSON.parse(all.stdout).length > 1);
  assert.is(JSON.parse(zero.stdout).length, JSON.parse(all.stdout).length);
});

test("a host-side failure says so and names the user's path, never a temporary file", async ({ agent, dir }) => {
  const src = path.join(dir, 'host-src');
  randomFile(src, 1000);
  const dest = path.join(dir, 'no-such-dir', 'dest');
  let r = await ctl(['-s', agent.socket, 'cp', `guest:${src}`, dest]);
  assert.is(r.status, 1);
  assert.is(r.stderr, `ember-ga-ctl: host: open ${dest}: no such file or directory\n`);
  // A directory that is there: the copy takes the source's name in it; a file in the way of one is not a directory.
  fs.writeFileSync(path.join(dir, 'plain'), '');
  r = await ctl(['-s', agent.socket, 'cp', `guest:${src}`, path.join(dir, 'plain', 'x')]);
  assert.is(r.stderr, `ember-ga-ctl: host: stat ${path.join(dir, 'plain', 'x')}: not a directory\n`);
});

test(
  'a download into a full local filesystem (ENOSPC): a host error naming the destination, nothing left',
  async ({ agent, dir }) => {
    const src = path.join(dir, 'enospc-src');
    randomFile(src, 3 * MiB);
    await withTmpfs(dir, 'host-full', 'size=1m', async (mnt) => {
      const dest = path.join(mnt, 'dest');
      const r = await ctl(['-s', agent.socket, '--json', 'cp', `guest:${src}`, dest]);
      assert.is(r.status, 1);
      assert.equal(jsonError(r.stderr), {
        code: 'ENOSPC',
        message: `write ${dest}: no space left on device`,
        side: 'host',
      });
      assert.equal(fs.readdirSync(mnt), []);
    });
  },
  { needs: [root, command('mount')] },
);

/** A guest file that stalls a download: a FIFO whose writer (held here) writes nothing. */
function stallingFifo(dir: string, name: string): { fifo: string; close(): void } {
  const fifo = path.join(dir, name);
  spawnSync('mkfifo', [fifo]);
  const writer = fs.openSync(fifo, fs.constants.O_RDWR);
  return { fifo, close: () => fs.closeSync(writer) };
}

function exitOf(p: ChildProcess): Promise<[number | null, NodeJS.Signals | null]> {
  return once(p, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
}

/**
 * Runs node with `args` while a download from the stalling FIFO waits, until `ready` holds of
 * its pid; then sends `sig` and checks it died of it. Killed whatever happens.
 */
async function interrupted(
  agent: RunningAgent,
  fifo: string,
  args: string[],
  ready: (pid: number) => boolean,
  sig: NodeJS.Signals,
  what: string,
): Promise<void> {
  // The agent serves one host at a time: the previous run's session must be over.
  await waitFor(() => fdsOn(agent.proc.pid!, fifo).length === 0, 10_000, `the previous download to end (${what})`);
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = exitOf(p);
  try {
    await waitFor(() => fdsOn(agent.proc.pid!, fifo).length > 0 && ready(p.pid!), 10_000, `the download (${what})`);
    p.kill(sig);
    const [, signal] = await exited;
    assert.is(signal, sig, `${what}: ${stderr}`);
  } finally {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
}

test(
  'a download writes an unnamed file (O_TMPFILE) until it is complete: SIGKILL or SIGHUP mid-copy leaves nothing',
  async ({ agent, dir }) => {
    const stall = stallingFifo(dir, 'unnamed-fifo');
    const out = path.join(dir, 'unnamed-out');
    fs.mkdirSync(out);
    try {
      for (const sig of ['SIGKILL', 'SIGHUP'] as const) {
        const args = [CTL, '-s', agent.socket, 'cp', `guest:${stall.fifo}`, `${out}/f`];
        // ember-ga-ctl writes a file with no name; nothing in the directory has one.
        const ready = (pid: number) => unnamed(pid, out).length === 1 && fs.readdirSync(out).length === 0;
        await interrupted(agent, stall.fifo, args, ready, sig, sig);
        assert.equal(fs.readdirSync(out), [], `${sig}: nothing left`);
      }
    } finally {
      stall.close();
    }
    // A complete one is linked in as the destination; a second replaces it.
    const src = path.join(dir, 'unnamed-src');
    const sum = randomFile(src, MiB + 5);
    for (let i = 0; i < 2; i++) {
      const r = await ctl(['-s', agent.socket, 'cp', `guest:${src}`, `${out}/g`]);
      assert.is(r.status, 0, r.stderr);
      assert.equal([fs.readdirSync(out), md5Of(`${out}/g`)], [['g'], sum]);
    }
  },
  { needs: [command('mkfifo')] },
);

/** Preloaded into a process: its requires of the addon fail, as on a host without it. */
function noAddonPreload(dir: string): string {
  const file = path.join(dir, 'no-addon.js');
  fs.writeFileSync(
    file,
    `const Module = require('module');
const load = Module._load;
Module._load = function (request, parent, ...rest) {
  if (/(^|[\\\\/])native(\\.js)?$/.test(request) && parent && parent.filename.startsWith(${JSON.stringify(path.join(REPO, 'dist'))}))
    throw new Error('no addon here (test)');
  return load.call(this, request, parent, ...rest);
};
`,
  );
  return file;
}

test(
  'without the addon: a hidden temporary file, removed when SIGHUP, SIGINT or SIGTERM ends the program (library and ember-ga-ctl)',
  async ({ agent, dir }) => {
    const preload = noAddonPreload(dir);
    const stall = stallingFifo(dir, 'named-fifo');
    const out = path.join(dir, 'named-out');
    fs.mkdirSync(out);
    const client = path.join(REPO, 'dist', 'lib', 'client', 'index.js');
    const script = `const { GuestAgent } = require(${JSON.stringify(client)});
(async () => {
  const ga = await GuestAgent.connect({ socket: ${JSON.stringify(agent.socket)} });
  await ga.copyFrom(${JSON.stringify(stall.fifo)}, ${JSON.stringify(`${out}/f`)});
})().catch((e) => { console.error(e.message); process.exit(1); });`;
    const cp = [CTL, '-s', agent.socket, 'cp', `guest:${stall.fifo}`, `${out}/f`];
    const runs: [NodeJS.Signals, string, string[]][] = [
      ['SIGHUP', 'library', ['-e', script]],
      ['SIGINT', 'library', ['-e', script]],
      ['SIGTERM', 'library', ['-e', script]],
      ['SIGHUP', 'ember-ga-ctl', cp],
      ['SIGTERM', 'ember-ga-ctl', cp],
    ];
    // A hidden temporary file (.f.XXXXXXXX.ember-ga-part) and no unnamed one: the addon did not load.
    const ready = (pid: number) => {
      const names = fs.readdirSync(out);
      return names.length === 1 && /^\.f\.[0-9a-f]{8}\.ember-ga-part$/.test(names[0]) && unnamed(pid, out).length === 0;
    };
    try {
      for (const [sig, who, args] of runs) {
        await interrupted(agent, stall.fifo, ['-r', preload, ...args], ready, sig, `${who} ${sig}`);
        assert.equal(fs.readdirSync(out), [], `${who} ${sig}: the temporary file is gone`);
      }
    } finally {
      stall.close();
    }
    // A copy that completes renames it into place.
    const src = path.join(dir, 'named-src');
    const sum = randomFile(src, 1000);
    const r = spawnSync(process.execPath, ['-r', preload, CTL, '-s', agent.socket, 'cp', `guest:${src}`, `${out}/g`], {
      encoding: 'utf8',
    });
    assert.is(r.status, 0, r.stderr);
    assert.equal([fs.readdirSync(out), md5Of(`${out}/g`)], [['g'], sum]);
  },
  { needs: [command('mkfifo')] },
);

test(
  'a reader that goes away (| head -1): any subcommand dies of SIGPIPE without a word',
  async ({ agent, dir }) => {
    const big = path.join(dir, 'many');
    fs.mkdirSync(big);
    for (let i = 0; i < 6000; i++)
      fs.writeFileSync(path.join(big, `a-rather-long-file-name-to-fill-the-pipe-${i}`), '');
    const script = '"$0" "$1" -s "$2" ls "$3" | head -1 > /dev/null; echo "${PIPESTATUS[0]}"';
    const r = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile('bash', ['-c', script, process.execPath, CTL, agent.socket, big], (e, stdout, stderr) =>
        e ? reject(e) : resolve({ stdout, stderr }),
      ),
    );
    assert.equal(r, { stdout: '141\n', stderr: '' });
  },
  { needs: [command('bash'), command('head')] },
);

/** Holds the agent's one connection: a request answered, then idle (less than the agent's 5 s handover). */
async function holdConnection(socket: string, request: string): Promise<net.Socket> {
  const holder = net.createConnection(socket);
  await once(holder, 'connect');
  holder.write(request);
  await once(holder, 'data');
  return holder;
}

for (const protocol of ['phoenix', 'qemu-ga'] as const) {
  test(`a second client while another host holds the connection (${protocol}): a hint, not a bare timeout`, async () => {
    const agent = await startAgent(['--protocol', protocol]);
    try {
      const holder = await holdConnection(
        agent.socket,
        protocol === 'phoenix' ? '{"execute":"ping","tag":"h"}\r\n' : '{"execute":"guest-ping"}\n',
      );
      const s = ['-s', agent.socket, '--protocol', protocol, '-w', '1'];
      let r = await ctl([...s, 'ping']);
      holder.destroy();
      assert.is(r.status, 1);
      assert.match(
        r.stderr,
        new RegExp(
          `^ember-ga-ctl: host: .*within 1000 ms.*nothing came from unix:${agent.socket} since connecting: it serves one connection at a time, so another host \\(a second ember-ga-ctl, libvirt\\) may hold it\\n$`,
        ),
      );
      r = await ctl([...s, 'ping']);
      assert.is(r.status, 0, `served once the other host is gone: ${r.stderr}`);
    } finally {
      await agent.stop();
    }
  });
}

test.run();
