// CPUs, memory blocks, disks and mounted filesystems over fixture sysfs trees: the shapes qemu-ga
// gives disks on each bus it knows (virtio, SATA, virtio-SCSI, NVMe behind a bridge, IDE, s390
// channel I/O, unknown), partitions, device-mapper devices and what udev's database adds.
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import {
  EmptyAttributeError,
  listBlockDevices,
  listFilesystems,
  listMemoryBlocks,
  listVcpus,
  memoryBlockSize,
  parseSmartLog,
  readNvmeSmart,
  type BlockDevice,
  type DiskAddress,
  type MountPath,
  type Statvfs,
} from '../../../lib/sysinfo';
import { native } from '../../../lib/native';
import { readdirRaw } from '../../../lib/sysinfo/sysfs';
import { tmpDir } from '../../helpers/agent';
import { suite } from '../../helpers/harness';

const test = suite<{ dir: string }>('sysinfo-sysfs', { dir: '' });
test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-sysfs-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** A directory tree: a string is a file's content, "-> target" a symlink, an object a directory. */
type Tree = { [name: string]: string | Tree };

function build(dir: string, tree: Tree): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, node] of Object.entries(tree)) {
    const p = path.join(dir, name);
    if (typeof node === 'object') build(p, node);
    else if (node.startsWith('-> ')) {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.symlinkSync(node.slice(3), p);
    } else {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, node);
    }
  }
}

/** fn rejects with an error that is an instance of `match` or whose message matches it. */
async function rejects(fn: () => Promise<unknown>, match: RegExp | (new (...a: never[]) => Error)): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (match instanceof RegExp) assert.match((e as Error).message, match);
    else assert.instance(e, match);
    return;
  }
  assert.unreachable('should have rejected');
}

const names = async (dir: string) => (await readdirRaw(dir)).map((e) => e.name);

test('vcpus: cpuN entries, online from their online attribute, none meaning not unpluggable', async ({ dir }) => {
  const cpu = path.join(dir, 'cpu');
  build(cpu, {
    cpu0: { topology: {} },
    cpu1: { online: '1\n' },
    cpu2: { online: '0\n' },
    cpu12: { online: '1\n' },
    cpufreq: {},
    cpuidle: {},
    possible: '0-12\n',
    online: '0-1,12\n',
  });
  const got = await listVcpus(cpu);
  const byId = Object.fromEntries(got.map((c) => [c.logicalId, c]));
  assert.equal(byId, {
    0: { logicalId: 0, online: true, canOffline: false },
    1: { logicalId: 1, online: true, canOffline: true },
    2: { logicalId: 2, online: false, canOffline: true },
    12: { logicalId: 12, online: true, canOffline: true },
  });
  // The kernel's listing order, not sorted.
  const order = (await names(cpu)).filter((n) => /^cpu\d+$/.test(n)).map((n) => Number(n.slice(3)));
  assert.equal(
    got.map((c) => c.logicalId),
    order,
  );

  build(cpu, { cpu3: { online: '' } });
  await rejects(() => listVcpus(cpu), EmptyAttributeError);
  fs.rmSync(path.join(cpu, 'cpu3'), { recursive: true });
  build(cpu, { cpu4: { online: {} } });
  try {
    await listVcpus(cpu);
    assert.unreachable();
  } catch (e) {
    assert.equal([(e as { syscall?: string }).syscall, (e as { path?: string }).path], ['pread', `${cpu}/cpu4/online`]);
  }
  await rejects(() => listVcpus(path.join(dir, 'nocpu')), /opendir/);
});

