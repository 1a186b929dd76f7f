import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { findPort, findPorts, portNameOf, portNames } from '../../../lib/transports/find-port';
import { tmpDir } from '../../helpers/agent';
import { suite } from '../../helpers/harness';

const test = suite('find-port');

test('the udev symlink when it exists, else the port named org.guest-agent.0 under sysfs', () => {
  const dir = tmpDir();
  try {
    const sys = path.join(dir, 'sys');
    for (const [entry, name] of [
      ['vport0p1', 'org.qemu.guest_agent.0'],
      ['vport0p2', 'org.guest-agent.0'],
      ['vport1p1', ''],
    ]) {
      fs.mkdirSync(path.join(sys, entry), { recursive: true });
      if (name) fs.writeFileSync(path.join(sys, entry, 'name'), name + '\n');
    }
    const link = path.join(dir, 'org.guest-agent.0');
    assert.is(findPort(sys, '/dev', link), '/dev/vport0p2');
    fs.writeFileSync(link, '');
    assert.is(findPort(sys, '/dev', link), link);
    assert.throws(
      () => findPort(path.join(dir, 'none'), '/dev', path.join(dir, 'nope')),
      /org.guest-agent.0 not found/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A fixture sysfs dir: entry -> name ('' for a port with no name file yet). */
function sysfs(dir: string, ports: Record<string, string>): string {
  const sys = path.join(dir, 'sys');
  for (const [entry, name] of Object.entries(ports)) {
    fs.mkdirSync(path.join(sys, entry), { recursive: true });
    if (name) fs.writeFileSync(path.join(sys, entry, 'name'), name + '\n');
  }
  return sys;
}

test('findPorts: each wanted name once (the first entry), at the udev symlink when there is one, else the node', () => {
  const dir = tmpDir();
  try {
    const sys = sysfs(dir, {
      vport1p1: 'org.guest-agent.0',
      vport0p3: 'org.qemu.guest_agent.0',
      vport0p1: 'com.redhat.spice.0',
      vport0p2: '',
      vport2p1: 'org.guest-agent.0', // a second port of the same name: not served
    });
    const dev = path.join(dir, 'dev');
    fs.mkdirSync(path.join(dev, 'virtio-ports'), { recursive: true });
    const names = ['org.guest-agent.0', 'org.qemu.guest_agent.0'];
    assert.equal(findPorts(names, sys, dev), [
      { name: 'org.qemu.guest_agent.0', entry: 'vport0p3', path: path.join(dev, 'vport0p3') },
      { name: 'org.guest-agent.0', entry: 'vport1p1', path: path.join(dev, 'vport1p1') },
    ]);
    fs.writeFileSync(path.join(dev, 'vport0p3'), '');
    fs.symlinkSync('../vport0p3', path.join(dev, 'virtio-ports', 'org.qemu.guest_agent.0'));
    assert.is(findPorts(names, sys, dev)[0].path, path.join(dev, 'virtio-ports', 'org.qemu.guest_agent.0'));
    assert.equal(
      findPorts(['org.guest-agent.0'], sys, dev).map((p) => p.entry),
      ['vport1p1'],
    );
    assert.equal(findPorts(names, path.join(dir, 'none'), dev), []);
    assert.equal(
      [...portNames(sys)],
      [
        ['vport0p1', 'com.redhat.spice.0'],
        ['vport0p3', 'org.qemu.guest_agent.0'],
        ['vport1p1', 'org.guest-agent.0'],
        ['vport2p1', 'org.guest-agent.0'],
      ],
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("portNameOf: a known name in the path, else sysfs's name for the node the path leads to", () => {
  const dir = tmpDir();
  try {
    const sys = sysfs(dir, { vport0p1: 'org.qemu.guest_agent.0', vport0p2: 'other' });
    const node = path.join(dir, 'vport0p1');
    fs.writeFileSync(node, '');
    fs.symlinkSync(node, path.join(dir, 'link'));
    assert.is(portNameOf('/dev/virtio-ports/org.guest-agent.0', sys), 'org.guest-agent.0');
    assert.is(portNameOf(path.join(dir, 'link'), sys), 'org.qemu.guest_agent.0');
    assert.is(portNameOf('/dev/vport0p2', sys), 'other');
    assert.is(portNameOf('/dev/ttyS0', sys), undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
