// Library API of file I/O, usable without the agent (`ember-ga/files`): chunked reads and
// writes off the main thread, atomic replacement, md5, stat and listings. The agent's wire
// shapes (Go's stat fields) are not part of it.
export { openFile, fopenFile, isFopenMode } from './open';
export { GuestFile, DEFAULT_READ_SIZE, type FileKind, type FullRead, type HandleIo } from './handle';
export type { Access, CloseOptions, FopenMode, OpenMode, OpenOptions } from './options';
export { md5File, type Md5Options } from './md5';
export { statFile, listDirectory, mkdirAll, type GuestStats, type ListOptions } from './stat';
