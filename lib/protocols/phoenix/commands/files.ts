// file-open, file-read, file-write, file-close, get-file-md5sum, file-chown, file-chmod,
// file-stat, directory-create, directory-list (docs/PROTOCOL.md "Files"), on lib/files.
//
// Hosts pipeline reads and writes on one handle and the dispatcher runs handlers concurrently:
// each handler reaches its FileHandle synchronously (no await first), so operations enter the
// handle's queue in request order and run in that order.
import * as fs from 'fs';
import { constants } from 'os';
import { AgentError, SystemError, toSystemError } from '../../../errors';
import { goJson } from '../../../wire/json';
import { RawJson } from '../../../wire/answer';
import { collectAll } from '../../../memory';
import type { ReadAnswer } from '../answers';
import { defineCommand } from '../registry';
import type { Call, Context } from '../../../context';
import { LARGE_ANSWER, type AnswerHold } from '../../../large-answers';
import { DEFAULT_READ_SIZE, type FileHandle } from '../../../files/handle';
import { outputGate } from '../../output-gate';
import { openFile } from '../../../files/open';
import type { CloseOptions } from '../../../files/options';
import { md5File } from '../../../files/md5';
import { goStatFile, listDirectoryBatches, mkdirAll, type FileStat, type GoStat } from '../../../files/stat';

const { E2BIG, EBADF, EINVAL } = constants.errno;

/**
 * The largest directory-list answer (~150,000 entries of short names, ~90,000 of 240 bytes): it
 * is held whole until written, and 300,000 entries (108 MB) took the agent to 232 MiB; three
 * 64 MiB answers in a row still reached 186 MiB.
 */
export const MAX_LISTING_BYTES = 48 * 1024 * 1024;
/**
 * The most a directory's names may add up to: they are read whole and sorted before the first
 * entry (even with n), 2 to 3 times their size at once. 32 MiB is ~500,000 names of 60 bytes.
 */
export const MAX_LISTING_NAME_BYTES = 32 * 1024 * 1024;
/**
 * A listing after one whose answer passed this first has V8 free what that one left (its
 * answer's buffers, promoted while written, die only in a full collection), before the next
 * directory's names are read: 3 listings of 64 MiB one after another otherwise peaked at 229 MiB.
 */
const LARGE_LISTING = 8 * 1024 * 1024;
let collectBeforeNext = false;

const handles = (ctx: Context) => ctx.handles;

/** The handle, checked to be open in the direction the command needs. */
function handleFor(ctx: Context, call: Call, id: number, mode: 'r' | 'w', command: string): FileHandle {
  const h = handles(ctx).get(id, call.session);
  if (h.mode !== mode) {
    throw new AgentError(
      `${command}: handle ${id} (${h.path}) is open for ${h.mode === 'r' ? 'reading (mode "r")' : 'writing (mode "w")'}; open it with mode "${mode}" to ${mode === 'r' ? 'read' : 'write'}`,
      EBADF,
    );
  }
  return h;
}

/** `true` once p fulfils; a Node fs error becomes a SystemError (errno code, Go-style message). */
function succeeds(p: Promise<unknown>): Promise<true> {
  return p.then(
    () => true,
    (e) => {
      throw toSystemError(e);
    },
  );
}

/**
 * The most JSON an entry of a listing takes beside its name: its stat's numbers each at their
 * widest (20 characters: -2^63, 2^64 - 1), and the comma before it.
 */
const ENTRY_JSON_MAX = (() => {
  const t = { Sec: 0, Nsec: 0 };
  const stat: GoStat = {
    Dev: 0,
    Ino: 0,
    Nlink: 0,
    Mode: 0,
    Uid: 0,
    Gid: 0,
    X__pad0: 0,
    Rdev: 0,
    Size: 0,
    Blksize: 0,
    Blocks: 0,
    Atim: t,
    Mtim: t,
    Ctim: t,
    X__unused: [0, 0, 0],
  };
  const numbers = (v: unknown): number =>
    typeof v === 'object' && v !== null ? Object.values(v).reduce((n: number, x) => n + numbers(x), 0) : 1;
  return goJson({ name: '', isdir: false, stat } satisfies FileStat).length + numbers(stat) * 19 + 1;
})();

/**
 * The most a listing of `entries` entries whose names add up to `nameBytes` can take: each byte
 * of a name at most 6 in JSON (`\u003c`), a name at most 255 bytes.
 */
function listingBytesAtMost(entries: number, nameBytes: number): number {
  return Math.min(entries * ENTRY_JSON_MAX + Math.min(nameBytes, entries * 256) * 6, MAX_LISTING_BYTES) + 2;
}

