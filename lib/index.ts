// The package's library API: the agent pieces and the native bindings, with types.
export { Agent, type AgentOptions } from './agent';
export { allCommands } from './commands';
export { defaultConfig, type AgentConfig, type Context } from './context';
export { AbortError, AgentError, SystemError, errnoName } from './errors';
export * from './freeze'; // freeze, thaw, Freezer, selectFreezable, parseMountTable...
export { LineFramer, MAX_LINE_BYTES } from './wire/framing';
export { encodeError, encodeRawReturn, encodeReturn } from './wire/answer';
export { parseRequest } from './wire/request';
export { Registry, defineCommand, type Command, type ArgSpec, type Schema } from './registry';
export { PortTransport } from './transports/port';
export { UnixTransport } from './transports/unix';
export { findPort } from './transports/find-port';
export type { Transport, TransportSink } from './transports/transport';
export { VERSION } from './version';
export { md5File, type Md5Options } from './files/md5';
export { FileHandle, DEFAULT_READ_SIZE, type FullRead, type HandleIo } from './files/handle';
export { openFile, fopenFile, isFopenMode } from './files/open';
export type { Access, CloseOptions, FopenMode, OpenMode, OpenOptions } from './files/options';
export {
  statFile,
  listDirectory,
  mkdirAll,
  type FileStat,
  type GoStat,
  type Int64,
  type ListOptions,
  type Timespec,
} from './files/stat';
export { GuestAgent, type GuestAgentOptions, type CallOptions } from './client/guest-agent';
export { GuestAgentError } from './client/errors';
export {
  Transfer,
  type CopyOptions,
  type CopyFromOptions,
  type CopyToOptions,
  type CopyResult,
  type Progress,
} from './client/copy';
export type {
  AgentInfo,
  ExactFileStat,
  Features,
  NetIface,
  ReadResult,
  GuestRoute,
  GuestRouteSpec,
  SysInfo,
} from './client/types';
export * as sysinfo from './sysinfo';
export {
  links,
  addresses,
  routes,
  addAddress,
  deleteAddress,
  setLinkUp,
  setLinkDown,
  addRoute,
  deleteRoute,
  NetInputError,
  type Link,
  type Address,
  type Route,
  type RouteSpec,
  type NetOptions,
} from './net';
