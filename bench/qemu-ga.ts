// qemu-ga's file commands through the pty bridge: guest-file-read and guest-file-write rates of
// ember-ga's qemu-ga front-end against qemu-ga 7.2 itself, each agent on a bridge of its own, in
// the same rounds, from the same minimal host (test/helpers/qga-bulk.ts; no JSON.parse of the
// data). Every transfer but the one into /dev/null is md5-verified. Rows: the default 4 KiB
// count (what a host that gives none gets) one at a time, as libvirt sends requests, on both;
// each agent at its largest counts (qemu-ga: 48 MiB reads, 32 MiB writes, under its 64 MiB
// request limit; ember-ga: 48 MiB reads, 8 MiB writes, under its 16 MiB request limit), one at
// a time and two in flight; and 1 GiB each way on ember-ga. Each is also a ratio to the bridge's
// ideal base64 payload rate (3/4 of its raw rate, measured in this run, as the files section
// does): the 1 GiB rows against a raw sample as long as they are (as many bytes as their
// base64), the others against a 64 MiB one, each held to a sample of its own length (on a loaded
// machine a 1 s sample may catch a quiet moment no 20 s run has throughout). Also measured: what
// a stand-in guest in a process of its own that only answers the 1 GiB rows' requests (the
// protocol's shape, with no agent: host and guest in one process, as in the raw sample, is
// cheaper than any pair), what the guest's page cache costs for a new 1 GiB file with no agent
// (every upload pays it; the bridge does not), the agent's CPU time on the 1 GiB rows, and its
// 1 GiB upload into /dev/null (the counts of its answers checked; no page cache to fill, nothing
// to md5): the agent's own rate. Last, the same transfers but the 1 GiB ones over a unix socket
// per agent, no pty: what each agent does when the bridge does not cap it.
// EMBER_BENCH_DEBUG=1 prints each transfer's rate as it is measured.
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { bridgeRequestResponse, bridgeThroughput, kill, REPO, startBridge, type Bridge } from './helpers/bridge';
import { makeRandomFile, vmHWMKiB } from './helpers/setup';
import { mibps, ratio, type Reporter } from './report';
import { QgaBulkHost, qgaDownload, qgaUpload } from '../test/helpers/qga-bulk';

const MiB = 1024 * 1024;
/** EMBER_BENCH_QUICK=1: small sizes and one round, to show that the section runs (its figures mean nothing). */
const QUICK = process.env.EMBER_BENCH_QUICK === '1';
const SMALL_FILE = (QUICK ? 1 : 16) * MiB; // moved 4 KiB at a time
const LARGE_FILE = (QUICK ? 8 : 256) * MiB; // moved at each agent's largest count
const HUGE_FILE = (QUICK ? 16 : 1024) * MiB; // ember-ga's 1 GiB each way
const ROUNDS = QUICK ? 1 : 2;
const RAW_BYTES = (QUICK ? 4 : 64) * MiB;
/** A 1 GiB transfer's bytes on the wire: its base64. */
const RAW_HUGE_BYTES = Math.ceil(HUGE_FILE / 3) * 4;

/** qemu-ga's largest read (GUEST_FILE_READ_COUNT_MAX) and a write that fits its 64 MiB request. */
const QGA_MAX_READ = 48 * MiB;
const QGA_MAX_WRITE = 32 * MiB;
/** ember-ga's: the same reads; writes within its 16 MiB request. */
const EMBER_READ = 48 * MiB;
const EMBER_WRITE = 8 * MiB;

const CLI = path.join(REPO, 'dist', 'lib', 'cli.js');

interface Agent {
  name: 'qemu-ga' | 'ember-ga';
  bridge: Bridge;
  proc: ChildProcess;
  host: QgaBulkHost;
  stop(): Promise<void>;
}

