// File transfer through the pty bridge, driven by the project's client (GuestAgent copies):
// download and upload with 4 KiB and 1 MiB chunks (every copy md5-verified), get-file-md5sum
// against md5sum on the same warm file, ping latency, and the agent's peak RSS while moving 1 GiB.
// Every figure is also a ratio to a baseline: the bridge's ideal base64 payload rate (3/4 of its
// raw rate, measured in this run), md5sum's time, or the reference agent's: measured in the same
// run, through the same bridge and the same hosts, when it is built (scripts/build-reference.sh),
// else the issue's figures, taken on another day.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { bareDownload, bareUpload } from './helpers/bare-host';
import type { Socket } from 'net';
import {
  bridgeRequestResponse,
  bridgeThroughput,
  referenceAgent,
  startBareBridgedAgent,
  startBridgedAgent,
  type AgentCommand,
  type BridgedAgent,
} from './helpers/bridge';
import type { GuestAgent } from '../lib/client/guest-agent';
import { makeRandomFile, vmHWMKiB } from './helpers/setup';
import { mibps, percentile, ratio, type Reporter } from './report';

/**
 * phoenix-guest-agent 0.7.1 through the same bridge, as the issue measured it (another day, and
 * not said through which host): the baseline only when the reference is not built for this run.
 */
const ISSUE_REFERENCE = { down4k: 17.3, up4k: 13.1, md5: 0.96, pingP50us: 134 };

const MiB = 1024 * 1024;
/**
 * EMBER_BENCH_QUICK=1: every step with small sizes and one round, for test/integration/bench.test.ts, which
 * checks that the benchmark runs and prints its rows (its figures then mean nothing).
 */
const QUICK = process.env.EMBER_BENCH_QUICK === '1';
const SMALL_FILE = (QUICK ? 1 : 32) * MiB; // moved with 4 KiB chunks
const LARGE_FILE = (QUICK ? 4 : 256) * MiB; // moved with 1 MiB chunks; twice over, hashed by get-file-md5sum
/**
 * Every transfer runs this many times (the 1 MiB ones alone move 4 x 2 x 256 MiB = 2 GiB). A
 * multiple of 4, so the four one-at-a-time rows of a direction each take every place in the
 * round once (inRoundOrder).
 */
const ROUNDS = QUICK ? 1 : 4;
/** The bridge's raw rate is measured moving this much each way. */
const RAW_BYTES = (QUICK ? 4 : 64) * MiB;
/** Requests in flight on one handle, the way a pipelining host moves data. */
const DEPTH_4K = 16;
const DEPTH_1M = 4;

/**
 * Copies `src` to `dst` through the client (GuestAgent.copyFrom down, copyTo up) in chunks of
 * `chunk` with `depth` requests in flight; its own md5 check and fsync off: the copy is
 * md5-verified afterwards. Uploads must be atomic on ember-ga (the client's default there: a
 * temporary file renamed into place; 0.7.1 writes in place).
 */
async function clientCopy(
  ga: GuestAgent,
  dir: 'down' | 'up',
  src: string,
  dst: string,
  chunk: number,
  depth: number,
): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const opts = { chunkSize: chunk, inFlight: depth, verify: false, fsync: false };
  const r = dir === 'down' ? await ga.copyFrom(src, dst, opts) : await ga.copyTo(src, dst, opts);
  if (dir === 'up' && !r.atomic && r.emberGa) throw new Error(`upload to ${dst} was not atomic`);
  return { bytes: r.bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function md5Local(file: string): string {
  return execFileSync('md5sum', [file], { encoding: 'utf8' }).split(' ')[0];
}

/** Best of 3: seconds for node's OpenSSL MD5 (the library the addon calls) over `bytes` in memory. */
function openSslMd5Seconds(bytes: number): number {
  const block = crypto.randomBytes(Math.min(64 * MiB, bytes));
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    best = Math.min(
      best,
      timeIt(() => {
        const h = crypto.createHash('md5');
        for (let off = 0; off < bytes; off += block.length)
          h.update(off + block.length <= bytes ? block : block.subarray(0, bytes - off));
        h.digest();
      }),
    );
  }
  return best;
}

