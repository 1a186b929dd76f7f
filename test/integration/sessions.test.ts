// Host sessions on a unix socket: a host that leaves, stops sending, idles or never gets its turn
// must not keep the next host waiting, nor keep what it opened.
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { CLI, LineClient, fails, memKiB, stalledReader, startAgent, tmpDir } from '../helpers/agent';
import { QmpClient } from '../helpers/qemu-ga';
import { sleep, suite, waitFor } from '../helpers/harness';

const test = suite('host sessions');

/** Milliseconds a fresh host waits for its ping. */
async function pingTime(socket: string): Promise<number> {
  const c = await LineClient.connect(socket);
  const t0 = Date.now();
  await c.ok('ping', undefined, 30_000);
  const ms = Date.now() - t0;
  c.close();
  return ms;
}

function openFds(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map((n) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${n}`);
    } catch {
      return '';
    }
  });
}

/** n raw connections, each connected before the next. */
async function connectMany(socket: string, n: number): Promise<net.Socket[]> {
  const all: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.createConnection(socket);
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    all.push(s);
  }
  return all;
}

function withFifo<T>(fn: (fifo: string, dir: string) => Promise<T>): Promise<T> {
  const dir = tmpDir('ember-ga-sessions-');
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  return fn(fifo, dir).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

test('a host that left a read waiting on a FIFO, then one that connects and closes at once: each next host is served at once', () =>
  withFifo(async (fifo) => {
    const agent = await startAgent();
    try {
      const a = await agent.connect();
      const h = (await a.ok('file-open', { path: fifo })) as number;
      a.send(JSON.stringify({ execute: 'file-read', arguments: { handle_id: h }, tag: 'never' }) + '\n');
      await sleep(100);
      a.close();
      assert.ok((await pingTime(agent.socket)) < 1_000, 'the host after a gone host waited');
      // A connection that brings nothing but its end must hand over at once.
      const b = net.createConnection(agent.socket);
      await new Promise((r) => b.once('connect', r));
      b.end();
      assert.ok((await pingTime(agent.socket)) < 1_000, 'the host after an empty connection waited');
      // The FIFO handle went with its host: no fd left on it.
      await waitFor(() => !openFds(agent.proc.pid!).some((t) => t === fifo), 5_000, 'the FIFO handle to be closed');
    } finally {
      await agent.stop();
    }
  }));

test('a host that only stopped sending still gets its answer, while the next host is served meanwhile', () =>
  withFifo(async (fifo) => {
    const agent = await startAgent();
    const writer = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    try {
      const a = await agent.connect();
      const h = (await a.ok('file-open', { path: fifo })) as number;
      a.sock.end(JSON.stringify({ execute: 'file-read', arguments: { handle_id: h }, tag: 'later' }) + '\n'); // half-close
      await sleep(100);
      const b = await agent.connect();
      const t0 = Date.now();
      await b.ok('ping');
      assert.ok(Date.now() - t0 < 1_000, `the next host waited ${Date.now() - t0} ms`);
      fs.writeSync(writer, 'data');
      const [answer] = await a.waitLines(1);
      assert.is(answer.tag, 'later');
      assert.equal(answer.return, { bufb64: Buffer.from('data').toString('base64'), eof: false });
      await waitFor(() => a.closed, 5_000, 'the agent to close the answered connection');
      await sleep(100);
      assert.not.ok(
        b.lines.some((l) => l.includes('later')),
        "the next host got the first host's answer",
      );
      b.close();
    } finally {
      fs.closeSync(writer);
      await agent.stop();
    }
  }));

test('a host that half-closes with 256 reads waiting on a FIFO (a full session): the next host is served at once', () =>
  withFifo(async (fifo) => {
    const agent = await startAgent();
    try {
      const a = await agent.connect();
      const h = (await a.ok('file-open', { path: fifo })) as number;
      const read = JSON.stringify({ execute: 'file-read', arguments: { handle_id: h } }) + '\n';
      a.sock.end(read.repeat(256)); // its in-flight budget, all of it, then a half-close
      await sleep(300);
      const ms = await pingTime(agent.socket);
      assert.ok(ms < 1_000, `the next host waited ${ms} ms`);
      a.close();
    } finally {
      await agent.stop();
    }
  }));

test('a host that stops reading its answers holds back only its own listener; a waiting host gets it after 10 s', async () => {
  const other = path.join(tmpDir('ember-ga-other-'), 'other.sock');
  const agent = await startAgent(['--listen', `qemu-ga:unix:${other}`]);
  let stalled: net.Socket | undefined;
  try {
    await waitFor(() => fs.existsSync(other), 5_000, 'the second listener');
    stalled = await stalledReader(agent.socket, agent.dir);
    await sleep(1_000);
    // Another listener's host (libvirt's qemu-ga socket, say) is served at once.
    const q = await LineClient.connect(other);
    const t0 = Date.now();
    q.send('{"execute":"guest-ping"}\n');
    await q.waitLines(1, 5_000);
    assert.ok(Date.now() - t0 < 1_000, `the other listener's host waited ${Date.now() - t0} ms`);
    q.close();
    // A host waiting on the stalled host's socket gets it once the stall has lasted 10 s.
    const ms = await pingTime(agent.socket);
    assert.ok(ms >= 7_000 && ms < 15_000, `the waiting host was served after ${ms} ms`);
    assert.match(agent.stderr(), /took none of its answers for 10 s while another waits/);
  } finally {
    stalled?.destroy();
    await agent.stop();
    fs.rmSync(path.dirname(other), { recursive: true, force: true });
  }
});

