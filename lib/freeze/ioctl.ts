// FIFREEZE / FITHAW on one mount point, as promises. Each call runs on a thread of its own,
// never on libuv's thread pool (native/freeze.cc says why), so a thaw is never queued behind
// writers blocked on the frozen filesystem.
import { toSystemError } from '../errors';
import { native, type FreezeResult } from '../native';

export type { FreezeResult } from '../native';

/**
 * Freezes the filesystem mounted at `mountpoint` (syncs it, then blocks every writer until
 * thaw). Rejects with a SystemError: `EBUSY` already frozen, `EOPNOTSUPP` the filesystem cannot
 * freeze, `ENOENT`/`ENOTDIR` no such directory, `EPERM` not root.
 */
export async function freeze(mountpoint: string): Promise<FreezeResult> {
  try {
    return await native.freeze(mountpoint);
  } catch (e) {
    throw toSystemError(e);
  }
}

/** Thaws the filesystem mounted at `mountpoint`. Rejects with a SystemError: `EINVAL` it was not frozen. */
export async function thaw(mountpoint: string): Promise<FreezeResult> {
  try {
    return await native.thaw(mountpoint);
  } catch (e) {
    throw toSystemError(e);
  }
}
