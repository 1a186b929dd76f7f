// sysinfo: the utmp parser (records written by glibc itself, read back by `who`), the disk list
// over a fake /sys/block and mount table, part failures, and the whole answer cross-checked
// against this machine's own tools, in-process and through a real agent.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { startAgent, tmpDir, type LineClient, type RunningAgent } from '../helpers/agent';
import { command, suite, waitFor } from '../helpers/harness';
import {
  UTMP_RECORD_SIZE,
  coalesce,
  UtType,
  encodeUtmp,
  fsSizes,
  listDisks,
  parseMountInfo,
  parseUtmp,
  readUsers,
  systemInfo,
  type SystemInfo,
  type SystemInfoPart,
  type UtmpRecord,
} from '../../lib/sysinfo';
import { sysinfoAnswer } from '../../lib/protocols/phoenix/commands/sysinfo';
import { RawJson, encodeReturn } from '../../lib/wire/answer';

interface Ctx {
  dir: string;
  agent?: RunningAgent;
}
const test = suite<Ctx>('sysinfo', {} as Ctx);

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-sysinfo-');
});
test.after(async (ctx) => {
  await ctx.agent?.stop();
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

const run = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
  execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });

// ---- utmp ------------------------------------------------------------------------------------

/** Records for a fixture: what `who` lists (USER_PROCESS) and what it must not. */
const FIXTURE: Partial<UtmpRecord>[] = [
  { type: UtType.BOOT_TIME, line: '~', user: 'reboot', host: '6.1.0', time: 1700000000 },
  {
    type: UtType.USER_PROCESS,
    pid: 101,
    line: 'pts/0',
    id: 'ts/0',
    user: 'root',
    host: '192.0.2.7',
    time: 1700000100,
    usec: 5,
  },
  { type: UtType.LOGIN_PROCESS, pid: 102, line: 'tty1', id: 'tty1', user: 'LOGIN', host: '', time: 1700000200 },
  { type: UtType.USER_PROCESS, pid: 103, line: 'tty2', id: 'tty2', user: 'alice', host: '', time: 1700000300 },
  {
    type: UtType.DEAD_PROCESS,
    pid: 104,
    line: 'pts/1',
    id: 'ts/1',
    user: 'bob',
    host: '198.51.100.9',
    time: 1700000400,
  },
  // Fields filled to the last byte (no NUL): user 32 chars, a long IPv6 host.
  {
    type: UtType.USER_PROCESS,
    pid: 105,
    line: 'pts/2',
    id: 'ts/2',
    user: 'u'.repeat(32),
    host: '2001:db8::1',
    time: 1700000500,
  },
  {
    type: UtType.USER_PROCESS,
    pid: 106,
    line: 'pts/3',
    id: 'ts/3',
    user: 'carol',
    host: 'h'.repeat(256),
    time: 1700000600,
  },
];
const REMOTE = [
  { name: 'root', device: 'pts/0', host: '192.0.2.7', login_time: 1700000100 },
  { name: 'u'.repeat(32), device: 'pts/2', host: '2001:db8::1', login_time: 1700000500 },
  { name: 'carol', device: 'pts/3', host: 'h'.repeat(256), login_time: 1700000600 },
];

