// What one 4 KiB request costs the agent, the way every 0.7.1 host moves files (one file-read or
// file-write at a time): the agent's CPU time per request (user + system, all its threads, from
// /proc/PID/stat) and the wall-clock rate, each against the reference agent through the same
// bridge and the same host in the same run, and the rate against a zero-work stand-in guest
// behind that same host (bench/helpers/stand-in-guest.ts, phoenix mode: every answer made before
// the first request; one at a time, the host's own work is on the critical path too, so only the
// same host makes the ratio the agent's). Three hosts: the minimal host
// (bench/helpers/bare-host.ts), the project's client (GuestAgent, one chunk in flight) and a
// minimal host in Python (bench/helpers/bare-host.py). The bridge with no host or agent work
// (bridgeRequestResponse) is one row of context. Also ping: its p50 and CPU per ping, through
// the minimal host. Every transfer is md5-verified but the stand-in's uploads (they go nowhere). Without the reference built (scripts/build-reference.sh),
// the ratios to it are left out. Then where ember-ga's CPU goes, by thread (its main thread's
// user and system time apart), the CPU per request less the stand-in's (aboveStandIn), and how soon it answers a host that comes back: the host side
// goes away (socat exits, the pty's master closes) and a new one appears behind the same path.
// Last, the CPU per request again with the guest on a CPU of its own (ownCpuTurns), and the
// agent's own work per request with no bridge at all (bench/helpers/no-bridge.ts).
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import type * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { bareDownload, bareUpload, OneAtATime, openedHandle, readData } from './helpers/bare-host';
import type { NoBridgeResult } from './helpers/no-bridge';
import {
  bridgeRequestResponse,
  connectHost,
  EMBER_GA,
  REPO,
  referenceAgent,
  spawnBridgedAgent,
  standInGuest,
  startBareBridgedAgent,
  startBridgedAgent,
  startHostSide,
  type AgentCommand,
  type BridgedAgent,
  kill,
} from './helpers/bridge';
import { raiseThisThread } from './helpers/host-priority';
import { mibps, percentile, ratio, type Reporter } from './report';

const MiB = 1024 * 1024;
const CHUNK = 4096;
/** EMBER_BENCH_QUICK=1: small sizes and one round, to show the section runs (test/integration/bench-per-request.test.ts). */
const QUICK = process.env.EMBER_BENCH_QUICK === '1';
/** The file moved each way: this many 4 KiB requests and a few more (open, end of file, close). */
const FILE_BYTES = (QUICK ? 1 : 16) * MiB;
const ROUNDS = QUICK ? 1 : 5;
const PINGS = QUICK ? 200 : 5000;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

type Dir = 'down' | 'up';
const STAND_IN = 'stand-in';
type HostName = 'minimal host' | 'client' | 'Python host';
const HOSTS: HostName[] = ['minimal host', 'client', 'Python host'];

/**
 * The agent's CPU time so far, seconds, two ways: `stat`, utime + stime of /proc/PID/stat (every
 * thread, live or gone, in clock ticks: 10 ms); `exact`, the sum of its live threads' run time in
 * /proc/PID/task/TID/schedstat (nanoseconds; a thread that exits takes its time along, and none
 * of these agents ends threads while moving a file). One round's few thousand requests take a
 * few dozen ticks, so each round's figure is the exact one, and the stat one over all rounds
 * checks it.
 */
function cpuSeconds(pid: number): { stat: number; exact: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let ns = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // gone meanwhile
    }
  }
  return { stat: (Number(f[11]) + Number(f[12])) / CLK_TCK, exact: ns / 1e9 }; // fields 14 and 15, counted from 1 before the name
}

function cpuSince(pid: number, before: { stat: number; exact: number }): { stat: number; exact: number } {
  const now = cpuSeconds(pid);
  return { stat: now.stat - before.stat, exact: now.exact - before.exact };
}

/** ember-ga's threads by what they do: its native threads are named (native/write_helper.cc, port_writer.cc). */
type ThreadClass = 'main' | 'write helper' | 'port writer' | 'other';
const THREAD_CLASSES: ThreadClass[] = ['main', 'write helper', 'port writer', 'other'];

/** CPU time so far of each class of the agent's live threads, ns (schedstat); and its main thread's utime and stime, clock ticks. */
function threadSeconds(pid: number): { ns: Record<ThreadClass, number>; user: number; system: number } {
  const ns: Record<ThreadClass, number> = { main: 0, 'write helper': 0, 'port writer': 0, other: 0 };
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
      const run = Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      const cls: ThreadClass =
        Number(t) === pid
          ? 'main'
          : comm === 'ember-ga:write'
            ? 'write helper'
            : comm === 'ember-ga:port'
              ? 'port writer'
              : 'other';
      ns[cls] += run;
    } catch {
      // gone meanwhile
    }
  }
  const stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ns, user: Number(f[11]), system: Number(f[12]) };
}

