// One agent, several ports: found by name in a fixture sysfs dir (--virtio-ports-dir), their
// device nodes ptys that socat holds the master side of (--dev-dir), as port.test.ts stands in
// for the virtio-serial port. Each port gets its own protocol and host session; ports that appear
// and go away while the agent runs are picked up and let go without disturbing the others.
import * as assert from 'uvu/assert';
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { CLI, LineClient, errorMessage, fdsOn, mountExt4Image, stalledReader, tmpDir } from '../helpers/agent';
import { startPtyBridge } from '../helpers/pty';
import { QmpClient } from '../helpers/qemu-ga';
import { command, root, sleep, suite, waitFor } from '../helpers/harness';
import { allQgaCommands } from '../../lib/protocols/qemu-ga/commands';
import { thaw } from '../../lib';

const test = suite('multiport');
const needs = [command('socat')];
const PHOENIX = 'org.guest-agent.0';
const QGA = 'org.qemu.guest_agent.0';

/** A port: sysfs entry `entry` named `name`, its node a pty at dev/ENTRY, its host side a unix socket. */
interface FakePort {
  entry: string;
  node: string;
  host: string;
  proc: ChildProcess;
  /** The pty's slave (/dev/pts/N) the agent holds open while it serves the port. */
  pts: string;
}

class Guest {
  readonly sys: string;
  readonly dev: string;
  private readonly ports = new Map<string, FakePort>();
  agent?: ChildProcess;
  err = '';

  constructor(readonly dir: string) {
    this.sys = path.join(dir, 'sys');
    this.dev = path.join(dir, 'dev');
    fs.mkdirSync(this.sys);
    fs.mkdirSync(this.dev);
  }

  /** Plugs a port in: its node first, then its sysfs entry, then (as a host does just after) its name. */
  async plug(entry: string, name: string): Promise<FakePort> {
    const node = path.join(this.dev, entry);
    const host = path.join(this.dir, `${entry}.sock`);
    const { proc } = await startPtyBridge(this.dir, node, host);
    fs.mkdirSync(path.join(this.sys, entry));
    fs.writeFileSync(path.join(this.sys, entry, 'name'), `${name}\n`);
    const port = { entry, node, host, proc, pts: fs.realpathSync(node) };
    this.ports.set(entry, port);
    return port;
  }

  /** Unplugs a port: its sysfs entry goes, and the pty with socat. */
  async unplug(entry: string): Promise<void> {
    const p = this.ports.get(entry)!;
    this.ports.delete(entry);
    fs.rmSync(path.join(this.sys, entry), { recursive: true });
    await kill(p.proc);
  }

