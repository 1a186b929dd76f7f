// Logical CPUs on and off line through /sys/devices/system/cpu/cpuN/online, as qemu-ga 7.2's
// guest-set-vcpus does it.
import * as fs from 'fs';
import * as path from 'path';
import { errorAbout } from '../errors';
import { systemPath, type SystemOptions } from './programs';

export const CPU_DIR = '/sys/devices/system/cpu';

/** A CPU to bring online or take offline. */
export interface VcpuRequest {
  logicalId: number;
  online: boolean;
}

/** A CPU that has no `online` file (the boot CPU, often) and so cannot be taken offline. */
export class CannotOfflineError extends Error {
  readonly code = 'ENOTSUP';
  constructor(readonly logicalId: number) {
    super(`logical processor #${logicalId} can't be offlined`);
    this.name = 'CannotOfflineError';
  }
}

/** A sysfs file that read as empty. */
export class UnexpectedEofError extends Error {
  constructor(
    readonly syscall: string,
    readonly path: string,
  ) {
    super(`${syscall} ${path}: unexpected EOF`);
    this.name = 'UnexpectedEofError';
  }
}

/** The directory of CPU `id` (under the root of `opts`). */
export function vcpuDir(id: number, opts: SystemOptions = {}): string {
  return systemPath(opts, path.join(CPU_DIR, `cpu${id}`));
}

/**
 * Brings CPU `id` online or takes it offline: writes "1" or "0" to its `online` file when its
 * state differs. A CPU with no such file is always online: asking for that succeeds, asking
 * to take it offline throws a CannotOfflineError. Throws a SystemError for the call that failed
 * (open of the CPU's directory or its file, pread, pwrite: path its path), an
 * UnexpectedEofError for an empty file.
 */
export async function setVcpuOnline(id: number, online: boolean, opts: SystemOptions = {}): Promise<void> {
  const dir = vcpuDir(id, opts);
  const file = path.join(dir, 'online');
  let dirHandle: fs.promises.FileHandle;
  try {
    // The directory first, as qemu-ga: a CPU that is not there fails here, not at its file.
    dirHandle = await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw errorAbout(e, 'open', dir);
  }
  try {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, fs.constants.O_RDWR);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw errorAbout(e, 'open', file);
      if (!online) throw new CannotOfflineError(id);
      return; // no file: online, as asked
    }
    try {
      const status = Buffer.alloc(1);
      let n: number;
      try {
        ({ bytesRead: n } = await fh.read(status, 0, 1, 0));
      } catch (e) {
        throw errorAbout(e, 'pread', file);
      }
      if (n === 0) throw new UnexpectedEofError('pread', file);
      if (online !== (status[0] !== 0x30)) {
        try {
          await fh.write(Buffer.from(online ? '1' : '0'), 0, 1, 0);
        } catch (e) {
          throw errorAbout(e, 'pwrite', file);
        }
      }
    } finally {
      await fh.close();
    }
  } finally {
    await dirHandle.close();
  }
}

/**
 * Applies `requests` in order, stopping at the first that fails: how many were applied. When
 * the first one fails, throws its error (nothing was changed); a later failure only shortens the
 * count (the state reached so far stays), as qemu-ga's guest-set-vcpus.
 */
export async function setVcpus(requests: readonly VcpuRequest[], opts: SystemOptions = {}): Promise<number> {
  let done = 0;
  for (const r of requests) {
    try {
      await setVcpuOnline(r.logicalId, r.online, opts);
    } catch (e) {
      if (done === 0) throw e;
      break;
    }
    done++;
  }
  return done;
}