/** An agent speaking qemu-ga on the pty of a bridge of its own, and a host connected to the other end. */
async function startAgent(name: Agent['name']): Promise<Agent> {
  const bridge = await startBridge();
  const log = fs.openSync(path.join(bridge.dir, 'agent.log'), 'w');
  const args =
    name === 'qemu-ga'
      ? [
          '-m',
          'isa-serial',
          '-p',
          bridge.pty,
          '-t',
          fs.mkdtempSync(path.join(bridge.dir, 'state-')),
          '-f',
          path.join(bridge.dir, 'qga.pid'),
        ]
      : [CLI, '-p', bridge.pty, '--protocol', 'qemu-ga'];
  const proc = spawn(name === 'qemu-ga' ? 'qemu-ga' : process.execPath, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  process.once('exit', () => proc.kill('SIGKILL'));
  const stop = async () => {
    await kill(proc);
    await bridge.close();
  };
  try {
    const host = await QgaBulkHost.connect(bridge.hostSocket);
    // qemu-ga flushes what the pty holds when it opens it: ask until one ping is answered, then
    // let any late answers to the earlier ones arrive (a host with no request waiting drops them).
    const deadline = Date.now() + 15_000;
    for (let answered = false; !answered;) {
      if (Date.now() > deadline) throw new Error(`${name} did not answer guest-ping`);
      let timer: NodeJS.Timeout | undefined;
      answered = await Promise.race([
        host.ask('{"execute":"guest-ping"}\n').then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 500))),
      ]).finally(() => clearTimeout(timer));
      if (!answered) host.forget(); // a ping the pty flushed is never answered
    }
    await new Promise((r) => setTimeout(r, 600));
    return {
      name,
      bridge,
      proc,
      host,
      stop: async () => {
        host.close();
        await stop();
      },
    };
  } catch (e) {
    const log = fs.readFileSync(path.join(bridge.dir, 'agent.log'), 'utf8');
    await stop();
    throw new Error(`${(e as Error).message}; its log: ${log}`);
  }
}

function md5File(file: string): string {
  return spawnSync('md5sum', [file], { encoding: 'utf8' }).stdout.split(' ')[0];
}

/** CPU seconds (user, system) a process has used so far. */
function cpuSeconds(pid: number): { user: number; system: number } {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const tick = 100; // USER_HZ
  return { user: Number(f[11]) / tick, system: Number(f[12]) / tick };
}

/**
 * A new file of `bytes` written 8 MiB at a time, with nothing else: the guest page cache's
 * rate and this process's CPU seconds for it.
 */
function pageCacheWrite(file: string, bytes: number, chunk: Buffer): { rate: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const fd = fs.openSync(file, 'w');
  try {
    for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off));
  } finally {
    fs.closeSync(fd);
  }
  const rate = mibps(bytes, Number(process.hrtime.bigint() - t0) / 1e9);
  const c = process.cpuUsage(c0);
  fs.rmSync(file);
  return { rate, cpu: (c.user + c.system) / 1e6 };
}

/**
 * Moves one transfer's file through `host`: a download md5-checked against `want`, an upload of
 * `src()` into `copy` checked the same way once it is written (into /dev/null, unchecked, when
 * there is no copy). `what` names it in an error.
 */
async function moveFile(
  host: QgaBulkHost,
  t: Transfer,
  what: string,
  file: string,
  src: () => Buffer,
  want: string,
  copy: string | undefined,
): Promise<{ bytes: number; seconds: number }> {
  if (t.dir === 'down') {
    const r = await qgaDownload(host, file, t.count, t.depth);
    if (r.md5 !== want) throw new Error(`${what}: md5 ${r.md5}, expected ${want}`);
    return r;
  }
  const r = await qgaUpload(host, src(), copy ?? '/dev/null', t.count, t.depth);
  if (copy) {
    const got = md5File(copy);
    if (got !== want) throw new Error(`${what}: the copy's md5 is ${got}, expected ${want}`);
    fs.rmSync(copy);
  }
  return r;
}

