// sysinfo: what a host's dashboard polls. Always answers with the full shape (lib/sysinfo).
import type { Context } from '../../../context';
import { defineCommand } from '../registry';
import { systemInfo, type SystemInfo, type SystemInfoPart } from '../../../sysinfo';
import { RawJson } from '../../../wire/answer';
import { goJson, goNameJson } from '../../../wire/json';
import type { SysInfo } from '../answers';

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

/**
 * The answer: the report as it is, or, when a disk's mount point is not UTF-8, its JSON with that
 * name written from its bytes, as Go does (as get-netifaces writes such link names).
 */
export function sysinfoAnswer(info: SystemInfo): SysInfo | RawJson<SysInfo> {
  if (!info.disks.some((d) => d.mountpointBytes)) return info;
  const disks = info.disks.map(({ name, is_mounted, mountpoint, mountpointBytes, ...sizes }) => {
    const mp = goNameJson(mountpoint, mountpointBytes);
    return `{"name":${goJson(name)},"is_mounted":${is_mounted},"mountpoint":${mp},${goJson(sizes).slice(1)}`;
  });
  const { disks: _, ...rest } = info;
  return new RawJson<SysInfo>([Buffer.from(`${goJson(rest).slice(0, -1)},"disks":[${disks.join(',')}]}`, 'utf8')]);
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
      return sysinfoAnswer(info);
    },
  }),
];
