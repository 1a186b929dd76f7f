// PortWatcher against a fixture sysfs dir: ports appear (and are named after they appear, as a
// hot-plugged channel is), go away, change name, and fail to open until they do not.
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { PortWatcher } from '../../../lib/transports/port-watch';
import type { FoundPort } from '../../../lib/transports/find-port';
import type { Logger } from '../../../lib/log';
import { tmpDir } from '../../helpers/agent';
import { suite } from '../../helpers/harness';

const test = suite('port-watch');
const NAMES = ['org.guest-agent.0', 'org.qemu.guest_agent.0'];

function recordingLog(lines: string[]): Logger {
  const rec = (level: string) => (m: string) => void lines.push(`${level}: ${m}`);
  return { debug: () => undefined, info: rec('info'), warn: rec('warn'), error: rec('error') } as unknown as Logger;
}

function fixture() {
  const dir = tmpDir();
  const sys = path.join(dir, 'sys');
  const dev = path.join(dir, 'dev');
  fs.mkdirSync(sys);
  fs.mkdirSync(dev);
  const plug = (entry: string, name?: string) => {
    fs.mkdirSync(path.join(sys, entry), { recursive: true });
    if (name !== undefined) fs.writeFileSync(path.join(sys, entry, 'name'), `${name}\n`);
  };
  const unplug = (entry: string) => fs.rmSync(path.join(sys, entry), { recursive: true });
  const events: string[] = [];
  const log: string[] = [];
  let refuse = new Set<string>();
  const watcher = new PortWatcher(
    { names: NAMES, sysDir: sys, devDir: dev, intervalMs: 0, log: recordingLog(log) },
    {
      add: async (p: FoundPort) => {
        if (refuse.has(p.entry)) throw new Error(`open ${p.path}: device or resource busy`);
        events.push(`add ${p.entry} ${p.name} ${path.relative(dir, p.path)}`);
      },
      remove: async (p: FoundPort) => void events.push(`remove ${p.entry} ${p.name}`),
    },
  );
  return {
    dir,
    plug,
    unplug,
    events,
    log,
    watcher,
    refuse: (entries: string[]) => (refuse = new Set(entries)),
    done: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

test('ports are served when they appear with a wanted name and let go when they go away, each on its own', async () => {
  const f = fixture();
  try {
    await f.watcher.start();
    assert.equal(f.events, []); // nothing yet
    f.plug('vport0p1'); // a hot-plugged port the host has not named yet
    f.plug('vport0p2', 'com.redhat.spice.0');
    await f.watcher.look();
    assert.equal(f.events, []);
    fs.writeFileSync(path.join(f.dir, 'sys', 'vport0p1', 'name'), 'org.qemu.guest_agent.0\n');
    f.plug('vport0p3', 'org.guest-agent.0');
    await f.watcher.look();
    assert.equal(f.events, [
      'add vport0p1 org.qemu.guest_agent.0 dev/vport0p1',
      'add vport0p3 org.guest-agent.0 dev/vport0p3',
    ]);
    await f.watcher.look(); // nothing changed: nothing done
    assert.is(f.events.length, 2);
    f.unplug('vport0p1');
    await f.watcher.look();
    assert.equal(f.events.slice(2), ['remove vport0p1 org.qemu.guest_agent.0']);
    assert.equal(
      f.watcher.ports.map((p) => p.entry),
      ['vport0p3'],
    );
    // Plugged again elsewhere, and the other port renamed (another device behind the entry).
    f.plug('vport1p1', 'org.qemu.guest_agent.0');
    fs.writeFileSync(path.join(f.dir, 'sys', 'vport0p3', 'name'), 'something.else\n');
    await f.watcher.look();
    assert.equal(f.events.slice(3), [
      'remove vport0p3 org.guest-agent.0',
      'add vport1p1 org.qemu.guest_agent.0 dev/vport1p1',
    ]);
    assert.ok(
      f.log.some((l) => /^info: port org\.guest-agent\.0 \(vport0p3\) went away/.test(l)),
      f.log.join('\n'),
    );
  } finally {
    await f.watcher.stop();
    f.done();
  }
});

test('a port that cannot be served is tried again at every look, its failure logged once', async () => {
  const f = fixture();
  try {
    f.plug('vport0p1', 'org.qemu.guest_agent.0');
    f.plug('vport0p2', 'org.guest-agent.0');
    f.refuse(['vport0p1']); // held by qemu-ga, say
    await f.watcher.start();
    await f.watcher.look();
    await f.watcher.look();
    assert.equal(f.events, ['add vport0p2 org.guest-agent.0 dev/vport0p2']);
    assert.equal(
      f.log.filter((l) => l.startsWith('warn')),
      [
        'warn: cannot serve port org.qemu.guest_agent.0 (' +
          path.join(f.dir, 'dev', 'vport0p1') +
          '): open ' +
          path.join(f.dir, 'dev', 'vport0p1') +
          ': device or resource busy',
      ],
    );
    f.refuse([]);
    await f.watcher.look();
    assert.equal(f.events.slice(1), ['add vport0p1 org.qemu.guest_agent.0 dev/vport0p1']);
    assert.ok(
      f.log.some((l) => /served at last/.test(l)),
      f.log.join('\n'),
    );
  } finally {
    await f.watcher.stop();
    f.done();
  }
});

test('with an interval it looks by itself; stop() ends the looking', async () => {
  const dir = tmpDir();
  const sys = path.join(dir, 'sys');
  fs.mkdirSync(sys);
  const added: string[] = [];
  const w = new PortWatcher(
    { names: NAMES, sysDir: sys, devDir: dir, intervalMs: 20, log: recordingLog([]) },
    { add: async (p) => void added.push(p.entry), remove: async () => undefined },
  );
  try {
    await w.start();
    fs.mkdirSync(path.join(sys, 'vport0p1'));
    fs.writeFileSync(path.join(sys, 'vport0p1', 'name'), 'org.guest-agent.0\n');
    const end = Date.now() + 2_000;
    while (added.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(added, ['vport0p1']);
    await w.stop();
    fs.mkdirSync(path.join(sys, 'vport0p2'));
    fs.writeFileSync(path.join(sys, 'vport0p2', 'name'), 'org.qemu.guest_agent.0\n');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(added, ['vport0p1']);
  } finally {
    await w.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
