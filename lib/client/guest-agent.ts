// GuestAgent: a typed client for ember-ga and phoenix-guest-agent 0.7.1, one method per agent
// command and the copies. Connecting, tags, timeouts and features() are AgentConnection's.
import type { Readable, Writable } from 'stream';
import { checkCopyOptions, Transfer, type CopyFromOptions, type CopyToOptions } from './copy';
import { copyFrom } from './copy-from';
import { copyTo } from './copy-to';
import { hostError } from './errors';
import { DecodedRead } from './answer-scan';
import { AgentConnection, type CallOptions, type GuestAgentOptions } from './connection';
import type {
  AgentInfo,
  ExactFileStat,
  FileStat,
  NetIface,
  ReadResult,
  GuestRoute,
  GuestRouteSpec,
  SysInfo,
} from './types';

export type { CallOptions, GuestAgentOptions } from './connection';

/** Events: 'connect', 'disconnect' and 'unmatched', as AgentConnection says. */
export class GuestAgent extends AgentConnection {
  /** Creates a client and connects it. */
  static async connect(opts: GuestAgentOptions): Promise<GuestAgent> {
    const ga = new GuestAgent(opts);
    try {
      await ga.connect();
    } catch (e) {
      await ga.close();
      throw e;
    }
    return ga;
  }

  // ---- typed commands (docs/PROTOCOL.md) ----

  /** The agent's version. */
  ping(opts?: CallOptions): Promise<string> {
    return this.call('ping', undefined, opts);
  }

  /** Every command name the agent accepts, aliases included. */
  commands(opts?: CallOptions): Promise<string[]> {
    return this.call('get-commands', undefined, opts);
  }

  /** agent-info (ember-ga only; the reference answers "Unknown command"). */
  agentInfo(opts?: CallOptions): Promise<AgentInfo> {
    return this.call('agent-info', undefined, opts);
  }

  /** agent-shutdown: the agent answers true, then exits (its supervisor restarts it). */
  shutdown(opts?: CallOptions): Promise<boolean> {
    return this.call('agent-shutdown', undefined, opts);
  }

  sysinfo(opts?: CallOptions): Promise<SysInfo> {
    return this.call('sysinfo', undefined, opts);
  }

  /**
   * file-open: a handle id. `perm` is the mode of a created file (default 0o644). `atomic` (with
   * "w", when features().atomicWrite): the data replaces the file only when the handle is closed.
   * `md5` (with "r", when features().readMd5): the read at end of file gives the md5 of all read.
   */
  fileOpen(
    path: string,
    o: { mode?: 'r' | 'w'; perm?: number; force?: boolean; atomic?: boolean; md5?: boolean } = {},
    opts?: CallOptions,
  ): Promise<number> {
    return this.call(
      'file-open',
      compact({
        path,
        mode: o.mode ?? 'r',
        perm: o.perm,
        force: o.force,
        atomic: o.atomic || undefined,
        md5: o.md5 || undefined,
      }),
      opts,
    );
  }

  /** file-read: up to `size` bytes (ember-ga; the reference reads 4096 whatever is asked). */
  async fileRead(handle: number, size?: number, opts: CallOptions = {}): Promise<ReadResult> {
    // The common case (integers, our own tags: hex, '-' and digits) is a template: a 4 KiB copy
    // makes thousands of these a second, one at a time.
    const plain = Number.isSafeInteger(handle) && (size === undefined || Number.isSafeInteger(size));
    const args = plain
      ? `{"handle_id":${handle}${size === undefined ? '' : `,"size":${size}`}}`
      : JSON.stringify(compact({ handle_id: handle, size }));
    const r = await this.request<DecodedRead | { bufb64?: unknown; eof?: unknown; md5?: unknown } | null>(
      'file-read',
      (tag) => `{"execute":"file-read","arguments":${args},"tag":${JSON.stringify(tag)}}\r\n`,
      opts,
      { decodeRead: true },
    );
    if (r instanceof DecodedRead) return r;
    if (r === null || typeof r !== 'object' || typeof r.bufb64 !== 'string')
      throw hostError('EPROTO', 'file-read: answer is not {bufb64, eof}', 'file-read');
    return new DecodedRead(
      Buffer.from(r.bufb64, 'base64'),
      r.eof === true,
      typeof r.md5 === 'string' ? r.md5 : undefined,
    );
  }

  /** file-write; with eof the handle is closed (the reference drops data sent with eof:true). */
  fileWrite(handle: number, data: Buffer, eof = false, opts: CallOptions = {}): Promise<boolean> {
    if (!Number.isSafeInteger(handle))
      return this.call('file-write', { handle_id: handle, bufb64: data.toString('base64'), eof }, opts);
    // Built around the base64 text, which needs no JSON escaping: no JSON pass over the payload.
    return this.request(
      'file-write',
      (tag) =>
        `{"execute":"file-write","arguments":{"handle_id":${handle},"bufb64":"${data.toString('base64')}","eof":${eof === true}},"tag":${JSON.stringify(tag)}}\r\n`,
      opts,
      { ascii: true },
    );
  }

  /**
   * file-close. The options need features().atomicWrite (older agents ignore them): `discard`
   * drops an atomic handle's data, `md5` closes only if the file has that md5 (else EBADMSG),
   * `fsync` flushes it to disk first.
   */
  fileClose(
    handle: number,
    o: { discard?: boolean; fsync?: boolean; md5?: string } = {},
    opts?: CallOptions,
  ): Promise<boolean> {
    return this.call(
      'file-close',
      compact({ handle_id: handle, discard: o.discard || undefined, fsync: o.fsync || undefined, md5: o.md5 }),
      opts,
    );
  }

