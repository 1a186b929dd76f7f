// qemu-ga's read-only system information: time, host name, users, time zone, OS, CPUs, memory
// blocks, CPU times (lib/sysinfo has the data; this file has qemu-ga's names, shapes and error
// texts, which are qemu-ga's C format strings followed by strerror's words).
import * as os from 'os';
import * as path from 'path';
import { errnoOf, SystemError, toSystemError } from '../../../errors';
import { coalesce, withTimeout } from '../../../sysinfo/async';
import { readCpuStats, DEFAULT_PROC_STAT } from '../../../sysinfo/cpustats';
import { realTimeNs } from '../../../sysinfo/kernel';
import { listMemoryBlocks, memoryBlockSize, DEFAULT_SYS_MEMORY } from '../../../sysinfo/memory-blocks';
import { readOsInfo, OS_RELEASE_PATHS } from '../../../sysinfo/osinfo';
import { EmptyAttributeError } from '../../../sysinfo/sysfs';
import { localTimezone } from '../../../sysinfo/timezone';
import { readLoginUsers } from '../../../sysinfo/users';
import { listVcpus, DEFAULT_SYS_CPU } from '../../../sysinfo/vcpus';
import { errorText, strerror } from '../dispatcher';
import { defineQgaCommand, QgaError } from '../schema';

/** error_setg_errno's text: `what`, then ": " and strerror's words for e's errno. */
export function cError(what: string, e: unknown): QgaError {
  const errno = errnoOf(e);
  return new QgaError(`${what}: ${errno === undefined ? errorText(e) : strerror(errno)}`);
}

/**
 * A sysfs read's failure as qemu-ga words it: `attribute` gives the text for the attribute read
 * ('open sysfs file "state"', 'pread("/sys/.../cpu1//online")'), `dir` the one for the
 * directory qemu-ga opens before it.
 */
function sysfsError(
  e: unknown,
  texts: { attribute: (syscall: 'open' | 'pread', p: string) => string; dir: (p: string) => string },
): QgaError {
  if (e instanceof EmptyAttributeError) return new QgaError(`${texts.attribute('pread', e.path)}: unexpected EOF`);
  const err = toSystemError(e);
  if (!(err instanceof SystemError) || err.path === undefined) return new QgaError(errorText(e));
  if (err.syscall === 'pread') return cError(texts.attribute('pread', err.path), err);
  // An open of a directory (the CPU's or block's own, before its attributes) ends in no attribute name.
  if (/\/(online|state|removable|block_size_bytes)$/.test(err.path))
    return cError(texts.attribute('open', err.path), err);
  return cError(texts.dir(err.path), err);
}

const vcpuTexts = {
  attribute: (syscall: string, p: string) => `${syscall}("${path.dirname(p)}//${path.basename(p)}")`,
  dir: (p: string) => `open("${p}/")`,
};

const memoryTexts = {
  attribute: (syscall: string, p: string) => `${syscall} sysfs file "${path.basename(p)}"`,
  dir: (p: string) => `open("${p}/")`,
};

/** One utmp read at a time, however many hosts ask (a utmp that is a FIFO never answers). */
const sharedLoginUsers = coalesce(readLoginUsers);

