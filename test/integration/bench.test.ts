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

test.run();