/** Writes FIXTURE with glibc's own updwtmp(3), so the layout is the C library's, not ours. */
function glibcUtmp(dir: string): string {
  const src = path.join(dir, 'mkutmp.c');
  const bin = path.join(dir, 'mkutmp');
  fs.writeFileSync(
    src,
    `#include <utmp.h>
#include <stdlib.h>
#include <string.h>
/* mkutmp FILE {type pid line id user host sec usec}... */
int main(int argc, char **argv) {
  if (sizeof(struct utmp) != ${UTMP_RECORD_SIZE}) return 3;
  for (int i = 2; i + 7 < argc; i += 8) {
    struct utmp u;
    memset(&u, 0, sizeof u);
    u.ut_type = atoi(argv[i]);
    u.ut_pid = atoi(argv[i + 1]);
    strncpy(u.ut_line, argv[i + 2], sizeof u.ut_line);
    strncpy(u.ut_id, argv[i + 3], sizeof u.ut_id);
    strncpy(u.ut_user, argv[i + 4], sizeof u.ut_user);
    strncpy(u.ut_host, argv[i + 5], sizeof u.ut_host);
    u.ut_tv.tv_sec = atol(argv[i + 6]);
    u.ut_tv.tv_usec = atol(argv[i + 7]);
    updwtmp(argv[1], &u);
  }
  return 0;
}
`,
  );
  run('cc', ['-O0', '-o', bin, src]);
  const file = path.join(dir, 'utmp.glibc');
  fs.writeFileSync(file, ''); // updwtmp appends to an existing file only
  const args = FIXTURE.flatMap((r) =>
    [r.type, r.pid ?? 0, r.line ?? '', r.id ?? '', r.user ?? '', r.host ?? '', r.time ?? 0, r.usec ?? 0].map(String),
  );
  run(bin, [file, ...args]);
  return file;
}

test(
  'utmp written by glibc: our encoder writes the same bytes, the parser reads every field',
  ({ dir }) => {
    const file = glibcUtmp(dir);
    const data = fs.readFileSync(file);
    assert.is(data.length, FIXTURE.length * UTMP_RECORD_SIZE);
    assert.ok(data.equals(encodeUtmp(FIXTURE)), 'encodeUtmp matches glibc byte for byte');
    const recs = parseUtmp(data);
    assert.equal(
      recs.map((r) => [r.type, r.pid, r.line, r.id, r.user, r.host, r.time, r.usec]),
      FIXTURE.map((r) => [
        r.type,
        r.pid ?? 0,
        r.line ?? '',
        r.id ?? '',
        r.user ?? '',
        r.host ?? '',
        r.time ?? 0,
        r.usec ?? 0,
      ]),
    );
  },
  { needs: [command('cc')] },
);

test(
  'users: USER_PROCESS records with a host only; `who FILE` agrees',
  async ({ dir }) => {
    const file = glibcUtmp(dir);
    const users = await readUsers(file);
    assert.equal(users, REMOTE);
    // who lists every USER_PROCESS; the remote ones end in "(host)". In the C locale its times
    // are "%b %e %H:%M"; TZ=UTC makes them comparable.
    const who = run('who', [file], { TZ: 'UTC', LC_ALL: 'C' }).trim().split('\n');
    const remote = who.filter((l) => l.endsWith(')'));
    const fromWho = remote.map((l) => {
      const m = /^(\S+)\s+(\S+)\s+([A-Z][a-z]{2})\s+(\d{1,2}) (\d\d:\d\d)\s+\((.*)\)$/.exec(l);
      assert.ok(m, `who line: ${l}`);
      return { name: m[1], device: m[2], host: m[6], time: `${m[3]} ${m[4]} ${m[5]}` };
    });
    const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    const whoTime = (t: number) => {
      const d = new Date(t * 1000);
      return `${MON[d.getUTCMonth()]} ${d.getUTCDate()} ${d.toISOString().slice(11, 16)}`;
    };
    assert.equal(
      fromWho,
      users.map((u) => ({ name: u.name, device: u.device, host: u.host, time: whoTime(u.login_time) })),
    );
    assert.is(who.length, remote.length + 1, 'who also lists the local USER_PROCESS (alice), nothing else');
  },
  { needs: [command('cc'), command('who')] },
);

test('utmp: a trailing partial record is ignored; an empty file has no users', async ({ dir }) => {
  const file = path.join(dir, 'utmp.partial');
  fs.writeFileSync(file, Buffer.concat([encodeUtmp(FIXTURE.slice(0, 2)), Buffer.alloc(100, 7)]));
  assert.equal(await readUsers(file), REMOTE.slice(0, 1));
  fs.writeFileSync(file, '');
  assert.equal(await readUsers(file), []);
});

