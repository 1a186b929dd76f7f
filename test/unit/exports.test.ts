// The package's public surface: what the root and each subpath export (package.json "exports").
// A name added here is a promise to users; internals (framing, dispatch, transports) stay out.
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { REPO } from '../helpers/agent';
import { suite } from '../helpers/harness';

const test = suite('package exports');

const ROOT = [
  'AbortError',
  'DEFAULT_FSFREEZE_HOOK',
  'DEFAULT_MAX_OUTPUT',
  'DEFAULT_READ_SIZE',
  'ExecLimitError',
  'ExecProcess',
  'ExecTable',
  'Freezer',
  'FsfreezeHookError',
  'GuestAgent',
  'GuestAgentError',
  'GuestFile',
  'NetInputError',
  'OutputBudget',
  'QmpConnection',
  'RT_TABLE_MAIN',
  'SystemError',
  'Transfer',
  'VERSION',
  'addAddress',
  'addRoute',
  'addresses',
  'classifyMounts',
  'deleteAddress',
  'deleteRoute',
  'errnoName',
  'exec',
  'fopenFile',
  'freeze',
  'fstrim',
  'isFopenMode',
  'links',
  'listDirectory',
  'md5File',
  'mkdirAll',
  'mountPathText',
  'openFile',
  'parseCidr',
  'parseIp',
  'parseMountTable',
  'realDevice',
  'routes',
  'runFsfreezeHook',
  'selectFreezable',
  'selectQemuGa',
  'setLinkDown',
  'setLinkUp',
  'statFile',
  'sysinfo',
  'system',
  'thaw',
  'unescapeMountField',
];

// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = (p: string) => require(path.join(REPO, p)) as Record<string, unknown>;
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>;
};

test('the root export is exactly the public names', () => {
  assert.equal(Object.keys(load('dist/lib/index.js')).sort(), ROOT);
});

test("no name clashes with Node's fs: the file handle is GuestFile, not FileHandle", () => {
  const root = load('dist/lib/index.js');
  assert.not.ok('FileHandle' in root);
  assert.is((root.GuestFile as { name: string }).name, 'GuestFile');
  assert.is(load('dist/lib/files/index.js').GuestFile, root.GuestFile);
});

test('every subpath export exists, with its types, and is part of the root', () => {
  const subpaths = Object.entries(pkg.exports).filter(([k]) => k !== '.' && k !== './package.json');
  assert.equal(subpaths.map(([k]) => k).sort(), [
    './client',
    './exec',
    './files',
    './freeze',
    './net',
    './sysinfo',
    './system',
  ]);
  const root = load('dist/lib/index.js');
  for (const [name, target] of subpaths) {
    if (typeof target === 'string') throw new Error(`${name}: expected {types, default}`);
    assert.ok(fs.existsSync(path.join(REPO, target.types)), `${name}: ${target.types} missing`);
    const mod = load(target.default);
    for (const k of Object.keys(mod)) {
      if (name === './sysinfo' || name === './system') {
        const ns = name.slice(2) as 'sysinfo' | 'system';
        assert.ok(k in (root[ns] as object), `${ns}.${k} not in the root`);
      } else assert.ok(k in root, `${name}'s ${k} not in the root`);
    }
  }
});

test.run();
