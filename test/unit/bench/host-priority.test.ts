import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as assert from 'uvu/assert';
import { raiseThisThread } from '../../../bench/helpers/host-priority';
import { root, suite } from '../../helpers/harness';

const test = suite('bench host-side priority');

/** A process's nice value: field 19 of /proc/PID/stat. */
function niceOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

function sleeper(): ChildProcess {
  return spawn('sleep', ['30'], { stdio: 'ignore' });
}

test(
  'the host side started while raised runs at the raised priority, the guest started before does not; then it is put back',
  () => {
    const before = os.getPriority();
    const guest = sleeper();
    const restore = raiseThisThread(before - 5);
    let host: ChildProcess | undefined;
    try {
      assert.ok(restore, 'raised');
      assert.is(os.getPriority(), before - 5);
      host = sleeper();
      assert.is(niceOf(host.pid!), before - 5);
      assert.is(niceOf(guest.pid!), before);
    } finally {
      restore?.();
      guest.kill();
      host?.kill();
    }
    assert.is(os.getPriority(), before);
  },
  { needs: [root] },
);

test('nice 0 changes nothing', () => {
  const before = os.getPriority();
  assert.is(raiseThisThread(0), undefined);
  assert.is(os.getPriority(), before);
});

test.run();
