// /proc/stat and /proc/diskstats as qemu-ga's sscanf reads them, on fixture text from kernels of
// several ages, and the sscanf emulation itself.
import * as assert from 'uvu/assert';
import { parseCpuStats, parseDiskstats } from '../../../lib/sysinfo';
import { atoi, cscanf, Scan } from '../../../lib/sysinfo/scan';
import { suite } from '../../helpers/harness';

const test = suite('sysinfo-procfs');

const STAT_6_1 = `cpu  7655450 0 2990940 11103500 35640 0 12630 72150 0 0
cpu0 3714610 0 1423990 5650930 8680 0 3300 31490 0 0
cpu1 3940840 0 1566950 5452570 26960 0 9330 40660 0 0
intr 1189234 0 9 0 0 0
ctxt 2345678
btime 1700000000
processes 12345
procs_running 1
softirq 123 4 5
`;

test('cpustats: each cpuN line in milliseconds (ticks of 1/100 s), the total left out', () => {
  assert.equal(parseCpuStats(STAT_6_1), [
    {
      cpu: 0,
      user: 37146100,
      nice: 0,
      system: 14239900,
      idle: 56509300,
      iowait: 86800,
      irq: 0,
      softirq: 33000,
      steal: 314900,
      guest: 0,
      guestnice: 0,
    },
    {
      cpu: 1,
      user: 39408400,
      nice: 0,
      system: 15669500,
      idle: 54525700,
      iowait: 269600,
      irq: 0,
      softirq: 93300,
      steal: 406600,
      guest: 0,
      guestnice: 0,
    },
  ]);
});

test('cpustats: older kernels give fewer states, and the later ones are absent', () => {
  const text = [
    'cpu0 100 200 300 400', // 2.4: four states
    'cpu1 100 200 300 400 500', // + iowait
    'cpu2 100 200 300 400 500 600 700', // + irq, softirq
    'cpu3 100 200 300 400 500 600 700 800', // + steal
    'cpu4 100 200 300 400 500 600 700 800 900', // + guest
  ].join('\n');
  const got = parseCpuStats(text);
  assert.equal(
    got.map((c) => Object.keys(c).length),
    [5, 6, 8, 9, 10],
  );
  assert.equal(got[3], {
    cpu: 3,
    user: 1000,
    nice: 2000,
    system: 3000,
    idle: 4000,
    iowait: 5000,
    irq: 6000,
    softirq: 7000,
    steal: 8000,
  });
});

test('cpustats: a cpu line with fewer than four figures ends the list; other lines are skipped', () => {
  const text = 'cpu0 1 2 3 4\nbogus line\n\n   \ncpu1 1 2 3\ncpu2 1 2 3 4\n';
  assert.equal(
    parseCpuStats(text).map((c) => c.cpu),
    [0],
  );
});

test('cpustats: the unit is USER_HZ (whole milliseconds, rounded down)', () => {
  assert.equal(parseCpuStats('cpu7 3 0 1 1', 300)[0], { cpu: 7, user: 10, nice: 0, system: 3, idle: 3 });
});

test('diskstats: the 5.5+ format (17 counters) gives every counter', () => {
  const [d] = parseDiskstats(
    ' 254       0 vda 213105 30612 6371218 288454 124392 268988 135421208 682041 0 75980 996989 147846 35 125675024 25616 10910 877\n',
  );
  assert.equal(d, {
    name: 'vda',
    major: 254,
    minor: 0,
    stats: {
      readIos: 213105,
      readMerges: 30612,
      readSectors: 6371218,
      readTicks: 288454,
      writeIos: 124392,
      writeMerges: 268988,
      writeSectors: 135421208,
      writeTicks: 682041,
      iosInProgress: 0,
      totalTicks: 75980,
      weightTicks: 996989,
      discardIos: 147846,
      discardMerges: 35,
      discardSectors: 125675024,
      discardTicks: 25616,
      flushIos: 10910,
      flushTicks: 877,
    },
  });
});

test('diskstats: older formats give fewer counters; 4 is the old partition line', () => {
  const text = [
    '   8    1 sda1 100 200 300 400', // 2.6.24 partition: ios and sectors
    '   8    0 sda 1 2 3 4 5 6 7 8 9 10 11', // before 4.18
    '   8   16 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15', // 4.18: discards
    '   8   32 sdc 1 2 3 4 5 6 7', // 5 to 10 counters: none of them read
    '   8   48 sdd 1 2 3', // too short: left out
    'garbage',
    '',
  ].join('\n');
  const got = parseDiskstats(text);
  assert.equal(
    got.map((d) => d.name),
    ['sda1', 'sda', 'sdb', 'sdc'],
  );
  assert.equal(got[0].stats, { readIos: 100, readSectors: 200, writeIos: 300, writeSectors: 400 });
  assert.equal(Object.keys(got[1].stats).length, 11);
  assert.equal(got[1].stats.readSectors, 3);
  assert.equal(got[1].stats.weightTicks, 11);
  assert.equal(Object.keys(got[2].stats).length, 15);
  assert.equal(got[2].stats.discardTicks, 15);
  assert.equal(got[3].stats, {});
});

test('diskstats: a counter read as %u wraps at 32 bits, one read as %lu at 64, as C stores them', () => {
  const [d] = parseDiskstats('1 2 x 4294967297 0 0 0 0 0 0 4294967297 0 0 0');
  assert.is(d.stats.readIos, 4294967297);
  assert.is(d.stats.writeTicks, 1);
});

test('Scan reads like sscanf: white space skipped, signs and wrap-around as strtoul', () => {
  const s = new Scan('  abc\t-1  12x');
  assert.is(s.word(), 'abc');
  assert.is(s.unsigned(32), 4294967295);
  assert.is(s.unsigned(64), 12);
  assert.is(s.unsigned(64), undefined);
  assert.is(s.word(), 'x');
  assert.ok(s.atEnd());
  assert.is(atoi('12abc'), 12);
  assert.is(atoi(' -3'), -3);
  assert.is(atoi('x'), 0);
});

test('cscanf: the sysfs path formats qemu-ga picks apart', () => {
  assert.equal(cscanf('0000:00/0000:00:02.0/virtio1/block/vda', '%*x:%*x/%x:%x:%x.%x%n'), {
    values: [0, 0, 2, 0],
    n: [20],
  });
  assert.equal(cscanf('/0000:01:1f.7/nvme', '/%x:%x:%x.%x%n'), { values: [0, 1, 31, 7], n: [13] });
  assert.equal(cscanf('/nvme/nvme0', '/%x:%x:%x.%x%n'), { values: [], n: [undefined] });
  assert.equal(cscanf('2:0:0/2:0:1:3/block', '%*u:%*u:%*u/%*u:%u:%u:%u'), { values: [0, 1, 3], n: [] });
  assert.equal(cscanf('0/0.0.0000/0.0.00a1/virtio0', '%*x/%x.%x.%x/%*x.%*x.%x/'), { values: [0, 0, 0, 161], n: [] });
  assert.equal(cscanf('ata12', 'ata%d').values, [12]);
  assert.equal(cscanf('ata_port', 'ata%d').values, []);
});

test.run();
