// The npm package a guest installs: `npm pack` (which builds the prebuilds), the tarball's file
// list, an install of the tarball with no compiler on PATH and node-gyp rigged to fail, the
// installed agent answering from the prebuilt addon, and the systemd unit shipped with it.
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { KNOWN_PORTS } from '../../lib/transports/find-port';
import { LineClient, REPO, tmpDir } from '../helpers/agent';
import { command, suite, waitFor, type Requirement } from '../helpers/harness';

const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  main: string;
  types: string;
};
const work = tmpDir('ember-ga-package-');
const ELF_MACHINE: Record<string, number> = { x64: 62, arm64: 183 };

/**
 * The environment without what `npm test` exported to us (npm_config_prefix, npm_package_*...),
 * but with the npm cache `npm ci` filled: the offline install takes its dependencies from there.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) || /^npm_config_cache$/i.test(k)) env[k] = v;
  // Both set make Node warn on stderr, which run() reads with stdout.
  delete env.FORCE_COLOR;
  delete env.NO_COLOR;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 240_000, maxBuffer: 64 << 20, env: cleanEnv(), ...opts });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// One `npm pack` for the whole file (it compiles the addon for every arch it can: seconds).
let packed: Promise<{ tarball: string; entries: string[]; unpacked: string }> | undefined;
function pack() {
  return (packed ??= (async () => {
    const dest = path.join(work, 'pack');
    fs.mkdirSync(dest);
    const r = run('npm', ['pack', '--pack-destination', dest], { cwd: REPO });
    assert.is(r.status, 0, `npm pack failed:\n${r.out}`);
    const tgz = fs.readdirSync(dest).filter((f) => f.endsWith('.tgz'));
    assert.equal(tgz, [`${pkg.name}-${pkg.version}.tgz`]);
    const tarball = path.join(dest, tgz[0]);
    const list = run('tar', ['-tzf', tarball]);
    assert.is(list.status, 0, list.out);
    const entries = list.out
      .split('\n')
      .filter(Boolean)
      .map((e) => e.replace(/^package\//, ''));
    const unpacked = path.join(work, 'unpacked');
    fs.mkdirSync(unpacked);
    assert.is(run('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1']).status, 0);
    return { tarball, entries, unpacked };
  })());
}

const PACK_TIMEOUT = 240_000;
const test = suite('package');

test('the bins are executable scripts: `npx ember-ga` in this checkout runs dist/lib/agent-bin.js as it is', () => {
  for (const [name, file] of Object.entries(pkg.bin)) {
    const full = path.join(REPO, file);
    assert.ok((fs.statSync(full).mode & 0o111) === 0o111, `${name} (${file}) is not executable`);
    assert.ok(
      fs.readFileSync(full, 'utf8').startsWith('#!/usr/bin/env node\n'),
      `${name} (${file}) has no node shebang`,
    );
  }
});

test('off Linux the agent says so in one line, loading nothing of the addon; ember-ga-ctl still runs', () => {
  const asIf = (file: string, args: string[]) =>
    run(process.execPath, [
      '-e',
      `Object.defineProperty(process, 'platform', { value: 'darwin' }); process.argv.splice(1, 0, ${JSON.stringify(file)}); require(${JSON.stringify(file)})`,
      '--',
      ...args,
    ]);
  const agent = asIf(path.join(REPO, pkg.bin['ember-ga']), ['--version']);
  assert.is(agent.status, 1);
  assert.is(
    agent.out,
    'ember-ga: the agent runs in Linux guests only (this is darwin); on a host, use ember-ga-ctl or ember-ga/client\n',
  );
  const ctl = asIf(path.join(REPO, pkg.bin['ember-ga-ctl']), ['--version']);
  assert.is(ctl.status, 0, ctl.out);
});

test(
  'npm pack ships prebuilds, compiled JS with types, the native sources, the unit, nothing else',
  async () => {
    const { entries } = await pack();
    const allowed = [
      /^package\.json$/,
      /^README\.md$/,
      /^docs\/[\w.-]+\.md$/,
      /^LICENSE$/,
      /^CHANGELOG\.md$/,
      /^binding\.gyp$/,
      /^scripts\/install\.js$/, // the install step: node-gyp-build on Linux, nothing elsewhere
      /^native\/[\w.-]+\.(cc|h)$/,
      /^dist\/lib\/[\w/.-]+\.(js|d\.ts)$/,
      /^prebuilds\/linux-(x64|arm64)\/[\w.-]+\.node$/,
      /^systemd\/(ember-ga\.service|60-ember-ga\.rules)$/,
    ];
    const unexpected = entries.filter((e) => !allowed.some((re) => re.test(e)));
    assert.equal(unexpected, [], `files the package must not ship: ${unexpected.join(', ')}`);

    const required = [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'docs/PROTOCOL.md',
      'binding.gyp',
      'systemd/ember-ga.service',
      'systemd/60-ember-ga.rules',
      pkg.main,
      pkg.types,
      pkg.bin['ember-ga'],
    ];
    // Every source binding.gyp names and every header, so a source build from the tarball works where g++ exists.
    const gyp = fs.readFileSync(path.join(REPO, 'binding.gyp'), 'utf8');
    const sources = [...gyp.matchAll(/["']([\w/.-]+\.(?:cc|cpp|c|h))["']/g)].map((m) => m[1]);
    assert.ok(sources.length > 0, 'no sources found in binding.gyp');
    const headers = fs
      .readdirSync(path.join(REPO, 'native'))
      .filter((f) => f.endsWith('.h'))
      .map((f) => `native/${f}`);
    assert.ok(headers.length > 0, 'no headers found in native/');
    required.push(...sources, ...headers);
    // Every TypeScript module of lib/ compiled, with its declarations.
    const walk = (dir: string): string[] =>
      fs
        .readdirSync(path.join(REPO, dir), { withFileTypes: true })
        .flatMap((d) => (d.isDirectory() ? walk(`${dir}/${d.name}`) : [`${dir}/${d.name}`]));
    for (const ts of walk('lib').filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))) {
      required.push(`dist/${ts.replace(/\.ts$/, '.js')}`, `dist/${ts.replace(/\.ts$/, '.d.ts')}`);
    }
    const native = entries.filter((e) => e.startsWith(`prebuilds/linux-${process.arch}/`));
    assert.is(native.length, 1, `one prebuild for linux-${process.arch}, got: ${native.join(', ') || 'none'}`);
    const missing = required.filter((f) => !entries.includes(f.replace(/^\.\//, '')));
    assert.equal(missing, [], `missing from the tarball: ${missing.join(', ')}`);
  },
  { timeout: PACK_TIMEOUT },
);

test(
  'the tarball has an arm64 prebuild, an aarch64 ELF file',
  async () => {
    const { entries, unpacked } = await pack();
    const arm = entries.filter((e) => e.startsWith('prebuilds/linux-arm64/'));
    assert.is(arm.length, 1, `one prebuild for linux-arm64, got: ${arm.join(', ') || 'none'}`);
    const head = fs.readFileSync(path.join(unpacked, arm[0])).subarray(0, 20);
    assert.is(head.readUInt32BE(0), 0x7f454c46, 'not an ELF file');
    assert.is(head.readUInt16LE(18), ELF_MACHINE.arm64, 'not an aarch64 ELF file');
  },
  { timeout: PACK_TIMEOUT, needs: [command('aarch64-linux-gnu-ar')] },
);

/** Orders dotted versions as numbers: [2, 28] < [2, 28, 1] < [2, 31]. */
function cmpVersion(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++)
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return a.length - b.length;
}

