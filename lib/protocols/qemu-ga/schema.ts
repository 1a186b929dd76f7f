// qemu-ga's argument schema, as qga/qapi-schema.json declares it, and its checker, which answers
// bad arguments with qemu's own messages ("Parameter 'path' is missing", "Invalid parameter type
// for 'handle', expected: integer", "Parameter 'x' is unexpected").
import { AnswerError } from '../../errors';
import type { Call, Context } from '../../context';
import { Base64Text } from '../../wire/base64';
import { qbase64Decode } from './base64';
import { exactInteger, fractionArgs } from './json';

/**
 * A QAPI type: a scalar, an enum, an array of a type, an object of members, or an alternate.
 * 'base64' is a str on the wire whose handler gets its bytes as qemu-ga decodes them
 * (qbase64Decode), or null when it has a character base64 does not use (long ones arrive decoded
 * already, see parseJson); the bytes are the handler's only until its answer settles. An
 * alternate's `name` is its QAPI type's, which qemu's type errors name.
 */
export type QType =
  | 'str'
  | 'base64'
  | 'int'
  | 'uint64'
  | 'number'
  | 'bool'
  | 'any'
  | { enum: readonly string[] }
  | { array: QType }
  | { object: QSchema }
  | { alternate: readonly QType[]; name?: string };

export interface QArg {
  type: QType;
  /** Optional members may be absent; a present one is checked (null included, as qemu does). */
  optional?: boolean;
  /**
   * An int whose value is echoed (guest-sync's id): read from the request's text, so that past
   * 2^53 it is the int64 sent (a bigint), not the double nearest to it.
   */
  exact?: boolean;
  doc: string;
}

export type QSchema = Record<string, QArg>;

/** An error answer: `{"error": {"class": CLASS, "desc": DESC}}`. */
export class QgaError extends AnswerError {
  constructor(
    message: string,
    readonly errorClass: 'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' = 'GenericError',
  ) {
    super(message);
  }
}

type QTypeOf<T> = T extends 'str'
  ? string
  : T extends 'int' | 'uint64' | 'number'
    ? number
    : T extends 'bool'
      ? boolean
      : T extends 'base64'
        ? Buffer | null
        : T extends { enum: readonly (infer E)[] }
          ? E
          : T extends { array: infer A }
            ? QTypeOf<A>[]
            : T extends { object: infer O extends QSchema }
              ? QArgs<O>
              : T extends { alternate: readonly (infer U)[] }
                ? QTypeOf<U>
                : unknown;

/** A handler's view of its arguments, typed from its schema: optional ones may be undefined. */
export type QArgs<S extends QSchema> = {
  [K in keyof S]: S[K] extends { optional: true } ? QArgOf<S[K]> | undefined : QArgOf<S[K]>;
};
type QArgOf<A extends QArg> = A extends { exact: true } ? number | bigint : QTypeOf<A['type']>;

export interface QgaCommand<S extends QSchema = QSchema> {
  name: string;
  doc: string;
  args: S;
  /** Served while filesystems are frozen (qemu-ga's freeze allow-list). */
  allowWhileFrozen?: boolean;
  /** qemu-ga sends no answer when it succeeds (guest-shutdown, guest-suspend-*). */
  noSuccessResponse?: boolean;
  /** Listed in guest-info but refused, as qemu-ga does with a command it disables. */
  disabled?: boolean;
  /** See Command.bulk (lib/protocols/phoenix/registry.ts). */
  bulk?: boolean;
  /** Served but left out of guest-info (ember-ga's own commands: hosts see qemu-ga's list). */
  unlisted?: boolean;
  /**
   * The `return` value, or a promise of it (a RawJson for text already made, such as a large read's base64). Throw a
   * QgaError for an error answer; any other error is answered as GenericError with its message.
   */
  handler(args: QArgs<S>, ctx: Context, call: Call): unknown;
}

/** Declares a command with its handler's arguments typed from its schema (declare enums `as const`). */
export function defineQgaCommand<const S extends QSchema>(c: QgaCommand<S>): QgaCommand {
  return c as unknown as QgaCommand;
}

