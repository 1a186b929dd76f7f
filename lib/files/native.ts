// The addon's file bindings (native/fileio.cc), typed.
import { bindings } from '../native';

export interface FileBindings {
  /**
   * md5 of the whole file, 32 lowercase hex digits (a thread of its own; large reads, read-ahead).
   * cancel() stops it within a chunk (the promise rejects with ECANCELED); after the end it does nothing.
   */
  md5File(path: string): { promise: Promise<string>; cancel(): void };
  /**
   * One read into buffer at offset (-1: at the current position); 0 at end of file. The bytes
   * read are hashed into `md5`, when given, on the pool thread.
   */
  pread(fd: number, buffer: Buffer, offset: number, path: string, md5?: NativeMd5): Promise<number>;
  /** Synchronous page-cache-only read (RWF_NOWAIT): bytes read, or -errno when it would block or is unsupported. */
  preadCached(fd: number, buffer: Buffer, offset: number): number;
  /** The base64 text (standard alphabet, padded) of buffer's first `length` bytes, as bytes; synchronous (OpenSSL's encoder). */
  base64(buffer: Buffer, length: number): Buffer;
  /**
   * Decodes src[start, end) as strict base64 (standard alphabet, '=' padding only at the end, no
   * whitespace or line breaks) into dst, which holds the decoded length; synchronous
   * (OpenSSL's decoder). The decoded length, or -1 when the text is not strict base64.
   */
  base64Decode(src: Buffer, start: number, end: number, dst: Buffer): number;
  /** Writes the whole buffer at offset (-1: at the current position); resolves with its length. */
  pwrite(fd: number, buffer: Buffer, offset: number, path: string): Promise<number>;
  /** Names the file open at fd (an O_TMPFILE file) `path`, which must not exist yet (linkat). */
  linkFd(fd: number, path: string): Promise<void>;
  /** open(2)'s O_TMPFILE on this platform (with O_DIRECTORY, as <fcntl.h> defines it). */
  readonly O_TMPFILE: number;
  /**
   * Readiness of a pipe, FIFO or character device from the event loop, holding no thread. The
   * constructor throws (errno EPERM) for an fd epoll refuses. wait(writable) arms one call of
   * onReady (ready, hung up or in error); close() stops it for good (the fd stays open).
   */
  FdPoll: new (fd: number, onReady: () => void) => NativeFdPoll;
  /** A running md5 (OpenSSL's); calls on one must not overlap with a pread hashing into it. */
  Md5: new () => NativeMd5;
  /** Makes every stream read or write (offset -1), waiting now or later, fail with ECANCELED. For exit. */
  cancelStreams(): void;
  /**
   * Opens the directory at path (O_DIRECTORY: ENOTDIR from open for anything else) and reads the
   * names of its entries but "." and "..": `count` of them in byte order, each NUL-terminated, in
   * `names`. The caller closes fd. Rejects with syscall open or getdents64.
   */
  readDirectory(path: string): Promise<{ fd: number; names: Buffer; count: number }>;
  /**
   * lstat of each NUL-terminated name in names[start, end), relative to the directory open at fd:
   * STAT_WORDS words of raw values per name, the first 0 or the errno (native/dirlist.cc).
   */
  lstatAt(fd: number, names: Buffer, start: number, end: number): Promise<Uint32Array>;
  readonly STAT_WORDS: number;
}

export interface NativeMd5 {
  /** Hashes buffer's first `length` bytes, on the calling thread. */
  update(buffer: Buffer, length: number): void;
  /** The md5 of everything hashed so far, 32 lowercase hex digits; hashing may go on. */
  digest(): string;
}

export interface NativeFdPoll {
  wait(writable: boolean): void;
  close(): void;
}

export const fileio = bindings<FileBindings>();
