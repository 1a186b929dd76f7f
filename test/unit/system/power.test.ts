// lib/system/power.ts on a fixture system: the shutdown command line and its failures, and the
// order in which suspend tries systemd, pm-utils and /sys/power/state (qemu-ga 7.2's).
import * as fs from 'fs';
import * as assert from 'uvu/assert';
import { ProgramFailedError, shutdown, suspend, SuspendError, type SuspendMode } from '../../../lib/system';
import { suite, rejection } from '../../helpers/harness';
import { SystemFixture } from '../../helpers/system-fixture';

const test = suite('system-power');

const rejects = (p: PromiseLike<unknown>) => rejection(p);

function fixture(): SystemFixture {
  return new SystemFixture();
}

test('shutdown: /sbin/shutdown -h FLAG +0 "hypervisor initiated shutdown", each mode', async () => {
  const fx = fixture();
  try {
    fx.stub('/sbin/shutdown');
    await shutdown(undefined, { root: fx.root });
    await shutdown('halt', { root: fx.root });
    await shutdown('reboot', { root: fx.root });
    await shutdown('powerdown', { root: fx.root });
    assert.equal(fx.calls(), [
      'shutdown [-h] [-P] [+0] [hypervisor initiated shutdown]',
      'shutdown [-h] [-H] [+0] [hypervisor initiated shutdown]',
      'shutdown [-h] [-r] [+0] [hypervisor initiated shutdown]',
      'shutdown [-h] [-P] [+0] [hypervisor initiated shutdown]',
    ]);
  } finally {
    fx.cleanup();
  }
});

test("shutdown: a failing, killed or missing shutdown(8) is qemu-ga's error", async () => {
  const fx = fixture();
  try {
    let e = await rejects(shutdown('powerdown', { root: fx.root }));
    assert.instance(e, ProgramFailedError);
    assert.is(e.message, 'child process has failed to shutdown');
    fx.stub('/sbin/shutdown', { exit: 3 });
    e = await rejects(shutdown('powerdown', { root: fx.root }));
    assert.is(e.message, 'child process has failed to shutdown');
    assert.equal((e as ProgramFailedError).exit, { code: 3, signal: null });
    fx.stub('/sbin/shutdown', { killed: true });
    e = await rejects(shutdown('powerdown', { root: fx.root }));
    assert.is(e.message, 'child process has terminated abnormally');
  } finally {
    fx.cleanup();
  }
});

/** The calls a suspend made and its outcome (undefined: it resolved). */
async function trySuspend(fx: SystemFixture, mode: SuspendMode): Promise<{ calls: string[]; error?: string }> {
  fx.clearCalls();
  try {
    await suspend(mode, { root: fx.root });
    return { calls: fx.calls() };
  } catch (e) {
    assert.instance(e, SuspendError);
    return { calls: fx.calls(), error: (e as Error).message };
  }
}

test('suspend: nothing that offers the mode', async () => {
  const fx = fixture();
  try {
    for (const mode of ['disk', 'ram', 'hybrid'] as const) {
      assert.equal(await trySuspend(fx, mode), {
        calls: [],
        error: 'the requested suspend mode is not supported by the guest',
      });
    }
  } finally {
    fx.cleanup();
  }
});

test('suspend: systemd first (systemctl status exits 1 to 3 for a unit it has)', async () => {
  const fx = fixture();
  try {
    fx.stub('/usr/bin/systemctl', { exit: 3 });
    // status exits 3 and so does the suspend itself: a failure, which qemu-ga drops when the
    // later ways are not there (nor is it an error then).
    assert.equal(await trySuspend(fx, 'ram'), {
      calls: ['systemctl [status] [systemd-suspend]', 'systemctl [suspend]'],
    });
    fx.stub('/usr/bin/systemctl', { exit: 0 });
    // status 0 is no "supported" (LSB: 0 running, 1-3 known, 4 unknown); nothing else offers it.
    assert.equal((await trySuspend(fx, 'disk')).error, 'the requested suspend mode is not supported by the guest');
    fx.stub('/usr/bin/systemctl', { exit: 4 });
    assert.equal((await trySuspend(fx, 'hybrid')).calls, ['systemctl [status] [systemd-hybrid-sleep]']);
  } finally {
    fx.cleanup();
  }
});

