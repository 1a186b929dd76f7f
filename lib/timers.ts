// Timers: the longest a Node timer waits, and giving up on a promise after a while.
//
// The longest a Node timer waits: setTimeout with more than 2^31-1 ms fires at once (after a
// TimeoutOverflowWarning), so a timeout someone gives is checked against this, never passed on.
export const MAX_TIMER_MS = 0x7fffffff;

/** MAX_TIMER_MS in whole seconds: the limit of every timeout given in seconds. */
export const MAX_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** p, or a rejection with an Error saying `message` when it has not settled within ms (p is left to finish). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
