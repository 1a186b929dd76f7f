// ping, get-commands, agent-shutdown.
import { MAX_LINE_BYTES } from '../../../wire/framing';
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
    name: 'agent-info',
    doc: 'ember-ga only (the reference answers Unknown command): what this agent supports, so a host can use large chunks and pipelining where they exist and fall back to the 0.7.1 protocol elsewhere.',
    allowWhileFrozen: true,
    args: {},
    handler: (_args, ctx) => ({
      name: 'ember-ga',
      version: ctx.version,
      max_line_bytes: MAX_LINE_BYTES,
      max_read_size: ctx.config.largeReads ? ctx.config.maxReadSize : 4096,
      atomic_write: true,
      read_md5: true,
    }),
  }),
  defineCommand({
    name: 'agent-shutdown',
    doc: 'Answers true, then the agent thaws, closes handles and exits 0 (a supervisor restarts it).',
    args: {},
    handler: (_args, ctx) => {
      ctx.shutdown();
      return true as const;
    },
  }),
];
