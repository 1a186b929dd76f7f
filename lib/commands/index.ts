// Every command group, loaded at start-up (never lazily: filesystems may be frozen later).
import type { Command } from '../registry';
import { coreCommands } from './core';
import { netCommands } from './net';

export const allCommands: readonly Command[] = [...coreCommands, ...netCommands];
