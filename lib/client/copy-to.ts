// Uploads: a local file or a Readable to a guest path, written atomically where the agent can
// (file-open `atomic`), verified with file-close `md5` or else get-file-md5sum; to a 0.7.1 agent
// with an empty last write with eof:true.
import { createHash } from 'crypto';
import * as fs from 'fs';
import { constants } from 'os';
import type { Readable } from 'stream';
import {
  abortable,
  abortError,
  checkAbort,
  checkGuestMd5,
  copyResult,
  finishTimeout,
  noop,
  plan,
  release,
  type CopyResult,
  type CopyToOptions,
  type Transfer,
} from './copy';
import { GuestAgentError, hostError } from './errors';
import type { GuestAgent } from './guest-agent';
import type { Features } from './types';

const { EISDIR } = constants.errno;

/** Errors of an atomic file-open after which copyTo writes in place instead (see there). */
const IN_PLACE_INSTEAD = new Set(['EINVAL', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'EROFS', 'ENAMETOOLONG']);

/** Largest file-write payload whose request line stays well under the agent's limit. */
export function writeLimit(f: Features): number {
  return Math.floor((f.maxLineBytes - 4096) / 4) * 3;
}

/**
 * An upload's input and its size when known: a local path is stat'ed (a regular file's size
 * replaces `total`; a directory is refused) and read in pieces of at least `chunk` bytes.
 */
export async function openSource(
  src: string | Readable,
  chunk: number,
  total: number | undefined,
  what: string,
): Promise<{ input: Readable; total: number | undefined }> {
  if (typeof src !== 'string') return { input: src, total };
  const st = await fs.promises.stat(src);
  if (st.isDirectory()) throw new GuestAgentError(`${what}: ${src} is a directory`, { code: 'EISDIR', errno: EISDIR });
  if (st.isFile()) total = st.size;
  return { input: fs.createReadStream(src, { highWaterMark: Math.max(chunk, 64 * 1024) }), total };
}

/** Hands `input` to `take` in chunks of exactly `chunk` bytes, in order; the last may be shorter. */
export async function eachChunk(input: Readable, chunk: number, take: (buf: Buffer) => Promise<void>): Promise<void> {
  const parts: Buffer[] = [];
  let have = 0;
  for await (const piece of input) {
    let p: Buffer = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
    while (p.length > 0) {
      const n = Math.min(chunk - have, p.length);
      parts.push(p.subarray(0, n));
      have += n;
      p = p.subarray(n);
      if (have === chunk) {
        await take(parts.length === 1 ? parts[0] : Buffer.concat(parts, have));
        parts.length = 0;
        have = 0;
      }
    }
  }
  if (have > 0) await take(Buffer.concat(parts, have));
}