/** Thrown out of a listing that needs a share of the budget of large answers it cannot have now. */
class NeedsShare extends Error {
  constructor(readonly bytes: number) {
    super('the listing waits for its share of the budget of large answers');
  }
}

/**
 * directory-list's answer, spliced from each batch's JSON text as it comes: the entries never
 * exist as one string or as one array of objects. (A bulk command: the dispatcher runs one at a
 * time, once the answers before it are mostly out.) A listing that may be large (more than
 * LARGE_ANSWER once its names are known) is made within its share of the agent's budget of
 * large answers; when that is not there now, it lets go of its names and of its turn, waits for
 * it, and reads the directory again.
 */
async function listJson(ctx: Context, call: Call, dir: string, n: number): Promise<RawJson<FileStat[]>> {
  let hold: AnswerHold | undefined;
  try {
    for (;;) {
      const sized = (entries: number, nameBytes: number) => {
        const bytes = listingBytesAtMost(entries, nameBytes);
        if (bytes <= LARGE_ANSWER) {
          hold?.release(); // the directory shrank since it waited
          hold = undefined;
          return;
        }
        if (hold && !hold.resize(bytes)) throw new NeedsShare(bytes);
        hold ??= ctx.largeAnswerNow(call, bytes);
        if (!hold) throw new NeedsShare(bytes);
      };
      let needs: number;
      try {
        const raw = await listOnce(dir, n, call.signal, sized);
        return hold ? hold.keep(raw) : raw;
      } catch (e) {
        if (!(e instanceof NeedsShare)) throw e;
        needs = e.bytes;
      }
      hold?.release();
      hold = undefined;
      hold = await ctx.largeAnswer(call, needs, true);
    }
  } catch (e) {
    hold?.release();
    throw e;
  }
}

async function listOnce(
  dir: string,
  n: number,
  signal: AbortSignal,
  sized: (entries: number, nameBytes: number) => void,
): Promise<RawJson<FileStat[]>> {
  const parts: (string | Buffer)[] = ['['];
  let bytes = 0;
  let entries = 0;
  if (collectBeforeNext) {
    collectAll(); // 5-20 ms, where the listing after a large one takes hundreds
    collectBeforeNext = false;
  }
  for await (const batch of listDirectoryBatches(dir, n, { signal, maxNameBytes: MAX_LISTING_NAME_BYTES, sized })) {
    if (batch.length === 0) continue;
    if (parts.length > 1) parts.push(',');
    const json = Buffer.from(goJson(batch), 'utf8').subarray(1, -1); // the entries, without the batch's brackets
    bytes += json.length + 1;
    entries += batch.length;
    if (bytes >= LARGE_LISTING) collectBeforeNext = true;
    if (bytes > MAX_LISTING_BYTES) {
      throw new AgentError(
        `${dir}: too many entries for one answer: more than ${MAX_LISTING_BYTES / 1048576} MiB after ${entries}; list at most n of them`,
        E2BIG,
      );
    }
    parts.push(json);
  }
  parts.push(']');
  return new RawJson<FileStat[]>(parts);
}

/** file-read's answer at end of file; `md5` only for a handle opened with md5 (0.7.1's answer otherwise). */
function eofAnswer(md5?: string): { bufb64: ''; eof: true; md5?: string } {
  return md5 === undefined ? { bufb64: '', eof: true } : { bufb64: '', eof: true, md5 };
}

/** file-read's answer to a read that gave `parts` (none at end of file, where handle `id` is closed). */
function readAnswer(
  ctx: Context,
  id: number,
  h: FileHandle,
  parts: (string | Buffer)[],
): RawJson<ReadAnswer> | ReturnType<typeof eofAnswer> {
  // Base64 needs no JSON escaping: the answer is spliced from the pieces, not stringified.
  if (parts.length === 1) return new RawJson<ReadAnswer>(['{"bufb64":"', parts[0], '","eof":false}']);
  if (parts.length > 0) return new RawJson<ReadAnswer>(['{"bufb64":"', ...parts, '","eof":false}']);
  const md5 = h.md5(); // of what the answers up to this one sent
  void handles(ctx)
    .close(id, true)
    .catch((e) => ctx.log.warn(`closing handle ${id} at end of file: ${(e as Error).message}`));
  return eofAnswer(md5);
}

const path = { type: 'string', required: true, doc: 'Absolute path in the guest.' } as const;
const handleId = { type: 'int', required: true, doc: 'A handle from file-open.' } as const;

