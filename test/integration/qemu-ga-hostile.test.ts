// Hostile hosts on the qemu-ga front-end: floods, oversize and malformed requests, hosts that
// vanish mid-request. Each gets a clear error or nothing; the next host is served at once and
// the agent stays inside its memory budget (docs/AGENT.md "Budgets").
import * as net from 'net';
import * as assert from 'uvu/assert';
import { memKiB, type RunningAgent } from '../helpers/agent';
import { sleep, suite } from '../helpers/harness';
import { QmpClient, startEmberQemuGa } from '../helpers/qemu-ga';

const test = suite<{ agent: RunningAgent & { qmp(): Promise<QmpClient> } }>('qemu-ga hostile hosts', {} as never);
const PEAK_RSS_MIB = 200;

test.before(async (ctx) => {
  ctx.agent = await startEmberQemuGa();
});
test.after(async (ctx) => {
  await ctx.agent.stop();
});

/** A new host is answered at once. */
async function servesNext(agent: { qmp(): Promise<QmpClient> }): Promise<void> {
  const c = await agent.qmp();
  const t = Date.now();
  assert.equal(await c.ok('guest-sync', { id: 42 }, 5_000), 42);
  assert.ok(Date.now() - t < 2_000, 'answered at once');
  c.close();
}

async function raw(agent: RunningAgent): Promise<net.Socket> {
  const s = net.connect(agent.socket);
  s.on('error', () => {});
  s.on('data', () => {}); // a host that reads (the tests that stop reading say so)
  await new Promise((r) => s.once('connect', r));
  return s;
}

test('a flood of 0xFF: a few errors, then a request is served as usual', async ({ agent }) => {
  const c = await agent.qmp();
  c.send(Buffer.alloc(4 << 20, 0xff));
  c.send('{"execute":"guest-sync","arguments":{"id":7}}');
  const errors: string[] = [];
  for (;;) {
    const a = await c.answer();
    if (a.error) errors.push(a.error.desc);
    else {
      assert.equal(a.return, 7);
      break;
    }
  }
  assert.ok(errors.length > 0 && errors.length <= 16, `${errors.length} errors`);
  assert.ok(errors.every((d) => d === "JSON parse error, stray '\uFFFD'"));
  c.close();
  await servesNext(agent);
});

test('a request over 16 MiB: one error, never held whole, and the next request is served', async ({ agent }) => {
  const c = await agent.qmp();
  const big = `{"execute":"guest-sync","arguments":{"id":1,"pad":"${'A'.repeat(20 << 20)}"}}`;
  c.send(big);
  c.send('{"execute":"guest-sync","arguments":{"id":2}}');
  const first = await c.answer(30_000);
  assert.match(first.error!.desc, /longer than 16777216 bytes/);
  assert.equal((await c.answer()).return, 2);
  c.close();
  assert.ok(memKiB(agent.proc.pid!, 'VmHWM') / 1024 < PEAK_RSS_MIB);
});

test('deep nesting, unbalanced brackets, invalid UTF-8, lone surrogates: errors, no crash', async ({ agent }) => {
  const c = await agent.qmp();
  // qemu's limit of 1024 brackets deep: each 1025th is an error and drops the value, as from
  // qemu-ga; what is left (one bracket) is closed and is a value of its own.
  c.send('['.repeat(1 << 20) + ']');
  for (let i = 0; i < Math.floor((1 << 20) / 1025); i++)
    assert.equal((await c.answer(30_000)).error!.desc, 'JSON nesting depth limit exceeded');
  assert.equal((await c.answer(30_000)).error!.desc, 'QMP input must be a JSON object');
  c.send(Buffer.concat([Buffer.from('{"execute":"guest-ping","id":"'), Buffer.from([0xc3]), Buffer.from('"}')]));
  assert.equal((await c.answer()).error!.class, 'GenericError');
  c.send('{"execute":"guest-ping","id":"\\ud800"}');
  const a = await c.answer();
  assert.ok(a.error || a.return !== undefined);
  c.send('{"execute":"guest-ping","arguments":{"a":' + '{"a":'.repeat(1000) + '1' + '}'.repeat(1001) + '}');
  assert.match((await c.answer()).error!.desc, /Parameter 'a' is unexpected/);
  c.close();
  await servesNext(agent);
});

test('100,000 pipelined requests from a host that never reads, then vanishes', async ({ agent }) => {
  const s = await raw(agent);
  s.removeAllListeners('data');
  s.pause();
  s.write('{"execute":"guest-ping"}'.repeat(100_000));
  await sleep(500);
  s.destroy();
  await servesNext(agent);
  assert.ok(memKiB(agent.proc.pid!, 'VmHWM') / 1024 < PEAK_RSS_MIB);
});

test(
  'floods of tiny requests and stray tokens from a host that reads: each answered, within budget',
  async ({ agent }) => {
    // A million answers of a few bytes each: the output budget must count what each one queued
    // costs in memory (hundreds of bytes), not its bytes, or the queue outgrows the budget.
    for (const [flood, answers] of [
      ['{"execute":"guest-ping"}'.repeat(1 << 20), 1 << 20],
      [']'.repeat(1 << 18) + ','.repeat(1 << 17), (1 << 18) + (1 << 17)],
    ] as const) {
      const s = await raw(agent);
      let lines = 0;
      s.removeAllListeners('data');
      s.on('data', (d: Buffer) => {
        for (let i = d.indexOf(0x0a); i >= 0; i = d.indexOf(0x0a, i + 1)) lines++;
      });
      s.write(flood);
      const t = Date.now();
      while (lines < answers && Date.now() - t < 90_000) await sleep(100);
      assert.is(lines, answers, 'every request answered');
      s.destroy();
      assert.ok(memKiB(agent.proc.pid!, 'VmHWM') / 1024 < PEAK_RSS_MIB, `${memKiB(agent.proc.pid!, 'VmHWM')} KiB`);
    }
    await servesNext(agent);
  },
  { timeout: 180_000 },
);

test('hosts that vanish mid-request, in every state of the framer', async ({ agent }) => {
  for (const part of ['{"execute":"guest-sy', '{"execute":"guest-sync","arguments":{"id":1', '"unterminated', 'garb']) {
    const s = await raw(agent);
    s.write(part);
    await sleep(20);
    s.destroy();
  }
  await servesNext(agent);
});

test.run();
