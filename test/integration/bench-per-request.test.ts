// `npm run bench -- per-request` still runs and prints every row: its quick mode
// (EMBER_BENCH_QUICK=1, a 1 MiB file, one round, no warm-up) end to end, through the same
// bridges, hosts and checks. No figure is judged here: benchmarks are scripts, and a timed
// assertion on this machine would be noise.
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { REPO } from '../helpers/agent';
import { command, suite } from '../helpers/harness';

const test = suite('bench per-request');

test(
  'npm run bench -- per-request (quick mode) finishes and prints every row, each with a number',
  () => {
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'bench', 'run.js'), 'per-request'], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, EMBER_BENCH_QUICK: '1' },
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.is(r.status, 0, out);
    assert.match(out, /^bench finished in [0-9.]+ s$/m);
    assert.not.match(out, /section per-request failed/);
    assert.not.match(out, /NaN|Infinity/, 'every figure is a number');
    const rows = [
      'file-read 4 KiB ',
      'file-write 4 KiB ',
      'ping ',
      'file-read 4 KiB, client',
      'file-write 4 KiB, client',
      'download, bridge alone',
      'upload, bridge alone',
      'download, minimal host',
      'download, client',
      'upload, minimal host',
      'upload, client',
      'ping p50, minimal host',
      'ping p50, stand-in guest',
      'ping, first after coming back',
      'stand-in guest, first after coming back',
    ];
    if (command('python3')() === undefined) rows.push('download, Python host', 'file-write 4 KiB, Python host');
    for (const label of rows) {
      assert.ok(
        out.split('\n').some((l) => l.startsWith(`  ${label}`) && /\d/.test(l.slice(36))),
        `no row "${label}" with a figure:\n${out}`,
      );
    }
    // Each wall-clock row of ember-ga against the stand-in guest behind the same host.
    const hosts = ['minimal host', 'client', ...(command('python3')() === undefined ? ['Python host'] : [])];
    for (const way of ['download', 'upload'])
      for (const h of hosts)
        assert.match(
          out,
          new RegExp(`^  ${way}, ${h} +[\\d.]+ MiB/s .*[\\d.]+x the stand-in's [\\d.]+ \\(same host\\)$`, 'm'),
          `${way}, ${h}: no ratio to the stand-in through the same host`,
        );
    assert.match(out, /the bridge with no host or agent work/);
    // ember-ga's CPU by thread, each class with a figure, for reads, writes and pings.
    const split = out.split('\n').filter((l) => /^ {2}(file-read 4 KiB|file-write 4 KiB|ping) +main [\d.]+ us/.test(l));
    assert.is(split.length, 3, `the CPU by thread:\n${out}`);
    for (const l of split)
      assert.match(l, /write helper [\d.]+, port writer [\d.]+, other threads \(V8, pool\) [\d.]+/);
    // The same turns less the zero-work stand-in's, for each kind.
    for (const kind of ['file-read 4 KiB', 'file-write 4 KiB', 'ping'])
      assert.match(
        out,
        new RegExp(`^  ${kind}, above the stand-in +-?[\\d.]+ us .*the stand-in [\\d.]+ us a request$`, 'm'),
        `no row of ${kind} above the stand-in:\n${out}`,
      );
    // The turns again with the guest on a CPU of its own (where there are two CPUs and taskset).
    const lines = out.split('\n');
    const own = lines.findIndex((l) => l.includes('the guest on a CPU of its own'));
    assert.ok(own >= 0, `no section with the guest on a CPU of its own:\n${out}`);
    if (!/not measured/.test(lines[own + 1]))
      for (const [i, kind] of ['file-read 4 KiB', 'file-write 4 KiB', 'ping'].entries())
        assert.match(lines[own + 1 + i], new RegExp(`^  ${kind} +[\\d.]+ us`));
    // The agent's own work with no bridge: each kind with its time and its CPU.
    const noBridge = lines.slice(lines.findIndex((l) => l.includes("the agent's own work per request")));
    for (const kind of ['file-read 4 KiB', 'file-write 4 KiB', 'ping'])
      assert.ok(
        noBridge.some((l) => new RegExp(`^  ${kind} +[\\d.]+ us .*CPU [\\d.]+ us a request`).test(l)),
        `no no-bridge row for ${kind}:\n${out}`,
      );
    assert.match(out, /these figures mean nothing/);
  },
  { timeout: 150_000, needs: [command('socat')] },
);

test.run();