export const fileCommands = [
  defineCommand({
    name: 'file-open',
    doc: 'Opens a file; answers its handle id (1, 2, ... never reused while the agent runs).',
    args: {
      path,
      mode: {
        type: 'string',
        default: 'r',
        oneOf: ['r', 'w'],
        doc: '"r" to read, "w" to create or truncate and write.',
      },
      perm: {
        type: 'int',
        default: 420,
        min: 0,
        max: 0xffffffff,
        doc: 'Permission bits (decimal) of a file "w" creates; & 07777, umask applies.',
      },
      force: {
        type: 'bool',
        default: false,
        doc: 'With "w": a running executable (ETXTBSY) is unlinked and created anew.',
      },
      atomic: {
        type: 'bool',
        default: false,
        doc: 'ember-ga, with "w": write to a new file with no name yet in the directory of path (O_TMPFILE; a named temporary file beside path where the filesystem has none) and rename it over path when the handle is closed; file-close discard drops it.',
      },
      md5: {
        type: 'bool',
        default: false,
        doc: 'ember-ga, with "r": hash the bytes the reads send; the file-read answer at end of file carries their md5.',
      },
    },
    handler: async (args, ctx, call) => {
      if (args.atomic && args.mode !== 'w') throw new AgentError('Invalid argument "atomic": only with mode "w"');
      if (args.md5 && args.mode !== 'r') throw new AgentError('Invalid argument "md5": only with mode "r"');
      const table = handles(ctx);
      table.reserve(call);
      let h: FileHandle;
      try {
        h = await openFile(args.path, {
          mode: args.mode as 'r' | 'w',
          perm: args.perm,
          force: args.force,
          atomic: args.atomic,
          md5: args.md5,
        });
      } catch (e) {
        table.unreserve();
        throw e;
      }
      return table.add(h, call);
    },
  }),
  defineCommand({
    name: 'file-read',
    doc: 'Reads the next chunk: {bufb64, eof}. At end of file an empty buffer with eof true (and md5, for a handle opened with md5), and the handle is closed.',
    args: {
      handle_id: handleId,
      size: {
        type: 'int',
        min: 0,
        doc: 'ember-ga: bytes to read (0 or absent: 4096); more than the maximum agent-info reports reads that maximum; ignored under --no-large-reads.',
      },
    },
    handler: (args, ctx, call) => {
      const table = handles(ctx);
      const id = args.handle_id;
      // A size past the maximum is clamped, not refused: any read may return less than asked.
      const size = args.size && ctx.config.largeReads ? Math.min(args.size, ctx.config.maxReadSize) : DEFAULT_READ_SIZE;
      if (table.closedAtEof(id, call.session)) return table.eofMd5(id)?.then(eofAnswer) ?? eofAnswer();
      const h = handleFor(ctx, call, id, 'r', 'file-read');
      // Served from the page cache, the answer is made at once: one 4 KiB read a request, as
      // 0.7.1 hosts send them, then costs no promise reactions.
      const parts = h.readBase64PartsNow(size, outputGate(ctx, call));
      return parts instanceof Promise ? parts.then((p) => readAnswer(ctx, id, h, p)) : readAnswer(ctx, id, h, parts);
    },
  }),
  defineCommand({
    name: 'file-write',
    doc: 'Writes a chunk; with eof true writes it, then closes the handle (reporting any close error).',
    args: {
      handle_id: handleId,
      bufb64: { type: 'base64', default: '', doc: 'The data, base64 (standard alphabet, padded).' },
      eof: { type: 'bool', default: false, doc: 'This is the last chunk: write it, then close.' },
    },
    handler: (args, ctx, call) => {
      const h = handleFor(ctx, call, args.handle_id, 'w', 'file-write');
      const data = args.bufb64;
      if (!data) {
        // A plain handle stays usable (the host may send the chunk again); an atomic one could
        // only commit a file with a chunk missing, so it fails from here on.
        h.poison(
          new SystemError(
            EINVAL,
            'write',
            h.path,
            'a chunk was refused as invalid base64; nothing more is written to this handle',
          ),
        );
        throw new AgentError(
          `Invalid argument "bufb64": not valid base64 (standard alphabet with = padding); nothing was written${h.atomic ? ', and this atomic handle will not replace the file' : ''}`,
        );
      }
      if (!args.eof) {
        // A waited write is done at once, and so is its answer.
        const written = h.writeNow(data);
        return written === true || written.then(() => true as const);
      }
      const written = h.write(data);
      const closed = handles(ctx).close(args.handle_id);
      // Answered once the close is done too (an atomic handle's rename or discard), with the
      // write's error first.
      return Promise.allSettled([written, closed]).then((r) => {
        for (const x of r) if (x.status === 'rejected') throw x.reason;
        return true as const;
      });
    },
  }),
  defineCommand({
    name: 'file-close',
    doc: 'Closes a handle after its queued operations (an atomic handle: renames its data into place); true also for an unknown handle.',
    args: {
      handle_id: handleId,
      discard: {
        type: 'bool',
        default: false,
        doc: 'ember-ga, an atomic handle: drop the data written; the original file stays as it was.',
      },
      fsync: { type: 'bool', default: false, doc: 'ember-ga, a "w" handle: flush the data to disk before closing.' },
      md5: {
        type: 'string',
        doc: 'ember-ga, a "w" handle: the md5 (hex) the file must have (a device or FIFO: the bytes written to it); otherwise EBADMSG (74), and an atomic handle is discarded.',
      },
    },
    handler: (args, ctx, call) => {
      const table = handles(ctx);
      const options: CloseOptions = { discard: args.discard, fsync: args.fsync, md5: args.md5 };
      // Closed or discarded when its host went away: to a discard, how that went; to anything
      // else, an error.
      const gone = table.endedError(args.handle_id, call.session);
      if (gone) {
        if (args.discard) return succeeds(table.endOf(args.handle_id)!);
        throw gone;
      }
      // The 0.7.1 answer for an unknown handle is true; a host asking for more than a close
      // (a check, a discard) must learn that nothing was checked or discarded.
      if (!table.has(args.handle_id, call.session)) {
        if (args.discard || args.fsync || args.md5 !== undefined) {
          throw new AgentError(
            `Incorrect handle id: ${args.handle_id} is not an open file handle (nothing was ${args.discard ? 'discarded' : args.md5 !== undefined ? 'checked' : 'synced'})`,
          );
        }
        return true; // another host's handle, or a qemu-ga one, stays open
      }
      return succeeds(table.close(args.handle_id, false, options));
    },
  }),
  defineCommand({
    name: 'get-file-md5sum',
    doc: 'The md5 of a regular file or block device, lowercase hex (EINVAL for a pipe, socket or character device: a stream has no end to hash up to).',
    args: { path },
    // A digest of a disk-sized file takes minutes: it stops when its host's session ends, and
    // holds only that session's share of the digest threads.
    handler: (args, _ctx, call) => md5File(args.path, { signal: call.signal, owner: call.session }),
  }),
  defineCommand({
    name: 'file-chown',
    doc: 'Sets owner and group (follows symlinks).',
    args: {
      path,
      uid: { type: 'int', default: 0, min: -1, max: 0xffffffff, doc: 'Numeric uid; -1 leaves it.' },
      gid: { type: 'int', default: 0, min: -1, max: 0xffffffff, doc: 'Numeric gid; -1 leaves it.' },
    },
    handler: (args) => succeeds(fs.promises.chown(args.path, args.uid, args.gid)),
  }),
  defineCommand({
    name: 'file-chmod',
    doc: 'Sets the permission bits (decimal; & 07777, so setuid, setgid and sticky are honoured).',
    args: {
      path,
      perm: { type: 'int', required: true, min: 0, max: 0xffffffff, doc: 'Mode bits, decimal (493 = 0755).' },
    },
    handler: (args) => succeeds(fs.promises.chmod(args.path, args.perm & 0o7777)),
  }),
  defineCommand({
    name: 'file-stat',
    doc: "lstat of a path: {name, isdir, stat} with Go's struct stat field names.",
    args: { path },
    handler: (args) => goStatFile(args.path),
  }),
  defineCommand({
    name: 'directory-create',
    doc: 'mkdir -p with perm (decimal, default 493 = 0755; umask applies).',
    args: {
      path,
      perm: { type: 'int', default: 493, min: 0, max: 0xffffffff, doc: 'Mode bits of created directories, decimal.' },
    },
    handler: (args) => succeeds(mkdirAll(args.path, args.perm)),
  }),
  defineCommand({
    name: 'directory-list',
    bulk: true,
    doc: 'The entries of a directory as file-stat objects, sorted by name; n > 0: at most n. E2BIG (ember-ga) past 48 MiB of answer (list fewer with n) or 32 MiB of names in the directory.',
    args: {
      path,
      n: { type: 'int', default: 0, doc: 'At most this many entries; 0 or less: all.' },
    },
    handler: (args, ctx, call) => listJson(ctx, call, args.path, args.n),
  }),
];
