// Agent.stop(): urgent exit hooks (thaw) run before the agent waits for commands in flight,
// the others after them.
import * as assert from 'uvu/assert';
import { Agent } from '../../lib/agent';
import { defineCommand } from '../../lib/registry';
import type { SessionSink, Transport, TransportSink } from '../../lib/transports/transport';
import { suite, waitFor } from '../helpers/harness';

const test = suite('agent stop');

class FakeTransport implements Transport {
  description = 'fake';
  session!: SessionSink;
  written: string[] = [];
  async start(sink: TransportSink) {
    this.session = sink.begin((line) => this.written.push(line.toString()));
  }
  queued = 0;
  pause() {}
  resume() {}
  async flush() {}
  async close() {}
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

test.run();