test('memory blocks: state and removable of each memoryN directory; the block size in hex', async ({ dir }) => {
  const mem = path.join(dir, 'memory');
  build(mem, {
    memory0: { state: 'online\n', removable: '1\n' },
    memory1: { state: 'offline\n', removable: '0\n' },
    memory7: { removable: '1\n' }, // an old kernel: no state
    memory9: { state: 'online\n' }, // no removable
    memory_file: '', // not a directory
    power: {},
    block_size_bytes: '8000000\n',
    auto_online_blocks: 'online\n',
  });
  const got = await listMemoryBlocks(mem);
  assert.equal(Object.fromEntries(got.map((b) => [b.physIndex, b])), {
    0: { physIndex: 0, online: true, canOffline: true },
    1: { physIndex: 1, online: false, canOffline: false },
    7: { physIndex: 7, online: true, canOffline: false },
    9: { physIndex: 9, online: true, canOffline: false },
  });
  assert.equal(
    got.map((b) => `memory${b.physIndex}`),
    (await names(mem)).filter((n) => /^memory\d+$/.test(n)),
  );
  assert.is(await memoryBlockSize(mem), 0x8000000);
  build(mem, { memory3: { state: '' } });
  await rejects(() => listMemoryBlocks(mem), EmptyAttributeError);
  await rejects(() => listMemoryBlocks(path.join(dir, 'nomem')), /opendir/);
  await rejects(() => memoryBlockSize(path.join(dir, 'nomem')), /open/);
  const empty = path.join(dir, 'memory-empty');
  build(empty, { block_size_bytes: '0x10000000' });
  assert.equal(await listMemoryBlocks(empty), []);
  assert.is(await memoryBlockSize(empty), 0x10000000);
});

const uevent = (major: number, minor: number, name: string, type = 'disk') =>
  `MAJOR=${major}\nMINOR=${minor}\nDEVNAME=${name}\nDEVTYPE=${type}\n`;
const disk = (major: number, minor: number, name: string, extra: Tree = {}): Tree => ({
  uevent: uevent(major, minor, name),
  size: '2048\n',
  ...extra,
});
const part = (major: number, minor: number, name: string): Tree => ({
  uevent: uevent(major, minor, name, 'partition'),
  partition: '1\n',
  size: '1024\n',
});

const VDA = 'devices/pci0000:00/0000:00:02.0/virtio1/block/vda';
const SDA = 'devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sda';
const SDB = 'devices/pci0000:00/0000:00:03.0/virtio2/host4/target4:0:1/4:0:1:5/block/sdb';
const NVME = 'devices/pci0000:00/0000:00:1c.0/0000:01:00.0/nvme/nvme0/nvme0n1';
const SDC = 'devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:1/1:0:1:0/block/sdc';
const VDD = 'devices/css0/0.0.0000/0.0.0001/virtio0/block/vdd';
const MMC = 'devices/platform/mmc0/block/mmcblk0';
const DM0 = 'devices/virtual/block/dm-0';
const LOOP0 = 'devices/virtual/block/loop0';
const LOOP1 = 'devices/virtual/block/loop1';

