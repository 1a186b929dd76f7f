// GuestAgent: a typed client for ember-ga, phoenix-guest-agent 0.7.1 and qemu-guest-agent, one
// method per agent command and the copies. Over phoenix's protocol (the default) connecting,
// tags, timeouts and features() are AgentConnection's; over qemu-ga's (`protocol: 'qemu-ga'`)
// they are a QmpConnection's, and AgentConnection's own link is never opened. Operations with
// an equivalent in both work over both; the others fail with ENOTSUP naming the protocol.
import type { Readable, Writable } from 'stream';
import type { Answers, CommandName } from '../protocols/phoenix/answers';
import { checkCopyOptions, Transfer, type CopyFromOptions, type CopyToOptions } from './copy';
import { copyFrom } from './copy-from';
import { copyFromQga, copyToQga, guestMd5 } from './copy-qga';
import { copyTo } from './copy-to';
import { GuestAgentError, hostError } from './errors';
import { DecodedRead } from './answer-scan';
import { AgentConnection, type CallOptions, type GuestAgentOptions, type Protocol } from './connection';
import { QemuGaCommands, type ExecOptions } from './qemu-ga-commands';
import type { ExecResult, QgaAnswers, QgaCommandName } from './qemu-ga-types';
import { QmpConnection, type QmpAnswer } from './qmp-connection';
import type {
  AddressSpec,
  AgentInfo,
  ExactFileStat,
  GuestFreezeResult,
  FileStat,
  NetIface,
  ReadResult,
  GuestRoute,
  GuestRouteSpec,
  SysInfo,
  Features,
} from './types';

export type { CallOptions, GuestAgentOptions, Protocol } from './connection';
export type { ExecOptions } from './qemu-ga-commands';

/** Events: 'connect', 'disconnect' and 'unmatched', as AgentConnection (or QmpConnection) says. */
export class GuestAgent extends AgentConnection {
  readonly protocol: Protocol;
  private readonly qmpConn: QmpConnection | undefined;
  private readonly qgaCommands: QemuGaCommands | undefined;

  constructor(opts: GuestAgentOptions) {
    super(opts);
    const protocol = opts.protocol ?? 'phoenix';
    if (protocol !== 'phoenix' && protocol !== 'qemu-ga')
      throw new TypeError(`protocol must be 'phoenix' or 'qemu-ga', got ${JSON.stringify(protocol)}`);
    this.protocol = protocol;
    if (protocol === 'qemu-ga') {
      this.qmpConn = new QmpConnection(opts);
      this.qgaCommands = new QemuGaCommands(this.qmpConn);
      for (const ev of ['connect', 'disconnect', 'unmatched', 'sync'])
        this.qmpConn.on(ev, (...a: unknown[]) => this.emit(ev, ...a));
    }
  }

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

  // ---- the connection, over either protocol ----

  override get description(): string {
    return this.qmpConn ? this.qmpConn.description : super.description;
  }

  override get connected(): boolean {
    return this.qmpConn ? this.qmpConn.connected : super.connected;
  }

  override get inFlight(): number {
    return this.qmpConn ? this.qmpConn.inFlight : super.inFlight;
  }

  override connect(): Promise<void> {
    return this.qmpConn ? this.qmpConn.connect() : super.connect();
  }

  override async close(): Promise<void> {
    await this.qmpConn?.close();
    await super.close();
  }

  /** What the agent supports (over qemu-ga: ember-ga-info and guest-info, see QmpConnection). */
  override features(): Promise<Features> {
    return this.qmpConn ? this.qmpConn.features() : super.features();
  }

