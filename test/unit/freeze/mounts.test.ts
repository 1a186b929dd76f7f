// The default mount selection of fs-freeze, on fixture mount tables (pure: symlinks resolved by
// a fake resolver, no device needs to exist).
import * as fs from 'fs';
import * as assert from 'uvu/assert';
import {
  classifyMounts,
  mountPathText,
  parseMountTable,
  selectFreezable,
  selectQemuGa,
  unescapeMountField,
} from '../../../lib/freeze';
import { suite } from '../../helpers/harness';

const test = suite('freeze-mounts');

// What /dev would resolve these to on a machine with LVM and udev links.
const links: Record<string, string> = {
  '/dev/mapper/vg0-root': '/dev/dm-0',
  '/dev/mapper/vg0-home': '/dev/dm-1',
  '/dev/disk/by-uuid/1111-2222': '/dev/vdb1',
  '/dev/disk/by-label/scratch': '/dev/loop3',
};
const resolve = (p: string) => links[p] ?? p;

test('a typical VM: one root disk, pseudo filesystems skipped', () => {
  const table = [
    'sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0',
    'proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0',
    'udev /dev devtmpfs rw,nosuid,relatime,size=4000k 0 0',
    '/dev/vda1 / ext4 rw,relatime 0 0',
    'tmpfs /run tmpfs rw,nosuid,nodev 0 0',
    '/dev/vda15 /boot/efi vfat rw,relatime 0 0',
    'overlay /var/lib/docker/overlay2/abc/merged overlay rw,lowerdir=/x 0 0',
    'cgroup2 /sys/fs/cgroup cgroup2 rw 0 0',
  ].join('\n');
  assert.equal(selectFreezable(table, resolve), ['/', '/boot/efi']);
});

test('bind mounts: the device once, at its first mount point', () => {
  const table = '/dev/vdb /srv ext4 rw 0 0\n/dev/vdb /var/www ext4 rw 0 0\n/dev/vdb /home/u/www ext4 rw 0 0\n';
  assert.equal(selectFreezable(table, resolve), ['/srv']);
});

test('btrfs subvolumes of one device count once', () => {
  const table = [
    '/dev/vdc / btrfs rw,subvolid=256,subvol=/@ 0 0',
    '/dev/vdc /home btrfs rw,subvolid=257,subvol=/@home 0 0',
    '/dev/vdc /.snapshots btrfs rw,subvolid=258,subvol=/@snapshots 0 0',
    '/dev/vdd /data xfs rw 0 0',
  ].join('\n');
  assert.equal(selectFreezable(table, resolve), ['/', '/data']);
});

test('device mapper: /dev/dm-N and /dev/mapper symlinks to it are skipped', () => {
  const table = [
    '/dev/mapper/vg0-root / ext4 rw 0 0',
    '/dev/dm-1 /home ext4 rw 0 0',
    '/dev/mapper/not-resolvable /opt ext4 rw 0 0',
    '/dev/vda1 /boot ext4 rw 0 0',
  ].join('\n');
  assert.equal(selectFreezable(table, resolve), ['/boot']);
});

test('loop devices are skipped, also behind a symlink', () => {
  const table =
    '/dev/loop0 /snap/core/1 squashfs ro 0 0\n/dev/disk/by-label/scratch /scratch ext4 rw 0 0\n/dev/vda1 / ext4 rw 0 0\n';
  assert.equal(selectFreezable(table, resolve), ['/']);
});

test('cifs and smbfs are skipped although their source starts with /', () => {
  const table =
    '//fileserver/share /mnt/share cifs rw,vers=3.0 0 0\n//old/share /mnt/old smbfs rw 0 0\n/dev/vda1 / ext4 rw 0 0\n';
  assert.equal(selectFreezable(table, resolve), ['/']);
});

test('a udev link and the device it names count as one device', () => {
  const table = '/dev/disk/by-uuid/1111-2222 /data ext4 rw 0 0\n/dev/vdb1 /data2 ext4 rw 0 0\n';
  assert.equal(selectFreezable(table, resolve), ['/data']);
});

test('spaces, tabs and backslashes encoded as octal escapes are decoded', () => {
  const table = '/dev/vdb1 /mnt/my\\040disk ext4 rw 0 0\n/dev/vdb2 /mnt/tab\\011and\\134slash ext4 rw 0 0\n';
  assert.equal(selectFreezable(table, resolve), ['/mnt/my disk', '/mnt/tab\tand\\slash']);
  assert.is(unescapeMountField('a\\040b\\040c'), 'a b c');
});

test('blank, short and CRLF lines do no harm; empty table selects nothing', () => {
  assert.equal(selectFreezable('', resolve), []);
  assert.equal(selectFreezable('\n\ngarbage\n/dev/vda1 / ext4 rw 0 0\r\n', resolve), ['/']);
  assert.equal(parseMountTable('/dev/vda1 / ext4 rw 0 0'), [
    { source: '/dev/vda1', mountpoint: '/', fstype: 'ext4', options: 'rw' },
  ]);
});

