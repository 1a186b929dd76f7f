// Turns one request line into exactly one answer line. Knows nothing about particular commands:
// it parses, looks the name up in the registry, applies the freeze rule, checks arguments
// against the command's schema and runs its handler.
import { AgentError, wireError } from './errors';
import { encodeError, encodeRawReturn, encodeReturn, parseRequest, RawJson, RequestError } from './protocol';
import { checkArgs } from './registry';
import type { Context } from './context';

export class Dispatcher {
  constructor(private readonly ctx: Context) {}

  /** The answer line: a string, or bytes for a RawJson answer (see encodeRawReturn). */
  async dispatch(line: Buffer | string): Promise<string | Buffer> {
    let tag = '';
    try {
      const req = parseRequest(line);
      tag = req.tag;
      const cmd = this.ctx.registry.get(req.execute);
      if (!cmd) throw new AgentError(`Unknown command: ${req.execute}`);
      if (this.ctx.state.frozen && !cmd.allowWhileFrozen) {
        throw new AgentError(`All filesystems are frozen. Cannot execute: ${req.execute}`);
      }
      const args = checkArgs(cmd.args, req.arguments);
      this.ctx.log.debug(`<- ${req.execute} tag=${JSON.stringify(tag)}`);
      const value = await cmd.handler(args as never, this.ctx);
      return value instanceof RawJson ? encodeRawReturn(value, tag) : encodeReturn(value, tag);
    } catch (e) {
      if (e instanceof RequestError) tag = e.tag;
      const { message, code } = wireError(e);
      this.ctx.log.debug(`-> error ${code}: ${message}`);
      return encodeError(message, code, tag);
    }
  }
}