  /**
   * Sends one request in the agent's protocol and resolves with its `return` value: a phoenix
   * command (typed from lib/protocols/phoenix/answers.ts) or, over qemu-ga, a qemu-ga command (typed from
   * qemu-ga-types.ts for those the client knows).
   */
  override call<N extends CommandName>(
    command: N,
    args?: Record<string, unknown>,
    opts?: CallOptions,
  ): Promise<Answers[N]>;
  override call<N extends QgaCommandName>(
    command: N,
    args?: Record<string, unknown>,
    opts?: CallOptions,
  ): Promise<QgaAnswers[N]>;
  override call<T = unknown>(command: string, args?: Record<string, unknown>, opts?: CallOptions): Promise<T>;
  override call<T = unknown>(command: string, args?: Record<string, unknown>, opts: CallOptions = {}): Promise<T> {
    return this.qmpConn ? this.qmpConn.execute<T>(command, args, opts) : super.call<T>(command, args, opts);
  }

  /**
   * qemu-ga only: one request, the whole answer as the agent sent it (`{"return": ...}` or
   * `{"error": {"class", "desc"}}`, the client's id removed), an error answer included.
   */
  qmp(command: string, args?: Record<string, unknown>, opts?: CallOptions): Promise<QmpAnswer> {
    if (!this.qmpConn) return Promise.reject(this.onlyQemuGa('qmp', 'its answers as they come'));
    return this.qmpConn.request(command, args, opts);
  }

  /** qemu-ga only: typed methods for qemu-ga's commands (guest-file-*, guest-exec, ...). */
  get qga(): QemuGaCommands {
    if (!this.qgaCommands) throw this.onlyQemuGa('qga', 'its commands');
    return this.qgaCommands;
  }

  /** qemu-ga only: synchronises again now (guest-sync-delimited), as after a timeout. */
  resync(opts?: CallOptions): Promise<void> {
    if (!this.qmpConn) return Promise.reject(this.onlyQemuGa('resync', 'guest-sync-delimited'));
    return this.qmpConn.resync(opts);
  }

  /** An operation of phoenix's protocol asked over qemu-ga's: ENOTSUP naming both. */
  private onlyPhoenix(op: string, command: string): GuestAgentError | undefined {
    if (!this.qmpConn) return undefined;
    return hostError('ENOTSUP', `${op}: phoenix's protocol only, qemu-ga's has no equivalent`, command);
  }

  private onlyQemuGa(op: string, what: string): GuestAgentError {
    return hostError('ENOTSUP', `${op}: qemu-ga's protocol only (${what}), phoenix's has no equivalent`);
  }

  // ---- typed commands (docs/PROTOCOL.md; over qemu-ga where it has an equivalent) ----

  /** The agent's version (over qemu-ga: guest-ping, then guest-info's version). */
  async ping(opts?: CallOptions): Promise<string> {
    if (this.qmpConn) {
      await this.qga.ping(opts);
      return (await this.features()).version;
    }
    return this.call('ping', undefined, opts);
  }

  /** Every command name the agent accepts, aliases included (over qemu-ga: guest-info's enabled ones). */
  async commands(opts?: CallOptions): Promise<string[]> {
    if (this.qmpConn) return (await this.qga.info(opts)).supported_commands.filter((c) => c.enabled).map((c) => c.name);
    return this.call('get-commands', undefined, opts);
  }

  /** agent-info (ember-ga only; the reference answers "Unknown command"). */
  agentInfo(opts?: CallOptions): Promise<AgentInfo> {
    return this.pcall('agent-info', undefined, opts);
  }

  /**
   * agent-shutdown: the agent exits once it answered (its supervisor restarts it). Not over
   * qemu-ga: its guest-shutdown powers the guest off.
   */
  async shutdown(opts?: CallOptions): Promise<void> {
    await this.pcall('agent-shutdown', undefined, opts);
  }

  /** sysinfo: uname, uptime, load, memory, users, disks (the library's systemInfo(), as the agent gathers it). */
  systemInfo(opts?: CallOptions): Promise<SysInfo> {
    return this.pcall('sysinfo', undefined, opts);
  }

