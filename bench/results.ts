// The results file: what the last `npm run bench` printed, section by section, with the machine
// and commit it ran on. A run of some sections replaces only theirs; the others keep their own
// header line, so figures of different runs are never mistaken for one run.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';

const TITLE = '# Benchmark results';
const INTRO = [
  TITLE,
  '',
  'Written by `npm run bench` (`npm run bench -- SECTION...` rewrites only those sections); do not',
  'edit by hand. Every figure is also a ratio to a baseline measured in the same run of the same',
  'section: the machine is shared and noisy, so the ratios are what to compare, not the absolute',
  'numbers. What each section measures and how: the comments at the top of `bench/<section>.ts`.',
  '',
].join('\n');

/** One line naming when, where and on what this section ran. */
export function runHeader(root: string): string {
  let commit = 'unknown commit';
  try {
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git('rev-parse', '--short', 'HEAD');
    // Changes to the tree make it another tree; the results file itself, rewritten by the run, does not.
    if (git('status', '--porcelain', '--', '.', ':(exclude)docs/BENCHMARKS.md')) commit += ' with local changes';
  } catch {
    // not a git checkout (an unpacked tarball): the date still places the run
  }
  const cpus = os.cpus();
  const load = os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
  return (
    `${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}, ${commit}, Node ${process.version}, ` +
    `Linux ${os.release()}, ${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown CPU'}, load ${load} at the start`
  );
}

/** The file's sections: name -> its block (heading line included), in file order. */
function parse(text: string): Map<string, string> {
  const sections = new Map<string, string>();
  const re = /^## (\S+)\n[\s\S]*?(?=^## |(?![\s\S]))/gm;
  for (const m of text.matchAll(re)) sections.set(m[1], m[0].trimEnd());
  return sections;
}

/**
 * Puts `output` (what the section printed) in `file` as section `name`, keeping the other
 * sections in `order` (the bench's own order; unknown names last).
 */
export function writeSection(file: string, order: string[], name: string, header: string, output: string): void {
  let old = '';
  try {
    old = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const sections = parse(old);
  sections.set(name, [`## ${name}`, '', header, '', '```', output.replace(/^\n+|\s+$/g, ''), '```'].join('\n'));
  const rank = (n: string) => (order.includes(n) ? order.indexOf(n) : order.length);
  const names = [...sections.keys()].sort((a, b) => rank(a) - rank(b));
  fs.writeFileSync(file, `${INTRO}\n${names.map((n) => sections.get(n)).join('\n\n')}\n`);
}
