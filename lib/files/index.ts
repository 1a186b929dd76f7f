// Library API of file I/O, usable without the agent (`ember-ga/files`): chunked reads and
// writes off the main thread, atomic replacement, md5, stat and listings.
export { openFile, fopenFile, isFopenMode } from './open';
export { FileHandle, DEFAULT_READ_SIZE, type FullRead, type HandleIo } from './handle';
export type { Access, CloseOptions, FopenMode, OpenMode, OpenOptions } from './options';
export { md5File, type Md5Options } from './md5';
export {
  statFile,
  listDirectory,
  mkdirAll,
  type FileStat,
  type GoStat,
  type Int64,
  type ListOptions,
  type Timespec,
} from './stat';