const SYSFS: Tree = {
  'devices/pci0000:00/0000:00:02.0/driver': '-> ../../../bus/pci/drivers/virtio-pci',
  [VDA]: disk(254, 0, 'vda', {
    slaves: {},
    vda1: part(254, 1, 'vda1'),
    vda15: part(254, 15, 'vda15'),
    vdaq: {},
    queue: {},
  }),
  'devices/pci0000:00/0000:00:1f.2/driver': '-> ../../../bus/pci/drivers/ahci',
  'devices/pci0000:00/0000:00:1f.2/ata1/host0': {},
  [SDA]: disk(8, 0, 'sda', { slaves: {} }),
  'devices/pci0000:00/0000:00:03.0/driver': '-> ../../../bus/pci/drivers/virtio-pci',
  [SDB]: disk(8, 16, 'sdb'),
  'devices/pci0000:00/0000:00:1c.0/driver': '-> ../../../bus/pci/drivers/pcieport',
  'devices/pci0000:00/0000:00:1c.0/0000:01:00.0/driver': '-> ../../../../bus/pci/drivers/nvme',
  [NVME]: disk(259, 0, 'nvme0n1', { nvme0n1p1: part(259, 1, 'nvme0n1p1') }),
  'devices/pci0000:00/0000:00:01.1/driver': '-> ../../../bus/pci/drivers/ata_piix',
  'devices/pci0000:00/0000:00:01.1/ata1': {},
  [SDC]: disk(8, 32, 'sdc'),
  [VDD]: disk(254, 48, 'vdd'),
  [MMC]: disk(179, 0, 'mmcblk0'),
  [DM0]: disk(253, 0, 'dm-0', {
    slaves: { vda1: `-> ../../../../../${VDA}/vda1`, sda: `-> ../../../../../${SDA}` },
  }),
  [LOOP0]: { ...disk(7, 0, 'loop0'), size: '0\n', slaves: {} },
  [LOOP1]: disk(7, 1, 'loop1', { slaves: {}, loop1p1: part(259, 5, 'loop1p1') }),
  block: {
    vda: `-> ../${VDA}`,
    sda: `-> ../${SDA}`,
    sdb: `-> ../${SDB}`,
    nvme0n1: `-> ../${NVME}`,
    sdc: `-> ../${SDC}`,
    vdd: `-> ../${VDD}`,
    mmcblk0: `-> ../${MMC}`,
    'dm-0': `-> ../${DM0}`,
    loop0: `-> ../${LOOP0}`,
    loop1: `-> ../${LOOP1}`,
    'not-a-link': '',
  },
  'dev/block': {
    '254:0': `-> ../../${VDA}`,
    '254:1': `-> ../../${VDA}/vda1`,
    '8:0': `-> ../../${SDA}`,
    '253:0': `-> ../../${DM0}`,
    '259:1': `-> ../../${NVME}/nvme0n1p1`,
    '179:0': `-> ../../${MMC}`,
  },
};

const UDEV: Tree = {
  'data/b254:0': 'S:disk/by-id/virtio-SER1\nE:ID_SERIAL=SER1\nE:ID_TYPE=disk\n',
  'data/b254:1': 'E:ID_SERIAL=SER1\n',
  'data/b8:0': 'E:ID_SERIAL=QEMU_HARDDISK_QM0001\n',
  'data/b253:0': 'E:DM_NAME=vg-root\nE:ID_SERIAL=\n',
};

const NO_PCI = { domain: -1, bus: -1, slot: -1, function: -1 };
const addr = (a: Partial<DiskAddress>): DiskAddress => ({
  pciController: NO_PCI,
  busType: 'unknown',
  bus: 0,
  target: 0,
  unit: 0,
  ...a,
});
const VDA_ADDR = addr({ pciController: { domain: 0, bus: 0, slot: 2, function: 0 }, busType: 'virtio' });
const SDA_ADDR = addr({
  pciController: { domain: 0, bus: 0, slot: 0x1f, function: 2 },
  busType: 'sata',
  unit: 1, // the second ATA port of the controller: ata1, ata3
  serial: 'QEMU_HARDDISK_QM0001',
  dev: '/dev/sda',
});

function fixture(dir: string) {
  const root = path.join(dir, 'root');
  if (!fs.existsSync(root)) {
    build(path.join(root, 'sys'), SYSFS);
    build(path.join(root, 'udev'), UDEV);
  }
  return { sysRoot: root, udevRoot: path.join(root, 'udev') };
}

/** A SMART / health log page: warning 1, 300 K, spare 90% (threshold 10%), 5% used, counters 1000+i. */
function smartLog(): Buffer {
  const log = Buffer.alloc(512);
  log[0] = 1;
  log.writeUInt16LE(300, 1);
  log[3] = 90;
  log[4] = 10;
  log[5] = 5;
  for (let i = 0; i < 20; i++) log.writeBigUInt64LE(BigInt(1000 + i), 32 + 8 * i);
  log.writeBigUInt64LE(2n ** 64n - 1n, 32); // data units read: the low half at its largest
  return log;
}

