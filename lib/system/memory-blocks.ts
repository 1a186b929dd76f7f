// Memory blocks on and off line through /sys/devices/system/memory/memoryN/state, as qemu-ga
// 7.2's guest-set-memory-blocks does it: every block gets a result, none stops the others.
import * as fs from 'fs';
import * as path from 'path';
import { errnoOf } from '../errors';
import { systemPath, type SystemOptions } from './programs';

export const MEMORY_DIR = '/sys/devices/system/memory';

/**
 * What became of one block: done (or already so), no such block, a kernel that cannot change
 * blocks (no memory directory, or no state file while asking for offline), or a failure.
 */
export type MemoryBlockResult = 'success' | 'not-found' | 'operation-not-supported' | 'operation-failed';

export interface MemoryBlockOutcome {
  result: MemoryBlockResult;
  /**
   * The errno met on the way, when there was one, as qemu-ga reports it: also with 'success'
   * (a block with no state file, asked to be online, is; a memory directory that cannot be
   * listed for another reason than ENOENT is reported so), and 0 for an empty state file.
   */
  errno?: number;
}

/** A block's directory (under the root of `opts`): memoryN, N as qemu-ga prints it (signed). */
export function memoryBlockDir(index: number | bigint, opts: SystemOptions = {}): string {
  return systemPath(opts, path.join(MEMORY_DIR, `memory${BigInt.asIntN(64, BigInt(index))}`));
}

/** Brings memory block `index` online or takes it offline, when its state differs. */
export async function setMemoryBlockOnline(
  index: number | bigint,
  online: boolean,
  opts: SystemOptions = {},
): Promise<MemoryBlockOutcome> {
  // No memory directory: this kernel has no memory hotplug.
  try {
    await (await fs.promises.opendir(systemPath(opts, MEMORY_DIR + '/'))).close();
  } catch (e) {
    const errno = errnoOf(e) ?? 0;
    return { result: errno === ENOENT ? 'operation-not-supported' : 'success', errno };
  }
  let dir: fs.promises.FileHandle;
  try {
    dir = await fs.promises.open(memoryBlockDir(index, opts) + '/', fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    const errno = errnoOf(e) ?? 0;
    return { result: errno === ENOENT ? 'not-found' : 'operation-failed', errno };
  }
  try {
    const stateFile = path.join(memoryBlockDir(index, opts), 'state');
    let state: string;
    try {
      state = await readState(stateFile);
    } catch (e) {
      const errno = errnoOf(e) ?? 0;
      if (errno === ENOENT) {
        // An old kernel: every block online, none can change.
        return { result: online ? 'success' : 'operation-not-supported', errno };
      }
      return { result: 'operation-failed', errno };
    }
    if (online === state.startsWith('online')) return { result: 'success' };
    try {
      const fh = await fs.promises.open(stateFile, fs.constants.O_WRONLY);
      try {
        await fh.write(Buffer.from(online ? 'online' : 'offline'), 0, undefined, 0);
      } finally {
        await fh.close();
      }
    } catch (e) {
      return { result: 'operation-failed', errno: errnoOf(e) ?? 0 };
    }
    return { result: 'success' };
  } finally {
    await dir.close();
  }
}

const ENOENT = 2;

/** The first 10 bytes of a state file ("online", "offline", "going-offline"); empty: errno 0. */
async function readState(file: string): Promise<string> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const buf = Buffer.alloc(10);
    const { bytesRead } = await fh.read(buf, 0, 10, 0);
    if (bytesRead === 0) throw Object.assign(new Error(`${file}: unexpected EOF`), { errno: 0 });
    return buf.subarray(0, bytesRead).toString('latin1');
  } finally {
    await fh.close();
  }
}

/** Applies `requests` in order, each whatever became of the others: an outcome for each. */
export async function setMemoryBlocks(
  requests: readonly { index: number | bigint; online: boolean }[],
  opts: SystemOptions = {},
): Promise<MemoryBlockOutcome[]> {
  const out: MemoryBlockOutcome[] = [];
  for (const r of requests) out.push(await setMemoryBlockOnline(r.index, r.online, opts));
  return out;
}
