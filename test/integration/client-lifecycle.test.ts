// The connection lifecycle GuestAgent has over either protocol (BaseConnection): the agent
// vanishing with requests pending, close() with requests pending, calls after close(),
// reconnect: false, noReconnect. Each case runs against phoenix's stub agent and the fake qemu-ga
// (both in this process), and must end the same way for both.
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { GuestAgent, GuestAgentError, type GuestAgentOptions, type Protocol } from '../../lib/client';
import { tmpDir } from '../helpers/agent';
import { startFakeQga } from '../helpers/fake-qga';
import { startStub } from '../helpers/stub-agent';
import { rejection, suite, waitFor } from '../helpers/harness';

const test = suite('client-lifecycle');

const rejects = (p: PromiseLike<unknown>) => rejection(p, GuestAgentError);

interface FakeAgent {
  path: string;
  connections: number;
  /** How many requests for `command` it has received. */
  received(command: string): number;
  dropConnections(): void;
  close(): Promise<void>;
}

interface Side {
  protocol: Protocol;
  /** A command the agent answers. */
  ok: string;
  /** A command the agent never answers. */
  silent: string;
  start(sock: string): Promise<FakeAgent>;
}

const sides: Side[] = [
  {
    protocol: 'phoenix',
    ok: 'agent-info',
    silent: 'ping',
    async start(sock) {
      const stub = await startStub(sock, { silent: ['ping'] });
      return Object.assign(stub, {
        received: (command: string) => stub.requests.filter((r) => r.execute === command).length,
      });
    },
  },
  {
    protocol: 'qemu-ga',
    ok: 'guest-ping',
    silent: 'guest-get-osinfo',
    async start(sock) {
      const fake = await startFakeQga(sock, {
        reply: (req) => (req.execute === 'guest-get-osinfo' ? { silent: true } : undefined),
      });
      return Object.assign(fake, {
        received: (command: string) => fake.requests.filter((r) => r.execute === command).length,
      });
    },
  },
];

async function withSide(
  side: Side,
  fn: (ga: GuestAgent, agent: FakeAgent) => Promise<void>,
  opts: Partial<GuestAgentOptions> = {},
): Promise<void> {
  const dir = tmpDir();
  const agent = await side.start(path.join(dir, 'agent.sock'));
  const ga = new GuestAgent({ socket: agent.path, protocol: side.protocol, timeout: 10_000, ...opts });
  try {
    await fn(ga, agent);
  } finally {
    await ga.close();
    await agent.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Three requests that get no answer, and their rejections (taken at once: none goes unhandled). */
async function threeSilent(ga: GuestAgent, agent: FakeAgent, side: Side): Promise<Promise<GuestAgentError>[]> {
  const errors = [0, 1, 2].map(() => rejects(ga.call(side.silent)));
  // qemu-ga's gets one request at a time: the first is sent, the other two wait in the queue.
  await waitFor(() => agent.received(side.silent) >= 1, 5_000, 'the first request to arrive');
  assert.is(ga.inFlight, 3);
  return errors;
}

for (const side of sides) {
  const { protocol, ok, silent } = side;

  test(`${protocol}: the agent vanishes with requests pending: each fails with ECONNRESET under its own name`, () =>
    withSide(side, async (ga, agent) => {
      const disconnects: unknown[] = [];
      ga.on('disconnect', (e) => disconnects.push(e));
      await ga.call(ok);
      const errors = await threeSilent(ga, agent, side);
      agent.dropConnections();
      for (const e of await Promise.all(errors)) {
        assert.equal([e.code, e.command, e.remote], ['ECONNRESET', silent, false]);
        assert.match(e.message, new RegExp(`^${silent}: connection to unix:.* lost`));
      }
      assert.is(disconnects.length, 1);
      assert.ok(disconnects[0] instanceof GuestAgentError);
      assert.is((disconnects[0] as GuestAgentError).code, 'ECONNRESET');
      assert.equal([ga.inFlight, ga.connected], [0, false]);
      await ga.call(ok); // the next call connects again
      assert.is(agent.connections, 2);
    }));

  test(`${protocol}: close() with requests pending fails each with ECONNRESET; later calls ENOTCONN`, () =>
    withSide(side, async (ga, agent) => {
      const errors = await threeSilent(ga, agent, side);
      await ga.close();
      for (const e of await Promise.all(errors))
        assert.equal([e.code, e.command, e.message], ['ECONNRESET', silent, `${silent}: the client was closed`]);
      assert.equal([ga.inFlight, ga.connected], [0, false]);
      const after = await rejects(ga.call(ok));
      assert.equal([after.code, after.message], ['ENOTCONN', `${ok}: the client is closed`]);
      assert.is((await rejects(ga.connect())).code, 'ENOTCONN');
      assert.is(agent.connections, 1);
    }));

  test(`${protocol}: reconnect: false: after a loss calls fail with ENOTCONN; connect() still works`, () =>
    withSide(
      side,
      async (ga, agent) => {
        await ga.call(ok);
        agent.dropConnections();
        await waitFor(() => !ga.connected, 5_000, 'the loss to be seen');
        const e = await rejects(ga.call(ok));
        assert.equal([e.code, e.command], ['ENOTCONN', ok]);
        assert.match(e.message, new RegExp(`^${ok}: not connected to unix:`));
        assert.is(agent.connections, 1);
        await ga.connect();
        await ga.call(ok);
        assert.is(agent.connections, 2);
      },
      { reconnect: false },
    ));

  test(`${protocol}: noReconnect: a call with no connection fails with ENOTCONN and does not connect`, () =>
    withSide(side, async (ga, agent) => {
      const e = await rejects(ga.call(ok, undefined, { noReconnect: true }));
      assert.equal([e.code, e.command], ['ENOTCONN', ok]);
      assert.is(agent.connections, 0);
      await ga.call(ok);
      await ga.call(ok, undefined, { noReconnect: true }); // connected: sent as any other
      assert.is(agent.connections, 1);
    }));
}

test.run();
