// Every qemu-ga command group, in the order qemu-ga 7.2 registers them (guest-info lists them
// newest first).
import type { QgaCommand } from '../schema';
import { coreCommands } from './core';

export const allQgaCommands: readonly QgaCommand[] = [...coreCommands];
