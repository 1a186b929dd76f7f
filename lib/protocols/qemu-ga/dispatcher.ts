// qemu-ga's dispatch (qapi/qmp-dispatch.c, qga/main.c): one JSON request in, one answer out,
// `{"return": ...}` or `{"error": {"class": ..., "desc": ...}}`, with the request's "id" echoed.
import { isUtf8 } from 'buffer';
import { errnoMessage, SystemError, toSystemError } from '../../errors';
import type { Call, Context } from '../../context';
import type { AnswerLine } from '../../wire/answer';
import { carryHeld, RawJson } from '../../wire/answer';
import { Base64Text } from '../../wire/base64';
import { parseJson, parseJsonCut } from '../../wire/request';
import { decodeBase64Into } from '../../wire/decode-native';
import { beforeParse } from '../../memory';
import { checkQgaArgs, QgaError, type QgaCommand } from './schema';
import { exactInteger, integerAt, qdictOrder, qmpJson } from './json';
import type { Framed } from './framing';

const SYNC_BYTE = Buffer.from([0xff]);
/** Answers up to this long are sent as one buffer; longer ones in their pieces (see encodeRawReturn). */
const ONE_BUFFER_MAX = 4 * 1024 * 1024;

/** qemu-ga's text for an errno: strerror's, as C prints it ("No such file or directory"). */
export function strerror(errno: number): string {
  const m = errnoMessage(errno);
  return m.charAt(0).toUpperCase() + m.slice(1);
}

/** The message of an error for qemu-ga's desc: a system error as strerror() words it. */
export function errorText(e: unknown): string {
  const err = toSystemError(e);
  if (err instanceof SystemError) return strerror(err.errno);
  return err instanceof Error ? err.message : String(err);
}

export class QgaDispatcher {
  private readonly byName = new Map<string, QgaCommand>();

  constructor(
    private readonly ctx: Context,
    readonly commands: readonly QgaCommand[],
  ) {
    for (const c of commands) {
      if (this.byName.has(c.name)) throw new Error(`qemu-ga command ${c.name} is declared twice`);
      this.byName.set(c.name, c);
    }
  }

  /** Is `name` served now (guest-info's `enabled`)? */
  enabled(cmd: QgaCommand): boolean {
    return !cmd.disabled && (!this.ctx.state.frozen || cmd.allowWhileFrozen === true);
  }

  dispatch(framed: Framed, call: Call): Promise<AnswerLine> {
    const answer = this.dispatchNow(framed, call);
    return answer instanceof Promise ? answer : Promise.resolve(answer);
  }

  /**
   * dispatch(), but the answer line itself when it is made at once: an error, or a handler that
   * answered with a value, not a promise (a 4 KiB guest-file-read served from the page cache, a
   * waited guest-file-write).
   */
  dispatchNow(framed: Framed, call: Call): AnswerLine | Promise<AnswerLine> {
    if ('error' in framed) return errorLine(new QgaError(framed.error), undefined);
    // Strings its framer decoded as they arrived: their bytes are given back once it is answered.
    const arrived = framed.cuts ?? [];
    let release = () => {
      for (const c of arrived) c.decoded.release();
    };
    // Queued behind others when its host went away: nobody will read the answer.
    if (call.signal.aborted) {
      release();
      return '';
    }
    let id: { value: unknown } | undefined;
    try {
      let value: unknown;
      // qemu's lexer refuses bytes that are not UTF-8, where a decoder would make them U+FFFD.
      // (The strings cut out were base64, ASCII, between quotes: no sequence changes with them.)
      if (!isUtf8(framed.bytes)) throw new QgaError('JSON parse error, invalid UTF-8 sequence in string');
      beforeParse(framed.tokens ?? 0);
      try {
        const parsed =
          arrived.length > 0 ? parseJsonCut(framed.bytes, arrived) : parseJson(framed.bytes, decodeBase64Into);
        value = parsed.value;
        const released = release;
        release = () => {
          released();
          for (const c of parsed.cuts) c.decoded.release();
        };
      } catch (e) {
        // A bare word is what qemu's lexer calls an invalid keyword, and a lone comma or colon
        // is where its parser expects a value; other errors are JSON.parse's.
        const text = framed.bytes.toString('latin1');
        const word = /^[A-Za-z_][\w-]*$/.exec(text);
        const why = word
          ? `invalid keyword '${word[0]}'`
          : text === ',' || text === ':'
            ? 'expecting value'
            : (e as Error).message;
        throw new QgaError(`JSON parse error, ${why}`);
      }
      // JSON.parse keeps a duplicate key's last value, where qemu's parser refuses the request:
      // only a dropped member leaves the value with fewer tokens than the framer counted.
      if (framed.tokens !== undefined && value !== null && typeof value === 'object') {
        if (tokenCount(value) !== framed.tokens) throw new QgaError('JSON parse error, duplicate key');
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new QgaError('QMP input must be a JSON object');
      }
      const req = value as Record<string, unknown>;
      if ('id' in req) id = { value: exactId(req.id, framed.bytes) };
      // Members are checked in the order qemu's dictionary holds them, so the first complaint is qemu's.
      for (const key of qdictOrder(Object.keys(req))) {
        if (key === 'execute') {
          if (typeof req.execute !== 'string') throw new QgaError("QMP input member 'execute' must be a string");
        } else if (key === 'arguments') {
          const a = req.arguments;
          if (a === null || typeof a !== 'object' || Array.isArray(a)) {
            throw new QgaError("QMP input member 'arguments' must be an object");
          }
        } else if (key !== 'id') {
          throw new QgaError(`QMP input member '${key}' is unexpected`);
        }
      }
      if (!('execute' in req)) throw new QgaError("QMP input lacks member 'execute'");
      const name = req.execute as string;
      const cmd = this.byName.get(name);
      if (!cmd) throw new QgaError(`The command ${name} has not been found`, 'CommandNotFound');
      if (cmd.disabled) throw new QgaError(`Command ${name} has been disabled`, 'CommandNotFound');
      if (this.ctx.state.frozen && !cmd.allowWhileFrozen) {
        throw new QgaError(`Command ${name} has been disabled: the agent is in frozen state`, 'CommandNotFound');
      }
      const given = (req.arguments as Record<string, unknown> | undefined) ?? {};
      const args = checkQgaArgs(cmd.args, given, framed.bytes, framed.fractions === true);
      this.ctx.log.debug(`<- ${name} (qemu-ga)`);
      const answerId = id;
      const done = (v: unknown): AnswerLine => {
        try {
          if (cmd.noSuccessResponse) return '';
          const line = returnLine(v, answerId);
          return name === 'guest-sync-delimited' && typeof line === 'string'
            ? Buffer.concat([SYNC_BYTE, Buffer.from(line, 'utf8')])
            : line;
        } catch (e) {
          return errorLine(e, answerId);
        } finally {
          release();
        }
      };
      const failed = (e: unknown): AnswerLine => {
        release();
        return errorLine(e, answerId);
      };
      const run = (): AnswerLine | Promise<AnswerLine> => {
        let v: unknown;
        try {
          v = cmd.handler(args as never, this.ctx, call);
        } catch (e) {
          return failed(e);
        }
        return isThenable(v) ? Promise.resolve(v).then(done, failed) : done(v);
      };
      if (!cmd.bulk) return run();
      return this.ctx.runBulk(call, name, () => {
        const answer = run();
        return answer instanceof Promise ? answer : Promise.resolve(answer);
      });
    } catch (e) {
      release();
      return errorLine(e, id);
    }
  }
}

