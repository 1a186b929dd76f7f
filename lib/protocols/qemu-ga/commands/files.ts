// guest-file-open, guest-file-close, guest-file-read, guest-file-write, guest-file-seek,
// guest-file-flush (docs/QEMU-GA.md "Files"), on lib/files: fopen(3)'s modes, qemu-ga's answers
// and messages. The handles are the agent's shared table's, with lifetime 'agent': qemu-ga keeps
// a handle until guest-file-close or exit, whatever the connection that opened it does.
import type { Context } from '../../../context';
import type { FileHandle, FullRead } from '../../../files/handle';
import { outputGate, roomFor } from '../../output-gate';
import { fopenFile, isFopenMode } from '../../../files/open';
import { LARGE_ANSWER } from '../../../large-answers';
import { collectAll } from '../../../memory';
import { RawJson } from '../../../wire/answer';
import { reusedMemory } from '../../../wire/decode-native';
import { errorText } from '../dispatcher';
import { qdictOrder, qemuBytes } from '../json';
import { defineQgaCommand, QgaError } from '../schema';

/** Bytes a guest-file-read reads when it gives no count (qemu-ga's QGA_READ_COUNT_DEFAULT). */
export const QGA_READ_COUNT_DEFAULT = 4096;
/** The largest count a guest-file-read may ask for (qemu-ga's GUEST_FILE_READ_COUNT_MAX, 48 MiB). */
export const QGA_READ_COUNT_MAX = 48 * 1024 * 1024;

/**
 * Reads of this many bytes or more start with a full collection (collectAll), once the output
 * queued for the hosts is under the limit: the last such answer is freed before the next is made.
 */
const COLLECT_BEFORE_READ = 16 * 1024 * 1024;
/** An answer's JSON beside its base64 (`{"count": N, "buf-b64": "", "eof": false}`), with room to spare. */
const READ_ANSWER_JSON = 64;
/**
 * Reads of more than this many bytes make large answers (LARGE_ANSWER): each takes its share of
 * the agent's budget of them, or, when other hosts' answers hold it, reads this many instead.
 */
const LARGE_READ = ((LARGE_ANSWER - READ_ANSWER_JSON) / 4) * 3;
/** Writes of this many bytes or more start with one too (see guest-file-write). */
const COLLECT_BEFORE_WRITE = 4 * 1024 * 1024;

const SEEK_NAMES = ['set', 'cur', 'end'] as const;

const handle = { type: 'int', doc: 'A handle from guest-file-open.' } as const;

/** The agent-lifetime handle `id`, or qemu-ga's error for an unknown one. */
function handleOf(ctx: Context, id: number): FileHandle {
  const h = ctx.handles.agentHandle(id);
  if (!h) throw new QgaError(`handle '${id}' has not been found`);
  return h;
}

/** Rethrows a failure of `what` as qemu-ga words it: "failed to read file: Bad file descriptor". */
function failed(what: string): (e: unknown) => never {
  return (e) => {
    throw new QgaError(`${what}: ${errorText(e)}`);
  };
}

function invalidCount(count: number): QgaError {
  return new QgaError(`value '${count}' is invalid for argument count`);
}

/** GuestFileRead's members in the order qemu-ga writes them. */
const READ_KEYS = qdictOrder(['count', 'buf-b64', 'eof']);

/** guest-file-read's answer, spliced around the base64 pieces (megabytes are never one string). */
function readAnswer(r: FullRead): RawJson {
  const parts: (string | Buffer)[] = ['{'];
  READ_KEYS.forEach((k, i) => {
    if (i > 0) parts.push(', ');
    if (k === 'count') parts.push(`"count": ${r.count}`);
    else if (k === 'eof') parts.push(`"eof": ${r.eof}`);
    else parts.push('"buf-b64": "', ...r.base64, '"');
  });
  parts.push('}');
  return new RawJson(parts);
}

