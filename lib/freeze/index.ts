// Library API of filesystem freeze, usable without the agent: freeze/thaw/fstrim of one mount point,
// the default mount selections, the fsfreeze hook, and Freezer (all-or-nothing freeze of a list,
// auto-thaw).
export { freeze, thaw, type FreezeResult } from './ioctl';
export { Freezer, type FreezeOps, type FreezerOptions } from './freezer';
export {
  classifyMounts,
  realDevice,
  selectFreezable,
  selectQemuGa,
  type DeviceResolver,
  type MountChoice,
  type SourceIsDirectory,
} from './mounts';
export { mountPathText, parseMountTable, unescapeMountField, type MountEntry, type MountPath } from '../mounts';
export { fstrim, type TrimResult } from './trim';
export {
  DEFAULT_FSFREEZE_HOOK,
  FsfreezeHookError,
  runFsfreezeHook,
  type FsfreezeHook,
  type FsfreezeHookAction,
} from './hook';
