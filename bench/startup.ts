// Start-up: how long from exec until the agent answers its first request (goal: 150 ms on the
// project's 2-core machine), against `node -e 0` (exec to exit) measured in the same run,
// interleaved, so machine noise hits both alike.
//
// A section of `npm run bench` (`export async function run(out)`), and runnable on its own:
//   node dist/bench/startup.js [RUNS]
import { spawn } from 'child_process';
import { consoleReporter, type Reporter } from './report';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');
const GOAL_MS = 150;

/** The reporter bench/run.ts passes (heading, row, note). */
type Out = Pick<Reporter, 'heading' | 'row' | 'note'>;

const now = () => Number(process.hrtime.bigint()) / 1e6;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** exec of `node -e 0` until it has exited. */
function nodeBaseline(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const p = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    p.once('error', reject);
    p.once('exit', () => resolve(now() - t0));
  });
}

/**
 * exec of the agent on a unix socket until its answer to ping arrives: the client connects as
 * soon as the agent logs that it is serving, so what is timed is the agent's own readiness.
 * Also returns when the log line came, and stops the agent.
 */
async function agentStartup(dir: string): Promise<{ ready: number; listening: number }> {
  const socket = path.join(dir, 'ga.sock');
  const t0 = now();
  const p = spawn(process.execPath, [CLI, '--listen', `unix:${socket}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  try {
    let err = '';
    const listening = await new Promise<number>((resolve, reject) => {
      p.stderr!.setEncoding('utf8');
      p.stderr!.on('data', (d: string) => {
        err += d;
        if (/serving on/.test(err)) resolve(now() - t0);
      });
      p.once('exit', (code) => reject(new Error(`agent exited (${code}) before serving: ${err}`)));
      setTimeout(() => reject(new Error(`agent not serving after 10 s: ${err}`)), 10_000).unref();
    });
    const ready = await new Promise<number>((resolve, reject) => {
      const sock = net.createConnection(socket, () => sock.write('{"execute":"ping","tag":"s"}\n'));
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => {
        buf += d;
        if (buf.includes('\n')) {
          const t = now() - t0;
          sock.destroy();
          if (!/"return"/.test(buf)) reject(new Error(`ping failed: ${buf}`));
          else resolve(t);
        }
      });
      sock.once('error', reject);
    });
    return { ready, listening };
  } finally {
    p.kill('SIGTERM');
    await exited;
  }
}

export async function run(out: Out, runs = 20): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ember-ga-bench-startup-'));
  try {
    out.heading('start-up: exec to the first answered ping (unix socket)');
    // One unmeasured round of each first: page cache, and the addon's first dlopen.
    await nodeBaseline();
    await agentStartup(dir);
    const base: number[] = [];
    const ready: number[] = [];
    const listening: number[] = [];
    for (let i = 0; i < runs; i++) {
      base.push(await nodeBaseline());
      const a = await agentStartup(dir);
      ready.push(a.ready);
      listening.push(a.listening);
    }
    const b = median(base);
    const r = median(ready);
    out.row('node -e 0 (exec to exit)', `${b.toFixed(1)} ms`, 'baseline');
    out.row(
      'agent serving (log line)',
      `${median(listening).toFixed(1)} ms`,
      `${(median(listening) / b).toFixed(2)}x node -e 0`,
    );
    out.row(
      'agent answered ping',
      `${r.toFixed(1)} ms`,
      `${(r / b).toFixed(2)}x node -e 0, ${r <= GOAL_MS ? 'within' : 'OVER'} the ${GOAL_MS} ms goal`,
    );
    out.row("agent's own share", `${(r - b).toFixed(1)} ms`, 'answered ping minus node -e 0');
    out.note(`medians of ${runs} interleaved runs; slowest answered ping ${Math.max(...ready).toFixed(1)} ms`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const runs = Number(process.argv[2] ?? 20);
  run(consoleReporter(), Number.isInteger(runs) && runs > 0 ? runs : 20).catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