test('NVMe SMART log: the fields of the page, 128-bit counters as low and high halves', async () => {
  const s = parseSmartLog(smartLog());
  assert.equal(
    [s.criticalWarning, s.temperature, s.availableSpare, s.availableSpareThreshold, s.percentageUsed],
    [1, 300, 90, 10, 5],
  );
  assert.is(s.dataUnitsReadLo, 2n ** 64n - 1n);
  assert.is(s.dataUnitsReadHi, 1001n);
  assert.is(s.numberOfErrorLogEntriesHi, 1019n);
  // Not an NVMe device: the ioctl is refused; no device: the open fails.
  await rejects(() => readNvmeSmart('/dev/null'), /^ioctl \/dev\/null: inappropriate ioctl/);
  await rejects(() => readNvmeSmart('/nonexistent/nvme0n1'), /^open /);
});

test('disks: each disk of /sys/block with a size, its address, dependencies, alias and partitions', async ({ dir }) => {
  const asked: string[] = [];
  const nvmeSmart = (dev: string) => {
    asked.push(dev);
    return Promise.resolve(parseSmartLog(smartLog()));
  };
  const opts = { ...fixture(dir), nvmeSmart };
  const got = await listBlockDevices(opts);
  assert.equal(asked, ['/dev/nvme0n1'], 'the SMART log is read for NVMe disks only');
  const byName = Object.fromEntries(got.map((d) => [d.name, d]));
  const dmDeps = (await names(path.join(opts.sysRoot, 'sys', DM0, 'slaves'))).map((n) => `/dev/${n}`).reverse();
  const expected: Record<string, BlockDevice> = {
    '/dev/vda': {
      name: '/dev/vda',
      partition: false,
      dependencies: [],
      address: { ...VDA_ADDR, serial: 'SER1', dev: '/dev/vda' },
    },
    '/dev/vda1': { name: '/dev/vda1', partition: true, dependencies: ['/dev/vda'] },
    '/dev/vda15': { name: '/dev/vda15', partition: true, dependencies: ['/dev/vda'] },
    '/dev/sda': { name: '/dev/sda', partition: false, dependencies: [], address: SDA_ADDR },
    '/dev/sdb': {
      name: '/dev/sdb',
      partition: false,
      address: addr({
        pciController: { domain: 0, bus: 0, slot: 3, function: 0 },
        busType: 'scsi',
        unit: 5,
        dev: '/dev/sdb',
      }),
    },
    '/dev/nvme0n1': {
      name: '/dev/nvme0n1',
      partition: false,
      address: addr({
        pciController: { domain: 0, bus: 1, slot: 0, function: 0 },
        busType: 'nvme',
        dev: '/dev/nvme0n1',
      }),
      smart: parseSmartLog(smartLog()),
    },
    '/dev/nvme0n1p1': { name: '/dev/nvme0n1p1', partition: true, dependencies: ['/dev/nvme0n1'] },
    '/dev/sdc': {
      name: '/dev/sdc',
      partition: false,
      address: addr({
        pciController: { domain: 0, bus: 0, slot: 1, function: 1 },
        busType: 'ide',
        bus: 1,
        unit: 1,
        dev: '/dev/sdc',
      }),
    },
    '/dev/vdd': {
      name: '/dev/vdd',
      partition: false,
      address: addr({ busType: 'virtio', dev: '/dev/vdd', ccwAddress: { cssid: 0, ssid: 0, subchno: 0, devno: 1 } }),
    },
    '/dev/mmcblk0': { name: '/dev/mmcblk0', partition: false, address: addr({ dev: '/dev/mmcblk0' }) },
    '/dev/dm-0': { name: '/dev/dm-0', partition: false, alias: 'vg-root', dependencies: dmDeps },
    '/dev/loop1': { name: '/dev/loop1', partition: false, dependencies: [] },
    '/dev/loop1p1': { name: '/dev/loop1p1', partition: true, dependencies: ['/dev/loop1'] },
  };
  assert.equal(byName, expected);
  // qemu-ga's order: the kernel's listing reversed, each disk after its own partitions.
  const disks = got.filter((d) => !d.partition).map((d) => d.name.slice(5));
  assert.equal(disks, (await names(path.join(opts.sysRoot, 'sys/block'))).filter((n) => n in SYSFS_BLOCK).reverse());
  got.forEach((d, i) => {
    if (d.partition)
      assert.ok(
        got.slice(i).some((x) => x.name === d.dependencies![0]),
        `${d.name} before its disk`,
      );
  });
});

