#!/usr/bin/env node
// Runs the uvu suites in dist/test (compiled by `npm test` first) and closes with the line CI
// reads: "N passed, N failed[, N skipped]". Exit status is non-zero when anything failed or
// the runner itself died.
//   npm test                 every *.test.js
//   npm test -- protocol     only files whose name matches the pattern
'use strict';
const { spawn } = require('child_process');
const path = require('path');

const repo = path.resolve(__dirname, '..');

const pattern = process.argv[2] ? `^(?=.*(?:${process.argv[2]})).*\\.test\\.js$` : '\\.test\\.js$';
const uvu = path.join(repo, 'node_modules', 'uvu', 'bin.js');
const child = spawn(process.execPath, [uvu, path.join('dist', 'test'), pattern], {
  cwd: repo,
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, NO_COLOR: '1' },
});
// After uvu's summary the process should exit at once. A thread stuck in the kernel (a pool
// thread blocked on a pipe, say: Node joins its pool at exit) would keep it, and CI, waiting for
// ever; after EXIT_GRACE_MS it is killed and counted as a failure.
const EXIT_GRACE_MS = 30_000;
let exitWatch;
let wedged = false;
let out = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  out += d.toString();
  if (out.length > 1 << 20) out = out.slice(-65536);
  if (!exitWatch && /Duration:/.test(out)) {
    exitWatch = setTimeout(() => {
      wedged = true;
      process.stderr.write(
        `\nthe test process did not exit ${EXIT_GRACE_MS / 1000} s after its summary (a stuck thread?): killed\n`,
      );
      child.kill('SIGKILL');
    }, EXIT_GRACE_MS);
  }
});
child.on('close', (code, signal) => {
  clearTimeout(exitWatch);
  // eslint-disable-next-line no-control-regex -- the escape that starts a terminal colour
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label) => {
    const m = new RegExp(`${label}:\\s+(\\d+)`).exec(plain);
    return m ? Number(m[1]) : undefined;
  };
  const total = num('Total');
  const passed = num('Passed') ?? 0;
  const skipped = num('Skipped') ?? 0;
  let failed = total === undefined ? 0 : total - passed;
  if (wedged)
    failed += 1; // every test passed or failed, then the process would not exit
  else if ((code !== 0 || signal) && failed === 0) failed = 1; // the runner died: that is a failure
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(failed > 0 ? 1 : 0);
});