/** Per-class CPU over a run of requests (see threadSeconds), summed over full turns. */
interface ThreadSplit {
  ns: Record<ThreadClass, number>;
  requests: number;
  user: number;
  system: number;
}

/** A split with nothing counted yet. */
function noSplit(): ThreadSplit {
  return { ns: { main: 0, 'write helper': 0, 'port writer': 0, other: 0 }, requests: 0, user: 0, system: 0 };
}

function md5Of(file: string): string {
  return crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A transfer as one host saw it: the seconds it took, the requests it made, the agent's CPU seconds meanwhile. */
interface Measured {
  seconds: number;
  requests: number;
  cpu: { stat: number; exact: number };
}

/** bare-host.py, on a bridge and agent of its own (socat serves one connection), driven over its stdin. */
class PythonHost {
  private constructor(
    readonly pid: number,
    private readonly py: ChildProcess,
    private readonly lines: AsyncIterator<string>,
    private readonly stopAgent: () => Promise<void>,
  ) {}

  static async start(cmd: AgentCommand): Promise<PythonHost> {
    const { bridge, proc } = await spawnBridgedAgent(cmd);
    const stopAgent = async () => {
      await kill(proc);
      await bridge.close();
    };
    const py = spawn('python3', [path.join(REPO, 'bench', 'helpers', 'bare-host.py'), bridge.hostSocket], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = readline.createInterface({ input: py.stdout! })[Symbol.asyncIterator]();
    const host = new PythonHost(proc.pid!, py, lines, stopAgent);
    try {
      if ((await host.next()) !== 'ready') throw new Error('the Python host did not start');
    } catch (e) {
      await host.stop();
      throw e;
    }
    return host;
  }

  private async next(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error('the Python host exited (its error is above)');
    return r.value;
  }

  /** Runs one job (see bare-host.py); its answer's words. */
  async job(line: string): Promise<string[]> {
    this.py.stdin!.write(`${line}\n`);
    return (await this.next()).split(' ');
  }

  async stop(): Promise<void> {
    this.py.stdin?.end();
    await kill(this.py);
    await this.stopAgent();
  }
}

/** One agent (ember-ga or the reference) with each host on a bridge of its own. */
interface Agent {
  name: string;
  /** The zero-work stand-in guest (standInGuest): uploads go nowhere, so there is no copy to verify. */
  standIn: boolean;
  bare: { sock: net.Socket; pid: number; stop(): Promise<void> };
  client: BridgedAgent;
  python: PythonHost | undefined;
}

async function startAgent(cmd: AgentCommand, withPython: boolean): Promise<Agent> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const bare = await startBareBridgedAgent(cmd);
    stops.push(() => bare.stop());
    const client = await startBridgedAgent(cmd);
    stops.push(() => client.stop());
    const python = withPython ? await PythonHost.start(cmd) : undefined;
    return { name: cmd.name, standIn: cmd.name === STAND_IN, bare, client, python };
  } catch (e) {
    for (const s of stops.reverse()) await s();
    throw e;
  }
}

async function stopAgent(a: Agent | undefined): Promise<void> {
  await a?.python?.stop();
  await a?.client.stop();
  await a?.bare.stop();
}

/** One 4 KiB one-at-a-time transfer of `file` by `host` on agent `a`, verified. */
async function transfer(
  a: Agent,
  host: HostName,
  dir: Dir,
  file: string,
  want: string,
  dir0: string,
): Promise<Measured> {
  const copy = path.join(dir0, `copy-${a.name}.bin`);
  const requests = Math.ceil(FILE_BYTES / CHUNK) + 2; // the chunks, open, and the end of file or close
  const pid = host === 'minimal host' ? a.bare.pid : host === 'client' ? a.client.pid : a.python!.pid;
  const cpu0 = cpuSeconds(pid);
  let seconds: number;
  let got: string | undefined;
  let n = requests;
  // The stand-in's uploads go nowhere: its copy is the one not checked (its downloads are).
  const copyMd5 = () => (a.standIn ? undefined : md5Of(copy));
  if (host === 'minimal host') {
    if (dir === 'down') {
      const r = await bareDownload(a.bare.sock, file);
      ({ seconds, md5: got } = r);
    } else {
      ({ seconds } = await bareUpload(a.bare.sock, file, copy));
      got = copyMd5();
    }
  } else if (host === 'client') {
    const ga = a.client.client;
    const opts = { chunkSize: CHUNK, inFlight: 1, verify: false, fsync: false };
    const t0 = process.hrtime.bigint();
    if (dir === 'down') await ga.copyFrom(file, copy, opts);
    else await ga.copyTo(file, copy, opts);
    seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    got = dir === 'down' ? md5Of(copy) : copyMd5();
  } else {
    const w = await a.python!.job(dir === 'down' ? `down ${file}` : `up ${file} ${copy}`);
    seconds = Number(w[0]);
    n = Number(w[2]);
    got = dir === 'down' ? w[3] : copyMd5();
  }
  const cpu = cpuSince(pid, cpu0);
  fs.rmSync(copy, { force: true });
  if (got !== want && !(a.standIn && dir === 'up'))
    throw new Error(`${a.name}, ${host}, ${dir}: md5 ${got}, expected ${want}`);
  return { seconds, requests: n, cpu };
}