test(
  'docs/INSTALL.md states the runtime versions the prebuilds need, as objdump reads them, within the promised floors',
  async () => {
    const { entries, unpacked } = await pack();
    const install = fs.readFileSync(path.join(REPO, 'docs', 'INSTALL.md'), 'utf8');
    for (const file of entries.filter((e) => e.startsWith('prebuilds/'))) {
      const arch = file.split('/')[1].replace('linux-', '');
      const tool = arch === process.arch ? 'objdump' : `${arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu-objdump`;
      const r = run(tool, ['-T', path.join(unpacked, file)]);
      assert.is(r.status, 0, r.out);
      // Every symbol of `lib` with the version it needs, as objdump -T lists them: "(GLIBC_2.28) statx".
      const needs = (lib: string) =>
        [...r.out.matchAll(new RegExp(`\\(${lib}_([0-9.]+)\\)\\s+(\\S+)`, 'g'))].map((m) => ({
          version: m[1].split('.').map(Number),
          symbol: m[2],
        }));
      const newest = (lib: string) => {
        const versions = needs(lib)
          .map((n) => n.version)
          .sort(cmpVersion);
        return versions.length ? `${lib}_${versions[versions.length - 1].join('.')}` : `no ${lib}`;
      };
      const line = `linux-${arch}: ${newest('GLIBC')}, ${newest('GLIBCXX')}`;
      assert.ok(install.includes(line), `docs/INSTALL.md must say what the prebuild needs: ${line}`);
      // The floors docs/INSTALL.md promises: glibc 2.28 (Node's own; RHEL 8, Debian 10) and GCC 6's
      // libstdc++ (GLIBCXX_3.4.22), whatever compiler this machine has.
      const over = (lib: string, max: number[]) =>
        needs(lib)
          .filter((n) => cmpVersion(n.version, max) > 0)
          .map((n) => `${n.symbol}@${lib}_${n.version.join('.')}`);
      assert.equal(over('GLIBC', [2, 28]), [], `linux-${arch} needs a glibc newer than 2.28`);
      assert.equal(over('GLIBCXX', [3, 4, 22]), [], `linux-${arch} needs a libstdc++ newer than GCC 6's`);
    }
  },
  { timeout: PACK_TIMEOUT, needs: [command('objdump')] },
);

