// Giving up on a promise that may never settle (a hung statfs, a utmp that is a FIFO).

/** p, or a rejection with `message` when it has not settled within ms (p is left to finish). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
