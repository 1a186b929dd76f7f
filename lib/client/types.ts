// The shapes of the agent's answers as the client returns them: lib/protocols/phoenix/answers.ts declares them
// once for the agent and the client; here, what the client makes of them.
import type { FileStat as AgentFileStat, GoStat as AgentGoStat, Int64 } from '../protocols/phoenix/answers';

export type { AgentInfo, GuestRoute, NetIface, SysInfo } from '../protocols/phoenix/answers';

/** What the client found out about the agent on the other end (GuestAgent.features()). */
export interface Features {
  /** The protocol spoken (GuestAgentOptions.protocol). */
  protocol: 'phoenix' | 'qemu-ga';
  /**
   * ember-ga (answers agent-info, or over qemu-ga ember-ga-info); false for phoenix-guest-agent
   * 0.7.1, qemu-guest-agent and other agents.
   */
  emberGa: boolean;
  /** ping's answer; over qemu-ga guest-info's `version` (the qemu-ga version the agent speaks). */
  version: string;
  /** Over qemu-ga, an ember-ga's own version (ember-ga-info). */
  emberVersion?: string;
  /** Largest file-read `size` honoured (4096 for the reference protocol). */
  maxReadSize: number;
  /** Longest request line the agent accepts. */
  maxLineBytes: number;
  /**
   * Requests on one handle run in request order, so a copy may keep several in flight and
   * file-write's last chunk may carry data with eof:true. False for the reference, which runs
   * requests concurrently (it could reorder them) and drops data sent with eof:true.
   */
  orderedHandles: boolean;
  /**
   * file-open `atomic` (write beside the file, rename into place on close) and the file-close
   * options `discard`, `fsync` and `md5`. Agents without them ignore unknown arguments, so a
   * client must not send them there.
   */
  atomicWrite: boolean;
  /**
   * file-open `md5` (mode "r"): the agent hashes what its reads send, and the file-read answer
   * at end of file carries that md5, which checks a download of a file that changes meanwhile
   * (get-file-md5sum would hash another version of it) or of a device (which it refuses).
   */
  readMd5: boolean;
}

export type { Timespec } from '../protocols/phoenix/answers';

/**
 * file-stat (from lstat) and the entries of directory-list, as the client hands them over: the
 * agent's types with JSON.parse's numbers, exact up to 2^53 (the wire carries every digit).
 */
export type FileStat = AgentFileStat<number>;
export type GoStat = AgentGoStat<number>;
/** file-stat as stat(path, { exact: true }) gives it: 64-bit fields exact (Int64: a bigint past 2^53). */
export type ExactFileStat = AgentFileStat<Int64>;

/** ipaddr-add / ipaddr-del: the library's `{ ifname, cidr }` (named, so the two strings cannot swap). */
export type { AddressSpec } from '../net';

/**
 * What freeze() and thaw() learn: as much of the library's FreezeOutcome as the protocol tells.
 * phoenix's fs-freeze and fs-unfreeze answer only `true`, so over it the object is empty.
 */
export interface GuestFreezeResult {
  /** qemu-ga: how many filesystems the call froze (thawed): the length of the library's `frozen`. */
  count?: number;
}

/** route-add / route-del, like `ip route add|del DST via GATEWAY dev IFNAME [src SRC] [scope S]`. */
export interface GuestRouteSpec {
  ifname?: string;
  dst: string;
  gateway?: string;
  src?: string;
  scope?: number;
}

/** file-read's answer, decoded. */
export interface ReadResult {
  data: Buffer;
  eof: boolean;
  /** At end of file, on a handle opened with `md5`: the md5 of every byte the reads sent. */
  md5?: string;
}