// --- The guest's install: no compiler, node-gyp fails loudly, offline ---

const COMPILER =
  /^(cc|c\+\+|gcc|g\+\+|cpp|clang|clang\+\+|make|gmake|ld|ld\.\w+|as|node-gyp)(-[\d.]+)?$|-(gcc|g\+\+|cc|c\+\+|cpp|ld|as)(-[\d.]+)?$/;

/** A bin directory like the guest's: everything on our PATH except compilers, make and node-gyp. */
function guestBin(): string {
  const bin = path.join(work, 'guest-bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      if (COMPILER.test(n) || fs.existsSync(path.join(bin, n))) continue;
      fs.symlinkSync(path.join(dir, n), path.join(bin, n));
    }
  }
  return bin;
}

interface Installed {
  prefix: string;
  root: string;
  env: NodeJS.ProcessEnv;
}
let installed: Installed | undefined;
const gypCalled = path.join(work, 'node-gyp-was-called');

test(
  'npm install -g of the tarball (deps from the npm cache), with no compiler: uses the prebuild, never builds',
  async () => {
    const { tarball } = await pack();
    const bin = guestBin();
    // node-gyp-build compiles with the node-gyp that require() finds (NODE_PATH is searched),
    // npm's own otherwise (npm 11 ignores a configured node-gyp for install scripts): this
    // node-gyp is found first, records the call and fails.
    const fake = path.join(work, 'fake-modules', 'node-gyp');
    fs.mkdirSync(path.join(fake, 'bin'), { recursive: true });
    fs.writeFileSync(
      path.join(fake, 'package.json'),
      JSON.stringify({ name: 'node-gyp', version: '0.0.0', bin: { 'node-gyp': 'bin/node-gyp.js' } }),
    );
    const failer = path.join(fake, 'bin', 'node-gyp.js');
    fs.writeFileSync(
      failer,
      `#!/usr/bin/env node
require('fs').appendFileSync(${JSON.stringify(gypCalled)}, process.argv.slice(2).join(' ') + '\\n');
console.error('node-gyp called: the prebuild was not used');
process.exit(97);
`,
      { mode: 0o755 },
    );
    const env = cleanEnv({ PATH: bin, NODE_PATH: path.dirname(fake), npm_config_node_gyp: failer });
    const probe = run('sh', ['-c', 'for c in g++ gcc cc c++ make clang; do command -v $c && exit 1; done; exit 0'], {
      env,
    });
    assert.is(probe.status, 0, `the guest PATH still has a compiler: ${probe.out}`);

    const prefix = path.join(work, 'prefix');
    const r = run(
      'npm',
      [
        'install',
        '-g',
        '--prefix',
        prefix,
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--foreground-scripts',
        tarball,
      ],
      { env, cwd: work },
    );
    assert.is(r.status, 0, `install failed:\n${r.out}`);
    assert.not.ok(
      fs.existsSync(gypCalled),
      `node-gyp was called: ${fs.existsSync(gypCalled) ? fs.readFileSync(gypCalled, 'utf8') : ''}\n${r.out}`,
    );
    const root = path.join(prefix, 'lib', 'node_modules', pkg.name);
    assert.ok(fs.existsSync(path.join(root, 'prebuilds', `linux-${process.arch}`)), 'no prebuild installed');
    assert.not.ok(fs.existsSync(path.join(root, 'build')), 'the install compiled something (build/ exists)');
    assert.ok(
      fs.existsSync(path.join(root, 'node_modules', 'node-gyp-build')) ||
        fs.existsSync(path.join(prefix, 'lib', 'node_modules', 'node-gyp-build')),
      'runtime dependency node-gyp-build not installed',
    );
    const version = run(path.join(prefix, 'bin', 'ember-ga'), ['--version'], { env });
    assert.is(version.status, 0, version.out);
    assert.is(version.out, `${pkg.version}\n`);
    installed = { prefix, root, env };
  },
  { timeout: PACK_TIMEOUT },
);

