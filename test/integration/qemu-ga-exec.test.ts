// guest-exec and guest-exec-status against qemu-ga 7.2 itself (same requests to both, answers
// compared field by field, pids aside), then ember-ga alone with small budgets: more processes
// than it tracks, output that never ends, hosts that leave while a child runs, the agent's exit.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { memKiB, tmpDir } from '../helpers/agent';
import { sleep, suite, waitFor } from '../helpers/harness';
import {
  both,
  diffAnswers,
  QmpClient,
  realQemuGa,
  startEmberQemuGa,
  startPair,
  stopPair,
  type Pair,
  type QmpAnswer,
} from '../helpers/qemu-ga';

interface Ctx {
  p?: Pair;
  dir: string;
  savedPath?: string;
}

const test = suite<Ctx>('qemu-ga exec', { dir: '' });
const needs = [realQemuGa];

test.before(async (ctx) => {
  ctx.dir = tmpDir('ember-ga-exec-');
  // Programs found only through the agents' own PATH (a dir of ours first in it), and a script
  // without "#!" that execve refuses (ENOEXEC), which GLib runs with /bin/sh.
  const bin = path.join(ctx.dir, 'bin');
  const noexec = path.join(ctx.dir, 'noexec');
  fs.mkdirSync(bin);
  fs.mkdirSync(noexec);
  fs.writeFileSync(path.join(bin, 'ember-probe'), '#!/bin/sh\necho "probe $*"\n', { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'ember-nohashbang'), 'echo "sh ran $0 with $# args: $*"\n', { mode: 0o755 });
  fs.writeFileSync(path.join(noexec, 'ember-denied'), '#!/bin/sh\necho no\n', { mode: 0o644 });
  fs.writeFileSync(path.join(noexec, 'ember-probe'), '#!/bin/sh\necho shadowed\n', { mode: 0o644 });
  if (realQemuGa() !== undefined) return;
  ctx.savedPath = process.env.PATH;
  process.env.PATH = `${noexec}:${bin}:${process.env.PATH}`; // the agents inherit it
  try {
    ctx.p = await startPair();
  } finally {
    process.env.PATH = ctx.savedPath;
  }
});

