// Every command group, loaded at start-up (never lazily: filesystems may be frozen later).
import type { Command } from '../registry';
import { coreCommands } from './core';
import { fileCommands } from './files';
import { freezeCommands } from './freeze';
import { netCommands } from './net';
import { sysinfoCommands } from './sysinfo';

export const allCommands: readonly Command[] = [
  ...coreCommands,
  ...fileCommands,
  ...sysinfoCommands,
  ...freezeCommands,
  ...netCommands,
];