interface Started {
  proc: ChildProcess;
  client: LineClient;
}
const started = new Map<string, Promise<Started>>();

/** The installed agent on a unix socket, started once per `key` by `argv` (+ --listen). */
function startInstalled(key: string, argv: (inst: Installed) => string[], ms = 10_000): Promise<Started> {
  let p = started.get(key);
  if (!p) {
    p = (async () => {
      if (!installed) throw new Error('the install test did not pass');
      const socket = path.join(work, `${key}.sock`);
      const [cmd, ...args] = [...argv(installed), '--listen', `unix:${socket}`];
      const proc = spawn(cmd, args, { env: installed.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (d: string) => (err += d));
      const stop = () => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL');
      try {
        await waitFor(
          () => {
            if (proc.exitCode !== null) throw new Error(`the installed agent (${key}) exited: ${err}`);
            return /serving on/.test(err);
          },
          ms,
          `the installed agent (${key}) to start`,
        );
        return { proc, client: await LineClient.connect(socket) };
      } catch (e) {
        stop();
        throw e;
      }
    })();
    started.set(key, p);
  }
  return p;
}

const nativeAgent = () => startInstalled('native', (i) => [path.join(i.prefix, 'bin', 'ember-ga')]);

/** The addon files mapped into a process: proof of which build it loaded. */
function loadedAddons(pid: number): string[] {
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
  return [
    ...new Set(
      maps
        .split('\n')
        .map((l) => l.split(/\s+/).slice(5).join(' '))
        .filter((p) => p.endsWith('.node')),
    ),
  ];
}

function assertPrebuildLoaded(pid: number, arch: string): void {
  const dir = fs.realpathSync(path.join(installed!.root, 'prebuilds', `linux-${arch}`));
  const addons = loadedAddons(pid);
  assert.ok(
    addons.length === 1 && addons[0].startsWith(dir + path.sep),
    `expected the prebuild from ${dir}, the agent mapped: ${addons.join(', ') || 'no addon'}`,
  );
}

async function assertMd5(client: LineClient): Promise<void> {
  const file = path.join(work, 'random.bin');
  const data = crypto.randomBytes(1 << 20);
  fs.writeFileSync(file, data);
  assert.is(await client.ok('get-file-md5sum', { path: file }), crypto.createHash('md5').update(data).digest('hex'));
}

test('the installed agent answers ping, with the prebuilt addon loaded', async () => {
  const { client, proc } = await nativeAgent();
  assert.equal(await client.ok('ping'), pkg.version);
  assertPrebuildLoaded(proc.pid!, process.arch);
});

test('the installed agent answers get-file-md5sum from the prebuilt addon', async () => {
  await assertMd5((await nativeAgent()).client);
});

test('npm pack fails loudly when a prebuild target cannot be built, naming the way to skip it', () => {
  if (process.arch !== 'x64') return; // the cross target checked here is arm64
  // This machine's commands without the aarch64 binutils.
  const bin = path.join(work, 'no-aarch64-bin');
  fs.mkdirSync(bin);
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith('aarch64-linux-gnu-') || fs.existsSync(path.join(bin, name))) continue;
      fs.symlinkSync(path.join(dir, name), path.join(bin, name));
    }
  }
  if (!fs.existsSync(path.join(bin, 'node'))) fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  // Should the check not stop it, node-gyp fails at once: no build, no prebuilds/ in this checkout.
  const r = run(process.execPath, [path.join(REPO, 'scripts', 'prebuild.js')], {
    cwd: REPO,
    env: cleanEnv({ PATH: bin, npm_config_node_gyp: '/bin/false' }),
  });
  assert.is.not(r.status, 0, r.out);
  assert.match(r.out, /cannot build linux-arm64: aarch64-linux-gnu-ar not found/);
  assert.match(r.out, /EMBER_GA_PREBUILD_SKIP=arm64/);
});

