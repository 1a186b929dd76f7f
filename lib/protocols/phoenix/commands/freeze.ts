// fs-freeze, fs-unfreeze, get-freeze-status: the agent's Freezer (ctx.freezer; lib/freeze/freezer.ts
// has the rules) and the mount selection of lib/freeze/mounts.ts.
//
// While frozen nothing here touches a frozen disk: this module and the addon are loaded at
// start-up (lib/protocols/phoenix/commands/index.ts imports every group), the mount table is read synchronously
// (reads never wait on a frozen filesystem, and this keeps it off libuv's thread pool, which
// writers blocked on the frozen filesystem may fill), and thaws run on the addon's own threads.
// The table is read as bytes: a mount point whose name is not UTF-8 is frozen by its bytes, and
// named in errors as qemu-ga names it (lib/mounts.ts, mountPathText).
import * as fs from 'fs';
import * as path from 'path';
import { AgentError } from '../../../errors';
import { classifyMounts, selectFreezable } from '../../../freeze/mounts';
import { mountPathOf, type MountPath } from '../../../mounts';
import { defineCommand } from '../registry';
import { MAX_TIMEOUT_SECONDS } from '../../../timers';
import type { Context } from '../../../context';
import { quote } from '../../../wire/json';

/** The default selection: the reference's rules applied to the agent's mount table. */
function defaultMountpoints(ctx: Context): MountPath[] {
  return selectFreezable(fs.readFileSync(ctx.config.mountsFile));
}

/** fs-freeze's default selection; an error saying what the table held when it selects nothing. */
function mountpointsToFreeze(ctx: Context): MountPath[] {
  const file = ctx.config.mountsFile;
  const table = classifyMounts(fs.readFileSync(file));
  const chosen = table.filter((m) => m.skipped === undefined).map(mountPathOf);
  if (chosen.length > 0) return chosen;
  if (table.length === 0) throw new AgentError(`Nothing to freeze: ${file} lists no filesystems`);
  const byReason = new Map<string, string[]>();
  for (const m of table)
    byReason.set(m.skipped!, [...(byReason.get(m.skipped!) ?? []), `${m.mountpoint} (${m.fstype})`]);
  const why = [...byReason].map(([reason, mounts]) => `${reason}: ${mounts.join(', ')}`).join('; ');
  throw new AgentError(`Nothing to freeze: the default rules skip every filesystem in ${file} (${why})`);
}

function checkMountpoints(list: string[]): string[] {
  if (list.length === 0)
    throw new AgentError(
      'Invalid argument "mountpoints": expected at least one mount point (omit it to freeze the default selection)',
    );
  for (const m of list) {
    if (!path.isAbsolute(m))
      throw new AgentError(`Invalid argument "mountpoints": ${quote(m)} is not an absolute path`);
  }
  return list;
}

export const freezeCommands = [
  defineCommand({
    name: 'fs-freeze',
    doc: 'Freezes filesystems, all or nothing: if one fails, the ones already frozen are thawed and the error is answered; freezing nothing is an error too. Answers true.',
    args: {
      mountpoints: {
        type: 'string[]',
        doc: "ember-ga only: freeze exactly these mount points, in this order (default: the reference's selection from the mount table)",
      },
      timeout: {
        type: 'number',
        min: 0,
        max: MAX_TIMEOUT_SECONDS,
        doc: 'ember-ga only: seconds after which the agent thaws by itself if no fs-unfreeze came; 0 = never (default: --freeze-timeout, 600)',
      },
    },
    handler: async (args, ctx) => {
      const targets = args.mountpoints !== undefined ? checkMountpoints(args.mountpoints) : mountpointsToFreeze(ctx);
      await ctx.freezer.freeze(targets, args.timeout ?? ctx.config.freezeTimeout);
      return true as const;
    },
  }),
  defineCommand({
    name: 'fs-unfreeze',
    doc: 'Thaws what fs-freeze froze, in reverse order (when the agent holds no freeze, the default selection, so filesystems a previous agent process left frozen can be recovered). Answers true.',
    allowWhileFrozen: true,
    args: {},
    handler: async (_args, ctx) => {
      const freezer = ctx.freezer;
      await freezer.unfreeze(freezer.frozen ? [] : defaultMountpoints(ctx));
      return true as const;
    },
  }),
  defineCommand({
    name: 'get-freeze-status',
    doc: 'true while the agent holds filesystems frozen (also while a freeze is in progress, or when a thaw failed and left some frozen).',
    allowWhileFrozen: true,
    args: {},
    handler: (_args, ctx) => ctx.state.frozen,
  }),
];