export async function copyTo(
  ga: GuestAgent,
  src: string | Readable,
  guestPath: string,
  opts: CopyToOptions,
  t: Transfer,
): Promise<CopyResult> {
  const what = `copy to guest:${guestPath}`;
  const f = await ga.features();
  const { chunk, depth } = plan(f, opts, writeLimit(f));
  if (opts.atomic === true && !f.atomicWrite)
    throw hostError(
      'ENOTSUP',
      `${what}: the agent cannot replace a file atomically (it is not an ember-ga with atomic_write)`,
    );
  const { input, total } = await openSource(src, chunk, opts.total, what);
  // An abort ends a wait for input (stdin with nothing to say) as it ends any other wait. No
  // error is given to destroy(): before the loop reads, nothing would listen for it.
  const stopInput = () => input.destroy();
  opts.signal?.addEventListener('abort', stopInput, { once: true });
  const verify = opts.verify ?? true;
  let handle: number | undefined;
  let handleOpen = false;
  let atomic = false;
  const inflight: Promise<void>[] = [];
  const md5 = verify ? createHash('md5') : undefined;
  let sent = 0;
  let acked = 0;

  const send = async (buf: Buffer, eof: boolean) => {
    checkAbort(opts.signal, what);
    // Hashed while the previous write is still in flight, not between its answer and this request.
    md5?.update(buf);
    if (inflight.length >= depth) await abortable(inflight.shift()!, opts.signal, what);
    sent += buf.length;
    const p = ga.fileWrite(handle!, buf, eof).then(() => {
      acked += buf.length;
      if (eof) handleOpen = false;
      if (buf.length > 0) t.progress({ bytes: acked, total, phase: 'copy' }, opts);
    });
    p.catch(noop); // awaited in order
    inflight.push(p);
  };

  try {
    let refused: GuestAgentError | undefined; // the atomic open's refusal, when written in place
    if (f.atomicWrite && opts.atomic !== false) {
      try {
        handle = await ga.fileOpen(guestPath, { mode: 'w', perm: opts.perm, atomic: true });
        atomic = true;
      } catch (e) {
        // Not replaceable (a device, a FIFO, a bind-mounted file, a directory the agent cannot
        // create a file in, an owner it cannot give, sysfs, a path too long for the temporary
        // name beside it...): written in place, unless atomic
        // was asked for. Where the plain open fails too (a missing directory), its error is the
        // one reported. Not for a full disk or quota (ENOSPC, EDQUOT) and the like: writing in
        // place would truncate the file first and then likely fail the same way.
        if (opts.atomic === true || !(e instanceof GuestAgentError && e.remote && IN_PLACE_INSTEAD.has(e.code)))
          throw e;
        refused = e;
      }
    }
    handle ??= await ga.fileOpen(guestPath, { mode: 'w', perm: opts.perm, force: opts.force });
    handleOpen = true;
    if (refused) t.emit('inPlace', refused); // only once the file is open: nothing is written otherwise
    checkAbort(opts.signal, what);
    // The last chunk is held back to go out with eof.
    let held: Buffer | undefined;
    await eachChunk(input, chunk, async (buf) => {
      if (held) await send(held, false);
      held = buf;
    });
    // An agent with the file-close options ends with one: the md5 is checked (and the data
    // synced) before an atomic handle's data replaces the file. Otherwise the last write
    // carries eof, and get-file-md5sum checks the file afterwards.
    const closeChecks = f.atomicWrite;
    if (closeChecks) {
      if (held) await send(held, false);
    } else if (held && f.orderedHandles) {
      await send(held, true); // ember-ga writes data sent with eof, then closes
    } else {
      if (held) await send(held, false);
      await send(Buffer.alloc(0), true); // the reference drops data sent with eof:true
    }
    while (inflight.length > 0) await abortable(inflight.shift()!, opts.signal, what);
    const digest = md5?.digest('hex') ?? '';
    if (verify) t.progress({ bytes: acked, total, phase: 'verify' }, opts);
    if (closeChecks) {
      checkAbort(opts.signal, what);
      handleOpen = false; // closed by this request, whatever its answer
      try {
        await ga.fileClose(
          handle,
          { md5: verify ? digest : undefined, fsync: opts.fsync ?? true },
          { timeout: finishTimeout(ga, opts, sent) },
        );
      } catch (e) {
        if (!(e instanceof GuestAgentError)) throw e;
        if (e.remote && e.code === 'EBADMSG') throw hostError('ECHECKSUM', `${what}: ${e.message}`, 'file-close', e);
        if (!e.remote && atomic) {
          // The agent may still finish the close: the guest file is either as it was or all of
          // the new data, checked; which one, only a look at the guest file tells.
          throw new GuestAgentError(
            `${what}: ${e.message}; the guest file is either unchanged or completely replaced (the agent may still have checked and renamed it)`,
            { code: e.code, errno: e.errno, command: e.command, cause: e },
          );
        }
        throw e;
      }
    } else if (verify) {
      await checkGuestMd5(ga.md5File(guestPath, { timeout: finishTimeout(ga, opts, sent) }), digest, opts.signal, what);
    }
    return copyResult(f, { chunk, depth }, { bytes: sent, md5: digest, verified: verify, atomic });
  } catch (e) {
    const failure = opts.signal?.aborted ? abortError(what) : e; // input destroyed by the abort says "premature close"
    input.destroy();
    // An atomic handle's data is dropped: the guest file stays as it was.
    if (handleOpen && handle !== undefined) await release(ga, handle, atomic);
    throw failure;
  } finally {
    opts.signal?.removeEventListener('abort', stopInput);
  }
}
