// Hot-pluggable memory blocks (Documentation/admin-guide/mm/memory-hotplug.rst): each
// /sys/devices/system/memory/memoryN, whether it is online and whether it can be taken offline,
// and the size of a block.
import { promises as fs } from 'fs';
import { constants } from 'os';
import { errnoOf, errorAbout } from '../errors';
import { mapLimit, readAttribute, readdirRaw } from './sysfs';

export interface MemoryBlock {
  /** N of memoryN: the block's physical index (blocks need not be contiguous). */
  physIndex: number;
  online: boolean;
  canOffline: boolean;
}

export const DEFAULT_SYS_MEMORY = '/sys/devices/system/memory';

/** C's strtoul/strtol digits of a base: leading space, a sign, the digits; 0 when there are none. */
function cNumber(s: string, base: 10 | 16): number {
  const m = (base === 16 ? /^\s*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]+)/ : /^\s*([+-]?)(\d+)/).exec(s);
  if (!m) return 0;
  const v = parseInt(m[2], base);
  return m[1] === '-' ? -v : v;
}

async function openDir(dir: string): Promise<void> {
  const d = await fs.opendir(dir).catch((e: unknown) => Promise.reject(errorAbout(e, 'open', dir)));
  await d.close();
}

/**
 * Every memory block, in the order the kernel lists the directory. Rejects with a SystemError
 * (opendir of `dir`, ENOENT on a system without memory hotplug; open of a block's directory;
 * open/pread of its `state` or `removable` attribute) or an EmptyAttributeError.
 */
export async function listMemoryBlocks(dir = DEFAULT_SYS_MEMORY): Promise<MemoryBlock[]> {
  const blocks = (await readdirRaw(dir)).filter((e) => e.name.startsWith('memory') && e.isDirectory);
  return mapLimit(blocks, 16, (e) => memoryBlock(dir, cNumber(e.name.slice(6), 10)));
}

async function memoryBlock(dir: string, physIndex: number): Promise<MemoryBlock> {
  const blockDir = `${dir}/memory${physIndex}`;
  let state: Buffer;
  try {
    state = await readAttribute(`${blockDir}/state`, 10);
  } catch (e) {
    if (errnoOf(e) !== constants.errno.ENOENT) throw e;
    // Kernels without `state` cannot offline memory, unless the block itself went away.
    await openDir(blockDir);
    return { physIndex, online: true, canOffline: false };
  }
  const online = state.subarray(0, 6).toString('latin1') === 'online';
  try {
    const removable = await readAttribute(`${blockDir}/removable`, 1);
    return { physIndex, online, canOffline: removable[0] !== 0x30 };
  } catch (e) {
    if (errnoOf(e) !== constants.errno.ENOENT) throw e;
    return { physIndex, online, canOffline: false };
  }
}

/**
 * Bytes in a memory block (`block_size_bytes`, hexadecimal). Rejects with a SystemError (open of
 * `dir`, open/pread of the attribute) or an EmptyAttributeError.
 */
export async function memoryBlockSize(dir = DEFAULT_SYS_MEMORY): Promise<number> {
  await openDir(dir);
  return cNumber((await readAttribute(`${dir}/block_size_bytes`, 20)).toString('latin1'), 16);
}