test.after(async (ctx) => {
  await stopPair(ctx.p);
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** guest-exec-status until exited (or ms pass). */
async function waitStatus(c: QmpClient, pid: number, ms = 20_000): Promise<QmpAnswer> {
  const end = Date.now() + ms;
  for (;;) {
    const a = await c.call('guest-exec-status', { pid }, ms);
    if (a.error || (a.return as { exited: boolean }).exited || Date.now() > end) return a;
    await sleep(20);
  }
}

/** One guest-exec on both agents, and (when it started) the final status of each, compared. */
async function same(p: Pair, args: Record<string, unknown>): Promise<{ real: QmpAnswer; ember: QmpAnswer }> {
  const [r, e] = await Promise.all([p.q.call('guest-exec', args), p.e.call('guest-exec', args)]);
  const what = JSON.stringify(args);
  assert.equal(diffAnswers(r, e, [/^return\.pid$/]), [], `guest-exec ${what}`);
  if (r.error) return { real: r, ember: e };
  const [rs, es] = await Promise.all([
    waitStatus(p.q, (r.return as { pid: number }).pid),
    waitStatus(p.e, (e.return as { pid: number }).pid),
  ]);
  const diffs = diffAnswers(rs, es);
  assert.equal(diffs, [], `status of ${what}:\n${diffs.join('\n')}`);
  // Reported once: the pid is forgotten after.
  const [r2, e2] = await Promise.all([
    p.q.call('guest-exec-status', { pid: (r.return as { pid: number }).pid }),
    p.e.call('guest-exec-status', { pid: (e.return as { pid: number }).pid }),
  ]);
  assert.equal(diffAnswers(r2, e2), [], `second status of ${what}`);
  assert.is(e2.error?.desc, "Invalid parameter 'pid'");
  return { real: rs, ember: es };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

test(
  'exit codes, signals, output and input: the same statuses as qemu-ga',
  async ({ p }) => {
    const cases: Record<string, unknown>[] = [
      { path: '/bin/echo', arg: ['hi', 'there'], 'capture-output': true },
      { path: '/bin/echo', arg: ['not captured'] },
      { path: '/bin/echo', arg: ['hi'], 'capture-output': false },
      { path: '/bin/sh', arg: ['-c', 'exit 3'] },
      { path: '/bin/sh', arg: ['-c', 'exit 3'], 'capture-output': true },
      { path: '/bin/sh', arg: ['-c', 'echo out; echo err >&2; exit 255'], 'capture-output': true },
      { path: '/bin/sh', arg: ['-c', 'printf "\\0\\377\\n"'], 'capture-output': true },
      { path: '/bin/sh', arg: ['-c', 'kill -TERM $$'], 'capture-output': true },
      { path: '/bin/sh', arg: ['-c', 'kill -KILL $$'] },
      { path: '/bin/sh', arg: ['-c', 'kill -RTMIN+2 $$'] }, // a real-time signal keeps its number
      // stdin: written, then closed; without input-data it is /dev/null
      { path: 'cat', 'input-data': b64('line one\nline two\n'), 'capture-output': true },
      { path: 'cat', 'capture-output': true },
      { path: 'cat', 'input-data': '', 'capture-output': true },
      {
        path: '/bin/sh',
        arg: ['-c', 'exec 0<&-; echo closed'],
        'input-data': b64('x'.repeat(200_000)),
        'capture-output': true,
      },
      // qemu's lenient base64: newlines skipped, inner '=', an incomplete last group dropped
      { path: 'cat', 'input-data': 'aGk=\naGk=', 'capture-output': true },
      { path: 'cat', 'input-data': 'a=Gk', 'capture-output': true },
      { path: 'cat', 'input-data': 'aG==aGk=', 'capture-output': true },
      { path: 'cat', 'input-data': 'aGk', 'capture-output': true },
      // stdout and stderr as they interleave, each kept apart
      { path: '/bin/sh', arg: ['-c', 'for i in 1 2 3; do echo o$i; echo e$i >&2; done'], 'capture-output': true },
    ];
    for (const c of cases) await same(p!, c);
  },
  { needs },
);

test(
  'environment: replaced when given (bare entries kept), PATH searched as GLib does',
  async ({ p }) => {
    await same(p!, { path: 'env', env: ['FOO=bar', 'BARE', 'X=1=2', 'FOO=again'], 'capture-output': true });
    await same(p!, { path: 'env', env: [], 'capture-output': true });
    // No PATH in env: the agent's own PATH finds the program (its dir of ours is in it).
    await same(p!, { path: 'ember-probe', arg: ['a', 'b'], env: ['A=b'], 'capture-output': true });
    // PATH in env is searched instead: ember-probe is not in /usr/bin.
    await same(p!, { path: 'ember-probe', env: ['PATH=/usr/bin'], 'capture-output': true });
    await same(p!, { path: 'echo', arg: ['x'], env: ['PATH=/nonexistent::/usr/bin:/bin'], 'capture-output': true });
    // Found only without execute permission: EACCES; found so and later with it: the later one.
    await same(p!, { path: 'ember-denied' });
    await same(p!, { path: 'ember-probe', 'capture-output': true });
    // A file without "#!" runs under /bin/sh.
    await same(p!, { path: 'ember-nohashbang', arg: ['one', 'two'], 'capture-output': true });
  },
  { needs },
);

test(
  "programs that cannot run, bad arguments: qemu-ga's errors",
  async ({ p, dir }) => {
    const cases: Record<string, unknown>[] = [
      { path: 'nosuch-program' },
      { path: '/nosuch/program' },
      { path: '' },
      { path: '/etc/passwd' },
      { path: dir },
      { path: '/bin/echo', 'input-data': '!!' },
      { path: '/bin/echo', 'input-data': 'aGk=\r\n' },
      { path: '/bin/echo', 'capture-output': 'merged' },
      { path: '/bin/echo', arg: 'x' },
      { path: '/bin/echo', env: [1] },
      { arg: ['x'] },
    ];
    for (const c of cases) {
      const { ember } = await same(p!, c);
      assert.ok(ember.error, JSON.stringify(c));
    }
    for (const pid of [0, -1, 1, 2 ** 31]) {
      const [r, e] = await Promise.all([
        p!.q.call('guest-exec-status', { pid }),
        p!.e.call('guest-exec-status', { pid }),
      ]);
      assert.equal(diffAnswers(r, e), [], `status of pid ${pid}`);
    }
  },
  { needs },
);

test(
  "a NUL in path, arg, env or input-data: qemu's C0 80 (its modified UTF-8), never the end of a string",
  async ({ p }) => {
    // No program is named "/bin/sh\0": a host that allow-lists "/bin/sh" by its string is not
    // bypassed. The error names the path with its NUL, byte for byte as qemu-ga writes it.
    for (const path of ['/bin/sh\u0000', 'sh\u0000zz', '/bin/sh\u0000/x']) {
      const line = `${JSON.stringify({ execute: 'guest-exec', arguments: { path } })}\n`;
      const { real, ember } = await both(p!, line);
      assert.is(ember.toString('latin1'), real.toString('latin1'), JSON.stringify(path));
      assert.match(ember.toString(), '\\u0000');
    }
    // Not base64: refused, not cut to "hel".
    const { ember: refused } = await same(p!, { path: 'cat', 'input-data': 'aGVs\u0000bG8K', 'capture-output': true });
    assert.is(refused.error?.desc, 'Base64 data contains invalid characters');
    // Arguments and environment reach the program with C0 80 where the NUL was.
    const { ember } = await same(p!, {
      path: '/bin/sh',
      arg: ['-c', 'printf "%s|%s" "$0" "$X" | od -An -tx1', 'a\u0000b'],
      env: ['X=a\u0000b\u0000'],
      'capture-output': true,
    });
    const out = Buffer.from((ember.return as { 'out-data': string })['out-data'], 'base64').toString();
    assert.is(out.trim().split(/\s+/).join(' '), '61 c0 80 62 7c 61 c0 80 62 c0 80');
    await same(p!, { path: 'env', env: ['\u0000', 'A\u0000=b', 'B=\u0000'], 'capture-output': true });
    await same(p!, { path: '/bin/echo', arg: ['\u0000', '', 'x\u0000\u0000'], 'capture-output': true });
  },
  { needs },
);

test(
  'a running process: {"exited": false}, as long as it or a child of its holds its output open',
  async ({ p }) => {
    const args = { path: '/bin/sh', arg: ['-c', '(sleep 0.6; echo late) & echo early'], 'capture-output': true };
    const [r, e] = await Promise.all([p!.q.call('guest-exec', args), p!.e.call('guest-exec', args)]);
    const rp = (r.return as { pid: number }).pid;
    const ep = (e.return as { pid: number }).pid;
    await sleep(200); // sh has exited; the background sleep still holds stdout
    const [r1, e1] = await Promise.all([
      p!.q.call('guest-exec-status', { pid: rp }),
      p!.e.call('guest-exec-status', { pid: ep }),
    ]);
    assert.equal(e1.return, { exited: false });
    assert.equal(diffAnswers(r1, e1), []);
    const [r2, e2] = await Promise.all([waitStatus(p!.q, rp), waitStatus(p!.e, ep)]);
    assert.equal(diffAnswers(r2, e2), []);
    assert.is(Buffer.from((e2.return as { 'out-data': string })['out-data'], 'base64').toString(), 'early\nlate\n');
  },
  { needs },
);

test(
  'output past 16 MiB: the first 16 MiB and the truncation flag, on each stream',
  async ({ p }) => {
    const MiB16 = 16 * 1024 * 1024;
    for (const [n, redirect] of [
      [MiB16, ''],
      [MiB16 + 1, ''],
      [MiB16 + 1, ' >&2'],
    ] as const) {
      const { ember } = await same(p!, {
        path: '/bin/sh',
        arg: ['-c', `head -c ${n} /dev/zero${redirect}`],
        'capture-output': true,
      });
      const ret = ember.return as Record<string, string | boolean>;
      const data = ret[redirect ? 'err-data' : 'out-data'] as string;
      assert.is(Buffer.from(data, 'base64').length, MiB16);
      assert.is(ret[redirect ? 'err-truncated' : 'out-truncated'], n > MiB16);
    }
  },
  { needs, timeout: 60_000 },
);

// ---- ember-ga alone, with small budgets ---------------------------------------------------------

const MAX = 4;
const FLAGS = ['--exec-max-processes', String(MAX), '--exec-max-output', '0.0625', '--exec-max-held', '0.125'];
const KiB64 = 65536;

/** The process exists and is not a zombie: running, or gone (reaped). */
function state(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0];
  } catch {
    return 'gone';
  }
}

/** Running (or sleeping): neither gone nor a zombie. */
const alive = (pid: number) => ['R', 'S', 'D'].includes(state(pid));

async function execOk(c: QmpClient, args: Record<string, unknown>): Promise<number> {
  return (await c.ok<{ pid: number }>('guest-exec', args)).pid;
}

test('more processes than the limit: refused while all run, the oldest uncollected one forgotten once done', async () => {
  const agent = await startEmberQemuGa(FLAGS);
  const c = await agent.qmp();
  const pids: number[] = [];
  try {
    // Pipelined: a host sends them all at once; each is answered in turn.
    const req = { execute: 'guest-exec', arguments: { path: 'sleep', arg: ['30'] } };
    c.send(JSON.stringify(req).repeat(MAX + 3));
    const answers = [];
    for (let i = 0; i < MAX + 3; i++) answers.push(await c.answer());
    for (const a of answers.slice(0, MAX)) pids.push((a.return as { pid: number }).pid);
    for (const a of answers.slice(MAX)) {
      assert.equal(a.error, {
        class: 'GenericError',
        desc: `Guest agent command failed, error was 'Too many processes running (${MAX}): wait for one to finish'`,
      });
    }
    assert.ok(pids.every(alive), pids.map(state).join(' '));
    // One ends, uncollected: the next exec makes room by forgetting its status (and logs it).
    process.kill(pids[0], 'SIGTERM');
    await waitFor(() => state(pids[0]) === 'gone', 5000, 'the child to be reaped');
    const next = await execOk(c, { path: 'true' });
    const gone = await c.call('guest-exec-status', { pid: pids[0] });
    assert.is(gone.error?.desc, "Invalid parameter 'pid'");
    assert.match(agent.stderr(), new RegExp(`forgot process ${pids[0]}'s status`));
    assert.equal((await waitStatus(c, next)).return, { exited: true, exitcode: 0 });
    // Collected ones free their slot for good.
    for (const pid of pids.slice(1)) process.kill(pid, 'SIGKILL');
    for (const pid of pids.slice(1)) assert.equal((await waitStatus(c, pid)).return, { exited: true, signal: 9 });
    for (let i = 0; i < MAX; i++) await execOk(c, { path: 'true' });
  } finally {
    for (const pid of pids) if (state(pid) !== 'gone') process.kill(pid, 'SIGKILL');
    c.close();
    await agent.stop();
  }
});

test('children are reaped when they end, collected or not: no zombies', async () => {
  const agent = await startEmberQemuGa(FLAGS);
  const c = await agent.qmp();
  try {
    const pids: number[] = [];
    for (let i = 0; i < MAX; i++) pids.push(await execOk(c, { path: '/bin/sh', arg: ['-c', `exit ${i}`] }));
    await waitFor(() => pids.every((p) => state(p) === 'gone'), 5000, 'every child to be reaped');
    // Their statuses are kept all the same.
    for (const [i, pid] of pids.entries())
      assert.equal((await waitStatus(c, pid)).return, { exited: true, exitcode: i });
  } finally {
    c.close();
    await agent.stop();
  }
});

test('output that never ends: kept up to the cap, the rest read and dropped, the agent unaffected', async () => {
  const agent = await startEmberQemuGa(FLAGS);
  const c = await agent.qmp();
  let pid = 0;
  try {
    pid = await execOk(c, { path: 'yes', arg: ['x'.repeat(1000)], 'capture-output': true });
    const rss0 = memKiB(agent.proc.pid!, 'VmRSS');
    await sleep(1500); // gigabytes' worth, read and dropped
    assert.equal(await c.ok('guest-exec-status', { pid }), { exited: false });
    const t0 = Date.now();
    await c.ok('guest-ping');
    assert.ok(Date.now() - t0 < 500, `guest-ping took ${Date.now() - t0} ms`);
    const rss = memKiB(agent.proc.pid!, 'VmRSS');
    assert.ok(rss - rss0 < 50 * 1024, `RSS grew from ${rss0} to ${rss} KiB`);
    process.kill(pid, 'SIGKILL');
    const ret = (await waitStatus(c, pid)).return as Record<string, unknown>;
    assert.is(ret.signal, 9);
    assert.is(Buffer.from(ret['out-data'] as string, 'base64').length, KiB64);
    assert.is(ret['out-truncated'], true);
    assert.is(ret['err-data'], undefined);
  } finally {
    if (pid && state(pid) !== 'gone') process.kill(pid, 'SIGKILL');
    c.close();
    await agent.stop();
  }
});

test('input-data programs do not read is held only up to the budget: past it, guest-exec is refused until they end', async () => {
  const agent = await startEmberQemuGa(FLAGS); // --exec-max-held: 128 KiB, for input too
  const c = await agent.qmp();
  const pids: number[] = [];
  try {
    // `sleep` never reads its stdin: what the pipe does not take waits in the agent while it runs.
    const input = Buffer.alloc(100_000, 0x61).toString('base64');
    pids.push(await execOk(c, { path: 'sleep', arg: ['30'], 'input-data': input }));
    assert.equal((await c.call('guest-exec', { path: 'sleep', arg: ['30'], 'input-data': input })).error, {
      class: 'GenericError',
      desc: "Guest agent command failed, error was 'Too much input-data not yet read by the programs it was given to (128 KiB): wait for them to read it or end'",
    });
    // Without input, or with a little that fits, programs still start.
    pids.push(await execOk(c, { path: 'sleep', arg: ['30'] }));
    pids.push(await execOk(c, { path: 'sleep', arg: ['30'], 'input-data': b64('x'.repeat(1000)) }));
    // The program that held it ends: its input is dropped, and the budget is free again.
    process.kill(pids[0], 'SIGKILL');
    assert.equal((await waitStatus(c, pids[0])).return, { exited: true, signal: 9 });
    pids.shift();
    await waitFor(async () => !(await c.call('guest-exec', { path: 'true', 'input-data': input })).error, 5000, 'room');
  } finally {
    for (const pid of pids) if (state(pid) !== 'gone') process.kill(pid, 'SIGKILL');
    c.close();
    await agent.stop();
  }
});

test('a large input-data is decoded as it arrives: an 11 MiB one costs the agent under 4 times its size', async () => {
  const agent = await startEmberQemuGa();
  const c = await agent.qmp();
  try {
    assert.equal(await c.ok('guest-ping'), {});
    const before = memKiB(agent.proc.pid!, 'VmHWM') / 1024;
    const input = Buffer.alloc(11 << 20, 0x61).toString('base64');
    const pid = await execOk(c, { path: 'sh', arg: ['-c', 'cat >/dev/null'], 'input-data': input });
    assert.equal((await waitStatus(c, pid)).return, { exited: true, exitcode: 0 });
    const grew = memKiB(agent.proc.pid!, 'VmHWM') / 1024 - before;
    process.stdout.write(`  guest-exec of 11 MiB input-data: peak RSS up ${grew.toFixed(0)} MiB\n`);
    // Parsed as a 15 MB string, checked and decoded after: 86 MiB. Decoded as it came: 38 MiB.
    assert.ok(grew < 44, `peak RSS up ${grew.toFixed(0)} MiB`);
  } finally {
    c.close();
    await agent.stop();
  }
});

test('output held for all processes together is bounded: past it, dropped and flagged', async () => {
  const agent = await startEmberQemuGa(FLAGS);
  const c = await agent.qmp();
  try {
    // Each writes 100,000 bytes: the first two keep 64 KiB each, the 128 KiB budget is then spent.
    const pids: number[] = [];
    for (let i = 0; i < 3; i++) {
      pids.push(await execOk(c, { path: 'head', arg: ['-c', '100000', '/dev/zero'], 'capture-output': true }));
      await waitFor(() => state(pids[i]) === 'gone', 5000, 'the writer to end');
      await sleep(100);
    }
    const rets = [];
    for (const pid of pids) rets.push((await waitStatus(c, pid)).return as Record<string, unknown>);
    assert.equal(
      rets.map((r) => [Buffer.from((r['out-data'] as string | undefined) ?? '', 'base64').length, r['out-truncated']]),
      [
        [KiB64, true],
        [KiB64, true],
        [0, true], // nothing kept: no out-data, yet the flag says output was lost
      ],
    );
    // Collected, the bytes are free again.
    const pid = await execOk(c, { path: 'head', arg: ['-c', '1000', '/dev/zero'], 'capture-output': true });
    const r = (await waitStatus(c, pid)).return as Record<string, unknown>;
    assert.is(Buffer.from(r['out-data'] as string, 'base64').length, 1000);
    assert.is(r['out-truncated'], false);
  } finally {
    c.close();
    await agent.stop();
  }
});

/**
 * A client for answers of tens of MB: chunks kept apart until the newline (the harness's client
 * concatenates on every chunk).
 */
async function bigClient(socket: string): Promise<{ call(req: object): Promise<QmpAnswer>; close(): void }> {
  const sock = net.connect(socket);
  await new Promise((r, j) => sock.once('connect', r).once('error', j));
  let chunks: Buffer[] = [];
  let waiter: ((a: QmpAnswer) => void) | undefined;
  sock.on('data', (d: Buffer) => {
    chunks.push(d);
    if (!d.includes(0x0a)) return;
    const line = Buffer.concat(chunks);
    chunks = [];
    waiter?.(JSON.parse(line.toString()) as QmpAnswer);
  });
  return {
    call: (req) =>
      new Promise((r) => {
        waiter = r;
        sock.write(JSON.stringify(req));
      }),
    close: () => sock.destroy(),
  };
}

test(
  'largest statuses (2 x 16 MiB, default budgets) collected one after another: memory stays bounded',
  async () => {
    const agent = await startEmberQemuGa();
    let c: Awaited<ReturnType<typeof bigClient>> | undefined;
    try {
      for (let i = 0; i < 6; i++) {
        // A host per status, gone once it has it, as `virsh qemu-agent-command` calls come.
        c = await bigClient(agent.socket);
        const started = await c.call({
          execute: 'guest-exec',
          arguments: {
            path: '/bin/sh',
            arg: ['-c', 'head -c 17000000 /dev/zero; head -c 17000000 /dev/zero >&2'],
            'capture-output': true,
          },
        });
        const pid = (started.return as { pid: number }).pid;
        let r: Record<string, unknown> = { exited: false };
        while (!r.exited) {
          await sleep(50);
          r = (await c.call({ execute: 'guest-exec-status', arguments: { pid } })).return as typeof r;
        }
        const sizes = [r['out-data'], r['err-data']].map((d) => (d as string).length);
        const b64 = Math.ceil((16 * 1024 * 1024) / 3) * 4;
        assert.equal(sizes, [b64, b64]);
        c.close();
      }
      // Each status's buffers go before the next one is made, none kept by a session that has
      // ended: it was ~240 MiB when an ended session still held its last answer, and grew by
      // tens of MB with every status while a capture's poll kept its process alive.
      const hwm = memKiB(agent.proc.pid!, 'VmHWM');
      assert.ok(hwm < 220 * 1024, `peak RSS ${hwm} KiB`);
    } finally {
      c?.close();
      await agent.stop();
    }
  },
  { timeout: 90_000 },
);

test('a host that disconnects while its child runs: the child goes on, a later host collects it', async () => {
  const agent = await startEmberQemuGa(FLAGS);
  let c = await agent.qmp();
  try {
    const pid = await execOk(c, {
      path: '/bin/sh',
      arg: ['-c', 'read line; sleep 0.3; echo "got $line"'],
      'input-data': b64('hello\n'),
      'capture-output': true,
    });
    c.close();
    await sleep(100);
    assert.ok(alive(pid), state(pid));
    c = await agent.qmp();
    const ret = (await waitStatus(c, pid)).return as Record<string, unknown>;
    assert.equal(ret, { exited: true, exitcode: 0, 'out-data': b64('got hello\n'), 'out-truncated': false });
  } finally {
    c.close();
    await agent.stop();
  }
});

test('agent exit: running children are left running, as qemu-ga leaves them', async () => {
  const agent = await startEmberQemuGa(FLAGS);
  const c = await agent.qmp();
  let pid = 0;
  try {
    pid = await execOk(c, { path: 'sleep', arg: ['30'], 'capture-output': true });
    c.close();
    assert.is(await agent.stop(), 0);
    await sleep(100);
    assert.ok(alive(pid), state(pid));
  } finally {
    if (pid && state(pid) !== 'gone') process.kill(pid, 'SIGKILL');
  }
});

test.run();
