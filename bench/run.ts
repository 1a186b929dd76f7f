// `npm run bench [-- NAME...]`: runs every benchmark section (or those named) and prints their
// figures, each also as a ratio to a baseline measured in the same run (the machine is shared
// and noisy, so absolute numbers mean little on their own).
//
// A section is a module bench/<name>.ts exporting `async function run(out: Reporter)`; adding
// one is one file and one line in SECTIONS. What a section printed also goes into the results
// file, docs/BENCHMARKS.md (unless --no-results or a quick run), when the section completes.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { consoleReporter, type Reporter } from './report';
import { runHeader, writeSection } from './results';

type Section = { run(out: Reporter): Promise<void> };

const SECTIONS: [name: string, load: () => Promise<Section>][] = [
  ['files', () => import('./files')],
  ['per-request', () => import('./per-request')],
  ['qemu-ga', () => import('./qemu-ga')],
  ['routes', () => import('./routes')],
  ['sysinfo', () => import('./sysinfo')],
  ['startup', () => import('./startup')],
];

async function main(argv: string[]): Promise<number> {
  const wanted = argv.filter((a) => !a.startsWith('-'));
  // A quick run (EMBER_BENCH_QUICK=1, the tests' smoke run) measures nothing worth keeping.
  const results = !argv.includes('--no-results') && process.env.EMBER_BENCH_QUICK !== '1';
  const unknown = wanted.filter((w) => !SECTIONS.some(([n]) => n === w));
  if (unknown.length) {
    process.stderr.write(
      `unknown section(s): ${unknown.join(', ')}; sections: ${SECTIONS.map(([n]) => n).join(', ')}\n`,
    );
    return 2;
  }
  // The pty bridge is socat: installed from Debian's packages when missing, as `npm test` does.
  spawnSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'test-deps.sh'), 'socat'], { stdio: 'inherit' });
  const root = path.join(__dirname, '..', '..');
  const resultsFile = path.join(root, 'docs', 'BENCHMARKS.md');
  let printed = '';
  const out = consoleReporter((s) => {
    printed += s;
    process.stdout.write(s);
  });
  let failed = 0;
  const started = Date.now();
  for (const [name, load] of SECTIONS) {
    if (wanted.length && !wanted.includes(name)) continue;
    const t0 = Date.now();
    const header = runHeader(root);
    printed = '';
    try {
      await (await load()).run(out);
      out.note(`section ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      if (results)
        writeSection(
          resultsFile,
          SECTIONS.map(([n]) => n),
          name,
          header,
          printed,
        );
    } catch (e) {
      failed++;
      process.stderr.write(`\nsection ${name} failed: ${(e as Error).stack ?? e}\n`);
    }
  }
  process.stdout.write(
    `\nbench finished in ${((Date.now() - started) / 1000).toFixed(1)} s${failed ? `, ${failed} section(s) failed` : ''}` +
      `${results ? `; figures in ${path.relative(process.cwd(), resultsFile) || resultsFile}` : ''}\n`,
  );
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code));