interface Transfer {
  key: string;
  agent: Agent['name'];
  dir: 'down' | 'up';
  file: 'small' | 'large' | 'huge';
  count: number;
  depth: number;
  /** Written to /dev/null: the agent's rate without the guest's page cache (counts checked, no md5). */
  devNull?: boolean;
}

const size = (n: number) => (n >= MiB ? `${n / MiB} MiB` : `${n / 1024} KiB`);
function transfer(
  agent: Agent['name'],
  dir: Transfer['dir'],
  file: Transfer['file'],
  count: number,
  depth: number,
  devNull = false,
): Transfer {
  const what =
    file === 'huge' ? `${dir === 'down' ? 'read' : 'write'} ${HUGE_FILE / MiB} MiB` : dir === 'down' ? 'read' : 'write';
  const to = devNull ? ' to /dev/null' : '';
  return { key: `${agent}: ${what}${to}, ${size(count)}, ${depth} in flight`, agent, dir, file, count, depth, devNull };
}

/** The same row on each agent, qemu-ga's first, each at its own count. */
function onBoth(
  dir: Transfer['dir'],
  file: Transfer['file'],
  qgaCount: number,
  emberCount: number,
  depth: number,
): Transfer[] {
  return [transfer('qemu-ga', dir, file, qgaCount, depth), transfer('ember-ga', dir, file, emberCount, depth)];
}

/**
 * Each agent at 4 KiB and at its largest count, one at a time and two in flight; ember-ga's 1 GiB
 * each way, and once more into /dev/null. qemu-ga gets no two writes in flight: over the pty it then leaves the last of them
 * unanswered (the data is written, the answer never comes).
 */
const TRANSFERS: Transfer[] = [
  ...onBoth('down', 'small', 4096, 4096, 1),
  ...onBoth('down', 'large', QGA_MAX_READ, EMBER_READ, 1),
  ...onBoth('down', 'large', QGA_MAX_READ, EMBER_READ, 2),
  ...onBoth('up', 'small', 4096, 4096, 1),
  ...onBoth('up', 'large', QGA_MAX_WRITE, EMBER_WRITE, 1),
  transfer('ember-ga', 'up', 'large', EMBER_WRITE, 2),
  transfer('ember-ga', 'down', 'huge', EMBER_READ, 2),
  transfer('ember-ga', 'up', 'huge', EMBER_WRITE, 2),
  transfer('ember-ga', 'up', 'huge', EMBER_WRITE, 2, true),
];

/** The qemu-ga row an ember-ga row is held against: the same direction, file and depth (else one at a time). */
function against(t: Transfer): Transfer | undefined {
  if (t.agent !== 'ember-ga' || t.file === 'huge') return undefined;
  const like = (depth: number) =>
    TRANSFERS.find((q) => q.agent === 'qemu-ga' && q.dir === t.dir && q.file === t.file && q.depth === depth);
  return like(t.depth) ?? like(1);
}

export async function run(out: Reporter): Promise<void> {
  const qemuGa = spawnSync('sh', ['-c', 'command -v qemu-ga'], { encoding: 'utf8' }).stdout.trim();
  if (!qemuGa)
    throw new Error("qemu-ga not found: install Debian's qemu-guest-agent (apt-get install qemu-guest-agent)");
  const agents: Agent[] = [];
  try {
    agents.push(await startAgent('qemu-ga'));
    agents.push(await startAgent('ember-ga'));
    await measure(out, agents[0], agents[1]);
  } finally {
    for (const a of agents) await a.stop();
  }
}

