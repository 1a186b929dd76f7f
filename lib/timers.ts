// The longest a Node timer waits: setTimeout with more than 2^31-1 ms fires at once (after a
// TimeoutOverflowWarning), so a timeout someone gives is checked against this, never passed on.
export const MAX_TIMER_MS = 0x7fffffff;

/** MAX_TIMER_MS in whole seconds: the limit of every timeout given in seconds. */
export const MAX_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);
