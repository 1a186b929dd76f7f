// IP addresses and prefixes in text: parsing with clear errors, masks in the notation hosts expect.
import { isIPv4, isIPv6 } from 'net';
import { quote } from '../wire/json';

export type Family = 4 | 6;

/** The kernel's numbers for the two families (AF_INET, AF_INET6), as the addon and hosts give them. */
const AF: Record<Family, number> = { 4: 2, 6: 10 };

/** The AF_* number of a family; 0 for both. */
export function afOf(family: Family | 0): number {
  return family === 0 ? 0 : AF[family];
}

/** The family of an AF_* number; undefined for any other number. */
export function familyOfAf(af: number): Family | undefined {
  return af === AF[4] ? 4 : af === AF[6] ? 6 : undefined;
}

/** An address with its prefix length, e.g. 192.0.2.1/24. */
export interface Prefix {
  family: Family;
  address: string;
  length: number;
}

/**
 * Malformed input (an address, prefix or interface name); `value` is what was given, `field`
 * the RouteSpec field it came from, when it came from one.
 */
export class NetInputError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_VALUE';
  constructor(
    message: string,
    readonly value: unknown,
    public field?: string,
  ) {
    super(message);
    this.name = 'NetInputError';
  }
}

/** Runs a parser on one field, so that its NetInputError names the field. */
export function inField<T>(field: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof NetInputError && e.field === undefined) e.field = field;
    throw e;
  }
}

/** 4, 6, or undefined when `ip` is not an address. */
export function ipFamily(ip: string): Family | undefined {
  return isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : undefined;
}

/** An address alone; throws NetInputError. */
export function parseIp(text: string): { family: Family; address: string } {
  const family = ipFamily(text);
  if (!family || text.includes('%')) throw new NetInputError(`${quote(text)} is not an IP address`, text);
  return { family, address: text };
}

/**
 * "192.0.2.1/24", "2001:db8::1/64", or a bare address (a /32 or /128, as `ip` takes it);
 * throws NetInputError, also for a prefix length with a leading zero ("/024").
 */
export function parseCidr(text: string): Prefix {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? text : text.slice(0, slash);
  const family = ipFamily(ip);
  if (!family || ip.includes('%')) {
    throw new NetInputError(`${quote(text)} is not an IP address in CIDR notation`, text);
  }
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return { family, address: ip, length: max };
  const len = text.slice(slash + 1);
  // ip(8) reads "024" as octal (/20); which one a host meant cannot be told.
  if (/^0[0-9]/.test(len))
    throw new NetInputError(`prefix length ${quote(len)} has a leading zero (ip would read it as octal)`, text);
  if (!/^[0-9]{1,3}$/.test(len) || Number(len) > max) {
    throw new NetInputError(`${quote(text)}: the prefix length must be 0 to ${max}`, text);
  }
  return { family, address: ip, length: Number(len) };
}

/** Interface names as the kernel accepts them: 1 to 15 bytes, no "/", ":" or whitespace. */
export function checkIfname(name: string): string {
  if (!/^[^\s/:]{1,15}$/.test(name) || name === '.' || name === '..' || Buffer.byteLength(name) > 15) {
    throw new NetInputError(`${quote(name)} is not a valid interface name`, name);
  }
  return name;
}

const masks = new Map<number, string>();

/** The netmask of a prefix length: "255.255.255.0" for IPv4, "ffff:ffff:ffff:ffff::" for IPv6. */
export function maskText(family: Family, length: number): string {
  const key = family * 256 + length;
  let m = masks.get(key);
  if (m === undefined) masks.set(key, (m = computeMask(family, length)));
  return m;
}

function computeMask(family: Family, length: number): string {
  const bytes = family === 4 ? 4 : 16;
  const b: number[] = [];
  for (let i = 0; i < bytes; i++) {
    const bits = Math.max(0, Math.min(8, length - i * 8));
    b.push((0xff00 >> bits) & 0xff);
  }
  if (family === 4) return b.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  return ipv6Text(groups);
}

// RFC 5952 (as Go and inet_ntop print): the longest run of two or more zero groups becomes "::".
function ipv6Text(groups: number[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
