// Hostile hosts, all at one agent in one run: malformed and oversize input, hosts that vanish
// mid-request, stalled targets and oversize work. Afterwards a fresh host must be served at
// once, the agent's peak RSS must have stayed under its budget (docs/AGENT.md "Budgets": 200 MiB
// under any input), and nothing may be left behind: no fd, no file, no byte of disk.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as assert from 'uvu/assert';
import {
  cpuTicks,
  errorMessage,
  LineClient,
  memKiB,
  startAgent,
  startAgentWith,
  tmpDir,
  withTmpfs,
  type RunningAgent,
} from '../helpers/agent';
import { root, sleep, suite, waitFor } from '../helpers/harness';
import { QmpClient, startEmberQemuGa } from '../helpers/qemu-ga';
import { rawConnection } from '../helpers/unix-socket';

const test = suite('hostile hosts');

/** The agent's peak RSS budget under any input, in MiB (docs/AGENT.md "Budgets"). */
const PEAK_RSS_MIB = 200;

function fds(pid: number): string[] {
  return fs
    .readdirSync(`/proc/${pid}/fd`)
    .map((n) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${n}`);
      } catch {
        return '';
      }
    })
    .filter((t) => t !== '');
}

/** The agent used at most 2 ticks of CPU in the last 500 ms. */
async function cpuIdle(pid: number): Promise<boolean> {
  const t0 = cpuTicks(pid);
  await sleep(500);
  return cpuTicks(pid) - t0 <= 2;
}

/** Connects, sends `data` (no waiting for answers), and vanishes after `ms`. */
async function sendAndVanish(agent: RunningAgent, data: string | Buffer, ms = 50): Promise<void> {
  const s = await rawConnection(agent.socket);
  s.write(data);
  await sleep(ms);
  s.destroy();
}

const req = (execute: string, args?: Record<string, unknown>, tag = '') =>
  JSON.stringify({ execute, arguments: args, tag }) + '\n';

/** Every answer of a malformed request is an error line; the connection goes on. */
async function badInput(agent: RunningAgent): Promise<void> {
  const c = await agent.connect();
  const lines: (string | Buffer)[] = [
    'not json\n',
    '{"execute":\n',
    '[1,2,3]\n',
    '"just a string"\n',
    '{"execute":42}\n',
    '{"execute":"no-such-command","tag":"x"}\n',
    '{"execute":"file-open","arguments":{"path":["a"]}}\n',
    '{"execute":"file-open","arguments":{"path":"/tmp/x\\u0000y"}}\n',
    '{"execute":"file-read","arguments":{"handle_id":9007199254740993}}\n',
    '{"execute":"file-read","arguments":{"handle_id":1e308}}\n',
    '{"execute":"file-write","arguments":{"handle_id":1,"bufb64":"!!!notbase64"}}\n',
    '{"execute":"ping","tag":"\\udc00"}\n',
    Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x0a]),
    '['.repeat(100_000) + ']'.repeat(100_000) + '\n',
    '{"execute":"ping","tag":' + JSON.stringify('t'.repeat(1_000_000)) + '}\n',
  ];
  for (const l of lines) c.send(l);
  const answers = await c.waitLines(lines.length, 20_000);
  assert.is(answers.length, lines.length);
  assert.ok(answers.filter((a) => a.error).length >= lines.length - 2, 'each malformed line is answered with an error');
  // A line past the 16 MiB limit: one error, skipped to its newline without being held.
  const huge = Buffer.alloc(17 * 1024 * 1024, 0x61);
  c.send(huge);
  c.send('\n');
  const more = await c.waitLines(lines.length + 1, 20_000);
  assert.match(Buffer.from(more[lines.length].error!.bufb64, 'base64').toString(), /Request line too long/);
  // Lines under the limit that JSON.parse would make millions of values of (hundreds of MB):
  // refused before parsing, at the first limit they pass.
  c.send('['.repeat(8_000_000) + ']'.repeat(8_000_000) + '\n');
  c.send('[' + '{},'.repeat(5_000_000) + '{}]\n');
  const values = await c.waitLines(lines.length + 3, 20_000);
  const refused = values.slice(lines.length + 1).map((a) => Buffer.from(a.error!.bufb64, 'base64').toString());
  assert.equal(refused, [
    'Invalid JSON: nested more than 10000 deep',
    'Invalid JSON: more than 2097152 tokens in one request',
  ]);
  assert.is(await c.ok('ping'), (await c.ok('ping')) as string);
  c.close();
}

/** Hosts that leave mid-request: a read on a FIFO, a half line, an atomic upload, a plain upload. */
async function vanishingHosts(agent: RunningAgent, dir: string): Promise<void> {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  for (let i = 0; i < 5; i++) {
    const c = await agent.connect();
    const h = (await c.ok('file-open', { path: fifo })) as number;
    c.send(req('file-read', { handle_id: h }));
    const up = (await c.ok('file-open', { path: path.join(dir, `up${i}`), mode: 'w', atomic: true })) as number;
    c.send(req('file-write', { handle_id: up, bufb64: crypto.randomBytes(1 << 20).toString('base64') }));
    const plain = (await c.ok('file-open', { path: path.join(dir, `plain${i}`), mode: 'w' })) as number;
    c.send(req('file-write', { handle_id: plain, bufb64: crypto.randomBytes(1 << 20).toString('base64') }));
    c.send('{"execute":"file-wri'); // half a line
    await sleep(50);
    c.close();
  }
  for (let i = 0; i < 20; i++) await sendAndVanish(agent, '', 0); // connect and close at once
  // Four digests of a 50 GiB sparse file (hours of CPU), then gone.
  const sparse = path.join(dir, 'sparse');
  fs.closeSync(fs.openSync(sparse, 'w'));
  fs.truncateSync(sparse, 50 * 2 ** 30);
  await sendAndVanish(agent, req('get-file-md5sum', { path: sparse }).repeat(4), 300);
}

/** Pipelined 12 MiB writes into a FIFO nobody reads, then the host leaves. */
async function stalledTarget(agent: RunningAgent, dir: string): Promise<void> {
  const fifo = path.join(dir, 'stalled');
  execFileSync('mkfifo', [fifo]);
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const c = await agent.connect();
    const h = (await c.ok('file-open', { path: fifo, mode: 'w' })) as number;
    const line = Buffer.from(req('file-write', { handle_id: h, bufb64: Buffer.alloc(9 << 20, 1).toString('base64') }));
    c.sock.on('error', () => {});
    for (let i = 0; i < 30; i++) {
      if (c.sock.write(line)) continue;
      const drained = await Promise.race([
        new Promise((r) => c.sock.once('drain', () => r(true))),
        sleep(2_000).then(() => false),
      ]);
      if (!drained) break; // the agent pushes back
    }
    c.close();
  } finally {
    fs.closeSync(reader);
  }
}

/** Large answers the host never reads: 100 listings of a 20,000-entry directory, pipelined. */
async function oversizeWork(agent: RunningAgent, dir: string): Promise<void> {
  const big = path.join(dir, 'big');
  fs.mkdirSync(big);
  for (let i = 0; i < 20_000; i++) fs.writeFileSync(path.join(big, `entry-with-a-longish-name-${i}`), '');
  const s = await rawConnection(agent.socket);
  s.pause(); // never reads its answers
  for (let i = 0; i < 100; i++) s.write(req('directory-list', { path: big }, `l${i}`));
  await sleep(3_000);
  s.destroy();
  fs.rmSync(big, { recursive: true });
}

test(
  'mixed bad input, vanishing hosts, stalled targets and oversize work: then a fresh host is served at once, within budget, nothing left behind',
  async () => {
    const dir = tmpDir('ember-ga-hostile-');
    try {
      await withTmpfs(dir, 'scratch', 'size=256m', async (scratch) => {
        const agent = await startAgent();
        const pid = agent.proc.pid!;
        try {
          const freeBefore = fs.statfsSync(scratch).bfree;
          const fdsBefore = fds(pid);
          await badInput(agent);
          await vanishingHosts(agent, scratch);
          await stalledTarget(agent, scratch);
          await oversizeWork(agent, scratch);

          // A fresh host: served at once, and its work is not held up by what the others left.
          const c = await agent.connect();
          const t0 = Date.now();
          assert.is(typeof (await c.ok('ping', undefined, 5_000)), 'string');
          assert.ok(Date.now() - t0 < 500, `the fresh host's ping took ${Date.now() - t0} ms`);
          const small = path.join(scratch, 'small');
          fs.writeFileSync(small, 'hello\n');
          const t1 = Date.now();
          assert.is(
            await c.ok('get-file-md5sum', { path: small }, 5_000),
            crypto.createHash('md5').update('hello\n').digest('hex'),
          );
          assert.ok(Date.now() - t1 < 1_000, `md5 of a 6-byte file took ${Date.now() - t1} ms`);
          const h = (await c.ok('file-open', {
            path: path.join(scratch, 'verified'),
            mode: 'w',
            atomic: true,
          })) as number;
          await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('data').toString('base64') });
          assert.is(
            await c.ok(
              'file-close',
              { handle_id: h, md5: crypto.createHash('md5').update('data').digest('hex') },
              5_000,
            ),
            true,
          );
          c.close();

          const peak = memKiB(pid, 'VmHWM') / 1024;
          assert.ok(peak < PEAK_RSS_MIB, `peak RSS ${peak.toFixed(1)} MiB (budget ${PEAK_RSS_MIB})`);
          process.stdout.write(`  hostile run: agent peak RSS ${peak.toFixed(1)} MiB\n`);
          // Nothing left: fds, files beside the uploads, disk space, CPU.
          await waitFor(
            () => fds(pid).length <= fdsBefore.length,
            10_000,
            `the agent's fds back to ${fdsBefore.join(', ')} (now ${fds(pid).join(', ')})`,
          );
          for (const f of fs.readdirSync(scratch))
            if (f.startsWith('plain') || f === 'small' || f === 'verified') fs.rmSync(path.join(scratch, f));
          const left = fs.readdirSync(scratch).filter((f) => !['fifo', 'stalled', 'sparse'].includes(f)); // no upload was committed
          assert.equal(left, [], 'files left behind');
          await waitFor(() => fs.statfsSync(scratch).bfree >= freeBefore, 10_000, 'the disk space back');
          const cpu0 = cpuTicks(pid);
          await sleep(1_000);
          assert.ok(cpuTicks(pid) - cpu0 <= 10, `the agent is still busy: ${cpuTicks(pid) - cpu0} ticks in 1 s`);
        } finally {
          await agent.stop();
        }
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 180_000, needs: [root] },
);

