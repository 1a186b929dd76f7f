// guest-network-get-interfaces against qemu-ga 7.2 itself: both agents run inside a network
// namespace of the test's own (ip netns exec), holding links of several kinds (loopback, veth
// pairs up and down, a tun device without a hardware address, an IPv4 alias with a label, a
// point-to-point address, IPv6). Documentation addresses only; the test sends no traffic.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as assert from 'uvu/assert';
import * as netlib from '../../lib/net';
import { command, root, suite } from '../helpers/harness';
import { TestNetns } from '../helpers/netns';
import {
  both,
  diffAnswers,
  QmpClient,
  realQemuGa,
  startRealQemuGa,
  type QmpAnswer,
  type RealQemuGa,
} from '../helpers/qemu-ga';
import type { RunningAgent } from '../helpers/agent';

interface Ctx {
  ns?: TestNetns;
  real?: RealQemuGa;
  ember?: RunningAgent;
  q?: QmpClient;
  e?: QmpClient;
  tun?: boolean;
}

const test = suite<Ctx>('qemu-ga network', {});
const needs = [root, command('ip'), realQemuGa];
const able = () => needs.every((r) => r() === undefined);

test.before(async (ctx) => {
  if (!able()) return;
  const ns = (ctx.ns = TestNetns.create());
  ns.batch([
    'link set dev lo up',
    'link set dev a address 02:00:00:00:00:0a',
    'link add name c type veth peer name d',
    'link add name longname0123456 type veth peer name e',
    'address add 192.0.2.1/24 dev a',
    'address add 192.0.2.9/24 dev a label a:1',
    'address add 192.0.2.10/24 dev a label a:1',
    'address add 192.0.2.11/25 dev a label a:two',
    'address add 2001:db8::1/64 dev a',
    'address add 2001:db8::2/128 dev a',
    'address add 198.51.100.1 peer 198.51.100.2/32 dev c',
    'address add 2001:db8:1::1/48 dev c',
    'address add 198.51.100.33/27 dev longname0123456',
    'link set dev a up',
    'link set dev b up',
    'link set dev c up',
    'link set dev d up',
  ]);
  try {
    // A tun device has no hardware address at all (qemu-ga reports zeros).
    ns.batch(['tuntap add dev tun0 mode tun', 'address add 203.0.113.1/24 dev tun0']);
    ctx.tun = true;
  } catch {
    ctx.tun = false; // no /dev/net/tun here
  }
  await ns.settle();
  const wrap = ['ip', 'netns', 'exec', ns.name];
  [ctx.real, ctx.ember] = await Promise.all([startRealQemuGa([], wrap), ns.startAgent(['--protocol', 'qemu-ga'])]);
  [ctx.q, ctx.e] = await Promise.all([ctx.real.connect(), QmpClient.connect(ctx.ember.socket)]);
});

test.after(async (ctx) => {
  ctx.q?.close();
  ctx.e?.close();
  await Promise.all([ctx.real?.stop(), ctx.ember?.stop()]);
  ctx.ns?.destroy();
});

type Iface = {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: { 'ip-address-type': string; 'ip-address': string; prefix: number }[];
  statistics?: Record<string, number>;
};

const STAT_KEYS = [
  'rx-bytes',
  'rx-packets',
  'rx-errs',
  'rx-dropped',
  'tx-bytes',
  'tx-packets',
  'tx-errs',
  'tx-dropped',
];
const REQUEST = '{"execute":"guest-network-get-interfaces"}\n';

