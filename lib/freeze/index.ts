// Library API of filesystem freeze, usable without the agent: freeze/thaw of one mount point,
// the default mount selection, and Freezer (all-or-nothing freeze of a list, auto-thaw).
export { freeze, thaw, type FreezeResult } from './ioctl';
export { Freezer, type FreezeOps, type FreezerOptions } from './freezer';
export { classifyMounts, realDevice, selectFreezable, type DeviceResolver, type MountChoice } from './mounts';
export { parseMountTable, unescapeMountField, type MountEntry } from '../mounts';
