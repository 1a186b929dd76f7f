// Links, addresses and routes over rtnetlink (native/rtnl.cc), usable without the agent. Every
// call runs off the main thread; `netns` runs it in a named network namespace instead.
import { constants as osConstants } from 'os';
import { SystemError, errnoMessage } from '../errors';
import {
  mapRows,
  native,
  type NativeAddress,
  type NativeLink,
  type NativeLinkStats,
  type NativeNextHop,
  type NativeRoute,
  type NativeRouteSpec,
} from '../native';
import {
  NetInputError,
  afOf,
  checkIfname,
  familyOfAf,
  inField,
  parseCidr,
  parseIp,
  type Family,
  type Prefix,
} from './addr';
import { quote } from '../wire/json';
import { byteName } from '../utf8';

export { NetInputError, parseCidr, parseIp, type Family, type Prefix } from './addr';

export interface NetOptions {
  /**
   * Network namespace to work in: a name under /run/netns (as `ip netns add` creates) or an
   * absolute path such as /proc/PID/ns/net. Default: the caller's own.
   */
  netns?: string;
}

/** A link's counters (see NativeLinkStats): exact 64-bit values. */
export type LinkStats = NativeLinkStats;

/**
 * A link; `up` is IFF_UP of its flags; `stats` its counters, when the kernel reports them.
 * `name` is its name's bytes decoded as UTF-8; when they are not UTF-8 (the kernel takes any
 * bytes but '/', ':' and white space), `name` has U+FFFD in their place, and `nameBytes` holds
 * them: two links may then have the same `name`.
 */
export interface Link extends Omit<NativeLink, keyof NativeLinkStats | 'hasStats'> {
  up: boolean;
  stats?: LinkStats;
  nameBytes?: Buffer;
}

/** An address; `label` and `labelBytes` as a Link's `name` and `nameBytes`. */
export interface Address extends Omit<NativeAddress, 'family'> {
  family: Family;
  labelBytes?: Buffer;
}

/** A name from the addon (its bytes as latin1): as UTF-8 (Node's decoding), and its bytes when they are not. */
function decodeName(raw: string): { text: string; bytes?: Buffer } {
  const n = byteName(raw);
  return n.bytes ? { text: n.bytes.toString('utf8'), bytes: n.bytes } : { text: n.text };
}

function linkName(raw: string): Pick<Link, 'name' | 'nameBytes'> {
  const n = decodeName(raw);
  return n.bytes ? { name: n.text, nameBytes: n.bytes } : { name: n.text };
}

function addressLabel(raw: string): Pick<Address, 'label' | 'labelBytes'> {
  const n = decodeName(raw);
  return n.bytes ? { label: n.text, labelBytes: n.bytes } : { label: n.text };
}

function ifName(raw: string): Pick<Route, 'ifname' | 'ifnameBytes'> {
  const n = decodeName(raw);
  return n.bytes ? { ifname: n.text, ifnameBytes: n.bytes } : { ifname: n.text };
}

/** A route; `ifname` and `ifnameBytes` as a Link's `name` and `nameBytes`. */
export interface Route extends Omit<NativeRoute, 'family'> {
  family: Family;
  ifnameBytes?: Buffer;
  /** A multipath route's paths (`nexthop via GATEWAY dev IFNAME` in `ip route`); empty for one path. */
  nexthops: NextHop[];
}

/** A path of a multipath route; `ifname` and `ifnameBytes` as a Route's. */
export interface NextHop extends Omit<NativeNextHop, 'route'> {
  ifnameBytes?: Buffer;
}

export interface RouteSpec {
  /** "192.0.2.0/24", "2001:db8::/64", a bare address (host route), or "default" / "". */
  dst: string;
  gateway?: string;
  ifname?: string;
  /** Preferred source address. */
  src?: string;
  /**
   * RT_SCOPE_*. Default as `ip route`: adding, link (253) for an IPv4 route without gateway,
   * else universe (0); deleting, any scope.
   */
  scope?: number;
  /** Routing table, default main (254). */
  table?: number;
  metric?: number;
}

const IFF_UP = 1;
export const RT_TABLE_MAIN = 254;

const { EADDRNOTAVAIL, EEXIST, ENETUNREACH, ENODEV, ESRCH } = osConstants.errno;

// What an errno means for each kind of change, when the system's own words would mislead.
const READABLE: Record<string, Record<number, string>> = {
  'address add': { [EEXIST]: 'address already assigned', [ENODEV]: 'no such network interface' },
  'address del': { [EADDRNOTAVAIL]: 'address not assigned to the interface', [ENODEV]: 'no such network interface' },
  'link set': { [ENODEV]: 'no such network interface' },
  'route add': {
    [EEXIST]: 'route already exists',
    [ENODEV]: 'no such network interface',
    [ENETUNREACH]: 'gateway unreachable',
  },
  'route del': { [ESRCH]: 'no such route', [ENODEV]: 'no such network interface' },
};

