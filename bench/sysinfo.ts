// Benchmark section: sysinfo latency through a real agent against ping through the same agent,
// in the same run (the machine is shared and noisy: only ratios to a same-run baseline mean
// anything). Also the kernel figures by the addon's sysinfo(2) against reading /proc, the choice
// native/sysinfo.cc makes. Part of `npm run bench`; alone: node dist/bench/sysinfo.js [calls]
import { promises as fs } from 'fs';
import { consoleReporter, type Reporter } from './report';
import { startAgent } from '../test/helpers/agent';
import { memory, systemInfo } from '../lib/sysinfo';

const GOAL_MS = 20;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Stats {
  p50: number;
  p99: number;
}

function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Runs a and b alternately `n` times each (after a warm-up), so noise hits both alike. */
async function interleaved(n: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[Stats, Stats]> {
  for (let i = 0; i < 20; i++) await Promise.all([a(), b()]);
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < n; i++) {
    ta.push(await timed(a));
    tb.push(await timed(b));
  }
  return [stats(ta), stats(tb)];
}

const f = (ms: number) => ms.toFixed(3).padStart(8);

/** The /proc way to the same figures (two-decimal loads, fractional uptime). */
async function fromProc(): Promise<unknown> {
  const [meminfo, loadavg, uptime] = await Promise.all([
    fs.readFile('/proc/meminfo', 'utf8'),
    fs.readFile('/proc/loadavg', 'utf8'),
    fs.readFile('/proc/uptime', 'utf8'),
  ]);
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0);
  const l = loadavg.split(' ').map(Number);
  return {
    uptime: Math.ceil(Number(uptime.split(' ')[0])),
    loads: l.slice(0, 3),
    total: kb('MemTotal'),
    free: kb('MemFree'),
    buffer: kb('Buffers'),
    swap: kb('SwapTotal'),
    swapFree: kb('SwapFree'),
  };
}

export async function run(reporter: Reporter, calls = 200): Promise<void> {
  const out = (line: string) => reporter.line(line);
  reporter.heading('sysinfo latency');
  const agent = await startAgent();
  try {
    const c = await agent.connect();
    const call = (cmd: string) => async () => {
      const a = await c.call(cmd);
      if (a.error) throw new Error(`${cmd} failed: ${JSON.stringify(a.error)}`);
    };
    const [ping, sysinfo] = await interleaved(calls, call('ping'), call('sysinfo'));
    c.close();
    out(`sysinfo through a real agent (unix socket), ${calls} calls each, interleaved with ping:`);
    out(`  ping     p50 ${f(ping.p50)} ms   p99 ${f(ping.p99)} ms   (baseline)`);
    out(
      `  sysinfo  p50 ${f(sysinfo.p50)} ms   p99 ${f(sysinfo.p99)} ms   ${(sysinfo.p50 / ping.p50).toFixed(1)}x ping at p50, ${(sysinfo.p99 / ping.p99).toFixed(1)}x at p99`,
    );
    out(
      `  goal: under ${GOAL_MS} ms: p99 is ${(sysinfo.p99 / GOAL_MS).toFixed(2)} of it (${sysinfo.p99 < GOAL_MS ? 'met' : 'NOT MET'})`,
    );
  } finally {
    await agent.stop();
  }
  const [native, proc] = await interleaved(calls, memory, fromProc);
  out(
    `kernel figures in-process: sysinfo(2) via the addon p50 ${f(native.p50)} ms, /proc reads p50 ${f(proc.p50)} ms (addon ${(native.p50 / proc.p50).toFixed(2)}x /proc)`,
  );
  const [whole] = await interleaved(
    calls,
    () => systemInfo(),
    async () => {},
  );
  out(`whole report in-process (all parts concurrently): p50 ${f(whole.p50)} ms   p99 ${f(whole.p99)} ms`);
}

if (require.main === module) {
  const n = Number(process.argv[2] ?? 200);
  run(consoleReporter(), n).catch((e: Error) => {
    process.stderr.write(`bench sysinfo: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
