// ember-ga-ctl's command-line words: option and argument parsers (commander's argParser, an
// InvalidArgumentError names the flag), and the usage errors that main() prints as one line.
import { CommanderError, InvalidArgumentError } from 'commander';
import { MAX_TIMEOUT_SECONDS } from '../timers';
import type { Protocol } from './connection';
import type { GuestRouteSpec } from './types';

/** The virtio-serial port name qemu-ga's hosts use (libvirt names its socket after it). */
const QGA_PORT_NAME = 'org.qemu.guest_agent.0';

/** The protocol when --protocol is not given: qemu-ga for a socket or device named like qemu-ga's port. */
export function protocolOf(where: string): Protocol {
  return where.split('/').pop() === QGA_PORT_NAME ? 'qemu-ga' : 'phoenix';
}

/** A repeatable option's values, in order. */
export function collect(v: string, all: string[] | undefined): string[] {
  return [...(all ?? []), v];
}

// Past MAX_TIMEOUT_SECONDS a timer fires at once: --wait 3000000 timed out every request.
export function seconds(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n <= MAX_TIMEOUT_SECONDS))
    throw new InvalidArgumentError(`expected a number of seconds > 0, at most ${MAX_TIMEOUT_SECONDS}`);
  return n;
}

export function secondsOrZero(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= MAX_TIMEOUT_SECONDS))
    throw new InvalidArgumentError(`expected a number of seconds from 0 (never) to ${MAX_TIMEOUT_SECONDS}`);
  return n;
}

export function integer(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a whole number >= 0');
  return Number(v);
}

/** --chunk-size: 0 would be taken for 1-byte chunks. */
export function byteCount(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a whole number of bytes >= 1');
  return Number(v);
}

/** "755", "0755", "0o755" -> 493. */
export function octalMode(v: string): number {
  const m = /^(?:0o?)?([0-7]{1,4})$/i.exec(v);
  if (!m) throw new InvalidArgumentError(`expected an octal mode such as 644 or 0755, got ${JSON.stringify(v)}`);
  return parseInt(m[1], 8);
}

/** "UID[:GID]" (numbers: the guest's user names mean nothing on the host). */
export function owner(v: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected UID or UID:GID as numbers, got ${JSON.stringify(v)}`);
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

export function usage(message: string): never {
  throw new CommanderError(2, 'ember-ga-ctl.usage', message);
}

/** raw's and qmp's argument: JSON with a string "execute", else a usage error naming `cmd`. */
export function jsonRequest(cmd: string, text: string): { execute: string; arguments?: unknown; id?: unknown } {
  let req: { execute?: unknown; arguments?: unknown; id?: unknown };
  try {
    req = JSON.parse(text);
  } catch (e) {
    usage(`${cmd}: not JSON: ${(e as Error).message}`);
  }
  if (req === null || typeof req !== 'object' || typeof req.execute !== 'string')
    usage(`${cmd}: expected {"execute": NAME, "arguments": {...}}`);
  return req as { execute: string; arguments?: unknown; id?: unknown };
}

/**
 * A guest path argument (ls, stat, cat...): absolute, since a relative one would be resolved
 * against the agent's working directory; written as cp's `guest:PATH` is taken too.
 */
export function guestPath(arg: string): string {
  const p = arg.startsWith('guest:') ? arg.slice(6) : arg;
  if (!p.startsWith('/')) usage(`guest paths are absolute: ${JSON.stringify(arg)}`);
  return p;
}

/** A cp argument: guest:PATH, a local path, or - (stdin or stdout). */
export type Location = { guest: string } | { local: string } | { stdio: true };

export function location(arg: string): Location {
  if (arg.startsWith('guest:')) return { guest: guestPath(arg) };
  if (arg === '-') return { stdio: true };
  return { local: arg };
}

/** addr's `[dev] IFNAME`. */
export function devName(rest: string[]): string {
  const words = rest[0] === 'dev' ? rest.slice(1) : rest;
  if (words.length !== 1) usage('expected [dev] IFNAME');
  return words[0];
}

const SCOPE_NAMES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

/** `DST [via GW] [dev IFNAME] [src SRC] [scope S]` -> route-add / route-del arguments (absent ones left out). */
export function routeSpec(words: string[]): GuestRouteSpec {
  if (words.length === 0 || ['via', 'dev', 'src', 'scope'].includes(words[0]))
    usage('route: the destination comes first (CIDR or default)');
  const r: GuestRouteSpec = { dst: words[0] };
  for (let i = 1; i < words.length; i += 2) {
    const [key, value] = [words[i], words[i + 1]];
    if (value === undefined) usage(`route: ${key} needs a value`);
    if (key === 'via') r.gateway = value;
    else if (key === 'dev') r.ifname = value;
    else if (key === 'src') r.src = value;
    else if (key === 'scope') {
      const n = SCOPE_NAMES[value] ?? (/^\d+$/.test(value) ? Number(value) : NaN);
      if (!(n >= 0 && n <= 255))
        usage(`route: scope is a number 0-255 or global|site|link|host, got ${JSON.stringify(value)}`);
      r.scope = n;
    } else usage(`route: unknown keyword ${JSON.stringify(key)} (expected via, dev, src, scope)`);
  }
  if (r.dst === 'default') r.dst = r.gateway?.includes(':') ? '::/0' : '0.0.0.0/0';
  return r;
}
