// sysinfo: what a host's dashboard polls. Always answers with the full shape (lib/sysinfo).
import type { Context } from '../../../context';
import { defineCommand } from '../registry';
import { systemInfo, type SystemInfoPart } from '../../../sysinfo';

/**
 * Logs a failing part once, not on every poll: again only when its message changes, and once
 * more when it recovers (ctx.sysinfoFailures: the last failure of each part).
 */
function failureLogger(ctx: Context) {
  const last = ctx.sysinfoFailures;
  const now = new Map<SystemInfoPart, string>();
  return {
    onPartError(part: SystemInfoPart, e: Error) {
      const msg = [now.get(part), e.message].filter((m) => m !== undefined).join('; ');
      now.set(part, msg);
    },
    flush() {
      for (const [part, msg] of now) {
        if (last.get(part) !== msg) ctx.log.warn(`sysinfo: ${part}: ${msg} (answered without it)`);
        last.set(part, msg);
      }
      for (const part of [...last.keys()]) {
        if (now.has(part)) continue;
        last.delete(part);
        ctx.log.info(`sysinfo: ${part}: working again`);
      }
    },
  };
}

export const sysinfoCommands = [
  defineCommand({
    name: 'sysinfo',
    doc: 'uname, long_bit, uptime, loadavg, ram and swap (KiB), remote users from utmp, disks with mount point and sizes (KiB). A part that fails is answered empty and logged, never failing the whole answer.',
    args: {},
    handler: async (_args, ctx) => {
      const log = failureLogger(ctx);
      const info = await systemInfo({ utmpPath: ctx.config.utmpFile, onPartError: log.onPartError });
      log.flush();
      return info;
    },
  }),
];