  /**
   * qemu-ga only: runs `path` with `args` in the guest and waits for it to exit (guest-exec,
   * then guest-exec-status polled), with its exit status and output.
   */
  exec(path: string, args: string[] = [], o: ExecOptions = {}): Promise<ExecResult> {
    if (!this.qgaCommands) return Promise.reject(this.onlyQemuGa('exec', 'guest-exec and guest-exec-status'));
    return this.qgaCommands.exec(path, args, o);
  }

  /** A phoenix command, whatever call() routes to (over qemu-ga: ENOTSUP, see request()). */
  private pcall<T>(command: CommandName, args: Record<string, unknown> | undefined, opts?: CallOptions): Promise<T> {
    return this.callWith<T>(command, args, opts ?? {});
  }

  /** Every phoenix request goes through here: over qemu-ga it fails, naming the command. */
  protected override request<T>(
    command: string,
    build: (tag: string) => string,
    opts: CallOptions,
    how?: { ascii?: boolean; decodeRead?: boolean; exactInts?: boolean },
  ): Promise<T> {
    const no = this.onlyPhoenix(command, command);
    return no ? Promise.reject(no) : super.request<T>(command, build, opts, how);
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
    return this.pcall(
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
  async fileWrite(handle: number, data: Buffer, eof = false, opts: CallOptions = {}): Promise<void> {
    if (!Number.isSafeInteger(handle)) {
      await this.pcall('file-write', { handle_id: handle, bufb64: data.toString('base64'), eof }, opts);
      return;
    }
    // Built around the base64 text, which needs no JSON escaping: no JSON pass over the payload.
    await this.request(
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
  async fileClose(
    handle: number,
    o: { discard?: boolean; fsync?: boolean; md5?: string } = {},
    opts?: CallOptions,
  ): Promise<void> {
    await this.pcall(
      'file-close',
      compact({ handle_id: handle, discard: o.discard || undefined, fsync: o.fsync || undefined, md5: o.md5 }),
      opts,
    );
  }

  /**
   * get-file-md5sum: lowercase hex (the library's md5File). Over qemu-ga, which has no md5, the
   * file is read through the agent and hashed here (each read with the client's timeout).
   */
  async md5File(path: string, opts?: CallOptions): Promise<string> {
    if (this.qmpConn) return (await guestMd5(this, path)).md5;
    return this.pcall('get-file-md5sum', { path }, opts);
  }

  /**
   * file-stat (lstat; the library's statFile). Numbers are JSON.parse's, exact up to 2^53; with
   * `exact: true` the 64-bit fields are Int64 (a bigint past 2^53: an overlayfs inode number
   * with xino, say).
   */
  statFile(path: string, opts: CallOptions & { exact: true }): Promise<ExactFileStat>;
  statFile(path: string, opts?: CallOptions & { exact?: false }): Promise<FileStat>;
  statFile(path: string, opts: CallOptions & { exact?: boolean } = {}): Promise<FileStat | ExactFileStat> {
    return this.callWith('file-stat', { path }, opts, { exactInts: opts.exact === true });
  }

  /** file-chmod: the mode bits of `path` (as fs.chmod; the library has none of its own). */
  async chmod(path: string, perm: number, opts?: CallOptions): Promise<void> {
    await this.pcall('file-chmod', { path, perm }, opts);
  }

  /** file-chown (as fs.chown). */
  async chown(path: string, uid: number, gid: number, opts?: CallOptions): Promise<void> {
    await this.pcall('file-chown', { path, uid, gid }, opts);
  }

  /** directory-create (the library's mkdirAll): creates missing parents too (default perm 0o755). */
  async mkdirAll(path: string, perm?: number, opts?: CallOptions): Promise<void> {
    await this.pcall('directory-create', compact({ path, perm }), opts);
  }

  /**
   * directory-list (the library's listDirectory): the entries sorted by name, at most n (0 =
   * all); `exact` as for statFile().
   */
  listDirectory(path: string, n: number | undefined, opts: CallOptions & { exact: true }): Promise<ExactFileStat[]>;
  listDirectory(path: string, n?: number, opts?: CallOptions & { exact?: false }): Promise<FileStat[]>;
  listDirectory(
    path: string,
    n?: number,
    opts: CallOptions & { exact?: boolean } = {},
  ): Promise<FileStat[] | ExactFileStat[]> {
    return this.callWith('directory-list', compact({ path, n }), opts, { exactInts: opts.exact === true });
  }

  /**
   * fs-freeze. ember-ga: `mountpoints` freezes just those, in order; `timeout` (seconds) thaws
   * by itself if no fs-unfreeze comes in time. Over qemu-ga: guest-fsfreeze-freeze, or
   * guest-fsfreeze-freeze-list with `mountpoints`; no `timeout` there. Resolves with what the
   * protocol tells of the library's FreezeOutcome: over qemu-ga `count`, how many filesystems
   * this call froze; phoenix's fs-freeze answers only `true`, so over it `count` is absent.
   */
  async freeze(o: { mountpoints?: string[]; timeout?: number } = {}, opts?: CallOptions): Promise<GuestFreezeResult> {
    if (this.qmpConn) {
      if (o.timeout !== undefined)
        throw hostError('ENOTSUP', "freeze: a timeout: phoenix's protocol only, qemu-ga's has no equivalent");
      return { count: await this.qga.fsfreezeFreeze(o.mountpoints?.length ? o.mountpoints : undefined, opts) };
    }
    const args = compact({ mountpoints: o.mountpoints?.length ? o.mountpoints : undefined, timeout: o.timeout });
    await this.pcall('fs-freeze', Object.keys(args).length ? args : undefined, opts);
    return {};
  }

  /** fs-unfreeze (over qemu-ga guest-fsfreeze-thaw, whose `count` says how many it thawed). */
  async thaw(opts?: CallOptions): Promise<GuestFreezeResult> {
    if (this.qmpConn) return { count: await this.qga.fsfreezeThaw(opts) };
    await this.pcall('fs-unfreeze', undefined, opts);
    return {};
  }

  /** get-freeze-status: true while frozen (over qemu-ga: guest-fsfreeze-status). */
  async frozen(opts?: CallOptions): Promise<boolean> {
    if (this.qmpConn) return (await this.qga.fsfreezeStatus(opts)) === 'frozen';
    return this.pcall('get-freeze-status', undefined, opts);
  }

  /**
   * get-netifaces: every link with its addresses, in the wire's shape (NetIface: flags as text,
   * addresses as CIDR strings), not the library's Link. Over qemu-ga, whose answer has another
   * shape: qga.networkInterfaces().
   */
  links(opts?: CallOptions): Promise<NetIface[]> {
    if (this.qmpConn)
      return Promise.reject(
        hostError(
          'ENOTSUP',
          "links: phoenix's protocol only; over qemu-ga's, qga.networkInterfaces() (guest-network-get-interfaces, another shape)",
          'get-netifaces',
        ),
      );
    return this.pcall('get-netifaces', undefined, opts);
  }

  /** ipaddr-add: `ip address add CIDR dev IFNAME`, as the library's addAddress({ ifname, cidr }). */
  async addAddress(spec: AddressSpec, opts?: CallOptions): Promise<void> {
    await this.pcall('ipaddr-add', addressArgs('addAddress', spec), opts);
  }

  /** ipaddr-del: `ip address del CIDR dev IFNAME`. */
  async deleteAddress(spec: AddressSpec, opts?: CallOptions): Promise<void> {
    await this.pcall('ipaddr-del', addressArgs('deleteAddress', spec), opts);
  }

  /** net-iface-up: `ip link set dev IFNAME up`. */
  async setLinkUp(ifname: string, opts?: CallOptions): Promise<void> {
    await this.pcall('net-iface-up', { ifname }, opts);
  }

  /** net-iface-down: `ip link set dev IFNAME down`. */
  async setLinkDown(ifname: string, opts?: CallOptions): Promise<void> {
    await this.pcall('net-iface-down', { ifname }, opts);
  }

  /**
   * get-route-list: the main table; `family` 4 or 6 limits to IPv4 or IPv6 (default 0: both),
   * as in the library's routes() (the wire's AF_INET 2 / AF_INET6 10 are the client's business).
   */
  routes(opts: CallOptions & { family?: 0 | 4 | 6 } = {}): Promise<GuestRoute[]> {
    const { family, ...call } = opts;
    const af = WIRE_FAMILY[family ?? 0];
    if (af === undefined)
      return Promise.reject(new RangeError(`family must be 4, 6 or 0 (both), got ${JSON.stringify(family)}`));
    return this.pcall('get-route-list', { family: af }, call);
  }

  /** route-add: `ip route add DST [via GATEWAY] [dev IFNAME] [src SRC] [scope S]`. */
  async addRoute(r: GuestRouteSpec, opts?: CallOptions): Promise<void> {
    await this.pcall('route-add', routeArgs(r), opts);
  }

  /** route-del: `ip route del DST [via GATEWAY] [dev IFNAME] [src SRC] [scope S]`. */
  async deleteRoute(r: GuestRouteSpec, opts?: CallOptions): Promise<void> {
    await this.pcall('route-del', routeArgs(r), opts);
  }

  // ---- copies ----

  /**
   * Copies a guest file to a local path (written under a temporary name, renamed on success;
   * nothing is left behind on failure unless keepPartial) or into a Writable. Unless verify is
   * false, verified against the md5 of what the agent read (features().readMd5), else against
   * get-file-md5sum; over qemu-ga against a second read of the guest file (copy-qga.ts). The
   * Transfer emits 'progress' ({bytes, total}).
   * Throws at once (TypeError, RangeError) when chunkSize or inFlight is not a whole number >= 1.
   */
  copyFrom(guestPath: string, dest: string | Writable, opts: CopyFromOptions = {}): Transfer {
    checkCopyOptions(opts);
    if (this.qmpConn) return new Transfer((t) => copyFromQga(this, guestPath, dest, opts, t));
    return new Transfer((t) => copyFrom(this, guestPath, dest, opts, t));
  }

  /**
   * Copies a local file or a Readable to a guest path (created or truncated, `perm` default
   * 0o644), verified against get-file-md5sum unless verify is false; over qemu-ga written in
   * place and verified by reading it back (no perm, force, atomic or fsync there: ENOTSUP).
   * Throws like copyFrom.
   */
  copyTo(src: string | Readable, guestPath: string, opts: CopyToOptions = {}): Transfer {
    checkCopyOptions(opts);
    if (this.qmpConn) return new Transfer((t) => copyToQga(this, src, guestPath, opts, t));
    return new Transfer((t) => copyTo(this, src, guestPath, opts, t));
  }
}

function compact(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/** The library's families (4, 6; 0 both) as get-route-list's AF_* numbers. */
const WIRE_FAMILY: Record<number, number> = { 0: 0, 4: 2, 6: 10 };

/** ipaddr-add / ipaddr-del arguments; a TypeError for anything but `{ ifname, cidr }` strings. */
function addressArgs(op: string, spec: AddressSpec): { ip: string; ifname: string } {
  if (spec === null || typeof spec !== 'object' || typeof spec.ifname !== 'string' || typeof spec.cidr !== 'string')
    throw new TypeError(`${op} takes { ifname, cidr }, two strings, got ${describe(spec)}`);
  return { ip: spec.cidr, ifname: spec.ifname };
}

function describe(v: unknown): string {
  return typeof v === 'string'
    ? JSON.stringify(v)
    : typeof v === 'object' && v !== null
      ? JSON.stringify(v)
      : String(v);
}

function routeArgs(r: GuestRouteSpec): Record<string, unknown> {
  return compact({ dst: r.dst, gateway: r.gateway, ifname: r.ifname, src: r.src, scope: r.scope });
}
