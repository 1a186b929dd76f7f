// npm run lint, as part of the suite: prettier's formatting, ESLint's rules and clang-format's
// formatting of native/ all hold (npm run format mends the formatting).
import { spawnSync } from 'child_process';
import * as assert from 'uvu/assert';
import { REPO } from '../helpers/agent';
import { command, suite } from '../helpers/harness';

const test = suite('lint');

test(
  'npm run lint passes',
  () => {
    const r = spawnSync('npm', ['run', '--silent', 'lint'], { cwd: REPO, encoding: 'utf8' });
    assert.is(r.status, 0, `npm run lint failed:\n${r.stdout}\n${r.stderr}`);
  },
  { timeout: 120_000, needs: [command('clang-format')] },
);

test.run();