test('classifyMounts says why each entry is skipped', () => {
  const table = [
    'proc /proc proc rw 0 0',
    '/dev/vda1 / ext4 rw 0 0',
    '/dev/vda1 /srv ext4 rw 0 0',
    '//fs/share /mnt/share cifs rw 0 0',
    '/dev/disk/by-label/scratch /scratch ext4 rw 0 0',
    '/dev/mapper/vg0-home /home ext4 rw 0 0',
  ].join('\n');
  assert.equal(
    classifyMounts(table, resolve).map((m) => [m.mountpoint, m.skipped]),
    [
      ['/proc', 'not a block device'],
      ['/', undefined],
      ['/srv', 'the device of / again'],
      ['/mnt/share', 'a network filesystem'],
      ['/scratch', 'a loop device'],
      ['/home', 'a device-mapper device'],
    ],
  );
});

test('the real resolver on this machine: /proc/self/mounts never selects loop or pseudo filesystems', () => {
  const table = fs.readFileSync('/proc/self/mounts', 'utf8');
  const chosen = selectFreezable(table); // only computed, never frozen
  for (const m of parseMountTable(table).filter((e) => chosen.includes(e.mountpoint))) {
    assert.ok(m.source.startsWith('/') && !m.source.startsWith('/dev/loop'), JSON.stringify(m));
  }
});

test("qemu-ga's selection: block devices in table order, loop and device-mapper kept, bind mounts listed again", () => {
  const table = [
    'proc /proc proc rw 0 0',
    'tmpfs /run tmpfs rw 0 0',
    '/dev/mapper/vg0-root / ext4 rw 0 0',
    '/dev/vda1 /boot ext4 rw 0 0',
    '/dev/loop3 /snap/core squashfs ro 0 0',
    '//server/share /mnt/share cifs rw 0 0',
    '/server/old /mnt/old smbfs rw 0 0',
    'server:/export /mnt/nfs nfs4 rw 0 0',
    '/srv/data /var/data none rw,bind 0 0', // an mtab-style bind mount: its source is a directory
    '/dev/vda1 /var/www ext4 rw 0 0', // a bind mount as /proc/self/mounts shows it
    '/dev/vdb /mnt/with\\040space xfs rw 0 0',
    'overlay /var/lib/docker/x overlay rw 0 0',
  ].join('\n');
  const dirs = new Set(['/srv/data']);
  assert.equal(
    selectQemuGa(table, (s) => dirs.has(s)),
    ['/', '/boot', '/snap/core', '/var/www', '/mnt/with space'],
  );
  assert.equal(selectQemuGa(''), []);
});

test('a table read as bytes: a mount point whose name is not UTF-8 is selected as its bytes', () => {
  // "/srv/m\xff", "/mnt/é" in UTF-8, "/mnt/a\xf0\x80\x80b" with a space escaped, "/mnt/b\xc0\x80".
  const table = Buffer.concat([
    Buffer.from('/dev/vdb1 /srv/m'),
    Buffer.from([0xff]),
    Buffer.from(' ext4 rw 0 0\n/dev/vdb2 /mnt/\u00e9 ext4 rw 0 0\n/dev/vdb3 /mnt/a\\040'),
    Buffer.from([0xf0, 0x80, 0x80]),
    Buffer.from('b xfs rw 0 0\n/dev/vdb4 /mnt/b'),
    Buffer.from([0xc0, 0x80]),
    Buffer.from(' ext4 rw 0 0\ntmpfs /run/m'),
    Buffer.from([0xfe]),
    Buffer.from(' tmpfs rw 0 0\n'),
  ]);
  const entries = parseMountTable(table);
  assert.equal(
    entries.map((e) => [e.mountpoint, e.mountpointBytes?.toString('hex')]),
    [
      // As qemu-ga's JSON writer reads them: U+FFFD for each sequence it rejects, C0 80 a NUL.
      ['/srv/m\ufffd', Buffer.from('/srv/m\xff', 'latin1').toString('hex')],
      ['/mnt/\u00e9', undefined],
      ['/mnt/a \ufffdb', Buffer.from('/mnt/a \xf0\x80\x80b', 'latin1').toString('hex')],
      ['/mnt/b\u0000', Buffer.from('/mnt/b\xc0\x80', 'latin1').toString('hex')],
      ['/run/m\ufffd', Buffer.from('/run/m\xfe', 'latin1').toString('hex')],
    ],
  );
  assert.equal(entries[0], {
    source: '/dev/vdb1',
    mountpoint: '/srv/m\ufffd',
    mountpointBytes: Buffer.from('/srv/m\xff', 'latin1'),
    fstype: 'ext4',
    options: 'rw',
  });
  const chosen = selectFreezable(table, resolve);
  assert.equal(chosen, [
    entries[0].mountpointBytes,
    '/mnt/\u00e9',
    entries[2].mountpointBytes,
    entries[3].mountpointBytes,
  ]);
  assert.equal(
    selectQemuGa(table, () => false),
    chosen,
  );
  assert.equal(chosen.map(mountPathText), ['/srv/m\ufffd', '/mnt/\u00e9', '/mnt/a \ufffdb', '/mnt/b\u0000']);
  // Two names that read alike ("/x\uFFFD") are each frozen by their own bytes.
  const twins = Buffer.from('/dev/vdc /x\xff ext4 rw 0 0\n/dev/vdd /x\xfe ext4 rw 0 0\n', 'latin1');
  assert.equal(selectFreezable(twins, resolve), [Buffer.from('/x\xff', 'latin1'), Buffer.from('/x\xfe', 'latin1')]);
  // As text, a table is read as before: no bytes.
  assert.equal(parseMountTable(table.toString('utf8'))[0].mountpointBytes, undefined);
  assert.is(mountPathText(Buffer.from('/mnt/\u00e9')), '/mnt/\u00e9');
});

test.run();
