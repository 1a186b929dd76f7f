// get-route-list on a table of 10,000 routes, against `ip -j route show` on the same table, in a
// namespace of its own (created and deleted here; documentation addresses only, no traffic).
// A section of `npm run bench`; also runs alone: node dist/bench/routes.js (as root).
import { execFile } from 'child_process';
import { consoleReporter, type Reporter } from './report';
import { promisify } from 'util';
import * as net from 'net';
import { TestNetns } from '../test/helpers/netns';

const execFileP = promisify(execFile);

const ROUTES = 10_000;
const RUNS = 9;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * One request on a raw connection, timed until the answer's last byte is in (not parsed: ip's
 * output is not either).
 */
function timeCall(sock: net.Socket, line: string): Promise<{ ms: number; answer: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const t0 = process.hrtime.bigint();
    const onData = (d: Buffer) => {
      chunks.push(d);
      if (d[d.length - 1] !== 0x0a) return;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      sock.off('data', onData).off('error', reject);
      resolve({ ms, answer: Buffer.concat(chunks).toString('utf8') });
    };
    sock.on('data', onData).once('error', reject);
    sock.write(line);
  });
}

async function timeIp(
  ns: TestNetns,
  args = ['-j', '-6', 'route', 'show', 'table', 'main'],
): Promise<{ ms: number; output: string }> {
  const t0 = process.hrtime.bigint();
  const { stdout } = await execFileP('ip', ['-n', ns.name, ...args], { maxBuffer: 256 << 20 });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, output: stdout };
}

export async function run(out: Reporter): Promise<void> {
  const print = (line: string) => out.line(line);
  out.heading('get-route-list: 10,000 routes in a network namespace, against ip -j route show');
  if (process.getuid?.() !== 0) {
    print('routes: skipped (needs root for a network namespace)');
    return;
  }
  const ns = TestNetns.create();
  let agent: Awaited<ReturnType<TestNetns['startAgent']>> | undefined;
  let c: net.Socket | undefined;
  try {
    ns.batch(['link set dev lo up', 'link set dev a up', 'link set dev b up', 'address add 2001:db8::1/64 dev a']);
    await ns.settle();
    const lines: string[] = [];
    for (let i = 1; i <= ROUTES; i++) lines.push(`route add 2001:db8:${i.toString(16)}::/48 via 2001:db8::fe dev a`);
    ns.batch(lines);
    agent = await ns.startAgent();
    const socket = agent.socket;
    c = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socket, () => resolve(s)).once('error', reject);
    });
    const request = JSON.stringify({ execute: 'get-route-list', arguments: { family: 10 }, tag: 'bench' }) + '\r\n';

    // Same table, same answer size: check before timing anything.
    const first = await timeCall(c, request);
    const ipFirst = await timeIp(ns);
    const agentCount = (JSON.parse(first.answer) as { return: unknown[] }).return.length;
    const ipCount = (JSON.parse(ipFirst.output) as unknown[]).length;
    if (agentCount !== ipCount || agentCount < ROUTES) {
      throw new Error(`routes: the agent listed ${agentCount} routes, ip ${ipCount} (expected at least ${ROUTES})`);
    }

    const agentMs: number[] = [];
    const ipMs: number[] = [];
    const spawnMs: number[] = [];
    for (let i = 0; i < 2; i++) await timeCall(c, request); // warm up
    for (let i = 0; i < RUNS; i++) {
      agentMs.push((await timeCall(c, request)).ms);
      ipMs.push((await timeIp(ns)).ms);
      spawnMs.push((await timeIp(ns, ['-j', 'link', 'show', 'dev', 'lo'])).ms);
    }
    const a = median(agentMs);
    const b = median(ipMs);
    const spawn = median(spawnMs);
    print(`routes: ${agentCount} IPv6 routes in the main table of a namespace, median of ${RUNS} runs`);
    print(`  get-route-list {"family":10} (agent in the namespace; request to last byte)  ${a.toFixed(1)} ms`);
    print(`  ip -j -6 route show (process start to exit)                               ${b.toFixed(1)} ms`);
    print(`  ip -j link show dev lo (the cost of starting ip at all)                    ${spawn.toFixed(1)} ms`);
    print(
      `  ratio agent / ip                                                           ${(a / b).toFixed(2)}  (goal: <= 1.00)`,
    );
    print(
      `  ratio agent / (ip - start-up cost)                                         ${(a / Math.max(0.1, b - spawn)).toFixed(2)}`,
    );
  } finally {
    c?.destroy();
    await agent?.stop();
    ns.destroy();
  }
}

if (require.main === module) {
  run(consoleReporter()).catch((e: Error) => {
    process.stderr.write(`bench routes: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
