// lib/native.ts: the addon's whole surface, and the modules that must load without the addon.
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { ADDON_EXPORTS, native } from '../../lib/native';
import { suite } from '../helpers/harness';

const test = suite('native');
const LIB = path.join(__dirname, '..', '..', 'lib');

test('the addon exports exactly what lib/native.ts types, each of its kind', () => {
  assert.equal(Object.keys(native).sort(), Object.keys(ADDON_EXPORTS).sort());
  for (const [name, kind] of Object.entries(ADDON_EXPORTS))
    assert.is(typeof (native as unknown as Record<string, unknown>)[name], kind, name);
});

/** Exit status and stderr of requiring dist/lib/`module` in a process where loading the addon fails. */
function requireWithoutAddon(module: string): { status: number | null; stderr: string } {
  const hook = `const M = require('module'); const load = M._load; M._load = function (req, ...rest) { if (req === 'node-gyp-build') throw new Error('no addon here'); return load.call(this, req, ...rest); };`;
  const r = spawnSync(process.execPath, ['-e', `${hook} require(${JSON.stringify(path.join(LIB, module))});`], {
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr };
}

test('errors, the wire and the whole host client load without the addon', () => {
  assert.is.not(requireWithoutAddon('native').status, 0, 'the hook keeps the addon from loading');
  const modules = [
    'errors',
    'wire/framing',
    'wire/json',
    'wire/answer',
    'wire/request',
    'mounts',
    'net/addr',
    'protocols/phoenix/answers',
  ];
  const client = [
    'client/errors',
    'client/exact-json',
    'client/answer-scan',
    'client/format',
    'client/copy',
    'client/copy-from',
    'client/copy-to',
    'client/link',
    'client/connection',
    'client/guest-agent',
    'client/ctl-args',
    'client/ctl-copy',
    'client/ctl',
  ];
  for (const m of [...modules, ...client]) {
    const r = requireWithoutAddon(m);
    assert.is(r.status, 0, `${m}: ${r.stderr}`);
  }
});

test("stopLoopIdleTime: the loop's waits are no longer timed as idle (its one zero-timeout poll a wait is gone)", () => {
  // In a process of its own: it changes that process's event loop for good. Each half waits
  // 100 ms on a timer; with the metrics on, that wait is idle time.
  const script = `
    const { native } = require(${JSON.stringify(path.join(LIB, 'native'))});
    const { performance } = require('perf_hooks');
    const idleOver = (ms) => new Promise((r) => { const a = performance.eventLoopUtilization(); setTimeout(() => r(performance.eventLoopUtilization(a).idle), ms); });
    (async () => {
      const before = await idleOver(100);
      const stopped = native.stopLoopIdleTime();
      const after = await idleOver(100);
      process.stdout.write(JSON.stringify({ before, stopped, after }));
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const { before, stopped, after } = JSON.parse(r.stdout) as { before: number; stopped: boolean; after: number };
  assert.ok(stopped, `this Node's libuv (${process.versions.uv}) is one the binding knows`);
  assert.ok(before > 50, `idle ${before} ms of a 100 ms wait before`);
  assert.is(after, 0, 'no idle time after');
});

test.run();
