// Answer lines: `{"return":...}` and `{"error":...}` (docs/PROTOCOL.md "Framing").
import { goJson } from './json';
import { slabBuffer } from '../buffers';

/**
 * A return value that is already JSON text, exactly as Go's encoding/json would write it. For
 * answers whose bulk needs no escaping (base64): JSON.stringify would scan megabytes of it on
 * the main thread for nothing, and every millisecond the main thread spends there is a
 * millisecond the port is not fed (file-read with large chunks, issue 4). And for answers built
 * a piece at a time (directory-list), which then never exist as one string.
 */
export class RawJson<T = unknown> {
  /** The type of the value the text is the JSON of (for the type checker only). */
  declare readonly value?: T;
  /**
   * The JSON text, in pieces: ASCII strings (JSON punctuation), or the UTF-8 bytes of text, each
   * whole characters (a large base64 payload, a directory listing's entries: never one string),
   * so encodeRawReturn copies the pieces into the answer as bytes with no encoding pass.
   */
  readonly parts: readonly (string | Buffer)[];
  /**
   * What a large answer holds until it is written (its share of the agent's budget of them, set
   * by AnswerHold.keep): the answer line made of it carries it (heldBy), and the agent lets it go
   * once its transport has written that line.
   */
  held?: Held;
  constructor(json: string | readonly (string | Buffer)[]) {
    this.parts = typeof json === 'string' ? [json] : json;
  }
  get json(): string {
    return this.parts.map((p) => (typeof p === 'string' ? p : p.toString('utf8'))).join('');
  }
}

/** `{"return":VALUE,"tag":TAG}\n` */
export function encodeReturn(value: unknown, tag: string): string {
  if (value instanceof RawJson) return `{"return":${value.json},"tag":${goJson(tag)}}\n`;
  return goJson({ return: value === undefined ? null : value, tag }) + '\n';
}

/** An answer line as text, as its bytes, or as pieces of its bytes sent one after the other. */
export type AnswerLine = string | Buffer | readonly Buffer[];

/** Something an answer holds until it is written (see RawJson.held). */
export interface Held {
  readonly release: () => void;
}

const holds = new WeakMap<object, Held>();

/** The hold of an answer line made of a RawJson with one (see RawJson.held). */
export function heldBy(line: AnswerLine): Held | undefined {
  return typeof line === 'string' ? undefined : holds.get(line);
}

/** `line`, the answer made of `value`, carrying its hold (RawJson.held), if any. */
export function carryHeld<L extends Buffer | readonly Buffer[]>(value: RawJson, line: L): L {
  if (value.held) holds.set(line, value.held);
  return line;
}

/** Bytes of an answer line (a string's UTF-16 length stands in: it is only counted, never sent). */
export function answerBytes(line: AnswerLine): number {
  if (typeof line === 'string' || Buffer.isBuffer(line)) return line.length;
  let n = 0;
  for (const p of line as readonly Buffer[]) n += p.length;
  return n;
}

/**
 * Answers longer than this stay in pieces (a directory listing's, tens of MB): copying them into
 * one buffer would double their memory and hold the main thread for the memcpy.
 */
const ONE_BUFFER_MAX = 4 * 1024 * 1024;

/**
 * A part at least this long (a large chunk's base64) is sent as it is, not copied into the
 * answer: the transport makes the one copy it needs (the port's writer queue, the unix socket's
 * reused buffer). Copied here too, it was garbage beside the copy until the next collection.
 * Such a piece is its own Buffer, and the transport frees it once done with it (native.freeWhole),
 * so that the next large answer reuses its memory instead of being made beside it.
 */
export const OWN_PIECE = 64 * 1024;

/**
 * encodeReturn() of a RawJson, straight into the bytes of the answer line: one buffer, each
 * piece copied in (a 1 MiB file-read answer costs a memcpy, where a UTF-8 pass over a joined
 * string took milliseconds of the main thread, during which nothing fed the port). An answer
 * with parts of OWN_PIECE or more is pieces: those parts as they are, the JSON between them one
 * buffer each; past ONE_BUFFER_MAX, the pieces themselves.
 */
export function encodeRawReturn(value: RawJson, tag: string): Buffer | Buffer[] {
  const head = '{"return":';
  const tail = `,"tag":${goJson(tag)}}\n`;
  let len = head.length + Buffer.byteLength(tail);
  for (const p of value.parts) len += p.length;
  if (len > ONE_BUFFER_MAX) {
    const pieces: Buffer[] = [Buffer.from(head, 'latin1')];
    for (const p of value.parts) pieces.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
    pieces.push(Buffer.from(tail, 'utf8'));
    return carryHeld(value, pieces);
  }
  if (value.parts.some((p) => typeof p !== 'string' && p.length >= OWN_PIECE)) {
    const pieces: Buffer[] = [];
    let between: (string | Buffer)[] = [head];
    for (const p of value.parts) {
      if (typeof p === 'string' || p.length < OWN_PIECE) between.push(p);
      else {
        pieces.push(splice(between, ''), p);
        between = [];
      }
    }
    pieces.push(splice(between, tail));
    return pieces;
  }
  const out = slabBuffer(len);
  let off = out.write(head, 0, 'latin1');
  for (const p of value.parts) off += typeof p === 'string' ? out.write(p, off, 'latin1') : p.copy(out, off);
  out.write(tail, off, 'utf8');
  return out;
}

/** The parts (ASCII strings or bytes) and then `tail` (text), in one buffer. */
function splice(parts: readonly (string | Buffer)[], tail: string): Buffer {
  let len = Buffer.byteLength(tail);
  for (const p of parts) len += p.length;
  const out = Buffer.allocUnsafe(len);
  let off = 0;
  for (const p of parts) off += typeof p === 'string' ? out.write(p, off, 'latin1') : p.copy(out, off);
  out.write(tail, off, 'utf8');
  return out;
}

/** `{"error":{"bufb64":BASE64(message),"code":N},"tag":TAG}\n` */
export function encodeError(message: string, code: number, tag: string): string {
  return goJson({ error: { bufb64: Buffer.from(message, 'utf8').toString('base64'), code }, tag }) + '\n';
}