// A Node tool author's view: the subpath exports, type-checked in strict mode and run from the
// installed package; then a host with no addon at all.
const CONSUMER = `import { openFile, md5File, statFile } from 'ember-ga/files';
import { links, addAddress, addresses, setLinkUp } from 'ember-ga/net';
import { selectFreezable, parseMountTable } from 'ember-ga/freeze';
import { systemInfo } from 'ember-ga/sysinfo';
import { GuestAgent } from 'ember-ga/client';
import * as root from 'ember-ga';

async function main(): Promise<void> {
  const file = process.argv[2];
  const h = await openFile(file, { mode: 'w' });
  await h.write(Buffer.from('hello'));
  await h.close();
  const st = await statFile(file);
  const md5 = await md5File(file);
  // The namespace the test runs this in is new: lo is its only link, the address documentation's.
  await setLinkUp('lo');
  await addAddress({ ifname: 'lo', cidr: '192.0.2.1/24' });
  const ips = (await addresses()).map((a) => \`\${a.address}/\${a.prefixlen}\`);
  const names = (await links()).map((l) => l.name);
  const freezable = selectFreezable('/dev/vda1 / ext4 rw 0 0\\n', () => '/dev/vda1');
  const entries = parseMountTable('/dev/vda1 / ext4 rw 0 0\\n');
  const info = await systemInfo();
  const client: typeof GuestAgent = GuestAgent;
  console.log(JSON.stringify({ md5, names, ips, freezable: freezable.length + entries.length, uname: typeof info.uname, client: typeof client, root: typeof root.openFile, st: typeof st }));
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
`;

test(
  'a strict TypeScript program imports ember-ga/files, /net, /freeze, /sysinfo, /client, type-checks and runs',
  async () => {
    if (!installed) throw new Error('the install test did not pass');
    const dir = path.join(work, 'consumer');
    fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
    fs.symlinkSync(installed.root, path.join(dir, 'node_modules', pkg.name));
    fs.symlinkSync(path.join(REPO, 'node_modules', '@types'), path.join(dir, 'node_modules', '@types'));
    fs.writeFileSync(path.join(dir, 'main.ts'), CONSUMER);
    for (const resolution of ['node16', 'node10']) {
      const tsconfig = {
        compilerOptions: {
          strict: true,
          target: 'es2022',
          module: resolution === 'node16' ? 'node16' : 'commonjs',
          moduleResolution: resolution,
          outDir: 'out',
          types: ['node'],
          skipLibCheck: false,
        },
        files: ['main.ts'],
      };
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
      const tsc = run(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir]);
      assert.is(tsc.status, 0, `tsc (${resolution}) failed:\n${tsc.out}`);
    }
    const r = run('unshare', ['--net', process.execPath, path.join(dir, 'out', 'main.js'), path.join(dir, 'f.txt')], {
      cwd: dir,
    });
    assert.is(r.status, 0, r.out);
    const out = JSON.parse(r.out) as { md5: string; names: string[]; ips: string[] };
    assert.is(out.md5, crypto.createHash('md5').update('hello').digest('hex'));
    assert.equal(out.names, ['lo']);
    assert.ok(out.ips.includes('192.0.2.1/24'), out.ips.join(' '));
  },
  { timeout: 60_000, needs: [command('unshare')] },
);