test(
  'guest-network-get-interfaces: the same interfaces, addresses and fields as qemu-ga',
  async ({ q, e, tun }) => {
    // qemu-ga, ember-ga, qemu-ga again: a counter the two qemu-ga answers agree on did not move
    // meanwhile (IPv6 sends a few MLD reports inside the namespace when a link comes up), so
    // ember-ga's must equal it.
    q!.send(REQUEST);
    const before = await q!.rawAnswer();
    e!.send(REQUEST);
    const mine = await e!.rawAnswer();
    q!.send(REQUEST);
    const after = await q!.rawAnswer();
    const [r1, m, r2] = [before, mine, after].map((b) => JSON.parse(b.toString()) as QmpAnswer);
    const real = r1.return as Iface[];
    const ours = m.return as Iface[];
    assert.ok(Array.isArray(ours), `ember-ga answered ${mine.toString()}`);

    const diffs = diffAnswers(r1, m, [/\.statistics\.[a-z-]+$/]);
    assert.equal(diffs, [], diffs.join('\n'));
    let moved = false;
    for (const [i, iface] of ours.entries()) {
      if (!iface.statistics) continue;
      for (const k of STAT_KEYS) {
        const v = iface.statistics[k];
        assert.ok(Number.isInteger(v) && v >= 0, `${iface.name} ${k}: ${v}`);
        const a = real[i].statistics![k];
        const b = (r2.return as Iface[])[i].statistics![k];
        if (a === b) assert.is(v, a, `${iface.name} ${k}`);
        else moved = true;
      }
    }
    // Nothing moved: the answers are the same bytes, member order included.
    if (!moved) assert.is(mine.toString(), before.toString());

    // What the namespace holds is in the answer, as the comparison above relies on.
    const names = ours.map((i) => i.name);
    for (const n of ['lo', 'a', 'b', 'c', 'd', 'e', 'a:1', 'a:two', 'longname0123456', ...(tun ? ['tun0'] : [])]) {
      assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
    }
    const by = (n: string) => ours.find((i) => i.name === n)!;
    assert.is(by('a')['hardware-address'], '02:00:00:00:00:0a');
    assert.is(by('lo')['hardware-address'], '00:00:00:00:00:00');
    // An alias: the link's hardware address, its own addresses, no statistics.
    assert.is(by('a:1')['hardware-address'], '02:00:00:00:00:0a');
    assert.equal(
      by('a:1')['ip-addresses']!.map((x) => x['ip-address']),
      ['192.0.2.9', '192.0.2.10'],
    );
    assert.is(by('a:1').statistics, undefined);
    // A link without addresses (e is down: no IPv6 link-local either): a name and a hardware
    // address, nothing else.
    assert.equal(Object.keys(by('e')).sort(), ['hardware-address', 'name']);
    // A point-to-point address is its local one, with the peer's prefix.
    assert.equal(by('c')['ip-addresses']![0], {
      'ip-address-type': 'ipv4',
      'ip-address': '198.51.100.1',
      prefix: 32,
    });
    if (tun) assert.is(by('tun0')['hardware-address'], '00:00:00:00:00:00');
  },
  { needs },
);

test(
  'guest-network-get-interfaces follows changes: an address removed, a link deleted',
  async ({ ns, q, e }) => {
    ns!.batch(['address del 192.0.2.11/25 dev a label a:two', 'link del dev longname0123456']);
    const [real, ours] = await Promise.all([
      q!.call('guest-network-get-interfaces'),
      e!.call('guest-network-get-interfaces'),
    ]);
    const diffs = diffAnswers(real, ours, [/\.statistics\.[a-z-]+$/]);
    assert.equal(diffs, [], diffs.join('\n'));
    const names = (ours.return as Iface[]).map((i) => i.name);
    assert.not.ok(names.includes('a:two'));
    assert.not.ok(names.includes('longname0123456'));
  },
  { needs },
);

