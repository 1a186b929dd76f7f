// lib/exec as a library: exec() and ExecTable on real short-lived programs (no root needed).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { exec, ExecLimitError, ExecTable, OutputBudget } from '../../../lib/exec';
import { SystemError, toSystemError } from '../../../lib/errors';
import { suite, waitFor } from '../../helpers/harness';

const test = suite('exec');

const gone = (pid: number) => !fs.existsSync(`/proc/${pid}`);

test('output, exit code and input', async () => {
  const p = await exec('/bin/sh', {
    args: ['-c', 'cat; echo err >&2; exit 7'],
    input: Buffer.from('in\n'),
    capture: true,
  });
  const r = await p.done;
  assert.is(r.exitCode, 7);
  assert.is(r.signal, undefined);
  assert.equal(r.stdout.bytes(), Buffer.from('in\n'));
  assert.equal(r.stderr.bytes(), Buffer.from('err\n'));
  assert.equal([r.stdout.truncated, r.stderr.truncated, r.stdout.length], [false, false, 3]);
  assert.ok(p.finished);
  assert.not.ok(p.running);
  assert.ok(gone(p.pid), 'reaped');
});

test('large output: kept in pieces that each encode to base64 alone, released on demand', async () => {
  const p = await exec('/bin/sh', { args: ['-c', 'head -c 300001 /dev/urandom'], capture: true });
  const r = await p.done;
  const all = r.stdout.bytes();
  assert.is(all.length, 300001);
  assert.ok(r.stdout.pieces.length > 2);
  assert.ok(r.stdout.pieces.slice(0, -1).every((b) => b.length % 3 === 0));
  assert.is(r.stdout.pieces.map((b) => b.toString('base64')).join(''), all.toString('base64'));
  p.release();
  assert.is(p.result()!.stdout.length, 0);
  assert.is(r.stdout.bytes().length, 300001); // what was handed out stays
});

test('killed by a signal: its number, real-time ones included; kill() only while it runs', async () => {
  const p = await exec('sleep', { args: ['10'] });
  assert.ok(p.kill('SIGTERM'));
  assert.is((await p.done).signal, 15);
  assert.not.ok(p.kill());
  const q = await exec('/bin/sh', { args: ['-c', 'kill -RTMIN+3 $$'] });
  const r = await q.done;
  assert.is(r.signal, 37);
  assert.is(r.exitCode, undefined);
});

test('output past maxOutput is read, dropped and flagged; a shared budget caps several', async () => {
  const p = await exec('head', { args: ['-c', '5000', '/dev/zero'], capture: true, maxOutput: 1000 });
  const r = await p.done;
  assert.is(r.stdout.length, 1000);
  assert.ok(r.stdout.truncated);
  assert.is(r.exitCode, 0); // it was not blocked on a full pipe
  const budget = new OutputBudget(1500);
  const a = await exec('head', { args: ['-c', '1000', '/dev/zero'], capture: true, budget });
  await a.done;
  const b = await exec('head', { args: ['-c', '1000', '/dev/zero'], capture: true, budget });
  const rb = await b.done;
  assert.is(rb.stdout.length, 500);
  assert.ok(rb.stdout.truncated);
  assert.is(budget.held, 1500);
  a.release();
  assert.is(budget.held, 500);
});

test('env replaces the environment, entries as given; PATH searched as GLib does', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ember-exec-unit-'));
  try {
    fs.writeFileSync(path.join(dir, 'probe'), 'echo "no #! line: $0 $1"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'locked'), '#!/bin/sh\n', { mode: 0o600 });
    const env = await (await exec('env', { env: ['A=1', 'BARE', 'A=2'], capture: true })).done;
    assert.is(env.stdout.bytes().toString(), 'A=1\nBARE\nA=2\n');
    const probe = await (await exec('probe', { args: ['x'], env: [`PATH=/nonexistent:${dir}`], capture: true })).done;
    assert.is(probe.stdout.bytes().toString(), `no #! line: ${dir}/probe x\n`);
    const fails = async (file: string, opts: Parameters<typeof exec>[1], code: string) => {
      const e = toSystemError(
        await exec(file, opts).then(
          () => undefined,
          (x: unknown) => x,
        ),
      );
      assert.instance(e, SystemError);
      assert.is((e as SystemError).code, code, file);
      assert.is((e as SystemError).syscall, 'execve');
    };
    await fails('locked', { env: [`PATH=${dir}:/nonexistent`] }, 'EACCES');
    await fails('probe', { env: ['PATH=/nonexistent'] }, 'ENOENT');
    await fails('probe', { env: [`PATH=${dir}`], searchPath: false }, 'ENOENT');
    await fails('', {}, 'ENOENT');
    await exec('/bin/echo', { args: ['a\0b'] }).then(
      () => assert.unreachable('a NUL byte in an argument'),
      (e: unknown) => assert.instance(e, TypeError),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('path, arguments and environment as bytes: passed as they are, none cut', async () => {
  const c080 = Buffer.from([0x61, 0xc0, 0x80, 0x62]); // qemu's "a\u0000b"
  const p = await exec(Buffer.from('/bin/sh'), {
    args: ['-c', 'printf "%s|%s" "$0" "$X"', c080],
    env: [Buffer.concat([Buffer.from('X='), Buffer.from([0xff, 0xfe])])],
    capture: true,
  });
  assert.equal((await p.done).stdout.bytes(), Buffer.from([0x61, 0xc0, 0x80, 0x62, 0x7c, 0xff, 0xfe]));
  const e = toSystemError(await exec(Buffer.from('/bin/sh\xc0\x80', 'latin1')).catch((x: unknown) => x));
  assert.is((e as SystemError).code, 'ENOENT'); // no /bin/sh: the bytes name another file
  for (const nul of [Buffer.from('/bin/sh\0'), '/bin/sh\0']) {
    await exec(nul).then(
      () => assert.unreachable('a NUL byte in the path'),
      (x: unknown) => assert.instance(x, TypeError),
    );
  }
});

test('ExecTable: a status collected once, the limit, the oldest finished one forgotten for room', async () => {
  const forgotten: number[] = [];
  const t = new ExecTable({ maxProcesses: 2, maxOutput: 100, maxHeldOutput: 1000 }, (pid) => forgotten.push(pid));
  const a = await t.start('/bin/echo', { args: ['a'], capture: true });
  const b = await t.start('sleep', { args: ['10'] });
  assert.equal(t.collect(b.pid), { exited: false });
  await a.done;
  const c = await t.start('sleep', { args: ['10'] }); // room made by forgetting a
  assert.equal(forgotten, [a.pid]);
  assert.is(t.collect(a.pid), undefined);
  await t.start('true').then(
    () => assert.unreachable('a third running process'),
    (e: unknown) => assert.instance(e, ExecLimitError),
  );
  b.kill('SIGKILL');
  c.kill('SIGKILL');
  await Promise.all([b.done, c.done]);
  const s = t.collect(b.pid);
  assert.ok(s?.exited && s.signal === 9);
  assert.is(t.collect(b.pid), undefined);
  assert.is(t.size, 1);
  await waitFor(() => gone(b.pid) && gone(c.pid), 2000, 'children reaped');
});

test.run();