test('utmp: missing file -> [], no error; a directory -> EISDIR for the caller to log', async ({ dir }) => {
  assert.equal(await readUsers(path.join(dir, 'no-such-utmp')), []);
  try {
    await readUsers(dir);
    assert.unreachable('a directory is not a utmp file');
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, 'EISDIR');
  }
});

// ---- disks -----------------------------------------------------------------------------------

test('mountinfo: optional fields, octal escapes, malformed lines skipped', () => {
  const text = [
    '27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw',
    '30 27 254:15 / /boot/my\\040efi rw master:2 propagate_from:3 - vfat /dev/vda15 rw',
    'garbage line',
    '31 27 0:40 /sub /srv rw - btrfs /dev/sda rw',
    '',
  ].join('\n');
  assert.equal(parseMountInfo(text), [
    { dev: '254:1', root: '/', mountpoint: '/', fstype: 'ext4', source: '/dev/vda1' },
    { dev: '254:15', root: '/', mountpoint: '/boot/my efi', fstype: 'vfat', source: '/dev/vda15' },
    { dev: '0:40', root: '/sub', mountpoint: '/srv', fstype: 'btrfs', source: '/dev/sda' },
  ]);
  // Read as bytes: the same entries, and a mount point that is not UTF-8 with its bytes.
  assert.equal(parseMountInfo(Buffer.from(text)), parseMountInfo(text));
  const ff = Buffer.from('/srv/m\xff', 'latin1');
  assert.equal(parseMountInfo(Buffer.from('32 27 254:2 / /srv/m\xff rw - ext4 /dev/vdb rw\n', 'latin1')), [
    { dev: '254:2', root: '/', mountpoint: '/srv/m\ufffd', mountpointBytes: ff, fstype: 'ext4', source: '/dev/vdb' },
  ]);
});

/** A fake /sys/block: name -> {dev, device link?, partitions}. */
function fakeSysBlock(
  root: string,
  disks: Record<string, { dev: string; device?: boolean; parts?: Record<string, string> }>,
): string {
  const sys = path.join(root, 'block');
  fs.rmSync(sys, { recursive: true, force: true });
  for (const [name, d] of Object.entries(disks)) {
    const dir = path.join(sys, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'dev'), d.dev + '\n');
    if (d.device !== false) fs.symlinkSync('../../devices/fake', path.join(dir, 'device')); // dangling, like a lstat-only check sees it
    fs.mkdirSync(path.join(dir, 'queue')); // a non-partition subdirectory
    for (const [p, dev] of Object.entries(d.parts ?? {})) {
      fs.mkdirSync(path.join(dir, p));
      fs.writeFileSync(path.join(dir, p, 'dev'), dev + '\n');
      fs.writeFileSync(path.join(dir, p, 'partition'), p.replace(/^\D+/, '') + '\n');
    }
  }
  return sys;
}

