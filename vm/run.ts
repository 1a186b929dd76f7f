#!/usr/bin/env node
// `npm run test:vm`: ember-ga inside a QEMU guest on a real virtio-serial port, driven from the
// host over QEMU's chardev socket. Builds (or reuses) the guest image, boots it, runs the checks
// below, prints boot-to-first-answer and total time, and ends with "N passed, N failed,
// N skipped". QEMU is killed by PID on every exit path (guest.ts).
//
// Checks are gated on command groups. A group counts as present when this tree registers any
// of its commands (lib/protocols/phoenix/commands); the packed agent is built from the same tree, so a present
// group the agent does not list is a FAILURE (packing or install lost it), never a skip. Groups
// this tree does not have yet are skipped, each with its reason.
import { AsyncLocalStorage } from 'async_hooks';
import * as crypto from 'crypto';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { allCommands } from '../lib/protocols/phoenix/commands';
import type { SysInfo } from '../lib/protocols/phoenix/answers';
import { Registry } from '../lib/protocols/phoenix/registry';
import { GuestAgentError } from '../lib/client/errors';
import { GuestAgent } from '../lib/client/guest-agent';
import { LineClient, type Answer } from '../test/helpers/agent';
import { QmpClient } from '../test/helpers/qemu-ga';
import { allQgaCommands, QGA_ORDER } from '../lib/protocols/qemu-ga/commands';
import { withTimeout } from '../test/helpers/harness';
import {
  buildImage,
  buildSystemdImage,
  DISK_MIB,
  GUEST_MAC,
  makeDisk,
  Monitor,
  Qemu,
  REPO,
  scratchDirs,
  SEED_MIB,
  sleep,
  type Image,
} from './guest';
import { Libvirt, libvirtMissing } from './libvirt';

type Group = 'files' | 'freeze' | 'net' | 'sysinfo';
const GROUPS: Record<Group, string[]> = {
  files: [
    'file-open',
    'file-read',
    'file-write',
    'file-close',
    'get-file-md5sum',
    'file-chown',
    'file-chmod',
    'file-stat',
    'directory-create',
    'directory-list',
  ],
  freeze: ['fs-freeze', 'fs-unfreeze', 'get-freeze-status'],
  net: [
    'get-netifaces',
    'ipaddr-add',
    'ipaddr-del',
    'net-iface-up',
    'net-iface-down',
    'get-route-list',
    'route-add',
    'route-del',
  ],
  sysinfo: ['sysinfo'],
};
const treeNames = new Registry(allCommands).names();
const inTree = (g: Group) => GROUPS[g].some((n) => treeNames.includes(n));
/** qemu-ga commands this tree has: a check that drives others is skipped, with the reason. */
const qgaNames = allQgaCommands.map((c) => c.name);
/** Those of them guest-info lists: qemu-ga's own (ember-ga's extensions are left out of it). */
const qgaListed = qgaNames.filter((n) => QGA_ORDER.includes(n));

const T0 = Date.now();
const CACHE = path.resolve(process.env.EMBER_VM_CACHE ?? path.join(REPO, '.cache', 'vm'));
const DATA = '/mnt/data';
const BOOT_DEADLINE_MS = 90_000; // ~8-16 s is typical under TCG; generous for a busy machine
const REBOOT_DEADLINE_MS = 180_000; // guest-shutdown reboot to the next answer: 22-62 s seen, slower than the first boot
const GUEST_SMP = 2; // the first and the libvirt guest's vCPUs: guest-set-vcpus takes cpu1 offline and back
const FREEZE_TIMEOUT_S = 8; // the --freeze-timeout /init gives the agent (kernel command line)
const HOST_GONE_S = 4; // the --host-gone-timeout /init gives the agent (kernel command line)
const BUILD_DEADLINE_MS = 360_000; // each script: package installs, downloads, npm pack/install, cpio (~190 s for both seen under load)
const RUN_DEADLINE_MS = 900_000; // the four boots (one a reboot) and every check: 250-370 s here
/** EMBER_VM_SKIP=plain,systemd,libvirt leaves those guests out (for working on another's checks). */
const SKIP = new Set((process.env.EMBER_VM_SKIP ?? '').split(',').filter(Boolean));
const LIBVIRT_START_MS = 90_000; // libvirtd's first start probes QEMU (~10 s); later ones reuse its cache
const LIBVIRT_BOOT_DEADLINE_MS = 120_000; // the domain's boot to the first guest-ping through libvirt
const SYSTEMD_BOOT_DEADLINE_MS = 150_000; // ~20-30 s under TCG: systemd, udev's coldplug, then the agent
/** The systemd guest's kernel command line: /preinit loads the modules and becomes systemd. */
const SYSTEMD_APPEND = ['rdinit=/preinit', 'systemd.unit=basic.target', 'systemd.journald.forward_to_console=1'];

// --- the client: the project's GuestAgent (lib/client) over QEMU's chardev socket ------------
let ga: GuestAgent | undefined;
/** The running plain or systemd guest; set before any of their checks runs (unset with EMBER_VM_SKIP=plain until the systemd guest). */
let qemu = undefined as unknown as Qemu;

/**
 * Which guest a check was started on (0 the first, 1 the systemd guest). A check that timed out
 * goes on running; once the next guest is up, its requests must fail, not reach that guest.
 */
const checkGuest = new AsyncLocalStorage<number>();
let liveGuest = 0;

function client(): GuestAgent {
  const mine = checkGuest.getStore();
  if (mine !== undefined && mine !== liveGuest)
    throw new Error('a check of an earlier guest, still running after its timeout');
  ga ??= new GuestAgent({ socket: lvGuest?.phoenixSocket ?? qemu.socket, timeout: 30_000, connectTimeout: 5_000 });
  return ga;
}

async function ok<T = unknown>(cmd: string, args?: Record<string, unknown>, ms = 30_000): Promise<T> {
  return client().call<T>(cmd, args, { timeout: ms });
}

/** A request that must fail: the guest's message matches `re`, and its errno is `code`. */
async function expectError(
  cmd: string,
  args: Record<string, unknown> | undefined,
  code: number | undefined,
  re: RegExp,
  what: string,
): Promise<void> {
  let err: unknown;
  try {
    const v = await client().call(cmd, args);
    err = new Error(`expected an error, got ${JSON.stringify(v)}`);
  } catch (e) {
    err = e;
  }
  assert(err instanceof GuestAgentError && err.remote, `${what}: ${(err as Error).message}`);
  assert(re.test(err.message), `${what}: message ${JSON.stringify(err.message)} does not match ${re}`);
  if (code !== undefined) assert(err.errno === code, `${what}: code ${err.errno}, expected ${code}`);
}

/** Pings until answered: a fresh request every second (the client connects again as needed,
 * and bytes sent while no agent holds the port may be dropped by the guest). */
async function pingUntil(ms: number): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    if (!lvGuest && qemu.exited) throw new Error(`QEMU exited:\n${tail(qemu.consoleText())}`);
    const t = Date.now();
    try {
      await client().ping({ timeout: 1000 });
      return;
    } catch (e) {
      last = (e as Error).message;
      await sleep(1000 - (Date.now() - t)); // a refused connection fails at once
    }
  }
  throw new Error(`no ping answer within ${ms} ms (last: ${String(last)})`);
}

async function disconnect(): Promise<void> {
  await ga?.close();
  ga = undefined;
  qmp?.close();
  qmp = undefined;
  closeMonitor();
}

// --- the qemu-ga client: test/helpers/qemu-ga.ts's QmpClient on the second port's socket ----
let qmp: QmpClient | undefined;
let syncId = 1000;

/** A client of the org.qemu.guest_agent.0 port, synchronised as libvirt does it: 0xFF, then guest-sync-delimited. */
async function qga(ms = 30_000): Promise<QmpClient> {
  const mine = checkGuest.getStore();
  if (mine !== undefined && mine !== liveGuest)
    throw new Error('a check of an earlier guest, still running after its timeout');
  if (qmp) return qmp;
  const c = await QmpClient.connect(qemu.qgaSocket);
  const end = Date.now() + ms;
  try {
    for (;;) {
      // The 0xFF drops any partial request in the agent's parser (it answers it with a parse
      // error); the answer to sync, after a 0xFF of its own, is past anything stale.
      const id = ++syncId;
      c.send(
        Buffer.concat([
          Buffer.from([0xff]),
          Buffer.from(`{"execute":"guest-sync-delimited","arguments":{"id":${id}}}\n`),
        ]),
      );
      try {
        for (;;) {
          const raw = await c.rawAnswer(Math.max(1, Math.min(2_000, end - Date.now())));
          if (raw[0] !== 0xff) continue; // the 0xFF's parse error, or something stale
          const a = JSON.parse(raw.subarray(1).toString('utf8')) as { return?: unknown };
          if (a.return === id) {
            qmp = c;
            return c;
          }
        }
      } catch (e) {
        if (Date.now() >= end)
          throw new Error(`no guest-sync-delimited answer within ${ms} ms: ${(e as Error).message}`);
      }
    }
  } catch (e) {
    c.close();
    throw e;
  }
}

/** What guest-exec of a program through the qemu-ga port gave, once it exited. */
interface Exec {
  code: number | undefined;
  signal: number | undefined;
  out: string;
  err: string;
}

/** `sh -c SCRIPT` in the guest through guest-exec (output captured), waited for with guest-exec-status. */
async function guestSh(script: string, ms = 30_000): Promise<Exec> {
  const q = await qga();
  const { pid } = await q.ok<{ pid: number }>('guest-exec', {
    path: '/bin/sh',
    arg: ['-c', script],
    'capture-output': true,
  });
  const end = Date.now() + ms;
  for (;;) {
    const st = await q.ok<{
      exited: boolean;
      exitcode?: number;
      signal?: number;
      'out-data'?: string;
      'err-data'?: string;
    }>('guest-exec-status', { pid });
    if (st.exited) {
      const text = (b?: string) => Buffer.from(b ?? '', 'base64').toString('utf8');
      return { code: st.exitcode, signal: st.signal, out: text(st['out-data']), err: text(st['err-data']) };
    }
    if (Date.now() > end) throw new Error(`guest-exec of ${JSON.stringify(script)}: still running after ${ms} ms`);
    await sleep(100);
  }
}

/** guestSh that must exit 0: its stdout. */
async function guestShOk(script: string, ms?: number): Promise<string> {
  const r = await guestSh(script, ms);
  assert(r.code === 0, `guest-exec of ${JSON.stringify(script)}: exit ${r.code ?? `signal ${r.signal}`}: ${r.err}`);
  return r.out;
}

/** An answer that must be qemu-ga's error of class `cls` with the message `desc`. */
function isQgaError(a: { return?: unknown; error?: { class: string; desc: string } }, cls: string, desc: string) {
  return a.error?.class === cls && a.error.desc === desc;
}

// --- QEMU's own monitor (QMP on a socket of its own): guest power state, system_wakeup, events ---
let mon: { qemu: Qemu; m: Monitor } | undefined;

async function monitor(): Promise<Monitor> {
  if (mon?.qemu !== qemu) {
    mon?.m.close();
    mon = { qemu, m: await Monitor.connect(qemu) };
  }
  return mon.m;
}

function closeMonitor(): void {
  mon?.m.close();
  mon = undefined;
}

/** The agent's pid, CPU ticks (utime + stime) and the guest uptime, from /init's "agent-cpu"
 * console lines (it reads /proc/PID/stat once a second), those printed after console offset `from`. */
function agentCpu(from = 0): { pid: number; ticks: number; uptime: number }[] {
  return [
    ...qemu
      .consoleText()
      .slice(from)
      .matchAll(/^agent-cpu (\d+) (\d+) ([\d.]+)\r?$/gm),
  ].map((m) => ({
    pid: Number(m[1]),
    ticks: Number(m[2]),
    uptime: Number(m[3]),
  }));
}

/** Pids /init has started the agent with, in order, from its console lines. */
function agentStarts(): string[] {
  return [...qemu.consoleText().matchAll(/^init: ember-ga started, pid (\d+)/gm)].map((m) => m[1]);
}

function md5(b: Buffer): string {
  return crypto.createHash('md5').update(b).digest('hex');
}

