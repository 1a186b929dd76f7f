// Copies over qemu-ga's protocol: guest-file-open / -read / -write / -close. qemu-ga has no md5,
// so a verified copy checks on the host: a download reads the guest file a second time (seeking
// back on the same handle), an upload reads back what was written, and the md5 of that second
// read must be the md5 of the bytes copied. Against a real qemu-ga: 4096-byte chunks (its default
// read count), one request at a time; against an ember-ga: 1 MiB chunks, several in flight.
import { createHash } from 'crypto';
import type { Readable, Writable } from 'stream';
import {
  abortable,
  abortError,
  checkAbort,
  copyResult,
  depthFor,
  noop,
  releaseOptions,
  type CopyFromOptions,
  type CopyOptions,
  type CopyResult,
  type CopyToOptions,
  type Plan,
  type Transfer,
} from './copy';
import { destOf, finishDest, writeDest } from './copy-from';
import { eachChunk, openSource, writeLimit } from './copy-to';
import { GuestAgentError, hostError } from './errors';
import type { GuestAgent } from './guest-agent';
import type { QemuGaCommands, QgaReadResult } from './qemu-ga-commands';
import { QEMU_GA_READ_COUNT } from './qmp-connection';
import type { Features } from './types';

const MiB = 1024 * 1024;
/** Largest chunk asked of a real qemu-ga (it allocates the whole count for each read). */
const QEMU_GA_MAX_CHUNK = 16 * MiB;
/** Pause after a read that brought nothing and no end of file (a pipe with nothing in it yet). */
const EMPTY_READ_PAUSE_MS = 20;

/** Chunk and requests in flight for a copy over qemu-ga; `limit`: the agent's largest chunk. */
export function qgaPlan(f: Features, opts: CopyOptions, limit: number): Plan {
  const max = f.emberGa ? limit : QEMU_GA_MAX_CHUNK;
  const chunk = Math.max(1, Math.min(opts.chunkSize ?? (f.emberGa ? MiB : QEMU_GA_READ_COUNT), max));
  return { chunk, depth: depthFor(f, opts, chunk) };
}

function unsupported(what: string, thing: string): GuestAgentError {
  return hostError('ENOTSUP', `${what}: ${thing}: phoenix's protocol only, qemu-ga's has no equivalent`);
}

/**
 * Reads a handle to its end, `depth` reads in flight, handing each chunk to `take` in order.
 * qemu-ga does not close a handle at end of file; reads still in flight then answer empty.
 */
async function readToEnd(
  qga: QemuGaCommands,
  handle: number,
  plan: Plan,
  signal: AbortSignal | undefined,
  what: string,
  take: (data: Buffer) => void | Promise<void>,
): Promise<number> {
  const inflight: Promise<QgaReadResult>[] = [];
  const topUp = () => {
    while (inflight.length < plan.depth) {
      const p = qga.fileRead(handle, plan.chunk);
      p.catch(noop); // awaited below, in request order
      inflight.push(p);
    }
  };
  let bytes = 0;
  topUp();
  for (;;) {
    const r = await abortable(inflight.shift()!, signal, what);
    if (r.eof) return bytes + (await give(r.data));
    topUp();
    if (r.data.length === 0) await abortable(new Promise((w) => setTimeout(w, EMPTY_READ_PAUSE_MS)), signal, what);
    bytes += await give(r.data);
  }
  async function give(data: Buffer): Promise<number> {
    if (data.length > 0) await take(data);
    return data.length;
  }
}

/** Closes a failed copy's handle and waits for the answer (see release() in copy.ts). */
async function release(ga: GuestAgent, handle: number): Promise<void> {
  await ga.qga.fileClose(handle, releaseOptions(ga)).catch(noop);
}

/** The md5 of a guest file, computed here from its bytes read through the agent. */
export async function guestMd5(
  ga: GuestAgent,
  guestPath: string,
  opts: { chunkSize?: number; inFlight?: number; signal?: AbortSignal } = {},
): Promise<{ md5: string; bytes: number }> {
  const f = await ga.features();
  const plan = qgaPlan(f, opts, f.maxReadSize);
  const handle = await ga.qga.fileOpen(guestPath, 'r');
  try {
    const hash = createHash('md5');
    const bytes = await readToEnd(ga.qga, handle, plan, opts.signal, `md5 guest:${guestPath}`, (d) => {
      hash.update(d);
    });
    await ga.qga.fileClose(handle);
    return { md5: hash.digest('hex'), bytes };
  } catch (e) {
    await release(ga, handle);
    throw e;
  }
}