export const fileCommands = [
  defineQgaCommand({
    name: 'guest-file-open',
    doc: "Opens a file as fopen(3) with `mode` would; answers its handle. A file it creates gets mode 0666, whatever the umask. The handle stays open until guest-file-close or the agent's exit, across connections.",
    args: {
      path: { type: 'str', doc: 'Path in the guest.' },
      mode: {
        type: 'str',
        optional: true,
        doc: 'fopen(3) mode: r, rb, w, wb, a, ab, r+, rb+, r+b, w+, wb+, w+b, a+, ab+, a+b (default r).',
      },
    },
    handler: async (a, ctx, call) => {
      const mode = a.mode ?? 'r';
      if (!isFopenMode(mode)) throw new QgaError(`invalid file open mode '${mode}'`);
      const why = (text: string) => new QgaError(`failed to open file '${a.path}' (mode: '${mode}'): ${text}`);
      const table = ctx.handles;
      try {
        table.reserve(call, 'agent');
      } catch (e) {
        // The --max-handles limits, worded as qemu-ga words its process's fd limit, then which one.
        throw why(`Too many open files; ${(e as Error).message}`);
      }
      let h: FileHandle;
      try {
        // qemu holds a JSON string's NUL as 0xC0 0x80 (qemuBytes): those bytes are the name opened.
        h = await fopenFile(a.path.includes('\u0000') ? qemuBytes(a.path) : a.path, mode);
      } catch (e) {
        table.unreserve('agent');
        throw why(errorText(e));
      }
      return table.add(h, call, 'agent');
    },
  }),
  defineQgaCommand({
    name: 'guest-file-close',
    doc: 'Closes a handle, once the operations queued on it are done.',
    args: { handle },
    handler: async (a, ctx) => {
      handleOf(ctx, a.handle);
      await ctx.handles.close(a.handle).catch(failed('failed to close handle'));
      return {};
    },
  }),
  defineQgaCommand({
    name: 'guest-file-read',
    doc: `Reads up to \`count\` bytes (default ${QGA_READ_COUNT_DEFAULT}, at most ${QGA_READ_COUNT_MAX}): {count, buf-b64, eof}; fewer only at the end of the file (eof true), from a pipe or a device with less for now (one read's worth: a /dev/kmsg record), or 4.5 MiB of a larger count while other hosts' unread large answers hold the agent's budget of them (eof false).`,
    args: { handle, count: { type: 'int', optional: true, doc: 'Bytes to read.' } },
    handler: (a, ctx, call) => {
      const h = handleOf(ctx, a.handle);
      const count = a.count ?? QGA_READ_COUNT_DEFAULT;
      if (count < 0 || count > QGA_READ_COUNT_MAX) throw invalidCount(count);
      // A read its host left before it began would move the position past data nobody gets.
      if (call.signal.aborted) throw new QgaError('failed to read file: the host that asked is gone');
      const gate = outputGate(ctx, call);
      const small = (n: number) => {
        // Served from the page cache, the answer is made at once.
        const r = h.readFullNow(n, gate, false, call.signal);
        return r instanceof Promise ? r.then(readAnswer, failed('failed to read file')) : readAnswer(r);
      };
      if (count <= LARGE_READ) return small(count);
      return (async () => {
        // Its host gone, it leaves the wait at once (the room it waited for may be every endpoint's).
        if (!(await roomFor(ctx, call))) throw new QgaError('failed to read file: the host that asked is gone');
        // Never a wait for the budget: a session's requests run one at a time, so its thaw and
        // pings would wait behind the read for as long as another host left its answers unread.
        // A read shorter than asked, eof false, is one every qemu-ga host reads on from. (Its own
        // last large answer is written before this runs: room comes when its queue drains.)
        const hold = ctx.largeAnswerNow(call, Math.ceil(count / 3) * 4 + READ_ANSWER_JSON);
        if (!hold) return small(LARGE_READ);
        try {
          if (count >= COLLECT_BEFORE_READ) collectAll();
          return hold.keep(readAnswer(await h.readFull(count, gate, call.signal)));
        } catch (e) {
          hold.release();
          return failed('failed to read file')(e);
        }
      })();
    },
  }),
  defineQgaCommand({
    name: 'guest-file-write',
    doc: 'Writes the bytes of `buf-b64` (its first `count`) at the position (an "a" mode: at the end): {count, eof}.',
    args: {
      handle,
      'buf-b64': { type: 'base64', doc: 'The data, base64.' },
      count: { type: 'int', optional: true, doc: 'Bytes of the data to write (default: all).' },
    },
    handler: (a, ctx) => {
      const h = handleOf(ctx, a.handle);
      const data = a['buf-b64'];
      if (data === null) throw new QgaError('Base64 data contains invalid characters');
      const count = a.count ?? data.length;
      if (count < 0 || count > data.length) throw invalidCount(count);
      // The buffers of the last large writes (their request lines, their decoded data) are dead
      // but promoted by now: freed before this one's write, not piled up behind it. Data decoded
      // as it arrived leaves none: its request was never held whole, its memory is reused.
      if (count >= COLLECT_BEFORE_WRITE && !reusedMemory(data)) collectAll();
      // fwrite of nothing writes nothing, whatever the direction.
      if (count === 0) return { count: 0, eof: false };
      // A waited write is done at once, and so is its answer.
      const n = h.writeSomeNow(data.subarray(0, count));
      if (typeof n === 'number') return { count: n, eof: false };
      return n.then((written) => ({ count: written, eof: false }), failed('failed to write to file'));
    },
  }),
  defineQgaCommand({
    name: 'guest-file-seek',
    doc: 'Moves the position, as fseek(3): whence 0 or "set", 1 or "cur", 2 or "end". {position, eof}.',
    args: {
      handle,
      offset: { type: 'int', exact: true, doc: 'Bytes from where `whence` says: any int64, exactly.' },
      whence: {
        type: { alternate: ['int', { enum: SEEK_NAMES }], name: 'GuestFileWhence' },
        doc: '0/"set": from the start; 1/"cur": from the position; 2/"end": from the end.',
      },
    },
    handler: async (a, ctx) => {
      const h = handleOf(ctx, a.handle);
      const whence = typeof a.whence === 'string' ? SEEK_NAMES.indexOf(a.whence) : a.whence;
      if (whence !== 0 && whence !== 1 && whence !== 2) throw new QgaError(`invalid whence code ${whence}`);
      const position = await h.seek(a.offset, whence).catch(failed('failed to seek file'));
      return { position, eof: false };
    },
  }),
  defineQgaCommand({
    name: 'guest-file-flush',
    doc: 'Answers once the operations queued on the handle are done (each write is in the file when it answers).',
    args: { handle },
    handler: async (a, ctx) => {
      await handleOf(ctx, a.handle).flush().catch(failed('failed to flush file'));
      return {};
    },
  }),
];