export const systemCommands = [
  defineQgaCommand({
    name: 'guest-get-time',
    doc: "The guest's wall clock, in nanoseconds since the epoch (to the microsecond, as qemu-ga reads it).",
    args: {},
    handler: () => (realTimeNs() / 1000n) * 1000n,
  }),
  defineQgaCommand({
    name: 'guest-get-host-name',
    doc: 'The host name (gethostname(2)).',
    args: {},
    handler: () => ({ 'host-name': os.hostname() }),
  }),
  defineQgaCommand({
    name: 'guest-get-users',
    doc: 'Each user logged in (utmp, `--utmp-file`) once, with the earliest login time in seconds (a fraction for the microseconds); [] without utmp.',
    args: {},
    handler: async (_a, ctx) => {
      try {
        const users = await withTimeout(sharedLoginUsers(ctx.config.utmpFile), 2000, 'no answer within 2000 ms');
        return users.map((u) => ({ user: u.user, 'login-time': u.loginTime }));
      } catch (e) {
        // glibc's getutxent() finds no users in a utmp it cannot read, and neither do we.
        ctx.log.debug(`guest-get-users: ${ctx.config.utmpFile}: ${errorText(e)}`);
        return [];
      }
    },
  }),
  defineQgaCommand({
    name: 'guest-get-timezone',
    doc: "The local time zone's abbreviation now (`zone`) and offset east of UTC in seconds, as glib finds them (TZ, else /etc/localtime).",
    args: {},
    handler: async () => {
      const tz = await localTimezone();
      return { zone: tz.zone, offset: tz.offset };
    },
  }),
  defineQgaCommand({
    name: 'guest-get-osinfo',
    doc: "uname's kernel release, version and machine, and os-release's ID, NAME, PRETTY_NAME, VERSION, VERSION_ID, VARIANT and VARIANT_ID (from $QGA_OS_RELEASE, else /etc/os-release, else /usr/lib/os-release).",
    args: {},
    handler: async () => {
      const file = process.env.QGA_OS_RELEASE;
      const info = await readOsInfo(file !== undefined ? [file] : OS_RELEASE_PATHS).catch((e: unknown) =>
        Promise.reject(cError('uname failed', e)),
      );
      return {
        id: info.id,
        name: info.name,
        'pretty-name': info.prettyName,
        version: info.version,
        'version-id': info.versionId,
        variant: info.variant,
        'variant-id': info.variantId,
        'kernel-release': info.kernelRelease,
        'kernel-version': info.kernelVersion,
        machine: info.machine,
      };
    },
  }),
  defineQgaCommand({
    name: 'guest-get-vcpus',
    doc: 'Every logical CPU (sysfs order): `logical-id`, `online`, `can-offline` (false for a CPU without an online switch, typically cpu0).',
    args: {},
    handler: async () => {
      try {
        const cpus = await listVcpus();
        return cpus.map((c) => ({ 'logical-id': c.logicalId, online: c.online, 'can-offline': c.canOffline }));
      } catch (e) {
        const err = toSystemError(e);
        if (err instanceof SystemError && err.syscall === 'opendir') {
          throw cError(`failed to list entries: ${DEFAULT_SYS_CPU}`, e);
        }
        throw sysfsError(e, vcpuTexts);
      }
    },
  }),
  defineQgaCommand({
    name: 'guest-get-memory-blocks',
    doc: 'Every memory block (sysfs order): `phys-index`, `online`, `can-offline`; [] without memory hotplug.',
    bulk: true,
    args: {},
    handler: async () => {
      let blocks;
      try {
        blocks = await listMemoryBlocks();
      } catch (e) {
        const err = toSystemError(e);
        if (err instanceof SystemError && err.syscall === 'opendir') {
          if (err.code === 'ENOENT') return [];
          throw cError(`Can't open directory"${DEFAULT_SYS_MEMORY}/"`, e);
        }
        throw sysfsError(e, memoryTexts);
      }
      if (blocks.length === 0) throw new QgaError('guest reported zero memory blocks!');
      return blocks.map((b) => ({ 'phys-index': b.physIndex, online: b.online, 'can-offline': b.canOffline }));
    },
  }),
  defineQgaCommand({
    name: 'guest-get-memory-block-info',
    doc: 'The size of a memory block in bytes.',
    args: {},
    handler: async () => {
      const size = await memoryBlockSize().catch((e: unknown) => Promise.reject(sysfsError(e, memoryTexts)));
      return { size };
    },
  }),
  defineQgaCommand({
    name: 'guest-get-cpustats',
    doc: 'Time each CPU spent in each state since boot, in milliseconds (/proc/stat): `{"type": "linux", "cpu": N, "user", "nice", "system", "idle", ...}`.',
    args: {},
    handler: async () => {
      const stats = await readCpuStats().catch((e: unknown) =>
        Promise.reject(cError(`open("${DEFAULT_PROC_STAT}")`, e)),
      );
      return stats.map((c) => ({
        type: 'linux',
        cpu: c.cpu,
        user: c.user,
        nice: c.nice,
        system: c.system,
        idle: c.idle,
        iowait: c.iowait,
        irq: c.irq,
        softirq: c.softirq,
        steal: c.steal,
        guest: c.guest,
        guestnice: c.guestnice,
      }));
    },
  }),
  defineQgaCommand({
    name: 'guest-get-devices',
    doc: 'Windows only: listed, and refused, as qemu-ga 7.2 on Linux does.',
    disabled: true,
    args: {},
    handler: () => {
      throw new QgaError('this feature or command is not currently supported');
    },
  }),
];