export async function copyFromQga(
  ga: GuestAgent,
  guestPath: string,
  dest: string | Writable,
  opts: CopyFromOptions,
  t: Transfer,
): Promise<CopyResult> {
  const what = `copy guest:${guestPath}`;
  const qga = ga.qga;
  const f = await ga.features();
  const plan = qgaPlan(f, opts, f.maxReadSize);
  const verify = opts.verify ?? true;
  const { local, stream } = destOf(dest);
  let handle: number | undefined;
  let handleOpen = false;
  try {
    handle = await qga.fileOpen(guestPath, 'r');
    handleOpen = true;
    // The size, for progress; a file that cannot seek (a pipe) has none and cannot be read twice.
    let total: number | undefined;
    try {
      total = (await qga.fileSeek(handle, 0, 'end')).position;
      await qga.fileSeek(handle, 0, 'set');
    } catch (e) {
      if (!(e instanceof GuestAgentError && e.remote)) throw e;
    }
    if (verify && total === undefined)
      throw hostError(
        'ENOTSUP',
        `${what}: cannot verify: qemu-ga has no md5 and the guest file cannot be read a second time (it does not seek); copy it without verification`,
      );
    checkAbort(opts.signal, what);
    await local?.open(opts.signal, what);
    const md5 = verify ? createHash('md5') : undefined;
    let done = 0;
    const bytes = await readToEnd(qga, handle, plan, opts.signal, what, async (data) => {
      md5?.update(data);
      await writeDest(local, stream, data, opts.signal, what);
      done += data.length;
      t.progress({ bytes: done, total, phase: 'copy' }, opts);
    });
    const digest = md5?.digest('hex') ?? '';
    if (verify) {
      t.progress({ bytes, total, phase: 'verify' }, opts);
      await qga.fileSeek(handle, 0, 'set');
      const again = createHash('md5');
      await readToEnd(qga, handle, plan, opts.signal, what, (d) => {
        again.update(d);
      });
      const guest = again.digest('hex');
      if (guest !== digest)
        throw hostError(
          'ECHECKSUM',
          `${what}: md5 mismatch after the copy (host ${digest}, a second read of the guest file ${guest})`,
        );
    }
    handleOpen = false;
    await qga.fileClose(handle);
    await finishDest(local, stream, opts);
    return copyResult(f, plan, { bytes, md5: digest, verified: verify, atomic: false });
  } catch (e) {
    if (handleOpen && handle !== undefined) await release(ga, handle);
    await local?.abandon(opts.keepPartial ?? false);
    throw e;
  } finally {
    stream?.detach();
  }
}

export async function copyToQga(
  ga: GuestAgent,
  src: string | Readable,
  guestPath: string,
  opts: CopyToOptions,
  t: Transfer,
): Promise<CopyResult> {
  const what = `copy to guest:${guestPath}`;
  const qga = ga.qga;
  // What qemu-ga's guest-file-open cannot do is refused rather than silently skipped.
  if (opts.atomic === true) throw unsupported(what, 'an atomic replace');
  if (opts.perm !== undefined) throw unsupported(what, 'the mode of a created file (perm)');
  if (opts.force) throw unsupported(what, 'replacing a busy executable (force)');
  if (opts.fsync === true) throw unsupported(what, 'fsync');
  const f = await ga.features();
  const plan = qgaPlan(f, opts, writeLimit(f));
  const { input, total } = await openSource(src, plan.chunk, opts.total, what);
  const stopInput = () => input.destroy();
  opts.signal?.addEventListener('abort', stopInput, { once: true });
  const verify = opts.verify ?? true;
  const md5 = verify ? createHash('md5') : undefined;
  const inflight: Promise<void>[] = [];
  let handle: number | undefined;
  let handleOpen = false;
  let written = false; // every byte, and the close
  let sent = 0;
  let acked = 0;

  const send = async (buf: Buffer) => {
    checkAbort(opts.signal, what);
    md5?.update(buf);
    if (inflight.length >= plan.depth) await abortable(inflight.shift()!, opts.signal, what);
    sent += buf.length;
    const p = qga.fileWrite(handle!, buf).then((r) => {
      if (r.count !== buf.length)
        throw hostError('EIO', `${what}: the agent wrote ${r.count} of ${buf.length} bytes`, 'guest-file-write');
      acked += buf.length;
      t.progress({ bytes: acked, total, phase: 'copy' }, opts);
    });
    p.catch(noop); // awaited in order
    inflight.push(p);
  };

  try {
    handle = await qga.fileOpen(guestPath, 'w');
    handleOpen = true;
    checkAbort(opts.signal, what);
    await eachChunk(input, plan.chunk, send);
    while (inflight.length > 0) await abortable(inflight.shift()!, opts.signal, what);
    handleOpen = false;
    await qga.fileClose(handle);
    written = true;
    const digest = md5?.digest('hex') ?? '';
    if (verify) {
      t.progress({ bytes: acked, total, phase: 'verify' }, opts);
      const back = await guestMd5(ga, guestPath, { chunkSize: opts.chunkSize, signal: opts.signal });
      if (back.md5 !== digest)
        throw hostError(
          'ECHECKSUM',
          `${what}: md5 mismatch after the copy (host ${digest}, the guest file read back ${back.md5})`,
        );
    }
    return copyResult(f, plan, { bytes: sent, md5: digest, verified: verify, atomic: false });
  } catch (e) {
    const failure = opts.signal?.aborted ? abortError(what) : e;
    input.destroy();
    if (handleOpen && handle !== undefined) await release(ga, handle);
    throw handle === undefined || written ? failure : leftPartial(failure);
  } finally {
    opts.signal?.removeEventListener('abort', stopInput);
  }
}

/**
 * A failed upload's error once the guest file was opened (mode "w" truncates it): saying that
 * it now holds only what was written, where a phoenix upload would have left it as it was.
 */
function leftPartial(e: unknown): unknown {
  const note = ' (the guest file holds only what was written before: qemu-ga writes in place)';
  if (!(e instanceof GuestAgentError)) {
    // A local read error (an ErrnoException, kept as one for its code): told the same.
    if (e instanceof Error) e.message += note;
    return e;
  }
  return new GuestAgentError(`${e.message}${note}`, {
    code: e.code,
    errno: e.errno,
    command: e.command,
    remote: e.remote,
    cause: e,
    errorClass: e.errorClass,
  });
}