test('disks over a fake /sys/block and mount table: partitions, device numbers, sources, statfs failure', async ({
  dir,
}) => {
  const real = path.join(dir, 'mnt with space');
  fs.mkdirSync(real, { recursive: true });
  const sysBlock = fakeSysBlock(dir, {
    vda: { dev: '254:0', parts: { vda1: '254:1', vda15: '254:15' } },
    vdb: { dev: '254:16' },
    vdc: { dev: '254:32' },
    sda: { dev: '8:0' },
    loop0: { dev: '7:0', device: false },
  });
  const esc = (p: string) => p.replace(/ /g, '\\040');
  const mountInfo = path.join(dir, 'mountinfo');
  fs.writeFileSync(
    mountInfo,
    [
      '20 1 0:21 / /proc rw - proc proc rw',
      `30 1 254:15 / ${esc(real)}/efi rw - vfat /dev/vda15 rw`, // deeper than vda1's mount: not reported
      '27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/root rw', // /dev/root: matched by device number
      `31 1 254:16 / ${esc(dir)}/gone rw - ext4 /dev/vdb rw`, // statfs fails: ENOENT
      `32 1 0:40 / ${esc(real)} rw - btrfs /dev/sda rw`, // anonymous device number: matched by source
      `33 1 7:0 / ${esc(dir)}/loop rw - ext4 /dev/loop0 rw`,
    ].join('\n') + '\n',
  );
  const warnings: string[] = [];
  const disks = await listDisks({ sysBlock, mountInfo, warn: (m) => warnings.push(m) });
  const [root, tmp] = await Promise.all([fsSizes('/'), fsSizes(real)]);
  const near = (a: number, b: number) => Math.abs(a - b) <= 256 * 1024; // KiB; others write meanwhile
  assert.equal(
    disks.map((d) => [d.name, d.is_mounted, d.mountpoint]),
    [
      ['/dev/sda', true, real],
      ['/dev/vda', true, '/'],
      ['/dev/vdb', true, `${dir}/gone`],
      ['/dev/vdc', false, ''],
    ],
  );
  const [sda, vda, vdb, vdc] = disks;
  for (const [d, want] of [
    [sda, tmp],
    [vda, root],
  ] as const) {
    assert.is(d.size_total, want.size_total, d.name);
    assert.ok(
      near(d.size_used, want.size_used) && near(d.size_avail, want.size_avail),
      `${d.name}: ${JSON.stringify([d, want])}`,
    );
    assert.ok(d.size_total > 0 && d.size_used + d.size_avail <= d.size_total, d.name);
  }
  for (const d of [vdb, vdc]) assert.equal([d.size_total, d.size_used, d.size_avail], [0, 0, 0], d.name);
  assert.is(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0], /\/dev\/vdb .*gone: .*no such file or directory/i);
});

test('disks: a mount point whose name is not UTF-8 is statted by its bytes; the answer writes them as Go', async ({
  dir,
}) => {
  // A plain directory stands for the mount point: statfs answers for any path.
  const ff = Buffer.concat([Buffer.from(path.join(dir, 'm')), Buffer.from([0xff])]);
  fs.mkdirSync(ff);
  const sysBlock = fakeSysBlock(path.join(dir, 'bytes'), { vda: { dev: '254:0' }, vdb: { dev: '254:16' } });
  const mountInfo = path.join(dir, 'mountinfo-bytes');
  fs.writeFileSync(
    mountInfo,
    Buffer.concat([Buffer.from('1 0 254:0 / '), ff, Buffer.from(' rw - ext4 /dev/vda rw\n')]),
  );
  const warnings: string[] = [];
  const disks = await listDisks({ sysBlock, mountInfo, warn: (m) => warnings.push(m) });
  assert.equal(warnings, []);
  const want = await fsSizes(dir);
  const [vda, vdb] = disks;
  assert.equal([vda.mountpoint, vda.mountpointBytes, vda.size_total], [`${dir}/m\ufffd`, ff, want.size_total]);
  assert.ok(Math.abs(vda.size_used - want.size_used) <= 256 * 1024, `${vda.size_used} ~ ${want.size_used}`);
  assert.ok(vda.size_total > 0);
  assert.is('mountpointBytes' in vdb, false, 'a disk not mounted, or mounted at a UTF-8 name, has no bytes');

  // The phoenix answer: Go's encoding/json writes the stray byte as the escape \ufffd.
  const info = await systemInfo({ sysBlock, mountInfo, utmpPath: path.join(dir, 'no-utmp') });
  const raw = sysinfoAnswer(info);
  assert.instance(raw, RawJson);
  const line = encodeReturn(raw, '7');
  const sizes = `"size_total":${vda.size_total},"size_used":`;
  assert.ok(line.includes(`{"name":"/dev/vda","is_mounted":true,"mountpoint":"${dir}/m\\ufffd",${sizes}`), line);
  assert.ok(
    line.endsWith(
      '{"name":"/dev/vdb","is_mounted":false,"mountpoint":"","size_total":0,"size_used":0,"size_avail":0}]},"tag":"7"}\n',
    ),
    line,
  );
  assert.not.match(line, /mountpointBytes/);
  // The rest as the report: the same JSON as without the bytes.
  const parsed = JSON.parse(line).return as SystemInfo;
  const plain = { ...info, disks: info.disks.map(({ mountpointBytes: _, ...d }) => d) };
  assert.equal(parsed, plain);
  // Without such a name the report is the answer as it is.
  assert.is(sysinfoAnswer(plain), plain);
});