/** Requests an agent makes in one turn of takingTurns(). */
const TURN = QUICK ? 64 : 256;

/**
 * The same requests on every agent's minimal host, the agents taking turns every TURN requests:
 * `down` reads `file` to its end, `up` writes it to a file of each agent's own, `ping` pings
 * PINGS times. Each turn's agent CPU per request (exact), by agent, turn by turn: a turn of one
 * agent and the same turn of the other ran within a few dozen milliseconds of each other, under
 * the same load from the rest of this shared machine. Also every ping's latency, and each
 * agent's CPU over the whole run (both counts).
 */
async function takingTurns(
  agents: Agent[],
  what: Dir | 'ping',
  file: string,
  want: string,
  tmp: string,
): Promise<Map<string, { turns: number[]; lat: number[]; total: Measured; split?: ThreadSplit }>> {
  const data = what === 'up' ? fs.readFileSync(file) : undefined;
  const state = await Promise.all(
    agents.map(async (a) => {
      const asker = new OneAtATime(a.bare.sock, a.name);
      const copy = path.join(tmp, `turns-${a.name}.bin`);
      let handle = 0;
      if (what !== 'ping') {
        const args = what === 'down' ? { path: file } : { path: copy, mode: 'w' };
        const open = await asker.askOk(`${JSON.stringify({ execute: 'file-open', arguments: args })}\n`);
        handle = openedHandle(open);
      }
      return {
        a,
        asker,
        copy,
        handle,
        md5: crypto.createHash('md5'),
        done: 0,
        finished: false,
        turns: [] as number[],
        lat: [] as number[],
        start: cpuSeconds(a.bare.pid),
        split: a.name === EMBER_GA.name ? noSplit() : undefined,
      };
    }),
  );
  const read = (h: number) => `{"execute":"file-read","arguments":{"handle_id":${h}}}\n`;
  const total = what === 'ping' ? PINGS : Math.ceil(FILE_BYTES / CHUNK);
  for (let turn = 0; state.some((x) => !x.finished); turn++) {
    for (const x of turn % 2 ? [...state].reverse() : state) {
      if (x.finished) continue;
      const cpu0 = cpuSeconds(x.a.bare.pid).exact;
      const threads0 = x.split ? threadSeconds(x.a.bare.pid) : undefined;
      let n = 0;
      for (; n < TURN && !x.finished; n++) {
        if (what === 'down') {
          const line = await x.asker.askOk(read(x.handle));
          const chunk = readData(line);
          x.md5.update(chunk);
          x.finished = chunk.length === 0; // the agent closed the handle
        } else if (what === 'up') {
          const off = x.done * CHUNK;
          await x.asker.askOk(
            `{"execute":"file-write","arguments":{"handle_id":${x.handle},"bufb64":"${data!.toString('base64', off, Math.min(data!.length, off + CHUNK))}"}}\n`,
          );
          x.finished = x.done + 1 >= total;
        } else {
          const t0 = process.hrtime.bigint();
          await x.asker.askOk('{"execute":"ping"}\n');
          x.lat.push(Number(process.hrtime.bigint() - t0) / 1000);
          x.finished = x.done + 1 >= total;
        }
        x.done++;
      }
      // A short last turn is left out: too few requests to weigh against a full one.
      if (n === TURN) {
        x.turns.push(((cpuSeconds(x.a.bare.pid).exact - cpu0) / n) * 1e6);
        if (x.split && threads0) {
          const t = threadSeconds(x.a.bare.pid);
          for (const c of THREAD_CLASSES) x.split.ns[c] += t.ns[c] - threads0.ns[c];
          x.split.user += t.user - threads0.user;
          x.split.system += t.system - threads0.system;
          x.split.requests += n;
        }
      }
    }
  }
  const out = new Map<string, { turns: number[]; lat: number[]; total: Measured; split?: ThreadSplit }>();
  for (const x of state) {
    const cpu = cpuSince(x.a.bare.pid, x.start);
    if (what === 'up') await x.asker.askOk(`{"execute":"file-close","arguments":{"handle_id":${x.handle}}}\n`);
    x.asker.end();
    if (what !== 'ping') {
      // The stand-in's uploads go nowhere (see Agent.standIn): only its reads are checked.
      const got = what === 'down' ? x.md5.digest('hex') : x.a.standIn ? want : md5Of(x.copy);
      fs.rmSync(x.copy, { force: true });
      if (got !== want) throw new Error(`${x.a.name}, taking turns, ${what}: md5 ${got}, expected ${want}`);
    }
    out.set(x.a.name, { turns: x.turns, lat: x.lat, total: { seconds: 0, requests: x.done, cpu }, split: x.split });
  }
  return out;
}