test(
  'qemu-ga front-end: a huge invalid buf-b64, a 2^40-byte read, hosts that leave mid-read: each answered, then a fresh host is served, within budget',
  async () => {
    const MiB = 1024 * 1024;
    const dir = tmpDir('ember-ga-hostile-qga-');
    const agent = await startEmberQemuGa();
    const pid = agent.proc.pid!;
    try {
      const fdsBefore = fds(pid);
      const big = path.join(dir, 'big'); // sparse: its reads cost no disk
      fs.closeSync(fs.openSync(big, 'w'));
      fs.truncateSync(big, 512 * MiB);
      let c = await agent.qmp();
      const out = await c.ok<number>('guest-file-open', { path: path.join(dir, 'out'), mode: 'w' });
      const write = (b64: string) =>
        `{"execute":"guest-file-write","arguments":{"handle":${out},"buf-b64":"${b64}"}}\n`;
      // 15 MiB of characters base64 does not use: qemu-ga's one error.
      c.send(write('!'.repeat(15 * MiB)));
      assert.equal((await c.answer(30_000)).error, {
        class: 'GenericError',
        desc: 'Base64 data contains invalid characters',
      });
      // 12 MiB of base64 broken into lines (not strict: decoded qemu-ga's lenient way).
      const lines = 160 * 1024;
      c.send(write(('QUJD'.repeat(19) + '\\n').repeat(lines)));
      assert.equal((await c.answer(30_000)).return, { count: lines * 57, eof: false });
      // Past the 16 MiB a request may have: one error, and the connection goes on.
      c.send(write('A'.repeat(17 * MiB)));
      assert.ok((await c.answer(30_000)).error, 'an oversize request is answered with an error');
      const r = await c.ok<number>('guest-file-open', { path: big });
      assert.equal((await c.call('guest-file-read', { handle: r, count: 2 ** 40 })).error, {
        class: 'GenericError',
        desc: "value '1099511627776' is invalid for argument count",
      });
      c.close();
      // Hosts that pipeline 48 MiB reads and leave without reading an answer.
      for (let i = 0; i < 3; i++) {
        const read = `{"execute":"guest-file-read","arguments":{"handle":${r},"count":${48 * MiB}}}\n`;
        await sendAndVanish(agent, read.repeat(8), 300);
      }
      // A fresh host: served at once; the handle outlived the hosts (qemu-ga's are the agent's).
      c = await agent.qmp();
      const t0 = Date.now();
      assert.equal(await c.ok('guest-ping', undefined, 5_000), {});
      assert.ok(Date.now() - t0 < 1_000, `the fresh host's ping took ${Date.now() - t0} ms`);
      const got = await c.ok<{ count: number; eof: boolean }>('guest-file-read', { handle: r, count: 4096 }, 10_000);
      assert.equal({ count: got.count, eof: got.eof }, { count: 4096, eof: false });
      assert.equal(await c.ok('guest-file-close', { handle: r }), {});
      assert.equal(await c.ok('guest-file-close', { handle: out }), {});
      c.close();
      const peak = memKiB(pid, 'VmHWM') / 1024;
      assert.ok(peak < PEAK_RSS_MIB, `peak RSS ${peak.toFixed(1)} MiB (budget ${PEAK_RSS_MIB})`);
      process.stdout.write(`  hostile qemu-ga run: agent peak RSS ${peak.toFixed(1)} MiB\n`);
      await waitFor(
        () => fds(pid).length <= fdsBefore.length,
        10_000,
        `the agent's fds back to ${fdsBefore.join(', ')} (now ${fds(pid).join(', ')})`,
      );
      const cpu0 = cpuTicks(pid);
      await sleep(1_000);
      assert.ok(cpuTicks(pid) - cpu0 <= 10, `the agent is still busy: ${cpuTicks(pid) - cpu0} ticks in 1 s`);
    } finally {
      await agent.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 120_000 },
);

/** A directory of `n` empty files with names of ~31 bytes (`pad` more): a listing of it is ~360 bytes an entry (and `pad`). */
function filledDir(dir: string, n: number, pad = 0): string {
  const d = path.join(dir, `entries-${n}-${pad}`);
  fs.mkdirSync(d);
  for (let i = 0; i < n; i++)
    fs.closeSync(fs.openSync(path.join(d, `entry-with-a-longish-name-${'x'.repeat(pad)}${i}`), 'w'));
  return d;
}

/** A host on `socket` that sends `lines` and reads none of its answers. Destroy it when done. */
async function stalledHost(socket: string, lines: string): Promise<net.Socket> {
  const s = await rawConnection(socket);
  s.pause();
  s.write(lines);
  return s;
}

test(
  "a host whose pipelined listings wait for it to read its answers holds back no other endpoint's bulk command",
  async () => {
    const dir = tmpDir('ember-ga-hostile-bulk-');
    const stalled = path.join(dir, 'stalled.sock');
    const other = path.join(dir, 'other.sock');
    const qga = path.join(dir, 'qga.sock');
    const agent = await startAgentWith(
      ['--listen', `phoenix:unix:${stalled}`, '--listen', `phoenix:unix:${other}`, '--listen', `qemu-ga:unix:${qga}`],
      stalled,
      dir,
    );
    let s: net.Socket | undefined;
    try {
      // 20 listings of ~7 MiB for a host that reads none: after the first ones its queue is past
      // the 16 MiB output limit, and the rest wait for it to read.
      const big = filledDir(dir, 20_000);
      s = await stalledHost(stalled, req('directory-list', { path: big }).repeat(20));
      await waitFor(() => cpuIdle(agent.proc.pid!), 30_000, 'the agent to be done with what it can answer');
      const c = await LineClient.connect(other);
      const t0 = Date.now();
      const list = (await c.ok('directory-list', { path: dir }, 5_000)) as { name: string }[];
      assert.ok(Date.now() - t0 < 1_000, `the other host's listing took ${Date.now() - t0} ms`);
      assert.ok(list.some((e) => e.name === 'entries-20000-0'));
      c.close();
      const q = await QmpClient.connect(qga);
      const t1 = Date.now();
      assert.ok(Array.isArray(await q.ok('guest-network-get-interfaces', undefined, 5_000)));
      assert.ok(Date.now() - t1 < 1_000, `the qemu-ga host's guest-network-get-interfaces took ${Date.now() - t1} ms`);
      q.close();
    } finally {
      s?.destroy();
      await agent.stop();
    }
  },
  { timeout: 60_000 },
);

test(
  'a host that pipelines 4 MiB reads of 64 devices and reads none: reads on the thread pool count before they are done',
  async () => {
    const dir = tmpDir('ember-ga-hostile-zero-');
    const sock = path.join(dir, 'ga.sock');
    const agent = await startAgentWith(['--listen', `unix:${sock}`], sock, dir);
    let s: net.Socket | undefined;
    try {
      const c = (s = await rawConnection(sock));
      // Handles are the session's: it opens them, then stops reading and asks for 4 MiB of each,
      // four times. /dev/zero is never cached: every read waits on the thread pool.
      c.write(req('file-open', { path: '/dev/zero', mode: 'r' }).repeat(64));
      let opened = '';
      await waitFor(() => (opened += String(c.read() ?? '')).split('\n').length > 64, 10_000, 'the file-open answers');
      const handles = opened
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { return: number }).return);
      c.pause();
      c.write(
        handles
          .map((id) => req('file-read', { handle_id: id, size: 4 * 1024 * 1024 }))
          .join('')
          .repeat(4),
      );
      await waitFor(() => cpuIdle(agent.proc.pid!), 60_000, 'the agent to be done with what it can answer');
      // Before, all 64 passed the output limit before any counted: 457 MiB.
      const peak = memKiB(agent.proc.pid!, 'VmHWM') / 1024;
      process.stdout.write(`  device reads run: agent peak RSS ${peak.toFixed(1)} MiB\n`);
      assert.ok(peak < PEAK_RSS_MIB, `peak RSS ${peak.toFixed(1)} MiB (budget ${PEAK_RSS_MIB})`);
    } finally {
      s?.destroy();
      await agent.stop();
    }
  },
  { timeout: 120_000 },
);