test('disks: a statfs that fails or hangs gives that disk zero sizes; the others keep theirs', async ({ dir }) => {
  const sysBlock = fakeSysBlock(dir, { vda: { dev: '254:0' }, vdb: { dev: '254:16' }, vdc: { dev: '254:32' } });
  const mountInfo = path.join(dir, 'mountinfo');
  fs.writeFileSync(
    mountInfo,
    [
      '1 0 254:0 / / rw - ext4 /dev/vda rw',
      '2 1 254:16 / /hang rw - nfs4 /dev/vdb rw',
      '3 1 254:32 / /eio rw - ext4 /dev/vdc rw',
    ].join('\n'),
  );
  const warnings: string[] = [];
  const t0 = Date.now();
  const disks = await listDisks({
    sysBlock,
    mountInfo,
    statfsTimeoutMs: 200,
    warn: (m) => warnings.push(m),
    sizes: (mp) =>
      mp === '/hang'
        ? new Promise(() => {})
        : mp === '/eio'
          ? Promise.reject(new Error('statfs /eio: input/output error'))
          : Promise.resolve({ size_total: 30, size_used: 10, size_avail: 20 }),
  });
  assert.ok(Date.now() - t0 < 2000, 'the hung statfs was not waited for');
  assert.equal(disks, [
    { name: '/dev/vda', is_mounted: true, mountpoint: '/', size_total: 30, size_used: 10, size_avail: 20 },
    { name: '/dev/vdb', is_mounted: true, mountpoint: '/hang', size_total: 0, size_used: 0, size_avail: 0 },
    { name: '/dev/vdc', is_mounted: true, mountpoint: '/eio', size_total: 0, size_used: 0, size_avail: 0 },
  ]);
  assert.equal(warnings.sort(), [
    '/dev/vdb at /hang: statfs: no answer within 200 ms',
    '/dev/vdc at /eio: statfs /eio: input/output error',
  ]);
});

test('disks: unreadable mount table -> every disk unmounted, warned; no /sys/block -> rejects', async ({ dir }) => {
  const sysBlock = fakeSysBlock(dir, { vda: { dev: '254:0' } });
  const warnings: string[] = [];
  const disks = await listDisks({ sysBlock, mountInfo: path.join(dir, 'no-mountinfo'), warn: (m) => warnings.push(m) });
  assert.equal(disks, [
    { name: '/dev/vda', is_mounted: false, mountpoint: '', size_total: 0, size_used: 0, size_avail: 0 },
  ]);
  assert.match(warnings.join('\n'), /cannot read the mount table/);
  try {
    await listDisks({ sysBlock: path.join(dir, 'no-sys-block') });
    assert.unreachable('listing must fail');
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, 'ENOENT');
  }
});

// ---- the whole answer ------------------------------------------------------------------------

