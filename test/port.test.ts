// The port transport, with a pty standing in for the virtio-serial port: socat holds the pty's
// master (the "host side") and bridges it to a unix socket the test talks to.
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CLI, LineClient, cpuTicks, tmpDir } from './helpers/agent';
import { unixListening } from './helpers/unix-socket';
import { command, sleep, suite, waitFor } from './helpers/harness';
import { native } from '../lib/native';

const test = suite('port (pty)');
const needs = [command('socat')];

/** socat PTY,link=PORT <-> UNIX-LISTEN:HOST; exits when the host connection closes. */
async function startBridge(dir: string): Promise<{ proc: ChildProcess; port: string; host: string }> {
  const port = path.join(dir, 'port');
  const host = path.join(dir, 'host.sock');
  fs.rmSync(host, { force: true });
  const proc = spawn('socat', [`PTY,link=${port},raw,echo=0`, `UNIX-LISTEN:${host}`], { stdio: 'ignore' });
  try {
    await waitFor(() => fs.existsSync(port) && unixListening(host), 5_000, 'socat to create the pty and listen');
  } catch (e) {
    proc.kill();
    throw e;
  }
  return { proc, port, host };
}

test('serves over a pty; survives the host closing and a new host side appearing; idles while nobody is there', async () => {
  const dir = tmpDir();
  let bridge = await startBridge(dir);
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
    bridge = await startBridge(dir);
    c = await LineClient.connect(bridge.host);
    await waitFor(async () => {
      c.send('{"execute":"ping","tag":"again"}\r\n');
      await sleep(100);
      return c.lines.some((l) => l.includes('"again"'));
    }, 10_000, 'ping after reconnect', 1);
    assert.is(agent.exitCode, null);
    c.close();
  } finally {
    agent.kill('SIGTERM');
    bridge.proc.kill();
    await new Promise((r) => (agent.exitCode !== null ? r(null) : agent.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, { needs, timeout: 40_000 });

test('requests sent before the agent reads are all answered (several in one write, over the pty)', async () => {
  const dir = tmpDir();
  const bridge = await startBridge(dir);
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
    agent?.kill('SIGTERM');
    bridge.proc.kill(); // a child still running would keep this test process from exiting
    c?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, { needs });


test('output the port cannot take at once keeps going out while the main thread is busy (writer thread)', async () => {
  const dir = tmpDir();
  const out = path.join(dir, 'out');
  const pty = path.join(dir, 'pty');
  // socat holds the master and copies everything the port writes into a file, in its own process.
  const socat = spawn('socat', ['-u', `PTY,link=${pty},raw,echo=0`, `CREATE:${out}`], { stdio: 'ignore' });
  let port: InstanceType<typeof native.Port> | undefined;
  try {
    await waitFor(() => fs.existsSync(pty) && fs.existsSync(out), 5_000, 'socat to create the pty');
    port = new native.Port(pty, () => undefined);
    const data = Buffer.alloc(4 * 1024 * 1024, 0x41);
    port.write(data); // a pty takes a few KiB; the rest is queued
    assert.ok(port.queued > 3 * 1024 * 1024, `queued ${port.queued}`);
    // Block the event loop: only a thread of the driver's own can move the queue now.
    const until = Date.now() + 1500;
    while (Date.now() < until && fs.statSync(out).size < data.length);
    const during = fs.statSync(out).size;
    assert.ok(during >= 1024 * 1024, `only ${during} bytes left while the main thread was busy`);
    await waitFor(() => fs.statSync(out).size === data.length, 10_000, 'everything to arrive');
    assert.is(port.queued, 0);
  } finally {
    port?.close();
    socat.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, { needs });

test.run();
