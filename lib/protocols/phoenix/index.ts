// phoenix-guest-agent 0.7.1's front-end: one JSON request per line (docs/PROTOCOL.md).
import { Dispatcher } from './dispatcher';
import type { Context } from '../../context';
import type { Registry } from './registry';
import { encodeError } from '../../wire/answer';
import { LineFramer } from '../../wire/framing';
import type { Framer, Incoming, Protocol } from '../protocol';

export class PhoenixProtocol implements Protocol {
  readonly name = 'phoenix' as const;
  private readonly dispatcher: Dispatcher;

  constructor(
    private readonly ctx: Context,
    registry: Registry,
  ) {
    this.dispatcher = new Dispatcher(ctx, registry);
  }

  framer(deliver: (req: Incoming) => void, maxBytes: number): Framer {
    return new LineFramer(
      (line) => {
        if (isBlank(line)) return; // a blank line is no request: nothing to answer
        deliver({ bytes: line.length, answer: (call) => this.dispatcher.dispatchNow(line, call) });
      },
      () =>
        deliver({
          bytes: 0,
          answer: () => {
            this.ctx.log.warn(`request line longer than ${maxBytes} bytes dropped`);
            return Promise.resolve(encodeError(`Request line too long: the limit is ${maxBytes} bytes`, -1, ''));
          },
        }),
      maxBytes,
    );
  }
}

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}
