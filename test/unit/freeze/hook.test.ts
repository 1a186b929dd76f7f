// The fsfreeze hook runner on real scripts in a temp dir (no root needed): its argument, its
// environment, and qemu-ga's messages for every way it can fail.
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { AbortError } from '../../../lib/errors';
import { FsfreezeHookError, runFsfreezeHook } from '../../../lib/freeze';
import { tmpDir } from '../../helpers/agent';
import { suite, waitFor } from '../../helpers/harness';

const test = suite<{ dir: string }>('freeze-hook', { dir: '' });

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-hook-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

function script(dir: string, name: string, body: string, mode = 0o755): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode });
  return p;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure');
}

test('runs PATH ACTION in a session of its own, stdin/stdout/stderr on /dev/null', async ({ dir }) => {
  const log = path.join(dir, 'log');
  // What the shell's own fds are, read before anything is redirected.
  const hook = script(
    dir,
    'ok',
    [
      'i=$(readlink /proc/$$/fd/0); o=$(readlink /proc/$$/fd/1); e=$(readlink /proc/$$/fd/2)',
      `echo "$0 $# $1 sid=$(ps -o sid= -p $$ | tr -d ' ') pid=$$" >> ${log}`,
      `echo "$i $o $e" >> ${log}`,
    ].join('\n'),
  );
  await runFsfreezeHook(hook, 'freeze');
  await runFsfreezeHook(hook, 'thaw');
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  assert.is(lines.length, 4, lines.join('\n'));
  const [first, fds, second] = lines;
  assert.match(first, new RegExp(`^${hook} 1 freeze sid=(\\d+) pid=\\1$`), 'its own session leader');
  assert.is(fds, '/dev/null /dev/null /dev/null');
  assert.match(second, new RegExp(`^${hook} 1 thaw `));
});

test("qemu-ga's messages: exit status, a signal, not executable, missing", async ({ dir }) => {
  const cases: [string, string][] = [
    [script(dir, 'exit3', 'exit 3'), 'fsfreeze hook has failed with status 3'],
    [script(dir, 'killed', 'kill -9 $$'), 'fsfreeze hook has terminated abnormally'],
    [script(dir, 'noexec', 'exit 0', 0o644), `can't access fsfreeze hook '${dir}/noexec': Permission denied`],
    [path.join(dir, 'missing'), `can't access fsfreeze hook '${dir}/missing': No such file or directory`],
  ];
  for (const [hook, message] of cases) {
    const err = await failure(runFsfreezeHook(hook, 'freeze'));
    assert.instance(err, FsfreezeHookError, hook);
    assert.is(err.message, message);
    assert.is((err as FsfreezeHookError).action, 'freeze');
  }
});

test('an abort kills the hook and whatever it started', async ({ dir }) => {
  const pidFile = path.join(dir, 'child.pid');
  const hook = script(dir, 'hang', `sleep 60 & echo $! > ${pidFile}; wait`);
  const ac = new AbortController();
  const p = runFsfreezeHook(hook, 'freeze', ac.signal);
  await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '', 5000, 'the hook');
  const child = Number(fs.readFileSync(pidFile, 'utf8'));
  ac.abort();
  assert.instance(await failure(p), AbortError);
  await waitFor(
    () => {
      try {
        process.kill(child, 0);
        return false;
      } catch {
        return true;
      }
    },
    5000,
    "the hook's child to be killed",
  );
});

test.run();
