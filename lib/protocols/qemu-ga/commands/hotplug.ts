// guest-set-vcpus and guest-set-memory-blocks: lib/system's CPU and memory block actions, in
// qemu-ga 7.2's names, shapes and messages.
import { SystemError, toSystemError } from '../../../errors';
import { setMemoryBlocks } from '../../../system/memory-blocks';
import { strerror } from '../../../system/programs';
import { CannotOfflineError, setVcpus, UnexpectedEofError, vcpuDir } from '../../../system/vcpus';
import { defineQgaCommand, QgaError } from '../schema';
import { systemOptions } from './power';

/** A uint64 as qemu-ga writes it: a negative int64 sent is 2^64 plus it. */
function uint64(n: number): number | bigint {
  return n >= 0 && Number.isSafeInteger(n) ? n : BigInt.asUintN(64, BigInt(n));
}

export const hotplugCommands = [
  defineQgaCommand({
    name: 'guest-set-vcpus',
    doc: 'Brings logical CPUs online or takes them offline (their sysfs `online` file), in order, up to the first that fails: how many were done. The first failing is an error.',
    args: {
      vcpus: {
        type: {
          array: {
            object: {
              'logical-id': { type: 'int', doc: 'The CPU: N of /sys/devices/system/cpu/cpuN.' },
              online: { type: 'bool', doc: 'Wanted state.' },
              'can-offline': { type: 'bool', optional: true, doc: 'Ignored.' },
            },
          },
        },
        doc: 'CPUs and their wanted state.',
      },
    },
    handler: async (a, ctx) => {
      const opts = systemOptions(ctx);
      const requests = a.vcpus.map((v) => ({ logicalId: v['logical-id'], online: v.online }));
      try {
        return await setVcpus(requests, opts);
      } catch (e) {
        // Only the first request's failure is an error.
        const dir = `${vcpuDir(requests[0].logicalId, opts)}/`;
        if (e instanceof CannotOfflineError) throw new QgaError(e.message);
        if (e instanceof UnexpectedEofError) throw new QgaError(`pread("${dir}/online"): unexpected EOF`);
        const err = toSystemError(e);
        if (err instanceof SystemError) {
          const where = err.path === dir.slice(0, -1) ? dir : `${dir}/online`;
          throw new QgaError(`${err.syscall}("${where}"): ${strerror(err.errno)}`);
        }
        throw e;
      }
    },
  }),
  defineQgaCommand({
    name: 'guest-set-memory-blocks',
    doc: 'Brings memory blocks online or takes them offline (their sysfs `state` file), each whatever becomes of the others: a result for each.',
    args: {
      'mem-blks': {
        type: {
          array: {
            object: {
              'phys-index': { type: 'uint64', doc: 'The block: N of /sys/devices/system/memory/memoryN.' },
              online: { type: 'bool', doc: 'Wanted state.' },
              'can-offline': { type: 'bool', optional: true, doc: 'Ignored.' },
            },
          },
        },
        doc: 'Memory blocks and their wanted state.',
      },
    },
    handler: async (a, ctx) => {
      const blocks = a['mem-blks'];
      const outcomes = await setMemoryBlocks(
        blocks.map((b) => ({ index: b['phys-index'], online: b.online })),
        systemOptions(ctx),
      );
      return outcomes.map((o, i) => ({
        'phys-index': uint64(blocks[i]['phys-index']),
        response: o.result,
        'error-code': o.errno,
      }));
    },
  }),
];
