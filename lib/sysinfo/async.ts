// Living with reads that may never finish (a hung statfs, a utmp that is a FIFO): give up on
// them after a while, and never start a second one while the first is still stuck (each stuck
// read holds a thread-pool thread; a dashboard polling every few seconds would otherwise take
// all four, and with them every file operation of the agent).

export { withTimeout } from '../timers';

/**
 * fn, except that a call while one with the same argument is in flight joins that one. `key`
 * says which arguments are the same (default: the argument itself; a Buffer needs one).
 */
export function coalesce<A, T>(
  fn: (arg: A) => Promise<T>,
  key: (arg: A) => unknown = (a) => a,
): (arg: A) => Promise<T> {
  const inflight = new Map<unknown, Promise<T>>();
  return (arg: A) => {
    const k = key(arg);
    let p = inflight.get(k);
    if (p === undefined) {
      p = fn(arg).finally(() => inflight.delete(k));
      inflight.set(k, p);
    }
    return p;
  };
}
