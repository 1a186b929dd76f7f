#!/usr/bin/env node
// Builds the addon's N-API prebuilds into prebuilds/<platform>-<arch>/ with prebuildify, so a
// guest installs the package with no compiler (node-gyp-build finds them). `npm pack` runs this
// (prepack): every tarball carries prebuilds made from the sources it ships.
//
//   npm run prebuild                  x64 and arm64 (on an x86_64 machine), each compiled by
//                                     Debian 11's gcc 10 against its glibc 2.31 and libstdc++
//                                     (scripts/bullseye.sh fetches them into .cache once; arm64
//                                     also needs binutils-aarch64-linux-gnu); an arch whose
//                                     toolchain cannot be had fails the build, and so `npm pack`,
//                                     naming what to install, unless EMBER_GA_PREBUILD_SKIP lists
//                                     it (EMBER_GA_PREBUILD_SKIP=arm64 npm pack: a package
//                                     without arm64 prebuilds, on purpose)
//   npm run prebuild -- --arch x64    only these (comma-separated); a missing toolchain is an error
//   node scripts/prebuild.js --clean  removes prebuilds/ (postpack: node-gyp-build would load a
//                                     prebuild left in the checkout when build/ is gone, even
//                                     after the C++ sources changed)
//
// It builds whatever binding.gyp lists: the build runs in a scratch copy of exactly the files the
// package ships for a source build (package.json "files" minus dist/ and prebuilds/), so it also
// proves a source build from the tarball works, and never touches this checkout's build/.
// Node's own headers (next to the node binary, or npm's `nodedir`) are used: nothing of Node's is
// downloaded, and one N-API build serves every Node version >= the one in binding.gyp.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const repo = path.resolve(__dirname, '..');
const pkg = require(path.join(repo, 'package.json'));

// Toolchains by Node arch name: the GNU triplet prefix and the ELF e_machine it makes.
const ARCHES = {
  x64: { triplet: 'x86_64-linux-gnu', machine: 62 },
  arm64: { triplet: 'aarch64-linux-gnu', machine: 183 },
};