test('with no addon in the package, ember-ga/client and ember-ga-ctl still drive an agent', async () => {
  if (!installed) throw new Error('the install test did not pass');
  const { client } = await nativeAgent();
  await client.ok('ping');
  const copy = path.join(work, 'no-addon', 'node_modules', pkg.name);
  fs.mkdirSync(path.dirname(copy), { recursive: true });
  fs.cpSync(installed.root, copy, { recursive: true, dereference: true });
  fs.rmSync(path.join(copy, 'prebuilds'), { recursive: true, force: true });
  fs.rmSync(path.join(copy, 'build'), { recursive: true, force: true });
  const socket = path.join(work, 'native.sock');
  const script = `const { GuestAgent } = require('ember-ga/client');
(async () => {
  const ga = await GuestAgent.connect({ socket: ${JSON.stringify(socket)} });
  console.log(await ga.ping());
  await ga.close();
})().catch((e) => { console.error(e); process.exit(1); });`;
  const lib = run(process.execPath, ['-e', script], { cwd: path.dirname(path.dirname(copy)) });
  assert.is(lib.status, 0, lib.out);
  assert.is(lib.out.trim(), pkg.version);
  const ctl = run(process.execPath, [path.join(copy, 'dist', 'lib', 'client', 'ctl.js'), '-s', socket, 'ping']);
  assert.is(ctl.status, 0, ctl.out);
});

// An older guest: Debian 11's glibc 2.31 and GCC 10's libstdc++ (the x64 root scripts/bullseye.sh
// unpacks, which npm pack's prebuild uses to compile), run through its own dynamic loader.
const BULLSEYE_X64 = path.join(REPO, '.cache', 'bullseye', 'linux-x64', 'root');
const bullseyeX64: Requirement = () =>
  process.arch !== 'x64'
    ? 'needs an x64 machine'
    : fs.existsSync(path.join(BULLSEYE_X64, '.complete'))
      ? undefined
      : 'needs the Debian 11 root from scripts/bullseye.sh x64';

test(
  "on Debian 11's glibc 2.31 and libstdc++ (x64) the installed agent answers from the prebuild",
  async () => {
    const libs = ['lib', 'usr/lib'].map((d) => path.join(BULLSEYE_X64, d, 'x86_64-linux-gnu')).join(':');
    const loader = path.join(BULLSEYE_X64, 'lib', 'x86_64-linux-gnu', 'ld-linux-x86-64.so.2');
    const { client, proc } = await startInstalled('bullseye', (i) => [
      loader,
      '--library-path',
      libs,
      process.execPath,
      path.join(i.root, 'dist', 'lib', 'cli.js'),
    ]);
    assert.equal(await client.ok('ping'), pkg.version);
    const maps = fs.readFileSync(`/proc/${proc.pid}/maps`, 'utf8');
    assert.ok(
      maps.includes(path.join(BULLSEYE_X64, 'lib', 'x86_64-linux-gnu', 'libc-2.31.so')),
      "the agent is not running on Debian 11's libc",
    );
    assert.ok(
      maps.includes(path.join(BULLSEYE_X64, 'usr', 'lib', 'x86_64-linux-gnu', 'libstdc++.so.6.0.28')),
      "the agent is not running on GCC 10's libstdc++",
    );
    assertPrebuildLoaded(proc.pid!, 'x64');
    await assertMd5(client);
  },
  { timeout: 30_000, needs: [bullseyeX64] },
);

