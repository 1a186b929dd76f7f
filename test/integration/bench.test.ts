// `npm run bench -- files` still runs and prints every row: its quick mode (EMBER_BENCH_QUICK=1,
// small sizes, one round) end to end, through the same bridges, hosts and checks. No figure is
// judged here: benchmarks are scripts, and a timed assertion on this machine would be noise.
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { REPO } from '../helpers/agent';
import { command, suite } from '../helpers/harness';

const test = suite('bench');

test(
  'npm run bench -- files (quick mode) finishes and prints every row, each with a number',
  () => {
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'bench', 'run.js'), 'files'], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, EMBER_BENCH_QUICK: '1' },
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.is(r.status, 0, out);
    assert.match(out, /^bench finished in [0-9.]+ s$/m);
    assert.not.match(out, /section files failed/);
    assert.not.match(out, /NaN|Infinity/, 'every figure is a number');
    for (const label of [
      'raw guest->host',
      'raw host->guest',
      'ceiling download 4 KiB, 1 in flight',
      'ceiling upload 1 MiB, 4 in flight',
      'download 4 KiB, 1 in flight ',
      'download 4 KiB, 1 in flight, minimal host',
      'download 4 KiB, 16 in flight',
      'upload 4 KiB, 1 in flight, minimal host',
      'upload 1 MiB, 4 in flight',
      'agent peak RSS',
      'ping p50',
      'ping p99',
      'md5sum',
      'OpenSSL MD5 alone, in memory',
      'get-file-md5sum',
    ]) {
      // The figure is in the value column, after the padded label (the RSS label has digits of its own).
      assert.ok(
        out.split('\n').some((l) => l.startsWith(`  ${label}`) && /\d/.test(l.slice(36))),
        `no row "${label}" with a figure:\n${out}`,
      );
    }
    assert.match(out, /2x the reference.* at 4 KiB one at a time \(download\) is [0-9.]+ MiB\/s/);
    assert.match(out, /these figures mean nothing/);
  },
  { timeout: 150_000, needs: [command('socat'), command('md5sum')] },
);

test(
  'npm run bench -- qemu-ga (quick mode) finishes and prints every row, each with a number',
  () => {
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'bench', 'run.js'), 'qemu-ga'], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, EMBER_BENCH_QUICK: '1' },
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.is(r.status, 0, out);
    assert.not.match(out, /section qemu-ga failed/);
    assert.not.match(out, /NaN|Infinity/, 'every figure is a number');
    for (const label of [
      'raw guest->host',
      'raw guest->host, 21 MiB',
      'raw host->guest, 21 MiB',
      'stand-in guest, 16 MiB read',
      'stand-in guest, 16 MiB write',
      'guest page cache, 16 MiB file',
      'qemu-ga: read, 4 KiB, 1 in flight',
      'ember-ga: read, 4 KiB, 1 in flight',
      'qemu-ga: read, 48 MiB, 2 in flight',
      'ember-ga: read, 48 MiB, 2 in flight',
      'qemu-ga: write, 32 MiB, 1 in flight',
      'ember-ga: write, 8 MiB, 2 in flight',
      'ember-ga: read 16 MiB, 48 MiB, 2 in flight',
      'ember-ga: write 16 MiB, 8 MiB, 2 in flight',
      'ember-ga: write 16 MiB to /dev/null, 8 MiB, 2 in flight',
      "ember-ga's best read vs qemu-ga's",
      "ember-ga's best write vs qemu-ga's",
      'ember-ga peak RSS',
      "ember-ga's best read vs qemu-ga's, unix socket",
      "ember-ga's best write vs qemu-ga's, unix socket",
    ]) {
      assert.ok(
        out.split('\n').some((l) => l.startsWith(`  ${label}`) && /\d/.test(l.slice(label.length + 2))),
        `no row "${label}" with a figure:\n${out}`,
      );
    }
  },
  { timeout: 150_000, needs: [command('socat'), command('md5sum'), command('qemu-ga')] },
);

test.run();