/** A qemu-ga host on `socket` that opens `file` and asks for `reads` 48 MiB reads of it, reading none of the answers. */
async function stalledReads(socket: string, file: string, reads: number): Promise<net.Socket> {
  const s = await rawConnection(socket);
  s.write(JSON.stringify({ execute: 'guest-file-open', arguments: { path: file } }) + '\n');
  let opened = '';
  await waitFor(() => (opened += String(s.read() ?? '')).includes('\n'), 5_000, 'the guest-file-open answer');
  const handle = (JSON.parse(opened) as { return: number }).return;
  const read = JSON.stringify({ execute: 'guest-file-read', arguments: { handle, count: 48 * 1024 * 1024 } }) + '\n';
  s.write(read.repeat(reads));
  return s;
}

test(
  'hosts of four endpoints asking for large answers and reading none: the agent stays within budget as a whole, and a host of another endpoint is served at once',
  async () => {
    const MiB = 1024 * 1024;
    const dir = tmpDir('ember-ga-hostile-endpoints-');
    const qgas = [1, 2, 3].map((i) => path.join(dir, `qga${i}.sock`));
    const phoenix = path.join(dir, 'phoenix.sock');
    const fresh = path.join(dir, 'fresh.sock');
    const agent = await startAgentWith(
      [
        ...qgas.flatMap((q) => ['--listen', `qemu-ga:unix:${q}`]),
        '--listen',
        `phoenix:unix:${phoenix}`,
        '--listen',
        `qemu-ga:unix:${fresh}`,
      ],
      fresh,
      dir,
    );
    const pid = agent.proc.pid!;
    const stalled: net.Socket[] = [];
    try {
      const big = path.join(dir, 'big'); // sparse: its reads cost no disk
      fs.closeSync(fs.openSync(big, 'w'));
      fs.truncateSync(big, 512 * MiB);
      const small = path.join(dir, 'small');
      fs.writeFileSync(small, crypto.randomBytes(8192));
      // 3.2 MiB of names: each listing waiting for its share has read them once.
      const listing = filledDir(dir, 16_000, 170);
      // Each qemu-ga host's 48 MiB reads make 64 MiB answers; the phoenix host's listings ~8 MiB
      // each. Per endpoint that was within budget; four endpoints' together were not.
      for (const q of qgas) stalled.push(await stalledReads(q, big, 8));
      stalled.push(await stalledHost(phoenix, req('directory-list', { path: listing }).repeat(80)));
      await waitFor(() => cpuIdle(pid), 60_000, 'the agent to be done with what it can answer');
      const stalledPeak = memKiB(pid, 'VmHWM') / 1024;

      // A host of another endpoint: its ping and its 4 KiB read are answered at once.
      const c = await QmpClient.connect(fresh);
      const t0 = Date.now();
      assert.equal(await c.ok('guest-ping', undefined, 5_000), {});
      assert.ok(Date.now() - t0 < 1_000, `the fresh host's ping took ${Date.now() - t0} ms`);
      const h = await c.ok<number>('guest-file-open', { path: small });
      const t1 = Date.now();
      const got = await c.ok<{ count: number }>('guest-file-read', { handle: h, count: 4096 }, 5_000);
      assert.is(got.count, 4096);
      assert.ok(Date.now() - t1 < 1_000, `the fresh host's 4 KiB read took ${Date.now() - t1} ms`);
      // So is its bulk command: the stalled listings wait for their share out of their turn.
      const t2 = Date.now();
      assert.ok(Array.isArray(await c.ok('guest-network-get-interfaces', undefined, 5_000)));
      assert.ok(Date.now() - t2 < 1_000, `the fresh host's guest-network-get-interfaces took ${Date.now() - t2} ms`);
      // Its own 48 MiB read, while the stalled hosts hold the budget of large answers: answered
      // at once, short (eof false), never waiting (its session's later requests would wait
      // behind it: a thaw, say); then its ping is answered at once too.
      const b = await c.ok<number>('guest-file-open', { path: big });
      const t3 = Date.now();
      const short = await c.ok<{ count: number; eof: boolean }>(
        'guest-file-read',
        { handle: b, count: 48 * MiB },
        10_000,
      );
      assert.equal({ count: short.count, eof: short.eof }, { count: 4_718_544, eof: false });
      assert.ok(Date.now() - t3 < 5_000, `the fresh host's 48 MiB read took ${Date.now() - t3} ms`);
      assert.equal(await c.ok('guest-ping', undefined, 5_000), {});
      // A 48 MiB read is whole once the others' large answers are gone with their hosts (their
      // shares given back as their sessions end: a few tries, not one that leaked).
      for (const s of stalled.splice(0)) s.destroy();
      let whole = 0;
      for (let i = 0; i < 10 && whole !== 48 * MiB; i++) {
        await sleep(300);
        whole = (await c.ok<{ count: number }>('guest-file-read', { handle: b, count: 48 * MiB }, 30_000)).count;
      }
      assert.is(whole, 48 * MiB, 'a 48 MiB read once the stalled hosts are gone');
      c.close();

      const peak = memKiB(pid, 'VmHWM') / 1024;
      process.stdout.write(
        `  hostile endpoints run: agent peak RSS ${stalledPeak.toFixed(1)} MiB with the hosts stalled, ${peak.toFixed(1)} MiB in all\n`,
      );
      assert.ok(peak < PEAK_RSS_MIB, `peak RSS ${peak.toFixed(1)} MiB (budget ${PEAK_RSS_MIB})`);
    } finally {
      for (const s of stalled) s.destroy();
      await agent.stop();
    }
  },
  { timeout: 120_000 },
);