function tail(s: string, n = 3000): string {
  return s.length > n ? s.slice(-n) : s;
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

/** The host's view of the guest disk, without the guest: what a snapshot taken now would hold. */
function hostReadsDisk(disk: string, p: string): string {
  return execFileSync('debugfs', ['-R', `cat ${p}`, disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** The writer's stamps; a line that is no number (a tail an earlier guest's kill left zero-filled) is skipped. */
function stamps(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number)
    .filter((x) => !Number.isNaN(x));
}

/** The median interval between consecutive stamps: the writer's pace when nothing stalls it. */
function medianGap(xs: number[]): number {
  const d = xs
    .slice(1)
    .map((x, i) => x - xs[i])
    .sort((a, b) => a - b);
  return d.length ? d[d.length >> 1] : NaN;
}

function maxGap(xs: number[]): number {
  let g = 0;
  for (let i = 1; i < xs.length; i++) g = Math.max(g, xs[i] - xs[i - 1]);
  return g;
}

// --- the checks ----------------------------------------------------------------------------
/** Thrown by a check that cannot run in this tree: counted as skipped, with the reason. */
class SkipCheck extends Error {}

interface Check {
  name: string;
  needs: Group[];
  fn: () => Promise<string | void>;
  /** qemu-ga commands it drives beyond the core ones. */
  qga?: string[];
  /** Its deadline, when not that of its list. */
  ms?: number;
}
const checks: Check[] = [];
const check = (name: string, needs: Group[], fn: () => Promise<string | void>, list = checks) =>
  list.push({ name, needs, fn });
/** A check that drives these qemu-ga commands: skipped, saying which, while this tree lacks any. */
const qgaCheck = (
  name: string,
  needs: Group[],
  qga: string[],
  fn: () => Promise<string | void>,
  list = checks,
  ms?: number,
) => list.push({ name, needs, fn, qga, ms });

let disk: { path: string; seedMd5: string; seed: string };
const timings: Record<string, string> = {};

// core: always present
check('get-commands lists every command of this tree', [], async () => {
  const listed = (await ok('get-commands')) as string[];
  const missing = treeNames.filter((n) => !listed.includes(n));
  assert(missing.length === 0, `the packed agent lacks ${missing.join(', ')}`);
  for (const g of Object.keys(GROUPS) as Group[]) {
    if (inTree(g)) {
      const lacking = GROUPS[g].filter((n) => !listed.includes(n));
      assert(lacking.length === 0, `group ${g} is in this tree but the agent lacks ${lacking.join(', ')}`);
    }
  }
  return `${listed.length} commands`;
});

check('bad input: an unknown command and a malformed line get errors; the agent keeps serving', [], async () => {
  await expectError('no-such-command', undefined, -1, /^Unknown command: no-such-command$/, 'unknown command');
  // A malformed line is below what the client can send: a raw connection for it.
  await disconnect();
  const raw = new LineClient(await qemu.connect(10_000));
  try {
    raw.send('{"execute": "ping", \r\n{"execute":"ping","tag":"after"}\r\n');
    const lines = await raw.waitLines(2, 15_000);
    const bad = lines.find((l) => l.tag === '');
    assert(bad?.error, `no error answer with tag "" for a malformed line: ${JSON.stringify(lines)}`);
    assert(
      lines.some((l: Answer) => l.tag === 'after' && typeof l.return === 'string'),
      `no ping answer after the malformed line: ${JSON.stringify(lines)}`,
    );
  } finally {
    raw.close();
  }
  await pingUntil(20_000);
});

check('sysinfo: uname, and disks lists the virtio disk with sizes', ['sysinfo'], async () => {
  const s = (await ok('sysinfo')) as SysInfo;
  assert(s.uname.machine === 'x86_64', `uname.machine ${s.uname.machine}`);
  const kver = fs.readFileSync(path.join(CACHE, 'image', 'kernel-version'), 'utf8');
  assert(kver.includes(`(${s.uname.release})`), `uname.release ${s.uname.release}, image has ${kver.trim()}`);
  const vda = s.disks.find((d) => d.name === '/dev/vda');
  assert(vda, `no /dev/vda in disks: ${JSON.stringify(s.disks)}`);
  assert(vda.is_mounted && vda.mountpoint === DATA, `vda not shown mounted on ${DATA}: ${JSON.stringify(vda)}`);
  const kib = DISK_MIB * 1024;
  assert(vda.size_total > kib * 0.8 && vda.size_total <= kib, `size_total ${vda.size_total} KiB for a ${kib} KiB disk`);
  assert(vda.size_used >= SEED_MIB * 1024, `size_used ${vda.size_used} KiB, the seed alone is ${SEED_MIB * 1024}`);
  assert(vda.size_used + vda.size_avail <= vda.size_total, `used + avail > total: ${JSON.stringify(vda)}`);
  return `/dev/vda ${vda.size_total} KiB, ${vda.size_used} used`;
});

check(
  `files: ${SEED_MIB} MiB host-to-guest copy, atomic (md5 checked and fsync'ed in the guest before the rename)`,
  ['files'],
  async () => {
    const src = path.join(path.dirname(disk.path), 'up.bin');
    const data = crypto.randomBytes(SEED_MIB << 20);
    fs.writeFileSync(src, data);
    const t = Date.now();
    const r = await client().copyTo(src, `${DATA}/up.bin`); // verified by the client's md5 too
    const ms = Date.now() - t;
    const sum = await ok('get-file-md5sum', { path: `${DATA}/up.bin` });
    assert(
      r.bytes === data.length && sum === md5(data),
      `guest md5 ${String(sum)} after ${r.bytes} bytes, host ${md5(data)}`,
    );
    assert(r.atomic && r.verified, `copy result ${JSON.stringify(r)}: not an atomic, verified replace`);
    timings.upload = `${ms} ms (${((SEED_MIB * 1000) / ms).toFixed(1)} MiB/s, ${r.chunkSize}-byte chunks, ${r.inFlight} in flight)`;
    return timings.upload;
  },
);

check(`files: ${SEED_MIB} MiB guest-to-host copy, md5 verified`, ['files'], async () => {
  const dest = path.join(path.dirname(disk.path), 'down.bin');
  const t = Date.now();
  const r = await client().copyFrom(`${DATA}/down.bin`, dest);
  const ms = Date.now() - t;
  const got = fs.readFileSync(dest);
  assert(got.length === SEED_MIB << 20, `copied ${got.length} bytes`);
  assert(md5(got) === disk.seedMd5, `host md5 of the copy ${md5(got)}, seed ${disk.seedMd5}`);
  const sum = await ok('get-file-md5sum', { path: `${DATA}/down.bin` });
  assert(sum === disk.seedMd5, `guest md5 ${String(sum)}, seed ${disk.seedMd5}`);
  timings.download = `${ms} ms (${((SEED_MIB * 1000) / ms).toFixed(1)} MiB/s, ${r.chunkSize}-byte reads, ${r.inFlight} in flight)`;
  return timings.download;
});

type Stat = { name: string; isdir: boolean; stat: { Mode: number; Uid: number; Gid: number; Size: number } };
check('files: mkdir -p, stat, chmod, chown, ls on the guest disk', ['files'], async () => {
  assert((await ok('directory-create', { path: `${DATA}/a/b/c`, perm: 0o750 })) === true, 'directory-create');
  const d = (await ok('file-stat', { path: `${DATA}/a/b/c` })) as Stat;
  assert(
    d.isdir && d.name === 'c' && (d.stat.Mode & 0o777) === 0o750,
    `file-stat of the new dir: ${JSON.stringify(d)}`,
  );
  const f0 = (await ok('file-stat', { path: `${DATA}/down.bin` })) as Stat;
  assert(!f0.isdir && f0.stat.Size === SEED_MIB << 20, `file-stat down.bin: ${JSON.stringify(f0)}`);
  assert((await ok('file-chmod', { path: `${DATA}/down.bin`, perm: 0o600 })) === true, 'file-chmod');
  assert((await ok('file-chown', { path: `${DATA}/down.bin`, uid: 1234, gid: 5678 })) === true, 'file-chown');
  const f = (await ok('file-stat', { path: `${DATA}/down.bin` })) as Stat;
  assert((f.stat.Mode & 0o777) === 0o600, `mode after chmod ${(f.stat.Mode & 0o777).toString(8)}`);
  assert(f.stat.Uid === 1234 && f.stat.Gid === 5678, `owner after chown ${f.stat.Uid}:${f.stat.Gid}`);
  const list = (await ok('directory-list', { path: DATA })) as Stat[];
  const names = list.map((e) => e.name).sort();
  for (const n of ['a', 'down.bin', 'lost+found', 'ticks'])
    assert(names.includes(n), `directory-list lacks ${n}: ${names.join(' ')}`);
  const one = (await ok('directory-list', { path: DATA, n: 1 })) as Stat[];
  assert(one.length === 1, `directory-list n=1 gave ${one.length}`);
  await expectError(
    'file-stat',
    { path: `${DATA}/nope` },
    2,
    /no such file or directory/,
    'file-stat of a missing path',
  );
  await expectError(
    'file-chmod',
    { path: `${DATA}/down.bin`, perm: '0600' },
    -1,
    /Invalid argument "perm"/,
    'file-chmod with a string perm',
  );
  return names.join(' ');
});

// The freeze proof needs no other group: the host reads the guest's disk image itself with
// debugfs. A frozen ext4 is flushed and its journal checkpointed, so what debugfs sees then is
// what a snapshot would hold; to see the writer's stamps after a thaw, freeze briefly again.
async function frozenSnapshot(): Promise<string> {
  assert((await ok('fs-freeze')) === true, 'fs-freeze');
  try {
    return hostReadsDisk(disk.path, '/ticks');
  } finally {
    assert((await ok('fs-unfreeze')) === true, 'fs-unfreeze');
  }
}

/** A command this tree refuses while frozen (harmless with a path argument). */
const refusedWhileFrozen = allCommands.find((c) => !c.allowWhileFrozen && c.name !== 'agent-shutdown')?.name;

check('freeze: default rules freeze the guest disk; the writer stalls until fs-unfreeze', ['freeze'], async () => {
  assert((await ok('get-freeze-status')) === false, 'frozen before fs-freeze');
  const t = Date.now();
  let snap = '';
  assert((await ok('fs-freeze')) === true, 'fs-freeze');
  try {
    assert((await ok('get-freeze-status')) === true, 'get-freeze-status after fs-freeze');
    if (refusedWhileFrozen) {
      await expectError(
        refusedWhileFrozen,
        { path: DATA },
        undefined,
        new RegExp(`All filesystems are frozen. Cannot execute: ${refusedWhileFrozen}`),
        `${refusedWhileFrozen} while frozen`,
      );
    }
    // Frozen means flushed and stable: the host sees the same file twice, 3 s apart.
    const snapA = hostReadsDisk(disk.path, '/ticks');
    await sleep(3000);
    const snapB = hostReadsDisk(disk.path, '/ticks');
    assert(stamps(snapA).length > 0, 'the host sees no ticks on the frozen disk');
    assert(snapA === snapB, `the disk changed while frozen (${snapA.length} -> ${snapB.length} bytes)`);
    snap = snapA;
  } finally {
    assert((await ok('fs-unfreeze')) === true, 'fs-unfreeze');
  }
  const held = (Date.now() - t) / 1000;
  assert((await ok('get-freeze-status')) === false, 'still frozen after fs-unfreeze');
  await sleep(1500);
  const later = await frozenSnapshot();
  assert(later.startsWith(snap), 'what the host saw while frozen is not a prefix of the file after the thaw');
  const after = stamps(later.slice(snap.length));
  assert(after.length >= 3, `the writer did not resume after fs-unfreeze (${after.length} new stamps)`);
  const gap = maxGap(stamps(later));
  assert(gap >= held * 0.6, `largest gap between writer stamps ${gap.toFixed(2)} s, freeze held ${held.toFixed(1)} s`);
  const pace = medianGap(stamps(later));
  assert(gap >= 4 * pace, `largest gap ${gap.toFixed(2)} s is not much above the writer's pace ${pace.toFixed(2)} s`);
  return `held ${held.toFixed(1)} s, writer gap ${gap.toFixed(1)} s (pace ${pace.toFixed(2)} s), host saw ${stamps(snap).length} stamps unchanged`;
});

check(`freeze: auto-thaw after --freeze-timeout ${FREEZE_TIMEOUT_S} s without fs-unfreeze`, ['freeze'], async () => {
  const t = Date.now();
  assert((await ok('fs-freeze')) === true, 'fs-freeze');
  const before = stamps(hostReadsDisk(disk.path, '/ticks')).length;
  let thawed = false;
  try {
    while (Date.now() - t < 40_000) {
      if ((await ok('get-freeze-status')) === false) {
        thawed = true;
        break;
      }
      await sleep(250);
    }
  } finally {
    if (!thawed)
      await client()
        .call('fs-unfreeze')
        .catch(() => {});
  }
  const s = (Date.now() - t) / 1000;
  assert(thawed, `still frozen after ${s.toFixed(1)} s`);
  assert(
    s >= FREEZE_TIMEOUT_S - 1 && s <= FREEZE_TIMEOUT_S + 12,
    `thawed after ${s.toFixed(1)} s, timeout is ${FREEZE_TIMEOUT_S} s`,
  );
  await sleep(1500);
  const all = stamps(await frozenSnapshot());
  assert(all.length > before + 3, 'the writer did not resume after the auto-thaw');
  const gap = maxGap(all.slice(Math.max(0, before - 1)));
  assert(gap >= (FREEZE_TIMEOUT_S - 1) * 0.6, `largest gap ${gap.toFixed(2)} s: the disk was not really frozen`);
  return `thawed after ${s.toFixed(1)} s, writer gap ${gap.toFixed(1)} s`;
});

type Iface = { name: string; hwaddr: string; flags: string; ips: string[] };
type Route = { ifname: string; dst: { ip: string; mask: string }; gateway: string; src: string };
const eth0 = async () => {
  const list = (await ok('get-netifaces')) as Iface[];
  const e = list.find((i) => i.name === 'eth0');
  assert(e, `no eth0 in ${JSON.stringify(list.map((i) => i.name))}`);
  return e;
};
check('net: get-netifaces shows eth0 with the MAC given to QEMU', ['net'], async () => {
  const list = (await ok('get-netifaces')) as Iface[];
  const lo = list.find((i) => i.name === 'lo');
  assert(lo && lo.flags.split('|').includes('loopback'), `lo: ${JSON.stringify(lo)}`);
  const e = await eth0();
  assert(e.hwaddr === GUEST_MAC, `eth0 hwaddr ${e.hwaddr}, QEMU gave ${GUEST_MAC}`);
  return `eth0 ${e.hwaddr} [${e.flags}]`;
});

check('net: net-iface-up, ipaddr-add, route-add, get-route-list, route-del, ipaddr-del on eth0', ['net'], async () => {
  assert((await ok('net-iface-up', { ifname: 'eth0' })) === true, 'net-iface-up');
  assert((await eth0()).flags.split('|').includes('up'), 'eth0 not up after net-iface-up');
  assert((await ok('ipaddr-add', { ip: '192.0.2.10/24', ifname: 'eth0' })) === true, 'ipaddr-add v4');
  assert((await ok('ipaddr-add', { ip: '2001:db8::10/64', ifname: 'eth0' })) === true, 'ipaddr-add v6');
  const ips = (await eth0()).ips;
  assert(ips.includes('192.0.2.10/24') && ips.includes('2001:db8::10/64'), `eth0 ips ${ips.join(' ')}`);
  assert(
    (await ok('route-add', { ifname: 'eth0', dst: '198.51.100.0/24', gateway: '192.0.2.1' })) === true,
    'route-add',
  );
  const has = (rs: Route[]) =>
    rs.some(
      (r) =>
        r.ifname === 'eth0' &&
        r.dst.ip === '198.51.100.0' &&
        r.dst.mask === '255.255.255.0' &&
        r.gateway === '192.0.2.1',
    );
  assert(has((await ok('get-route-list', { family: 2 })) as Route[]), 'the added route is not in get-route-list');
  await expectError(
    'route-add',
    { ifname: 'eth0', dst: '198.51.100.0/24', gateway: '192.0.2.1' },
    17,
    /exists/,
    'route-add twice',
  );
  assert(
    (await ok('route-del', { ifname: 'eth0', dst: '198.51.100.0/24', gateway: '192.0.2.1' })) === true,
    'route-del',
  );
  assert(!has((await ok('get-route-list', { family: 2 })) as Route[]), 'the route is still listed after route-del');
  assert((await ok('ipaddr-del', { ip: '2001:db8::10/64', ifname: 'eth0' })) === true, 'ipaddr-del');
  assert(!(await eth0()).ips.includes('2001:db8::10/64'), 'address still there after ipaddr-del');
  await expectError(
    'ipaddr-add',
    { ip: '192.0.2.11/24', ifname: 'nosuch0' },
    undefined,
    /nosuch0|no such/i,
    'ipaddr-add on a missing interface',
  );
});

check('net: net-iface-down and net-iface-up on eth0', ['net'], async () => {
  assert((await ok('net-iface-down', { ifname: 'eth0' })) === true, 'net-iface-down');
  assert(!(await eth0()).flags.split('|').includes('up'), 'eth0 still up after net-iface-down');
  assert((await ok('net-iface-up', { ifname: 'eth0' })) === true, 'net-iface-up');
  assert((await eth0()).flags.split('|').includes('up'), 'eth0 not up after net-iface-up');
});

// --- the qemu-ga port: org.qemu.guest_agent.0, served by the same agent as the phoenix port ----
type QgaInfo = { version: string; supported_commands: { name: string; enabled: boolean }[] };

check('qemu-ga port: guest-sync-delimited, guest-ping, guest-info from the agent serving both ports', [], async () => {
  const q = await qga();
  const pong = await q.ok('guest-ping');
  assert(JSON.stringify(pong) === '{}', `guest-ping answered ${JSON.stringify(pong)}`);
  const info = await q.ok<QgaInfo>('guest-info');
  const listed = info.supported_commands.map((c) => c.name);
  const missing = qgaListed.filter((n) => !listed.includes(n));
  assert(missing.length === 0, `the packed agent's guest-info lacks ${missing.join(', ')}`);
  // One process: /init started one agent, and it serves both ports, each in its protocol.
  const text = qemu.consoleText();
  for (const re of [
    /serving on port \/dev\/vport\d+p\d+ \(phoenix\)/,
    /serving on port \/dev\/vport\d+p\d+ \(qemu-ga\)/,
  ])
    assert(re.test(text), `the console does not show ${re}`);
  assert(agentStarts().length === 1, `/init started ${agentStarts().length} agents`);
  return `guest-info version ${info.version}, ${listed.length} commands`;
});

check('both ports at once: phoenix and qemu-ga requests interleaved, every one answered', [], async () => {
  const q = await qga();
  const N = 40;
  const phoenix = Promise.all(Array.from({ length: N }, () => client().ping({ timeout: 20_000 })));
  const qemuGa = (async () => {
    for (let i = 0; i < N; i++) {
      const id = ++syncId;
      assert((await q.ok('guest-sync', { id })) === id, `guest-sync ${id}`);
    }
  })();
  await Promise.all([phoenix, qemuGa]);
  return `${N} phoenix pings and ${N} guest-syncs`;
});

qgaCheck(
  'one freeze state for both ports: phoenix fs-freeze seen and thawed by qemu-ga, and the other way round',
  ['freeze'],
  ['guest-fsfreeze-status', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw'],
  async () => {
    const q = await qga();
    assert((await q.ok('guest-fsfreeze-status')) === 'thawed', 'qemu-ga sees a freeze before any');
    let frozen = (await ok('fs-freeze')) === true;
    try {
      assert(frozen, 'fs-freeze');
      const st = await q.ok('guest-fsfreeze-status');
      assert(st === 'frozen', `guest-fsfreeze-status ${JSON.stringify(st)} while phoenix holds the freeze`);
      const n = await q.ok<number>('guest-fsfreeze-thaw');
      assert(typeof n === 'number' && n >= 1, `guest-fsfreeze-thaw thawed ${JSON.stringify(n)}`);
      frozen = false;
      assert((await ok('get-freeze-status')) === false, 'phoenix still sees a freeze qemu-ga thawed');
      // The other way round: qemu-ga freezes (the guest's disk among what it selects), phoenix thaws.
      const m = await q.ok<number>('guest-fsfreeze-freeze');
      frozen = true;
      assert(typeof m === 'number' && m >= 1, `guest-fsfreeze-freeze froze ${JSON.stringify(m)}`);
      assert((await ok('get-freeze-status')) === true, 'phoenix does not see the freeze qemu-ga made');
      const snapA = hostReadsDisk(disk.path, '/ticks');
      await sleep(1500);
      assert(snapA === hostReadsDisk(disk.path, '/ticks'), 'the disk changed while qemu-ga held it frozen');
      assert((await ok('fs-unfreeze')) === true, 'fs-unfreeze');
      frozen = false;
      assert((await q.ok('guest-fsfreeze-status')) === 'thawed', 'qemu-ga still sees the freeze phoenix thawed');
      return `phoenix froze, qemu-ga thawed ${n}; qemu-ga froze ${m}, phoenix thawed`;
    } finally {
      if (frozen)
        await client()
          .call('fs-unfreeze')
          .catch(() => {});
    }
  },
);

// --- qemu-ga's commands that act on the machine: here, in the guest, on the qemu-ga port ------
// Never on the test machine itself (test/helpers/qemu-ga.ts). Each is shown by what the guest
// and the host then see: the host's reads of the disk image, /sys and /etc/shadow in the guest
// through guest-exec, QEMU's monitor.

/** What the host reads of /ticks while qemu-ga holds the guest disk frozen (guest-fsfreeze-freeze-list). */
async function qgaFrozenSnapshot(): Promise<string> {
  const q = await qga();
  const n = await q.ok<number>('guest-fsfreeze-freeze-list', { mountpoints: [DATA] });
  try {
    assert(n === 1, `guest-fsfreeze-freeze-list [${DATA}] froze ${JSON.stringify(n)}`);
    return hostReadsDisk(disk.path, '/ticks');
  } finally {
    await q.ok('guest-fsfreeze-thaw');
  }
}

/** A qemu-ga command that qemu-ga refuses while frozen (it allows only the sync, ping, info, status and thaw). */
const qgaRefusedWhileFrozen =
  allQgaCommands.find((c) => c.name === 'guest-get-time' && !c.allowWhileFrozen)?.name ??
  allQgaCommands.find((c) => !c.allowWhileFrozen && QGA_ORDER.includes(c.name))?.name;

qgaCheck(
  'qemu-ga: guest-fsfreeze-freeze freezes the guest disk (the writer stalls, other commands are refused) until guest-fsfreeze-thaw',
  [],
  ['guest-fsfreeze-freeze', 'guest-fsfreeze-freeze-list', 'guest-fsfreeze-status', 'guest-fsfreeze-thaw'],
  async () => {
    const q = await qga();
    assert((await q.ok('guest-fsfreeze-status')) === 'thawed', 'frozen before guest-fsfreeze-freeze');
    const t = Date.now();
    let frozen = false;
    let snap = '';
    try {
      const n = await q.ok<number>('guest-fsfreeze-freeze');
      frozen = true;
      assert(n === 1, `guest-fsfreeze-freeze froze ${JSON.stringify(n)}: the guest has one disk filesystem, ${DATA}`);
      const st = await q.ok('guest-fsfreeze-status');
      assert(st === 'frozen', `guest-fsfreeze-status ${JSON.stringify(st)} after guest-fsfreeze-freeze`);
      if (qgaRefusedWhileFrozen) {
        const a = await q.call(qgaRefusedWhileFrozen);
        const desc = `Command ${qgaRefusedWhileFrozen} has been disabled: the agent is in frozen state`;
        assert(isQgaError(a, 'CommandNotFound', desc), `${qgaRefusedWhileFrozen} while frozen: ${JSON.stringify(a)}`);
        const info = await q.ok<QgaInfo>('guest-info');
        const enabled = (n: string) => info.supported_commands.find((c) => c.name === n)?.enabled;
        assert(
          enabled(qgaRefusedWhileFrozen) === false && enabled('guest-fsfreeze-thaw') === true,
          `guest-info while frozen: ${qgaRefusedWhileFrozen} enabled ${enabled(qgaRefusedWhileFrozen)}, guest-fsfreeze-thaw ${enabled('guest-fsfreeze-thaw')}`,
        );
      }
      const snapA = hostReadsDisk(disk.path, '/ticks');
      await sleep(3000);
      const snapB = hostReadsDisk(disk.path, '/ticks');
      assert(stamps(snapA).length > 0, 'the host sees no ticks on the frozen disk');
      assert(
        snapA === snapB,
        `the disk changed while qemu-ga held it frozen (${snapA.length} -> ${snapB.length} bytes)`,
      );
      snap = snapA;
      const m = await q.ok<number>('guest-fsfreeze-thaw');
      frozen = false;
      assert(m === 1, `guest-fsfreeze-thaw thawed ${JSON.stringify(m)}`);
    } finally {
      if (frozen) await q.call('guest-fsfreeze-thaw').catch(() => {});
    }
    const held = (Date.now() - t) / 1000;
    assert((await q.ok('guest-fsfreeze-status')) === 'thawed', 'still frozen after guest-fsfreeze-thaw');
    await sleep(1500);
    const later = await qgaFrozenSnapshot();
    assert(later.startsWith(snap), 'what the host saw while frozen is not a prefix of the file after the thaw');
    const after = stamps(later.slice(snap.length));
    assert(after.length >= 3, `the writer did not resume after guest-fsfreeze-thaw (${after.length} new stamps)`);
    const gap = maxGap([...stamps(snap).slice(-1), ...after]);
    assert(
      gap >= held * 0.6,
      `largest gap between writer stamps ${gap.toFixed(2)} s, freeze held ${held.toFixed(1)} s`,
    );
    // A mount point the guest does not have: nothing to freeze, and the agent stays thawed.
    const none = await q.ok<number>('guest-fsfreeze-freeze-list', { mountpoints: ['/no/such/mount'] });
    const st = await q.ok('guest-fsfreeze-status');
    if (st !== 'thawed') await q.call('guest-fsfreeze-thaw');
    assert(none === 0 && st === 'thawed', `freeze-list of a missing mount point: ${none}, then ${JSON.stringify(st)}`);
    return `froze 1, held ${held.toFixed(1)} s, writer gap ${gap.toFixed(1)} s${qgaRefusedWhileFrozen ? `, ${qgaRefusedWhileFrozen} refused meanwhile` : ''}`;
  },
);

/** Bytes of the guest disk's image file the host has allocated (a discard in the guest punches holes: discard=unmap). */
const allocated = () => fs.statSync(disk.path).blocks * 512;
const MiB = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

type Trim = { paths: { path: string; trimmed?: number; minimum?: number; error?: string }[] };
qgaCheck(
  'qemu-ga: guest-fstrim discards the free blocks of the guest disk (the host sees its image file shrink)',
  [],
  ['guest-fstrim', 'guest-exec', 'guest-exec-status'],
  async () => {
    const q = await qga();
    const n = 16;
    await guestShOk(
      `dd if=/dev/urandom of=${DATA}/trim.bin bs=1M count=${n} 2>/dev/null && sync && rm ${DATA}/trim.bin && sync`,
      60_000,
    );
    const before = allocated();
    const r = await q.ok<Trim>('guest-fstrim', undefined, 60_000);
    const after = allocated();
    assert(r.paths.length === 1, `guest-fstrim paths ${JSON.stringify(r.paths)}: the guest has one disk filesystem`);
    const [p] = r.paths;
    assert(
      p.path === DATA && p.error === undefined && p.minimum === 0 && (p.trimmed ?? 0) >= n << 20,
      `guest-fstrim: ${JSON.stringify(p)}, after ${n} MiB written and removed`,
    );
    assert(
      before - after >= (n - 4) << 20,
      `the image file holds ${MiB(before)} before guest-fstrim and ${MiB(after)} after: ${n} MiB were freed in the guest`,
    );
    const r2 = await q.ok<Trim>('guest-fstrim', { minimum: 1 << 20 }, 60_000);
    assert(
      r2.paths.length === 1 && r2.paths[0].minimum === 1 << 20 && typeof r2.paths[0].trimmed === 'number',
      `guest-fstrim minimum 1 MiB: ${JSON.stringify(r2)}`,
    );
    return `trimmed ${MiB(p.trimmed!)}; the image file went from ${MiB(before)} to ${MiB(after)} allocated`;
  },
);

qgaCheck(
  'qemu-ga: guest-set-time sets the clock and the RTC (guest-get-time, date, /sys/class/rtc); without time, the clock from the RTC; refused without hwclock',
  [],
  ['guest-set-time', 'guest-get-time', 'guest-exec', 'guest-exec-status'],
  async () => {
    const q = await qga();
    const T1 = Date.UTC(2031, 2, 4, 5, 6, 7) / 1000;
    const clock = async () => Number(await q.ok<number>('guest-get-time')) / 1e9;
    /** Since `since` (host ms), the guest clock set to `base` must read base plus the time gone, give or take. */
    const near = (got: number, base: number, since: number, what: string) => {
      const hi = base + (Date.now() - since) / 1000 + 2;
      assert(got >= base - 2 && got <= hi, `${what}: ${got.toFixed(1)}, expected ${base} to ${hi.toFixed(1)}`);
    };
    const tb = Date.now();
    const before = await clock();
    // Without hwclock(8) qemu-ga refuses both forms and leaves the clock alone: shown with the
    // guest's (busybox's) moved aside for the time of it, when the guest has one.
    const hasHwclock = (await guestSh('[ -x /sbin/hwclock ]')).code === 0;
    if (hasHwclock) await guestShOk('mv /sbin/hwclock /sbin/hwclock.away');
    try {
      for (const args of [{ time: T1 * 1e9 }, undefined]) {
        const a = await q.call('guest-set-time', args);
        const desc = 'this feature or command is not currently supported';
        assert(isQgaError(a, 'GenericError', desc), `guest-set-time without /sbin/hwclock: ${JSON.stringify(a)}`);
      }
    } finally {
      if (hasHwclock) await guestShOk('mv /sbin/hwclock.away /sbin/hwclock');
    }
    near(await clock(), Math.floor(before), tb, 'the guest clock after the refused guest-set-time');
    if (!hasHwclock) return 'the guest has no /sbin/hwclock: refused as qemu-ga refuses it';
    let detail = '';
    try {
      const t1 = Date.now();
      const set = await q.ok('guest-set-time', { time: T1 * 1e9 });
      assert(JSON.stringify(set) === '{}', `guest-set-time answered ${JSON.stringify(set)}`);
      near(await clock(), T1, t1, 'guest-get-time after guest-set-time');
      const [date, rtc] = (await guestShOk('date +%s; cat /sys/class/rtc/rtc0/since_epoch'))
        .trim()
        .split('\n')
        .map(Number);
      near(date, T1, t1, "the guest's date");
      near(rtc, T1, t1, "the guest's RTC (hwclock -w)");
      // The system clock alone moved back to 2000; guest-set-time without time takes the RTC's (hwclock -s).
      await guestShOk('date -u -s @946684800 >/dev/null');
      const moved = await clock();
      assert(moved < 946684800 + 60, `the guest clock did not move to 2000: ${moved}`);
      assert(JSON.stringify(await q.ok('guest-set-time')) === '{}', 'guest-set-time without time');
      const back = await clock();
      near(back, T1, t1, 'guest-get-time after guest-set-time without time (from the RTC)');
      const bad = await q.call('guest-set-time', { time: (Date.UTC(2100, 0, 1) / 1000) * 1e9 });
      assert(isQgaError(bad, 'GenericError', 'Invalid time'), `guest-set-time to 2100: ${JSON.stringify(bad)}`);
      detail = `set ${new Date(T1 * 1000).toISOString()} (date and RTC agree), from the RTC ${new Date(back * 1000).toISOString()}`;
    } finally {
      // The host's time again, for the clock and the RTC.
      await q.ok('guest-set-time', { time: Date.now() * 1e6 });
    }
    const t2 = Date.now();
    near(await clock(), Math.floor(t2 / 1000), t2, 'the guest clock set back to the host time');
    const rtc = Number(await guestShOk('cat /sys/class/rtc/rtc0/since_epoch'));
    near(rtc, Math.floor(t2 / 1000), t2, 'the RTC set back to the host time');
    return `${detail}, then the host's time`;
  },
);

type Vcpu = { 'logical-id': number; online: boolean; 'can-offline'?: boolean };
qgaCheck(
  'qemu-ga: guest-set-vcpus takes cpu1 offline and back (guest-get-vcpus and /sys agree); cpu0 cannot go',
  [],
  ['guest-set-vcpus', 'guest-get-vcpus', 'guest-exec', 'guest-exec-status'],
  async () => {
    const q = await qga();
    const vcpus = async () => (await q.ok<Vcpu[]>('guest-get-vcpus')).sort((a, b) => a['logical-id'] - b['logical-id']);
    const sysOnline = async () => (await guestShOk('cat /sys/devices/system/cpu/online')).trim();
    const v = await vcpus();
    assert(
      v.length === GUEST_SMP && v.every((c) => c.online),
      `guest-get-vcpus ${JSON.stringify(v)}: QEMU gave the guest ${GUEST_SMP}`,
    );
    assert(v[0]['can-offline'] === false && v[1]['can-offline'] === true, `can-offline: ${JSON.stringify(v)}`);
    assert((await sysOnline()) === '0-1', 'cpus online in /sys before');
    try {
      assert((await q.ok('guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: false }] })) === 1, 'offline cpu1');
      const off = await vcpus();
      assert(!off[1].online && off[0].online, `guest-get-vcpus after offlining cpu1: ${JSON.stringify(off)}`);
      assert((await sysOnline()) === '0', 'cpu1 still online in /sys/devices/system/cpu/online');
      // Done in order up to the first that fails: cpu1 back online, then cpu0 refused.
      const both = await q.ok('guest-set-vcpus', {
        vcpus: [
          { 'logical-id': 1, online: true },
          { 'logical-id': 0, online: false },
        ],
      });
      assert(both === 1, `guest-set-vcpus cpu1 online then cpu0 offline: ${JSON.stringify(both)}`);
      const a = await q.call('guest-set-vcpus', { vcpus: [{ 'logical-id': 0, online: false }] });
      assert(
        isQgaError(a, 'GenericError', "logical processor #0 can't be offlined"),
        `cpu0 offline: ${JSON.stringify(a)}`,
      );
    } finally {
      await q.call('guest-set-vcpus', { vcpus: [{ 'logical-id': 1, online: true }] });
    }
    assert((await sysOnline()) === '0-1', 'cpu1 not back online in /sys');
    assert(
      (await vcpus()).every((c) => c.online),
      'guest-get-vcpus: not every cpu online again',
    );
    return 'cpu1 offline (/sys: 0), online again (/sys: 0-1); cpu0 refused';
  },
);

qgaCheck(
  "qemu-ga: guest-set-user-password changes the user's /etc/shadow entry (raw and crypted); bad input refused",
  [],
  ['guest-set-user-password', 'guest-exec', 'guest-exec-status'],
  async () => {
    const q = await qga();
    const hash = async () => {
      const line = (await guestShOk('cat /etc/shadow')).split('\n').find((l) => l.startsWith('ember:'));
      assert(line, "no ember entry in the guest's /etc/shadow");
      return line.split(':')[1];
    };
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const before = await hash();
    const password = 'Qga-s3t-by-the-h0st';
    const r = await q.ok('guest-set-user-password', { username: 'ember', password: b64(password), crypted: false });
    assert(JSON.stringify(r) === '{}', `guest-set-user-password answered ${JSON.stringify(r)}`);
    const raw = await hash();
    assert(
      raw !== before && /^\$6\$[^$]+\$/.test(raw),
      `ember's hash ${JSON.stringify(before)} -> ${JSON.stringify(raw)}`,
    );
    // The hash is of that password: the guest's mkpasswd, given the same salt, makes the same.
    const salt = raw.split('$')[2];
    const again = (await guestShOk(`mkpasswd -m sha512 -S '${salt}' '${password}'`)).trim();
    assert(again === raw, `mkpasswd of the password with salt ${salt}: ${again}, shadow has ${raw}`);
    const crypted = `$6$embersalt$${'x'.repeat(86)}`;
    await q.ok('guest-set-user-password', { username: 'ember', password: b64(crypted), crypted: true });
    assert((await hash()) === crypted, 'a crypted password is not stored as given');
    const cases: [Record<string, unknown>, string][] = [
      [{ username: 'nosuchuser', password: b64('x'), crypted: false }, 'child process has failed to set user password'],
      [{ username: 'ember', password: b64('two\nlines'), crypted: false }, 'forbidden characters in raw password'],
    ];
    for (const [args, desc] of cases) {
      const a = await q.call('guest-set-user-password', args);
      assert(
        isQgaError(a, 'GenericError', desc),
        `guest-set-user-password ${JSON.stringify(args)}: ${JSON.stringify(a)}`,
      );
    }
    assert((await hash()) === crypted, 'a refused request changed the shadow entry');
    return `ember: ${before} -> ${raw.slice(0, 16)}... (mkpasswd agrees), then the crypted one as given`;
  },
);

type MemBlock = { 'phys-index': number; online: boolean; 'can-offline'?: boolean };
type MemResult = { 'phys-index': number; response: string; 'error-code'?: number };
// Memory the host hot-plugs (a DIMM through QEMU's monitor) and asks the agent to bring online,
// as hosts use this command. Not the guest's boot memory: offlining a block the kernel cannot
// empty loops in the kernel until a fatal signal, in qemu-ga as in the agent. The guest onlines
// it movable (memory_hotplug.online_policy=auto-movable), so it empties again.
qgaCheck(
  'qemu-ga: guest-set-memory-blocks brings a hot-plugged DIMM online and offline again (/sys and MemTotal agree); a missing block is not-found',
  [],
  ['guest-set-memory-blocks', 'guest-get-memory-blocks', 'guest-exec', 'guest-exec-status'],
  async () => {
    const q = await qga();
    if ((await guestSh('[ -d /sys/devices/system/memory ]')).code !== 0) {
      // no memory hotplug in this kernel: qemu-ga's answer for it
      const set = await q.ok<MemResult[]>('guest-set-memory-blocks', {
        'mem-blks': [{ 'phys-index': 1, online: true }],
      });
      assert(set[0]?.response === 'operation-not-supported', `without memory hotplug: ${JSON.stringify(set)}`);
      return 'no /sys/devices/system/memory: operation-not-supported';
    }
    const blocks = async () => q.ok<MemBlock[]>('guest-get-memory-blocks');
    const boot = await blocks();
    assert(boot.length > 0 && boot.every((b) => b.online), `boot memory blocks: ${JSON.stringify(boot)}`);
    const state = async (i: number) => (await guestShOk(`cat /sys/devices/system/memory/memory${i}/state`)).trim();
    const memTotal = async () => Number(/^MemTotal:\s+(\d+) kB/m.exec(await guestShOk('cat /proc/meminfo'))![1]) * 1024;
    const blockSize = parseInt((await guestShOk('cat /sys/devices/system/memory/block_size_bytes')).trim(), 16);
    const set = async (blks: { 'phys-index': number; online: boolean }[]) =>
      q.ok<MemResult[]>('guest-set-memory-blocks', { 'mem-blks': blks }, 60_000);
    // The host plugs a DIMM of one block; the guest's kernel adds it offline.
    const m = await monitor();
    await m.execute('object-add', { 'qom-type': 'memory-backend-ram', id: 'hotmem0', size: blockSize });
    await m.execute('device_add', { driver: 'pc-dimm', id: 'dimm0', memdev: 'hotmem0' });
    let added: MemBlock | undefined;
    const end = Date.now() + 30_000;
    while (!(added = (await blocks()).find((b) => !boot.some((x) => x['phys-index'] === b['phys-index'])))) {
      assert(Date.now() < end, 'no new memory block in guest-get-memory-blocks 30 s after the DIMM was plugged');
      await sleep(250);
    }
    const i = added['phys-index'];
    assert(!added.online && (await state(i)) === 'offline', `the hot-plugged memory${i}: ${JSON.stringify(added)}`);
    const total = await memTotal();
    const on = await set([{ 'phys-index': i, online: true }]);
    assert(on.length === 1 && on[0].response === 'success', `memory${i} online: ${JSON.stringify(on)}`);
    assert((await state(i)) === 'online', `memory${i} not online in /sys`);
    const more = (await memTotal()) - total;
    assert(more === blockSize, `MemTotal went up by ${more} bytes, the block is ${blockSize}`);
    assert((await blocks()).find((b) => b['phys-index'] === i)?.online === true, 'guest-get-memory-blocks: not online');
    // Each block gets its own result: this one offline, one already online, one that is not there.
    const off = await set([
      { 'phys-index': i, online: false },
      { 'phys-index': boot[0]['phys-index'], online: true },
      { 'phys-index': 4096, online: false },
    ]);
    const want = [
      { 'phys-index': i, response: 'success' },
      { 'phys-index': boot[0]['phys-index'], response: 'success' },
      { 'phys-index': 4096, response: 'not-found', 'error-code': 2 },
    ];
    const canon = (rs: MemResult[]) => JSON.stringify(rs.map((r) => [r['phys-index'], r.response, r['error-code']]));
    assert(canon(off) === canon(want), `guest-set-memory-blocks ${JSON.stringify(off)}`);
    assert((await state(i)) === 'offline', `memory${i} not offline in /sys`);
    assert((await memTotal()) === total, 'MemTotal not back after offlining');
    return `DIMM plugged: memory${i} offline, online (MemTotal +${MiB(blockSize)}), offline again; memory4096 not-found`;
  },
);

qgaCheck(
  "qemu-ga: guest-suspend-ram suspends the guest to RAM (S3, no answer) until QEMU's system_wakeup; the writer stalls meanwhile",
  [],
  ['guest-suspend-ram', 'guest-fsfreeze-freeze-list', 'guest-fsfreeze-thaw', 'guest-exec', 'guest-exec-status'],
  async () => {
    const q = await qga();
    const m = await monitor();
    const from = m.events.length;
    const before = stamps(await qgaFrozenSnapshot()).length;
    q.send('{"execute":"guest-suspend-ram"}\n');
    const suspended = await m.waitEvent('SUSPEND', from, 60_000);
    let woken = false;
    try {
      const st = await m.execute<{ status: string }>('query-status');
      assert(st.status === 'suspended', `QEMU's status ${st.status} after the SUSPEND event`);
      await sleep(3000);
      await m.execute('system_wakeup');
      woken = true;
    } finally {
      if (!woken) await m.execute('system_wakeup').catch(() => {});
    }
    const wakeup = await m.waitEvent('WAKEUP', from, 30_000);
    const held = (wakeup.at - suspended.at) / 1000;
    // guest-suspend-* answer nothing on success; after the resume the agent answers the next request.
    const early = await q.drain(1000);
    assert(early.length === 0, `an answer to guest-suspend-ram: ${JSON.stringify(early.toString())}`);
    assert(JSON.stringify(await q.ok('guest-ping', undefined, 30_000)) === '{}', 'guest-ping after the resume');
    const dmesg = await guestShOk('dmesg');
    for (const re of [
      /ACPI: PM: Preparing to enter system sleep state S3/,
      /ACPI: PM: Waking up from system sleep state S3/,
    ])
      assert(re.test(dmesg), `the guest's kernel log lacks ${re}`);
    await sleep(1500);
    const all = stamps(await qgaFrozenSnapshot());
    assert(all.length > before + 3, 'the writer did not resume after the wakeup');
    const gap = maxGap(all.slice(Math.max(0, before - 1)));
    assert(gap >= held * 0.6, `largest gap between writer stamps ${gap.toFixed(2)} s, suspended ${held.toFixed(1)} s`);
    return `SUSPEND event, suspended ${held.toFixed(1)} s, WAKEUP; writer gap ${gap.toFixed(1)} s`;
  },
);

qgaCheck(
  "qemu-ga: guest-suspend-disk with no swap: the kernel starts hibernating, cannot make or write the image and resumes; qemu-ga's error",
  [],
  ['guest-suspend-disk', 'guest-exec', 'guest-exec-status'],
  async () => {
    const q = await qga();
    const m = await monitor();
    const from = m.events.length;
    assert((await guestShOk('cat /proc/swaps')).trim().split('\n').length === 1, 'the guest has swap');
    const a = await q.call('guest-suspend-disk', undefined, 120_000);
    const desc = 'child process has failed to suspend';
    assert(isQgaError(a, 'GenericError', desc), `guest-suspend-disk: ${JSON.stringify(a)}`);
    // Where it stops depends on free memory: no room for the image, or no swap to write it to.
    const log = (await guestShOk('dmesg')).split('\n').filter((l) => /PM: hibernation|PM: Cannot/.test(l));
    const at = (re: RegExp) => log.findIndex((l) => re.test(l));
    const entry = at(/PM: hibernation: hibernation entry/);
    const exit = at(/PM: hibernation: hibernation exit/);
    assert(
      entry >= 0 && exit > entry,
      `the guest's kernel log shows no hibernation entry and exit:\n${log.join('\n')}`,
    );
    const why = log
      .slice(entry, exit)
      .find((l) => /pages short|Cannot find swap device|Cannot get swap writer/.test(l));
    assert(why, `no reason for the failed hibernation in the guest's kernel log:\n${log.join('\n')}`);
    const st = await m.execute<{ status: string }>('query-status');
    assert(st.status === 'running', `QEMU's status ${st.status}`);
    assert(!m.events.slice(from).some((e) => e.event === 'SHUTDOWN'), 'QEMU saw a shutdown');
    return `${desc} (the kernel: ${why.replace(/^\[[^\]]*\]\s*/, '')})`;
  },
);

qgaCheck(
  'qemu-ga: guest-suspend-hybrid is refused (no systemd, no pm-utils, and /sys/power/state has no hybrid)',
  [],
  ['guest-suspend-hybrid'],
  async () => {
    const a = await (await qga()).call('guest-suspend-hybrid');
    const desc = 'the requested suspend mode is not supported by the guest';
    assert(isQgaError(a, 'GenericError', desc), `guest-suspend-hybrid: ${JSON.stringify(a)}`);
    return desc;
  },
);

check('port: the host closes and reopens the socket; the agent idles meanwhile and answers again', [], async () => {
  // Measured between the first and the last agent-cpu line printed while the host is away.
  const from = qemu.consoleText().length;
  const q1 = qemu.cpuSeconds();
  const t1 = Date.now();
  await disconnect();
  await sleep(6500);
  const samples = agentCpu(from);
  const qemuCpu = (qemu.cpuSeconds() - q1) / ((Date.now() - t1) / 1000);
  const back = Date.now();
  await pingUntil(20_000);
  const firstAnswerMs = Date.now() - back;
  // The port's waiters woken by the host's return wake the agent at once (native/port_link.h),
  // not its backoff timer (up to 500 ms later), which says so in its log. The log reaches the
  // serial console after the ping's answer has come back over virtio, at times: wait for it.
  await consoleShows(/host connected on /, from, 5000, "the agent's log once the host is back");
  const said = qemu.consoleText().slice(from);
  assert(!/found by the backoff check/.test(said), `the host's return did not wake the agent: ${tail(said)}`);
  assert(samples.length >= 2, `${samples.length} agent-cpu lines while the host was away`);
  const g1 = samples[0];
  const g2 = samples[samples.length - 1];
  assert(g2.pid === g1.pid, `the agent restarted while the host was away (pid ${g1.pid} -> ${g2.pid})`);
  assert(g2.uptime - g1.uptime >= 3, `agent-cpu samples only ${(g2.uptime - g1.uptime).toFixed(1)} s apart`);
  // USER_HZ is 100. A spinning agent uses ~100% in every interval; an idle one ~0%, with at
  // most a lone burst (a garbage collection), hence the median per interval and a loose mean.
  const cpu = (g2.ticks - g1.ticks) / 100 / (g2.uptime - g1.uptime);
  const per = samples
    .slice(1)
    .map((x, i) => (x.ticks - samples[i].ticks) / 100 / (x.uptime - samples[i].uptime))
    .sort((a, b) => a - b);
  const median = per[per.length >> 1];
  const detail = `agent CPU in the guest over ${(g2.uptime - g1.uptime).toFixed(1)} s disconnected: ${(cpu * 100).toFixed(1)}% mean, ${(median * 100).toFixed(1)}% median per second; QEMU used ${(qemuCpu * 100).toFixed(1)}% of a host core; the first ping after, connection included, answered in ${firstAnswerMs} ms`;
  assert(median < 0.05 && cpu < 0.25, `the agent spun while disconnected: ${detail}`);
  return detail;
});

check(
  `port: an atomic upload survives the host reconnecting within --host-gone-timeout (${HOST_GONE_S} s), and is discarded after a longer absence`,
  ['files'],
  async () => {
    const f = `${DATA}/host-gone.txt`;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const put = async (text: string) => {
      const h = await ok<number>('file-open', { path: f, mode: 'w' });
      await ok('file-write', { handle_id: h, bufb64: b64(text), eof: true });
    };
    await put('before');
    // Away for a second: the port hangs up and comes back, and the upload goes on.
    const h = await ok<number>('file-open', { path: f, mode: 'w', atomic: true });
    await ok('file-write', { handle_id: h, bufb64: b64('one ') });
    await disconnect();
    await sleep(1000);
    await pingUntil(20_000);
    await ok('file-write', { handle_id: h, bufb64: b64('two'), eof: true });
    let sum = await ok('get-file-md5sum', { path: f });
    assert(sum === md5(Buffer.from('one two')), `after a brief absence: md5 ${String(sum)}, not that of "one two"`);
    // Away for longer than the timeout: the session is over and its upload is discarded.
    const from = qemu.consoleText().length;
    const lost = await ok<number>('file-open', { path: f, mode: 'w', atomic: true });
    await ok('file-write', { handle_id: lost, bufb64: b64('lost') });
    await disconnect();
    await sleep((HOST_GONE_S + 3) * 1000);
    await pingUntil(20_000);
    await expectError(
      'file-write',
      { handle_id: lost, bufb64: b64('late') },
      undefined,
      /was discarded when the host that opened it went away/,
      'a write after the discard',
    );
    sum = await ok('get-file-md5sum', { path: f });
    assert(sum === md5(Buffer.from('one two')), `after a long absence the file changed: md5 ${String(sum)}`);
    const said = qemu.consoleText().slice(from);
    assert(
      /host gone: discarding the unfinished atomic upload to \/mnt\/data\/host-gone\.txt/.test(said),
      `no discard on the console:\n${tail(said, 1500)}`,
    );
    return `kept across a 1 s absence; discarded after ${HOST_GONE_S + 3} s away`;
  },
);

check('agent-shutdown: answers true, exits, and /init restarts it', [], async () => {
  const before = agentStarts();
  assert(before.length >= 1, 'no "ember-ga started" line on the console');
  assert((await ok('agent-shutdown')) === true, 'agent-shutdown');
  await sleep(500);
  await pingUntil(30_000);
  const after = agentStarts();
  assert(after.length === before.length + 1, `/init started the agent ${after.length - before.length} more times`);
  assert(
    new RegExp(`^init: ember-ga \\(pid ${before[before.length - 1]}\\) exited with 0;`, 'm').test(qemu.consoleText()),
    'the old agent did not exit with status 0',
  );
  return `pid ${before[before.length - 1]} exited 0, pid ${after[after.length - 1]} answers`;
});

// Last of the first guest: guest-shutdown, reboot then power-off.
qgaCheck(
  'qemu-ga: guest-shutdown reboot: refused without /sbin/shutdown; with it no answer, the guest reboots (QEMU RESET event), /init and the agent come back',
  [],
  ['guest-shutdown'],
  async () => {
    const q = await qga();
    const m = await monitor();
    const from = m.events.length;
    const console0 = qemu.consoleText().length;
    const starts = agentStarts().length;
    // Without /sbin/shutdown: qemu-ga's error, and nothing happens.
    await guestShOk('mv /sbin/shutdown /sbin/shutdown.away');
    let refused;
    try {
      refused = await q.call('guest-shutdown', { mode: 'reboot' });
    } finally {
      await guestShOk('mv /sbin/shutdown.away /sbin/shutdown');
    }
    const desc = 'child process has failed to shutdown';
    assert(
      isQgaError(refused, 'GenericError', desc),
      `guest-shutdown without /sbin/shutdown: ${JSON.stringify(refused)}`,
    );
    assert(!m.events.slice(from).some((e) => e.event === 'RESET'), 'the guest reset without /sbin/shutdown');
    q.send('{"execute":"guest-shutdown","arguments":{"mode":"reboot"}}\n');
    const reset = await m.waitEvent('RESET', from, 60_000);
    assert(reset.data?.guest === true, `RESET event ${JSON.stringify(reset.data)}`);
    const early = await q.drain(0);
    assert(early.length === 0, `an answer to guest-shutdown: ${JSON.stringify(early.toString())}`);
    await disconnect();
    const t = Date.now();
    await pingUntil(REBOOT_DEADLINE_MS);
    const boot = (Date.now() - t) / 1000;
    await qga();
    const said = qemu.consoleText().slice(console0);
    for (const re of [
      /^shutdown: -h -r \+0 hypervisor initiated shutdown/m,
      /^init: reboot requested/m,
      /reboot: Restarting system/,
      /^init: up after/m,
    ])
      assert(re.test(said), `the console does not show ${re}`);
    assert(agentStarts().length === starts + 1, 'no new agent start after the reboot');
    assert(!qemu.exited, 'QEMU exited instead of rebooting');
    return `without /sbin/shutdown "${desc}"; then a RESET event, answering again ${boot.toFixed(1)} s later`;
  },
  checks,
  REBOOT_DEADLINE_MS + 90_000,
);

qgaCheck(
  'qemu-ga: guest-shutdown (powerdown): no answer; /init unmounts the disk and powers off; QEMU exits 0; the disk is clean',
  [],
  ['guest-shutdown'],
  async () => {
    const q = await qga();
    const m = await monitor();
    const from = m.events.length;
    const console0 = qemu.consoleText().length;
    q.send('{"execute":"guest-shutdown"}\n');
    const down = await m.waitEvent('SHUTDOWN', from, 60_000);
    assert(
      down.data?.guest === true && down.data.reason === 'guest-shutdown',
      `SHUTDOWN event ${JSON.stringify(down.data)}`,
    );
    const end = Date.now() + 30_000;
    while (!qemu.exited && Date.now() < end) await sleep(100);
    assert(qemu.exited, 'QEMU still running 30 s after the SHUTDOWN event');
    assert(qemu.exitStatus === 0, `QEMU exited with ${qemu.exitStatus}`);
    const early = await q.drain(0);
    assert(early.length === 0, `an answer to guest-shutdown: ${JSON.stringify(early.toString())}`);
    const said = qemu.consoleText().slice(console0);
    for (const re of [/^init: poweroff requested/m, /^init: poweroff now/m, /reboot: Power down/])
      assert(re.test(said), `the console does not show ${re}`);
    assert(!/cannot unmount/.test(said), 'init could not unmount the disk');
    const fsState = execFileSync('dumpe2fs', ['-h', disk.path], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    assert(/^Filesystem state:\s+clean$/m.test(fsState), 'the disk is not clean after the power-off');
    assert(!/needs_recovery/.test(fsState), 'the disk needs journal recovery after the power-off');
    return 'SHUTDOWN event (guest-shutdown), QEMU exited 0, the disk clean';
  },
);

// --- the systemd guest: the shipped unit and udev rule under Debian's systemd and udev --------
// A second boot (vm/systemd-layer.sh): nothing but the rule starts the agent there.

/** Starts of ember-ga.service systemd logged after console offset `from` (journald forwards its log to the console). */
function unitStarts(from = 0): number {
  return [
    ...qemu
      .consoleText()
      .slice(from)
      .matchAll(/systemd\[1\]: Started ember-ga\.service/g),
  ].length;
}

/** Waits until the console, after offset `from`, matches `re`: journald forwards its log a little after the fact. */
async function consoleShows(re: RegExp, from: number, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(qemu.consoleText().slice(from))) {
    if (Date.now() > end) throw new Error(`${what}: the console did not show ${re} within ${ms} ms`);
    await sleep(100);
  }
}

const systemdChecks: Check[] = [];
check(
  'systemd: the udev rule starts ember-ga.service when the port appears, and it answers',
  [],
  async () => {
    await pingUntil(SYSTEMD_BOOT_DEADLINE_MS);
    const boot = (Date.now() - qemu.startedAt) / 1000;
    await consoleShows(/systemd\[1\]: Started ember-ga\.service/, 0, 10_000, 'the unit start');
    await consoleShows(
      /serving on port \/dev\/virtio-ports\/org\.guest-agent\.0/,
      0,
      10_000,
      'the agent on the port the unit names',
    );
    assert(unitStarts() === 1, `expected one "Started ember-ga.service", got ${unitStarts()}`);
    assert(!/^init: /m.test(qemu.consoleText()), "busybox's /init ran: this guest must boot systemd");
    return `first ping answered ${boot.toFixed(1)} s after QEMU started`;
  },
  systemdChecks,
);
check(
  'systemd: the same unit serves org.qemu.guest_agent.0 (qemu-ga) beside the phoenix port',
  [],
  async () => {
    const q = await qga();
    const pong = await q.ok('guest-ping');
    assert(JSON.stringify(pong) === '{}', `guest-ping answered ${JSON.stringify(pong)}`);
    await consoleShows(
      /serving on port \/dev\/virtio-ports\/org\.qemu\.guest_agent\.0 \(qemu-ga\)/,
      0,
      10_000,
      "the agent on the qemu-ga port, at udev's symlink",
    );
    assert(unitStarts() === 1, `expected one "Started ember-ga.service" for both ports, got ${unitStarts()}`);
    return 'one unit start, both ports served';
  },
  systemdChecks,
);
check(
  'systemd: Restart=always brings the agent back after agent-shutdown (exit 0)',
  [],
  async () => {
    const from = qemu.consoleText().length;
    assert((await ok('agent-shutdown')) === true, 'agent-shutdown');
    await sleep(500);
    await pingUntil(30_000);
    await consoleShows(/ember-ga\.service: Deactivated successfully/, from, 10_000, 'the agent exiting 0');
    await consoleShows(/ember-ga\.service: Scheduled restart job/, from, 10_000, 'the restart (Restart=always)');
    await consoleShows(/systemd\[1\]: Started ember-ga\.service/, from, 10_000, 'the unit starting again');
    assert(unitStarts(from) === 1, `systemd started the unit ${unitStarts(from)} times after the shutdown`);
    return 'exited 0, restarted by systemd, answers';
  },
  systemdChecks,
);

// --- the libvirt guest: libvirtd boots the first guest's image and drives ember-ga with virsh ---
// A third boot (vm/libvirt.ts): libvirtd and virtlogd started by this test in a mount namespace
// of their own, a transient domain (TCG, direct kernel boot) with a <channel type='unix'> for
// each port. libvirt talks to org.qemu.guest_agent.0 itself; the project's client talks phoenix
// on org.guest-agent.0 (client() above, on the channel's socket). Each virsh command is gated on
// the qemu-ga commands libvirt sends for it: skipped, saying which, while this tree lacks them.

const DOMAIN = 'ember-ga-test';
let lv: Libvirt | undefined;
/** The libvirt guest, once created: the phoenix channel's socket, its console. */
let lvGuest: { phoenixSocket: string; consoleLog: string; createdAt: number } | undefined;

function lvConsole(): string {
  try {
    return fs.readFileSync(lvGuest!.consoleLog, 'utf8');
  } catch {
    return '';
  }
}

/** virsh ARGS for the libvirt guest, which must succeed: its output. */
async function virsh(args: string[], ms = 60_000): Promise<string> {
  const mine = checkGuest.getStore();
  if (mine !== undefined && mine !== liveGuest)
    throw new Error('a check of an earlier guest, still running after its timeout');
  return lv!.ok(args, ms);
}

/** `virsh qemu-agent-command`: libvirt syncs with the agent, sends the command, prints the answer. */
async function agentCommand<T = unknown>(execute: string, args?: Record<string, unknown>, timeoutS = 30): Promise<T> {
  const out = await virsh(
    [
      'qemu-agent-command',
      DOMAIN,
      '--timeout',
      String(timeoutS),
      JSON.stringify(args ? { execute, arguments: args } : { execute }),
    ],
    (timeoutS + 30) * 1000,
  );
  const a = JSON.parse(out) as { return?: T };
  assert('return' in a, `${execute} through libvirt: ${out}`);
  return a.return as T;
}

/** `sh -c SCRIPT` in the libvirt guest: guest-exec and guest-exec-status through `virsh qemu-agent-command`. */
async function lvGuestSh(script: string, ms = 30_000): Promise<string> {
  const { pid } = await agentCommand<{ pid: number }>('guest-exec', {
    path: '/bin/sh',
    arg: ['-c', script],
    'capture-output': true,
  });
  const end = Date.now() + ms;
  for (;;) {
    const st = await agentCommand<{ exited: boolean; exitcode?: number; 'out-data'?: string; 'err-data'?: string }>(
      'guest-exec-status',
      { pid },
    );
    const text = (b?: string) => Buffer.from(b ?? '', 'base64').toString('utf8');
    if (st.exited) {
      assert(
        st.exitcode === 0,
        `${JSON.stringify(script)} in the libvirt guest: exit ${st.exitcode}: ${text(st['err-data'])}`,
      );
      return text(st['out-data']);
    }
    if (Date.now() > end)
      throw new Error(`${JSON.stringify(script)} in the libvirt guest: still running after ${ms} ms`);
    await sleep(200);
  }
}

/** `virsh domstate`, polled until it is `want`. */
async function domstateUntil(want: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  let last = '';
  while ((last = (await virsh(['domstate', DOMAIN])).trim()) !== want) {
    if (Date.now() > end) throw new Error(`virsh domstate: ${last}, not ${want} within ${ms} ms`);
    await sleep(250);
  }
}

/** After a check that failed while frozen: thaws through libvirt, and through phoenix (one freeze state for both). */
async function unfreezeAll(): Promise<void> {
  await lv!.virsh(['domfsthaw', DOMAIN], 30_000);
  await client()
    .call('fs-unfreeze')
    .catch(() => {});
}

/** Skips the check (SkipCheck) unless this tree has every one of the qemu-ga commands. */
function needQga(...names: string[]): void {
  const absent = names.filter((n) => !qgaNames.includes(n));
  if (absent.length) throw new SkipCheck(`qemu-ga ${absent.join(', ')} not in this tree yet`);
}

/** The `key : value` lines virsh prints (guestinfo, guestvcpus). */
function virshFields(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

const libvirtChecks: Check[] = [];
check(
  'libvirt: the domain boots under libvirtd (TCG, direct kernel boot); virsh qemu-agent-command guest-ping answers',
  [],
  async () => {
    const end = lvGuest!.createdAt + LIBVIRT_BOOT_DEADLINE_MS;
    let last = '';
    for (;;) {
      const r = await lv!.virsh(['qemu-agent-command', DOMAIN, '--timeout', '5', '{"execute":"guest-ping"}'], 30_000);
      if (r.code === 0) {
        assert(JSON.parse(r.out).return !== undefined, `guest-ping through libvirt: ${r.out}`);
        break;
      }
      last = r.err || r.out; // "QEMU guest agent is not connected" until the agent opens the port
      if (Date.now() > end) throw new Error(`no guest-ping answer through libvirt in time (last: ${last})`);
      await sleep(1000);
    }
    const boot = (Date.now() - lvGuest!.createdAt) / 1000;
    timings.lvBoot = `${boot.toFixed(1)} s`;
    const text = lvConsole();
    for (const re of [
      /serving on port \/dev\/vport\d+p\d+ \(phoenix\)/,
      /serving on port \/dev\/vport\d+p\d+ \(qemu-ga\)/,
    ])
      assert(re.test(text), `the libvirt guest's console does not show ${re}`);
    return `first guest-ping through libvirt ${boot.toFixed(1)} s after virsh create (libvirtd started in ${timings.libvirtd})`;
  },
  libvirtChecks,
);
check(
  'libvirt: qemu-agent-command guest-info lists every qemu-ga command; a phoenix host on the other channel at the same time',
  [],
  async () => {
    // Phoenix pings one after another on org.guest-agent.0 for as long as libvirt asks guest-info
    // on org.qemu.guest_agent.0 (and 20 at least): some must be answered while virsh is at work.
    let virshBusy: [number, number] = [Infinity, Infinity];
    const answeredAt: number[] = [];
    let stop = false;
    const phoenix = (async () => {
      while (!stop || answeredAt.length < 20) {
        await client().ping({ timeout: 20_000 });
        answeredAt.push(Date.now());
      }
    })();
    try {
      const t = Date.now();
      virshBusy = [t, Infinity];
      for (let i = 0; i < 10; i++) {
        const info = await agentCommand<QgaInfo>('guest-info');
        const listed = info.supported_commands.map((c) => c.name);
        const missing = qgaListed.filter((n) => !listed.includes(n));
        assert(missing.length === 0, `guest-info through libvirt lacks ${missing.join(', ')}`);
        assert(info.version === '7.2.0', `guest-info version ${info.version}`);
      }
      virshBusy = [t, Date.now()];
    } finally {
      stop = true;
      await phoenix;
    }
    const during = answeredAt.filter((at) => at >= virshBusy[0] && at <= virshBusy[1]).length;
    assert(
      during >= 1,
      `no phoenix ping answered during the ${virshBusy[1] - virshBusy[0]} ms of guest-info through libvirt`,
    );
    return `10 guest-info through libvirt in ${virshBusy[1] - virshBusy[0]} ms, ${during} phoenix pings answered meanwhile`;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh domtime (guest-get-time) is the host clock, near enough',
  [],
  async () => {
    needQga('guest-get-time');
    const out = await virsh(['domtime', DOMAIN]);
    const m = /Time:\s*(\d+)/.exec(out);
    assert(m, `virsh domtime printed ${JSON.stringify(out)}`);
    const skew = Number(m[1]) - Date.now() / 1000;
    assert(
      Math.abs(skew) < 60,
      `guest clock ${m[1]}, host ${Math.round(Date.now() / 1000)}: ${skew.toFixed(0)} s apart`,
    );
    return `guest ${m[1]}, ${skew.toFixed(1)} s from the host`;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh guestinfo, every kind this tree serves',
  [],
  async () => {
    // Each kind, the qemu-ga command libvirt sends for it, and a field it must print.
    const kinds: [string, string, RegExp | undefined][] = [
      ['--hostname', 'guest-get-host-name', /^hostname : ember-ga-vm$/m],
      ['--user', 'guest-get-users', /^user\.count : \d+$/m],
      ['--os', 'guest-get-osinfo', undefined], // the busybox image has no os-release: whatever it says
      ['--timezone', 'guest-get-timezone', /^timezone\.offset : -?\d+$/m],
      ['--filesystem', 'guest-get-fsinfo', /^fs\.count : [1-9]\d*$/m],
      ['--disk', 'guest-get-disks', /^disk\.count : [1-9]\d*$/m],
      ['--interface', 'guest-network-get-interfaces', /^if\.count : [1-9]\d*$/m],
    ];
    const present = kinds.filter(([, cmd]) => qgaNames.includes(cmd));
    if (present.length === 0) throw new SkipCheck(`qemu-ga ${kinds.map((k) => k[1]).join(', ')} not in this tree yet`);
    const out = (await virsh(['guestinfo', DOMAIN, ...present.map((k) => k[0])])).replace(/[ \t]+:/g, ' :');
    for (const [flag, , re] of present) if (re) assert(re.test(out), `guestinfo ${flag}: no ${re} in\n${out}`);
    if (/fs\.count/.test(out))
      assert(/^fs\.\d+\.mountpoint : \/mnt\/data$/m.test(out), `guestinfo --filesystem lacks /mnt/data:\n${out}`);
    const absent = kinds.filter((k) => !present.includes(k)).map((k) => k[0]);
    return `${present.map((k) => k[0]).join(' ')}${absent.length ? ` (not yet: ${absent.join(' ')})` : ''}`;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh domhostname --source agent',
  [],
  async () => {
    needQga('guest-get-host-name');
    const out = (await virsh(['domhostname', DOMAIN, '--source', 'agent'])).trim();
    assert(out === 'ember-ga-vm', `domhostname ${JSON.stringify(out)}`);
    return out;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh guestvcpus',
  [],
  async () => {
    needQga('guest-get-vcpus');
    const f = virshFields(await virsh(['guestvcpus', DOMAIN]));
    assert(
      f.get('vcpus') === '0-1' && f.get('online') === '0-1' && f.get('offlinable') === '1',
      `guestvcpus: ${JSON.stringify([...f])}`,
    );
    return `vcpus ${f.get('vcpus')}, online ${f.get('online')}`;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh domifaddr --source agent',
  [],
  async () => {
    needQga('guest-network-get-interfaces');
    const out = await virsh(['domifaddr', DOMAIN, '--source', 'agent']);
    assert(/^\s*lo\s+\S+\s+ipv4\s+127\.0\.0\.1\/8\s*$/m.test(out), `domifaddr lacks lo's 127.0.0.1/8:\n${out}`);
    return out.trim().split('\n').length + ' lines';
  },
  libvirtChecks,
);
check(
  'libvirt: virsh domfsinfo shows the guest disk mounted on /mnt/data, mapped to vda',
  [],
  async () => {
    needQga('guest-get-fsinfo');
    const out = await virsh(['domfsinfo', DOMAIN]);
    const line = out.split('\n').find((l) => l.trim().split(/\s+/)[0] === DATA);
    assert(line, `domfsinfo lacks ${DATA}:\n${out}`);
    const [, , type, target] = line.trim().split(/\s+/);
    assert(type === 'ext4' && target === 'vda', `domfsinfo ${DATA}: type ${type}, target ${target}`);
    return line.trim().replace(/\s+/g, ' ');
  },
  libvirtChecks,
);
check(
  'libvirt: domfsfreeze stops the writer (a phoenix host sees the freeze), domfsthaw resumes it',
  ['freeze'],
  async () => {
    needQga('guest-fsfreeze-freeze', 'guest-fsfreeze-thaw');
    const t = Date.now();
    let froze = '';
    let snap = '';
    let thawed = false;
    try {
      froze = await virsh(['domfsfreeze', DOMAIN]);
      assert(/Froze [1-9]\d* filesystem/.test(froze), `domfsfreeze: ${froze}`);
      assert((await ok('get-freeze-status')) === true, 'the phoenix host does not see the freeze libvirt made');
      const snapA = hostReadsDisk(disk.path, '/ticks');
      await sleep(2500);
      const snapB = hostReadsDisk(disk.path, '/ticks');
      assert(stamps(snapA).length > 0, 'the host sees no ticks on the frozen disk');
      assert(
        snapA === snapB,
        `the disk changed while libvirt held it frozen (${snapA.length} -> ${snapB.length} bytes)`,
      );
      snap = snapA;
      const out = await virsh(['domfsthaw', DOMAIN]);
      assert(/Thawed [1-9]\d* filesystem/.test(out), `domfsthaw: ${out}`);
      thawed = true;
    } finally {
      if (!thawed) await unfreezeAll();
    }
    const held = (Date.now() - t) / 1000;
    assert((await ok('get-freeze-status')) === false, 'the phoenix host still sees a freeze after domfsthaw');
    await sleep(1500);
    const later = await frozenSnapshot();
    assert(later.startsWith(snap), 'what the host saw while frozen is not a prefix of the file after the thaw');
    const after = stamps(later.slice(snap.length));
    assert(after.length >= 3, `the writer did not resume after domfsthaw (${after.length} new stamps)`);
    // This boot's stamps around the freeze (the disk also holds the first guest's).
    const gap = maxGap([...stamps(snap).slice(-1), ...after]);
    assert(
      gap >= held * 0.6,
      `largest gap between writer stamps ${gap.toFixed(2)} s, freeze held ${held.toFixed(1)} s`,
    );
    return `${froze.trim()}; held ${held.toFixed(1)} s, writer gap ${gap.toFixed(1)} s`;
  },
  libvirtChecks,
);
check(
  'libvirt: while libvirt holds the guest frozen, a phoenix fs-unfreeze thaws it',
  ['freeze'],
  async () => {
    needQga('guest-fsfreeze-freeze', 'guest-fsfreeze-thaw', 'guest-fsfreeze-status');
    let thawed = false;
    try {
      await virsh(['domfsfreeze', DOMAIN]);
      assert((await ok('get-freeze-status')) === true, 'the phoenix host does not see the freeze libvirt made');
      assert((await ok('fs-unfreeze')) === true, 'fs-unfreeze');
      thawed = true;
    } finally {
      if (!thawed) await unfreezeAll();
    }
    const st = await agentCommand('guest-fsfreeze-status');
    assert(st === 'thawed', `guest-fsfreeze-status through libvirt ${JSON.stringify(st)} after the phoenix thaw`);
    await sleep(1000);
    const all = stamps(await frozenSnapshot());
    assert(all.length > 0, 'no writer stamps after the thaw');
    return 'libvirt froze, phoenix thawed, libvirt sees it thawed';
  },
  libvirtChecks,
);
check(
  `libvirt: domfsfreeze --mountpoint ${DATA} (guest-fsfreeze-freeze-list)`,
  ['freeze'],
  async () => {
    needQga('guest-fsfreeze-freeze-list', 'guest-fsfreeze-thaw');
    let out = '';
    let thawed = false;
    try {
      out = await virsh(['domfsfreeze', DOMAIN, '--mountpoint', DATA]);
      assert(/Froze 1 filesystem/.test(out), `domfsfreeze --mountpoint: ${out}`);
      assert((await ok('get-freeze-status')) === true, 'the phoenix host does not see the freeze');
      const thaw = await virsh(['domfsthaw', DOMAIN]);
      assert(/Thawed 1 filesystem/.test(thaw), `domfsthaw: ${thaw}`);
      thawed = true;
    } finally {
      if (!thawed) await unfreezeAll();
    }
    return out.trim();
  },
  libvirtChecks,
);
check(
  "libvirt: virsh set-user-password changes the user's entry in the guest's /etc/shadow",
  ['files'],
  async () => {
    needQga('guest-set-user-password');
    const shadow = async () => {
      const dest = path.join(path.dirname(disk.path), 'shadow');
      await client().copyFrom('/etc/shadow', dest);
      const line = fs
        .readFileSync(dest, 'utf8')
        .split('\n')
        .find((l) => l.startsWith('ember:'));
      assert(line, 'no ember entry in the guest /etc/shadow');
      return line.split(':')[1];
    };
    const before = await shadow();
    await virsh(['set-user-password', DOMAIN, 'ember', 'n3w-Passw0rd']);
    const after = await shadow();
    assert(
      after !== before && /^\$6\$/.test(after),
      `ember's hash ${JSON.stringify(before)} -> ${JSON.stringify(after)}`,
    );
    return `ember: ${before} -> ${after.slice(0, 12)}...`;
  },
  libvirtChecks,
);
check(
  "libvirt: virsh domtime --time sets the guest clock and RTC, --sync takes the clock back from the RTC, --now the host's",
  [],
  async () => {
    needQga('guest-set-time', 'guest-get-time', 'guest-exec', 'guest-exec-status');
    const T1 = Date.UTC(2031, 2, 4, 5, 6, 7) / 1000;
    const domtime = async () => Number(/Time:\s*(\d+)/.exec(await virsh(['domtime', DOMAIN]))?.[1]);
    const near = (got: number, base: number, since: number, what: string) => {
      const hi = base + (Date.now() - since) / 1000 + 2;
      assert(got >= base - 2 && got <= hi, `${what}: ${got}, expected ${base} to ${hi.toFixed(1)}`);
    };
    let detail = '';
    try {
      const t1 = Date.now();
      await virsh(['domtime', DOMAIN, '--time', String(T1)]);
      near(await domtime(), T1, t1, 'virsh domtime after --time');
      near(Number(await lvGuestSh('cat /sys/class/rtc/rtc0/since_epoch')), T1, t1, "the guest's RTC after --time");
      // The system clock alone back to 2000; --sync (guest-set-time without time) reads the RTC.
      await lvGuestSh('date -u -s @946684800 >/dev/null');
      assert((await domtime()) < 946684800 + 60, 'the guest clock did not move to 2000');
      await virsh(['domtime', DOMAIN, '--sync']);
      near(await domtime(), T1, t1, 'virsh domtime after --sync');
      detail = `--time ${new Date(T1 * 1000).toISOString()}, --sync from the RTC`;
    } finally {
      await virsh(['domtime', DOMAIN, '--now']);
    }
    const t2 = Date.now();
    near(await domtime(), Math.floor(t2 / 1000), t2, 'virsh domtime after --now');
    return `${detail}, --now the host's time`;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh setvcpus --guest 1 takes cpu1 offline in the guest, 2 brings it back (guestvcpus and /sys agree)',
  [],
  async () => {
    needQga('guest-get-vcpus', 'guest-set-vcpus', 'guest-exec', 'guest-exec-status');
    const online = async () => virshFields(await virsh(['guestvcpus', DOMAIN])).get('online');
    const sys = async () => (await lvGuestSh('cat /sys/devices/system/cpu/online')).trim();
    try {
      await virsh(['setvcpus', DOMAIN, '1', '--guest']);
      const [o, s1] = [await online(), await sys()];
      assert(o === '0' && s1 === '0', `after setvcpus 1 --guest: guestvcpus online ${o}, /sys ${s1}`);
    } finally {
      await virsh(['setvcpus', DOMAIN, String(GUEST_SMP), '--guest']);
    }
    const [o, s2] = [await online(), await sys()];
    assert(o === '0-1' && s2 === '0-1', `after setvcpus ${GUEST_SMP} --guest: guestvcpus online ${o}, /sys ${s2}`);
    return 'online 0, then 0-1';
  },
  libvirtChecks,
);
check(
  'libvirt: virsh domfstrim discards the freed blocks of the guest disk (the host sees its image file shrink)',
  [],
  async () => {
    needQga('guest-fstrim', 'guest-exec', 'guest-exec-status');
    const n = 16;
    await lvGuestSh(
      `dd if=/dev/urandom of=${DATA}/trim.bin bs=1M count=${n} 2>/dev/null && sync && rm ${DATA}/trim.bin && sync`,
      60_000,
    );
    const before = allocated();
    await virsh(['domfstrim', DOMAIN], 120_000);
    const after = allocated();
    assert(
      before - after >= (n - 4) << 20,
      `the image file holds ${MiB(before)} before domfstrim and ${MiB(after)} after: ${n} MiB were freed in the guest`,
    );
    return `the image file went from ${MiB(before)} to ${MiB(after)} allocated`;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh dompmsuspend mem suspends the guest (pmsuspended) until dompmwakeup; the writer stalls meanwhile',
  ['freeze'],
  async () => {
    needQga('guest-suspend-ram');
    const before = stamps(await frozenSnapshot()).length;
    const t = Date.now();
    let woken = false;
    try {
      await virsh(['dompmsuspend', DOMAIN, 'mem'], 60_000);
      await domstateUntil('pmsuspended', 60_000);
      await sleep(3000);
      await virsh(['dompmwakeup', DOMAIN]);
      woken = true;
    } finally {
      if (!woken) await lv!.virsh(['dompmwakeup', DOMAIN]);
    }
    await domstateUntil('running', 30_000);
    const held = (Date.now() - t) / 1000;
    // The guest's resume resets the virtio-serial device: QEMU reports the agent's port closed,
    // libvirt drops its agent, and takes it back when the guest driver reopens the port (the
    // agent keeps its descriptor throughout). Until then virsh says "not connected".
    const woke = Date.now();
    let reconnected: number | undefined;
    while (reconnected === undefined) {
      try {
        assert(JSON.stringify(await agentCommand('guest-ping')) === '{}', 'guest-ping through libvirt after wakeup');
        reconnected = (Date.now() - woke) / 1000;
      } catch (e) {
        if (!/not connected/.test(String(e)) || Date.now() - woke > 30_000) throw e;
        await sleep(250);
      }
    }
    await sleep(1500);
    const all = stamps(await frozenSnapshot());
    assert(all.length > before + 3, 'the writer did not resume after the wakeup');
    const gap = maxGap(all.slice(Math.max(0, before - 1)));
    assert(gap >= 3 * 0.6, `largest gap between writer stamps ${gap.toFixed(2)} s: the guest did not sleep`);
    return `pmsuspended, woken after ${held.toFixed(1)} s; agent back through libvirt ${reconnected.toFixed(1)} s after; writer gap ${gap.toFixed(1)} s`;
  },
  libvirtChecks,
);
// Last but one: the domain runs on the snapshot's overlay afterwards, so the host's view of the
// disk image (debugfs) is the snapshot from then on.
check(
  'libvirt: a disk-only snapshot with --quiesce (frozen for it, thawed after; the snapshot needs no journal recovery)',
  ['freeze'],
  async () => {
    needQga('guest-fsfreeze-freeze', 'guest-fsfreeze-thaw');
    const overlay = path.join(path.dirname(disk.path), 'lv-snap.qcow2');
    const features = () =>
      /^Filesystem features:(.*)$/m
        .exec(
          execFileSync('dumpe2fs', ['-h', disk.path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
        )?.[1]
        ?.trim() ?? '';
    // Mounted in the guest, the disk's ext4 needs journal recovery, as a snapshot of it would
    // unless the guest froze it for the snapshot (which flushes the journal and clears the flag).
    assert(features().includes('needs_recovery'), `the mounted disk needs no recovery: ${features()}`);
    const out = await virsh([
      'snapshot-create-as',
      DOMAIN,
      'quiesced',
      '--disk-only',
      '--quiesce',
      '--atomic',
      '--no-metadata',
      '--diskspec',
      `vda,file=${overlay}`,
    ]);
    assert(fs.existsSync(overlay), `no overlay ${overlay}: ${out}`);
    assert((await ok('get-freeze-status')) === false, 'still frozen after the snapshot');
    // The snapshot is the image below the overlay now.
    const after = features();
    assert(after.includes('has_journal'), `dumpe2fs of the snapshot: ${after}`);
    assert(!after.includes('needs_recovery'), `the snapshot needs journal recovery: not quiesced (${after})`);
    const fsck = spawnSync('e2fsck', ['-fn', disk.path], { encoding: 'utf8' });
    assert(fsck.status === 0, `e2fsck -fn of the snapshot: exit ${fsck.status}\n${fsck.stdout}${fsck.stderr}`);
    assert(stamps(hostReadsDisk(disk.path, '/ticks')).length > 0, 'the snapshot has no writer stamps');
    return `overlay ${path.basename(overlay)}; the snapshot has nothing to recover and passes e2fsck -fn`;
  },
  libvirtChecks,
);
check(
  'libvirt: virsh shutdown --mode agent (last): guest-shutdown; /init powers the guest off and the domain is gone',
  [],
  async () => {
    needQga('guest-shutdown');
    const from = lvConsole().length;
    const out = await virsh(['shutdown', DOMAIN, '--mode', 'agent']);
    const end = Date.now() + 60_000;
    while ((await virsh(['list', '--all', '--name'])).split('\n').some((l) => l.trim() === DOMAIN)) {
      assert(Date.now() < end, 'the domain still exists 60 s after virsh shutdown --mode agent');
      await sleep(250);
    }
    const said = lvConsole().slice(from);
    for (const re of [
      /^shutdown: -h -P \+0 hypervisor initiated shutdown/m,
      /^init: poweroff now/m,
      /reboot: Power down/,
    ])
      assert(re.test(said), `the libvirt guest's console does not show ${re}`);
    return out.trim();
  },
  libvirtChecks,
);

// --- the run ---------------------------------------------------------------------------------

async function main(): Promise<number> {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const fail = (name: string, e: unknown) => {
    failed++;
    console.log(`FAIL ${name}: ${(e as Error).message ?? e}`);
  };
  let watchdog: NodeJS.Timeout | undefined;
  const runDir = path.join(CACHE, `run-${process.pid}`);
  fs.mkdirSync(runDir, { recursive: true });
  scratchDirs.add(runDir);
  try {
    let image;
    try {
      image = await buildImage(CACHE, BUILD_DEADLINE_MS);
      disk = makeDisk(runDir);
    } catch (e) {
      fail('build the guest image and disk', e);
      return 1;
    }
    // The systemd guest's image too, before the guests' deadline starts; without it the first
    // guest's checks still run.
    let sdImage: Image | undefined;
    try {
      if (!SKIP.has('systemd')) sdImage = await buildSystemdImage(CACHE, image, BUILD_DEADLINE_MS);
    } catch (e) {
      fail('build the systemd guest image', e);
    }
    console.log(`image ready after ${((Date.now() - T0) / 1000).toFixed(1)} s`);
    watchdog = setTimeout(() => {
      console.log(`FAIL test:vm: the guest part took over ${RUN_DEADLINE_MS / 1000} s`);
      Qemu.killAll();
      console.log(`\n${passed} passed, ${failed + 1} failed, ${skipped} skipped`);
      process.exit(1);
    }, RUN_DEADLINE_MS);
    const runChecks = async (list: Check[], ms: number) => {
      for (const c of list) {
        const absent = c.needs.filter((g) => !inTree(g));
        if (absent.length) {
          skipped++;
          console.log(`skip ${c.name} (group ${absent.join(', ')} not in this tree yet)`);
          continue;
        }
        const absentQga = (c.qga ?? []).filter((n) => !qgaNames.includes(n));
        if (absentQga.length) {
          skipped++;
          console.log(`skip ${c.name} (qemu-ga ${absentQga.join(', ')} not in this tree yet)`);
          continue;
        }
        const t = Date.now();
        try {
          const detail = await withTimeout(
            checkGuest.run(liveGuest, () => c.fn()),
            c.ms ?? ms,
            c.name,
          );
          passed++;
          console.log(`ok   ${c.name} (${((Date.now() - t) / 1000).toFixed(1)} s)${detail ? `: ${detail}` : ''}`);
        } catch (e) {
          if (e instanceof SkipCheck) {
            skipped++;
            console.log(`skip ${c.name} (${e.message})`);
            continue;
          }
          fail(c.name, e); // the client connects again by itself if the connection was lost
        }
      }
    };
    if (!SKIP.has('plain')) {
      qemu = new Qemu(
        image,
        disk.path,
        runDir,
        path.join(CACHE, 'console.log'),
        { ember_freeze_timeout: FREEZE_TIMEOUT_S, ember_host_gone_timeout: HOST_GONE_S },
        // guest-shutdown reboot: the guest comes back; a DIMM slot for guest-set-memory-blocks
        {
          smp: GUEST_SMP,
          reboot: true,
          maxMemMiB: 768,
          append: ['memory_hotplug.online_policy=auto-movable'],
        },
      );
      try {
        await pingUntil(BOOT_DEADLINE_MS);
        const boot = (Date.now() - qemu.startedAt) / 1000;
        timings.boot = `${boot.toFixed(1)} s`;
        passed++;
        console.log(`ok   boot: first ping answered ${boot.toFixed(1)} s after QEMU started (pid ${qemu.pid})`);
      } catch (e) {
        fail('boot to first answer', e);
        console.log(`--- guest console ---\n${tail(qemu.consoleText())}`);
        return 1;
      }
      await runChecks(checks, 90_000);
      if (failed) console.log(`--- guest console (last lines) ---\n${tail(qemu.consoleText())}`);
    }

    // The systemd guest, once the first is gone (they would share the disk image).
    const failedBefore = failed;
    let stopped = false;
    if (sdImage) {
      await disconnect();
      try {
        await qemu?.killAndWait();
        stopped = true;
      } catch (e) {
        fail('stop the first guest before the systemd guest', e);
      }
    }
    if (sdImage && stopped) {
      liveGuest = 1;
      const firstConsole = qemu?.consoleLog;
      qemu = new Qemu(
        sdImage,
        disk.path,
        runDir,
        path.join(CACHE, 'console-systemd.log'),
        {},
        { memMiB: 1024, append: SYSTEMD_APPEND },
      );
      await runChecks(systemdChecks, SYSTEMD_BOOT_DEADLINE_MS + 10_000);
      if (failed > failedBefore) console.log(`--- systemd guest console (last lines) ---\n${tail(qemu.consoleText())}`);
      if (firstConsole) console.log(`guest console: ${firstConsole}`);
    }

    for (const g of SKIP) {
      skipped++;
      console.log(`skip the ${g} guest (EMBER_VM_SKIP)`);
    }
    // The libvirt guest: the first guest's image under libvirtd, once the QEMU before it is gone.
    const failedBeforeLv = failed;
    await disconnect();
    let lvReady = false;
    try {
      if (SKIP.has('libvirt')) throw new SkipCheck();
      if (qemu) console.log(`guest console: ${qemu.consoleLog}`);
      await qemu?.killAndWait();
      const missing = libvirtMissing();
      if (missing) throw new Error(`${missing} (build-image.sh installs libvirt-daemon, -driver-qemu and -clients)`);
      const t = Date.now();
      lv = await Libvirt.start(path.join(runDir, 'libvirt'), path.join(CACHE, 'libvirt-cache'), LIBVIRT_START_MS);
      timings.libvirtd = `${((Date.now() - t) / 1000).toFixed(1)} s`;
      liveGuest = 2;
      lvGuest = {
        phoenixSocket: path.join(runDir, 'lv-ga.sock'),
        consoleLog: path.join(CACHE, 'console-libvirt.log'),
        createdAt: Date.now(),
      };
      fs.rmSync(lvGuest.consoleLog, { force: true });
      await lv.create({
        name: DOMAIN,
        image,
        disk: disk.path,
        cmdline: `console=ttyS0 panic=-1 quiet ember_freeze_timeout=${FREEZE_TIMEOUT_S} ember_host_gone_timeout=${HOST_GONE_S}`,
        phoenixSocket: lvGuest.phoenixSocket,
        consoleLog: lvGuest.consoleLog,
        vcpus: GUEST_SMP,
      });
      lvGuest.createdAt = Date.now();
      lvReady = true;
    } catch (e) {
      if (!(e instanceof SkipCheck)) {
        fail('start libvirtd and virtlogd, and create the libvirt domain', e);
        if (lv) console.log(lv.logTail());
      }
    }
    if (lvReady) {
      await runChecks(libvirtChecks, LIBVIRT_BOOT_DEADLINE_MS + 10_000);
      if (failed > failedBeforeLv)
        console.log(`--- libvirt guest console (last lines) ---\n${tail(lvConsole())}\n${lv!.logTail()}`);
    }
  } finally {
    await disconnect();
    await lv?.stop();
    Qemu.killAll();
    clearTimeout(watchdog);
    fs.rmSync(runDir, { recursive: true, force: true });
    if (lvGuest) console.log(`guest console: ${lvGuest.consoleLog}`);
    else if (qemu) console.log(`guest console: ${qemu.consoleLog}`);
    if (timings.libvirtd)
      console.log(`libvirtd started in ${timings.libvirtd}; libvirt boot to guest-ping: ${timings.lvBoot ?? 'n/a'}`);
    console.log(`boot to first answer: ${timings.boot ?? 'n/a'}; total: ${((Date.now() - T0) / 1000).toFixed(1)} s`);
    console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    Qemu.killAll();
    console.log(`FAIL test:vm: ${(e as Error).stack ?? e}`);
    console.log('\n0 passed, 1 failed, 0 skipped');
    process.exit(1);
  },
);
