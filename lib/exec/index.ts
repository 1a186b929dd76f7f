// Running programs, usable without the agent: exec() starts one and captures its output with a
// cap; ExecTable tracks a host's processes until their status is collected, within limits.
export {
  DEFAULT_MAX_OUTPUT,
  ExecProcess,
  OutputBudget,
  exec,
  type CapturedOutput,
  type ExecOptions,
  type ExecResult,
  type ExecString,
} from './process';
export { ExecLimitError, ExecTable, type ExecLimits, type ExecStatus } from './table';