function typeName(t: QType): string {
  if (typeof t === 'string')
    return t === 'str' || t === 'base64' ? 'string' : t === 'int' ? 'integer' : t === 'bool' ? 'boolean' : t;
  if ('enum' in t) return 'string';
  if ('array' in t) return 'array';
  if ('object' in t) return 'object';
  return 'value';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * qemu's int is an int64: a JSON number with no fraction. Past 2^53 the number is the double
 * JSON.parse made of it (guest-set-time's nanoseconds since 1970 are ~2^60).
 */
function isInt(v: unknown): v is number | bigint {
  if (typeof v === 'bigint') return v >= -(2n ** 63n) && v < 2n ** 63n; // an exact one (QArg.exact)
  return typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 63;
}

/** The arguments written with a fraction or an exponent (fractionArgs): qemu's doubles, never ints. */
type Fractions = ReadonlySet<string> | undefined;

function checkValue(name: string, t: QType, raw: unknown, fractions: Fractions): unknown {
  const v = raw instanceof Base64Text && t !== 'base64' ? raw.text : raw;
  const bad = () => new QgaError(`Invalid parameter type for '${name}', expected: ${typeName(t)}`);
  if (typeof t === 'string') {
    switch (t) {
      case 'str':
        if (typeof v !== 'string') throw bad();
        return v;
      case 'base64':
        if (v instanceof Base64Text) return v.decoded.bytes;
        if (typeof v !== 'string') throw bad();
        return qbase64Decode(v);
      case 'int':
        if (!isInt(v) || fractions?.has(name)) throw bad();
        return v;
      case 'uint64':
        // qemu takes a negative int64 too (as 2^64 plus it): the handler gets it as sent.
        if (
          !(isInt(v) || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 64)) ||
          fractions?.has(name)
        ) {
          throw new QgaError(`Parameter '${name}' expects uint64`);
        }
        return v;
      case 'number':
        if (typeof v !== 'number') throw bad();
        return v;
      case 'bool':
        if (typeof v !== 'boolean') throw bad();
        return v;
      case 'any':
        return v;
    }
  }
  if ('enum' in t) {
    if (typeof v !== 'string') throw bad();
    if (!t.enum.includes(v)) throw new QgaError(`Parameter '${name}' does not accept value '${v}'`);
    return v;
  }
  if ('array' in t) {
    if (!Array.isArray(v)) throw bad();
    return v.map((x, i) => checkValue(`${name}[${i}]`, t.array, x, fractions));
  }
  if ('object' in t) {
    if (!isObject(v)) throw bad();
    return checkMembers(t.object, v, `${name}.`, fractions);
  }
  // qemu picks the alternative by the value's JSON type, and that one's complaint stands.
  const kind = (x: QType) => (typeof x === 'string' ? (x === 'int' ? 'number' : x) : 'enum' in x ? 'str' : x);
  const jsonKind =
    typeof v === 'number' ? 'number' : typeof v === 'string' ? 'str' : typeof v === 'boolean' ? 'bool' : v;
  const alt = t.alternate.find(
    (a) => kind(a) === jsonKind || (Array.isArray(v) && typeof a === 'object' && 'array' in a),
  );
  if (alt) return checkValue(name, alt, v, fractions);
  throw new QgaError(
    `Invalid parameter type for '${name}', expected: ${t.name ?? t.alternate.map(typeName).join(' or ')}`,
  );
}

function checkMembers(
  schema: QSchema,
  raw: Record<string, unknown>,
  prefix: string,
  fractions: Fractions,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(schema)) {
    if (!(name in raw)) {
      if (!spec.optional) throw new QgaError(`Parameter '${prefix}${name}' is missing`);
      continue;
    }
    out[name] = checkValue(`${prefix}${name}`, spec.type, raw[name], fractions);
  }
  for (const name of Object.keys(raw)) {
    // Own members only: `constructor` or `__proto__` is no argument of any command.
    if (!Object.prototype.hasOwnProperty.call(schema, name))
      throw new QgaError(`Parameter '${prefix}${name}' is unexpected`);
  }
  return out;
}

const exactOf = new WeakMap<QSchema, string[]>();

/** The schema's `exact` arguments, worked out once per schema (none for almost every command). */
function exactArgs(schema: QSchema): string[] {
  let names = exactOf.get(schema);
  if (!names) exactOf.set(schema, (names = Object.keys(schema).filter((k) => schema[k].exact)));
  return names;
}

/**
 * A command's arguments checked against its schema, as qemu's input visitor checks them. `text`:
 * the request's JSON, where an exact int past 2^53 is read again (QArg.exact); `fractions`: the
 * text has a number with a fraction or an exponent, which is then found (fractionArgs).
 */
export function checkQgaArgs(
  schema: QSchema,
  raw: Record<string, unknown>,
  text?: Buffer,
  fractions = false,
): Record<string, unknown> {
  let args = raw;
  if (text)
    for (const name of exactArgs(schema)) {
      const exact = exactInteger(raw[name], text, ['arguments', name]);
      if (exact !== undefined) args = { ...args, [name]: exact };
    }
  return checkMembers(schema, args, '', fractions && text ? fractionArgs(text, schema) : undefined);
}
