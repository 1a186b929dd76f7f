// One vocabulary for the host client and the guest-side libraries: an operation both offer has
// one name on both sides, and the README's examples call only names that exist.
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { GuestAgent } from '../../../lib/client';
import * as files from '../../../lib/files';
import * as net from '../../../lib/net';
import * as sysinfo from '../../../lib/sysinfo';
import { REPO } from '../../helpers/agent';
import { suite } from '../../helpers/harness';

const test = suite('client vocabulary');

/** The operations both sides offer, by the library that has them. */
const SHARED: Record<string, Record<string, unknown>> = {
  files: {
    md5File: files.md5File,
    statFile: files.statFile,
    listDirectory: files.listDirectory,
    mkdirAll: files.mkdirAll,
  },
  net: {
    links: net.links,
    addAddress: net.addAddress,
    deleteAddress: net.deleteAddress,
    setLinkUp: net.setLinkUp,
    setLinkDown: net.setLinkDown,
    routes: net.routes,
    addRoute: net.addRoute,
    deleteRoute: net.deleteRoute,
  },
  sysinfo: { systemInfo: sysinfo.systemInfo },
};

/** The client's names before they were the library's: none may come back. */
const OLD = ['md5sum', 'stat', 'readdir', 'mkdir', 'sysinfo', 'interfaces', 'linkUp', 'linkDown'];

const methods = (): string[] => Object.getOwnPropertyNames(GuestAgent.prototype);

test('every operation the libraries share with GuestAgent has the same name on both sides', () => {
  for (const [lib, fns] of Object.entries(SHARED)) {
    for (const [name, fn] of Object.entries(fns)) {
      assert.type(fn, 'function', `${lib}.${name}`);
      assert.ok(methods().includes(name), `GuestAgent has no ${name}, as ember-ga/${lib} does`);
    }
  }
  for (const name of OLD) assert.not.ok(methods().includes(name), `GuestAgent still has ${name}`);
});

test("the README's examples call only names that exist: ga.X on GuestAgent, imports in their library", () => {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const code = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).join('\n');
  const called = [...new Set([...code.matchAll(/\bga\.(\w+)\(/g)].map((m) => m[1]))];
  assert.ok(called.length >= 5, `only ${called.join(', ')}`);
  for (const name of called) assert.ok(name in GuestAgent.prototype, `README calls ga.${name}, GuestAgent has none`);
  const libs: Record<string, Record<string, unknown>> = { files, net, sysinfo };
  for (const m of code.matchAll(/import \{([^}]+)\} from 'ember-ga\/(files|net|sysinfo)'/g)) {
    for (const name of m[1].split(',').map((n) => n.trim()))
      assert.ok(name in libs[m[2]], `README imports ${name} from ember-ga/${m[2]}, which has none`);
  }
  // Where both sides show an operation, the client calls it by the library's name.
  const imported = [...code.matchAll(/import \{([^}]+)\} from 'ember-ga\/(?:files|net|sysinfo)'/g)].flatMap((m) =>
    m[1].split(',').map((n) => n.trim()),
  );
  const shared = imported.filter((n) => called.includes(n));
  assert.ok(shared.length >= 4, `the README shows few shared operations: ${shared.join(', ')}`);
});

test.run();
