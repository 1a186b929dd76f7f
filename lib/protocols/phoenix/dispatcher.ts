// Turns one request line into exactly one answer line. Knows nothing about particular commands:
// it parses, looks the name up in the registry, applies the freeze rule, checks arguments
// against the command's schema and runs its handler.
import { decodeBase64Into } from '../../wire/decode-native';
import { AgentError, wireError } from '../../errors';
import { encodeError, encodeRawReturn, encodeReturn, RawJson, type AnswerLine } from '../../wire/answer';
import { parseRequest, RequestError } from '../../wire/request';
import { type Base64Decoder } from '../../wire/base64';
import { checkArgs } from './registry';
import type { Call, Context } from '../../context';
import type { Command, Registry } from './registry';

export class Dispatcher {
  /** `decodeBase64`: how long base64 arguments are decoded (Base64Decoder); the addon's by default. */
  constructor(
    private readonly ctx: Context,
    private readonly registry: Registry,
    private readonly decodeBase64: Base64Decoder = decodeBase64Into,
  ) {}

  /**
   * The answer line: a string, or bytes for a RawJson answer (see encodeRawReturn). Everything up
   * to the handler's call runs now; the line is not kept while the handler works (a 1 MiB chunk's
   * line would otherwise outlast young-generation collections, lib/memory.ts).
   */
  dispatch(line: Buffer | string, call: Call): Promise<AnswerLine> {
    const answer = this.dispatchNow(line, call);
    return answer instanceof Promise ? answer : Promise.resolve(answer);
  }

  /**
   * dispatch(), but the answer line itself when it is made at once: an error, or a handler that
   * answered with a value, not a promise (a 4 KiB file-read served from the page cache, a
   * waited file-write). No promise reactions then stand between the request and its answer.
   */
  dispatchNow(line: Buffer | string, call: Call): AnswerLine | Promise<AnswerLine> {
    let tag = '';
    let release = () => {};
    try {
      const req = parseRequest(line, { decodeBase64: this.decodeBase64 });
      tag = req.tag;
      release = req.release;
      const cmd = this.registry.get(req.execute);
      if (!cmd) throw new AgentError(`Unknown command: ${req.execute}`);
      if (this.ctx.state.frozen && !cmd.allowWhileFrozen) {
        throw new AgentError(`All filesystems are frozen. Cannot execute: ${req.execute}`);
      }
      const args = checkArgs(cmd.args, req.arguments);
      this.ctx.log.debug(`<- ${req.execute} tag=${JSON.stringify(tag)}`);
      if (cmd.bulk) return this.answerBulk(cmd, args, call, tag, release);
      const value: unknown = cmd.handler(args as never, this.ctx, call);
      if (isThenable(value)) return this.answer(value, tag, release);
      const answer = encode(value, tag);
      release();
      return answer;
    } catch (e) {
      release();
      return this.error(e, tag);
    }
  }

  /** The handler's answer once it settles; then the request's decoded arguments are released. */
  private async answer(value: unknown, tag: string, release: () => void): Promise<AnswerLine> {
    try {
      return encode(await value, tag);
    } catch (e) {
      return this.error(e, tag);
    } finally {
      release();
    }
  }

  /** A bulk command's answer, through the agent's bulk gate (Context.runBulk). */
  private answerBulk(
    cmd: Command,
    args: Record<string, unknown>,
    call: Call,
    tag: string,
    release: () => void,
  ): Promise<AnswerLine> {
    return this.ctx
      .runBulk(call, cmd.name, () => {
        let value: unknown;
        try {
          value = cmd.handler(args as never, this.ctx, call);
        } catch (e) {
          value = Promise.reject(e);
        }
        return this.answer(value, tag, release);
      })
      .catch((e) => {
        release();
        return this.error(e, tag);
      });
  }

  private error(e: unknown, tag: string): string {
    const t = e instanceof RequestError ? e.tag : tag;
    const { message, code } = wireError(e);
    this.ctx.log.debug(`-> error ${code}: ${message}`);
    return encodeError(message, code, t);
  }
}

/** The answer line of a handler's value. */
function encode(value: unknown, tag: string): AnswerLine {
  return value instanceof RawJson ? encodeRawReturn(value, tag) : encodeReturn(value, tag);
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && typeof x === 'object' && typeof (x as { then?: unknown }).then === 'function';
}
