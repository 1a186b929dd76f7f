// The package's library API: the agent pieces and the native bindings, with types.
export { Agent, type AgentOptions } from './agent';
export { allCommands } from './commands';
export { defaultConfig, type AgentConfig, type Context } from './context';
export { AgentError, SystemError, errnoName } from './errors';
export * from './freeze'; // freeze, thaw, Freezer, selectFreezable, parseMountTable...
export { LineFramer, MAX_LINE_BYTES, encodeError, encodeReturn, parseRequest } from './protocol';
export { Registry, defineCommand, type Command, type ArgSpec, type Schema } from './registry';
export { PortTransport } from './transports/port';
export { UnixTransport } from './transports/unix';
export { findPort } from './transports/find-port';
export type { Transport, TransportSink } from './transports/transport';
export { VERSION } from './version';
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