const SYSFS_BLOCK = Object.fromEntries(
  Object.keys(SYSFS.block as Tree)
    .filter((n) => !['loop0', 'not-a-link'].includes(n))
    .map((n) => [n, true]),
);

test('fsinfo: mounts of devices (pseudo filesystems skipped), their disks and sizes, newest first', async ({ dir }) => {
  const opts = fixture(dir);
  const mountInfo = path.join(dir, 'mountinfo');
  fs.writeFileSync(
    mountInfo,
    [
      '21 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw',
      '22 21 0:5 / /proc rw - proc proc rw',
      '23 21 253:0 / /srv rw - xfs /dev/mapper/vg-root rw',
      '24 21 254:1 /sub /mnt/a\\040b rw - ext4 /dev/vda1 rw',
      '25 21 0:44 / /data rw - btrfs /nonexistent/dev rw',
      '26 21 9:9 / /gone rw - ext4 /dev/md9 rw',
      '27 21 259:1 / /nvme rw - ext4 /dev/nvme0n1p1 rw',
      '28 21 179:0 / /mmc rw - vfat /dev/mmcblk0 rw',
      '',
    ].join('\n'),
  );
  const statvfs = (mp: MountPath): Promise<Statvfs> => {
    if (mp === '/') return Promise.resolve({ frsize: 4096n, blocks: 1000n, bfree: 400n, bavail: 300n });
    if (mp === '/srv') return Promise.reject(new Error('EIO'));
    if (mp === '/nvme') return new Promise(() => {}); // hung
    return Promise.resolve({ frsize: 512n, blocks: 10n, bfree: 10n, bavail: 10n });
  };
  const got = await listFilesystems({ ...opts, mountInfo, statvfs, statvfsTimeoutMs: 50 });
  const vda1 = addr({ ...VDA_ADDR, serial: 'SER1', dev: '/dev/vda1' });
  const dmDisks = (await names(path.join(opts.sysRoot, 'sys', DM0, 'slaves')))
    .map((n) => (n === 'sda' ? SDA_ADDR : vda1))
    .reverse();
  const empty = { usedBytes: 0, totalBytes: 5120 };
  assert.equal(got, [
    { name: 'mmcblk0', mountpoint: '/mmc', type: 'vfat', disks: [addr({ dev: '/dev/mmcblk0' })], ...empty },
    {
      name: 'nvme0n1p1',
      mountpoint: '/nvme',
      type: 'ext4',
      disks: [
        addr({ pciController: { domain: 0, bus: 1, slot: 0, function: 0 }, busType: 'nvme', dev: '/dev/nvme0n1p1' }),
      ],
    },
    { name: '9:9', mountpoint: '/gone', type: 'ext4', disks: [], ...empty },
    { name: 'vda1', mountpoint: '/mnt/a b', type: 'ext4', disks: [vda1], ...empty },
    { name: 'dm-0', mountpoint: '/srv', type: 'xfs', disks: dmDisks },
    { name: 'vda1', mountpoint: '/', type: 'ext4', disks: [vda1], usedBytes: 600 * 4096, totalBytes: 900 * 4096 },
  ]);
});

