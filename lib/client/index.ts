// The host side (`ember-ga/client`): GuestAgent and file copies over a socket, a pty or QEMU's
// chardev. Pure TypeScript: it loads with no native addon, on any OS Node runs on.
export { GuestAgent, type GuestAgentOptions, type CallOptions } from './guest-agent';
export type { Protocol, ExecOptions } from './guest-agent';
export { QmpConnection, type QmpAnswer } from './qmp-connection';
export type { QemuGaCommands, QgaReadResult } from './qemu-ga-commands';
export type * from './qemu-ga-types';
export { GuestAgentError } from './errors';
export {
  Transfer,
  type CopyOptions,
  type CopyFromOptions,
  type CopyToOptions,
  type CopyResult,
  type Progress,
} from './copy';
export type {
  AddressSpec,
  AgentInfo,
  GuestFreezeResult,
  ExactFileStat,
  Features,
  NetIface,
  ReadResult,
  GuestRoute,
  GuestRouteSpec,
  SysInfo,
} from './types';
