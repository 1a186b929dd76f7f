// File transfer through the pty bridge, driven by the project's client (GuestAgent copies):
// download and upload with 4 KiB and 1 MiB chunks (every copy md5-verified), get-file-md5sum
// against md5sum on the same warm file, ping latency, and the agent's peak RSS while moving 1 GiB.
// Every figure is also a ratio to a baseline: the bridge's ideal base64 payload rate (3/4 of its
// raw rate, measured in this run), md5sum's time, or the reference agent's figures from the issue.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { bareDownload, bareUpload } from './helpers/bare-host';
import { bridgeRequestResponse, bridgeThroughput, startBareBridgedAgent, startBridgedAgent, type BridgedAgent } from './helpers/bridge';
import type { GuestAgent } from '../lib/client/guest-agent';
import { mibps, percentile, ratio, type Reporter } from './report';

/** phoenix-guest-agent 0.7.1 on this machine through the same bridge (issue 4). */
const REFERENCE = { down4k: 17.3, up4k: 13.1, md5: 0.96, pingP50us: 134 };

const MiB = 1024 * 1024;
const SMALL_FILE = 32 * MiB; // moved with 4 KiB chunks
const LARGE_FILE = 256 * MiB; // moved with 1 MiB chunks; twice over, hashed by get-file-md5sum
/** Every transfer runs this many times (the 1 MiB ones alone move 4 x 2 x 256 MiB = 2 GiB). */
const ROUNDS = 4;
/** Requests in flight on one handle, the way a pipelining host moves data. */
const DEPTH_4K = 16;
const DEPTH_1M = 4;

/**
 * Downloads `file` into `dst` through the client (GuestAgent.copyFrom) in chunks of `size` with
 * `depth` reads in flight; its own md5 check and fsync off: the copy is md5-verified afterwards.
 */
