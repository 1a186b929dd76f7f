// The gate both front-ends' file reads wait at while the host is behind on its answers (the
// agent's output limit), counting a read by the base64 it becomes: one gate a host session (its
// Call), so that a read waits only for its own host's backlog.
import type { Call, Context } from '../context';
import { roomWait, type OutputGate } from '../files/handle';
import { AbortError } from '../errors';

const gates = new WeakMap<Call, OutputGate>();

export function outputGate(ctx: Context, call: Call): OutputGate {
  let gate = gates.get(call);
  if (!gate) {
    gate = {
      room: () => ctx.outputRoom(call),
      hasRoom: () => ctx.hasOutputRoom(call),
      hold: (n: number) => ctx.holdOutput(Math.ceil(n / 3) * 4, call),
      reserve: (n: number) => ctx.reserveOutput(Math.ceil(n / 3) * 4, call),
      signal: call.signal,
    };
    gates.set(call, gate);
  }
  return gate;
}

/**
 * Resolves once the answers queued for the call's host are under the agent's limit: true, or
 * false as soon as that host is gone (its call aborted), whatever room there is by then.
 */
export async function roomFor(ctx: Context, call: Call): Promise<boolean> {
  const gate = outputGate(ctx, call);
  try {
    for (let wait = roomWait(gate); wait; wait = roomWait(gate)) await wait;
  } catch (e) {
    if (!(e instanceof AbortError)) throw e;
  }
  return !call.signal.aborted;
}