async function measure(out: Reporter, qga: Agent, ember: Agent): Promise<void> {
  // The files live beside ember-ga's bridge; both agents run as the same user on the same disk.
  const dir = fs.mkdtempSync(path.join(ember.bridge.dir, 'files-'));
  const files = {
    small: path.join(dir, 'small.bin'),
    large: path.join(dir, 'large.bin'),
    huge: path.join(dir, 'huge.bin'),
  };
  const want = {
    small: makeRandomFile(files.small, SMALL_FILE),
    large: makeRandomFile(files.large, LARGE_FILE),
    huge: makeRandomFile(files.huge, HUGE_FILE),
  };
  const data = { small: fs.readFileSync(files.small), large: fs.readFileSync(files.large) };
  const best = new Map<string, number>();
  const add = (key: string, v: number) => best.set(key, Math.max(best.get(key) ?? -Infinity, v));
  /** The agent's CPU seconds on the fastest run of each 1 GiB row. */
  const hugeCpu = new Map<string, { user: number; system: number }>();
  fs.writeFileSync(`/proc/${ember.proc.pid}/clear_refs`, '5'); // VmHWM: the peak of these transfers
  for (let round = 0; round < ROUNDS; round++) {
    const raw = await bridgeThroughput(RAW_BYTES);
    add('raw down', raw.down);
    add('raw up', raw.up);
    const rawHuge = await bridgeThroughput(RAW_HUGE_BYTES);
    add('raw huge down', rawHuge.down);
    add('raw huge up', rawHuge.up);
    add('stand-in down', await bridgeRequestResponse(EMBER_READ, 2, HUGE_FILE, 'down'));
    add('stand-in up', await bridgeRequestResponse(EMBER_WRITE, 2, HUGE_FILE, 'up'));
    const cache = pageCacheWrite(path.join(dir, 'page-cache.bin'), HUGE_FILE, data.large.subarray(0, 8 * MiB));
    add('page cache', cache.rate);
    if (cache.rate >= best.get('page cache')!) best.set('page cache cpu', cache.cpu);
    // qemu-ga's rows and ember-ga's take turns at going first.
    const rows = round % 2 === 0 ? TRANSFERS : [...TRANSFERS].reverse();
    for (const t of rows) {
      const a = t.agent === 'qemu-ga' ? qga : ember;
      const cpu0 = cpuSeconds(a.proc.pid!);
      const src = () => (t.file === 'huge' ? fs.readFileSync(files.huge) : data[t.file]);
      const copy = t.devNull ? undefined : path.join(dir, `copy-${t.agent}.bin`);
      const { bytes, seconds } = await moveFile(a.host, t, t.key, files[t.file], src, want[t.file], copy);
      if (t.file === 'huge' && mibps(bytes, seconds) > (best.get(t.key) ?? -Infinity)) {
        // Over the transfer and its check (the agent is idle during the check).
        const cpu1 = cpuSeconds(a.proc.pid!);
        hugeCpu.set(t.key, { user: cpu1.user - cpu0.user, system: cpu1.system - cpu0.system });
      }
      add(t.key, mibps(bytes, seconds));
      if (process.env.EMBER_BENCH_DEBUG) process.stderr.write(`${t.key}: ${mibps(bytes, seconds).toFixed(1)} MiB/s\n`);
    }
  }
  const hwm = vmHWMKiB(ember.proc.pid!);
  const ideal = { down: best.get('raw down')! * 0.75, up: best.get('raw up')! * 0.75 };
  const idealHuge = { down: best.get('raw huge down')! * 0.75, up: best.get('raw huge up')! * 0.75 };
  if (QUICK)
    out.note('EMBER_BENCH_QUICK=1: small sizes and one round, to show the benchmark runs; these figures mean nothing');
  out.heading(`transport: socat PTY,raw,echo=0 <-> UNIX-LISTEN, no agent (best of ${ROUNDS})`);
  out.row(
    'raw guest->host',
    `${best.get('raw down')!.toFixed(1)} MiB/s`,
    `ideal base64 payload ${ideal.down.toFixed(1)} MiB/s`,
  );
  out.row(
    'raw host->guest',
    `${best.get('raw up')!.toFixed(1)} MiB/s`,
    `ideal base64 payload ${ideal.up.toFixed(1)} MiB/s`,
  );
  const hugeWire = `${(RAW_HUGE_BYTES / MiB).toFixed(0)} MiB`;
  out.row(
    `raw guest->host, ${hugeWire}`,
    `${best.get('raw huge down')!.toFixed(1)} MiB/s`,
    `ideal ${idealHuge.down.toFixed(1)} MiB/s, of the ${HUGE_FILE / MiB} MiB read`,
  );
  out.row(
    `raw host->guest, ${hugeWire}`,
    `${best.get('raw huge up')!.toFixed(1)} MiB/s`,
    `ideal ${idealHuge.up.toFixed(1)} MiB/s, of the ${HUGE_FILE / MiB} MiB write`,
  );
  for (const [d, verb, count] of [
    ['down', 'read', EMBER_READ],
    ['up', 'write', EMBER_WRITE],
  ] as const) {
    out.row(
      `stand-in guest, ${HUGE_FILE / MiB} MiB ${verb}`,
      `${best.get(`stand-in ${d}`)!.toFixed(1)} MiB/s`,
      `${ratio(best.get(`stand-in ${d}`)! / idealHuge[d])} ideal: a guest process that only answers, ${verb}s of ${size(count)}, 2 in flight`,
    );
  }
  out.row(
    `guest page cache, ${HUGE_FILE / MiB} MiB file`,
    `${best.get('page cache')!.toFixed(1)} MiB/s`,
    `${best.get('page cache cpu')!.toFixed(1)} s CPU: a new file written 8 MiB at a time, no agent, no bridge`,
  );
  out.heading(
    `qemu-ga protocol: guest-file-read/-write, md5-verified (not /dev/null), best of ${ROUNDS} (4 KiB: ${SMALL_FILE / MiB} MiB file; largest counts: ${LARGE_FILE / MiB} MiB; goal: ember-ga's best >= 2x qemu-ga's, ${HUGE_FILE / MiB} MiB >= 0.80x ideal)`,
  );
  for (const t of TRANSFERS) {
    const rate = best.get(t.key)!;
    const q = against(t);
    const vs = q ? `${ratio(rate / best.get(q.key)!)} qemu-ga, ` : '';
    const cpu = hugeCpu.get(t.key);
    const standIn = t.file === 'huge' ? `, ${ratio(rate / best.get(`stand-in ${t.dir}`)!)} the stand-in's` : '';
    const agentCpu = cpu ? `; agent CPU ${cpu.user.toFixed(1)} s user + ${cpu.system.toFixed(1)} s system` : '';
    out.row(
      t.key,
      `${rate.toFixed(1)} MiB/s`,
      `${vs}${ratio(rate / (t.file === 'huge' ? idealHuge : ideal)[t.dir])} ideal${standIn}${agentCpu}`,
    );
  }
  const bestOf = (agent: string, d: string) =>
    Math.max(...TRANSFERS.filter((t) => t.agent === agent && t.dir === d && !t.devNull).map((t) => best.get(t.key)!));
  for (const [d, verb] of [
    ['down', 'read'],
    ['up', 'write'],
  ] as const) {
    out.row(
      `ember-ga's best ${verb} vs qemu-ga's`,
      ratio(bestOf('ember-ga', d) / bestOf('qemu-ga', d)),
      `${bestOf('ember-ga', d).toFixed(1)} vs ${bestOf('qemu-ga', d).toFixed(1)} MiB/s`,
    );
  }
  out.row(
    `ember-ga peak RSS`,
    `${(hwm / 1024).toFixed(1)} MiB`,
    `over every transfer above (48 MiB reads: 64 MiB answers)`,
  );
  out.note(
    "minimal host (test/helpers/qga-bulk.ts): one request at a time as libvirt sends them, or two in flight (not qemu-ga's writes, see bench/qemu-ga.ts); a read's data decoded by the addon as it arrives, into memory made before the clock starts, md5 once the clock has stopped. qemu-ga 7.2 runs with -m isa-serial on a bridge of its own; an upload is timed to its guest-file-close, where qemu-ga writes its last buffered bytes",
  );
  await overUnixSockets(out, dir, files, want, data);
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * The same transfers with no pty in the way: each agent on a unix socket of its own (qemu-ga -m
 * unix-listen, ember-ga --listen unix:), the same host. The pty bridge caps any guest near its
 * ideal rate, qemu-ga's reads included; here the agents' own costs set the rates.
 */
async function overUnixSockets(
  out: Reporter,
  dir: string,
  files: Record<'small' | 'large', string>,
  want: Record<'small' | 'large', string>,
  data: Record<'small' | 'large', Buffer>,
): Promise<void> {
  const rows = TRANSFERS.filter((t) => t.file !== 'huge');
  const best = new Map<string, number>();
  const procs: ChildProcess[] = [];
  const hosts = new Map<Agent['name'], QgaBulkHost>();
  try {
    for (const name of ['qemu-ga', 'ember-ga'] as const) {
      const sock = path.join(dir, `${name}.sock`);
      const args =
        name === 'qemu-ga'
          ? ['-m', 'unix-listen', '-p', sock, '-t', fs.mkdtempSync(path.join(dir, 'state-'))]
          : [CLI, '--listen', `unix:${sock}`, '--protocol', 'qemu-ga'];
      const proc = spawn(name === 'qemu-ga' ? 'qemu-ga' : process.execPath, args, { stdio: 'ignore' });
      procs.push(proc);
      for (const t0 = Date.now(); !fs.existsSync(sock); await new Promise((r) => setTimeout(r, 20)))
        if (Date.now() - t0 > 15_000) throw new Error(`${name} did not listen on ${sock}`);
      const host = await QgaBulkHost.connect(sock);
      hosts.set(name, host);
      await host.ask('{"execute":"guest-ping"}\n');
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of round % 2 === 0 ? rows : [...rows].reverse()) {
        const host = hosts.get(t.agent)!;
        const file = t.file as 'small' | 'large';
        const copy = path.join(dir, `copy-unix-${t.agent}.bin`);
        const r = await moveFile(host, t, `${t.key}, unix socket`, files[file], () => data[file], want[file], copy);
        best.set(t.key, Math.max(best.get(t.key) ?? 0, mibps(r.bytes, r.seconds)));
      }
    }
  } finally {
    for (const h of hosts.values()) h.close();
    for (const p of procs) await kill(p);
  }
  out.heading(
    `the same transfers over a unix socket, no pty bridge (qemu-ga -m unix-listen, ember-ga --listen unix:; the same host; best of ${ROUNDS})`,
  );
  for (const t of rows) {
    const q = against(t);
    out.row(
      t.key,
      `${best.get(t.key)!.toFixed(1)} MiB/s`,
      q ? `${ratio(best.get(t.key)! / best.get(q.key)!)} qemu-ga` : undefined,
    );
  }
  for (const [d, verb] of [
    ['down', 'read'],
    ['up', 'write'],
  ] as const) {
    const top = (agent: string) =>
      Math.max(...rows.filter((t) => t.agent === agent && t.dir === d).map((t) => best.get(t.key)!));
    out.row(
      `ember-ga's best ${verb} vs qemu-ga's, unix socket`,
      ratio(top('ember-ga') / top('qemu-ga')),
      `${top('ember-ga').toFixed(1)} vs ${top('qemu-ga').toFixed(1)} MiB/s`,
    );
  }
  out.note(
    'with no pty to cap them, the rates are what each agent itself can do; the pty rows above are what the bridge lets through',
  );
}

if (require.main === module) {
  void import('./report').then(({ consoleReporter }) =>
    run(consoleReporter()).catch((e) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exitCode = 1;
    }),
  );
}