async function download(ga: GuestAgent, file: string, dst: string, size: number, depth: number): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const r = await ga.copyFrom(file, dst, { chunkSize: size, inFlight: depth, verify: false, fsync: false });
  return { bytes: r.bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/**
 * Uploads src to dst through the client (GuestAgent.copyTo), `chunk` bytes a write, `depth` in
 * flight; atomic (the client's default: a temporary file renamed into place), its own md5 check
 * and fsync off, as for downloads: the copy is md5-verified afterwards.
 */
async function upload(ga: GuestAgent, src: string, dst: string, chunk: number, depth: number): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const r = await ga.copyTo(src, dst, { chunkSize: chunk, inFlight: depth, verify: false, fsync: false });
  if (!r.atomic) throw new Error(`upload to ${dst} was not atomic`);
  return { bytes: r.bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function md5Local(file: string): string {
  return execFileSync('md5sum', [file], { encoding: 'utf8' }).split(' ')[0];
}

function makeRandomFile(file: string, bytes: number): string {
  const fd = fs.openSync(file, 'w');
  const hash = crypto.createHash('md5');
  try {
    for (let off = 0; off < bytes; off += 16 * MiB) {
      const b = crypto.randomBytes(Math.min(16 * MiB, bytes - off));
      hash.update(b);
      fs.writeSync(fd, b);
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function vmHWMKiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** Best of 3: seconds for node's OpenSSL MD5 (the library the addon calls) over `bytes` in memory. */
function openSslMd5Seconds(bytes: number): number {
  const block = crypto.randomBytes(64 * MiB);
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    best = Math.min(best, timeIt(() => {
      const h = crypto.createHash('md5');
      for (let off = 0; off < bytes; off += block.length) h.update(off + block.length <= bytes ? block : block.subarray(0, bytes - off));
      h.digest();
    }));
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

/**
 * The transfers in the order round `round` measures them: on odd rounds each row and the
 * minimal host's twin that follows it swap places. Position matters on this 2-CPU machine: the
 * client's 4 KiB download ran at 1.84-1.87x the reference when measured right after the
 * ceilings and at 1.52-1.56x right after the minimal host's (which changed little either way),
 * the scheduler's doing rather than either host's; alternating gives both rows both places.
 */
function inRoundOrder<T extends { bare?: boolean }>(transfers: T[], round: number): T[] {
  const out = [...transfers];
  if (round % 2 === 1) {
    for (let i = 0; i + 1 < out.length; i++) {
      if (!out[i].bare && out[i + 1].bare) [out[i], out[i + 1]] = [out[i + 1], out[i]];
    }
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

export async function run(out: Reporter): Promise<void> {
  const agent: BridgedAgent = await startBridgedAgent();
  // A second agent, for the minimal host (socat's UNIX-LISTEN serves one connection).
  const bare = await startBareBridgedAgent().catch(async (e) => {
    await agent.stop();
    throw e;
  });
  const dir = fs.mkdtempSync(path.join(agent.bridge.dir, 'files-'));
  try {
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
    const transfers: { key: string; dir: 'down' | 'up'; file: string; want: string; chunk: number; depth: number; bare?: boolean }[] = [
      { key: 'download 4 KiB, 1 in flight', dir: 'down', file: small, want: smallMd5, chunk: 4096, depth: 1 },
      { key: 'download 4 KiB, 1 in flight, minimal host', dir: 'down', file: small, want: smallMd5, chunk: 4096, depth: 1, bare: true },
      { key: `download 4 KiB, ${DEPTH_4K} in flight`, dir: 'down', file: small, want: smallMd5, chunk: 4096, depth: DEPTH_4K },
      { key: 'upload 4 KiB, 1 in flight', dir: 'up', file: small, want: smallMd5, chunk: 4096, depth: 1 },
      { key: 'upload 4 KiB, 1 in flight, minimal host', dir: 'up', file: small, want: smallMd5, chunk: 4096, depth: 1, bare: true },
      { key: `upload 4 KiB, ${DEPTH_4K} in flight`, dir: 'up', file: small, want: smallMd5, chunk: 4096, depth: DEPTH_4K },
      { key: `download 1 MiB, ${DEPTH_1M} in flight`, dir: 'down', file: large, want: largeMd5, chunk: MiB, depth: DEPTH_1M },
      { key: `upload 1 MiB, ${DEPTH_1M} in flight`, dir: 'up', file: large, want: largeMd5, chunk: MiB, depth: DEPTH_1M },
    ];
    fs.writeFileSync(`/proc/${agent.pid}/clear_refs`, '5'); // reset VmHWM: the peak of the transfers only
    let moved = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const raw = await bridgeThroughput();
      best.add('raw down', raw.down);
      best.add('raw up', raw.up);
      for (const t of transfers) {
        if (!t.bare) best.add(ceilingKey(t), await bridgeRequestResponse(t.chunk, t.depth, t.chunk === MiB ? 128 * MiB : SMALL_FILE, t.dir));
      }
      for (const t of inRoundOrder(transfers, round)) {
        const copy = path.join(dir, 'copy.bin');
        if (t.bare && t.dir === 'down') {
          const r = await bareDownload(bare.sock, t.file);
          check(t.key, r.md5, t.want);
          best.add(t.key, mibps(r.bytes, r.seconds));
          continue;
        }
        const r = t.bare
          ? await bareUpload(bare.sock, t.file, copy)
          : t.dir === 'down'
            ? await download(d, t.file, copy, t.chunk, t.depth)
            : await upload(d, t.file, copy, t.chunk, t.depth);
        check(t.key, md5Local(copy), t.want);
        fs.rmSync(copy);
        if (!t.bare) moved += r.bytes;
        best.add(t.key, mibps(r.bytes, r.seconds));
      }
    }
    const hwm = vmHWMKiB(agent.pid);

    const ideal = { down: best.get('raw down') * 0.75, up: best.get('raw up') * 0.75 };
    out.heading(`transport: socat PTY,raw,echo=0 <-> UNIX-LISTEN, no agent (best of ${ROUNDS})`);
    out.row('raw guest->host', `${best.get('raw down').toFixed(1)} MiB/s`, `ideal base64 payload ${ideal.down.toFixed(1)} MiB/s`);
    out.row('raw host->guest', `${best.get('raw up').toFixed(1)} MiB/s`, `ideal base64 payload ${ideal.up.toFixed(1)} MiB/s`);
    out.note('ceiling: the same exchanges with no agent work: a stand-in guest process answers each request at once (download: a line the size of the base64 answer; upload: a short answer to a line that size)');
    for (const t of transfers) {
      if (t.bare) continue;
      const c = best.get(ceilingKey(t));
      const ref = t.chunk === 4096 ? (t.dir === 'down' ? REFERENCE.down4k : REFERENCE.up4k) : undefined;
      out.row(`ceiling ${t.key}`, `${c.toFixed(1)} MiB/s`, `${ref ? `${ratio(c / ref)} reference, ` : ''}${ratio(c / ideal[t.dir])} ideal`);
    }
    out.heading(`transfers, md5-verified, best of ${ROUNDS} (4 KiB: ${SMALL_FILE / MiB} MiB file, goal >= 2x reference; 1 MiB: ${LARGE_FILE / MiB} MiB file, goal >= 0.60x ideal)`);
    for (const t of transfers) {
      const rate = best.get(t.key);
      const ref = t.chunk === 4096 ? (t.dir === 'down' ? REFERENCE.down4k : REFERENCE.up4k) : undefined;
      const rr = `, ${ratio(rate / best.get(ceilingKey(t)))} ceiling`;
      out.row(t.key, `${rate.toFixed(1)} MiB/s`, `${ref ? `${ratio(rate / ref)} reference (${ref}), ` : ''}${ratio(rate / ideal[t.dir])} ideal${rr}`);
    }
    out.note('minimal host: one request at a time over the raw socket, lines from a template, no client library (bench/helpers/bare-host.ts): the agent apart from the client; it and the client row before it swap places every other round (which one comes first after the ceilings moves the client row by up to a fifth)');
    out.row(`agent peak RSS moving ${(moved / 1024 / MiB).toFixed(1)} GiB`, `${(hwm / 1024).toFixed(1)} MiB`, `${ratio(hwm / 1024 / 100)} the 100 MiB goal`);

    out.heading('ping, one at a time, 3000 after 200 warm-up');
    const lat: number[] = [];
    for (let i = 0; i < 3200; i++) {
      const t0 = process.hrtime.bigint();
      await d.ping();
      if (i >= 200) lat.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    lat.sort((a, b) => a - b);
    const p50 = percentile(lat, 50);
    out.row('ping p50', `${p50.toFixed(0)} us`, `${ratio(p50 / REFERENCE.pingP50us)} the reference's ${REFERENCE.pingP50us} us (lower is better)`);
    out.row('ping p99', `${percentile(lat, 99).toFixed(0)} us`);

    const md5file = path.join(dir, 'md5.bin');
    fs.copyFileSync(large, md5file);
    fs.appendFileSync(md5file, fs.readFileSync(large));
    const md5want = md5Local(md5file); // also warms the page cache
    out.heading(`get-file-md5sum vs md5sum, ${(2 * LARGE_FILE) / MiB} MiB warm file, best of 3 (goal <= 0.90x; reference ${REFERENCE.md5}x)`);
    let agentBest = Infinity;
    let toolBest = Infinity;
    for (let i = 0; i < 3; i++) {
      toolBest = Math.min(toolBest, timeIt(() => check('md5sum', md5Local(md5file), md5want)));
      const t0 = process.hrtime.bigint();
      check('get-file-md5sum', await d.md5sum(md5file), md5want);
      agentBest = Math.min(agentBest, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    // The floor for any agent using OpenSSL's MD5 (the issue's proven implementation): hashing
    // the same number of bytes already in memory, on one thread (MD5 is one serial chain).
    const floor = openSslMd5Seconds(2 * LARGE_FILE);
    out.row('md5sum', `${(toolBest * 1000).toFixed(0)} ms`);
    out.row('OpenSSL MD5 alone, in memory', `${(floor * 1000).toFixed(0)} ms`, `${ratio(floor / toolBest)} md5sum's time: the floor with OpenSSL's MD5`);
    out.row('get-file-md5sum', `${(agentBest * 1000).toFixed(0)} ms`, `${ratio(agentBest / toolBest)} md5sum's time, ${ratio(agentBest / floor)} the floor`);
  } finally {
    await bare.stop();
    await agent.stop();
  }
}
