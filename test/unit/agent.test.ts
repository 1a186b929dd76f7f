// Agent.stop(): urgent exit hooks (thaw) run before the agent waits for commands in flight,
// the others after them. Endpoints added and removed while the agent runs.
import * as assert from 'uvu/assert';
import { Agent } from '../../lib/agent';
import { defineCommand } from '../../lib/protocols/phoenix/registry';
import { defineQgaCommand } from '../../lib/protocols/qemu-ga/schema';
import type { SessionSink, Transport, TransportSink } from '../../lib/transports/transport';
import { suite, waitFor } from '../helpers/harness';

const test = suite('agent stop');

class FakeTransport implements Transport {
  session!: SessionSink;
  written: string[] = [];
  /** Called with each answer as it is written (a port's write may see the host hang up). */
  onWrite?: (line: string) => void;
  paused = false;
  closed = false;
  constructor(
    readonly description = 'fake',
    private readonly fail?: Error,
  ) {}
  async start(sink: TransportSink) {
    this.session = sink.begin((line) => {
      this.written.push(line.toString());
      this.onWrite?.(line.toString());
    });
    if (this.fail) throw this.fail;
  }
  queued = 0;
  pause() {
    this.paused = true;
  }
  resume() {
    this.paused = false;
  }
  async flush() {}
  async close() {
    this.closed = true;
    this.session.end();
  }
}

test('urgent hooks run before in-flight commands finish; the rest after', async () => {
  const events: string[] = [];
  let unblock!: () => void;
  const blocked = new Promise<void>((r) => (unblock = r));
  const stuck = defineCommand({
    name: 'stuck',
    doc: '',
    args: {},
    handler: async () => {
      events.push('command started');
      await blocked; // like a write on a frozen filesystem
      events.push('command finished');
      return true;
    },
  });
  const transport = new FakeTransport();
  const agent = new Agent({ transport, commands: [stuck] });
  agent.ctx.onExit(() => void events.push('close handles'));
  agent.ctx.onExit(() => {
    events.push('thaw');
    unblock(); // thawing is what lets the stuck command finish
  }, true);
  await agent.start();
  transport.session.data(Buffer.from('{"execute":"stuck","tag":"s"}\n'));
  await waitFor(() => events.includes('command started'), 1_000, 'the command');
  await agent.stop();
  assert.equal(events, ['command started', 'thaw', 'command finished', 'close handles']);
  assert.equal(transport.written, ['{"return":true,"tag":"s"}\n']);
});

const waiting = defineCommand({
  name: 'wait',
  doc: '',
  args: {},
  handler: (_a, _ctx, call) =>
    new Promise((_r, reject) => call.signal.addEventListener('abort', () => reject(new Error('cancelled')))),
});
const ping = defineCommand({ name: 'ping', doc: '', args: {}, handler: () => 'pong' });

test('endpoints added and removed at run time: the others go on; the removed one ends its session', async () => {
  const a = new FakeTransport('a');
  const agent = new Agent({ endpoints: [{ transport: a, protocol: 'phoenix' }], commands: [waiting, ping] });
  await agent.start();
  const b = new FakeTransport('b');
  await agent.addEndpoint({ transport: b, protocol: 'phoenix' });
  assert.equal(
    agent.serving.map((e) => e.transport.description),
    ['a', 'b'],
  );
  const gone: number[] = [];
  agent.ctx.onHostGone((id) => gone.push(id));
  // b's host has work in flight when b goes away: it is cancelled, its answer dropped.
  b.session.data(Buffer.from('{"execute":"wait","tag":"w"}\n'));
  a.session.data(Buffer.from('{"execute":"wait","tag":"w"}\n'));
  await agent.removeEndpoint(b);
  assert.ok(b.closed);
  assert.equal(gone, [2]); // b's session (a's is 1)
  assert.equal(
    agent.serving.map((e) => e.transport.description),
    ['a'],
  );
  a.session.data(Buffer.from('{"execute":"ping","tag":"p"}\n'));
  await waitFor(() => a.written.length > 0, 1_000, "a's answer");
  assert.equal(a.written, ['{"return":"pong","tag":"p"}\n']);
  await agent.removeEndpoint(b); // not served any more: nothing happens
  await agent.stop();
  assert.equal(b.written, []);
  assert.ok(a.closed);
});

test('an endpoint that cannot start is not served, and its session does not linger', async () => {
  const agent = new Agent({ endpoints: [], commands: [ping] });
  await agent.start();
  const gone: number[] = [];
  agent.ctx.onHostGone((id) => gone.push(id));
  const bad = new FakeTransport('bad', new Error('open /dev/vport0p1: device or resource busy'));
  await agent.addEndpoint({ transport: bad, protocol: 'qemu-ga' }).then(
    () => assert.unreachable('it started'),
    (e: Error) => assert.match(e.message, /busy/),
  );
  assert.equal(agent.serving, []);
  assert.ok(bad.closed);
  assert.equal(gone, [1]);
  await agent.stop();
  await agent.addEndpoint({ transport: new FakeTransport(), protocol: 'phoenix' }).then(
    () => assert.unreachable('added to a stopped agent'),
    (e: Error) => assert.match(e.message, /stopping/),
  );
});