  /** get-file-md5sum: lowercase hex. */
  md5sum(path: string, opts?: CallOptions): Promise<string> {
    return this.call('get-file-md5sum', { path }, opts);
  }

  /**
   * file-stat (lstat). Numbers are JSON.parse's, exact up to 2^53; with `exact: true` the 64-bit
   * fields are Int64 (a bigint past 2^53: an overlayfs inode number with xino, say).
   */
  stat(path: string, opts: CallOptions & { exact: true }): Promise<ExactFileStat>;
  stat(path: string, opts?: CallOptions & { exact?: false }): Promise<FileStat>;
  stat(path: string, opts: CallOptions & { exact?: boolean } = {}): Promise<FileStat | ExactFileStat> {
    return this.callWith('file-stat', { path }, opts, { exactInts: opts.exact === true });
  }

  chmod(path: string, perm: number, opts?: CallOptions): Promise<boolean> {
    return this.call('file-chmod', { path, perm }, opts);
  }

  chown(path: string, uid: number, gid: number, opts?: CallOptions): Promise<boolean> {
    return this.call('file-chown', { path, uid, gid }, opts);
  }

  /** directory-create: creates missing parents too (default perm 0o755). */
  mkdir(path: string, perm?: number, opts?: CallOptions): Promise<boolean> {
    return this.call('directory-create', compact({ path, perm }), opts);
  }

  /** directory-list: at most n entries (0 = all); `exact` as for stat(). */
  readdir(path: string, n: number | undefined, opts: CallOptions & { exact: true }): Promise<ExactFileStat[]>;
  readdir(path: string, n?: number, opts?: CallOptions & { exact?: false }): Promise<FileStat[]>;
  readdir(
    path: string,
    n?: number,
    opts: CallOptions & { exact?: boolean } = {},
  ): Promise<FileStat[] | ExactFileStat[]> {
    return this.callWith('directory-list', compact({ path, n }), opts, { exactInts: opts.exact === true });
  }

  /**
   * fs-freeze. ember-ga: `mountpoints` freezes just those, in order; `timeout` (seconds) thaws
   * by itself if no fs-unfreeze comes in time.
   */
  freeze(o: { mountpoints?: string[]; timeout?: number } = {}, opts?: CallOptions): Promise<boolean> {
    const args = compact({ mountpoints: o.mountpoints?.length ? o.mountpoints : undefined, timeout: o.timeout });
    return this.call('fs-freeze', Object.keys(args).length ? args : undefined, opts);
  }

  thaw(opts?: CallOptions): Promise<boolean> {
    return this.call('fs-unfreeze', undefined, opts);
  }

  /** get-freeze-status: true while frozen. */
  frozen(opts?: CallOptions): Promise<boolean> {
    return this.call('get-freeze-status', undefined, opts);
  }

  interfaces(opts?: CallOptions): Promise<NetIface[]> {
    return this.call('get-netifaces', undefined, opts);
  }

  addAddress(ip: string, ifname: string, opts?: CallOptions): Promise<boolean> {
    return this.call('ipaddr-add', { ip, ifname }, opts);
  }

  deleteAddress(ip: string, ifname: string, opts?: CallOptions): Promise<boolean> {
    return this.call('ipaddr-del', { ip, ifname }, opts);
  }

  linkUp(ifname: string, opts?: CallOptions): Promise<boolean> {
    return this.call('net-iface-up', { ifname }, opts);
  }

  linkDown(ifname: string, opts?: CallOptions): Promise<boolean> {
    return this.call('net-iface-down', { ifname }, opts);
  }

  /** get-route-list of the main table; family 0 (all, default), 2 (IPv4) or 10 (IPv6). */
  routes(family: 0 | 2 | 10 = 0, opts?: CallOptions): Promise<GuestRoute[]> {
    return this.call('get-route-list', { family }, opts);
  }

  addRoute(r: GuestRouteSpec, opts?: CallOptions): Promise<boolean> {
    return this.call('route-add', routeArgs(r), opts);
  }

  deleteRoute(r: GuestRouteSpec, opts?: CallOptions): Promise<boolean> {
    return this.call('route-del', routeArgs(r), opts);
  }

  // ---- copies ----

  /**
   * Copies a guest file to a local path (written under a temporary name, renamed on success;
   * nothing is left behind on failure unless keepPartial) or into a Writable. Unless verify is
   * false, verified against the md5 of what the agent read (features().readMd5), else against
   * get-file-md5sum. The Transfer emits 'progress' ({bytes, total}).
   * Throws at once (TypeError, RangeError) when chunkSize or inFlight is not a whole number >= 1.
   */
  copyFrom(guestPath: string, dest: string | Writable, opts: CopyFromOptions = {}): Transfer {
    checkCopyOptions(opts);
    return new Transfer((t) => copyFrom(this, guestPath, dest, opts, t));
  }

  /**
   * Copies a local file or a Readable to a guest path (created or truncated, `perm` default
   * 0o644), verified against get-file-md5sum unless verify is false. Throws like copyFrom.
   */
  copyTo(src: string | Readable, guestPath: string, opts: CopyToOptions = {}): Transfer {
    checkCopyOptions(opts);
    return new Transfer((t) => copyTo(this, src, guestPath, opts, t));
  }
}

function compact(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

function routeArgs(r: GuestRouteSpec): Record<string, unknown> {
  return compact({ dst: r.dst, gateway: r.gateway, ifname: r.ifname, src: r.src, scope: r.scope });
}
