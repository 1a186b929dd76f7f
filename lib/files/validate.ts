// Argument checks that throw what Node's fs throws for the same mistake: a TypeError or a
// RangeError with Node's `code` and message, naming the argument or option.
import { inspect } from 'util';

/** A TypeError or RangeError with Node's error `code`, as fs throws them. */
export type ArgError = (TypeError | RangeError) & {
  code: 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE' | 'ERR_OUT_OF_RANGE';
};

function argError<C extends ArgError['code']>(
  Kind: typeof TypeError | typeof RangeError,
  code: C,
  message: string,
): ArgError {
  const e = new Kind(message) as ArgError;
  // Node's own errors carry the code in `code` and in the stack's first line.
  Object.defineProperty(e, 'code', { value: code, enumerable: false, writable: true, configurable: true });
  e.stack = `${Kind.name} [${code}]: ${message}\n${(e.stack ?? '').split('\n').slice(1).join('\n')}`;
  return e;
}

/** "argument" for a name like "path", "property" for one like "options.mode", as Node says it. */
const what = (name: string) => (name.includes('.') ? 'property' : 'argument');

/** Node's "Received ..." tail. */
function received(value: unknown): string {
  if (value === null || value === undefined) return `Received ${String(value)}`;
  if (typeof value === 'function') return `Received function ${value.name}`;
  if (typeof value === 'object') return `Received ${inspect(value, { depth: -1 })}`;
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `Received type ${typeof value} (${shown})`;
}

/** ERR_INVALID_ARG_TYPE: `value` is not of the `expected` type(s). */
export function invalidArgType(name: string, expected: string, value: unknown): ArgError {
  return argError(
    TypeError,
    'ERR_INVALID_ARG_TYPE',
    `The "${name}" ${what(name)} must be ${expected}. ${received(value)}`,
  );
}

/** ERR_INVALID_ARG_VALUE: `value` has the right type but is not one this option takes. */
export function invalidArgValue(name: string, value: unknown, reason = 'is invalid'): ArgError {
  return argError(
    TypeError,
    'ERR_INVALID_ARG_VALUE',
    `The ${what(name)} '${name}' ${reason}. Received ${inspect(value, { depth: -1 })}`,
  );
}

/** ERR_OUT_OF_RANGE: a number outside what the option takes. */
export function outOfRange(name: string, range: string, value: unknown): ArgError {
  return argError(
    RangeError,
    'ERR_OUT_OF_RANGE',
    `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`,
  );
}

/** fs's check of a path it is given: a string without NUL bytes. */
export function checkPath(path: unknown, name = 'path'): asserts path is string {
  if (typeof path !== 'string') throw invalidArgType(name, 'of type string', path);
  if (path.includes('\0')) throw invalidArgValue(name, path, 'must be a string without null bytes');
}

/** An options argument: undefined or an object (not null, not an array), as fs takes it. */
export function checkOptions(options: unknown, name = 'options'): asserts options is object | undefined {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw invalidArgType(name, 'of type object', options);
}

/** An optional boolean option. */
export function optionalBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw invalidArgType(name, 'of type boolean', value);
}

const OCTAL = /^(?:0o)?([0-7]+)$/i;

/**
 * File mode bits as fs takes them (fs.open's `mode`, fs.mkdir's): a 32-bit unsigned integer
 * or an octal string ("644", or "0o644"), else `def`.
 */
export function parseFileMode(value: unknown, name: string, def: number): number {
  if (value === undefined) return def;
  if (typeof value === 'string') {
    const m = OCTAL.exec(value);
    if (!m) throw invalidArgValue(name, value, 'must be a 32-bit unsigned integer or an octal string');
    value = parseInt(m[1], 8);
  }
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
  if (value < 0 || value > 0xffffffff) throw outOfRange(name, '>= 0 && <= 4294967295', value);
  return value;
}
