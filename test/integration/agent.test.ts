// The agent process over a unix socket: framing, bad input, concurrency, lifecycle.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import {
  cpuTicks,
  errorMessage,
  fails,
  memKiB,
  startAgent,
  tmpDir,
  type RunningAgent,
  type Answer,
} from '../helpers/agent';
import { suite, waitFor } from '../helpers/harness';

const test = suite<{ agent: RunningAgent }>('agent', {} as { agent: RunningAgent });

test.before(async (ctx) => {
  ctx.agent = await startAgent();
});
test.after(async (ctx) => {
  await ctx.agent.stop();
});

test('ping over the socket, CRLF and LF, tag "" when absent', async ({ agent }) => {
  const c = await agent.connect();
  c.send('{"execute":"ping"}\r\n{"execute":"ping","tag":"b"}\n');
  const answers = await c.waitLines(2);
  assert.equal(answers.map((a) => a.tag).sort(), ['', 'b']);
  assert.ok(answers.every((a) => typeof a.return === 'string'));
  c.close();
});

test('1000 requests in one write: 1000 answers, every tag once', async ({ agent }) => {
  const c = await agent.connect();
  let batch = '';
  for (let i = 0; i < 1000; i++) batch += JSON.stringify({ execute: 'ping', tag: `n${i}` }) + '\r\n';
  c.send(batch);
  const answers = await c.waitLines(1000);
  assert.is(answers.length, 1000);
  assert.is(new Set(answers.map((a) => a.tag)).size, 1000);
  c.close();
});

test('a request split across many small writes', async ({ agent }) => {
  const c = await agent.connect();
  const msg = '{"execute":"ping","tag":"split"}\r\n';
  for (const ch of msg) {
    c.send(ch);
    await new Promise((r) => setImmediate(r));
  }
  const [a] = await c.waitLines(1);
  assert.is(a.tag, 'split');
  c.close();
});

test('bad input: each gets a clear error and the next request is served', async ({ agent }) => {
  const c = await agent.connect();
  const bad: [string, RegExp][] = [
    ['{not json', /^Invalid JSON/],
    ['["ping"]', /expected a JSON object, got an array/],
    ['"ping"', /expected a JSON object, got a string/],
    ['{"arguments":{}}', /"execute" is missing/],
    ['{"execute":42}', /"execute" must be a string/],
    ['{"execute":"no-such-thing"}', /^Unknown command: no-such-thing$/],
  ];
  for (const [line, re] of bad) {
    c.send(line + '\r\n');
    c.send('{"execute":"ping","tag":"after"}\r\n');
    const answers = await c.waitLines(2);
    const err = answers.find((a) => a.error);
    assert.ok(err, `no error for ${line}`);
    assert.match(errorMessage(err!), re);
    assert.is(err!.error!.code, -1);
    assert.ok(answers.some((a) => a.tag === 'after' && typeof a.return === 'string'));
    c.lines.length = 0;
  }
  c.close();
});

test('binary garbage: errors, no crash, then served', async ({ agent }) => {
  const c = await agent.connect();
  const junk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
  c.send(junk);
  c.send('\n{"execute":"ping","tag":"alive"}\r\n');
  await waitFor(() => c.lines.some((l) => l.includes('"alive"')), 10_000, 'ping after garbage');
  for (const l of c.lines) JSON.parse(l); // every answer is well-formed JSON
  c.close();
});

test(
  'a 100 MiB line: one error, resync, agent memory stays bounded',
  async ({ agent }) => {
    const c = await agent.connect();
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    for (let i = 0; i < 100; i++) {
      if (!c.sock.write(chunk)) await new Promise((r) => c.sock.once('drain', r));
    }
    c.send('\r\n{"execute":"ping","tag":"after-huge"}\r\n');
    const answers = await c.waitLines(2, 30_000);
    assert.match(errorMessage(answers.find((a) => a.error)!), /Request line too long: the limit is 16777216 bytes/);
    assert.ok(answers.some((a) => a.tag === 'after-huge'));
    const rssKiB = memKiB(agent.proc.pid!, 'VmHWM');
    assert.ok(rssKiB < 150 * 1024, `peak RSS ${rssKiB} KiB`);
    c.close();
  },
  { timeout: 60_000 },
);

test(
  'fuzz: random and mutated requests, every well-formed line answered',
  async ({ agent }) => {
    const c = await agent.connect();
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const seeds = [
      '{"execute":"ping","tag":"T"}',
      '{"execute":"get-commands","arguments":{},"tag":"T"}',
      '{"execute":"file-read","arguments":{"handle_id":1},"tag":"T"}',
      '{"execute":"file-open","arguments":{"path":"/nonexistent","mode":"r"},"tag":"T"}',
    ];
    const alphabet = '{}[]":,\\ \t0123456789abcdefnulltrue\u00e9\u0000';
    let expected = 0;
    for (let i = 0; i < 2000; i++) {
      let line: string;
      if (rand(4) === 0) {
        line = Array.from({ length: rand(80) }, () => alphabet[rand(alphabet.length)]).join('');
      } else {
        const chars = [...seeds[rand(seeds.length)].replace('T', `f${i}`)];
        for (let k = rand(4); k > 0; k--) chars[rand(chars.length)] = alphabet[rand(alphabet.length)];
        line = chars.join('');
      }
      line = line.replace(/[\r\n]/g, '');
      if (line.trim() === '') continue;
      expected++;
      c.send(line + '\r\n');
    }
    c.send('{"execute":"ping","tag":"fuzz-end"}\r\n');
    const answers: Answer[] = await c.waitLines(expected + 1, 30_000);
    assert.is(answers.length, expected + 1);
    assert.ok(answers.some((a) => a.tag === 'fuzz-end'));
    assert.is(agent.proc.exitCode, null);
    c.close();
  },
  { timeout: 60_000 },
);

