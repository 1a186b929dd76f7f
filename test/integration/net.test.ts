// The network commands against iproute2 as the oracle, in a namespace of our own: the agent runs
// inside it (ip netns exec), `ip -j -n NS` reads the kernel state independently. Documentation
// addresses only; no traffic is sent (IPv6 DAD and router solicitations are off).
import { execFileSync } from 'child_process';
import * as assert from 'uvu/assert';
import * as netlib from '../../lib/net';
import * as net from 'net';
import { routesText } from '../../lib/client/format';
import { errorMessage, memKiB, type LineClient, type RunningAgent } from '../helpers/agent';
import { command, root, suite, waitFor } from '../helpers/harness';
import { TestNetns } from '../helpers/netns';

interface Ctx {
  ns: TestNetns;
  agent: RunningAgent;
  c: LineClient;
}

const test = suite<Ctx>('net', {} as Ctx);

// Addresses and routes every test starts from (`replace`, so it also restores them).
const ADDRESSES = [
  'address replace 192.0.2.1/24 dev a',
  'address replace 2001:db8:1::1/64 dev a',
  'address replace 198.51.100.1/24 dev b',
  'address replace 2001:db8:2::1/64 dev b',
];
const ROUTES = [
  'route replace default via 192.0.2.254 dev a',
  'route replace 203.0.113.0/25 dev b scope link',
  'route replace 203.0.113.128/25 via 198.51.100.254 dev b src 198.51.100.1',
  'route replace 203.0.113.7 dev a',
  'route replace ::/0 via 2001:db8:1::fe dev a',
  'route replace 2001:db8:3::/48 via 2001:db8:2::fe dev b',
  'route replace 2001:db8:4::/56 dev a src 2001:db8:1::1',
];
const needs = [root, command('ip')];
const able = () => needs.every((r) => r() === undefined);

test.before(async (ctx) => {
  if (!able()) return;
  const ns = (ctx.ns = TestNetns.create());
  ns.batch(['link set dev lo up', 'link set dev a up', 'link set dev b up', ...ADDRESSES]);
  await ns.settle(); // IPv6 addresses must be past DAD to be a route's src
  ns.batch(ROUTES);
  ctx.agent = await ns.startAgent();
  ctx.c = await ctx.agent.connect();
});

test.after(async (ctx) => {
  ctx.c?.close();
  await ctx.agent?.stop();
  ctx.ns?.destroy();
});

// ---- The oracle: ip -j output in the agent's answer shapes -------------------------------------

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  address?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  scope?: string;
  /** An IPv4 route via an IPv6 gateway: `via inet6 ADDR`. */
  via?: { host: string };
  nexthops?: { gateway?: string; via?: { host: string }; dev?: string }[];
}

const GO_FLAGS: [string, string][] = [
  ['UP', 'up'],
  ['BROADCAST', 'broadcast'],
  ['LOOPBACK', 'loopback'],
  ['POINTOPOINT', 'pointtopoint'],
  ['MULTICAST', 'multicast'],
];