test('fsinfo: a mount point whose name is not UTF-8 is statted by its bytes, named as qemu-ga names it', async ({
  dir,
}) => {
  const opts = fixture(dir);
  // Plain directories stand for the mount points: statvfs answers for any path.
  const ff = Buffer.concat([Buffer.from(path.join(dir, 'm')), Buffer.from([0xff])]);
  const cut = Buffer.concat([Buffer.from(path.join(dir, 'n')), Buffer.from([0xf0, 0x80, 0x80]), Buffer.from('b')]);
  const utf8 = path.join(dir, 'd\u00e9j\u00e0 vu');
  for (const d of [ff, cut, utf8]) fs.mkdirSync(d);
  const mountInfo = path.join(dir, 'mountinfo-bytes');
  fs.writeFileSync(
    mountInfo,
    Buffer.concat([
      Buffer.from('40 1 254:1 / '),
      ff,
      Buffer.from(' rw - ext4 /dev/vda1 rw\n41 1 254:1 / '),
      cut,
      Buffer.from(` rw - ext4 /dev/vda1 rw\n42 1 254:1 / ${utf8.replace(/ /g, '\\040')} rw - ext4 /dev/vda1 rw\n`),
    ]),
  );
  const vda1 = [addr({ ...VDA_ADDR, serial: 'SER1', dev: '/dev/vda1' })];
  const got = await listFilesystems({ ...opts, mountInfo });
  const sizes = await native.statvfs(dir);
  const used = Number((sizes.blocks - sizes.bfree) * sizes.frsize);
  assert.equal(
    got.map((f) => [f.name, f.mountpoint, f.mountpointBytes, f.type, f.disks, f.totalBytes === undefined]),
    [
      // qemu-ga's JSON writer: one U+FFFD for each sequence it rejects (F0 80 80 is one).
      ['vda1', utf8, undefined, 'ext4', vda1, false],
      ['vda1', `${dir}/n\ufffdb`, cut, 'ext4', vda1, false],
      ['vda1', `${dir}/m\ufffd`, ff, 'ext4', vda1, false],
    ],
  );
  for (const f of got) {
    assert.is(f.totalBytes, Number((sizes.blocks - sizes.bfree + sizes.bavail) * sizes.frsize), f.mountpoint);
    // Others write to this filesystem meanwhile: near, not equal.
    assert.ok(Math.abs(f.usedBytes! - used) < 64 << 20, `${f.mountpoint}: used ${f.usedBytes} ~ ${used}`);
  }
  // An injected statvfs is given the bytes; a UTF-8 name stays a string.
  const asked: MountPath[] = [];
  await listFilesystems({
    ...opts,
    mountInfo,
    statvfs: (mp) => {
      asked.push(mp);
      return Promise.reject(new Error('x'));
    },
  });
  assert.equal(asked.slice().sort(), [ff, cut, utf8].sort());
  // Without mountinfo, the mounts file is read as bytes too.
  const mounts = path.join(dir, 'mounts-bytes');
  fs.writeFileSync(mounts, Buffer.concat([Buffer.from('/nonexistent/dev '), ff, Buffer.from(' ext4 rw 0 0\n')]));
  const mtab = await listFilesystems({ ...opts, mountInfo: path.join(dir, 'no-mountinfo'), mounts });
  assert.equal(
    mtab.map((f) => [f.mountpoint, f.mountpointBytes, f.totalBytes !== undefined]),
    [[`${dir}/m\ufffd`, ff, true]],
  );
});

test('fsinfo: a sysfs walk that fails fails the listing (a slaves that is no directory)', async ({ dir }) => {
  const root = path.join(dir, 'broken');
  build(path.join(root, 'sys'), {
    'devices/virtual/block/md0': { ...disk(9, 0, 'md0'), slaves: 'not a directory' },
    'dev/block/9:0': '-> ../../devices/virtual/block/md0',
  });
  const mountInfo = path.join(dir, 'mountinfo-md');
  fs.writeFileSync(mountInfo, '30 1 9:0 / /md rw - ext4 /dev/md0 rw\n');
  try {
    await listFilesystems({ sysRoot: root, mountInfo, statvfs: () => Promise.reject(new Error('x')) });
    assert.unreachable();
  } catch (e) {
    assert.equal([(e as { syscall?: string }).syscall, (e as { code?: string }).code], ['opendir', 'ENOTDIR']);
  }
});

test.run();
