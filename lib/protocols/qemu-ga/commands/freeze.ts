// guest-fsfreeze-status, guest-fsfreeze-freeze, guest-fsfreeze-freeze-list, guest-fsfreeze-thaw
// and guest-fstrim, over the agent's one Freezer (ctx.freezer): a freeze made here is the one
// phoenix's get-freeze-status reports and fs-unfreeze thaws, and the other way round; the
// auto-thaw (--freeze-timeout), the rollback and the fsfreeze hook are the Freezer's.
//
// What qemu-ga 7.2 selects (qga/commands-posix.c): the mount table's block-device filesystems
// (selectQemuGa), frozen in reverse table order, trimmed in table order and listed in reverse.
// As with phoenix's commands, nothing here touches a frozen disk: the mount table is read
// synchronously and the ioctls run on the addon's own threads (lib/protocols/phoenix/commands/freeze.ts says why).
// The table is read as bytes, as qemu-ga reads it: a mount point whose name is not UTF-8 is
// frozen and trimmed by its bytes and named as qemu-ga's JSON writer names it (mountPathText).
import * as fs from 'fs';
import { SystemError, toSystemError } from '../../../errors';
import { selectQemuGa } from '../../../freeze/mounts';
import { fstrim } from '../../../freeze/trim';
import { mountPathText, type MountPath } from '../../../mounts';
import type { Context } from '../../../context';
import { strerror } from '../dispatcher';
import { defineQgaCommand, QgaError } from '../schema';

/** qemu-ga's selection from the agent's mount table, in table order. */
function qgaMounts(ctx: Context): MountPath[] {
  const file = ctx.config.mountsFile;
  let table: Buffer;
  try {
    table = fs.readFileSync(file);
  } catch {
    throw new QgaError(`failed to open mtab file: '${file}'`);
  }
  return selectQemuGa(table);
}

/** A failed open or ioctl in qemu-ga's words ("failed to freeze /mnt: Operation not permitted"). */
function qgaError(e: unknown): unknown {
  const err = toSystemError(e);
  if (err instanceof SystemError && err.path !== undefined && ['open', 'freeze', 'thaw'].includes(err.syscall ?? '')) {
    return new QgaError(`failed to ${err.syscall} ${err.path}: ${strerror(err.errno)}`);
  }
  return e;
}

/** guest-fsfreeze-freeze(-list): freezes qemu-ga's selection in reverse order; answers how many this froze. */
async function freeze(ctx: Context, only: string[] | undefined): Promise<number> {
  let targets = qgaMounts(ctx).reverse();
  if (only !== undefined) {
    // As qemu-ga: the selection filtered by the list; a path that is not in it is ignored. A
    // host's path is a JSON string, UTF-8: it names no mount point whose name is not.
    const ignored = only.filter((m) => !targets.includes(m));
    if (ignored.length > 0)
      ctx.log.info(
        `guest-fsfreeze-freeze-list: not a mount point qemu-ga would freeze, ignored: ${ignored.join(', ')}`,
      );
    targets = targets.filter((m) => typeof m === 'string' && only.includes(m));
  }
  try {
    const outcome = await ctx.freezer.freezeList(targets, {
      timeoutSeconds: ctx.config.freezeTimeout,
      allowNothing: true,
    });
    return outcome.frozen.length;
  } catch (e) {
    throw qgaError(e);
  }
}

const ENOTTY = 25;
const EOPNOTSUPP = 95;

interface TrimPath {
  path: string;
  trimmed?: number;
  minimum?: number;
  error?: string;
}

export const freezeQgaCommands = [
  defineQgaCommand({
    name: 'guest-fsfreeze-status',
    doc: '"frozen" while the agent holds filesystems frozen (by either protocol, also while a freeze is in progress or a thaw failed), else "thawed".',
    allowWhileFrozen: true,
    args: {},
    handler: (_a, ctx) => (ctx.state.frozen ? 'frozen' : 'thawed'),
  }),
  defineQgaCommand({
    name: 'guest-fsfreeze-freeze',
    doc: "Freezes every block-device filesystem of the mount table, in reverse mount order; answers how many it froze (0 freezes nothing and leaves the agent thawed). All or nothing: a failure thaws what this froze and is answered. Runs the fsfreeze hook with 'freeze' first.",
    args: {},
    handler: (_a, ctx) => freeze(ctx, undefined),
  }),
  defineQgaCommand({
    name: 'guest-fsfreeze-freeze-list',
    doc: 'guest-fsfreeze-freeze of only these mount points (those the mount table has; others are ignored), still in reverse mount order.',
    args: {
      mountpoints: { type: { array: 'str' }, optional: true, doc: 'Mount points to freeze (default: all).' },
    },
    handler: (a, ctx) => freeze(ctx, a.mountpoints),
  }),
  defineQgaCommand({
    name: 'guest-fsfreeze-thaw',
    doc: "Thaws what the freeze holds (when none is held, every filesystem of the mount table, recovering what an earlier agent left frozen); answers how many were thawed. Runs the fsfreeze hook with 'thaw' after.",
    allowWhileFrozen: true,
    args: {},
    handler: async (_a, ctx) => {
      const freezer = ctx.freezer;
      try {
        // The fallback reversed: Freezer thaws in reverse, qemu-ga in mount order.
        const thawed = await freezer.unfreeze(freezer.frozen ? [] : qgaMounts(ctx).reverse());
        return thawed.length;
      } catch (e) {
        throw qgaError(e);
      }
    },
  }),
  defineQgaCommand({
    name: 'guest-fstrim',
    doc: "Discards the unused blocks of every filesystem guest-fsfreeze-freeze would freeze; answers each path's bytes trimmed and minimum used, or its error.",
    args: {
      minimum: {
        type: 'int',
        optional: true,
        doc: 'Smallest free extent worth discarding, in bytes (default 0: any).',
      },
    },
    handler: async (a, ctx, call) => {
      const paths: TrimPath[] = [];
      for (const path of qgaMounts(ctx)) {
        if (call.signal.aborted) break; // nobody reads the answer
        try {
          const r = await fstrim(path, a.minimum ?? 0);
          paths.unshift({ path: mountPathText(path), trimmed: r.trimmed, minimum: r.minimum });
        } catch (e) {
          const err = toSystemError(e);
          const errno = err instanceof SystemError ? err.errno : undefined;
          let error: string;
          if (err instanceof SystemError && err.syscall === 'open') error = `failed to open: ${strerror(err.errno)}`;
          else if (errno === ENOTTY || errno === EOPNOTSUPP) error = 'trim not supported';
          else error = `failed to trim: ${errno !== undefined ? strerror(errno) : (err as Error).message}`;
          paths.unshift({ path: mountPathText(path), error }); // qemu-ga lists the paths newest first
        }
      }
      return { paths };
    },
  }),
];