test(
  'requests just under the token limit that parse into millions of values, pipelined on both protocols: answered, within budget',
  async () => {
    const dir = tmpDir('ember-ga-hostile-json-');
    const phoenix = path.join(dir, 'ga.sock');
    const qga = path.join(dir, 'qga.sock');
    const agent = await startAgentWith(
      ['--listen', `phoenix:unix:${phoenix}`, '--listen', `qemu-ga:unix:${qga}`],
      phoenix,
      dir,
    );
    const pid = agent.proc.pid!;
    try {
      // The worst shapes a fuzz campaign found, each just under 2,097,152 tokens, pipelined. Before
      // the depth limit and the collection before each such parse: 224 MiB (3 lines of 1,048,560
      // nested arrays alone), 178 MiB (10 of 699,040 empty objects), 181-217 MiB (qemu-ga).
      const stat = (json: string) => `{"execute":"file-stat","arguments":{"path":${json}}}\n`;
      const c = await LineClient.connect(phoenix);
      const shapes: [string, number, RegExp][] = [
        [stat('['.repeat(1_048_560) + ']'.repeat(1_048_560)), 3, /^Invalid JSON: nested more than 10000 deep$/],
        [stat('[{"a":'.repeat(349_520) + '0' + '}]'.repeat(349_520)), 3, /^Invalid JSON: nested more than 10000 deep$/],
        [stat('[' + '{},'.repeat(699_039) + '{}]'), 10, /"path": expected a string, got an array/],
      ];
      const answers: [string, RegExp][] = [];
      for (const [line, times, error] of shapes) {
        c.send(line.repeat(times));
        const got = await c.waitLines(answers.length + times, 60_000);
        for (const a of got.slice(answers.length)) answers.push([errorMessage(a), error]);
      }
      assert.is(typeof (await c.ok('ping')), 'string');
      c.close();
      const q = await QmpClient.connect(qga);
      const keys = Array.from({ length: 524_270 }, (_, i) => `"k${i}":0`).join(',');
      q.send(`{"execute":"guest-ping","arguments":{"a":{${keys}}}}\n`.repeat(15));
      for (let i = 0; i < 15; i++)
        answers.push([(await q.answer(60_000)).error!.desc, /^Parameter 'a' is unexpected$/]);
      assert.equal(await q.ok('guest-ping', undefined, 5_000), {});
      q.close();
      const peak = memKiB(pid, 'VmHWM') / 1024;
      assert.ok(peak < PEAK_RSS_MIB, `peak RSS ${peak.toFixed(1)} MiB (budget ${PEAK_RSS_MIB})`);
      process.stdout.write(`  hostile JSON run: agent peak RSS ${peak.toFixed(1)} MiB\n`);
      for (const [message, expected] of answers) assert.match(message, expected);
    } finally {
      await agent.stop();
    }
  },
  { timeout: 180_000 },
);

test.run();
