// Links, addresses and routes over rtnetlink (native/rtnl.cc), usable without the agent. Every
// call runs off the main thread; `netns` runs it in a named network namespace instead.
import { constants as osConstants } from 'os';
import { SystemError, errnoMessage } from '../errors';
import { native, type NativeRouteSpec, type NativeTable } from '../native';
import { NetInputError, checkIfname, inField, parseCidr, parseIp, type Family, type Prefix } from './addr';
import { quote } from '../wellformed';

export { NetInputError, checkIfname, maskText, parseCidr, parseIp, type Family, type Prefix } from './addr';

export interface NetOptions {
  /**
   * Network namespace to work in: a name under /run/netns (as `ip netns add` creates) or an
   * absolute path such as /proc/PID/ns/net. Default: the caller's own.
   */
  netns?: string;
}

export interface Link {
  index: number;
  name: string;
  /** IFF_* flags (IFF_UP = 1, IFF_BROADCAST = 2, IFF_LOOPBACK = 8, ...). */
  flags: number;
  up: boolean;
  /** ARPHRD_* link type (1 ethernet, 772 loopback). */
  type: number;
  mtu: number;
  /** "aa:bb:cc:dd:ee:ff" as the kernel reports it (all zeros for loopback), "" when none. */
  hwaddr: string;
  /** IF_OPER_* (6 = up, 2 = down). */
  operstate: number;
}

export interface Address {
  /** Index of the link the address is on. */
  index: number;
  family: Family;
  /** The local address ("ip address" prints it as `local`). */
  address: string;
  prefixlen: number;
  /** RT_SCOPE_* (0 universe, 253 link, 254 host). */
  scope: number;
  /** IFA_F_* flags (IFA_F_PERMANENT = 0x80, IFA_F_TENTATIVE = 0x40, ...). */
  flags: number;
  /** The peer of a point-to-point address, else "". */
  peer: string;
  label: string;
}

export interface Route {
  family: Family;
  /** Destination network, "" for a default route. */
  dst: string;
  dstLen: number;
  gateway: string;
  /** Preferred source address ("src" in `ip route`), "" when none. */
  prefsrc: string;
  /** Output interface index and name, 0 and "" when none (e.g. multipath). */
  oif: number;
  ifname: string;
  scope: number;
  table: number;
  /** RTPROT_* (2 kernel, 3 boot, 4 static). */
  protocol: number;
  /** RTN_* (1 unicast, 6 blackhole, 7 unreachable, ...). */
  type: number;
  metric: number;
  /** A multipath route's paths (`nexthop via GATEWAY dev IFNAME` in `ip route`); empty for one path. */
  nexthops: NextHop[];
}