/** The JSON tokens of a parsed value, as the framer counts them: a string cut out of it is one. */
function tokenCount(v: unknown): number {
  if (v === null || typeof v !== 'object' || v instanceof Base64Text) return 1;
  if (Array.isArray(v)) {
    let n = v.length > 0 ? v.length + 1 : 2; // brackets and commas
    for (let i = 0; i < v.length; i++) n += tokenCount(v[i]);
    return n;
  }
  const obj = v as Record<string, unknown>;
  // for-in, not Object.keys (half the cost, no array): JSON.parse's objects inherit no key.
  let n = 1; // braces and commas: one more than the members
  for (const k in obj) n += 3 + tokenCount(obj[k]); // the key, its colon, a comma or brace, the value
  return n === 1 ? 2 : n;
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && typeof x === 'object' && typeof (x as { then?: unknown }).then === 'function';
}

/**
 * The request's id as qemu echoes it: an integer past 2^53 exactly while it is an int64 or a
 * uint64 (qemu's numbers), from the request's text; past those, the double. -0.0 is a double's
 * "-0", where -0 is the integer 0.
 */
function exactId(v: unknown, text: Buffer): unknown {
  if (Object.is(v, -0)) return integerAt(text, ['id']) === undefined ? new RawJson('-0') : 0;
  const exact = exactInteger(v, text, ['id']);
  return exact !== undefined && exact >= -(2n ** 63n) && exact < 2n ** 64n ? exact : v;
}

function returnLine(value: unknown, id: { value: unknown } | undefined): AnswerLine {
  const body: Record<string, unknown> = { return: value ?? {} };
  if (id) body.id = id.value ?? null;
  if (value instanceof RawJson) {
    // Text already made (a large read's base64): its pieces are sent as they are, never joined
    // into one string or parsed again. The JSON around them is ASCII (qmpJson escapes the rest).
    const parts: Buffer[] = [Buffer.from('{', 'latin1')];
    qdictOrder(Object.keys(body)).forEach((k, i) => {
      const sep = i > 0 ? ', ' : '';
      if (k === 'id') parts.push(Buffer.from(`${sep}"id": ${qmpJson(body.id)}`, 'latin1'));
      else {
        parts.push(Buffer.from(`${sep}"return": `, 'latin1'));
        for (const p of value.parts) parts.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
      }
    });
    parts.push(Buffer.from('}\n', 'latin1'));
    const bytes = parts.reduce((n, p) => n + p.length, 0);
    return bytes <= ONE_BUFFER_MAX ? Buffer.concat(parts, bytes) : carryHeld(value, parts);
  }
  return qmpJson(body) + '\n';
}

function errorLine(e: unknown, id: { value: unknown } | undefined): string {
  const err = e instanceof QgaError ? e : undefined;
  const desc = err ? err.message : errorText(e);
  const body: Record<string, unknown> = {
    error: { class: err ? err.errorClass : 'GenericError', desc },
  };
  if (id) body.id = id.value ?? null;
  return qmpJson(body) + '\n';
}
