// file-open, file-read, file-write, file-close, get-file-md5sum, file-chown, file-chmod,
// file-stat, directory-create, directory-list (docs/PROTOCOL.md "Files"), on lib/files.
//
// Hosts pipeline reads and writes on one handle and the dispatcher runs handlers concurrently:
// each handler reaches its FileHandle synchronously (no await first), so operations enter the
// handle's queue in request order and run in that order.
import * as fs from 'fs';
import { constants } from 'os';
import { AgentError, SystemError, toSystemError } from '../errors';
import { goJson, RawJson } from '../protocol';
import { defineCommand } from '../registry';
import type { Call, Context } from '../context';
import { DEFAULT_READ_SIZE, cancelBlockedStreams, openFile, type CloseOptions, type FileHandle } from '../files/handle';
import { md5File } from '../files/md5';
import { listDirectoryBatches, mkdirAll, statFile } from '../files/stat';

const { EBADF, EINVAL, EMFILE } = constants.errno;

/** How long exit waits for handles with operations still running before it goes anyway. */
const EXIT_CLOSE_MS = 2000;

/** Ids of handles closed at end of file that are remembered, so late pipelined reads answer eof again. */
const EOF_MEMORY = 4096;

/** The agent's open handles: ids from 1 upward, never reused while the agent runs. */
class HandleTable {
  private next = 1;
  private opening = 0;
  private readonly open = new Map<number, FileHandle>();
  /** The host session each open handle belongs to. */
  private readonly owner = new Map<number, number>();
  private readonly atEof = new Set<number>();
  /** Closes and discards started when a host went away (endSession), until done. */
  private readonly discarding = new Set<Promise<void>>();
  /** Handles closed when their host went away, by id (the last EOF_MEMORY): path, atomic, and the close. */
  private readonly ended = new Map<number, { path: string; atomic: boolean; done: Promise<void> }>();

  constructor(private readonly ctx: Context) {
    ctx.onExit(() => this.closeAll());
    // Urgent: before exit waits for requests in flight, which may be reads waiting on a FIFO.
    ctx.onExit(() => this.cancelWaits(), true);
    ctx.onHostGone((session) => this.endSession(session));
  }

  /** Reserves a slot for a handle about to be opened (throws past --max-handles). */
  reserve(): void {
    const max = this.ctx.config.maxHandles;
    if (this.open.size + this.opening >= max) {
      throw new AgentError(`Too many open file handles: the agent allows ${max} at once (--max-handles); close some with file-close or read them to the end`, EMFILE);
    }
    this.opening++;
  }

  /**
   * Adds an opened handle in a reserved slot, owned by the call's session; returns its id. One
   * whose host went away while it was being opened is closed at once, as endSession() would have.
   */
  add(h: FileHandle, call: Call): number {
    this.opening--;
    const id = this.next++;
    this.open.set(id, h);
    this.owner.set(id, call.session);
    if (call.signal.aborted) this.endHandle(id, h); // that host answers nobody
    return id;
  }

  unreserve(): void {
    this.opening--;
  }

  get(id: number): FileHandle {
    const h = this.open.get(id);
    if (!h) throw this.endedError(id) ?? new AgentError(`Incorrect handle id: ${id} is not an open file handle`);
    return h;
  }

  /** True for a handle that a read closed at end of file. */
  closedAtEof(id: number): boolean {
    return this.atEof.has(id);
  }

  /**
   * Forgets the id and closes the handle after the operations queued on it. Options the handle
   * cannot honour (discard on a handle not opened with atomic) reject and leave it open.
   */
  close(id: number, atEof = false, options: CloseOptions = {}): Promise<void> {
    const h = this.open.get(id);
    if (!h) return Promise.resolve();
    const closing = h.close(options);
    if (!h.closed) return closing; // refused: the handle stays open, and in the table
    this.open.delete(id);
    this.owner.delete(id);
    if (atEof) {
      this.atEof.add(id);
      if (this.atEof.size > EOF_MEMORY) this.atEof.delete(this.atEof.values().next().value as number);
    }
    return closing;
  }

  has(id: number): boolean {
    return this.open.has(id);
  }

  /**
   * A host's session ended: its handles are closed, whatever waits on them cancelled (a read
   * on a FIFO nobody writes to, a write to one nobody reads). Atomic ones are discarded, so the
   * path keeps its old content and the new data's space is freed. No later host can know these
   * handles (a 0.7.1 host never reuses one across connections), and each kept would hold an fd,
   * and a deleted file's disk space, until the agent exits.
   */
  private endSession(session: number): void {
    for (const [id, h] of this.open) if (this.owner.get(id) === session) this.endHandle(id, h);
  }

  private endHandle(id: number, h: FileHandle): void {
    this.ctx.log.info(`host gone: ${h.atomic ? 'discarding the unfinished atomic upload to' : 'closing'} ${h.path} (handle ${id})`);
    h.cancelWaits('the host that opened it is gone');
    const done = this.close(id, false, { discard: h.atomic });
    this.ended.set(id, { path: h.path, atomic: h.atomic, done });
    if (this.ended.size > EOF_MEMORY) this.ended.delete(this.ended.keys().next().value as number);
    const discarding = done
      .catch((e: Error) => this.ctx.log.warn(`closing handle ${id}: ${e.message}`))
      .finally(() => this.discarding.delete(discarding));
    this.discarding.add(discarding); // exit waits for it (no request does)
  }

