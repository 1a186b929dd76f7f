// get-netifaces, ipaddr-add/del, net-iface-up/down, get-route-list, route-add/del: the answer
// shapes of phoenix-guest-agent 0.7.1 (Go's net.Interfaces and netlink.RouteList), with the errno
// as the error code where the reference gives -1.
import { AgentError } from '../../../errors';
import {
  NetInputError,
  addAddress,
  addRoute,
  addresses,
  deleteAddress,
  deleteRoute,
  links,
  routes,
  setLinkDown,
  setLinkUp,
  type Link,
  type RouteSpec,
} from '../../../net';
import { familyOfAf, maskText } from '../../../net/addr';
import { RawJson } from '../../../wire/answer';
import { goJson, goNameJson } from '../../../wire/json';
import type { GuestRoute, NetIface } from '../answers';
import { defineCommand } from '../registry';

// Go's net.Flags names for the IFF_* bits (linux/if.h), in its order.
const IFF_UP = 0x1;
const IFF_BROADCAST = 0x2;
const IFF_LOOPBACK = 0x8;
const IFF_POINTOPOINT = 0x10;
const IFF_MULTICAST = 0x1000;
const FLAG_NAMES: [number, string][] = [
  [IFF_UP, 'up'],
  [IFF_BROADCAST, 'broadcast'],
  [IFF_LOOPBACK, 'loopback'],
  [IFF_POINTOPOINT, 'pointtopoint'],
  [IFF_MULTICAST, 'multicast'],
];

// ARPHRD_* types (linux/if_arp.h) of IP tunnels, whose IFLA_ADDRESS is an IP address, not a
// hardware address: TUNNEL, TUNNEL6, SIT, IPGRE, IP6GRE.
const TUNNEL_TYPES = new Set([768, 769, 776, 778, 823]);

/** Go's HardwareAddr: "" for none, for all zeros (loopback) and for IP tunnel endpoints. */
function hwaddr(l: Link): string {
  if (l.hwaddr === '' || /^[0:]*$/.test(l.hwaddr)) return '';
  if (TUNNEL_TYPES.has(l.type)) return '';
  return l.hwaddr;
}

function flagsText(flags: number): string {
  return FLAG_NAMES.filter(([bit]) => flags & bit)
    .map(([, name]) => name)
    .join('|');
}

/**
 * Runs a library call, which checks its input; malformed input becomes
 * `Invalid argument "NAME": ...`, NAME the field the library names, else `name`.
 */
async function checked<T>(name: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof NetInputError) throw new AgentError(`Invalid argument "${e.field ?? name}": ${e.message}`);
    throw e;
  }
}

const ifnameArg = { type: 'string', required: true, doc: 'interface name' } as const;
const routeArgs = {
  ifname: { type: 'string', default: '', doc: 'output interface ("" for none)' },
  dst: {
    type: 'string',
    required: true,
    doc: 'destination prefix, "192.0.2.0/24" (a bare address is a host route; "", "default", "0.0.0.0/0" or "::/0" the default route)',
  },
  src: { type: 'string', default: '', doc: 'preferred source address ("" for none)' },
  gateway: { type: 'string', default: '', doc: 'next hop ("" for a route to a directly attached network)' },
  scope: {
    type: 'int',
    min: 0,
    max: 255,
    doc: 'RT_SCOPE_* (0 universe, 253 link, 254 host); when absent, as `ip route`',
  },
} as const;

/** The arguments as a RouteSpec; the library checks them (its errors name the field). */
function routeSpec(a: {
  ifname: string;
  dst: string;
  src: string;
  gateway: string;
  scope: number | undefined;
}): RouteSpec {
  return {
    dst: a.dst,
    gateway: a.gateway || undefined,
    src: a.src || undefined,
    ifname: a.ifname || undefined,
    scope: a.scope,
  };
}

function addressCommand(name: 'ipaddr-add' | 'ipaddr-del', alias: string, add: boolean) {
  return defineCommand({
    name,
    aliases: [alias],
    doc: `${add ? 'Adds' : 'Removes'} an address on an interface, like \`ip address ${add ? 'add' : 'del'} IP dev IFNAME\`.`,
    args: {
      ip: {
        type: 'string',
        required: true,
        doc: 'address in CIDR notation, "192.0.2.1/24" (a bare address is a /32 or /128)',
      },
      ifname: ifnameArg,
    },
    handler: async (a) => {
      await checked('ip', () => (add ? addAddress : deleteAddress)({ ifname: a.ifname, cidr: a.ip }));
      return true as const;
    },
  });
}