class PrebuildError extends Error {}
function fail(msg) {
  throw new PrebuildError(msg);
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v "$1"`, 'sh', cmd], { stdio: 'ignore' }).status === 0;
}

/**
 * The compiler environment for `arch`, or a reason it cannot be built here: Debian 11's gcc 10
 * with its glibc 2.31 and libstdc++ as the sysroot (scripts/bullseye.sh downloads them once into
 * .cache), whatever this machine runs, so a prebuild needs no newer guest libraries than its code
 * asks for. For arm64 it is the cross compiler, with this machine's aarch64 binutils.
 */
function toolchain(arch) {
  const t = ARCHES[arch];
  if (!t) return { missing: `no toolchain known for ${arch} (known: ${Object.keys(ARCHES).join(', ')})` };
  const r = spawnSync('bash', [path.join(__dirname, 'bullseye.sh'), arch], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0)
    return { missing: (r.stderr || '').trim() || `scripts/bullseye.sh ${arch} failed (exit ${r.status ?? r.signal})` };
  const root = r.stdout.trim();
  const tool = (name) => `${root}/usr/bin/${t.triplet}-${name}-10 --sysroot=${root}`;
  const env = { CC: tool('gcc'), CXX: tool('g++'), LINK: tool('g++') };
  if (arch === process.arch) return { env, compiler: 'gcc 10 (Debian 11)' };
  if (!onPath(`${t.triplet}-ar`))
    return { missing: `${t.triplet}-ar not found (Debian: apt-get install binutils-${t.triplet})` };
  return {
    env: { ...env, AR: `${t.triplet}-ar` },
    strip: `${t.triplet}-strip`,
    compiler: `${t.triplet} gcc 10 (Debian 11)`,
  };
}

/** node-gyp: npm's own (npm sets npm_config_node_gyp for scripts, or next to node), else PATH's. */
function nodeGyp() {
  const npmGyp = process.env.npm_config_node_gyp;
  if (npmGyp && fs.existsSync(npmGyp)) return npmGyp;
  const bundled = path.resolve(
    path.dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
  if (fs.existsSync(bundled)) return bundled;
  if (onPath('node-gyp')) return 'node-gyp';
  fail('node-gyp not found: run this as `npm run prebuild`, or put node-gyp on PATH');
}

/** Node's headers without a download: npm's nodedir, else the prefix the node binary lives in. */
function nodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured && fs.existsSync(path.join(configured, 'include', 'node', 'node_api.h'))) return configured;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  fail(
    `Node's headers not found in ${prefix}/include/node: install them (Node's headers tarball) and set npm_config_nodedir`,
  );
}

/** The ELF e_machine of a built file (file(1) would do, but need not be installed). */
function elfMachine(file) {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) return -1;
  return b.readUInt16LE(18);
}

/**
 * What a built file needs from the C and C++ runtimes, via objdump when installed: the newest
 * GLIBC_x.y and GLIBCXX_x.y.z symbol versions it references. docs/INSTALL.md states them.
 */
function baseline(file, arch) {
  const t = arch === process.arch ? '' : `${ARCHES[arch].triplet}-`;
  const r = spawnSync(`${t}objdump`, ['-T', file], { encoding: 'utf8' });
  if (r.status !== 0) return 'unknown runtime needs (no objdump)';
  const newest = (prefix) => {
    const vs = [...new Set(r.stdout.match(new RegExp(`\\(${prefix}_[0-9.]+\\)`, 'g')) ?? [])].map((v) =>
      v
        .slice(prefix.length + 2, -1)
        .split('.')
        .map(Number),
    );
    vs.sort((x, y) => {
      for (let i = 0; i < Math.max(x.length, y.length); i++)
        if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
      return 0;
    });
    return vs.length ? `${prefix}_${vs[vs.length - 1].join('.')}` : `no ${prefix}`;
  };
  return `${newest('GLIBC')}, ${newest('GLIBCXX')}`;
}

function parseArches(argv) {
  const i = argv.findIndex((a) => a === '--arch' || a.startsWith('--arch='));
  if (i < 0) return undefined;
  const v = argv[i].includes('=') ? argv[i].split('=')[1] : argv[i + 1];
  if (!v) fail('--arch needs a comma-separated list, e.g. --arch x64,arm64');
  return v.split(',').filter(Boolean);
}

/** A scratch copy of what a source build from the tarball has: package.json + "files" sources. */
function stage() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ember-ga-prebuild-'));
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(dir, 'package.json'));
  for (const entry of pkg.files ?? []) {
    if (entry.startsWith('!') || /^(dist|prebuilds)(\/|$)/.test(entry)) continue;
    const from = path.join(repo, entry);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(dir, entry), { recursive: true });
  }
  if (!fs.existsSync(path.join(dir, 'binding.gyp'))) fail('binding.gyp is not in package.json "files"');
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

function main() {
  if (process.platform !== 'linux') fail(`linux only (this is ${process.platform})`);
  if (process.argv.includes('--clean')) {
    fs.rmSync(path.join(repo, 'prebuilds'), { recursive: true, force: true });
    return;
  }
  const asked = parseArches(process.argv.slice(2));
  const wanted = asked ?? [process.arch, ...Object.keys(ARCHES).filter((a) => a !== process.arch)];
  const skip = (process.env.EMBER_GA_PREBUILD_SKIP ?? '').split(',').filter(Boolean);
  const builds = [];
  for (const arch of wanted) {
    if (!asked && skip.includes(arch)) {
      process.stdout.write(`prebuild: skipping linux-${arch}: EMBER_GA_PREBUILD_SKIP\n`);
      continue;
    }
    const tc = toolchain(arch);
    if (tc.missing) {
      if (asked) fail(`cannot build ${arch}: ${tc.missing}`);
      // A guest of that arch would need a compiler to install: never ship that by accident.
      fail(
        `cannot build linux-${arch}: ${tc.missing}\n` +
          `  Install its toolchain (docs/INSTALL.md), or set EMBER_GA_PREBUILD_SKIP=${arch} to make a package without it.`,
      );
    }
    builds.push({ arch, ...tc });
  }
  if (!builds.length) fail('nothing to build');

  const gyp = nodeGyp();
  const nodedir = nodeDir();
  const prebuildify = path.join(path.dirname(require.resolve('prebuildify/package.json')), 'bin.js');
  const dir = stage();
  try {
    for (const b of builds) {
      const args = [
        prebuildify,
        '--napi',
        '--strip',
        '--tag-libc',
        `--target=${process.versions.node}`,
        `--arch=${b.arch}`,
        `--node-gyp=${gyp}`,
      ];
      if (b.strip) args.push(`--strip-bin=${b.strip}`);
      const env = { ...process.env, ...b.env, npm_config_nodedir: nodedir };
      for (const k of ['npm_config_arch', 'npm_config_target_arch', 'npm_config_target']) delete env[k];
      process.stdout.write(`prebuild: building linux-${b.arch} with ${b.compiler}\n`);
      const r = spawnSync(process.execPath, args, {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        encoding: 'utf8',
      });
      if (r.status !== 0) {
        process.stderr.write(r.stdout + r.stderr);
        fail(`linux-${b.arch} build failed (exit ${r.status ?? r.signal})`);
      }
    }
    // Check every file before replacing prebuilds/: right machine, and the native arch loads.
    const out = path.join(dir, 'prebuilds');
    for (const b of builds) {
      const sub = path.join(out, `linux-${b.arch}`);
      const files = fs.readdirSync(sub).filter((f) => f.endsWith('.node'));
      if (files.length !== 1) fail(`expected one .node in ${sub}, found ${files.join(', ') || 'none'}`);
      const file = path.join(sub, files[0]);
      if (ARCHES[b.arch] && elfMachine(file) !== ARCHES[b.arch].machine)
        fail(`${file} is not a ${b.arch} ELF file (e_machine ${elfMachine(file)})`);
      if (b.arch === process.arch) {
        const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', file], { encoding: 'utf8' });
        if (r.status !== 0) fail(`${file} does not load: ${r.stderr}`);
      }
      b.rel = path.join('prebuilds', `linux-${b.arch}`, files[0]);
      b.size = fs.statSync(file).size;
      b.needs = baseline(file, b.arch);
    }
    fs.rmSync(path.join(repo, 'prebuilds'), { recursive: true, force: true });
    fs.cpSync(out, path.join(repo, 'prebuilds'), { recursive: true });
    for (const b of builds) {
      process.stdout.write(`prebuild: linux-${b.arch}: ${b.needs} (${b.rel}, ${(b.size / 1024).toFixed(0)} KiB)\n`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

try {
  main();
} catch (e) {
  if (!(e instanceof PrebuildError)) throw e;
  process.stderr.write(`prebuild: ${e.message}\n`);
  process.exit(1);
}