interface NativeError {
  errno?: number;
  syscall?: string;
  path?: string;
}

/**
 * A failure from the addon as a SystemError: `op subject: what went wrong (kernel's words)`,
 * e.g. `route del 198.51.100.0/24 dev veth0: no such route`.
 */
async function run<T>(op: string, subject: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    const x = e as NativeError;
    if (typeof x?.errno !== 'number') throw e;
    const where = [op, subject].filter((w) => w !== '').join(' ');
    if (x.syscall === 'setns') throw new SystemError(x.errno, `${where}: setns`, x.path);
    const ack = x.path ? x.path : '';
    let detail = READABLE[op]?.[x.errno] ?? errnoMessage(x.errno);
    if (ack && !ack.toLowerCase().includes(detail.toLowerCase())) detail += ` (${ack})`;
    throw new SystemError(x.errno, op, subject, detail);
  }
}

function netnsOf(opts: NetOptions | undefined): string | undefined {
  const ns = opts?.netns;
  if (ns === undefined || ns === '') return undefined;
  if (typeof ns !== 'string' || (!ns.startsWith('/') && !/^[^/]+$/.test(ns)) || ns === '.' || ns === '..') {
    throw new NetInputError(`${quote(ns)} is not a network namespace name or path`, ns);
  }
  return ns;
}

function familyOption(f: unknown): Family | 0 {
  if (f === undefined || f === 0) return 0;
  if (f === 4 || f === 6) return f;
  throw new NetInputError(`family must be 4, 6 or 0 (both), got ${quote(f)}`, f);
}

/** The family of a dumped route or address: the addon dumps AF_INET and AF_INET6 only. */
const dumped = (af: number): Family => familyOfAf(af)!;

/** Every link (interface), in index order. */
export async function links(opts?: NetOptions): Promise<Link[]> {
  const t = await run('link list', '', native.netLinks(netnsOf(opts)));
  return mapRows(t, (c, r) => ({
    index: c.index[r],
    ...linkName(c.name[r]),
    flags: c.flags[r],
    up: (c.flags[r] & IFF_UP) !== 0,
    type: c.type[r],
    mtu: c.mtu[r],
    hwaddr: c.hwaddr[r],
    operstate: c.operstate[r],
    stats: c.hasStats[r]
      ? {
          rxBytes: c.rxBytes[r],
          rxPackets: c.rxPackets[r],
          rxErrors: c.rxErrors[r],
          rxDropped: c.rxDropped[r],
          rxMissed: c.rxMissed[r],
          txBytes: c.txBytes[r],
          txPackets: c.txPackets[r],
          txErrors: c.txErrors[r],
          txDropped: c.txDropped[r],
          multicast: c.multicast[r],
          collisions: c.collisions[r],
        }
      : undefined,
  }));
}

/** Every address, IPv4 first, in the kernel's order; `family` limits to one. */
export async function addresses(opts?: NetOptions & { family?: Family | 0 }): Promise<Address[]> {
  const t = await run('address list', '', native.netAddresses(netnsOf(opts), afOf(familyOption(opts?.family))));
  return mapRows(t, (c, r) => ({
    index: c.index[r],
    family: dumped(c.family[r]),
    address: c.address[r],
    prefixlen: c.prefixlen[r],
    scope: c.scope[r],
    flags: c.flags[r],
    peer: c.peer[r],
    ...addressLabel(c.label[r]),
  }));
}

/**
 * The routes of one table (default main; `table: 0` for every table), without cache entries,
 * as `ip route show` lists them. `family` limits to IPv4 or IPv6.
 */
export async function routes(opts?: NetOptions & { family?: Family | 0; table?: number }): Promise<Route[]> {
  const table = opts?.table ?? RT_TABLE_MAIN;
  if (!Number.isInteger(table) || table < 0 || table > 0xffffffff)
    throw new NetInputError(`table must be an integer, got ${quote(table)}`, table);
  const t = await run('route list', '', native.netRoutes(netnsOf(opts), afOf(familyOption(opts?.family)), table));
  const paths: NextHop[][] = []; // a multipath route's, by its row
  for (const { route, hop } of mapRows(t.nexthops, (c, r) => ({
    route: c.route[r],
    hop: { ...ifName(c.ifname[r]), gateway: c.gateway[r] },
  }))) {
    (paths[route] ??= []).push(hop);
  }
  return mapRows(t.routes, (c, r) => ({
    family: dumped(c.family[r]),
    dst: c.dst[r],
    dstLen: c.dstLen[r],
    gateway: c.gateway[r],
    prefsrc: c.prefsrc[r],
    oif: c.oif[r],
    ...ifName(c.ifname[r]),
    scope: c.scope[r],
    table: c.table[r],
    protocol: c.protocol[r],
    type: c.type[r],
    metric: c.metric[r],
    nexthops: paths[r] ?? [],
  }));
}

