// The gate both front-ends' file reads wait at while the host is behind on its answers (the
// agent's output limit), counting a read by the base64 it becomes: one gate an agent.
import type { Context } from '../context';
import type { OutputGate } from '../files/handle';

const gates = new WeakMap<Context, OutputGate>();

export function outputGate(ctx: Context): OutputGate {
  let gate = gates.get(ctx);
  if (!gate) {
    gate = { room: ctx.outputRoom, hold: (n: number) => ctx.holdOutput(Math.ceil(n / 3) * 4) };
    gates.set(ctx, gate);
  }
  return gate;
}
