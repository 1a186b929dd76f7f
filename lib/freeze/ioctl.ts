// FIFREEZE / FITHAW on one mount point, as promises. Each call runs on a thread of its own,
// never on libuv's thread pool (native/freeze.cc says why), so a thaw is never queued behind
// writers blocked on the frozen filesystem.
import { errorAbout, SystemError, toSystemError } from '../errors';
import { mountPathText, type MountPath } from '../mounts';
import { native, type FreezeResult } from '../native';

export type { FreezeResult } from '../native';

/**
 * An error of the addon about `mountpoint`: a Buffer's path named as mountPathText names it (the
 * addon decodes the bytes as UTF-8 its own way).
 */
export function mountError(e: unknown, mountpoint: MountPath): unknown {
  const err = toSystemError(e);
  if (typeof mountpoint === 'string' || !(err instanceof SystemError) || err.path === undefined) return err;
  return errorAbout(err, err.syscall, mountPathText(mountpoint));
}

/**
 * Freezes the filesystem mounted at `mountpoint` (syncs it, then blocks every writer until
 * thaw): a string, or a Buffer of the bytes of a name that is not UTF-8. Rejects with a
 * SystemError: `EBUSY` already frozen, `EOPNOTSUPP` the filesystem cannot freeze,
 * `ENOENT`/`ENOTDIR` no such directory, `EPERM` not root.
 */
export async function freeze<P extends MountPath>(mountpoint: P): Promise<FreezeResult<P>> {
  try {
    const r = await native.freeze(mountpoint);
    return { mountpoint, frozen: r.frozen };
  } catch (e) {
    throw mountError(e, mountpoint);
  }
}

/** Thaws the filesystem mounted at `mountpoint`. Rejects with a SystemError: `EINVAL` it was not frozen. */
export async function thaw<P extends MountPath>(mountpoint: P): Promise<FreezeResult<P>> {
  try {
    const r = await native.thaw(mountpoint);
    return { mountpoint, frozen: r.frozen };
  } catch (e) {
    throw mountError(e, mountpoint);
  }
}
