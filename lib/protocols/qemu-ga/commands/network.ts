// guest-network-get-interfaces, from rtnetlink (lib/net) rather than getifaddrs(3), but shaped as
// qemu-ga 7.2 builds it from getifaddrs: glibc lists every link, then every IPv4 and IPv6
// address (an IPv4 address under its label, so an alias "eth0:1" is an interface of its own);
// the hardware address is SIOCGIFHWADDR's (6 bytes, zero-padded); statistics are those of
// /proc/net/dev for the interface's name, and only for an interface with an address.
import { addresses, links, type Address, type Link, type LinkStats } from '../../../net';
import { errnoOf } from '../../../errors';
import { defineQgaCommand, QgaError } from '../schema';
import { strerror } from '../dispatcher';
import { qemuString } from '../json';

export interface GuestIpAddress {
  'ip-address-type': 'ipv4' | 'ipv6';
  'ip-address': string;
  prefix: number;
}

export interface GuestNetworkInterfaceStat {
  'rx-bytes': bigint;
  'rx-packets': bigint;
  'rx-errs': bigint;
  'rx-dropped': bigint;
  'tx-bytes': bigint;
  'tx-packets': bigint;
  'tx-errs': bigint;
  'tx-dropped': bigint;
}

export interface GuestNetworkInterface {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: GuestIpAddress[];
  statistics?: GuestNetworkInterfaceStat;
}

const U64 = (1n << 64n) - 1n;
const LLONG_MAX = (1n << 63n) - 1n;

/**
 * A /proc/net/dev column as qemu-ga reads it: the kernel prints a u64 (a sum wraps), qemu scans it
 * with %lld, which stops at LLONG_MAX.
 */
const procValue = (v: bigint) => {
  const u = v & U64;
  return u > LLONG_MAX ? LLONG_MAX : u;
};

/** qemu-ga's statistics: /proc/net/dev's columns, whose "drop" adds the packets the device missed. */
export function qgaStatistics(s: LinkStats): GuestNetworkInterfaceStat {
  return {
    'rx-bytes': procValue(s.rxBytes),
    'rx-packets': procValue(s.rxPackets),
    'rx-errs': procValue(s.rxErrors),
    'rx-dropped': procValue(s.rxDropped + s.rxMissed),
    'tx-bytes': procValue(s.txBytes),
    'tx-packets': procValue(s.txPackets),
    'tx-errs': procValue(s.txErrors),
    'tx-dropped': procValue(s.txDropped),
  };
}

/**
 * SIOCGIFHWADDR's answer for a link: the first 6 bytes of its address, zeros where it has fewer
 * (none at all: a tun device, loopback's are zeros anyway).
 */
export function hardwareAddress(hwaddr: string): string {
  const bytes = hwaddr === '' ? [] : hwaddr.split(':');
  const six = [...bytes.slice(0, 6), ...Array<string>(Math.max(0, 6 - bytes.length)).fill('00')];
  return six.join(':');
}

const NON_ASCII = /[\u0080-\uffff]/;

/** A name's bytes, a latin1 character each: what qemu-ga compares (strcmp) and looks up. */
function rawName(text: string, bytes: Buffer | undefined): string {
  if (bytes) return bytes.toString('latin1');
  return NON_ASCII.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/** Bytes as qemu-ga's JSON writer writes them (U+FFFD for what is not UTF-8, C0 80 a NUL). */
const nameText = (raw: string) => (NON_ASCII.test(raw) ? qemuString(Buffer.from(raw, 'latin1')) : raw);

/**
 * The interfaces as qemu-ga 7.2 lists them, from a link and an address dump of one namespace.
 * Interfaces are told apart by their names' bytes, as qemu-ga does: links "a\xff" and "a\xfe"
 * are two interfaces, though both are named "a\uFFFD" in the answer.
 */
export function qgaInterfaces(ls: readonly Link[], as: readonly Address[]): GuestNetworkInterface[] {
  const raws = ls.map((l) => rawName(l.name, l.nameBytes));
  const byName = new Map(ls.map((l, i) => [raws[i], l]));
  const nameOf = new Map(ls.map((l, i) => [l.index, raws[i]]));
  const out: GuestNetworkInterface[] = [];
  const found = new Map<string, GuestNetworkInterface>();
  const entry = (raw: string) => {
    let i = found.get(raw);
    if (!i) {
      i = { name: nameText(raw) };
      // The ioctl drops what follows a ':' of the name (an alias's label) and fails only for a
      // name no link has: then qemu-ga leaves the field out.
      const link = byName.get(raw.split(':')[0]);
      if (link) i['hardware-address'] = hardwareAddress(link.hwaddr);
      found.set(raw, i);
      out.push(i);
    }
    return i;
  };
  for (const raw of raws) entry(raw);
  for (const a of as) {
    // glibc names an address by its IFA_LABEL (IPv4 has one), else by its link.
    const name = a.label !== '' ? rawName(a.label, a.labelBytes) : nameOf.get(a.index);
    if (name === undefined) continue; // its link appeared after the link dump
    const i = entry(name);
    (i['ip-addresses'] ??= []).push({
      'ip-address-type': a.family === 4 ? 'ipv4' : 'ipv6',
      'ip-address': a.address,
      prefix: Math.min(a.prefixlen, a.family === 4 ? 32 : 128),
    });
    if (!i.statistics) {
      // /proc/net/dev has a line per link, by its name: none for an alias.
      const stats = byName.get(name)?.stats;
      if (stats) i.statistics = qgaStatistics(stats);
    }
  }
  return out;
}

export const networkCommands = [
  defineQgaCommand({
    name: 'guest-network-get-interfaces',
    doc: "Every network interface with its hardware address, IPv4 and IPv6 addresses and counters, in the kernel's order.",
    bulk: true,
    args: {},
    handler: async () => {
      try {
        const [ls, as] = await Promise.all([links(), addresses()]);
        return qgaInterfaces(ls, as);
      } catch (e) {
        const errno = errnoOf(e);
        if (errno === undefined) throw e;
        throw new QgaError(`getifaddrs failed: ${strerror(errno)}`);
      }
    },
  }),
];