test(
  'names that are not UTF-8: an interface per name, as qemu-ga tells them apart and writes them',
  async ({ ns, q, e, real, ember }) => {
    // Names are bytes ("a\xff", "a\xfe": both "a\uFFFD" decoded), so `ip` gets them in a
    // latin1 batch. C0 80 is a NUL to qemu's writer, U+FFFE a noncharacter it replaces.
    const batch = (lines: string[]) =>
      execFileSync('ip', ['-n', ns!.name, '-batch', '-'], { input: Buffer.from(`${lines.join('\n')}\n`, 'latin1') });
    batch([
      'link add name a\xff type veth peer name a\xfe',
      'link add name b\xc0\x80 type veth peer name c\xef\xbf\xbe',
      'link add name d\xe2\x82 type veth peer name f\xc3\xa9',
      'address add 198.51.100.65/27 dev a\xff',
      'address add 198.51.100.97/27 dev a\xfe',
      'address add 203.0.113.65/27 dev a\xff label a\xff:1',
      'address add 203.0.113.97/27 dev a\xfe label a\xfe:1',
      'address add 2001:db8:2::1/64 dev a\xfe',
      'address add 203.0.113.129/27 dev b\xc0\x80 label b\xc0\x80:\xff',
    ]);
    try {
      // Byte for byte, counters aside.
      const p = { real: real!, ember: ember!, q: q!, e: e! };
      const { real: r, ember: m } = await both(p, REQUEST);
      const noStats = (b: Buffer) => b.toString('latin1').replace(/"statistics": \{[^}]*\}/g, '"statistics": {}');
      assert.is(noStats(m), noStats(r));
      const ours = (JSON.parse(m.toString()) as QmpAnswer).return as Iface[];
      const named = (n: string) => ours.filter((i) => i.name === n);
      assert.is(named('a\ufffd').length, 2);
      assert.equal(
        named('a\ufffd').map((i) => i['ip-addresses']!.map((x) => x['ip-address'])),
        [['198.51.100.97', '2001:db8:2::1'], ['198.51.100.65']],
      );
      assert.equal(
        named('a\ufffd:1').map((i) => i['ip-addresses']!.map((x) => x['ip-address'])),
        [['203.0.113.97'], ['203.0.113.65']],
      );
      for (const n of ['b\u0000', 'c\ufffd', 'd\ufffd', 'f\u00e9', 'b\u0000:\ufffd']) assert.is(named(n).length, 1, n);
      // lib/net: the name decoded, and the bytes of those that are not UTF-8.
      const raw = (await netlib.links({ netns: ns!.name })).filter((l) => l.nameBytes);
      assert.equal(raw.map((l) => [l.name, l.nameBytes!.toString('hex')]).sort(), [
        ['a\ufffd', '61fe'],
        ['a\ufffd', '61ff'],
        ['b\ufffd\ufffd', '62c080'],
        ['d\ufffd', '64e282'],
      ]);
      const labels = (await netlib.addresses({ netns: ns!.name })).filter((a) => a.labelBytes);
      assert.equal(labels.map((a) => a.labelBytes!.toString('hex')).sort(), [
        '61fe',
        '61fe3a31',
        '61ff',
        '61ff3a31',
        '62c0803aff',
      ]);
    } finally {
      batch(['link del dev a\xff', 'link del dev b\xc0\x80', 'link del dev d\xe2\x82']);
    }
  },
  { needs },
);

test(
  "lib/net links(): counters are /proc/net/dev's, read between two reads of it",
  async ({ ns }) => {
    // This process's own namespace, read only: its counters move, so each must lie between
    // the file's value before and after.
    const proc = () => {
      const m = new Map<string, bigint[]>();
      for (const line of fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2)) {
        const [name, rest] = line.trim().split(':');
        if (rest !== undefined) m.set(name, rest.trim().split(/\s+/).map(BigInt));
      }
      return m;
    };
    const before = proc();
    const links = await netlib.links();
    const after = proc();
    assert.ok(links.length > 0);
    for (const l of links) {
      const b = before.get(l.name);
      const a = after.get(l.name);
      if (!b || !a || !l.stats) continue; // appeared or went meanwhile
      const s = l.stats;
      const mine = [
        s.rxBytes,
        s.rxPackets,
        s.rxErrors,
        s.rxDropped + s.rxMissed,
        s.txBytes,
        s.txPackets,
        s.txErrors,
        s.txDropped,
      ];
      const cols = [0, 1, 2, 3, 8, 9, 10, 11];
      cols.forEach((c, i) =>
        assert.ok(b[c] <= mine[i] && mine[i] <= a[c], `${l.name} column ${c}: ${b[c]} <= ${mine[i]} <= ${a[c]}`),
      );
      assert.ok(b[7] <= s.multicast && s.multicast <= a[7], `${l.name} multicast`);
      assert.ok(b[13] <= s.collisions && s.collisions <= a[13], `${l.name} collisions`);
    }
    // And in the test namespace, with its netns option: every link has counters.
    const inNs = await netlib.links({ netns: ns!.name });
    assert.ok(inNs.every((l) => l.stats !== undefined && typeof l.stats.rxBytes === 'bigint'));
  },
  { needs },
);

test.run();