function timeIt(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** The request/response ceiling a transfer is compared with (the minimal host's is the client's). */
function ceilingKey(t: { dir: 'down' | 'up'; chunk: number; depth: number }): string {
  return `ceiling ${t.dir} ${t.chunk} ${t.depth}`;
}

interface Transfer {
  key: string;
  dir: 'down' | 'up';
  file: string;
  want: string;
  chunk: number;
  depth: number;
  /** Through the minimal host (bench/helpers/bare-host.ts), not the client. */
  bare?: boolean;
  /** On the reference agent, not ember-ga. */
  ref?: boolean;
}

/**
 * The transfers in the order round `round` measures them. Within each direction's 4 KiB
 * one-at-a-time rows (client and minimal host, on ember-ga and on the reference), the order
 * turns over from round to round: the client and the minimal host swap places on odd rounds,
 * ember-ga's rows and the reference's on rounds 2 and 3. Position matters on this 2-CPU
 * machine: the client's 4 KiB download ran a fifth faster measured right after the ceilings
 * than right after the minimal host's (which changed little either way), the scheduler's doing
 * rather than either host's; every row gets every place.
 */
function inRoundOrder(rows: Transfer[], round: number): Transfer[] {
  const hostFlip = round % 2 === 1;
  const agentFlip = Math.floor(round / 2) % 2 === 1;
  const rank = (t: Transfer) => Number(!!t.ref !== agentFlip) * 2 + Number(!!t.bare !== hostFlip);
  const out: Transfer[] = [];
  for (let i = 0; i < rows.length;) {
    let j = i + 1;
    const twin = (t: Transfer) => t.depth === 1 && t.dir === rows[i].dir && t.chunk === rows[i].chunk;
    if (rows[i].depth === 1) while (j < rows.length && twin(rows[j])) j++;
    out.push(...rows.slice(i, j).sort((a, b) => rank(a) - rank(b)));
    i = j;
  }
  return out;
}

/** Best (highest) value seen per key, over the rounds of a noisy run. */
class Best {
  private readonly v = new Map<string, number>();
  add(key: string, x: number): void {
    this.v.set(key, Math.max(this.v.get(key) ?? -Infinity, x));
  }
  get(key: string): number {
    return this.v.get(key)!;
  }
}

/** A GuestAgent, or the plain socket of a minimal host, to an agent on its own bridge. */
interface Hosts {
  client: BridgedAgent;
  bare: { sock: Socket; stop(): Promise<void> };
}

async function startHosts(cmd?: AgentCommand): Promise<Hosts> {
  const client = await startBridgedAgent(cmd);
  // A second agent, for the minimal host (socat's UNIX-LISTEN serves one connection).
  const bare = await startBareBridgedAgent(cmd).catch(async (e) => {
    await client.stop();
    throw e;
  });
  return { client, bare };
}

async function stopHosts(h: Hosts | undefined): Promise<void> {
  await h?.bare.stop();
  await h?.client.stop();
}

/** Pings one at a time: `blocks` blocks of `per`, alternating between the clients, after 200 each to warm up; microseconds per client. */
async function pingLatencies(clients: GuestAgent[], blocks: number, per: number): Promise<number[][]> {
  const lat = clients.map(() => [] as number[]);
  for (const c of clients) for (let i = 0; i < 200; i++) await c.ping();
  for (let b = 0; b < blocks; b++) {
    for (let k = 0; k < clients.length; k++) {
      for (let i = 0; i < per; i++) {
        const t0 = process.hrtime.bigint();
        await clients[k].ping();
        lat[k].push(Number(process.hrtime.bigint() - t0) / 1000);
      }
    }
  }
  return lat.map((l) => l.sort((a, b) => a - b));
}

export async function run(out: Reporter): Promise<void> {
  const refCmd = referenceAgent();
  const ember = await startHosts();
  let ref: Hosts | undefined;
  try {
    ref = refCmd ? await startHosts(refCmd) : undefined;
    await measure(out, ember, ref);
  } finally {
    await stopHosts(ref);
    await stopHosts(ember);
  }
}

async function measure(out: Reporter, ember: Hosts, ref: Hosts | undefined): Promise<void> {
  const agent = ember.client;
  const dir = fs.mkdtempSync(path.join(agent.bridge.dir, 'files-'));
  const d = agent.client;
  const small = path.join(dir, 'small.bin');
  const smallMd5 = makeRandomFile(small, SMALL_FILE);
  const large = path.join(dir, 'large.bin');
  const largeMd5 = makeRandomFile(large, LARGE_FILE);
  const check = (what: string, got: string, want: string) => {
    if (got !== want) throw new Error(`${what}: md5 ${got}, expected ${want}`);
  };

  // Transfers, ROUNDS times, each round next to a fresh measurement of the bridge itself; the
  // best of each is kept (load from other processes only ever slows things down).
  const best = new Best();
  // A row of the small file (4 KiB chunks) or the large one (1 MiB chunks), through the client.
  const row = (dir: 'down' | 'up', chunk: number, depth: number): Transfer => ({
    key: `${dir === 'down' ? 'download' : 'upload'} ${chunk === MiB ? '1 MiB' : '4 KiB'}, ${depth} in flight`,
    dir,
    file: chunk === MiB ? large : small,
    want: chunk === MiB ? largeMd5 : smallMd5,
    chunk,
    depth,
  });
  const oneAtATime = (dir: 'down' | 'up'): Transfer[] => {
    const client = row(dir, 4096, 1);
    const rows: Transfer[] = [client, { ...client, key: `${client.key}, minimal host`, bare: true }];
    return ref ? [...rows, ...rows.map((t) => ({ ...t, key: `reference: ${t.key}`, ref: true }))] : rows;
  };
  const transfers: Transfer[] = [
    ...oneAtATime('down'),
    row('down', 4096, DEPTH_4K),
    ...oneAtATime('up'),
    row('up', 4096, DEPTH_4K),
    row('down', MiB, DEPTH_1M),
    row('up', MiB, DEPTH_1M),
  ];
  const ceilings = new Map(transfers.filter((t) => !t.bare && !t.ref).map((t) => [ceilingKey(t), t]));
  fs.writeFileSync(`/proc/${agent.pid}/clear_refs`, '5'); // reset VmHWM: the peak of the transfers only
  let moved = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const raw = await bridgeThroughput(RAW_BYTES);
    best.add('raw down', raw.down);
    best.add('raw up', raw.up);
    for (const [key, t] of ceilings)
      best.add(
        key,
        await bridgeRequestResponse(t.chunk, t.depth, t.chunk === MiB ? LARGE_FILE / 2 : SMALL_FILE, t.dir),
      );
    for (const t of inRoundOrder(transfers, round)) {
      const hosts = t.ref ? ref! : ember;
      const copy = path.join(dir, 'copy.bin');
      if (t.bare && t.dir === 'down') {
        const r = await bareDownload(hosts.bare.sock, t.file);
        check(t.key, r.md5, t.want);
        best.add(t.key, mibps(r.bytes, r.seconds));
        continue;
      }
      const r = t.bare
        ? await bareUpload(hosts.bare.sock, t.file, copy)
        : await clientCopy(hosts.client.client, t.dir, t.file, copy, t.chunk, t.depth);
      check(t.key, md5Local(copy), t.want);
      fs.rmSync(copy);
      if (!t.bare && !t.ref) moved += r.bytes;
      best.add(t.key, mibps(r.bytes, r.seconds));
    }
  }
  const hwm = vmHWMKiB(agent.pid);

  // The reference's 4 KiB rate each row is held against: the same host's (client or minimal
  // host) on the reference in this run, else the issue's figure. With 16 in flight, the
  // reference's client row: the client sends 0.7.1 one request at a time (its answers to reads
  // on one handle may come back in any order), so that is the reference's best.
  const issueRef = (t: Transfer) => (t.dir === 'down' ? ISSUE_REFERENCE.down4k : ISSUE_REFERENCE.up4k);
  const verb = (t: Transfer) => (t.dir === 'down' ? 'download' : 'upload');
  const refRate = (t: Transfer): number | undefined => {
    if (t.chunk !== 4096) return undefined;
    if (!ref) return issueRef(t);
    return best.get(`reference: ${verb(t)} 4 KiB, 1 in flight${t.bare ? ', minimal host' : ''}`);
  };
  const vsRef = (rate: number, t: Transfer) => {
    const r = refRate(t);
    return r === undefined ? '' : `${ratio(rate / r)} reference${ref ? '' : ` (${r})`}, `;
  };

  const ideal = { down: best.get('raw down') * 0.75, up: best.get('raw up') * 0.75 };
  if (QUICK)
    out.note('EMBER_BENCH_QUICK=1: small sizes and one round, to show the benchmark runs; these figures mean nothing');
  out.heading(`transport: socat PTY,raw,echo=0 <-> UNIX-LISTEN, no agent (best of ${ROUNDS})`);
  out.row(
    'raw guest->host',
    `${best.get('raw down').toFixed(1)} MiB/s`,
    `ideal base64 payload ${ideal.down.toFixed(1)} MiB/s`,
  );
  out.row(
    'raw host->guest',
    `${best.get('raw up').toFixed(1)} MiB/s`,
    `ideal base64 payload ${ideal.up.toFixed(1)} MiB/s`,
  );
  out.note(
    'ceiling: the same exchanges with no agent work: a stand-in guest process answers each request at once (download: a line the size of the base64 answer; upload: a short answer to a line that size)',
  );
  for (const [key, t] of ceilings) {
    const c = best.get(key);
    out.row(`ceiling ${t.key}`, `${c.toFixed(1)} MiB/s`, `${vsRef(c, t)}${ratio(c / ideal[t.dir])} ideal`);
  }
  out.heading(
    `transfers, md5-verified, best of ${ROUNDS} (4 KiB: ${SMALL_FILE / MiB} MiB file, goal >= 2x reference${ref ? ' through the same host' : ''}; 1 MiB: ${LARGE_FILE / MiB} MiB file, goal >= 0.60x ideal)`,
  );
  for (const t of transfers) {
    const rate = best.get(t.key);
    const c = best.get(ceilingKey(t));
    const vs = t.ref ? `${ratio(rate / issueRef(t))} the issue's ${issueRef(t)}, ` : vsRef(rate, t);
    out.row(t.key, `${rate.toFixed(1)} MiB/s`, `${vs}${ratio(rate / ideal[t.dir])} ideal, ${ratio(rate / c)} ceiling`);
  }
  out.note(
    'minimal host: one request at a time over the raw socket, lines from a template, no client library (bench/helpers/bare-host.ts): the agent apart from the client. ' +
      (ref
        ? 'reference: phoenix-guest-agent 0.7.1 (scripts/build-reference.sh) through the same bridge and the same two hosts, in the same rounds; each 4 KiB row is held against the reference through the same host. '
        : `reference: the issue's figures, taken on another day through an unnamed host (build the reference, scripts/build-reference.sh, for figures from this run; compare the ceilings meanwhile). `) +
      'The 4 KiB one-at-a-time rows take turns at each place in the round (the row measured right after the ceilings runs faster on this 2-CPU machine)',
  );
  // What the 4 KiB one-at-a-time goal asks of this bridge today: the bridge alone (no agent
  // work at all) against twice the reference's rate through the client.
  for (const t of transfers.filter((x) => x.chunk === 4096 && x.depth === 1 && !x.bare && !x.ref)) {
    const goal = 2 * refRate(t)!;
    const c = best.get(ceilingKey(t));
    out.note(
      `2x the reference${ref ? '' : ` (the issue's figure, another day)`} at 4 KiB one at a time (${verb(t)}) is ${goal.toFixed(1)} MiB/s; the bridge's own ceiling, with no agent work, is ${c.toFixed(1)} MiB/s (${ratio(c / goal)} of it)` +
        (c < goal ? ': no agent can reach it on this bridge today' : ''),
    );
  }
  out.row(
    `agent peak RSS moving ${(moved / 1024 / MiB).toFixed(1)} GiB`,
    `${(hwm / 1024).toFixed(1)} MiB`,
    `${ratio(hwm / 1024 / 80)} the 80 MiB goal`,
  );

  const pingHosts = ref ? [d, ref.client.client] : [d];
  const blocks = QUICK ? 2 : 30;
  const per = QUICK ? 10 : 100;
  out.heading(
    `ping, one at a time, ${blocks * per} after 200 warm-up${ref ? `, in blocks of ${per} taking turns with the reference` : ''}`,
  );
  const [lat, refLat] = await pingLatencies(pingHosts, blocks, per);
  const p50 = percentile(lat, 50);
  const refP50 = refLat ? percentile(refLat, 50) : ISSUE_REFERENCE.pingP50us;
  out.row(
    'ping p50',
    `${p50.toFixed(0)} us`,
    `${ratio(p50 / refP50)} the reference's ${refP50.toFixed(0)} us${refLat ? '' : ' (the issue)'} (lower is better)`,
  );
  out.row(
    'ping p99',
    `${percentile(lat, 99).toFixed(0)} us`,
    refLat ? `the reference's ${percentile(refLat, 99).toFixed(0)} us` : undefined,
  );

  const md5file = path.join(dir, 'md5.bin');
  fs.copyFileSync(large, md5file);
  fs.appendFileSync(md5file, fs.readFileSync(large));
  const md5want = md5Local(md5file); // also warms the page cache
  out.heading(
    `get-file-md5sum vs md5sum, ${(2 * LARGE_FILE) / MiB} MiB warm file, best of 3 (goal <= 0.90x; the reference: ${ref ? 'measured below' : `${ISSUE_REFERENCE.md5}x in the issue`})`,
  );
  let agentBest = Infinity;
  let toolBest = Infinity;
  let refBest = Infinity;
  const timed = async (ga: GuestAgent): Promise<number> => {
    const t0 = process.hrtime.bigint();
    check('get-file-md5sum', await ga.md5File(md5file, { timeout: 300_000 }), md5want);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  for (let i = 0; i < 3; i++) {
    toolBest = Math.min(
      toolBest,
      timeIt(() => check('md5sum', md5Local(md5file), md5want)),
    );
    agentBest = Math.min(agentBest, await timed(d));
    if (ref) refBest = Math.min(refBest, await timed(ref.client.client));
  }
  // The floor for any agent using OpenSSL's MD5 (the issue's proven implementation): hashing
  // the same number of bytes already in memory, on one thread (MD5 is one serial chain).
  const floor = openSslMd5Seconds(2 * LARGE_FILE);
  out.row('md5sum', `${(toolBest * 1000).toFixed(0)} ms`);
  out.row(
    'OpenSSL MD5 alone, in memory',
    `${(floor * 1000).toFixed(0)} ms`,
    `${ratio(floor / toolBest)} md5sum's time: the floor with OpenSSL's MD5`,
  );
  out.row(
    'get-file-md5sum',
    `${(agentBest * 1000).toFixed(0)} ms`,
    `${ratio(agentBest / toolBest)} md5sum's time, ${ratio(agentBest / floor)} the floor${ref ? `, ${ratio(agentBest / refBest)} the reference's time` : ''}`,
  );
  if (ref)
    out.row(
      'reference: get-file-md5sum',
      `${(refBest * 1000).toFixed(0)} ms`,
      `${ratio(refBest / toolBest)} md5sum's time`,
    );
}
