// Every qemu-ga command group, registered in qemu-ga 7.2's order (guest-info lists them newest
// first, as qemu-ga does).
import type { QgaCommand } from '../schema';
import { coreCommands } from './core';
import { freezeQgaCommands } from './freeze';
import { emberCommands } from './ember';
import { powerCommands } from './power';
import { hotplugCommands } from './hotplug';
import { userCommands } from './users';
import { diskCommands } from './disks';
import { systemCommands } from './system';
import { networkCommands } from './network';
import { execCommands } from './exec';
import { fileCommands } from './files';

/** qemu-ga 7.2's commands on Linux, in the order it registers them. */
export const QGA_ORDER = [
  'guest-sync-delimited',
  'guest-sync',
  'guest-ping',
  'guest-get-time',
  'guest-set-time',
  'guest-info',
  'guest-shutdown',
  'guest-file-open',
  'guest-file-close',
  'guest-file-read',
  'guest-file-write',
  'guest-file-seek',
  'guest-file-flush',
  'guest-fsfreeze-status',
  'guest-fsfreeze-freeze',
  'guest-fsfreeze-freeze-list',
  'guest-fsfreeze-thaw',
  'guest-fstrim',
  'guest-suspend-disk',
  'guest-suspend-ram',
  'guest-suspend-hybrid',
  'guest-network-get-interfaces',
  'guest-get-vcpus',
  'guest-set-vcpus',
  'guest-get-disks',
  'guest-get-fsinfo',
  'guest-set-user-password',
  'guest-get-memory-blocks',
  'guest-set-memory-blocks',
  'guest-get-memory-block-info',
  'guest-exec-status',
  'guest-exec',
  'guest-get-host-name',
  'guest-get-users',
  'guest-get-timezone',
  'guest-get-osinfo',
  'guest-get-devices',
  'guest-ssh-get-authorized-keys',
  'guest-ssh-add-authorized-keys',
  'guest-ssh-remove-authorized-keys',
  'guest-get-diskstats',
  'guest-get-cpustats',
];

const rank = (c: QgaCommand) => {
  const i = QGA_ORDER.indexOf(c.name);
  return i < 0 ? QGA_ORDER.length : i;
};

export const allQgaCommands: readonly QgaCommand[] = [
  ...coreCommands,
  ...freezeQgaCommands,
  ...emberCommands,
  ...powerCommands,
  ...hotplugCommands,
  ...userCommands,
  ...diskCommands,
  ...systemCommands,
  ...networkCommands,
  ...execCommands,
  ...fileCommands,
].sort((a, b) => rank(a) - rank(b));
