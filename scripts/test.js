#!/usr/bin/env node
// Runs the uvu suites in dist/test (compiled by `npm test` first) and closes with the line CI
// reads: "N passed, N failed[, N skipped]". Exit status is non-zero when anything failed or
// the runner itself died.
//   npm test                 every *.test.js
//   npm test -- protocol     only files whose name matches the pattern
'use strict';
const { spawnSync, spawn } = require('child_process');
const path = require('path');

const repo = path.resolve(__dirname, '..');
const deps = spawnSync('bash', [path.join(__dirname, 'test-deps.sh')], { stdio: 'inherit' });
if (deps.status !== 0) process.stderr.write('test-deps.sh failed; tests that need those tools will say so\n');

const pattern = process.argv[2] ? `^(?=.*(?:${process.argv[2]})).*\\.test\\.js$` : '\\.test\\.js$';
const uvu = path.join(repo, 'node_modules', 'uvu', 'bin.js');
const child = spawn(process.execPath, [uvu, path.join('dist', 'test'), pattern], {
  cwd: repo,
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, NO_COLOR: '1' },
});
let out = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  out += d.toString();
  if (out.length > 1 << 20) out = out.slice(-65536);
});
child.on('close', (code, signal) => {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label) => {
    const m = new RegExp(`${label}:\\s+(\\d+)`).exec(plain);
    return m ? Number(m[1]) : undefined;
  };
  const total = num('Total');
  const passed = num('Passed') ?? 0;
  const skipped = num('Skipped') ?? 0;
  let failed = total === undefined ? 0 : total - passed;
  if ((code !== 0 || signal) && failed === 0) failed = 1; // the runner died: that is a failure
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(failed > 0 ? 1 : 0);
});