async function changeAddress(add: boolean, ifname: string, cidr: string, opts?: NetOptions): Promise<void> {
  const p = parseCidr(cidr);
  inField('ifname', () => checkIfname(ifname));
  const op = add ? 'address add' : 'address del';
  await run(
    op,
    `${p.address}/${p.length} dev ${ifname}`,
    native.netChangeAddress(netnsOf(opts), add, ifname, afOf(p.family), p.address, p.length),
  );
}

/** An address on a link: `{ ifname: 'eth0', cidr: '192.0.2.1/24' }` (named, so the two strings cannot swap). */
export interface AddressSpec {
  ifname: string;
  cidr: string;
}

function addressSpec(spec: AddressSpec): AddressSpec {
  if (spec === null || typeof spec !== 'object')
    throw new NetInputError('an address needs { ifname, cidr }', spec, 'ifname');
  return spec;
}

/** `ip address add CIDR dev IFNAME`: EEXIST when the address is already there, ENODEV for no such link. */
export function addAddress(spec: AddressSpec, opts?: NetOptions): Promise<void> {
  const { ifname, cidr } = addressSpec(spec);
  return changeAddress(true, ifname, cidr, opts);
}

/** `ip address del CIDR dev IFNAME`: EADDRNOTAVAIL when the link has no such address. */
export function deleteAddress(spec: AddressSpec, opts?: NetOptions): Promise<void> {
  const { ifname, cidr } = addressSpec(spec);
  return changeAddress(false, ifname, cidr, opts);
}

async function setLink(ifname: string, up: boolean, opts?: NetOptions): Promise<void> {
  inField('ifname', () => checkIfname(ifname));
  await run('link set', `dev ${ifname} ${up ? 'up' : 'down'}`, native.netSetLinkUp(netnsOf(opts), ifname, up));
}

/** `ip link set dev IFNAME up` */
export function setLinkUp(ifname: string, opts?: NetOptions): Promise<void> {
  return setLink(ifname, true, opts);
}

/** `ip link set dev IFNAME down` */
export function setLinkDown(ifname: string, opts?: NetOptions): Promise<void> {
  return setLink(ifname, false, opts);
}

/** A RouteSpec checked and in the addon's terms, with the `ip route` line describing it. */
function routeRequest(spec: RouteSpec): { native: NativeRouteSpec; text: string } {
  if (spec === null || typeof spec !== 'object') throw new NetInputError('a route needs at least "dst"', spec, 'dst');
  const gateway = spec.gateway ? inField('gateway', () => parseIp(spec.gateway!)) : undefined;
  const src = spec.src ? inField('src', () => parseIp(spec.src!)) : undefined;
  let dst: Prefix;
  if (spec.dst === '' || spec.dst === 'default' || spec.dst === undefined) {
    const family = gateway?.family ?? src?.family;
    if (!family)
      throw new NetInputError('a default route needs a gateway or src to tell IPv4 from IPv6', spec.dst, 'dst');
    dst = { family, address: '', length: 0 };
  } else {
    dst = inField('dst', () => parseCidr(spec.dst));
  }
  for (const [name, a] of [
    ['gateway', gateway],
    ['src', src],
  ] as const) {
    if (a && a.family !== dst.family)
      throw new NetInputError(`${a.address} is not an IPv${dst.family} address like "dst"`, a.address, name);
  }
  if (spec.ifname) inField('ifname', () => checkIfname(spec.ifname!));
  for (const [name, v, max] of [
    ['scope', spec.scope, 255],
    ['table', spec.table, 0xffffffff],
    ['metric', spec.metric, 0xffffffff],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > max))
      throw new NetInputError(`${name} must be an integer from 0 to ${max}, got ${quote(v)}`, v, name);
  }
  const words = [dst.length === 0 ? 'default' : `${dst.address}/${dst.length}`];
  if (gateway) words.push('via', gateway.address);
  if (spec.ifname) words.push('dev', spec.ifname);
  if (src) words.push('src', src.address);
  if (spec.scope !== undefined) words.push('scope', String(spec.scope));
  return {
    native: {
      family: afOf(dst.family),
      dst: dst.address,
      dstLen: dst.length,
      gateway: gateway?.address,
      prefsrc: src?.address,
      ifname: spec.ifname || undefined,
      scope: spec.scope,
      table: spec.table ?? RT_TABLE_MAIN,
      metric: spec.metric,
    },
    text: words.join(' '),
  };
}

/** `ip route add DST [via GATEWAY] [dev IFNAME] [src SRC] [scope S]`: EEXIST when it exists. */
export async function addRoute(spec: RouteSpec, opts?: NetOptions): Promise<void> {
  const r = routeRequest(spec);
  await run('route add', r.text, native.netChangeRoute(netnsOf(opts), true, r.native));
}

/** `ip route del DST [via GATEWAY] [dev IFNAME] [src SRC] [scope S]`: ESRCH when no route matches. */
export async function deleteRoute(spec: RouteSpec, opts?: NetOptions): Promise<void> {
  const r = routeRequest(spec);
  await run('route del', r.text, native.netChangeRoute(netnsOf(opts), false, r.native));
}
