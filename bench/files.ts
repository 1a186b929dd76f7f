// File transfer through the pty bridge, driven by the project's client (GuestAgent copies with
// their own md5 check off; every copy is md5-checked here): download and upload with 4 KiB and
// 1 MiB chunks, get-file-md5sum against md5sum on the same warm file, ping latency, and the
// agent's peak RSS while moving 1 GiB. Every figure is also a ratio to a baseline: the bridge's
// ideal base64 payload rate (3/4 of its raw rate, measured in this run), md5sum's time, or the
// reference agent's figures from the issue.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { bridgeThroughput, startBridgedAgent, type BridgedAgent } from './helpers/bridge';
import { Writable } from 'stream';
import type { GuestAgent } from '../lib/client/guest-agent';
import { mibps, percentile, ratio, type Reporter } from './report';

/** phoenix-guest-agent 0.7.1 on this machine through the same bridge (issue 4). */
const REFERENCE = { down4k: 17.3, up4k: 13.1, md5: 0.96, pingP50us: 134 };

const MiB = 1024 * 1024;
const SMALL_FILE = 64 * MiB; // moved with 4 KiB chunks
const LARGE_FILE = 512 * MiB; // moved with 1 MiB chunks, hashed by get-file-md5sum
/** Requests in flight on one handle, the way a pipelining host moves data. */
const DEPTH_4K = 16;
const DEPTH_1M = 4;

/** A sink that drops what it gets: a download measures the transfer, not the host's disk. */
function nullSink(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}

/** Downloads path through the client in chunks of `size` with `depth` reads in flight. */
async function download(ga: GuestAgent, file: string, size: number, depth: number): Promise<{ bytes: number; md5: string; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const r = await ga.copyFrom(file, nullSink(), { chunkSize: size, inFlight: depth, verify: false });
  return { bytes: r.bytes, md5: r.md5, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** Uploads src to dst through the client in chunks of `chunk` bytes with `depth` writes in flight. */
async function upload(ga: GuestAgent, src: string, dst: string, chunk: number, depth: number): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const r = await ga.copyTo(src, dst, { chunkSize: chunk, inFlight: depth, verify: false });
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

function timeIt(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function run(out: Reporter): Promise<void> {
  out.heading('transport: socat PTY,raw,echo=0 <-> UNIX-LISTEN (the bridge, no agent)');
  const raw = await bridgeThroughput();
  const ideal = { down: raw.down * 0.75, up: raw.up * 0.75 };
  out.row('raw guest->host', `${raw.down.toFixed(1)} MiB/s`, `ideal base64 payload ${ideal.down.toFixed(1)} MiB/s`);
  out.row('raw host->guest', `${raw.up.toFixed(1)} MiB/s`, `ideal base64 payload ${ideal.up.toFixed(1)} MiB/s`);

  const agent: BridgedAgent = await startBridgedAgent();
  const dir = fs.mkdtempSync(path.join(agent.bridge.dir, 'files-'));
  try {
    const d = agent.client;

    out.heading('ping (one at a time)');
    const lat: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const t0 = process.hrtime.bigint();
      await d.ping();
      if (i >= 200) lat.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    lat.sort((a, b) => a - b);
    const p50 = percentile(lat, 50);
    out.row('ping p50', `${p50.toFixed(0)} us`, `${ratio(p50 / REFERENCE.pingP50us)} reference's ${REFERENCE.pingP50us} us (lower is better)`);
    out.row('ping p99', `${percentile(lat, 99).toFixed(0)} us`);

    const small = path.join(dir, 'small.bin');
    const smallMd5 = makeRandomFile(small, SMALL_FILE);
    const large = path.join(dir, 'large.bin');
    const largeMd5 = makeRandomFile(large, LARGE_FILE);

    const check = (what: string, got: string, want: string) => {
      if (got !== want) throw new Error(`${what}: md5 ${got}, expected ${want}`);
    };
    const down = async (label: string, file: string, want: string, size: number, depth: number, ref?: number) => {
      const r = await download(d, file, size, depth);
      check(label, r.md5, want);
      const rate = mibps(r.bytes, r.seconds);
      out.row(label, `${rate.toFixed(1)} MiB/s`, `${ref ? `${ratio(rate / ref)} reference, ` : ''}${ratio(rate / ideal.down)} ideal`);
    };
    const up = async (label: string, file: string, want: string, chunk: number, depth: number, ref?: number) => {
      const dst = path.join(dir, 'upload.bin');
      const r = await upload(d, file, dst, chunk, depth);
      check(label, md5Local(dst), want);
      fs.rmSync(dst);
      const rate = mibps(r.bytes, r.seconds);
      out.row(label, `${rate.toFixed(1)} MiB/s`, `${ref ? `${ratio(rate / ref)} reference, ` : ''}${ratio(rate / ideal.up)} ideal`);
    };

    out.heading(`4 KiB chunks, ${SMALL_FILE / MiB} MiB file, md5-verified (reference: ${REFERENCE.down4k} down, ${REFERENCE.up4k} up)`);
    await down('download 4 KiB, 1 in flight', small, smallMd5, 4096, 1, REFERENCE.down4k);
    await down(`download 4 KiB, ${DEPTH_4K} in flight`, small, smallMd5, 4096, DEPTH_4K, REFERENCE.down4k);
    await up('upload 4 KiB, 1 in flight', small, smallMd5, 4096, 1, REFERENCE.up4k);
    await up(`upload 4 KiB, ${DEPTH_4K} in flight`, small, smallMd5, 4096, DEPTH_4K, REFERENCE.up4k);

    out.heading(`1 MiB chunks, ${LARGE_FILE / MiB} MiB file, md5-verified (goal: >= 0.60x ideal)`);
    fs.writeFileSync(`/proc/${agent.pid}/clear_refs`, '5'); // reset VmHWM: measure the peak of this 1 GiB only
    await down(`download 1 MiB, ${DEPTH_1M} in flight`, large, largeMd5, MiB, DEPTH_1M);
    await up(`upload 1 MiB, ${DEPTH_1M} in flight`, large, largeMd5, MiB, DEPTH_1M);
    const hwm = vmHWMKiB(agent.pid);
    out.row('agent peak RSS moving 1 GiB', `${(hwm / 1024).toFixed(1)} MiB`, `${ratio(hwm / 1024 / 100)} the 100 MiB goal`);

    out.heading(`get-file-md5sum vs md5sum, ${LARGE_FILE / MiB} MiB warm file (best of 3; reference ${REFERENCE.md5}x)`);
    md5Local(large); // warm the page cache
    let agentBest = Infinity;
    let toolBest = Infinity;
    for (let i = 0; i < 3; i++) {
      toolBest = Math.min(toolBest, timeIt(() => check('md5sum', md5Local(large), largeMd5)));
      const t0 = process.hrtime.bigint();
      check('get-file-md5sum', await d.md5sum(large), largeMd5);
      agentBest = Math.min(agentBest, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    out.row('md5sum', `${(toolBest * 1000).toFixed(0)} ms`);
    out.row('get-file-md5sum', `${(agentBest * 1000).toFixed(0)} ms`, `${ratio(agentBest / toolBest)} md5sum's time (goal <= 0.90x)`);
  } finally {
    await agent.stop();
  }
}
