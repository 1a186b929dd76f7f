// Base64 on the wire: the strict decoder every base64 argument goes through, and the shapes of
// the fast path for long ones (decode-native.ts: the addon's decoder).

/**
 * Strict base64 (standard alphabet, padded, as Go's encoding/json writes []byte; line breaks
 * are skipped like Go does). Buffer.from alone silently drops bad characters, so the decoded
 * length is checked against the length the text implies.
 */
export function decodeBase64(text: string): Buffer | undefined {
  let s = text;
  if (s.length % 4 !== 0 || s.includes('-') || s.includes('_')) {
    if (!/[\r\n]/.test(s)) return undefined;
    s = s.replace(/[\r\n]/g, '');
    if (s.length % 4 !== 0 || s.includes('-') || s.includes('_')) return undefined;
  }
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const buf = Buffer.from(s, 'base64');
  return buf.length === (s.length / 4) * 3 - pad ? buf : undefined;
}

/**
 * Strict base64 with nothing skipped (decodeBase64 less its line breaks): the rules of the
 * addon's decoder, for text cut out of a request line (a raw control character there would be
 * invalid JSON, not a line break to skip). Any character outside the alphabet, which
 * Buffer.from drops, leaves the decoded length short of what the text's length implies.
 */
export function decodeBase64Exact(s: string): Buffer | undefined {
  if (s.length % 4 !== 0 || s.includes('-') || s.includes('_')) return undefined;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const buf = Buffer.from(s, 'base64');
  return buf.length === (s.length / 4) * 3 - pad ? buf : undefined;
}

/** Decoded bytes in memory that is given back (and may then be reused) with release(). */
export interface DecodedBytes {
  readonly bytes: Buffer;
  release(): void;
}

/**
 * Decodes line[start, end) as strict base64 with no line breaks (decodeBase64's rules otherwise);
 * undefined when it is not that. The agent's (decodeBase64Into, decode-native.ts) decodes in the addon, straight from
 * the line's bytes into reused buffers.
 */
export type Base64Decoder = (line: Buffer, start: number, end: number) => DecodedBytes | undefined;

/**
 * Decodes long strings as their request arrives, piece by piece (JsonStreamFramer): what framing
 * needs of the addon, handed to it so that framing itself never loads it (decode-native.ts has
 * the agent's).
 */
export interface Base64RunDecoder {
  /** A destination for up to `size` decoded bytes, given back with give(). */
  take(size: number): Buffer;
  give(buf: Buffer): void;
  /**
   * Decodes whole groups of four alphabet characters ('=' not among them) from src[start, end)
   * into dst from `at`, stopping before a group with any other byte, an incomplete last group, or
   * when dst is full: the characters decoded, a multiple of 4.
   */
  run(src: Buffer, start: number, end: number, dst: Buffer, at: number): number;
}

/**
 * A long base64 string value cut out of a request (cutBase64Strings, or its framer as it
 * arrived), decoded. parseRequest puts one in "arguments" where JSON.parse would have put the
 * string; checkArgs turns it into the string for a "string" argument, or gives a "base64" one its
 * bytes. Its text comes from the request's bytes (or is made again from the decoded ones): it
 * belongs to the synchronous part of a dispatch, not to a handler.
 */
export class Base64Text {
  constructor(
    private readonly source: () => string,
    readonly decoded: DecodedBytes,
  ) {}

  /** The string's value: it is base64, so ASCII, and has no escapes. */
  get text(): string {
    return this.source();
  }
}