test('a host that half-closes after its requests still gets every answer', async ({ agent }) => {
  const c = await agent.connect();
  let batch = '';
  for (let i = 0; i < 50; i++) batch += `{"execute":"ping","tag":"h${i}"}\r\n`;
  c.sock.end(batch);
  const answers = await c.waitLines(50);
  assert.is(new Set(answers.map((a) => a.tag)).size, 50);
  await waitFor(() => c.closed, 5_000, 'the agent to close its side');
});

test('one host at a time: a second connection is served once the first closes', async ({ agent }) => {
  const first = await agent.connect();
  await first.call('ping');
  const second = await agent.connect();
  second.send('{"execute":"ping","tag":"second"}\r\n');
  await new Promise((r) => setTimeout(r, 200));
  assert.is(second.lines.length, 0);
  first.close();
  const [a] = await second.waitLines(1);
  assert.is(a.tag, 'second');
  second.close();
});

test('a host that left with a read waiting on a FIFO: the next host is served at once, never gets its answer, and the handle is closed', async ({
  agent,
}) => {
  const dir = tmpDir('ember-ga-gone-');
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const writer = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK); // holds the FIFO open
  try {
    const first = await agent.connect();
    const h = (await first.ok('file-open', { path: fifo })) as number;
    first.send(JSON.stringify({ execute: 'file-read', arguments: { handle_id: h }, tag: 'for-the-first' }) + '\n');
    await new Promise((r) => setTimeout(r, 200)); // the read waits for data
    first.sock.destroy(); // gone for good (a half-close would wait for its answers)
    const second = await agent.connect();
    const t0 = Date.now();
    await second.call('ping');
    assert.ok(Date.now() - t0 < 1_000, `the next host waited ${Date.now() - t0} ms`); // it was 5 s
    fs.writeSync(writer, 'now'); // the first host's read completes, after it left
    await new Promise((r) => setTimeout(r, 300));
    second.send('{"execute":"ping","tag":"mine"}\n');
    await waitFor(() => second.lines.some((l) => l.includes('"mine"')), 5_000, "the second host's answer");
    assert.not.ok(
      second.lines.some((l) => l.includes('for-the-first')),
      `the second host got the first host's answer: ${second.lines.join(' | ')}`,
    );
    // The first host's session is over: its handle was closed, its read cancelled.
    await fails(
      second,
      'file-close',
      { handle_id: h },
      -1,
      /^Handle \d+ was closed when the host that opened it went away \(.*fifo\); open it again$/,
    );
    second.close();
  } finally {
    fs.closeSync(writer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

const life = suite('agent lifecycle');

life('agent-shutdown answers true, then the agent exits 0', async () => {
  const agent = await startAgent();
  const c = await agent.connect();
  assert.is(await c.ok('agent-shutdown'), true);
  assert.is(await agent.exited, 0);
  await agent.stop();
});

life('SIGTERM and SIGINT: exit 0', async () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const agent = await startAgent();
    const c = await agent.connect();
    await c.ok('ping');
    agent.proc.kill(sig);
    assert.is(await agent.exited, 0, sig);
    await agent.stop();
  }
});

life('SIGTERM exits even with a second host waiting (unread request) and the first never closing', async () => {
  const agent = await startAgent();
  const first = await agent.connect();
  await first.ok('ping');
  const second = await agent.connect();
  second.send('{"execute":"ping","tag":"waiting"}\r\n');
  await new Promise((r) => setTimeout(r, 100));
  agent.proc.kill('SIGTERM');
  const code = await Promise.race([agent.exited, new Promise((r) => setTimeout(() => r('hung'), 5_000))]);
  assert.is(code, 0);
  first.close();
  second.close();
  await agent.stop();
});

life('a broken stderr (EPIPE) neither kills the agent nor makes it spin', async () => {
  const agent = await startAgent();
  agent.proc.stderr!.destroy(); // whoever read the log went away
  const cpu = () => cpuTicks(agent.proc.pid!);
  for (let i = 0; i < 3; i++) {
    const c = await agent.connect(); // connect and disconnect are logged
    await c.ok('ping');
    c.close();
  }
  const before = cpu();
  await new Promise((r) => setTimeout(r, 1_000));
  assert.ok(cpu() - before <= 10, `agent used ${cpu() - before} ticks of 100 idle`);
  const c = await agent.connect();
  await c.ok('ping');
  c.close();
  assert.is(agent.proc.exitCode, null);
  await agent.stop();
});

life.run();
