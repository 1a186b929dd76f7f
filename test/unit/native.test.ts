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

test.run();