function assertShape(s: SystemInfo): void {
  const keys = (o: object) => Object.keys(o).sort();
  assert.equal(keys(s), ['disks', 'loadavg', 'long_bit', 'ram', 'swap', 'uname', 'uptime', 'users']);
  assert.equal(keys(s.uname), ['domain', 'machine', 'nodename', 'release', 'sysname', 'version']);
  for (const v of Object.values(s.uname)) assert.type(v, 'string');
  assert.ok(s.long_bit === 64 || s.long_bit === 32, `long_bit ${s.long_bit}`);
  assert.ok(Number.isInteger(s.uptime) && s.uptime >= 0);
  assert.equal(keys(s.loadavg), ['15m', '1m', '5m']);
  for (const v of Object.values(s.loadavg))
    assert.ok(typeof v === 'number' && v >= 0 && Number.isInteger(v * 65536), `load ${v}`);
  assert.equal(keys(s.ram), ['buffer', 'free', 'total']);
  assert.equal(keys(s.swap), ['free', 'total']);
  for (const v of [...Object.values(s.ram), ...Object.values(s.swap)]) assert.ok(Number.isInteger(v) && v >= 0);
  assert.ok(Array.isArray(s.users));
  for (const u of s.users) {
    assert.equal(keys(u), ['device', 'host', 'login_time', 'name']);
    assert.ok(
      typeof u.name === 'string' && typeof u.device === 'string' && typeof u.host === 'string' && u.host !== '',
    );
    assert.ok(Number.isInteger(u.login_time));
  }
  assert.ok(Array.isArray(s.disks));
  for (const d of s.disks) {
    assert.equal(keys(d), ['is_mounted', 'mountpoint', 'name', 'size_avail', 'size_total', 'size_used']);
    assert.match(d.name, /^\/dev\/[^/]+$/);
    assert.type(d.is_mounted, 'boolean');
    assert.type(d.mountpoint, 'string');
    assert.is(d.mountpoint !== '', d.is_mounted);
    for (const v of [d.size_total, d.size_used, d.size_avail]) assert.ok(Number.isInteger(v) && v >= 0);
  }
}

/** Each figure from this machine's own tools, read before and after `get` (values move). */
async function crossCheck(get: () => Promise<SystemInfo>): Promise<SystemInfo> {
  const procLoads = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  const freeK = () => {
    const rows = run('free', ['-w', '-k'], { LC_ALL: 'C' }).split('\n');
    const mem = rows
      .find((r) => r.startsWith('Mem:'))!
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const swap = rows
      .find((r) => r.startsWith('Swap:'))!
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return { total: mem[0], free: mem[2], buffers: mem[4], swapTotal: swap[0], swapFree: swap[2] };
  };
  const uptime = () => Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const [l0, f0, u0] = [procLoads(), freeK(), uptime()];
  const s = await get();
  const [l1, f1, u1] = [procLoads(), freeK(), uptime()];
  assertShape(s);

  const uname = (flag: string) => run('uname', [flag]).replace(/\n$/, '');
  assert.equal(s.uname, {
    sysname: uname('-s'),
    nodename: uname('-n'),
    release: uname('-r'),
    version: uname('-v'),
    machine: uname('-m'),
    domain: fs.readFileSync('/proc/sys/kernel/domainname', 'utf8').trim(),
  });
  assert.is(s.long_bit, Number(run('getconf', ['LONG_BIT'])));
  assert.ok(
    s.uptime >= Math.floor(u0) && s.uptime <= Math.ceil(u1) + 1,
    `uptime ${s.uptime} vs /proc/uptime ${u0}..${u1}`,
  );
  // /proc/loadavg rounds to 1/100; at most one 5-second update can fall inside the window.
  ['1m', '5m', '15m'].forEach((k, i) => {
    const v = s.loadavg[k as '1m'];
    assert.ok(
      Math.abs(v - l0[i]) <= 0.0051 || Math.abs(v - l1[i]) <= 0.0051,
      `load ${k} ${v} vs /proc/loadavg ${l0[i]}..${l1[i]}`,
    );
  });
  const within = (v: number, a: number, b: number, slack: number) =>
    v >= Math.min(a, b) - slack && v <= Math.max(a, b) + slack;
  const slack = Math.max(64 * 1024, f0.total / 100); // KiB: builds and tests run alongside
  assert.is(s.ram.total, f0.total);
  assert.ok(within(s.ram.free, f0.free, f1.free, slack), `free ${s.ram.free} vs free -k ${f0.free}..${f1.free}`);
  assert.ok(
    within(s.ram.buffer, f0.buffers, f1.buffers, slack),
    `buffer ${s.ram.buffer} vs ${f0.buffers}..${f1.buffers}`,
  );
  assert.is(s.swap.total, f0.swapTotal);
  assert.ok(within(s.swap.free, f0.swapFree, f1.swapFree, slack));

  // Disks: exactly the /sys/block entries with a device link; mounted ones as df -k sees them.
  const expected = fs
    .readdirSync('/sys/block')
    .filter((n) => fs.existsSync(`/sys/block/${n}/device`))
    .map((n) => `/dev/${n}`)
    .sort();
  assert.equal(
    s.disks.map((d) => d.name),
    expected,
  );
  for (const d of s.disks.filter((x) => x.is_mounted)) {
    const [src, size, used, avail, target] = run('df', ['-k', '--output=source,size,used,avail,target', d.mountpoint], {
      LC_ALL: 'C',
    })
      .trim()
      .split('\n')[1]
      .split(/\s+/);
    assert.is(target, d.mountpoint);
    const dev = fs.existsSync(src) ? path.basename(fs.realpathSync(src)) : path.basename(src);
    assert.ok(
      dev.startsWith(path.basename(d.name)) || src === '/dev/root',
      `${d.name} at ${d.mountpoint}: df says ${src}`,
    );
    assert.is(d.size_total, Number(size));
    assert.ok(
      Math.abs(d.size_used - Number(used)) <= 256 * 1024 && Math.abs(d.size_avail - Number(avail)) <= 256 * 1024,
      `${JSON.stringify(d)} vs df ${used} ${avail}`,
    );
  }
  return s;
}