function linkCommand(name: 'net-iface-up' | 'net-iface-down', up: boolean) {
  const word = up ? 'up' : 'down';
  return defineCommand({
    name,
    doc: `Brings an interface ${word}, like \`ip link set dev IFNAME ${word}\`.`,
    args: { ifname: ifnameArg },
    handler: async (a) => {
      await checked('ifname', () => (up ? setLinkUp : setLinkDown)(a.ifname));
      return true as const;
    },
  });
}

function routeCommand(name: 'route-add' | 'route-del', add: boolean) {
  return defineCommand({
    name,
    doc: `${add ? 'Adds a route to' : 'Removes a route from'} the main table, like \`ip route ${add ? 'add' : 'del'} DST via GATEWAY dev IFNAME [src SRC] [scope S]\`.`,
    args: routeArgs,
    handler: async (a) => {
      await checked('dst', () => (add ? addRoute : deleteRoute)(routeSpec(a)));
      return true as const;
    },
  });
}

export const netCommands = [
  defineCommand({
    name: 'get-netifaces',
    bulk: true,
    doc: 'Every interface: `[{"index","name","hwaddr","flags","ips"}]`, flags the set ones of up|broadcast|loopback|pointtopoint|multicast joined by "|", hwaddr "" when none, ips in CIDR notation.',
    args: {},
    handler: async () => {
      const [ls, as] = await Promise.all([links(), addresses()]);
      const ips = new Map<number, string[]>();
      for (const x of as) {
        const list = ips.get(x.index) ?? [];
        if (list.length === 0) ips.set(x.index, list);
        list.push(`${x.address}/${x.prefixlen}`);
      }
      const answer = ls.map((l) => ({
        index: l.index,
        name: l.name,
        hwaddr: hwaddr(l),
        flags: flagsText(l.flags),
        ips: ips.get(l.index) ?? [],
      }));
      if (!ls.some((l) => l.nameBytes)) return answer;
      // A name that is not UTF-8 is written from its bytes, as Go does: `\ufffd` escapes where
      // the decoded name has U+FFFD itself, which goJson would write as it is.
      const json = answer.map(({ index, name, ...rest }, i) => {
        const bytes = ls[i].nameBytes;
        return `{"index":${index},"name":${goNameJson(name, bytes)},${goJson(rest).slice(1)}`;
      });
      return new RawJson<NetIface[]>([Buffer.from(`[${json.join(',')}]`, 'utf8')]);
    },
  }),
  addressCommand('ipaddr-add', 'linux-ipaddr-add', true),
  addressCommand('ipaddr-del', 'linux-ipaddr-del', false),
  linkCommand('net-iface-up', true),
  linkCommand('net-iface-down', false),
  defineCommand({
    name: 'get-route-list',
    bulk: true,
    doc: 'The main routing table: `[{"ifname","scope","dst":{"ip","mask"},"src","gateway"}]`, "" for absent values, dotted IPv4 masks, IPv6 masks in IPv6 notation; a multipath route (ifname and gateway "") also has `"nexthops":[{"ifname","gateway"}]` (ember-ga).',
    args: { family: { type: 'int', default: 0, doc: '0 all, 2 IPv4, 10 IPv6' } },
    handler: async (a) => {
      const family = a.family === 0 ? 0 : familyOfAf(a.family);
      if (family === undefined)
        throw new AgentError(`Invalid argument "family": expected 0, 2 (AF_INET) or 10 (AF_INET6), got ${a.family}`);
      const list = await routes({ family });
      const answer = list.map((r) => ({
        ifname: r.ifname,
        scope: r.scope,
        dst: r.dstLen === 0 ? { ip: '', mask: '' } : { ip: r.dst, mask: maskText(r.family, r.dstLen) },
        src: r.prefsrc,
        gateway: r.gateway,
        // ember-ga: the paths of a multipath route, whose own ifname and gateway are "".
        ...(r.nexthops.length ? { nexthops: r.nexthops.map((h) => ({ ifname: h.ifname, gateway: h.gateway })) } : {}),
      }));
      if (!list.some((r) => r.ifnameBytes || r.nexthops.some((h) => h.ifnameBytes))) return answer;
      // As get-netifaces: a name that is not UTF-8 is written from its bytes, as Go does.
      const json = answer.map(({ ifname, nexthops, ...rest }, i) => {
        const hops = (nexthops ?? []).map(
          (h, k) =>
            `{"ifname":${goNameJson(h.ifname, list[i].nexthops[k].ifnameBytes)},"gateway":${goJson(h.gateway)}}`,
        );
        const tail = nexthops ? `,"nexthops":[${hops.join(',')}]` : '';
        return `{"ifname":${goNameJson(ifname, list[i].ifnameBytes)},${goJson(rest).slice(1, -1)}${tail}}`;
      });
      return new RawJson<GuestRoute[]>([Buffer.from(`[${json.join(',')}]`, 'utf8')]);
    },
  }),
  routeCommand('route-add', true),
  routeCommand('route-del', false),
];
