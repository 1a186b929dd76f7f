// qemu-guest-agent 7.2's front-end (docs/QEMU-GA.md): qemu's JSON stream in, QMP answers out.
import type { Context } from '../../context';
import type { AnswerLine } from '../../wire/answer';
import type { Framer, Incoming, Protocol } from '../protocol';
import { QgaDispatcher } from './dispatcher';
import { runDecoder } from '../../wire/decode-native';
import { framedLength, JsonStreamFramer } from './framing';
import type { QgaCommand } from './schema';

export class QgaProtocol implements Protocol {
  readonly name = 'qemu-ga' as const;
  readonly dispatcher: QgaDispatcher;

  constructor(ctx: Context, commands: readonly QgaCommand[]) {
    this.dispatcher = new QgaDispatcher(ctx, commands);
  }

  /**
   * A session's requests run one at a time, in order, as qemu-ga runs them: its hosts match an
   * answer to the request before it, most of them without an id.
   */
  framer(deliver: (req: Incoming) => void, maxBytes: number): Framer {
    /** The last request still being answered, if any: the next one starts after it. */
    let previous: Promise<unknown> | undefined;
    const follow = (answer: Promise<AnswerLine>) => {
      // Order only: holding the answer itself would keep it (a 44 MiB exec status, say) for
      // as long as the session lasts.
      const p = answer.then(
        () => undefined,
        () => undefined,
      );
      previous = p;
      void p.then(() => {
        if (previous === p) previous = undefined;
      });
    };
    return new JsonStreamFramer(
      (m) => {
        deliver({
          bytes: 'bytes' in m ? framedLength(m) : 0,
          answer: (call) => {
            // Nothing before it: run now, and an answer made at once goes out at once.
            const answer = previous
              ? previous.then(() => this.dispatcher.dispatch(m, call))
              : this.dispatcher.dispatchNow(m, call);
            if (answer instanceof Promise) follow(answer);
            return answer;
          },
        });
      },
      maxBytes,
      runDecoder,
    );
  }
}
