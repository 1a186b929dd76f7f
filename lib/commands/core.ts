// ping, get-commands, agent-shutdown.
import { defineCommand } from '../registry';

export const coreCommands = [
  defineCommand({
    name: 'ping',
    doc: 'The agent version.',
    allowWhileFrozen: true,
    args: {},
    handler: (_args, ctx) => ctx.version,
  }),
  defineCommand({
    name: 'get-commands',
    doc: 'Every command name the agent accepts, aliases included.',
    allowWhileFrozen: true,
    args: {},
    handler: (_args, ctx) => ctx.registry.names(),
  }),
  defineCommand({
    name: 'agent-shutdown',
    doc: 'Answers true, then the agent thaws, closes handles and exits 0 (a supervisor restarts it).',
    args: {},
    handler: (_args, ctx) => {
      ctx.shutdown();
      return true;
    },
  }),
];