export interface NextHop {
  /** "" when the path names no interface. */
  ifname: string;
  /** "" for none; may be of the other family (an IPv4 route via an IPv6 gateway). */
  gateway: string;
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

/** Objects from a table with `strs` strings and `nums` numbers per row (native/netlink.cc). */
function fromTable<T>(t: NativeTable, strs: number, nums: number, make: (s: string[], i: number, n: Float64Array, j: number) => T): T[] {
  const s = t.text.split('\0');
  const out = new Array<T>(t.rows);
  for (let r = 0; r < t.rows; r++) out[r] = make(s, r * strs, t.nums, r * nums);
  return out;
}

const AF_INET = 2;
const AF_INET6 = 10;
const IFF_UP = 1;
export const RT_TABLE_MAIN = 254;

const toAf = (f: Family | undefined): number => (f === 4 ? AF_INET : f === 6 ? AF_INET6 : 0);

const { EADDRNOTAVAIL, EEXIST, ENETUNREACH, ENODEV, ESRCH } = osConstants.errno;

// What an errno means for each kind of change, when the system's own words would mislead.
const READABLE: Record<string, Record<number, string>> = {
  'address add': { [EEXIST]: 'address already assigned', [ENODEV]: 'no such network interface' },
  'address del': { [EADDRNOTAVAIL]: 'address not assigned to the interface', [ENODEV]: 'no such network interface' },
  'link set': { [ENODEV]: 'no such network interface' },
  'route add': { [EEXIST]: 'route already exists', [ENODEV]: 'no such network interface', [ENETUNREACH]: 'gateway unreachable' },
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

function familyOption(f: unknown): Family | undefined {
  if (f === undefined || f === 0) return undefined;
  if (f === 4 || f === 6) return f;
  throw new NetInputError(`family must be 4, 6 or 0 (both), got ${quote(f)}`, f);
}

/** Every link (interface), in index order. */
export async function links(opts?: NetOptions): Promise<Link[]> {
  const t = await run('link list', '', native.netLinks(netnsOf(opts)));
  return fromTable(t, 2, 5, (s, i, n, j) => ({
    index: n[j],
    name: s[i],
    flags: n[j + 1],
    up: (n[j + 1] & IFF_UP) !== 0,
    type: n[j + 2],
    mtu: n[j + 3],
    hwaddr: s[i + 1],
    operstate: n[j + 4],
  }));
}

/** Every address, IPv4 first, in the kernel's order; `family` limits to one. */
export async function addresses(opts?: NetOptions & { family?: Family | 0 }): Promise<Address[]> {
  const t = await run('address list', '', native.netAddresses(netnsOf(opts), toAf(familyOption(opts?.family))));
  return fromTable(t, 3, 5, (s, i, n, j) => ({
    index: n[j],
    family: n[j + 1] as Family,
    address: s[i],
    prefixlen: n[j + 2],
    scope: n[j + 3],
    flags: n[j + 4],
    peer: s[i + 1],
    label: s[i + 2],
  }));
}

/**
 * The routes of one table (default main; `table: 0` for every table), without cache entries,
 * as `ip route show` lists them. `family` limits to IPv4 or IPv6.
 */
export async function routes(opts?: NetOptions & { family?: Family | 0; table?: number }): Promise<Route[]> {
  const table = opts?.table ?? RT_TABLE_MAIN;
  if (!Number.isInteger(table) || table < 0 || table > 0xffffffff) throw new NetInputError(`table must be an integer, got ${quote(table)}`, table);
  const t = await run('route list', '', native.netRoutes(netnsOf(opts), toAf(familyOption(opts?.family)), table));
  return fromTable(t, 5, 8, (s, i, n, j) => ({
    family: n[j] as Family,
    dst: s[i],
    dstLen: n[j + 1],
    gateway: s[i + 1],
    prefsrc: s[i + 2],
    oif: n[j + 2],
    ifname: s[i + 3],
    scope: n[j + 3],
    table: n[j + 4],
    protocol: n[j + 5],
    type: n[j + 6],
    metric: n[j + 7],
    nexthops: s[i + 4] === '' ? [] : s[i + 4].split('\n').map((h) => {
      const [ifname, gateway] = h.split('\t');
      return { ifname, gateway };
    }),
  }));
}

async function changeAddress(add: boolean, ifname: string, cidr: string, opts?: NetOptions): Promise<void> {
  const p = parseCidr(cidr);
  checkIfname(ifname);
  const op = add ? 'address add' : 'address del';
  await run(op, `${p.address}/${p.length} dev ${ifname}`, native.netChangeAddress(netnsOf(opts), add, ifname, toAf(p.family), p.address, p.length));
}

/** `ip address add CIDR dev IFNAME`: EEXIST when the address is already there, ENODEV for no such link. */
export function addAddress(ifname: string, cidr: string, opts?: NetOptions): Promise<void> {
  return changeAddress(true, ifname, cidr, opts);
}

/** `ip address del CIDR dev IFNAME`: EADDRNOTAVAIL when the link has no such address. */
export function deleteAddress(ifname: string, cidr: string, opts?: NetOptions): Promise<void> {
  return changeAddress(false, ifname, cidr, opts);
}

async function setLink(ifname: string, up: boolean, opts?: NetOptions): Promise<void> {
  checkIfname(ifname);
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
    if (!family) throw new NetInputError('a default route needs a gateway or src to tell IPv4 from IPv6', spec.dst, 'dst');
    dst = { family, address: '', length: 0 };
  } else {
    dst = inField('dst', () => parseCidr(spec.dst));
  }
  for (const [name, a] of [['gateway', gateway], ['src', src]] as const) {
    if (a && a.family !== dst.family) throw new NetInputError(`${a.address} is not an IPv${dst.family} address like "dst"`, a.address, name);
  }
  if (spec.ifname) inField('ifname', () => checkIfname(spec.ifname!));
  for (const [name, v, max] of [['scope', spec.scope, 255], ['table', spec.table, 0xffffffff], ['metric', spec.metric, 0xffffffff]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > max)) throw new NetInputError(`${name} must be an integer from 0 to ${max}, got ${quote(v)}`, v, name);
  }
  const words = [dst.length === 0 ? 'default' : `${dst.address}/${dst.length}`];
  if (gateway) words.push('via', gateway.address);
  if (spec.ifname) words.push('dev', spec.ifname);
  if (src) words.push('src', src.address);
  if (spec.scope !== undefined) words.push('scope', String(spec.scope));
  return {
    native: {
      family: toAf(dst.family),
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