export async function run(out: Reporter): Promise<void> {
  const refCmd = referenceAgent();
  const python = spawnSyncOk('python3', ['--version']);
  // The file moved each way, made first: the stand-in guest answers its reads from the start.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ember-ga-per-request-'));
  const file = path.join(dir, 'data.bin');
  fs.writeFileSync(file, crypto.randomBytes(FILE_BYTES));
  let ember: Agent | undefined;
  let ref: Agent | undefined;
  let standIn: Agent | undefined;
  try {
    // EMBER_BENCH_RECONNECTS_ONLY=1: only the comings back (their own agents), for iterating on them.
    if (process.env.EMBER_BENCH_RECONNECTS_ONLY === '1') return await reconnects(out);
    ember = await startAgent(EMBER_GA, python);
    ref = refCmd ? await startAgent(refCmd, python) : undefined;
    standIn = await startAgent(standInGuest(file), python);
    await measure(out, { ember, ref, standIn }, python, dir, file);
    await ownCpuTurns(out, ref ? [ember, ref] : [ember], file, dir);
    noBridge(out, file, dir);
  } finally {
    await stopAgent(standIn);
    await stopAgent(ref);
    await stopAgent(ember);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Sets the CPUs every thread of process `pid` may run on (taskset's list form, "0-2"). */
function pinProcess(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** The socat bridges this process started (the host side of every agent's port). */
function bridgePids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === process.pid && stat.includes('(socat)');
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/**
 * takingTurns() again with the guest on a CPU of its own: every agent on the last CPU, the host
 * side (this process, the minimal host, and the socat bridges) on the others, as in a guest with
 * one virtual CPU, whose host side runs elsewhere. Above, both share both CPUs of this machine, so
 * each agent's figure also holds the cost of being preempted by the host side and of waking it,
 * which the zero-work stand-in pays as well (0.42-0.48x the reference's CPU per read there).
 * The pty's kernel workers still run anywhere.
 */
async function ownCpuTurns(out: Reporter, agents: Agent[], file: string, dir: string): Promise<void> {
  const cpus = os.cpus().length;
  let pinned = false;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    pinned = cpus >= 2;
  } catch {
    // no taskset
  }
  if (!pinned) {
    out.heading('agent CPU per request, the guest on a CPU of its own');
    out.note(cpus < 2 ? 'one CPU: not measured' : 'no taskset: not measured');
    return;
  }
  const all = `0-${cpus - 1}`;
  const guest = String(cpus - 1);
  const host = cpus === 2 ? '0' : `0-${cpus - 2}`;
  const want = md5Of(file);
  const per = new Map<string, number[]>();
  try {
    for (const a of agents) pinProcess(a.bare.pid, guest);
    pinProcess(process.pid, host);
    for (const b of bridgePids()) pinProcess(b, host);
    for (let round = 0; round < ROUNDS; round++)
      for (const what of ['down', 'up', 'ping'] as const)
        for (const [name, r] of await takingTurns(round % 2 ? [...agents].reverse() : agents, what, file, want, dir))
          per.set(`${name}|${what}`, [...(per.get(`${name}|${what}`) ?? []), ...r.turns]);
  } finally {
    for (const a of agents) pinProcess(a.bare.pid, all);
    for (const b of bridgePids()) pinProcess(b, all);
    pinProcess(process.pid, all);
  }
  out.heading(
    `agent CPU per request, the guest on a CPU of its own (CPU ${guest}; the host side and its bridge on ${host}), minimal host, taking turns as above (${ROUNDS} x ${FILE_BYTES / MiB} MiB each way)`,
  );
  const refName = agents[1]?.name;
  for (const what of ['down', 'up', 'ping'] as const) {
    const mine = per.get(`${EMBER_GA.name}|${what}`)!;
    const theirs = refName ? per.get(`${refName}|${what}`) : undefined;
    const n = theirs ? Math.min(mine.length, theirs.length) : 0;
    const ratios = theirs
      ? mine
          .slice(0, n)
          .map((m, i) => m / theirs[i])
          .sort((x, y) => x - y)
      : [];
    out.row(
      `${{ down: 'file-read 4 KiB', up: 'file-write 4 KiB', ping: 'ping' }[what]}`,
      `${median(mine).toFixed(1)} us`,
      theirs
        ? `${ratio(median(ratios))} the reference's ${median(theirs).toFixed(1)} us (middle half ${ratio(percentile(ratios, 25))}-${ratio(percentile(ratios, 75))})`
        : undefined,
    );
  }
  out.note(
    "as in a guest with one virtual CPU: the reference's Go runtime then has one CPU too, as it would there; the rows above, on shared CPUs, are the ones the goal was set on",
  );
}

/**
 * The agent's own work per request with nothing between it and its host (bench/helpers/no-bridge.ts),
 * in a process of its own: what of the figures above is the agent's, and what the bridge's.
 */
function noBridge(out: Reporter, file: string, dir: string): void {
  const r = JSON.parse(
    execFileSync(process.execPath, [path.join(__dirname, 'helpers', 'no-bridge.js'), file, dir], {
      encoding: 'utf8',
      env: { ...process.env, EMBER_BENCH_QUICK: QUICK ? '1' : '0' },
    }),
  ) as NoBridgeResult;
  out.heading(
    `the agent's own work per request, no bridge: its host in its process, one request at a time (median of ${r.ping.length} passes of ${FILE_BYTES / MiB} MiB)`,
  );
  for (const [kind, passes] of Object.entries(r)) {
    out.row(
      `${kind}${kind === 'ping' ? '' : ' 4 KiB'}`,
      `${median(passes.map((p) => p.wallUs)).toFixed(1)} us`,
      `from the request line to its answer; CPU ${median(passes.map((p) => p.cpuUs)).toFixed(1)} us a request (all threads of the process)`,
    );
  }
  out.note(
    "no port, pty, wake-up or host process: the parse, the dispatch, the file call, the answer and the write helper's hand-off (the file-write rows: the helper follows the main thread's CPU)",
  );
}

function spawnSyncOk(file: string, args: string[]): boolean {
  try {
    execFileSync(file, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function measure(
  out: Reporter,
  { ember, ref, standIn }: { ember: Agent; ref: Agent | undefined; standIn: Agent },
  python: boolean,
  dir: string,
  file: string,
): Promise<void> {
  const want = md5Of(file);
  const hosts = HOSTS.filter((h) => h !== 'Python host' || python);
  const agents = ref ? [ember, ref] : [ember];
  // The wall-clock transfers: the agents and the stand-in guest, each behind every host.
  const guests = [...agents, standIn];
  const dirs: Dir[] = ['down', 'up'];
  // Per key "agent|host|dir", one entry a round.
  const runs = new Map<string, Measured[]>();
  const ceiling: Record<Dir, number[]> = { down: [], up: [] };
  // Per key "agent|down", "agent|up", "agent|ping": takingTurns()'s turns, latencies and totals over the rounds.
  const turns = new Map<string, { turns: number[]; lat: number[]; total: Measured[] }>();
  // Per "down", "up", "ping": ember-ga's CPU by thread over every round's turns.
  const splits = new Map<string, ThreadSplit>();
  const add = (k: string, m: Measured) => runs.set(k, [...(runs.get(k) ?? []), m]);

  // A warm-up round, not counted: each agent process moves the file each way once (ember-ga's
  // JIT compiles its hot paths over the first few thousand requests; a daemon lives far longer).
  if (!QUICK)
    for (const d of dirs) for (const h of hosts) for (const a of guests) await transfer(a, h, d, file, want, dir);
  for (let round = 0; round < ROUNDS; round++) {
    for (const d of dirs) ceiling[d].push(await bridgeRequestResponse(CHUNK, 1, FILE_BYTES, d));
    // Every agent and host takes every place in the round in turn (on this 2-CPU machine the
    // place matters: see inRoundOrder in files.ts).
    const order = round % 2 ? [...agents].reverse() : agents;
    const guestOrder = guests.map((_, i) => guests[(i + round) % guests.length]);
    const hostOrder = hosts.map((_, i) => hosts[(i + round) % hosts.length]);
    for (const d of dirs)
      for (const h of hostOrder)
        for (const a of guestOrder) add(`${a.name}|${h}|${d}`, await transfer(a, h, d, file, want, dir));
    for (const what of [...dirs, 'ping'] as const) {
      // The stand-in takes its turns beside the agents': what the bridge and the host cost it.
      for (const [name, r] of await takingTurns([...order, standIn], what, file, want, dir)) {
        if (r.split) {
          const s = splits.get(what) ?? noSplit();
          for (const c of THREAD_CLASSES) s.ns[c] += r.split.ns[c];
          s.user += r.split.user;
          s.system += r.split.system;
          s.requests += r.split.requests;
          splits.set(what, s);
        }
        const t = turns.get(`${name}|${what}`) ?? { turns: [], lat: [], total: [] };
        turns.set(`${name}|${what}`, {
          turns: [...t.turns, ...r.turns],
          lat: [...t.lat, ...r.lat],
          total: [...t.total, r.total],
        });
      }
    }
  }

  const refName = ref?.name ?? '';
  if (QUICK)
    out.note('EMBER_BENCH_QUICK=1: small sizes and one round, to show the benchmark runs; these figures mean nothing');
  const us = (m: Measured, how: 'stat' | 'exact') => (m.cpu[how] / m.requests) * 1e6;
  const perRequestStat = (ms: Measured[]) =>
    (ms.reduce((t, m) => t + m.cpu.stat, 0) / ms.reduce((t, m) => t + m.requests, 0)) * 1e6;
  /** "0.45x the reference's 60.1 us (...)": the median of paired ratios, their middle half, and the check by /proc/PID/stat totals. */
  const versus = (mine: number[], theirs: number[], statMine: number, statTheirs: number) => {
    const ratios = mine.map((m, i) => m / theirs[i]).sort((x, y) => x - y);
    const statRatio = statTheirs > 0 ? ratio(statMine / statTheirs) : 'n/a';
    return (
      `${ratio(median(ratios))} the reference's ${median(theirs).toFixed(1)} us` +
      (ratios.length > 1
        ? ` (middle half ${ratio(percentile(ratios, 25))}-${ratio(percentile(ratios, 75))}; /proc/PID/stat totals: ${statRatio})`
        : '')
    );
  };
  const verb = { down: 'file-read', up: 'file-write', ping: 'ping' };
  out.heading(
    `agent CPU per request, one at a time, minimal host, the agents taking turns every ${TURN} requests (user+system, all threads, /proc; ${ROUNDS} x ${FILE_BYTES / MiB} MiB each way; goal <= 0.50x the reference)`,
  );
  for (const what of [...dirs, 'ping'] as const) {
    const mine = turns.get(`ember-ga|${what}`)!;
    const theirs = ref ? turns.get(`${refName}|${what}`)! : undefined;
    const pairs = theirs ? Math.min(mine.turns.length, theirs.turns.length) : 0;
    out.row(
      `${verb[what]}${what === 'ping' ? '' : ' 4 KiB'}`,
      `${median(mine.turns).toFixed(1)} us`,
      theirs
        ? versus(
            mine.turns.slice(0, pairs),
            theirs.turns.slice(0, pairs),
            perRequestStat(mine.total),
            perRequestStat(theirs.total),
          )
        : undefined,
    );
  }
  out.note(
    'each figure the median over turns; the ratio the median of the ratios of turns run one right after the other (a pair shares the load of the rest of the machine)',
  );
  aboveStandIn(out, turns, refName, verb);
  out.heading(`where ember-ga's CPU goes, by thread, over the same turns (us a request)`);
  for (const what of [...dirs, 'ping'] as const) {
    const s = splits.get(what);
    if (!s || s.requests === 0) continue;
    const us = (c: ThreadClass) => (s.ns[c] / 1e3 / s.requests).toFixed(1);
    const ticks = s.user + s.system;
    const userShare = ticks > 0 ? Math.round((s.user / ticks) * 100) : 0;
    out.row(
      `${verb[what]}${what === 'ping' ? '' : ' 4 KiB'}`,
      `main ${us('main')} us`,
      `(user ${userShare}%, system ${100 - userShare}% of ${ticks} ticks); write helper ${us('write helper')}, port writer ${us('port writer')}, other threads (V8, pool) ${us('other')}`,
    );
  }
  out.note(
    'main: the event loop (the port read, the request, the answer and its write to the port); system time is mostly the pty and the wake-ups',
  );
  out.heading(`agent CPU per request through the other hosts, each transfer whole (median of ${ROUNDS} rounds)`);
  for (const d of dirs) {
    for (const h of hosts.filter((x) => x !== 'minimal host')) {
      const mine = runs.get(`ember-ga|${h}|${d}`)!;
      const theirs = ref ? runs.get(`${refName}|${h}|${d}`) : undefined;
      out.row(
        `${verb[d]} 4 KiB, ${h}`,
        `${median(mine.map((m) => us(m, 'exact'))).toFixed(1)} us`,
        theirs
          ? versus(
              mine.map((m) => us(m, 'exact')),
              theirs.map((m) => us(m, 'exact')),
              perRequestStat(mine),
              perRequestStat(theirs),
            )
          : undefined,
      );
    }
  }

  out.heading(
    `wall clock, 4 KiB one at a time, ${FILE_BYTES / MiB} MiB each way, md5-verified (median of ${ROUNDS}; goal >= 1.20x the reference, >= 0.90x the stand-in guest through the same host)`,
  );
  const rates = (k: string) => runs.get(k)!.map((m) => mibps(FILE_BYTES, m.seconds));
  const rate = (k: string) => median(rates(k));
  // Each round's transfers through one host ran back to back: their ratio shares that round's
  // load from the rest of the machine, which moves the rates far more from round to round.
  const paired = (k: string, other: string) => median(rates(k).map((x, i) => x / rates(other)[i]));
  for (const d of dirs) {
    const way = d === 'down' ? 'download' : 'upload';
    for (const h of hosts) {
      const e = rate(`ember-ga|${h}|${d}`);
      const r = ref ? rate(`${refName}|${h}|${d}`) : undefined;
      const s = rate(`${STAND_IN}|${h}|${d}`);
      out.row(
        `${way}, ${h}`,
        `${e.toFixed(1)} MiB/s`,
        `${r === undefined ? '' : `${ratio(paired(`ember-ga|${h}|${d}`, `${refName}|${h}|${d}`))} the reference's ${r.toFixed(1)}, `}${ratio(paired(`ember-ga|${h}|${d}`, `${STAND_IN}|${h}|${d}`))} the stand-in's ${s.toFixed(1)} (same host)`,
      );
    }
    const c = median(ceiling[d]);
    out.row(
      `${way}, bridge alone`,
      `${c.toFixed(1)} MiB/s`,
      'context: the bridge with no host or agent work (lines of the same sizes, answered unread and unparsed); not the goal',
    );
  }
  const lat = [...turns.get('ember-ga|ping')!.lat].sort((a, b) => a - b);
  const refLat = ref ? [...turns.get(`${refName}|ping`)!.lat].sort((a, b) => a - b) : undefined;
  const p50 = percentile(lat, 50);
  out.row(
    'ping p50, minimal host',
    `${p50.toFixed(0)} us`,
    refLat
      ? `${ratio(p50 / percentile(refLat, 50))} the reference's ${percentile(refLat, 50).toFixed(0)} us (goal <= 0.80x)`
      : undefined,
  );
  const standInLat = [...turns.get(`${STAND_IN}|ping`)!.lat].sort((a, b) => a - b);
  const s50 = percentile(standInLat, 50);
  out.row(
    'ping p50, stand-in guest',
    `${s50.toFixed(0)} us`,
    `${refLat ? `${ratio(s50 / percentile(refLat, 50))} the reference's; ` : ''}ember-ga ${ratio(p50 / s50)} of it (context: the same bridge, host and port driver with no agent work: the least a ping can take here)`,
  );
  out.note(
    "each rate the median over the rounds, each ratio the median of the rounds' ratios; the stand-in guest: an agent's place behind the same hosts taken by one that does nothing but send ember-ga's answer bytes, made before the first request, through the same port driver (bench/helpers/stand-in-guest.ts); its uploads go nowhere, so their copy alone is not md5-checked (its downloads are, as every agent's)",
  );
  out.note(
    `after a warm-up round (not counted), each round: the bridge alone, every transfer (agents, stand-in and hosts taking turns at each place), then the minimal host's turns (reads, writes, ${PINGS} pings; the agents', then the stand-in's); ` +
      (ref
        ? 'reference: phoenix-guest-agent 0.7.1 through the same bridge and hosts'
        : 'no reference built: no ratios to it'),
  );
  await reconnects(out);
}

/**
 * The same turns less the zero-work stand-in's (bench/helpers/stand-in-guest.ts, on the same port
 * driver, behind the same bridge and host): the CPU a request costs an agent for its own work,
 * without the pty's and the wake-ups' share, which every guest process pays on this bridge and a
 * real virtio port does not. Context for the goal above, not the goal.
 */
function aboveStandIn(
  out: Reporter,
  turns: Map<string, { turns: number[] }>,
  refName: string,
  verb: Record<Dir | 'ping', string>,
): void {
  const standIn = (what: Dir | 'ping') => median(turns.get(`${STAND_IN}|${what}`)!.turns);
  out.heading(
    "agent CPU per request above the zero-work stand-in's, over the same rounds (the stand-in taking its turns beside theirs)",
  );
  for (const what of ['down', 'up', 'ping'] as const) {
    const s = standIn(what);
    const mine = median(turns.get(`ember-ga|${what}`)!.turns) - s;
    const theirs = refName ? median(turns.get(`${refName}|${what}`)!.turns) - s : undefined;
    out.row(
      `${verb[what]}${what === 'ping' ? '' : ' 4 KiB'}, above the stand-in`,
      `${mine.toFixed(1)} us`,
      `${theirs === undefined ? '' : `${theirs > 0 ? ratio(mine / theirs) : 'n/a:'} the reference's ${theirs.toFixed(1)} us; `}the stand-in ${s.toFixed(1)} us a request`,
    );
  }
  out.note(
    "each the median over turns less the stand-in's median: the agent's own work with the bridge's share taken out (the no-bridge rows below measure it with no bridge at all)",
  );
}

/** How long the host side stays away before it comes back, ms: past the old backoff's longest wait (500 ms) and under it. */
const AWAY_CYCLE = QUICK ? [300, 800] : [300, 800, 1500, 2500, 600, 1200, 400, 2000];
/** EMBER_BENCH_RECONNECTS=N: N comings back (the waits above, over and over) instead of one each. */
const RECONNECTS = Number(process.env.EMBER_BENCH_RECONNECTS) || AWAY_CYCLE.length;
const AWAY_MS = Array.from({ length: RECONNECTS }, (_, i) => AWAY_CYCLE[i % AWAY_CYCLE.length]);

/** The host side's priority while it comes back (bench/helpers/host-priority.ts); EMBER_BENCH_HOST_NICE=0: the normal one. */
const HOST_SIDE_NICE = Number(process.env.EMBER_BENCH_HOST_NICE ?? -10);
/** Whether the last comingBack() ran its host side at HOST_SIDE_NICE. */
let hostSideRaised = false;

/**
 * A guest on a bridge whose host side goes away and comes back (a new socat: a new pty behind
 * the same path, as port.test.ts does): the ms from the host's first request to its answer,
 * each time. ember-ga, and the zero-work stand-in guest on the same port driver (which reopens
 * the path by itself, with no JS in between): the bridge's own time for a first answer.
 */
async function comingBack(guest: 'ember-ga' | 'stand-in'): Promise<number[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ember-ga-reconnect-'));
  let side = await startHostSide(dir);
  const logPath = path.join(dir, 'guest.log');
  const log = fs.openSync(logPath, 'w');
  const proc =
    guest === 'ember-ga'
      ? spawn(EMBER_GA.file, EMBER_GA.args(side.pty), { stdio: ['ignore', log, log] })
      : spawn(process.execPath, [path.join(__dirname, 'helpers', 'stand-in-guest.js'), side.pty, '28'], {
          stdio: ['ignore', log, log],
        });
  fs.closeSync(log);
  const ready = guest === 'ember-ga' ? EMBER_GA.ready! : /^ready$/m;
  const ms: number[] = [];
  let sock: net.Socket | undefined;
  // From here on, each new socat and this thread's reading of the answers run at the raised
  // priority (a runnable socat was seen to wait 32 ms for a CPU: perf sched timehist); the guest,
  // started above, keeps the normal one.
  const restore = raiseThisThread(HOST_SIDE_NICE);
  hostSideRaised = restore !== undefined;
  try {
    const t0 = Date.now();
    while (!ready.test(fs.readFileSync(logPath, 'utf8'))) {
      if (Date.now() - t0 > 10_000 || proc.exitCode !== null)
        throw new Error(`${guest} did not start: ${fs.readFileSync(logPath, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    sock = await connectHost(side);
    await firstAnswer(sock, guest);
    for (const away of AWAY_MS) {
      sock.destroy();
      await new Promise((r) => (side.proc.exitCode !== null ? r(null) : side.proc.once('exit', r)));
      await new Promise((r) => setTimeout(r, away));
      side = await startHostSide(dir);
      sock = await connectHost(side);
      ms.push(await firstAnswer(sock, guest));
    }
  } finally {
    restore?.();
    sock?.destroy();
    await kill(proc);
    await side.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return ms;
}

async function reconnects(out: Reporter): Promise<void> {
  out.heading('the first answer after the host side comes back (goal < 5 ms)');
  for (const guest of ['ember-ga', 'stand-in'] as const) {
    const sorted = (await comingBack(guest)).sort((a, b) => a - b);
    out.row(
      guest === 'ember-ga' ? 'ping, first after coming back' : 'stand-in guest, first after coming back',
      `${percentile(sorted, 50).toFixed(2)} ms`,
      `median of ${sorted.length}, max ${sorted[sorted.length - 1].toFixed(2)} ms, ${sorted.filter((x) => x >= 5).length} at 5 ms or more${guest === 'ember-ga' ? `; away ${AWAY_CYCLE.join(', ')} ms${RECONNECTS > AWAY_CYCLE.length ? ' over and over' : ''}` : '; the same port driver, no agent work'}`,
    );
  }
  out.note(
    `from the request to its answer, the host side being a new socat (a new pty behind the same path)${hostSideRaised ? `, it and the timing process at nice ${HOST_SIDE_NICE} (they stand in for the host's side, which does not share the guest's CPUs)` : ', at the normal priority (EMBER_BENCH_HOST_NICE=0, or raising it was not allowed): the figures include its waits for a CPU'}; the reference does not reopen a replaced pty (no answer), so it has no figure`,
  );
}

/** Sends a ping on a fresh connection to the host side and resolves with the ms its answer took (10 s at most). */
function firstAnswer(sock: net.Socket, guest: 'ember-ga' | 'stand-in'): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let got = '';
    const timer = setTimeout(() => reject(new Error('no answer within 10 s after the host side came back')), 10_000);
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      if (!got.includes('\n')) return;
      clearTimeout(timer);
      sock.off('data', onData);
      if (guest === 'ember-ga' && !got.includes('"return"')) reject(new Error(`ping answered ${got.trim()}`));
      else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    sock.on('data', onData);
    sock.write('{"execute":"ping","tag":"back"}\n');
  });
}
