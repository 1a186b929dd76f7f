// The package's root export: the public libraries, each also its own subpath (ember-ga/files,
// ember-ga/net, ember-ga/freeze, ember-ga/sysinfo, ember-ga/system, ember-ga/exec, ember-ga/client). The agent's insides
// (framing, dispatch, transports, the registry) are not API: the agent is the ember-ga command.
export * from './files';
export * from './net';
export * from './freeze';
export * as sysinfo from './sysinfo';
export * as system from './system';
// exec's ExecOptions is left to ember-ga/exec: the client's ExecOptions has the name at the root.
export {
  exec,
  ExecTable,
  ExecLimitError,
  ExecProcess,
  OutputBudget,
  DEFAULT_MAX_OUTPUT,
  type ExecResult,
  type CapturedOutput,
  type ExecLimits,
  type ExecStatus,
} from './exec';
export * from './client';
export { AbortError, SystemError, errnoName } from './errors';
export { VERSION } from './version';
