// Answer lines taken apart without a JSON pass over the whole line: a file-read answer's base64
// is sliced out of the bytes (a copy gets thousands a second), and an answer's tag is read from
// its end (to pick the parser for a request that wants exact integers).
import type { ReadResult } from './types';

/** The tag of an answer line (`...,"tag":"T"}` at its end, as both agents write it), or undefined. */
export function tagOf(text: string): string | undefined {
  const m = /"tag":("(?:[^"\\]|\\.)*")\}\s*$/.exec(text.length > 4096 ? text.slice(-4096) : text);
  if (!m) return undefined;
  try {
    return JSON.parse(m[1]) as string;
  } catch {
    return undefined;
  }
}

/** A file-read answer decoded by readAnswer. */
export class DecodedRead implements ReadResult {
  readonly md5?: string;
  constructor(
    readonly data: Buffer,
    readonly eof: boolean,
    md5?: string,
  ) {
    if (md5 !== undefined) this.md5 = md5;
  }
}

const READ_HEAD = Buffer.from('{"return":{"bufb64":"');
const READ_EOF = Buffer.from('","eof":');

/**
 * `{"return":{"bufb64":"B64","eof":BOOL},"tag":"TAG"}` (how ember-ga and 0.7.1 both write a
 * file-read answer; ember-ga's at end of file may add `"md5":"HEX"` after eof), decoded without
 * a JSON pass over the payload: base64 needs no escaping, so it is sliced out of the line.
 * Anything else: undefined, and the answer takes the JSON path.
 */
export function readAnswer(line: Buffer): { tag: string; result: DecodedRead } | undefined {
  if (
    line.length < READ_HEAD.length + READ_EOF.length ||
    line.compare(READ_HEAD, 0, READ_HEAD.length, 0, READ_HEAD.length) !== 0
  )
    return undefined;
  const mid = line.lastIndexOf(READ_EOF); // from the end: the tag is short; an encoded string cannot contain `","eof":`
  if (mid < READ_HEAD.length) return undefined;
  // The rest is `false},"tag":"T"}`; without its first `}` it ends the object `{"eof":...`.
  const rest = line.toString('utf8', mid + READ_EOF.length);
  let tail: { eof?: unknown; tag?: unknown; md5?: unknown } | undefined = plainTail(rest);
  if (!tail) {
    const brace = rest.indexOf('}');
    try {
      tail = JSON.parse(`{"eof":${rest.slice(0, brace)}${rest.slice(brace + 1)}`) as {
        eof?: unknown;
        tag?: unknown;
        md5?: unknown;
      };
    } catch {
      return undefined;
    }
  }
  if (typeof tail.tag !== 'string' || typeof tail.eof !== 'boolean') return undefined;
  const md5 = typeof tail.md5 === 'string' ? tail.md5 : undefined;
  return {
    tag: tail.tag,
    result: new DecodedRead(Buffer.from(line.toString('latin1', READ_HEAD.length, mid), 'base64'), tail.eof, md5),
  };
}

/** `false},"tag":"T"}` with a tag that has no escapes, taken apart without JSON.parse; else undefined. */
function plainTail(rest: string): { eof: boolean; tag: string } | undefined {
  const eof = rest.startsWith('true},"tag":"') ? true : rest.startsWith('false},"tag":"') ? false : undefined;
  if (eof === undefined || !rest.endsWith('"}')) return undefined;
  const tag = rest.slice(eof ? 13 : 14, -2);
  return tag.includes('"') || tag.includes('\\') ? undefined : { eof, tag };
}