test('an endpoint added while the shared budgets hold reading back starts paused', async () => {
  const a = new FakeTransport('a');
  const agent = new Agent({
    endpoints: [{ transport: a, protocol: 'phoenix' }],
    commands: [waiting],
    config: { maxHeldInput: 1024 * 1024 },
  });
  await agent.start();
  // One request over twice the held-input budget (one is always let in): the shared budget is
  // spent, and reading pauses on every endpoint.
  a.session.data(Buffer.from(`{"execute":"wait","tag":"${'x'.repeat(2100 * 1024)}"}\n`));
  await waitFor(() => a.paused, 1_000, 'a paused');
  const b = new FakeTransport('b');
  await agent.addEndpoint({ transport: b, protocol: 'phoenix' });
  assert.ok(b.paused, 'b reads while the budget is spent');
  // a goes away, and with it the request holding the budget: b reads again.
  await agent.removeEndpoint(a);
  await waitFor(() => !b.paused, 1_000, 'b resumed');
  await agent.stop();
});

test('a host over its own held-input budget holds back only its endpoint, one added meanwhile included', async () => {
  const a = new FakeTransport('a');
  const b = new FakeTransport('b');
  const agent = new Agent({
    endpoints: [
      { transport: a, protocol: 'phoenix' },
      { transport: b, protocol: 'phoenix' },
    ],
    commands: [waiting],
    config: { maxHeldInput: 1024 * 1024 },
  });
  await agent.start();
  a.session.data(Buffer.from(`{"execute":"wait","tag":"${'x'.repeat(1100 * 1024)}"}\n`));
  await waitFor(() => a.paused, 1_000, 'a paused');
  assert.not.ok(b.paused, "b is held back by a's budget");
  const c = new FakeTransport('c');
  await agent.addEndpoint({ transport: c, protocol: 'phoenix' });
  assert.not.ok(c.paused, "c starts held back by a's budget");
  await agent.stop();
});

test('an answer made at once goes out at once; a hang-up seen in that write forgets only what is left of the chunk', async () => {
  const t = new FakeTransport();
  const agent = new Agent({ transport: t, commands: [ping] });
  await agent.start();
  const out = t.written;
  // The port's write may see the host gone and reset the session from within the write.
  t.onWrite = () => {
    if (out.length === 1) t.session.reset();
  };
  t.session.data(Buffer.from('{"execute":"ping","tag":"a"}\n{"execute":"ping","tag":"b"}\n{"execute":"pi'));
  // Both whole lines were answered during data() itself: no promise reaction in between.
  assert.equal(out, ['{"return":"pong","tag":"a"}\n', '{"return":"pong","tag":"b"}\n']);
  // The partial line at the end was forgotten by the reset: the next host's line stands alone.
  t.session.data(Buffer.from('{"execute":"ping","tag":"c"}\n'));
  assert.equal(out.slice(2), ['{"return":"pong","tag":"c"}\n']);
  await agent.stop();
});

test('qemu-ga: answered at once when nothing is before it, in order behind a request still running', async () => {
  let finish!: () => void;
  const slow = defineQgaCommand({
    name: 'slow',
    doc: '',
    args: {},
    handler: () => new Promise<string>((r) => (finish = () => r('slow'))),
  });
  const fast = defineQgaCommand({ name: 'fast', doc: '', args: {}, handler: () => 'fast' });
  const t = new FakeTransport();
  const agent = new Agent({ transport: t, protocol: 'qemu-ga', commands: [], qgaCommands: [slow, fast] });
  await agent.start();
  t.session.data(Buffer.from('{"execute":"fast","id":1}'));
  assert.equal(t.written, ['{"return": "fast", "id": 1}\n'], 'answered during data()');
  t.session.data(Buffer.from('{"execute":"slow","id":2}{"execute":"fast","id":3}'));
  await new Promise((r) => setTimeout(r, 20));
  assert.is(t.written.length, 1, 'the fast one waits behind the slow one');
  finish();
  await waitFor(() => t.written.length === 3, 1_000, 'both answers');
  assert.equal(t.written.slice(1), ['{"return": "slow", "id": 2}\n', '{"return": "fast", "id": 3}\n']);
  // Idle again: at once.
  await new Promise((r) => setTimeout(r, 0));
  t.session.data(Buffer.from('{"execute":"fast","id":4}'));
  assert.equal(t.written[3], '{"return": "fast", "id": 4}\n');
  // Errors too: the same bytes at once as behind a request still running.
  const errors = ['{"execute":"nope","id":5}', '{"execute":"fast","arguments":{"x":1},"id":5}', '{"id":5}', '[]'];
  for (const e of errors) {
    const n = t.written.length;
    t.session.data(Buffer.from(e));
    assert.is(t.written.length, n + 1, `${e}: answered at once`);
    t.session.data(Buffer.from(`{"execute":"slow","id":6}${e}`));
    finish();
    await waitFor(() => t.written.length === n + 3, 1_000, 'both answers');
    assert.is(t.written[n + 2], t.written[n], e);
  }
  await agent.stop();
});

test.run();
