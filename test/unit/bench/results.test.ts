import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { runHeader, writeSection } from '../../../bench/results';
import { suite } from '../../helpers/harness';

const test = suite('bench results file');

const ORDER = ['files', 'per-request', 'qemu-ga'];

function tmpFile(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ember-bench-')), 'BENCHMARKS.md');
}

test('a run of one section replaces it and keeps the others, in the bench order', () => {
  const file = tmpFile();
  writeSection(file, ORDER, 'qemu-ga', 'run A', '\n== qemu-ga\n  write 1 GiB   10 MiB/s\n');
  writeSection(file, ORDER, 'files', 'run A', '== files\n  ping p50   0.1 ms   0.80x reference\n\n');
  writeSection(file, ORDER, 'qemu-ga', 'run B', '== qemu-ga\n  write 1 GiB   20 MiB/s\n');
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.startsWith('# Benchmark results\n'));
  const files = text.indexOf('## files');
  const qga = text.indexOf('## qemu-ga');
  assert.ok(files > 0 && qga > files, 'files comes before qemu-ga');
  assert.ok(text.includes('run A\n\n```\n== files\n  ping p50   0.1 ms   0.80x reference\n```'));
  assert.ok(text.includes('run B\n\n```\n== qemu-ga\n  write 1 GiB   20 MiB/s\n```'));
  assert.not.ok(text.includes('10 MiB/s'), 'the old qemu-ga figures are gone');
  assert.is(text.match(/^## /gm)?.length, 2);
  fs.rmSync(path.dirname(file), { recursive: true });
});

test('a section the bench no longer has stays, last', () => {
  const file = tmpFile();
  writeSection(file, ['old', ...ORDER], 'old', 'h', 'x');
  writeSection(file, ORDER, 'files', 'h', 'y');
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.indexOf('## files') < text.indexOf('## old'));
  fs.rmSync(path.dirname(file), { recursive: true });
});

test('the header names the time, the commit, Node and the machine', () => {
  const h = runHeader(path.join(__dirname, '..', '..', '..', '..'));
  assert.match(h, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, ([0-9a-f]{7,}( with local changes)?|unknown commit), Node v\d+/);
  assert.match(h, new RegExp(`${os.cpus().length} x `));
  assert.match(h, /load [\d.]+ [\d.]+ [\d.]+ at the start$/);
});

test.run();