test('suspend: systemd that succeeds ends it', async () => {
  const fx = fixture();
  try {
    // A stub that answers "status" with 3 and the verb with 0.
    fx.write(
      '/usr/bin/systemctl',
      `#!/bin/sh\nprintf 'systemctl %s\\n' "$*" >> ${JSON.stringify(fx.at('calls.log'))}\n[ "$1" = status ] && exit 3\nexit 0\n`,
    );
    fs.chmodSync(fx.at('/usr/bin/systemctl'), 0o755);
    fx.stub('/usr/bin/pm-is-supported');
    assert.equal(await trySuspend(fx, 'disk'), {
      calls: ['systemctl status systemd-hibernate', 'systemctl hibernate'],
    });
  } finally {
    fx.cleanup();
  }
});

test('suspend: pm-utils next (pm-is-supported exits 0), its failures', async () => {
  const fx = fixture();
  try {
    fx.stub('/usr/bin/systemctl', { exit: 4 });
    fx.stub('/usr/sbin/pm-is-supported');
    fx.stub('/usr/sbin/pm-suspend-hybrid');
    assert.equal(await trySuspend(fx, 'hybrid'), {
      calls: ['systemctl [status] [systemd-hybrid-sleep]', 'pm-is-supported [--suspend-hybrid]', 'pm-suspend-hybrid'],
    });
    // Offered, but pm-hibernate is missing, and /sys/power/state has no "disk": no error either.
    fx.write('/sys/power/state', 'freeze mem\n');
    assert.equal(await trySuspend(fx, 'disk'), {
      calls: ['systemctl [status] [systemd-hibernate]', 'pm-is-supported [--hibernate]'],
    });
    // ...but with "disk" there, it is written.
    fx.write('/sys/power/state', 'freeze mem disk\n');
    assert.equal((await trySuspend(fx, 'disk')).error, undefined);
    assert.is(fx.read('/sys/power/state'), 'disk');
    fx.stub('/usr/sbin/pm-is-supported', { exit: 1 });
    fx.write('/sys/power/state', 'freeze mem\n');
    assert.equal((await trySuspend(fx, 'disk')).error, 'the requested suspend mode is not supported by the guest');
  } finally {
    fx.cleanup();
  }
});

test('suspend: /sys/power/state last: "mem" or "disk" written when listed', async () => {
  const fx = fixture();
  try {
    fx.write('/sys/power/state', 'freeze mem disk\n');
    assert.equal(await trySuspend(fx, 'ram'), { calls: [] });
    assert.is(fx.read('/sys/power/state'), 'mem');
    fx.write('/sys/power/state', 'freeze mem disk\n');
    assert.equal(await trySuspend(fx, 'disk'), { calls: [] });
    assert.is(fx.read('/sys/power/state'), 'disk');
    // hybrid has no word there.
    fx.write('/sys/power/state', 'freeze mem disk\n');
    assert.equal((await trySuspend(fx, 'hybrid')).error, 'the requested suspend mode is not supported by the guest');
    assert.is(fx.read('/sys/power/state'), 'freeze mem disk\n');
  } finally {
    fx.cleanup();
  }
});

test("suspend: a way offered but failed, and sysfs without the mode: qemu-ga's outcomes", async () => {
  const fx = fixture();
  try {
    // What qemu-ga 7.2 answers on a machine whose systemctl cannot reach systemd (status exits 1).
    fx.stub('/usr/bin/systemctl', { exit: 1 });
    assert.equal(await trySuspend(fx, 'hybrid'), {
      calls: ['systemctl [status] [systemd-hybrid-sleep]', 'systemctl [hybrid-sleep]'],
      error: 'unknown guest suspend mode',
    });
    // For disk/ram the sysfs step finds no word and sets no error: qemu-ga then reports success.
    fx.write('/sys/power/state', '');
    assert.equal(await trySuspend(fx, 'disk'), {
      calls: ['systemctl [status] [systemd-hibernate]', 'systemctl [hibernate]'],
    });
  } finally {
    fx.cleanup();
  }
});

test('suspend: a helper that is there but cannot be run', async () => {
  const fx = fixture();
  try {
    fx.write('/usr/bin/systemctl', 'not executable');
    assert.equal(await trySuspend(fx, 'ram'), {
      calls: [],
      error: 'the requested suspend mode is not supported by the guest',
    });
  } finally {
    fx.cleanup();
  }
});

test.run();
