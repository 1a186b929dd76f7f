// Bounded memory while moving files (docs/FILES.md). A 1 MiB chunk passes through buffers of a
// MB or so each, freed only when V8 collects the small objects holding them; V8 counts that
// memory apart from its heap and lets tens of MB of it pile up before it collects. So the agent
// asks for a young-generation collection (well under a millisecond with its small heap) after
// every COLLECT_EVERY bytes of large lines it is done with.
import * as v8 from 'v8';
import * as vm from 'vm';

/** Bytes of large request and answer lines between two young-generation collections. */
export const COLLECT_EVERY = 2 * 1024 * 1024;
/** Shorter lines are not counted: their buffers come from Node's pool or the heap. */
const LARGE_LINE = 64 * 1024;

type Gc = (options?: { type: 'minor' }) => void;
let gc: Gc | undefined;
let since = 0;

/**
 * Turns the collections on, for the process: exposes V8's gc() (the flag applies to contexts
 * made after it is set). The agent's entry (cli.ts) calls it; a process embedding the Agent
 * decides for itself. False when gc() cannot be had.
 */
export function enableCollections(): boolean {
  if (gc) return true;
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn: unknown = vm.runInNewContext('gc');
    if (typeof fn === 'function') gc = fn as Gc;
  } catch {
    // No gc(): V8 collects on its own account.
  }
  return gc !== undefined;
}

/** Counts a request or answer line of `bytes` the agent is done with; collects every COLLECT_EVERY. */
export function lineDone(bytes: number): void {
  if (!gc || bytes < LARGE_LINE) return;
  since += bytes;
  if (since < COLLECT_EVERY) return;
  since = 0;
  gc({ type: 'minor' });
}

/**
 * A request of this many JSON tokens or more is parsed into tens of MB of values (a 6 MiB object
 * of 524,270 keys: 54 MB), promoted while they are made: once it is answered they are garbage
 * only a full collection frees, and V8 let those of several such requests pile up (217 MiB).
 */
export const MANY_TOKENS = 256 * 1024;
let manyParsed = false;

/**
 * Before JSON.parse of a request of `tokens` tokens: one of MANY_TOKENS or more first collects
 * the values of the last such request (collectAll: 5-16 ms; a minor one frees none of them).
 */
export function beforeParse(tokens: number): void {
  if (tokens < MANY_TOKENS || !gc) return;
  if (manyParsed) collectAll();
  manyParsed = true;
}

const dropBeforeCollect: (() => void)[] = [];

/** `drop` lets go of memory kept for reuse; collectAll() calls it first, so that it is freed too. */
export function onCollectAll(drop: () => void): void {
  dropBeforeCollect.push(drop);
}

/**
 * A full collection, before an allocation of tens of MB (a qemu-ga read's answer): the buffers of
 * the last one are dead by then but, promoted while they were being written, only a full
 * collection frees them, and without one both would be held at once.
 */
export function collectAll(): void {
  for (const drop of dropBeforeCollect) drop();
  since = 0;
  gc?.(); // gc({type: 'major'}) leaves the array buffers it finds dead for later
}

/**
 * glibc malloc's mmap threshold, fixed by the agent's entry (cli.ts): blocks of this many bytes
 * or more get a mapping of their own, unmapped when freed. glibc starts there but raises the
 * threshold to each large block freed (up to 32 MiB), so once the first 1 MiB answers were freed
 * the next ones came from its heap, whose freed middle stays resident: moving 1 GiB in 1 MiB
 * chunks left ~45 MB of it.
 */
export const MMAP_THRESHOLD = 128 * 1024;
