// FITRIM on one mount point, as a promise: tells the device which blocks the filesystem no longer
// uses (a thin-provisioned disk image shrinks). Runs on a thread of its own, like freeze/thaw.
import type { MountPath } from '../mounts';
import { native, type TrimResult } from '../native';
import { mountError } from './ioctl';

export type { TrimResult } from '../native';

/**
 * Trims the free space of the filesystem mounted at `mountpoint` (a string, or a Buffer as
 * freeze takes it), in extents of at least `minimum` bytes (0: any; the kernel raises it to the
 * device's discard granularity). Resolves to the bytes trimmed and the minimum used. Rejects
 * with a SystemError: `EOPNOTSUPP` or `ENOTTY` the filesystem or device cannot trim, `ENOENT` no
 * such path (syscall `open`), `EPERM` not root.
 */
export async function fstrim<P extends MountPath>(mountpoint: P, minimum = 0): Promise<TrimResult<P>> {
  if (!Number.isSafeInteger(minimum)) throw new RangeError(`minimum must be an integer, got ${minimum}`);
  try {
    const r = await native.fstrim(mountpoint, minimum);
    return { mountpoint, trimmed: r.trimmed, minimum: r.minimum };
  } catch (e) {
    throw mountError(e, mountpoint);
  }
}