  start(extra: string[] = []): void {
    this.agent = spawn(
      process.execPath,
      [CLI, '--virtio-ports-dir', this.sys, '--dev-dir', this.dev, '--port-scan', '0.2', ...extra],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.agent.stderr!.setEncoding('utf8');
    this.agent.stderr!.on('data', (d: string) => (this.err += d));
  }

  /** Waits until the agent's log (from offset `from`) matches re. */
  async logs(re: RegExp, what: string, from = 0): Promise<void> {
    await waitFor(
      () => {
        if (this.agent!.exitCode !== null) throw new Error(`the agent exited: ${this.err}`);
        return re.test(this.err.slice(from));
      },
      10_000,
      what,
    );
  }

  /** True while the agent holds the port's pty open. */
  holds(p: FakePort): boolean {
    return fdsOn(this.agent!.pid!, p.pts).length > 0;
  }

  /** Stops the agent and the ports' socats; removes the dir unless told to keep it. */
  async stop(keepDir = false): Promise<void> {
    if (this.agent) await kill(this.agent);
    for (const p of this.ports.values()) await kill(p.proc);
    if (!keepDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(t);
}

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const serving = (p: FakePort, protocol: string) => new RegExp(`serving on port ${escaped(p.node)} \\(${protocol}\\)`);

test(
  'one process serves both ports found by name, each in its own protocol, at the same time',
  async () => {
    const g = new Guest(tmpDir());
    try {
      const ph = await g.plug('vport0p1', PHOENIX);
      const q = await g.plug('vport0p2', QGA);
      await g.plug('vport0p3', 'com.redhat.spice.0'); // not ours: left alone
      g.start();
      await g.logs(serving(ph, 'phoenix'), 'the phoenix port');
      await g.logs(serving(q, 'qemu-ga'), 'the qemu-ga port');
      const c = await LineClient.connect(ph.host);
      const qc = await QmpClient.connect(q.host);
      try {
        // Both hosts send at once, each in its own protocol.
        c.send('{"execute":"ping","tag":"p"}\r\n{"execute":"get-commands","tag":"c"}\r\n');
        qc.send('{"execute":"guest-sync-delimited","arguments":{"id":42}}\n');
        const [lines, sync] = await Promise.all([c.waitLines(2), qc.rawAnswer()]);
        assert.equal(lines.map((l) => l.tag).sort(), ['c', 'p']);
        assert.is(sync.toString('latin1'), '\xff{"return": 42}\n');
        assert.equal(await qc.ok('guest-ping'), {});
        const info = await qc.ok<{ supported_commands: { name: string }[] }>('guest-info');
        assert.ok(info.supported_commands.some((x) => x.name === 'guest-ping'));
        // Each port its own protocol: phoenix's commands are unknown on the qemu-ga port, and the other way round.
        const wrong = await qc.call('ping');
        assert.is(wrong.error?.class, 'CommandNotFound');
        const back = await c.call('guest-ping');
        assert.match(errorMessage(back), /Unknown command: guest-ping/);
        assert.ok(!/spice/.test(g.err), g.err);
      } finally {
        c.close();
        qc.close();
      }
    } finally {
      await g.stop();
    }
  },
  { needs, timeout: 40_000 },
);

test(
  'a port back under another device path is the same endpoint: its host hears how its handle ended',
  async () => {
    const g = new Guest(tmpDir());
    try {
      g.start();
      const ph = await g.plug('vport0p1', PHOENIX);
      await g.logs(serving(ph, 'phoenix'), 'the phoenix port to be served');
      const f = path.join(g.dir, 'f');
      let c = await LineClient.connect(ph.host);
      const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
      c.close();
      // Unplugged (its session ends, the handle is closed) and plugged in again at another entry.
      const from = g.err.length;
      await g.unplug('vport0p1');
      await g.logs(/host gone: closing .*\(handle \d+\)/, 'the handle closed', from);
      const back = await g.plug('vport1p1', PHOENIX);
      await g.logs(serving(back, 'phoenix'), 'the port served again');
      c = await LineClient.connect(back.host);
      try {
        const a = await c.call('file-write', { handle_id: h, bufb64: Buffer.from('x').toString('base64') });
        assert.match(
          errorMessage(a),
          /^Handle \d+ was closed when the host that opened it went away \(.*\/f\); open it again$/,
        );
      } finally {
        c.close();
      }
    } finally {
      await g.stop();
    }
  },
  { needs, timeout: 40_000 },
);

test(
  "a phoenix host that stops reading its answers does not hold the qemu-ga port's host",
  async () => {
    const g = new Guest(tmpDir());
    let stalled: net.Socket | undefined;
    try {
      const ph = await g.plug('vport0p1', PHOENIX);
      const q = await g.plug('vport0p2', QGA);
      g.start();
      await g.logs(serving(ph, 'phoenix'), 'the phoenix port');
      await g.logs(serving(q, 'qemu-ga'), 'the qemu-ga port');
      // The phoenix host reads none of its answers: socat and the pty fill, and the answers
      // queue in the agent past the 16 MiB output budget.
      stalled = await stalledReader(ph.host, g.dir);
      await sleep(2_000);
      // libvirt's port: answered at once.
      const qc = await QmpClient.connect(q.host);
      try {
        const t0 = Date.now();
        assert.equal(await qc.ok('guest-ping'), {});
        assert.ok(Date.now() - t0 < 1_000, `the qemu-ga host waited ${Date.now() - t0} ms`);
      } finally {
        qc.close();
      }
    } finally {
      stalled?.destroy();
      await g.stop();
    }
  },
  { needs, timeout: 40_000 },
);

test(
  'ports appearing and going away are picked up and let go; the other port and its session go on',
  async () => {
    const g = new Guest(tmpDir());
    try {
      g.start(); // no port at all yet: the agent waits for one
      await g.logs(/no virtio-serial port named .* yet: looking every 0\.2 s/, 'the agent to wait');
      const ph = await g.plug('vport0p1', PHOENIX);
      await g.logs(serving(ph, 'phoenix'), 'the phoenix port to be served');
      const c = await LineClient.connect(ph.host);
      let qc: QmpClient | undefined;
      try {
        // The phoenix host's session holds a file handle throughout.
        const f = path.join(g.dir, 'f');
        const h = (await c.ok('file-open', { path: f, mode: 'w' })) as number;
        await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('one ').toString('base64') });

        // The qemu-ga channel is hot-plugged.
        const q = await g.plug('vport0p2', QGA);
        await g.logs(serving(q, 'qemu-ga'), 'the hot-plugged qemu-ga port to be served');
        qc = await QmpClient.connect(q.host);
        assert.equal(await qc.ok('guest-ping'), {});
        assert.ok(g.holds(q));

        // ... and unplugged: the agent lets it go (closes it) and the phoenix session goes on.
        const from = g.err.length;
        qc.close();
        await g.unplug('vport0p2');
        await g.logs(/port org\.qemu\.guest_agent\.0 \(vport0p2\) went away/, 'the qemu-ga port let go', from);
        await g.logs(new RegExp(`no longer serving on port ${escaped(q.node)}`), 'the port closed', from);
        await waitFor(() => !g.holds(q), 10_000, 'the agent to close the unplugged port');
        await c.ok('file-write', { handle_id: h, bufb64: Buffer.from('two').toString('base64') });
        await c.ok('file-close', { handle_id: h });
        assert.is(fs.readFileSync(f, 'utf8'), 'one two');
        assert.ok(!/host gone|session is over/.test(g.err.slice(from)), g.err.slice(from));

        // Plugged in again at another entry: served again, beside the phoenix port.
        const q2 = await g.plug('vport1p1', QGA);
        await g.logs(serving(q2, 'qemu-ga'), 'the qemu-ga port served again');
        qc = await QmpClient.connect(q2.host);
        assert.equal(await qc.ok('guest-ping'), {});

        // The phoenix port goes: the qemu-ga port goes on.
        const from2 = g.err.length;
        c.close();
        await g.unplug('vport0p1');
        await g.logs(/port org\.guest-agent\.0 \(vport0p1\) went away/, 'the phoenix port let go', from2);
        // Its session ends first (handles closed), then the fd: on a busy machine, not at once.
        await waitFor(() => !g.holds(ph), 10_000, 'the agent to close the unplugged phoenix port');
        assert.equal(await qc.ok('guest-ping'), {});
        assert.is(g.agent!.exitCode, null);
      } finally {
        c.close();
        qc?.close();
      }
    } finally {
      await g.stop();
    }
  },
  { needs, timeout: 60_000 },
);

test(
  'a port that cannot be opened (another agent holds it) is retried; the other is served meanwhile',
  async () => {
    const g = new Guest(tmpDir());
    try {
      const ph = await g.plug('vport0p1', PHOENIX);
      // A node that is no device yet: opening it fails until a pty takes its place.
      fs.mkdirSync(path.join(g.sys, 'vport0p2'));
      fs.writeFileSync(path.join(g.sys, 'vport0p2', 'name'), `${QGA}\n`);
      g.start();
      await g.logs(serving(ph, 'phoenix'), 'the phoenix port');
      await g.logs(/cannot serve port org\.qemu\.guest_agent\.0 .*: .*; trying again every 0\.2 s/, 'the failure');
      await sleep(600);
      assert.is(g.err.match(/cannot serve port/g)!.length, 1, 'the failure was logged more than once');
      fs.rmSync(path.join(g.sys, 'vport0p2'), { recursive: true });
      const q = await g.plug('vport0p2', QGA);
      await g.logs(serving(q, 'qemu-ga'), 'the qemu-ga port once it opens');
      const qc = await QmpClient.connect(q.host);
      try {
        assert.equal(await qc.ok('guest-ping'), {});
      } finally {
        qc.close();
      }
    } finally {
      await g.stop();
    }
  },
  { needs, timeout: 40_000 },
);

test(
  'several -p given: each served in the protocol its prefix or its name says; --port-scan is not needed',
  async () => {
    const g = new Guest(tmpDir());
    try {
      const a = await g.plug('vport0p1', PHOENIX);
      const b = await g.plug('vport0p2', 'unnamed.port');
      const link = path.join(g.dir, QGA); // named like the qemu-ga port: qemu-ga by its name
      fs.symlinkSync(b.node, link);
      g.agent = spawn(process.execPath, [CLI, '-p', a.node, '-p', link], { stdio: ['ignore', 'ignore', 'pipe'] });
      g.agent.stderr!.setEncoding('utf8');
      g.agent.stderr!.on('data', (d: string) => (g.err += d));
      await g.logs(serving(a, 'phoenix'), 'port a');
      await g.logs(new RegExp(`serving on port ${escaped(link)} \\(qemu-ga\\)`), 'port b');
      const qc = await QmpClient.connect(b.host);
      try {
        assert.equal(await qc.ok('guest-ping'), {});
      } finally {
        qc.close();
      }
    } finally {
      await g.stop();
    }
  },
  { needs },
);

// One freeze state for both protocols: what a phoenix host froze, a qemu-ga host sees and thaws.
// qemu-ga's freeze commands come with their own command group; until they are in the tree this
// is skipped, with the reason.
const FREEZE_QGA = ['guest-fsfreeze-status', 'guest-fsfreeze-thaw'];
const absent = FREEZE_QGA.filter((n) => !allQgaCommands.some((c) => c.name === n));
if (absent.length > 0) {
  process.stderr.write(`  skip: multiport / cross-protocol freeze: ${absent.join(', ')} not in this tree yet\n`);
} else {
  test(
    'cross-protocol freeze: phoenix fs-freeze, qemu-ga sees "frozen" and thaws, phoenix sees it thawed',
    async () => {
      const g = new Guest(tmpDir());
      const mnt = path.join(g.dir, 'mnt');
      mountExt4Image(mnt);
      // A fixture mount table listing only the loop mount: nothing else can be selected.
      const src = fs
        .readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[1] === mnt)!
        .split(' ')[0];
      const table = path.join(g.dir, 'mounts');
      fs.writeFileSync(table, `${src} ${mnt} ext4 rw,relatime 0 0\n`);
      try {
        const ph = await g.plug('vport0p1', PHOENIX);
        const q = await g.plug('vport0p2', QGA);
        g.start(['--mounts-file', table, '--freeze-timeout', '20']);
        await g.logs(serving(q, 'qemu-ga'), 'both ports');
        await g.logs(serving(ph, 'phoenix'), 'both ports');
        const c = await LineClient.connect(ph.host);
        const qc = await QmpClient.connect(q.host);
        try {
          assert.is(await qc.ok('guest-fsfreeze-status'), 'thawed');
          assert.is(await c.ok('fs-freeze', { mountpoints: [mnt] }), true);
          assert.is(await qc.ok('guest-fsfreeze-status'), 'frozen');
          assert.is(await qc.ok('guest-fsfreeze-thaw'), 1);
          assert.is(await c.ok('get-freeze-status'), false);
        } finally {
          c.close();
          qc.close();
        }
      } finally {
        await thaw(mnt).catch(() => undefined);
        await g.stop(true);
        execFileSync('umount', [mnt]); // the loop device detaches too (autoclear)
        fs.rmSync(g.dir, { recursive: true, force: true });
      }
    },
    { needs: [...needs, root, command('mkfs.ext4')], timeout: 40_000 },
  );
}

test.run();