  /** For a handle closed when its host went away: settles as that close did; else undefined. */
  endOf(id: number): Promise<void> | undefined {
    return this.ended.get(id)?.done;
  }

  /**
   * The error for a handle closed when its host went away, else undefined: a later request on
   * it must not pass for a success (file-close's 0.7.1 answer for an unknown handle is true).
   */
  endedError(id: number): AgentError | undefined {
    const d = this.ended.get(id);
    if (d === undefined) return undefined;
    if (d.atomic) return new AgentError(`Handle ${id} was discarded when the host that opened it went away: ${d.path} was not replaced (its data is dropped); upload it again`);
    return new AgentError(`Handle ${id} was closed when the host that opened it went away (${d.path}); open it again`);
  }

  /** At exit: stream I/O that waits (a read on a FIFO nobody writes to) fails at once. */
  private cancelWaits(): void {
    cancelBlockedStreams(); // stream I/O on devices epoll cannot watch, waiting on the pool
    for (const h of this.open.values()) h.cancelWaits(); // stream I/O waiting on the event loop
  }

  /**
   * At exit. A read on a pipe nobody writes to must not keep the agent from exiting: waiting
   * stream I/O is cancelled first, and after EXIT_CLOSE_MS exit goes on regardless.
   */
  private async closeAll(): Promise<void> {
    this.cancelWaits();
    const ids = [...this.open.keys()];
    if (ids.length === 0 && this.discarding.size === 0) return;
    if (ids.length > 0) this.ctx.log.info(`closing ${ids.length} file handle(s) left open`);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, EXIT_CLOSE_MS).unref()));
    // An atomic handle's data was never committed: its temporary file goes, the original stays.
    const closing = ids.map((id) => this.close(id, false, { discard: this.open.get(id)!.atomic }));
    await Promise.race([Promise.allSettled([...closing, ...this.discarding]), late]);
    clearTimeout(timer);
  }
}

const HANDLES = Symbol('file handles');
const handles = (ctx: Context) => ctx.store(HANDLES, () => new HandleTable(ctx));

