// ember-ga-info: ember-ga's own command on the qemu-ga front-end, left out of guest-info (hosts
// see qemu-ga 7.2's list). A client that gets CommandNotFound for it talks to a real qemu-ga;
// one that gets an answer may pipeline requests and read in large counts.
import type { EmberGaInfo } from '../../../client/qemu-ga-types';
import { MAX_LINE_BYTES } from '../../../wire/framing';
import { QGA_READ_COUNT_MAX } from './files';
import { defineQgaCommand } from '../schema';

export const emberCommands = [
  defineQgaCommand({
    name: 'ember-ga-info',
    doc: 'ember-ga only (qemu-ga answers CommandNotFound): its version, largest read count and request size, and that requests may be pipelined.',
    allowWhileFrozen: true,
    unlisted: true,
    args: {},
    handler: (_a, ctx): EmberGaInfo => ({
      name: 'ember-ga',
      version: ctx.version,
      'max-read-count': QGA_READ_COUNT_MAX, // guest-file-read's, not phoenix's --max-read-size
      'max-request-bytes': MAX_LINE_BYTES,
      pipelined: true,
    }),
  }),
];