test(
  'systemInfo() matches uname, getconf, /proc, free -k and df -k on this machine',
  async () => {
    const failed: string[] = [];
    await crossCheck(() => systemInfo({ onPartError: (p, e) => failed.push(`${p}: ${e.message}`) }));
    assert.equal(failed, []);
  },
  { needs: [command('free'), command('df'), command('getconf')] },
);

test('parts fail alone: bad utmp, missing /sys/block, broken mount table -> empty parts, rest intact', async ({
  dir,
}) => {
  const failed: [SystemInfoPart, string][] = [];
  const s = await systemInfo({
    utmpPath: dir, // a directory: EISDIR
    sysBlock: path.join(dir, 'no-sys-block'),
    onPartError: (p, e) => failed.push([p, e.message]),
  });
  assertShape(s);
  assert.equal(s.users, []);
  assert.equal(s.disks, []);
  assert.ok(s.ram.total > 0 && s.uname.sysname === 'Linux', 'the other parts still answer');
  assert.equal(failed.map(([p]) => p).sort(), ['disks', 'users']);
  assert.match(failed.find(([p]) => p === 'users')![1], /EISDIR|illegal operation on a directory/);
});

test(
  'a part that hangs (utmp is a FIFO with no writer) is given up on after the part timeout',
  async ({ dir }) => {
    const fifo = path.join(dir, 'utmp.fifo');
    run('mkfifo', [fifo]);
    const failed: string[] = [];
    const t0 = Date.now();
    try {
      const s = await systemInfo({
        utmpPath: fifo,
        partTimeoutMs: 300,
        onPartError: (p, e) => failed.push(`${p}: ${e.message}`),
      });
      assert.equal(s.users, []);
      assert.ok(s.disks.length > 0 || !fs.existsSync('/sys/block/vda'));
      assert.equal(failed, ['users: no answer within 300 ms']);
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      // Release the blocked open() on the thread pool: open the write end once, then close it.
      fs.closeSync(fs.openSync(fifo, fs.constants.O_RDWR));
    }
  },
  { needs: [command('mkfifo')] },
);