function ipNetifaces(ns: TestNetns) {
  return ns.json<IpLink[]>('address', 'show').map((l) => ({
    index: l.ifindex,
    name: l.ifname,
    hwaddr: !l.address || l.address === '00:00:00:00:00:00' ? '' : l.address,
    flags: GO_FLAGS.filter(([k]) => l.flags.includes(k))
      .map(([, v]) => v)
      .join('|'),
    ips: (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
  }));
}

const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

// Masks computed here, not with the code under test.
function v4mask(len: number): string {
  const m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join('.');
}
const V6_MASKS: Record<number, string> = {
  48: 'ffff:ffff:ffff::',
  56: 'ffff:ffff:ffff:ff00::',
  64: 'ffff:ffff:ffff:ffff::',
  128: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
};

function toAgentRoute(r: IpRoute, v6: boolean) {
  let dst = { ip: '', mask: '' };
  if (r.dst !== 'default') {
    const [ip, len] = r.dst.split('/');
    const n = len === undefined ? (v6 ? 128 : 32) : Number(len);
    const mask = v6 ? V6_MASKS[n] : v4mask(n);
    if (mask === undefined) throw new Error(`test has no mask for /${n}`);
    dst = { ip, mask };
  }
  const route = {
    ifname: r.dev ?? '',
    scope: SCOPES[r.scope ?? 'global'] ?? Number(r.scope),
    dst,
    src: r.prefsrc ?? '',
    gateway: r.gateway ?? r.via?.host ?? '',
  };
  return r.nexthops
    ? { ...route, nexthops: r.nexthops.map((h) => ({ ifname: h.dev ?? '', gateway: h.gateway ?? h.via?.host ?? '' })) }
    : route;
}

function ipRoutes(ns: TestNetns, family: 0 | 2 | 10) {
  const v4 =
    family === 10 ? [] : ns.json<IpRoute[]>('-4', 'route', 'show', 'table', 'main').map((r) => toAgentRoute(r, false));
  const v6 =
    family === 2 ? [] : ns.json<IpRoute[]>('-6', 'route', 'show', 'table', 'main').map((r) => toAgentRoute(r, true));
  return [...v4, ...v6];
}

function hasAddr(ns: TestNetns, dev: string, cidr: string): boolean {
  const [l] = ns.json<IpLink[]>('address', 'show', 'dev', dev);
  return (l.addr_info ?? []).some((a) => `${a.local}/${a.prefixlen}` === cidr);
}

const opts = { needs, timeout: 20_000 };

// ---- Reading ----------------------------------------------------------------------------------

test(
  'get-netifaces agrees with ip -j address: lo, veths, IPv4 and IPv6',
  async ({ ns, c }) => {
    const got = await c.ok('get-netifaces');
    const want = ipNetifaces(ns);
    assert.equal(got, want);
    const lo = want.find((l) => l.name === 'lo')!;
    assert.is(lo.hwaddr, '');
    assert.is(lo.flags, 'up|loopback');
    assert.ok(lo.ips.includes('127.0.0.1/8') && lo.ips.includes('::1/128'));
    const a = want.find((l) => l.name === 'a')!;
    assert.match(a.hwaddr, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.is(a.flags, 'up|broadcast|multicast');
    assert.ok(a.ips.includes('192.0.2.1/24') && a.ips.includes('2001:db8:1::1/64'));
  },
  opts,
);

/** `ip -batch` in namespace `ns`, each line's characters as bytes (latin1): names need not be UTF-8. */
function ipBatch(ns: string, lines: string[]): void {
  execFileSync('ip', ['-n', ns, '-batch', '-'], { input: Buffer.from(`${lines.join('\n')}\n`, 'latin1') });
}

test(
  'get-netifaces: a name that is not UTF-8 is written from its bytes as Go writes it, \\ufffd for each stray byte',
  async ({ ns, c }) => {
    // Names are bytes: `ip` gets them in a latin1 batch, and its -j output read as latin1 gives
    // them back a character per byte.
    const batch = (lines: string[]) => ipBatch(ns.name, lines);
    batch([
      'link add name a\xff type veth peer name a\xfe',
      'link add name d\xe2\x82 type veth peer name e\xef\xbf\xbd',
      'address add 198.51.100.65/27 dev a\xff',
    ]);
    try {
      const links = JSON.parse(
        execFileSync('ip', ['-j', '-n', ns.name, 'link', 'show'], { encoding: 'latin1' }),
      ) as IpLink[];
      const indexOf = new Map(links.map((l) => [l.ifname, l.ifindex]));
      c.send('{"execute":"get-netifaces","tag":"raw-names"}\r\n');
      await waitFor(() => c.lines.some((l) => l.endsWith('"tag":"raw-names"}')), 10_000, 'the answer');
      const at = c.lines.findIndex((l) => l.endsWith('"tag":"raw-names"}'));
      const line = c.lines.splice(at, 1)[0];
      // What phoenix-guest-agent 0.7.1 writes (Go's encoding/json, go1.19 checked): a byte that
      // begins no UTF-8 character is the escape \ufffd; a U+FFFD that is in the name is itself.
      const want: [string, string][] = [
        ['a\xff', '"a\\ufffd"'],
        ['a\xfe', '"a\\ufffd"'],
        ['d\xe2\x82', '"d\\ufffd\\ufffd"'],
        ['e\xef\xbf\xbd', '"e\ufffd"'],
      ];
      for (const [bytes, json] of want) {
        const index = indexOf.get(bytes);
        assert.ok(index !== undefined, Buffer.from(bytes, 'latin1').toString('hex'));
        assert.ok(line.includes(`{"index":${index},"name":${json},"hwaddr":`), `${json} in ${line}`);
      }
      // The rest of the answer as before, ip's.
      const rest = (l: { name: string }) => ({ ...l, name: undefined });
      const got = (JSON.parse(line) as { return: { name: string }[] }).return;
      assert.equal(got.map(rest), ipNetifaces(ns).map(rest));
    } finally {
      batch(['link del dev a\xff', 'link del dev d\xe2\x82']);
    }
  },
  opts,
);

test(
  'get-route-list: an interface name that is not UTF-8 is written from its bytes as Go writes it',
  async ({ ns, c }) => {
    const batch = (lines: string[]) => ipBatch(ns.name, lines);
    batch([
      'link add name r\xff type veth peer name r\xfe',
      'link set dev r\xff up',
      'link set dev r\xfe up',
      'route add 198.51.100.128/26 dev r\xff',
      'route add 198.51.100.192/26 nexthop via 192.0.2.77 dev r\xff onlink nexthop via 192.0.2.78 dev r\xfe onlink',
    ]);
    try {
      c.send('{"execute":"get-route-list","arguments":{"family":2},"tag":"raw-routes"}\r\n');
      await waitFor(() => c.lines.some((l) => l.endsWith('"tag":"raw-routes"}')), 10_000, 'the answer');
      const at = c.lines.findIndex((l) => l.endsWith('"tag":"raw-routes"}'));
      const line = c.lines.splice(at, 1)[0];
      assert.ok(
        line.includes(
          '{"ifname":"r\\ufffd","scope":253,"dst":{"ip":"198.51.100.128","mask":"255.255.255.192"},"src":"","gateway":""}',
        ),
        line,
      );
      assert.ok(
        line.includes(
          '"nexthops":[{"ifname":"r\\ufffd","gateway":"192.0.2.77"},{"ifname":"r\\ufffd","gateway":"192.0.2.78"}]',
        ),
        line,
      );
      // The rest of the answer as before, ip's.
      const got = (JSON.parse(line) as { return: unknown[] }).return;
      assert.equal(got.length, ipRoutes(ns, 2).length);
    } finally {
      batch(['link del dev r\xff']);
    }
  },
  opts,
);

test(
  'get-route-list agrees with ip -j route for family 0, 2 and 10',
  async ({ ns, c }) => {
    for (const family of [0, 2, 10] as const) {
      const got = await c.ok('get-route-list', family === 0 ? undefined : { family });
      assert.equal(got, ipRoutes(ns, family), `family ${family}`);
    }
    const all = (await c.ok('get-route-list')) as ReturnType<typeof toAgentRoute>[];
    // The cases the issue names, present and in the reference's shape.
    assert.ok(
      all.some((r) => r.dst.ip === '' && r.gateway === '192.0.2.254' && r.ifname === 'a'),
      'IPv4 default',
    );
    assert.ok(
      all.some((r) => r.dst.ip === '' && r.gateway === '2001:db8:1::fe'),
      'IPv6 default',
    );
    assert.ok(
      all.some((r) => r.dst.ip === '203.0.113.0' && r.dst.mask === '255.255.255.128' && r.scope === 253),
      'link scope',
    );
    assert.ok(
      all.some((r) => r.dst.ip === '203.0.113.128' && r.src === '198.51.100.1'),
      'src',
    );
    assert.ok(
      all.some(
        (r) => r.dst.ip === '2001:db8:4::' && r.dst.mask === 'ffff:ffff:ffff:ff00::' && r.src === '2001:db8:1::1',
      ),
      'IPv6 src',
    );
    assert.ok(
      all.some((r) => r.dst.ip === '203.0.113.7' && r.dst.mask === '255.255.255.255'),
      'host route',
    );
  },
  opts,
);

test(
  'get-route-list: a multipath route has "" for ifname and gateway and its paths in nexthops, IPv4 and IPv6; an IPv4 route via an IPv6 gateway',
  async ({ ns, c }) => {
    const added: [string[], string[]][] = [
      [
        [
          '-4',
          'route',
          'add',
          '203.0.113.64/26',
          'nexthop',
          'via',
          '192.0.2.254',
          'dev',
          'a',
          'nexthop',
          'via',
          '198.51.100.254',
          'dev',
          'b',
        ],
        ['-4', 'route', 'del', '203.0.113.64/26'],
      ],
      [
        [
          '-6',
          'route',
          'add',
          '2001:db8:5::/48',
          'nexthop',
          'via',
          '2001:db8:1::fe',
          'dev',
          'a',
          'nexthop',
          'via',
          '2001:db8:2::fe',
          'dev',
          'b',
        ],
        ['-6', 'route', 'del', '2001:db8:5::/48'],
      ],
      [
        ['-4', 'route', 'add', '203.0.113.32/27', 'via', 'inet6', '2001:db8:1::fe', 'dev', 'a'],
        ['-4', 'route', 'del', '203.0.113.32/27'],
      ],
    ];
    const undo: string[][] = [];
    try {
      for (const [add, del] of added) {
        ns.ip(...add);
        undo.push(del);
      }
      const all = (await c.ok('get-route-list')) as ReturnType<typeof toAgentRoute>[];
      assert.equal(all, ipRoutes(ns, 0));
      const v4 = all.find((r) => r.dst.ip === '203.0.113.64');
      assert.equal(v4, {
        ifname: '',
        scope: 0,
        dst: { ip: '203.0.113.64', mask: '255.255.255.192' },
        src: '',
        gateway: '',
        nexthops: [
          { ifname: 'a', gateway: '192.0.2.254' },
          { ifname: 'b', gateway: '198.51.100.254' },
        ],
      });
      const v6 = all.find((r) => r.dst.ip === '2001:db8:5::');
      assert.equal(v6 && 'nexthops' in v6 ? v6.nexthops : undefined, [
        { ifname: 'a', gateway: '2001:db8:1::fe' },
        { ifname: 'b', gateway: '2001:db8:2::fe' },
      ]);
      assert.ok(all.filter((r) => 'nexthops' in r).length === 2, 'only multipath routes have nexthops');
      // ember-ga-ctl's table: one row per path, the destination on the first.
      const text = routesText(all.filter((r) => r.dst.ip === '203.0.113.64'));
      assert.match(text, /^203\.0\.113\.64\/26 +192\.0\.2\.254 +a +- +global\n +198\.51\.100\.254 +b +- +global$/m);
      // RTA_VIA: a gateway of the other family, on a single-path route.
      const via = all.find((r) => r.dst.ip === '203.0.113.32');
      assert.equal(via, {
        ifname: 'a',
        scope: 0,
        dst: { ip: '203.0.113.32', mask: '255.255.255.224' },
        src: '',
        gateway: '2001:db8:1::fe',
      });
    } finally {
      for (const del of undo.reverse()) ns.ip(...del);
    }
  },
  opts,
);

// ---- Addresses --------------------------------------------------------------------------------

test(
  'ipaddr-add / ipaddr-del, IPv4 and IPv6, and the linux- aliases',
  async ({ ns, c }) => {
    for (const [add, del, cidr] of [
      ['ipaddr-add', 'ipaddr-del', '203.0.113.5/24'],
      ['linux-ipaddr-add', 'linux-ipaddr-del', '2001:db8:5::5/64'],
    ]) {
      assert.is(await c.ok(add, { ip: cidr, ifname: 'b' }), true);
      assert.ok(hasAddr(ns, 'b', cidr), `${cidr} added`);
      assert.equal(await c.ok('get-netifaces'), ipNetifaces(ns));
      assert.is(await c.ok(del, { ip: cidr, ifname: 'b' }), true);
      assert.not.ok(hasAddr(ns, 'b', cidr), `${cidr} removed`);
    }
    // IPv4 addresses get the subnet's broadcast address, as with `ip address add ... brd +`.
    await c.ok('ipaddr-add', { ip: '203.0.113.66/26', ifname: 'b' });
    const [withBrd] = ns.json<{ addr_info: { local: string; broadcast?: string }[] }[]>('address', 'show', 'dev', 'b');
    assert.is(withBrd.addr_info.find((x) => x.local === '203.0.113.66')?.broadcast, '203.0.113.127');
    await c.ok('ipaddr-del', { ip: '203.0.113.66/26', ifname: 'b' });
    // A bare address is a host address, as with `ip address add`.
    assert.is(await c.ok('ipaddr-add', { ip: '203.0.113.9', ifname: 'b' }), true);
    assert.ok(hasAddr(ns, 'b', '203.0.113.9/32'));
    await c.ok('ipaddr-del', { ip: '203.0.113.9/32', ifname: 'b' });
    assert.not.ok(hasAddr(ns, 'b', '203.0.113.9/32'));
  },
  opts,
);

test(
  'an interface with 50 addresses',
  async ({ ns, c }) => {
    const cidrs = [
      ...Array.from({ length: 35 }, (_, i) => `203.0.113.${i + 10}/24`),
      ...Array.from({ length: 15 }, (_, i) => `2001:db8:50::${(i + 1).toString(16)}/64`),
    ];
    // All 50 in one write: the agent handles them concurrently.
    c.send(
      cidrs
        .map(
          (ip, i) => JSON.stringify({ execute: 'ipaddr-add', arguments: { ip, ifname: 'b' }, tag: `m${i}` }) + '\r\n',
        )
        .join(''),
    );
    const answers = await c.waitLines(50);
    c.lines.length = 0;
    assert.ok(
      answers.every((a) => a.return === true),
      JSON.stringify(answers.find((a) => a.error)),
    );
    const got = (await c.ok('get-netifaces')) as { name: string; ips: string[] }[];
    assert.equal(got, ipNetifaces(ns));
    const b = got.find((l) => l.name === 'b')!;
    for (const cidr of cidrs) assert.ok(b.ips.includes(cidr), cidr);
    assert.is(b.ips.length, 50 + 3); // plus 198.51.100.1/24, 2001:db8:2::1/64 and the link-local one
    // Newest first (the kernel lists them oldest first): deleting an IPv4 primary address takes
    // its secondaries with it, as with ip.
    for (const ip of b.ips.filter((x) => cidrs.includes(x)).reverse()) await c.ok('ipaddr-del', { ip, ifname: 'b' });
    const [l] = ns.json<IpLink[]>('address', 'show', 'dev', 'b');
    assert.is(l.addr_info!.length, 3);
  },
  opts,
);

// ---- Links ------------------------------------------------------------------------------------

test(
  'net-iface-down / net-iface-up',
  async ({ ns, c }) => {
    const up = () => ns.json<IpLink[]>('link', 'show', 'dev', 'b')[0].flags.includes('UP');
    assert.is(await c.ok('net-iface-down', { ifname: 'b' }), true);
    assert.not.ok(up());
    assert.equal(await c.ok('get-netifaces'), ipNetifaces(ns));
    assert.is(await c.ok('net-iface-down', { ifname: 'b' }), true); // already down: still fine
    assert.is(await c.ok('net-iface-up', { ifname: 'b' }), true);
    assert.ok(up());
    const b = ((await c.ok('get-netifaces')) as { name: string; flags: string }[]).find((l) => l.name === 'b')!;
    assert.is(b.flags, 'up|broadcast|multicast');
    // Down flushed b's routes and IPv6 addresses: restore what the next tests expect.
    ns.batch(ADDRESSES);
    await ns.settle();
    ns.batch(ROUTES);
  },
  opts,
);

// ---- Routes -----------------------------------------------------------------------------------

test(
  'route-add / route-del like ip route add|del, IPv4 and IPv6',
  async ({ ns, c }) => {
    const cases: { args: Record<string, unknown>; want: Partial<IpRoute> & { dst: string }; v6?: boolean }[] = [
      {
        args: { ifname: 'a', dst: '198.51.100.128/25', gateway: '192.0.2.200' },
        want: { dst: '198.51.100.128/25', gateway: '192.0.2.200', dev: 'a' },
      },
      {
        args: { ifname: 'b', dst: '203.0.113.200/32', src: '198.51.100.1' },
        want: { dst: '203.0.113.200', dev: 'b', prefsrc: '198.51.100.1', scope: 'link' },
      },
      { args: { ifname: 'b', dst: '203.0.113.201/32', scope: 0 }, want: { dst: '203.0.113.201', dev: 'b' } },
      {
        args: { ifname: 'a', dst: '2001:db8:6::/64', gateway: '2001:db8:1::fe' },
        want: { dst: '2001:db8:6::/64', gateway: '2001:db8:1::fe', dev: 'a' },
        v6: true,
      },
      {
        args: { ifname: 'b', dst: '2001:db8:7::/48', src: '2001:db8:2::1' },
        want: { dst: '2001:db8:7::/48', dev: 'b', prefsrc: '2001:db8:2::1' },
        v6: true,
      },
    ];
    for (const { args, want, v6 } of cases) {
      const find = () =>
        ns.json<IpRoute[]>(v6 ? '-6' : '-4', 'route', 'show', 'table', 'main').find((r) => r.dst === want.dst);
      assert.is(await c.ok('route-add', args), true);
      const r = find();
      assert.ok(r, `${want.dst} added`);
      for (const [k, v] of Object.entries(want))
        assert.is((r as unknown as Record<string, unknown>)[k], v, `${want.dst} ${k}`);
      if (!want.scope) assert.is(r!.scope, undefined, `${want.dst} universe scope`);
      assert.equal(await c.ok('get-route-list'), ipRoutes(ns, 0));
      assert.is(await c.ok('route-del', args), true);
      assert.is(find(), undefined, `${want.dst} removed`);
    }
  },
  opts,
);

test(
  'route-add / route-del of default routes, IPv4 and IPv6',
  async ({ ns, c }) => {
    ns.ip('-4', 'route', 'del', 'default');
    ns.ip('-6', 'route', 'del', 'default');
    const defaults = (v6: boolean) =>
      ns.json<IpRoute[]>(v6 ? '-6' : '-4', 'route', 'show', 'table', 'main').filter((r) => r.dst === 'default');
    for (const [args, v6] of [
      [{ ifname: 'a', dst: '', gateway: '192.0.2.253' }, false],
      [{ ifname: 'a', dst: '0.0.0.0/0', gateway: '192.0.2.252' }, false],
      [{ ifname: 'a', dst: 'default', gateway: '2001:db8:1::fd' }, true],
      [{ ifname: 'a', dst: '::/0', gateway: '2001:db8:1::fc' }, true],
    ] as const) {
      assert.is(await c.ok('route-add', args), true);
      const d = defaults(v6);
      assert.is(d.length, 1);
      assert.is(d[0].gateway, args.gateway);
      const list = (await c.ok('get-route-list', { family: v6 ? 10 : 2 })) as ReturnType<typeof toAgentRoute>[];
      assert.ok(list.some((r) => r.dst.ip === '' && r.dst.mask === '' && r.gateway === args.gateway));
      assert.is(await c.ok('route-del', args), true);
      assert.is(defaults(v6).length, 0);
    }
    ns.ip('-4', 'route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'a');
    ns.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:1::fe', 'dev', 'a');
  },
  opts,
);

test(
  'route-del without scope removes a link-scope route; with a wrong scope it does not',
  async ({ ns, c }) => {
    ns.ip('route', 'add', '203.0.113.250', 'dev', 'b', 'scope', 'link');
    const there = () =>
      ns.json<IpRoute[]>('-4', 'route', 'show', 'table', 'main').some((r) => r.dst === '203.0.113.250');
    const wrong = await c.call('route-del', { ifname: 'b', dst: '203.0.113.250/32', scope: 254 });
    assert.is(wrong.error?.code, 3);
    assert.ok(there());
    assert.is(await c.ok('route-del', { ifname: 'b', dst: '203.0.113.250/32' }), true);
    assert.not.ok(there());
  },
  opts,
);

// ---- Bad input --------------------------------------------------------------------------------

test(
  'bad input: clear errors with the errno, and the agent keeps serving',
  async ({ ns, c }) => {
    const before = JSON.stringify([ns.json('address'), ns.json('-4', 'route'), ns.json('-6', 'route')]);
    const cases: [string, Record<string, unknown>, number, RegExp][] = [
      [
        'ipaddr-add',
        { ip: '192.0.2.77/24', ifname: 'nosuch0' },
        19,
        /address add 192\.0\.2\.77\/24 dev nosuch0: no such network interface/,
      ],
      [
        'ipaddr-add',
        { ip: '192.0.2.1/24', ifname: 'a' },
        17,
        /address add 192\.0\.2\.1\/24 dev a: address already assigned/,
      ],
      ['ipaddr-add', { ip: '2001:db8:1::1/64', ifname: 'a' }, 17, /address already assigned/],
      [
        'ipaddr-del',
        { ip: '192.0.2.99/24', ifname: 'a' },
        99,
        /address del 192\.0\.2\.99\/24 dev a: address not assigned/,
      ],
      ['ipaddr-del', { ip: '2001:db8:1::99/64', ifname: 'a' }, 99, /address not assigned/],
      ['net-iface-up', { ifname: 'nosuch0' }, 19, /link set dev nosuch0 up: no such network interface/],
      ['net-iface-down', { ifname: 'nosuch0' }, 19, /no such network interface/],
      [
        'route-del',
        { ifname: 'a', dst: '198.51.100.0/25', gateway: '192.0.2.254' },
        3,
        /route del 198\.51\.100\.0\/25 via 192\.0\.2\.254 dev a: no such route/,
      ],
      ['route-del', { ifname: 'a', dst: '2001:db8:99::/64' }, 3, /no such route/],
      ['route-add', { ifname: 'nosuch0', dst: '198.51.100.0/25' }, 19, /no such network interface/],
      [
        'route-add',
        { ifname: 'a', dst: '203.0.113.7/32' },
        17,
        /route add 203\.0\.113\.7\/32 dev a: route already exists/,
      ],
      [
        'route-add',
        { ifname: 'a', dst: '198.51.100.7/24' },
        22,
        /route add 198\.51\.100\.7\/24 dev a: invalid argument/,
      ],
      [
        'ipaddr-add',
        { ip: '192.0.2.300/24', ifname: 'a' },
        -1,
        /^Invalid argument "ip": "192\.0\.2\.300\/24" is not an IP address in CIDR notation$/,
      ],
      [
        'ipaddr-add',
        { ip: '192.0.2.1/33', ifname: 'a' },
        -1,
        /^Invalid argument "ip": .*prefix length must be 0 to 32/,
      ],
      ['ipaddr-del', { ip: '2001:db8::1/129', ifname: 'a' }, -1, /^Invalid argument "ip": .*0 to 128/],
      [
        'ipaddr-add',
        { ip: '192.0.2.1/024', ifname: 'a' },
        -1,
        /^Invalid argument "ip": prefix length "024" has a leading zero \(ip would read it as octal\)$/,
      ],
      [
        'ipaddr-del',
        { ip: '2001:db8:1::1/064', ifname: 'a' },
        -1,
        /^Invalid argument "ip": prefix length "064" has a leading zero/,
      ],
      [
        'route-add',
        { ifname: 'a', dst: '198.51.100.0/024' },
        -1,
        /^Invalid argument "dst": prefix length "024" has a leading zero \(ip would read it as octal\)$/,
      ],
      [
        'route-del',
        { ifname: 'a', dst: '198.51.100.0/024' },
        -1,
        /^Invalid argument "dst": prefix length "024" has a leading zero/,
      ],
      ['ipaddr-add', { ip: 'not-an-ip', ifname: 'a' }, -1, /^Invalid argument "ip"/],
      [
        'ipaddr-add',
        { ip: '192.0.2.5/24', ifname: 'a/b' },
        -1,
        /^Invalid argument "ifname": "a\/b" is not a valid interface name/,
      ],
      ['route-add', { ifname: 'a', dst: '198.51.100.0/24', gateway: '192.0.2.999' }, -1, /^Invalid argument "gateway"/],
      [
        'route-add',
        { ifname: 'a', dst: '198.51.100.0/24', gateway: '2001:db8:1::fe' },
        -1,
        /^Invalid argument "gateway": .*not an IPv4 address/,
      ],
      ['route-add', { ifname: 'a', dst: '198.51.100.0/24', src: 'x' }, -1, /^Invalid argument "src"/],
      ['route-add', { ifname: 'a', dst: '' }, -1, /^Invalid argument "dst": a default route needs a gateway/],
      [
        'route-add',
        { ifname: 'a', dst: '198.51.100.0/24', scope: 256 },
        -1,
        /^Invalid argument "scope": expected an integer from 0 to 255, got 256$/,
      ],
      ['get-route-list', { family: 3 }, -1, /^Invalid argument "family": expected 0, 2 \(AF_INET\) or 10/],
      // wrong types
      ['ipaddr-add', { ip: 5, ifname: 'a' }, -1, /^Invalid argument "ip": expected a string, got an integer/],
      ['ipaddr-add', { ip: '192.0.2.5/24' }, -1, /^Missing argument "ifname"/],
      ['net-iface-up', { ifname: ['a'] }, -1, /^Invalid argument "ifname": expected a string/],
      ['get-route-list', { family: '2' }, -1, /^Invalid argument "family": expected an integer/],
      [
        'route-add',
        { ifname: 'a', dst: '198.51.100.0/24', scope: 'link' },
        -1,
        /^Invalid argument "scope": expected an integer/,
      ],
    ];
    for (const [cmd, args, code, re] of cases) {
      const a = await c.call(cmd, args);
      assert.ok(a.error, `${cmd} ${JSON.stringify(args)} should fail`);
      assert.match(errorMessage(a), re, `${cmd} ${JSON.stringify(args)}: ${errorMessage(a)}`);
      assert.is(a.error!.code, code, `${cmd} ${JSON.stringify(args)}: ${errorMessage(a)}`);
    }
    assert.is(
      JSON.stringify([ns.json('address'), ns.json('-4', 'route'), ns.json('-6', 'route')]),
      before,
      'failed commands changed nothing',
    );
    assert.is(typeof (await c.ok('ping')), 'string');
  },
  opts,
);

test(
  '300 pipelined get-route-list of 4,000 routes to a host that does not read: answers wait within the output budget, then all arrive',
  async ({ ns }) => {
    const routes = Array.from({ length: 4000 }, (_, i) => `route add 2001:db8:5:${i.toString(16)}::/64 dev a`);
    ns.batch(routes);
    const agent = await ns.startAgent();
    try {
      const s = net.createConnection(agent.socket);
      await new Promise((r) => s.once('connect', r));
      s.pause(); // reads nothing yet
      s.write('{"execute":"get-route-list","arguments":{"family":10}}\n'.repeat(300));
      await new Promise((r) => setTimeout(r, 4_000));
      const peak = memKiB(agent.proc.pid!, 'VmHWM') / 1024;
      assert.ok(peak < 200, `peak RSS ${peak.toFixed(0)} MiB while answers waited`);
      let got = 0;
      let tail = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        const lines = (tail + d).split('\n');
        tail = lines.pop()!;
        for (const l of lines) if ((JSON.parse(l) as { return: unknown[] }).return.length >= 4000) got++;
      });
      s.resume();
      await waitFor(() => got === 300, 60_000, `every answer (${got} of 300)`);
      s.destroy();
    } finally {
      await agent.stop();
      ns.batch(routes.map((r) => r.replace('route add', 'route del')));
    }
  },
  { ...opts, timeout: 90_000 },
);

// ---- The library, with its netns option, from this process ---------------------------------

test(
  'library: links/addresses/routes({netns}) match ip, errors are SystemErrors',
  async ({ ns }) => {
    const o = { netns: ns.name };
    const ipLinks = ns.json<IpLink[]>('address', 'show');
    const links = await netlib.links(o);
    assert.equal(
      links.map((l) => [l.index, l.name, l.up]),
      ipLinks.map((l) => [l.ifindex, l.ifname, l.flags.includes('UP')]),
    );
    const addrs = await netlib.addresses({ ...o, family: 6 });
    assert.ok(addrs.length > 0 && addrs.every((a) => a.family === 6));
    assert.equal(
      addrs.map((a) => `${a.address}/${a.prefixlen}`),
      ipLinks.flatMap((l) =>
        (l.addr_info ?? []).filter((x) => x.family === 'inet6').map((x) => `${x.local}/${x.prefixlen}`),
      ),
    );
    // A namespace file's path works as well as a name.
    assert.equal(
      (await netlib.links({ netns: `/run/netns/${ns.name}` })).map((l) => l.name),
      links.map((l) => l.name),
    );
    const v4 = await netlib.routes({ ...o, family: 4 });
    assert.is(v4.length, ns.json<IpRoute[]>('-4', 'route', 'show').length);
    assert.ok(v4.every((r) => r.table === 254));
    // table 0: every table, as `ip route show table all` (the local table's routes included).
    const all = await netlib.routes({ ...o, family: 4, table: 0 });
    assert.is(all.length, ns.json<IpRoute[]>('-4', 'route', 'show', 'table', 'all').length);
    assert.ok(
      all.some((r) => r.table === 255 && r.dst === '192.0.2.1' && r.type === 2),
      'the local route of 192.0.2.1',
    );

    await netlib.addRoute({ dst: '198.51.100.200/30', gateway: '192.0.2.254', ifname: 'a', metric: 7 }, o);
    const r = ns.json<(IpRoute & { metric?: number })[]>('-4', 'route', 'show', '198.51.100.200/30')[0];
    assert.is(r.metric, 7);
    await netlib.deleteRoute({ dst: '198.51.100.200/30' }, o);
    assert.is(ns.json('-4', 'route', 'show', '198.51.100.200/30').length, 0);

    try {
      await netlib.deleteRoute({ dst: '198.51.100.200/30' }, o);
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.instance(e, Error);
      const x = e as { name: string; code: string; errno: number; message: string };
      assert.is(x.name, 'SystemError');
      assert.is(x.code, 'ESRCH');
      assert.is(x.errno, 3);
      assert.is(x.message, 'route del 198.51.100.200/30: no such route');
    }
    try {
      await netlib.links({ netns: 'ember-test-does-not-exist' });
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.is((e as { code: string }).code, 'ENOENT');
      assert.match((e as Error).message, /setns \/run\/netns\/ember-test-does-not-exist: no such file or directory/);
    }
    try {
      await netlib.addAddress({ ifname: 'a', cidr: 'nope' }, o);
      assert.unreachable('should have thrown');
    } catch (e) {
      assert.instance(e, netlib.NetInputError);
    }
    // The one check of an address change's input: a bad name says which argument it was.
    for (const change of [
      () => netlib.addAddress({ ifname: 'a/b', cidr: '192.0.2.1/24' }, o),
      () => netlib.setLinkUp('a b', o),
    ]) {
      try {
        await change();
        assert.unreachable('should have thrown');
      } catch (e) {
        assert.instance(e, netlib.NetInputError);
        assert.is((e as InstanceType<typeof netlib.NetInputError>).field, 'ifname');
      }
    }
  },
  opts,
);

test(
  'library: address dumps stay whole while addresses change',
  async ({ ns }) => {
    // 400 addresses make the dump multi-part; ip adds and removes 20 others on the same link in
    // bursts meanwhile. Without the retry of interrupted dumps and the confirming second dump,
    // this sees duplicates or gaps within a few dozen dumps.
    const fixed = Array.from({ length: 400 }, (_, i) => `2001:db8:70::${(i + 1).toString(16)}/64`);
    ns.batch(fixed.map((c) => `address add ${c} dev b`));
    const churn = Array.from({ length: 20 }, (_, i) => `2001:db8:71::${(i + 1).toString(16)}/64`);
    const lines = [...churn.map((c) => `address add ${c} dev b`), ...churn.map((c) => `address del ${c} dev b`)];
    const { spawn } = await import('child_process');
    let done = false;
    const churner = (async () => {
      while (!done) {
        await new Promise<void>((resolve, reject) => {
          const p = spawn('ip', ['-n', ns.name, '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
          p.once('error', reject).once('exit', () => resolve());
          p.stdin!.end(lines.join('\n') + '\n');
        });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      for (let i = 0; i < 100; i++) {
        const list = await netlib.addresses({ netns: ns.name, family: 6 });
        const keys = list.map((a) => `${a.index} ${a.address}/${a.prefixlen}`);
        assert.is(new Set(keys).size, keys.length, 'no address twice');
        const onB = new Set(
          list
            .filter((a) => a.label === '' && a.address.startsWith('2001:db8:70::'))
            .map((a) => `${a.address}/${a.prefixlen}`),
        );
        assert.is(
          onB.size,
          fixed.length,
          `every unchanged address present (dump ${i}: ${onB.size} of ${fixed.length}, ${list.length} in all)`,
        );
      }
    } finally {
      done = true;
      await churner;
      ns.batch(fixed.map((c) => `address del ${c} dev b`));
    }
  },
  { ...opts, timeout: 30_000 },
);

test(
  'library: worker threads return to their own namespace after netns calls',
  async ({ ns }) => {
    // Interleave calls in the test namespace with calls in this process's namespace; each must
    // see its own links (read-only on this machine).
    const mine = new Set(
      (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as IpLink[]).map((l) => l.ifname),
    );
    const theirs = new Set(ns.json<IpLink[]>('link', 'show').map((l) => l.ifname));
    const calls = Array.from({ length: 40 }, (_, i) =>
      (i % 2 ? netlib.links({ netns: ns.name }) : netlib.links()).then(
        (ls) => [i % 2, new Set(ls.map((l) => l.name))] as const,
      ),
    );
    for (const [inNs, names] of await Promise.all(calls)) {
      assert.equal([...names].sort(), [...(inNs ? theirs : mine)].sort());
    }
  },
  opts,
);

test.run();
