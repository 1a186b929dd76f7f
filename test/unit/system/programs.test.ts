// lib/system/programs.ts: programs found under a root as execvp and glib would find them, and
// never outside it.
import * as fs from 'fs';
import * as assert from 'uvu/assert';
import { findProgram, systemPath, whichProgram } from '../../../lib/system';
import { SystemError } from '../../../lib/errors';
import { suite } from '../../helpers/harness';
import { SystemFixture } from '../../helpers/system-fixture';

const test = suite('system-programs');

test('systemPath: the root prefixed, "/" the system itself', () => {
  assert.is(systemPath({}, '/sys/power/state'), '/sys/power/state');
  assert.is(systemPath({ root: '/' }, '/sbin/shutdown'), '/sbin/shutdown');
  assert.is(systemPath({ root: '/tmp/x' }, '/sbin/shutdown'), '/tmp/x/sbin/shutdown');
});

test('the first executable in the search path, under the root; relative entries too', () => {
  const fx = new SystemFixture();
  try {
    const opts = { root: fx.root, searchPath: '/a:/b:.:' };
    assert.is(findProgram('tool', opts), undefined);
    assert.is(whichProgram('tool', opts), undefined);
    fx.stub('/b/tool');
    assert.is(findProgram('tool', opts), fx.at('/b/tool'));
    fx.write('/a/tool', 'not executable');
    // execvp goes past a file it may not run; a search where only such a file is found fails EACCES.
    assert.is(findProgram('tool', opts), fx.at('/b/tool'));
    assert.is(whichProgram('tool', opts), fx.at('/b/tool'));
    fs.rmSync(fx.at('/b/tool'));
    assert.throws(
      () => findProgram('tool', opts),
      (e: unknown) => e instanceof SystemError && e.code === 'EACCES',
    );
    assert.is(whichProgram('tool', opts), undefined);
    // "." and "" are the working directory, under the root as well.
    fx.stub(`${process.cwd()}/tool`);
    assert.is(findProgram('tool', opts), fx.at(`${process.cwd()}/tool`));
  } finally {
    fx.cleanup();
  }
});

test.run();