test('coalesce: calls while one is in flight join it; the next call after it settles starts anew', async () => {
  let calls = 0;
  let release!: (v: string) => void;
  const slow = coalesce((arg: string) => {
    calls++;
    return new Promise<string>((r) => (release = (v) => r(`${arg}:${v}`)));
  });
  const a = slow('x');
  const b = slow('x');
  assert.is(calls, 1, 'the second call joined the first');
  release('1');
  assert.equal(await Promise.all([a, b]), ['x:1', 'x:1']);
  const c = slow('x');
  assert.is(calls, 2);
  release('2');
  assert.is(await c, 'x:2');
  const failing = coalesce(async (n: number) => {
    calls++;
    throw new Error(`fail ${n}`);
  });
  await failing(1).catch(() => {});
  await failing(1).catch(() => {});
  assert.is(calls, 4, 'a rejected call is not kept either');
});

// ---- through a real agent --------------------------------------------------------------------

async function agentWith(ctx: Ctx, utmp: string): Promise<LineClient> {
  await ctx.agent?.stop();
  ctx.agent = await startAgent(['--utmp-file', utmp]);
  return ctx.agent.connect();
}

test(
  'through the agent: the full answer, cross-checked; users from a glibc-written utmp',
  async (ctx) => {
    const c = await agentWith(ctx, glibcUtmp(ctx.dir));
    const s = await crossCheck(async () => (await c.ok('sysinfo')) as SystemInfo);
    assert.equal(s.users, REMOTE);
    assert.not.match(ctx.agent!.stderr(), /sysinfo:/);
    c.close();
  },
  { needs: [command('cc'), command('free'), command('df'), command('getconf')] },
);

test('through the agent: missing utmp -> users [] silently; unreadable -> [] and one warning', async (ctx) => {
  let c = await agentWith(ctx, path.join(ctx.dir, 'no-such-utmp'));
  let s = (await c.ok('sysinfo')) as SystemInfo;
  assertShape(s);
  assert.equal(s.users, []);
  assert.not.match(ctx.agent!.stderr(), /sysinfo:/);
  c.close();

  const utmp = path.join(ctx.dir, 'utmp-later');
  fs.mkdirSync(utmp); // a directory: EISDIR
  c = await agentWith(ctx, utmp);
  for (let i = 0; i < 3; i++) {
    s = (await c.ok('sysinfo')) as SystemInfo;
    assertShape(s);
    assert.equal(s.users, []);
    assert.ok(s.disks.length > 0 || !fs.existsSync('/sys/block/vda'));
  }
  await waitFor(() => /sysinfo: users: .*directory/.test(ctx.agent!.stderr()), 2000, 'the warning');
  assert.is(ctx.agent!.stderr().match(/sysinfo: users:/g)!.length, 1, 'logged once, not on every poll');
  // The file becomes readable: users again, and one line saying so.
  fs.rmdirSync(utmp);
  fs.writeFileSync(utmp, encodeUtmp(FIXTURE));
  s = (await c.ok('sysinfo')) as SystemInfo;
  assert.equal(s.users, REMOTE);
  await waitFor(() => /sysinfo: users: working again/.test(ctx.agent!.stderr()), 2000, 'the recovery line');
  c.close();
});

test('through the agent: arguments are ignored, 20 at once all answer, the agent keeps serving', async (ctx) => {
  const c = await agentWith(ctx, path.join(ctx.dir, 'no-such-utmp'));
  const junk = await c.call('sysinfo', { path: 42, x: [1] });
  assert.ok(junk.return !== undefined, JSON.stringify(junk));
  assertShape(junk.return as SystemInfo);
  // One write of 20 requests (LineClient.call is one-at-a-time): 20 answers, each tag once.
  c.send(Array.from({ length: 20 }, (_, i) => JSON.stringify({ execute: 'sysinfo', tag: `s${i}` }) + '\r\n').join(''));
  const all = await c.waitLines(20);
  assert.equal(all.map((a) => a.tag).sort(), Array.from({ length: 20 }, (_, i) => `s${i}`).sort());
  for (const a of all) assertShape(a.return as SystemInfo);
  c.lines.length = 0;
  assert.type(await c.ok('ping'), 'string');
  c.close();
});

test.run();