test("a phoenix host cannot read or close another host's handle, nor a qemu-ga one", async () => {
  const dir = tmpDir('ember-ga-owners-');
  const qga = path.join(dir, 'qga.sock');
  const second = path.join(dir, 'phoenix2.sock');
  const agent = await startAgent(['--listen', `qemu-ga:unix:${qga}`, '--listen', `phoenix:unix:${second}`]);
  try {
    await waitFor(() => fs.existsSync(qga) && fs.existsSync(second), 5_000, 'the other listeners');
    const f = path.join(dir, 'data');
    fs.writeFileSync(f, 'mine');
    const q = await QmpClient.connect(qga);
    const mine = await agent.connect();
    const other = await LineClient.connect(second);
    const qh = await q.ok<number>('guest-file-open', { path: f });
    const ph = (await mine.ok('file-open', { path: f })) as number;
    // A handle of its read to the end (closed there, its md5 kept for pipelined reads): the other
    // host learns neither that nor the digest.
    const done = (await mine.ok('file-open', { path: f, md5: true })) as number;
    await mine.ok('file-read', { handle_id: done });
    assert.equal(await mine.ok('file-read', { handle_id: done }), {
      bufb64: '',
      eof: true,
      md5: '918b81db5e91d031548b963c93845e5b',
    });
    await fails(other, 'file-read', { handle_id: done }, -1, /Incorrect handle id/);
    for (const id of [qh, ph]) {
      await fails(other, 'file-read', { handle_id: id }, -1, /Incorrect handle id/);
      await fails(other, 'file-write', { handle_id: id, bufb64: 'eA==' }, -1, /Incorrect handle id/);
      assert.is(await other.ok('file-close', { handle_id: id }), true, "0.7.1's answer for a handle it does not know");
    }
    // Both still open, for their own hosts.
    assert.equal(await q.ok('guest-file-read', { handle: qh }), { count: 4, 'buf-b64': 'bWluZQ==', eof: true });
    assert.equal(await mine.ok('file-read', { handle_id: ph }), { bufb64: 'bWluZQ==', eof: false });
    q.close();
    mine.close();
    other.close();
  } finally {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a handle closed when its host went away: only that listener's hosts are told, and its path", async () => {
  const dir = tmpDir('ember-ga-ended-');
  const second = path.join(dir, 'phoenix2.sock');
  const agent = await startAgent(['--listen', `phoenix:unix:${second}`]);
  try {
    await waitFor(() => fs.existsSync(second), 5_000, 'the second listener');
    const plain = path.join(dir, 'secret-plain');
    const upload = path.join(dir, 'secret-upload');
    fs.writeFileSync(plain, 'mine');
    const gone = await agent.connect();
    const ph = (await gone.ok('file-open', { path: plain })) as number;
    const ah = (await gone.ok('file-open', { path: upload, mode: 'w', atomic: true })) as number;
    gone.close();
    await waitFor(() => /discarding the unfinished atomic upload/.test(agent.stderr()), 5_000, 'the handles to end');
    // Another listener's host: unknown ids, as 0.7.1 answers them, and no path.
    const other = await LineClient.connect(second);
    const unknown = /^Incorrect handle id: \d+ is not an open file handle$/;
    for (const id of [ph, ah]) {
      await fails(other, 'file-read', { handle_id: id }, -1, unknown);
      await fails(other, 'file-write', { handle_id: id, bufb64: 'eA==' }, -1, unknown);
      assert.is(await other.ok('file-close', { handle_id: id }), true, "0.7.1's answer for a handle it does not know");
      await fails(
        other,
        'file-close',
        { handle_id: id, discard: true },
        -1,
        /^Incorrect handle id: \d+ .*nothing was discarded/,
      );
    }
    other.close();
    // The same listener's next host (the one that left, back): the handle's end, never a success.
    const back = await agent.connect();
    await fails(
      back,
      'file-read',
      { handle_id: ph },
      -1,
      /^Handle \d+ was closed when the host .*secret-plain\); open it again$/,
    );
    await fails(back, 'file-close', { handle_id: ph }, -1, /was closed when the host that opened it went away/);
    await fails(
      back,
      'file-write',
      { handle_id: ah, bufb64: 'eA==' },
      -1,
      /^Handle \d+ was discarded .*secret-upload was not replaced/,
    );
    assert.is(await back.ok('file-close', { handle_id: ah, discard: true }), true, 'a discard is what happened');
    back.close();
  } finally {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('waiting connections that hang up give their fds back at once; past 64 waiting, new ones are refused', async () => {
  const agent = await startAgent();
  const pid = agent.proc.pid!;
  try {
    const active = await agent.connect();
    await active.ok('ping');
    const before = openFds(pid).length;
    const waiting = await connectMany(agent.socket, 40);
    await waitFor(() => openFds(pid).length >= before + 40, 5_000, 'the agent to accept them');
    for (const s of waiting) s.destroy();
    await waitFor(
      () => openFds(pid).length <= before,
      5_000,
      `the fds of hung-up waiting hosts back (${openFds(pid).length - before} left)`,
    );
    // The limit: 64 wait, the 65th is closed at once.
    const queue = await connectMany(agent.socket, 65);
    const last = queue[64];
    await waitFor(() => last.readableEnded || last.destroyed, 5_000, 'the 65th waiting host to be refused');
    for (const s of queue) s.destroy();
    await active.ok('ping'); // the active host never noticed
    active.close();
  } finally {
    await agent.stop();
  }
});

test('an idle host makes way for a waiting one after 5 s; a busy one does not', async () => {
  const agent = await startAgent();
  try {
    const idle = await agent.connect();
    await idle.ok('ping');
    const t0 = Date.now();
    const ms = await pingTime(agent.socket);
    assert.ok(ms >= 3_000 && ms < 8_000, `the waiting host was served after ${ms} ms`);
    assert.ok(Date.now() - t0 < 9_000);
    await waitFor(() => idle.closed, 2_000, 'the idle host to be disconnected');
  } finally {
    await agent.stop();
  }
});

test('a second agent on the same socket refuses to start; a stale socket is taken over', async () => {
  const first = await startAgent();
  try {
    const second = spawn(process.execPath, [CLI, '--listen', `unix:${first.socket}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    second.stderr!.on('data', (d) => (err += d));
    const code = await new Promise((r) => second.once('exit', r));
    assert.is.not(code, 0);
    assert.match(err, /another process is listening on this socket/);
    assert.ok((await pingTime(first.socket)) < 1_000, 'the first agent is still reachable');
    // Killed outright, the first leaves its socket file behind: the next agent replaces it.
    first.proc.kill('SIGKILL');
    await first.exited;
    assert.ok(fs.existsSync(first.socket));
    const again = spawn(process.execPath, [CLI, '--listen', `unix:${first.socket}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err2 = '';
    again.stderr!.on('data', (d) => (err2 += d));
    try {
      await waitFor(() => /serving on/.test(err2), 10_000, 'the new agent to start');
      assert.ok((await pingTime(first.socket)) < 1_000);
    } finally {
      again.kill('SIGTERM');
      await new Promise((r) => again.once('exit', r));
    }
  } finally {
    await first.stop();
  }
});

test('SIGTERM with a read waiting on a FIFO exits at once, answering the read as cancelled', () =>
  withFifo(async (fifo) => {
    const agent = await startAgent();
    const c = await agent.connect();
    const h = (await c.ok('file-open', { path: fifo })) as number;
    c.send(JSON.stringify({ execute: 'file-read', arguments: { handle_id: h }, tag: 'waiting' }) + '\n');
    await sleep(200);
    const t0 = Date.now();
    agent.proc.kill('SIGTERM');
    assert.is(await agent.exited, 0);
    assert.ok(Date.now() - t0 < 3_000, `exit took ${Date.now() - t0} ms`);
    const [a] = await c.waitLines(1).catch(() => [undefined]);
    if (a) assert.is(a.error?.code, 125, JSON.stringify(a));
    await agent.stop();
  }));

test('pipelined writes to a FIFO nobody reads: the agent stops reading that host at its held-input budget, serves another listener, RSS stays bounded, and a host leaving frees it all', () =>
  withFifo(async (fifo, dir) => {
    const other = path.join(dir, 'other.sock');
    const agent = await startAgent(['--listen', `unix:${other}`]);
    const pid = agent.proc.pid!;
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // there, but never reads
    try {
      const c = await agent.connect();
      const h = (await c.ok('file-open', { path: fifo, mode: 'w' })) as number;
      const chunk = Buffer.alloc(9 * 1024 * 1024, 7).toString('base64'); // a 12 MiB line
      const line = Buffer.from(
        JSON.stringify({ execute: 'file-write', arguments: { handle_id: h, bufb64: chunk } }) + '\n',
      );
      let sent = 0;
      c.sock.on('error', () => {});
      let pushedBack = false;
      for (let i = 0; i < 40 && !c.closed && !pushedBack; i++) {
        sent++;
        if (c.sock.write(line)) continue;
        pushedBack = !(await Promise.race([
          new Promise((r) => c.sock.once('drain', () => r(true))),
          sleep(3_000).then(() => false),
        ]));
      }
      await sleep(1_000);
      const peak = memKiB(pid, 'VmHWM') / 1024;
      assert.ok(peak < 200, `peak RSS ${peak.toFixed(0)} MiB with ${sent} lines of 12 MiB sent`);
      assert.ok(pushedBack, `the agent took all ${sent} lines`);
      // Its budget is its own: a host on the other listener is served at once.
      const ms = await pingTime(other);
      assert.ok(ms < 1_000, `the other listener's host waited ${ms} ms`);
      c.close();
      await waitFor(() => !openFds(pid).some((t) => t === fifo), 5_000, 'the FIFO handle to be closed');
      assert.ok((await pingTime(agent.socket)) < 1_000);
    } finally {
      fs.closeSync(reader);
      await agent.stop();
    }
  }));

test("a host whose digests never end holds only its own share of the digest threads: another listener's md5 runs at once", () =>
  withFifo(async (_fifo, dir) => {
    const other = path.join(dir, 'other.sock');
    const agent = await startAgent(['--listen', `unix:${other}`]);
    try {
      const huge = path.join(dir, 'huge'); // sparse: hours of hashing, no disk
      fs.closeSync(fs.openSync(huge, 'w'));
      fs.truncateSync(huge, 2 ** 40);
      fs.writeFileSync(path.join(dir, 'small'), 'hello\n');
      const a = await agent.connect();
      for (let i = 0; i < 6; i++)
        a.send(JSON.stringify({ execute: 'get-file-md5sum', arguments: { path: huge }, tag: `h${i}` }) + '\n');
      await sleep(300);
      const b = await LineClient.connect(other);
      const t0 = Date.now();
      assert.is(
        await b.ok('get-file-md5sum', { path: path.join(dir, 'small') }, 5_000),
        'b1946ac92492d2347c6235b4d2611184',
      );
      assert.ok(Date.now() - t0 < 1_000, `the other host's md5 took ${Date.now() - t0} ms`);
      b.close();
      a.close(); // its digests are cancelled
    } finally {
      await agent.stop();
    }
  }));

test('--max-held-input takes MiB, at least 1', () => {
  const bad = spawn(process.execPath, [CLI, '--max-held-input', '0.5'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  bad.stderr!.on('data', (d) => (err += d));
  return new Promise<void>((resolve) =>
    bad.once('exit', (code) => {
      assert.is(code, 2);
      assert.match(err, /--max-held-input takes at least 1 \(MiB\)/);
      resolve();
    }),
  );
});

test(
  'a host whose answers wait for it to read is not idle: no handover while they wait, nor while reading is held back',
  async () => {
    const agent = await startAgent();
    const dir = tmpDir('ember-ga-sessions-');
    try {
      const f = path.join(dir, 'big');
      fs.writeFileSync(f, Buffer.alloc(12 << 20, 7));
      const a = await agent.connect();
      const h = (await a.ok('file-open', { path: f })) as number;
      a.sock.pause(); // takes none of its answers yet
      for (let i = 0; i < 3; i++)
        a.send(
          JSON.stringify({ execute: 'file-read', arguments: { handle_id: h, size: 4 << 20 }, tag: `r${i}` }) + '\n',
        );
      await sleep(500); // three 5.6 MB answers queued: over the output limit, reading held back
      const b = await agent.connect();
      b.send('{"execute":"ping","tag":"b"}\n');
      await sleep(7_000);
      assert.not.ok(a.closed, 'the host was cut off with its answers still queued');
      a.sock.resume();
      const answers = await a.waitLines(3, 20_000);
      assert.equal(answers.map((x) => x.tag).sort(), ['r0', 'r1', 'r2']);
      a.close();
      await b.waitLines(1, 10_000);
      b.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await agent.stop();
    }
  },
  { timeout: 60_000 },
);

test('SIGTERM with a half-closed host whose answer is still queued: the answer arrives whole', async () => {
  const agent = await startAgent();
  const dir = tmpDir('ember-ga-sessions-');
  try {
    const f = path.join(dir, 'big');
    fs.writeFileSync(f, Buffer.alloc(4 << 20, 9));
    const a = await agent.connect();
    const h = (await a.ok('file-open', { path: f })) as number;
    a.sock.pause();
    a.sock.end(
      JSON.stringify({ execute: 'file-read', arguments: { handle_id: h, size: 4 << 20 }, tag: 'whole' }) + '\n',
    );
    await sleep(500); // answered and queued; the agent has ended its side after it
    agent.proc.kill('SIGTERM');
    a.sock.resume();
    const [answer] = await a.waitLines(1, 10_000);
    assert.is(answer.tag, 'whole');
    assert.is(Buffer.from((answer.return as { bufb64: string }).bufb64, 'base64').length, 4 << 20);
    assert.is(await agent.exited, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await agent.stop();
  }
});

test.run();