// Debian's arm64 Node under qemu-user (scripts/arm64-node.sh unpacks it; test-deps.sh runs that).
const ARM64_ROOT = path.join(REPO, '.cache', 'arm64-node', 'root');
const arm64Node: Requirement = () =>
  fs.existsSync(path.join(ARM64_ROOT, '.complete')) ? undefined : 'needs the arm64 Node from scripts/arm64-node.sh';

test(
  "on arm64 (qemu-user, Debian's arm64 Node) the installed agent answers from the arm64 prebuild",
  async () => {
    const { client, proc } = await startInstalled(
      'arm64',
      (i) => [
        'qemu-aarch64-static',
        '-L',
        ARM64_ROOT,
        path.join(ARM64_ROOT, 'usr', 'bin', 'node'),
        path.join(i.root, 'dist', 'lib', 'cli.js'),
      ],
      30_000,
    );
    assert.equal(await client.ok('ping', undefined, 20_000), pkg.version);
    assertPrebuildLoaded(proc.pid!, 'arm64');
    await assertMd5(client);
  },
  { timeout: 60_000, needs: [command('qemu-aarch64-static'), command('aarch64-linux-gnu-ar'), arm64Node] },
);

// --- The systemd unit and udev rule ---

const unitText = () => fs.readFileSync(path.join(REPO, 'systemd', 'ember-ga.service'), 'utf8');
function unitValues(key: string): string[] {
  return [...unitText().matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1].trim());
}

