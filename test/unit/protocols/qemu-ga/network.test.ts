// guest-network-get-interfaces' shaping (lib/protocols/qemu-ga/commands/network.ts) on dumps the
// test makes up: the cases a namespace of veth pairs cannot show (hardware addresses of other
// lengths, an alias whose label names no link, counters past 2^63).
import * as assert from 'uvu/assert';
import type { Address, Link, LinkStats } from '../../../../lib/net';
import { hardwareAddress, qgaInterfaces, qgaStatistics } from '../../../../lib/protocols/qemu-ga/commands/network';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga-network');

const zero: LinkStats = {
  rxBytes: 0n,
  rxPackets: 0n,
  rxErrors: 0n,
  rxDropped: 0n,
  rxMissed: 0n,
  txBytes: 0n,
  txPackets: 0n,
  txErrors: 0n,
  txDropped: 0n,
  multicast: 0n,
  collisions: 0n,
};

const link = (index: number, name: string, hwaddr: string, stats: LinkStats | null = zero): Link => ({
  index,
  name,
  hwaddr,
  flags: 1,
  up: true,
  type: 1,
  mtu: 1500,
  operstate: 6,
  stats: stats ?? undefined,
});

const addr = (index: number, family: 4 | 6, address: string, prefixlen: number, label = ''): Address => ({
  index,
  family,
  address,
  prefixlen,
  scope: 0,
  flags: 0x80,
  peer: '',
  label,
});

test("hardware addresses are SIOCGIFHWADDR's: 6 bytes, zero-padded or cut", () => {
  assert.is(hardwareAddress('02:00:00:00:00:0a'), '02:00:00:00:00:0a');
  assert.is(hardwareAddress(''), '00:00:00:00:00:00'); // tun, wireguard: no address at all
  assert.is(hardwareAddress('c0:00:02:01'), 'c0:00:02:01:00:00'); // an ipip tunnel's IPv4 address
  const ib = Array.from({ length: 20 }, (_, i) => i.toString(16).padStart(2, '0')).join(':');
  assert.is(hardwareAddress(ib), '00:01:02:03:04:05'); // infiniband's 20 bytes
});

test('links first in dump order, then addresses; aliases by label; statistics only with an address', () => {
  const ls = [link(1, 'lo', '00:00:00:00:00:00'), link(3, 'eth0', '52:54:00:12:34:56'), link(2, 'eth1', '', null)];
  const as = [
    addr(1, 4, '127.0.0.1', 8, 'lo'),
    addr(3, 4, '192.0.2.1', 24, 'eth0'),
    addr(3, 4, '192.0.2.2', 24, 'eth0:1'),
    addr(3, 4, '192.0.2.3', 24, 'other'), // a label naming no link: no hardware address
    addr(9, 6, '2001:db8::9', 64), // its link appeared after the link dump
    addr(3, 6, '2001:db8::1', 64),
    addr(2, 6, 'fe80::1', 200),
  ];
  const out = qgaInterfaces(ls, as);
  assert.equal(
    out.map((i) => i.name),
    ['lo', 'eth0', 'eth1', 'eth0:1', 'other'],
  );
  assert.equal(out[1]['ip-addresses'], [
    { 'ip-address-type': 'ipv4', 'ip-address': '192.0.2.1', prefix: 24 },
    { 'ip-address-type': 'ipv6', 'ip-address': '2001:db8::1', prefix: 64 },
  ]);
  assert.ok(out[1].statistics);
  // eth1: no counters from the kernel, so none in the answer; a prefix past 128 is cut.
  assert.is(out[2].statistics, undefined);
  assert.is(out[2]['hardware-address'], '00:00:00:00:00:00');
  assert.equal(out[2]['ip-addresses'], [{ 'ip-address-type': 'ipv6', 'ip-address': 'fe80::1', prefix: 128 }]);
  assert.equal(out[3], {
    name: 'eth0:1',
    'hardware-address': '52:54:00:12:34:56',
    'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '192.0.2.2', prefix: 24 }],
  });
  assert.equal(out[4], {
    name: 'other',
    'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '192.0.2.3', prefix: 24 }],
  });
});

test('names are told apart by their bytes (links "a\\xff" and "a\\xfe" are two) and written as qemu-ga does', () => {
  const bytes = (...b: number[]) => Buffer.from(b);
  const ls = [
    { ...link(2, 'a\ufffd', '02:00:00:00:00:02'), nameBytes: bytes(0x61, 0xff) },
    { ...link(3, 'a\ufffd', '02:00:00:00:00:03'), nameBytes: bytes(0x61, 0xfe) },
    { ...link(4, 'b\ufffd\ufffd', '02:00:00:00:00:04'), nameBytes: bytes(0x62, 0xc0, 0x80) },
    link(5, 'c\ufffe', '02:00:00:00:00:05'), // valid UTF-8, a noncharacter to qemu
    link(6, '\u00e9', '02:00:00:00:00:06'),
  ];
  const as = [
    addr(2, 4, '192.0.2.2', 24, 'a\ufffd'),
    addr(3, 4, '192.0.2.3', 24, 'a\ufffd'),
    addr(3, 4, '192.0.2.33', 24, 'a\ufffd:1'),
    addr(2, 4, '192.0.2.22', 24, 'a\ufffd:1'),
    addr(6, 4, '192.0.2.6', 24, '\u00e9'),
  ];
  as[0].labelBytes = bytes(0x61, 0xff);
  as[1].labelBytes = bytes(0x61, 0xfe);
  as[2].labelBytes = bytes(0x61, 0xfe, 0x3a, 0x31);
  as[3].labelBytes = bytes(0x61, 0xff, 0x3a, 0x31);
  const out = qgaInterfaces(ls, as);
  assert.equal(
    out.map((i) => [i.name, i['hardware-address'], i['ip-addresses']?.map((x) => x['ip-address']), !!i.statistics]),
    [
      ['a\ufffd', '02:00:00:00:00:02', ['192.0.2.2'], true],
      ['a\ufffd', '02:00:00:00:00:03', ['192.0.2.3'], true],
      ['b\u0000', '02:00:00:00:00:04', undefined, false], // C0 80: qemu's NUL
      ['c\ufffd', '02:00:00:00:00:05', undefined, false],
      ['\u00e9', '02:00:00:00:00:06', ['192.0.2.6'], true],
      ['a\ufffd:1', '02:00:00:00:00:03', ['192.0.2.33'], false],
      ['a\ufffd:1', '02:00:00:00:00:02', ['192.0.2.22'], false],
    ],
  );
});

test("statistics are /proc/net/dev's as qemu-ga scans them: drops plus misses, at most 2^63-1", () => {
  const big = (1n << 64n) - 5n;
  const s = qgaStatistics({ ...zero, rxBytes: 2n ** 60n + 1n, txBytes: big, rxDropped: big, rxMissed: 10n });
  assert.is(s['rx-bytes'], 2n ** 60n + 1n);
  assert.is(s['tx-bytes'], (1n << 63n) - 1n);
  assert.is(s['rx-dropped'], 5n); // the kernel's u64 sum wraps
});

test.run();
