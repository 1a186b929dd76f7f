// guest-sync-delimited, guest-sync, guest-ping, guest-info.
import { defineQgaCommand } from '../schema';

export const coreCommands = [
  defineQgaCommand({
    name: 'guest-sync-delimited',
    doc: 'Echoes `id`, the answer preceded by a 0xFF byte: a host that reads up to it is past any stale answer.',
    allowWhileFrozen: true,
    args: { id: { type: 'int', exact: true, doc: 'Any int64, echoed exactly.' } },
    handler: (a) => a.id,
  }),
  defineQgaCommand({
    name: 'guest-sync',
    doc: 'Echoes `id`.',
    allowWhileFrozen: true,
    args: { id: { type: 'int', exact: true, doc: 'Any int64, echoed exactly.' } },
    handler: (a) => a.id,
  }),
  defineQgaCommand({
    name: 'guest-ping',
    doc: 'Answers {}.',
    allowWhileFrozen: true,
    args: {},
    handler: () => ({}),
  }),
  defineQgaCommand({
    name: 'guest-info',
    doc: "The agent's version (qemu-ga's it stands in for) and every command, with whether it is served now.",
    allowWhileFrozen: true,
    args: {},
    handler: (_a, ctx) => ({
      version: QGA_VERSION,
      // qemu-ga lists commands newest first.
      supported_commands: [...ctx.qemuGa.commands]
        .reverse()
        .filter((c) => !c.unlisted)
        .map((c) => ({
          enabled: ctx.qemuGa.enabled(c),
          name: c.name,
          'success-response': !c.noSuccessResponse,
        })),
    }),
  }),
];

/** The qemu-ga version whose protocol this front-end speaks (guest-info's `version`). */
export const QGA_VERSION = '7.2.0';
