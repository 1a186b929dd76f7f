import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { findPort } from '../../../lib/transports/find-port';
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

test.run();