/** The handle, checked to be open in the direction the command needs. */
function handleFor(ctx: Context, id: number, mode: 'r' | 'w', command: string): FileHandle {
  const h = handles(ctx).get(id);
  if (h.mode !== mode) {
    throw new AgentError(`${command}: handle ${id} (${h.path}) is open for ${h.mode === 'r' ? 'reading (mode "r")' : 'writing (mode "w")'}; open it with mode "${mode}" to ${mode === 'r' ? 'read' : 'write'}`, EBADF);
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
 * directory-list's answer, spliced from each batch's JSON text as it comes: the entries never
 * exist as one string or as one array of objects. (A bulk command: the dispatcher runs one at a
 * time, once the answers before it are mostly out.)
 */
async function listJson(dir: string, n: number, signal: AbortSignal): Promise<RawJson> {
  const parts: (string | Buffer)[] = ['['];
  for await (const batch of listDirectoryBatches(dir, n, { signal })) {
    if (batch.length === 0) continue;
    if (parts.length > 1) parts.push(',');
    parts.push(Buffer.from(goJson(batch), 'utf8').subarray(1, -1)); // the entries, without the batch's brackets
  }
  parts.push(']');
  return new RawJson(parts);
}

const path = { type: 'string', required: true, doc: 'Absolute path in the guest.' } as const;
const handleId = { type: 'int', required: true, doc: 'A handle from file-open.' } as const;

export const fileCommands = [
  defineCommand({
    name: 'file-open',
    doc: 'Opens a file; answers its handle id (1, 2, ... never reused while the agent runs).',
    args: {
      path,
      mode: { type: 'string', default: 'r', oneOf: ['r', 'w'], doc: '"r" to read, "w" to create or truncate and write.' },
      perm: { type: 'int', default: 420, min: 0, max: 0xffffffff, doc: 'Permission bits (decimal) of a file "w" creates; & 07777, umask applies.' },
      force: { type: 'bool', default: false, doc: 'With "w": a running executable (ETXTBSY) is unlinked and created anew.' },
      atomic: { type: 'bool', default: false, doc: 'ember-ga, with "w": write to a new file with no name yet in the directory of path (O_TMPFILE; a named temporary file beside path where the filesystem has none) and rename it over path when the handle is closed; file-close discard drops it.' },
    },
    handler: async (args, ctx, call) => {
      if (args.atomic && args.mode !== 'w') throw new AgentError('Invalid argument "atomic": only with mode "w"');
      const table = handles(ctx);
      table.reserve();
      let h: FileHandle;
      try {
        h = await openFile(args.path, { mode: args.mode as 'r' | 'w', perm: args.perm, force: args.force, atomic: args.atomic });
      } catch (e) {
        table.unreserve();
        throw e;
      }
      return table.add(h, call);
    },
  }),
  defineCommand({
    name: 'file-read',
    doc: 'Reads the next chunk: {bufb64, eof}. At end of file an empty buffer with eof true, and the handle is closed.',
    args: {
      handle_id: handleId,
      size: { type: 'int', min: 0, doc: 'ember-ga: bytes to read (0 or absent: 4096); more than the maximum agent-info reports reads that maximum; ignored under --no-large-reads.' },
    },
    handler: (args, ctx) => {
      const table = handles(ctx);
      const id = args.handle_id;
      // A size past the maximum is clamped, not refused: any read may return less than asked.
      const size = args.size && ctx.config.largeReads ? Math.min(args.size, ctx.config.maxReadSize) : DEFAULT_READ_SIZE;
      if (table.closedAtEof(id)) return { bufb64: '', eof: true };
      // Reads wait while the host is behind on its answers (the agent's output limit).
      const gate = { room: ctx.outputRoom, hold: (n: number) => ctx.holdOutput(Math.ceil(n / 3) * 4) };
      return handleFor(ctx, id, 'r', 'file-read').readBase64Parts(size, gate).then((parts) => {
        // Base64 needs no JSON escaping: the answer is spliced from the pieces, not stringified.
        if (parts.length > 0) return new RawJson(['{"bufb64":"', ...parts, '","eof":false}']);
        void table.close(id, true).catch((e) => ctx.log.warn(`closing handle ${id} at end of file: ${(e as Error).message}`));
        return { bufb64: '', eof: true };
      });
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
    handler: (args, ctx) => {
      const h = handleFor(ctx, args.handle_id, 'w', 'file-write');
      const data = args.bufb64;
      if (!data) {
        // A plain handle stays usable (the host may send the chunk again); an atomic one could
        // only commit a file with a chunk missing, so it fails from here on.
        h.poison(new SystemError(EINVAL, 'write', h.path, 'a chunk was refused as invalid base64; nothing more is written to this handle'));
        throw new AgentError(`Invalid argument "bufb64": not valid base64 (standard alphabet with = padding); nothing was written${h.atomic ? ', and this atomic handle will not replace the file' : ''}`);
      }
      const written = h.write(data);
      if (!args.eof) return written.then(() => true);
      const closed = handles(ctx).close(args.handle_id);
      // Answered once the close is done too (an atomic handle's rename or discard), with the
      // write's error first.
      return Promise.allSettled([written, closed]).then((r) => {
        for (const x of r) if (x.status === 'rejected') throw x.reason;
        return true;
      });
    },
  }),
  defineCommand({
    name: 'file-close',
    doc: 'Closes a handle after its queued operations (an atomic handle: renames its data into place); true also for an unknown handle.',
    args: {
      handle_id: handleId,
      discard: { type: 'bool', default: false, doc: 'ember-ga, an atomic handle: drop the data written; the original file stays as it was.' },
      fsync: { type: 'bool', default: false, doc: 'ember-ga, a "w" handle: flush the data to disk before closing.' },
      md5: { type: 'string', doc: 'ember-ga, a "w" handle: the md5 (hex) the file must have; otherwise EBADMSG (74), and an atomic handle is discarded.' },
    },
    handler: (args, ctx) => {
      const table = handles(ctx);
      const options: CloseOptions = { discard: args.discard, fsync: args.fsync, md5: args.md5 };
      // Closed or discarded when its host went away: to a discard, how that went; to anything
      // else, an error.
      const gone = table.endedError(args.handle_id);
      if (gone) {
        if (args.discard) return succeeds(table.endOf(args.handle_id)!);
        throw gone;
      }
      // The 0.7.1 answer for an unknown handle is true; a host asking for more than a close
      // (a check, a discard) must learn that nothing was checked or discarded.
      if (!table.has(args.handle_id) && (args.discard || args.fsync || args.md5 !== undefined)) {
        throw new AgentError(`Incorrect handle id: ${args.handle_id} is not an open file handle (nothing was ${args.discard ? 'discarded' : args.md5 !== undefined ? 'checked' : 'synced'})`);
      }
      return succeeds(table.close(args.handle_id, false, options));
    },
  }),
  defineCommand({
    name: 'get-file-md5sum',
    doc: 'The md5 of a regular file or block device, lowercase hex (EINVAL for a pipe, socket or character device: a stream has no end to hash up to).',
    args: { path },
    // A digest of a disk-sized file takes minutes: it stops when its host's session ends.
    handler: (args, _ctx, call) => md5File(args.path, { signal: call.signal }),
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
    doc: 'lstat of a path: {name, isdir, stat} with Go\'s struct stat field names.',
    args: { path },
    handler: (args) => statFile(args.path),
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
    doc: 'The entries of a directory as file-stat objects, sorted by name; n > 0: at most n.',
    args: {
      path,
      n: { type: 'int', default: 0, doc: 'At most this many entries; 0 or less: all.' },
    },
    handler: (args, _ctx, call) => listJson(args.path, args.n, call.signal),
  }),
];
