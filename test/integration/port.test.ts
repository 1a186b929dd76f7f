// The port transport, with a pty standing in for the virtio-serial port: socat holds the pty's
// master (the "host side") and bridges it to a unix socket the test talks to.
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { CLI, LineClient, cpuTicks, tmpDir, unnamed } from '../helpers/agent';
import { startPtyBridge, withPortToFile, withPtyBridge } from '../helpers/pty';
import { command, sleep, suite, waitFor } from '../helpers/harness';
import { native, type PortEvent } from '../../lib/native';
import { silentLogger } from '../../lib/log';
import { PortTransport } from '../../lib/transports/port';
import { RecordingSink } from '../helpers/sink';

const test = suite('port (pty)');
const needs = [command('socat')];

test(
  'serves over a pty; survives the host closing and a new host side appearing; idles while nobody is there',
  async () => {
    const dir = tmpDir();
    let bridge = await startPtyBridge(dir);
    const agent = spawn(process.execPath, [CLI, '-p', bridge.port], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    agent.stderr!.on('data', (d) => (err += d));
    try {
      await waitFor(() => /serving on/.test(err), 10_000, 'agent start');
      let c = await LineClient.connect(bridge.host);
      c.send('{"execute":"ping","tag":"one"}\r\n{"execute":"get-commands","tag":"two"}\r\n');
      const answers = await c.waitLines(2);
      assert.equal(answers.map((a) => a.tag).sort(), ['one', 'two']);

      // The host goes away: socat exits and the pty's master closes (POLLHUP, EIO on the slave).
      c.close();
      await new Promise((r) => bridge.proc.once('exit', r));
      await waitFor(() => /host disconnected/.test(err), 5_000, 'the agent to see the hangup');

      // Nobody connected: the agent must not spin on the level-triggered hangup.
      const before = cpuTicks(agent.pid!);
      await sleep(2_000);
      const used = cpuTicks(agent.pid!) - before;
      assert.ok(used <= 10, `agent used ${used} ticks (of 200) while the host was away`);

      // A new host side: a new pty behind the same path. The agent reopens it and serves again.
      bridge = await startPtyBridge(dir);
      c = await LineClient.connect(bridge.host);
      await waitFor(
        async () => {
          c.send('{"execute":"ping","tag":"again"}\r\n');
          await sleep(100);
          return c.lines.some((l) => l.includes('"again"'));
        },
        10_000,
        'ping after reconnect',
        1,
      );
      assert.is(agent.exitCode, null);
      c.close();
    } finally {
      agent.kill('SIGTERM');
      bridge.proc.kill();
      await new Promise((r) => (agent.exitCode !== null ? r(null) : agent.once('exit', r)));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs, timeout: 40_000 },
);

test(
  'requests sent before the agent reads are all answered (several in one write, over the pty)',
  () =>
    withPtyBridge(async (bridge) => {
      let c: LineClient | undefined;
      let agent: ChildProcess | undefined;
      try {
        c = await LineClient.connect(bridge.host);
        let batch = '';
        for (let i = 0; i < 200; i++) batch += `{"execute":"ping","tag":"q${i}"}\r\n`;
        c.send(batch); // written before the agent even starts: the pty holds it
        await sleep(100);
        agent = spawn(process.execPath, [CLI, '-p', bridge.port], { stdio: 'ignore' });
        const answers = await c.waitLines(200);
        assert.is(new Set(answers.map((a) => a.tag)).size, 200);
      } finally {
        agent?.kill('SIGTERM'); // a child still running would keep this test process from exiting
        c?.close();
      }
    }),
  { needs },
);

test(
  'output the port cannot take at once keeps going out while the main thread is busy (writer thread)',
  () =>
    withPortToFile(async (port, out) => {
      const data = Buffer.alloc(32 * 1024 * 1024, 0x41);
      port.write(data); // a pty takes a few KiB; the rest is queued
      assert.ok(port.queued > 0, `queued ${port.queued}`);
      // Block the event loop: only a thread of the driver's own can move the queue now.
      const before = fs.statSync(out).size;
      const until = Date.now() + 1500;
      while (Date.now() < until && fs.statSync(out).size < data.length);
      const during = fs.statSync(out).size - before;
      assert.ok(
        during >= 1024 * 1024 || before + during === data.length,
        `only ${during} bytes left while the main thread was busy`,
      );
      await waitFor(() => fs.statSync(out).size === data.length, 10_000, 'everything to arrive');
      assert.is(port.queued, 0);
    }),
  { needs },
);

test(
  "a line longer than the pty hands over in one read reaches JS whole, in one 'data', when its rest is there",
  () =>
    withPtyBridge(async (bridge) => {
      const chunks: Buffer[] = [];
      let waiter: (() => void) | undefined;
      let port: InstanceType<typeof native.Port> | undefined;
      let host: LineClient | undefined;
      try {
        port = new native.Port(bridge.port, (type, arg) => {
          if (type !== 'data') return;
          chunks.push(Buffer.from(arg as Buffer));
          if ((arg as Buffer)[(arg as Buffer).length - 1] === 0x0a) waiter?.();
        });
        host = await LineClient.connect(bridge.host);
        // A 4 KiB file-write's line: more than the 4095 bytes a pty's reader gets at a time.
        const line = Buffer.alloc(5529, 0x41);
        line[line.length - 1] = 0x0a;
        let whole = 0;
        for (let i = 0; i < 50; i++) {
          chunks.length = 0;
          await new Promise<void>((r) => {
            waiter = r;
            host!.send(line);
          });
          assert.ok(Buffer.concat(chunks).equals(line), `line ${i} arrived intact`);
          if (chunks.length === 1) whole++;
        }
        // One read gives 4095 bytes and the next the rest, there already as a rule; the kernel's
        // worker may lag on a busy machine, and then the rest comes with the next wake-up. How
        // often is for the bench (per-request) to measure; here: the read-on path exists.
        assert.ok(whole >= 1, `none of 50 lines reached JS in one piece`);
      } finally {
        host?.close();
        port?.close();
      }
    }),
  { needs },
);

test(
  "with views, 'data' is a place in a slab the driver never writes again: views kept across slabs stay intact",
  () =>
    withPtyBridge(async (bridge) => {
      const views: Buffer[] = [];
      const slabs = new Set<Buffer>();
      let got = 0;
      let waiter: (() => void) | undefined;
      let port: InstanceType<typeof native.Port> | undefined;
      let host: LineClient | undefined;
      try {
        port = new native.Port(
          bridge.port,
          (type, arg, start, end) => {
            if (type !== 'data') return;
            assert.ok(Buffer.isBuffer(arg) && Number.isInteger(start) && Number.isInteger(end) && end! > start!);
            slabs.add(arg as Buffer);
            const view = (arg as Buffer).subarray(start, end); // kept, not copied
            views.push(view);
            got += view.length;
            waiter?.();
          },
          { views: true },
        );
        host = await LineClient.connect(bridge.host);
        // Lines of a ping's length up to a 4 KiB file-write's, one at a time, each of its own
        // bytes, ~400 KiB in all: several slabs, lines straddling their ends.
        const sent: Buffer[] = [];
        for (let i = 0; i < 120; i++) {
          const line = Buffer.alloc([19, 62, 5529, 300][i % 4] + (i % 7), 0x61 + (i % 26));
          line[line.length - 1] = 0x0a;
          sent.push(line);
          const want = got + line.length;
          await new Promise<void>((r) => {
            waiter = () => got >= want && r();
            host!.send(line);
          });
        }
        assert.ok(Buffer.concat(views).equals(Buffer.concat(sent)), 'every byte, in order, still in its view');
        assert.ok(slabs.size >= 4, `${slabs.size} slabs for ~400 KiB`);
        for (let i = 1; i < views.length; i++) {
          const [a, b] = [views[i - 1], views[i]];
          if (a.buffer === b.buffer) assert.ok(b.byteOffset >= a.byteOffset + a.length, 'views never overlap');
        }
      } finally {
        host?.close();
        port?.close();
      }
    }),
  { needs },
);

test('Port options are checked', () => {
  assert.throws(
    () => new native.Port('/dev/null', () => undefined, { views: 1 as unknown as boolean }),
    /views must be a boolean/,
  );
  assert.throws(
    () => new native.Port('/dev/null', () => undefined, 'views' as unknown as object),
    /options must be an object/,
  );
});

test(
  'a host coming back behind the same path is found at once by the watch, not at the next backoff check',
  async () => {
    const dir = tmpDir();
    let bridge = await startPtyBridge(dir);
    const events: string[] = [];
    let port: InstanceType<typeof native.Port> | undefined;
    try {
      port = new native.Port(bridge.port, (type) => events.push(type));
      assert.is(port.foundBy, 'open');
      for (let i = 0; i < 2; i++) {
        // The host side goes away: socat exits, the pty's master closes.
        bridge.proc.kill();
        await waitFor(() => events.includes('hangup'), 5_000, 'the hang-up');
        // Long enough for the backoff to reach its longest wait (500 ms) between two checks.
        await sleep(1_500);
        assert.ok(!port.connected);
        events.length = 0;
        bridge = await startPtyBridge(dir);
        await waitFor(() => events.includes('reopen'), 5_000, 'the reopen');
        assert.ok(port.connected);
        assert.is(port.foundBy, 'watch', 'woken by the new name, not found by the backoff timer');
      }
    } finally {
      port?.close();
      bridge.proc.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs },
);

test(
  'discard(): what is queued for a host gone for good is dropped, and the next bytes written start the stream',
  () =>
    withPtyBridge(async (bridge) => {
      // socat reads the pty only once a host connects: the pty fills, and the rest is queued.
      const port = new native.Port(bridge.port, () => {}, { views: true });
      try {
        let stream = '';
        for (let i = 0; stream.length < 4 * 1024 * 1024; i++) stream += `line ${i} of what the old host was sent\n`;
        port.write(Buffer.from(stream));
        assert.ok(port.queued > 0, `queued ${port.queued}`);
        assert.is(port.discard(), true);
        assert.is(port.queued, 0);
        assert.is(port.discard(), false, 'nothing left to drop');
        port.write(Buffer.from('MARKER\n'));
        const c = net.connect(bridge.host);
        let got = '';
        c.on('data', (d: Buffer) => (got += d.toString('latin1')));
        try {
          await waitFor(() => got.includes('MARKER\n'), 10_000, 'the marker');
          // What the pty took before the discard arrives (it may end within a line), then the
          // marker: nothing of the dropped rest.
          const before = got.slice(0, got.indexOf('MARKER\n'));
          assert.ok(
            before.length < stream.length / 2,
            `${before.length} bytes arrived of the ${stream.length} written`,
          );
          assert.ok(stream.startsWith(before), 'what arrived before the marker is the start of the stream');
          assert.is(got.length, before.length + 'MARKER\n'.length);
        } finally {
          c.destroy();
        }
      } finally {
        port.close();
      }
    }),
  { needs },
);

/** A PortTransport on a stand-in for the addon's port: `emit` plays the port's events; `events` are what the sink heard. */
async function standInPort(hostGoneMs: number) {
  const sink = new RecordingSink();
  let emit: (type: PortEvent, arg?: Buffer | Error) => void = () => {};
  const port = {
    write: () => 0,
    pause: () => {},
    resume: () => {},
    close: () => {},
    // What is queued for a host gone for good is dropped before the next host's session begins.
    discard: () => (sink.events.push('discard'), true),
    queued: 0,
    copied: 0,
    connected: true,
    foundBy: 'open' as const,
  };
  const t = new PortTransport('/dev/stand-in', silentLogger, {
    hostGoneMs,
    open: (_p, onEvent) => ((emit = onEvent), port),
  });
  await t.start(sink);
  return { t, events: sink.events, emit: (type: PortEvent) => emit(type) };
}

test('host gone: a hang-up ends the session only if it lasts the host-gone timeout; a reopened port ends it at once', async () => {
  const { t, events, emit } = await standInPort(150);
  try {
    assert.equal(events, ['begin']); // the port's first host
    emit('hangup');
    await sleep(50);
    emit('connect'); // back within the timeout: the same session
    await sleep(300);
    assert.equal(events, ['begin', 'reset']);
    emit('hangup');
    await waitFor(() => events.includes('end'), 2_000, 'the session to end');
    assert.equal(events, ['begin', 'reset', 'reset', 'discard', 'end', 'begin']);
    emit('reopen'); // another device behind the path: another host (the driver dropped the queue)
    assert.equal(events, ['begin', 'reset', 'reset', 'discard', 'end', 'begin', 'end', 'begin']);
    emit('hangup');
    await t.close(); // closing ends the session and stops the timer
    await sleep(300);
    assert.equal(events, ['begin', 'reset', 'reset', 'discard', 'end', 'begin', 'end', 'begin', 'reset', 'end']);
  } finally {
    await t.close();
  }
  // A timeout of 0: a hang-up never ends the session; another device still does.
  const never = await standInPort(0);
  try {
    never.emit('hangup');
    await sleep(200);
    assert.equal(never.events, ['begin', 'reset']);
    never.emit('reopen');
    assert.equal(never.events, ['begin', 'reset', 'end', 'begin']);
  } finally {
    await never.t.close();
  }
});

test(
  'host gone over the port (--host-gone-timeout): a hang-up that lasts discards the atomic upload, and its unnamed file',
  () =>
    withPtyBridge(async (bridge, dir) => {
      const agent = spawn(process.execPath, [CLI, '-p', bridge.port, '--host-gone-timeout', '0.5'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      agent.stderr!.on('data', (d) => (err += d));
      const f = path.join(dir, 'f');
      fs.writeFileSync(f, 'before');
      try {
        await waitFor(() => /serving on/.test(err), 10_000, 'agent start');
        const c = await LineClient.connect(bridge.host);
        const h = (await c.ok('file-open', { path: f, mode: 'w', atomic: true })) as number;
        await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('partial').toString('base64') });
        assert.is(unnamed(agent.pid!, dir).length, 1);
        c.close(); // socat exits: the port hangs up, and stays hung up
        await waitFor(() => /host disconnected/.test(err), 5_000, 'the hang-up');
        await waitFor(() => unnamed(agent.pid!, dir).length === 0, 5_000, 'the discard after the timeout');
        assert.match(err, /no host on .* for 0\.5 s: its session is over/);
        assert.match(err, /host gone: discarding the unfinished atomic upload to .*\/f \(handle \d+\)/);
        assert.is(fs.readFileSync(f, 'utf8'), 'before');
        assert.equal(
          fs.readdirSync(dir).filter((n) => n.endsWith('.ember-ga-part')),
          [],
        );
      } finally {
        agent.kill('SIGTERM');
        await new Promise((r) => (agent.exitCode !== null ? r(null) : agent.once('exit', r)));
      }
    }),
  { needs },
);

test.run();
