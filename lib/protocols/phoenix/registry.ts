// The command registry: every command is one declaration (name, aliases, argument schema, doc,
// handler). Dispatch, argument checking, get-commands and docs/PROTOCOL.md's command table all come
// from these declarations, so adding a command never means touching the dispatcher.
import { AgentError } from '../../errors';
import { Base64Text, decodeBase64 } from '../../wire/base64';
import { describe } from '../../wire/json';
import type { Answers, CommandName } from './answers';
import type { Call, Context } from '../../context';
import type { RawJson } from '../../wire/answer';
import { quote } from '../../wire/json';

/**
 * 'base64': a string of base64 on the wire; the handler gets its strictly decoded bytes, or null
 * when it is not valid base64 (the handler says what that means). The bytes are the handler's
 * until its answer settles: a long one's memory is then reused (Request.release), so a handler
 * that keeps them longer copies them.
 */
export type ArgType = 'string' | 'int' | 'number' | 'bool' | 'string[]' | 'base64';

export interface ArgSpec {
  type: ArgType;
  /** Missing (or null) is an error. Otherwise a missing argument takes `default`. */
  required?: boolean;
  default?: unknown;
  /** Inclusive bounds for int and number arguments. */
  min?: number;
  max?: number;
  /** Allowed values of a string argument. */
  oneOf?: readonly string[];
  doc: string;
}

export type Schema = Record<string, ArgSpec>;

type TypeOf<T extends ArgType> = T extends 'string'
  ? string
  : T extends 'int' | 'number'
    ? number
    : T extends 'bool'
      ? boolean
      : T extends 'string[]'
        ? string[]
        : T extends 'base64'
          ? Buffer | null
          : never;

/** The handler's view of its arguments: required or defaulted ones are always present. */
export type Args<S extends Schema> = {
  [K in keyof S]: S[K] extends { required: true } | { default: unknown }
    ? TypeOf<S[K]['type']>
    : TypeOf<S[K]['type']> | undefined;
};

/** What command N answers (lib/protocols/phoenix/answers.ts), as a value or as its JSON text already made. */
export type Answer<N extends string> = N extends CommandName ? Answers[N] | RawJson<Answers[N]> : unknown;

export interface Command<S extends Schema = Schema, N extends string = string> {
  name: N;
  aliases?: readonly string[];
  doc: string;
  /** Accepted while filesystems are frozen (docs/PROTOCOL.md lists which). */
  allowWhileFrozen?: boolean;
  args: S;
  /**
   * Answers large enough to matter for memory (listings, route tables): such commands run one
   * at a time, each once the output queued for the host is under the agent's limit.
   */
  bulk?: boolean;
  handler(args: Args<S>, ctx: Context, call: Call): Answer<N> | Promise<Answer<N>>;
}

/** Declares a command with its handler's arguments typed from its schema and its answer from lib/protocols/phoenix/answers.ts. */
export function defineCommand<S extends Schema, N extends string>(c: Command<S, N>): Command {
  return c as unknown as Command;
}

export class Registry {
  private readonly byName = new Map<string, Command>();
  private readonly list: Command[] = [];

  constructor(commands: Iterable<Command> = []) {
    for (const c of commands) this.add(c);
  }

  add(c: Command): void {
    for (const n of [c.name, ...(c.aliases ?? [])]) {
      if (this.byName.has(n)) throw new Error(`command ${n} is registered twice`);
      this.byName.set(n, c);
    }
    this.list.push(c);
  }

  get(name: string): Command | undefined {
    return this.byName.get(name);
  }

  /** Every command in registration order. */
  commands(): readonly Command[] {
    return this.list;
  }

  /** Every name a host may send: each command's name followed by its aliases. */
  names(): string[] {
    return this.list.flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  }
}

function checkOne(name: string, spec: ArgSpec, raw: unknown): unknown {
  // A long base64 string parseRequest cut out is that string to every type but 'base64'.
  const v = raw instanceof Base64Text && spec.type !== 'base64' ? raw.text : raw;
  const bad = (expected: string) =>
    new AgentError(`Invalid argument "${name}": expected ${expected}, got ${describe(v)}`);
  switch (spec.type) {
    case 'string':
      if (typeof v !== 'string') throw bad('a string');
      // Paths and names become C strings, which end at the first NUL: "/a\0b" would act on /a.
      if (v.includes('\0')) throw new AgentError(`Invalid argument "${name}": contains a NUL character`);
      if (spec.oneOf && !spec.oneOf.includes(v)) {
        throw new AgentError(
          `Invalid argument "${name}": expected one of ${spec.oneOf.map((s) => quote(s)).join(', ')}, got ${quote(v)}`,
        );
      }
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw bad('true or false');
      return v;
    case 'int':
    case 'number': {
      const kind = spec.type === 'int' ? 'an integer' : 'a number';
      if (typeof v !== 'number') throw bad(kind);
      // Integers must be exact as doubles: 2^53 + 1 would arrive as 2^53, a different handle.
      const lo = spec.type === 'int' ? Math.max(spec.min ?? -Infinity, -Number.MAX_SAFE_INTEGER) : spec.min;
      const hi = spec.type === 'int' ? Math.min(spec.max ?? Infinity, Number.MAX_SAFE_INTEGER) : spec.max;
      const got = Number.isFinite(v) ? String(v) : 'a number too large to represent'; // JSON.parse reads 1e400 as Infinity
      if (!Number.isFinite(v) || (lo !== undefined && v < lo) || (hi !== undefined && v > hi)) {
        throw new AgentError(`Invalid argument "${name}": expected ${kind}${rangeText(lo, hi)}, got ${got}`);
      }
      if (spec.type === 'int' && !Number.isInteger(v))
        throw new AgentError(`Invalid argument "${name}": expected an integer, got ${got}`);
      return v;
    }
    case 'string[]':
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad('an array of strings');
      if (v.some((x) => x.includes('\0'))) throw new AgentError(`Invalid argument "${name}": contains a NUL character`);
      return v;
    case 'base64':
      if (v instanceof Base64Text) return v.decoded.bytes;
      if (typeof v !== 'string') throw bad('a string');
      return decodeBase64(v) ?? null;
  }
}

/** " from 0 to 255", " of at least 0", or "" when unbounded. */
function rangeText(lo: number | undefined, hi: number | undefined): string {
  if (lo !== undefined && hi !== undefined) return ` from ${lo} to ${hi}`;
  if (lo !== undefined) return ` of at least ${lo}`;
  if (hi !== undefined) return ` of at most ${hi}`;
  return '';
}

/** Each schema's entries, listed once (a request's check then allocates none). */
const schemaEntries = new WeakMap<Schema, [string, ArgSpec][]>();
function entriesOf(schema: Schema): [string, ArgSpec][] {
  let e = schemaEntries.get(schema);
  if (!e) {
    e = Object.entries(schema);
    schemaEntries.set(schema, e);
  }
  return e;
}

/** Checks raw request arguments against a schema; throws an AgentError naming the argument. */
export function checkArgs(schema: Schema, raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of entriesOf(schema)) {
    const v = raw[name];
    if (v === undefined || v === null) {
      if (spec.required) throw new AgentError(`Missing argument "${name}"`);
      if (spec.default !== undefined) out[name] = checkOne(name, spec, spec.default); // a 'base64' default is decoded too
      continue;
    }
    out[name] = checkOne(name, spec, v);
  }
  return out;
}