test(
  "the unit starts for either port's device, bound to neither; the agent finds both ports itself; restarts always",
  () => {
    // The device units systemd makes of udev's /dev/virtio-ports/NAME symlinks, one per port.
    const devices = Object.keys(KNOWN_PORTS).map((name) => {
      const r = run('systemd-escape', ['--path', '--suffix=device', `/dev/virtio-ports/${name}`]);
      assert.is(r.status, 0, r.out);
      return r.out.trim();
    });
    assert.equal(devices, [
      'dev-virtio\\x2dports-org.guest\\x2dagent.0.device',
      'dev-virtio\\x2dports-org.qemu.guest_agent.0.device',
    ]);
    // BindsTo= one port would stop the agent, and with it the other port's host, when that one goes.
    assert.equal(unitValues('BindsTo'), []);
    assert.equal(unitValues('After'), [devices.join(' ')]);
    assert.equal(unitValues('WantedBy'), [devices.join(' ')]);
    assert.equal(unitValues('Restart'), ['always']);
    // No -p: the agent serves each of the two ports that exists, found by name.
    assert.equal(unitValues('ExecStart'), [`/usr/bin/env ${Object.keys(pkg.bin)[0]}`]);
    // Journal lines tagged ember-ga, not "env" or "node".
    assert.equal(unitValues('SyslogIdentifier'), ['ember-ga']);
    const rules = fs
      .readFileSync(path.join(REPO, 'systemd', '60-ember-ga.rules'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    assert.is(rules.length, 2);
    rules.forEach((rule, i) => {
      assert.ok(rule.includes(`SUBSYSTEM=="virtio-ports"`), rule);
      assert.ok(rule.includes(`ATTR{name}=="${Object.keys(KNOWN_PORTS)[i]}"`), rule);
      // += : other rules' wants for the same port (Debian's qemu-guest-agent) are kept, not replaced.
      assert.match(rule, /ENV\{SYSTEMD_WANTS\}\+="ember-ga\.service"/);
      assert.ok(rule.includes('TAG+="systemd"'), rule);
    });
  },
  { needs: [command('systemd-escape')] },
);

test(
  "systemctl enable makes both ports' devices want the unit, and disable undoes it (docs/INSTALL.md)",
  () => {
    const root = path.join(work, 'enable-root');
    const unitDir = path.join(root, 'etc', 'systemd', 'system');
    fs.mkdirSync(unitDir, { recursive: true });
    fs.copyFileSync(path.join(REPO, 'systemd', 'ember-ga.service'), path.join(unitDir, 'ember-ga.service'));
    const links = () =>
      fs
        .readdirSync(unitDir)
        .filter((d) => d.endsWith('.wants'))
        .flatMap((d) => fs.readdirSync(path.join(unitDir, d)).map((f) => `${d}/${f}`))
        .sort();
    const en = run('systemctl', ['--root', root, 'enable', 'ember-ga.service']);
    assert.is(en.status, 0, en.out);
    assert.equal(links(), [
      'dev-virtio\\x2dports-org.guest\\x2dagent.0.device.wants/ember-ga.service',
      'dev-virtio\\x2dports-org.qemu.guest_agent.0.device.wants/ember-ga.service',
    ]);
    const dis = run('systemctl', ['--root', root, 'disable', 'ember-ga.service']);
    assert.is(dis.status, 0, dis.out);
    assert.equal(links(), []);
  },
  { needs: [command('systemctl')] },
);

test(
  'ember-ga --install-unit from the installed package: absolute ExecStart, enabled for both ports, verified; --uninstall-unit undoes it',
  () => {
    if (!installed) throw new Error('the install test did not pass');
    const root = path.join(work, 'install-unit-root');
    const bin = path.join(installed.prefix, 'bin', 'ember-ga');
    const r = run(bin, ['--install-unit', '--unit-root', root], { env: installed.env });
    assert.is(r.status, 0, r.out);
    const unit = path.join(root, 'etc', 'systemd', 'system', 'ember-ga.service');
    const exec = [...fs.readFileSync(unit, 'utf8').matchAll(/^ExecStart=(.*)$/gm)].map((m) => m[1].split(' '));
    assert.is(exec.length, 1);
    const [node, cli, ...rest] = exec[0];
    assert.ok(path.isAbsolute(node) && fs.statSync(node).mode & 0o111, `ExecStart's node: ${node}`);
    assert.is(cli, path.join(fs.realpathSync(installed.root), 'dist', 'lib', 'cli.js'));
    assert.equal(rest, []);
    assert.ok(fs.existsSync(path.join(root, 'etc', 'udev', 'rules.d', '60-ember-ga.rules')));
    const wants = fs.readdirSync(path.join(root, 'etc', 'systemd', 'system')).filter((d) => d.endsWith('.wants'));
    assert.is(wants.length, 2);
    const v = run('systemd-analyze', ['verify', '--man=no', unit]);
    assert.is(v.status, 0, v.out);
    assert.is(
      v.out
        .split('\n')
        .filter((l) => l.includes('ember-ga'))
        .join('\n'),
      '',
      'systemd-analyze warned',
    );
    const u = run(bin, ['--uninstall-unit', '--unit-root', root], { env: installed.env });
    assert.is(u.status, 0, u.out);
    assert.not.ok(fs.existsSync(unit));
    assert.equal(
      fs
        .readdirSync(path.join(root, 'etc', 'systemd', 'system'))
        .filter((d) => d.endsWith('.wants'))
        .flatMap((d) => fs.readdirSync(path.join(root, 'etc', 'systemd', 'system', d))),
      [],
    );
  },
  { needs: [command('systemctl'), command('systemd-analyze')] },
);

test(
  'systemd-analyze verify accepts the unit without a warning',
  () => {
    const dir = path.join(work, 'unit');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(REPO, 'systemd', 'ember-ga.service'), path.join(dir, 'ember-ga.service'));
    const r = run('systemd-analyze', ['verify', '--man=no', path.join(dir, 'ember-ga.service')]);
    assert.is(r.status, 0, r.out);
    assert.is(
      r.out
        .split('\n')
        .filter((l) => l.includes('ember-ga'))
        .join('\n'),
      '',
      'systemd-analyze warned',
    );
  },
  { needs: [command('systemd-analyze')] },
);

test.after(async () => {
  for (const p of started.values()) {
    const a = await p.catch(() => undefined);
    if (!a) continue;
    a.client.close();
    if (a.proc.exitCode === null && a.proc.signalCode === null) {
      const exited = new Promise((r) => a.proc.once('exit', r));
      a.proc.kill('SIGTERM');
      const t = setTimeout(() => a.proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
});

test.run();
