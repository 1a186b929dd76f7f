// The addon's file bindings (native/fileio.cc), typed.
import { bindings } from '../native';

export interface FileBindings {
  /** md5 of the whole file, 32 lowercase hex digits (thread pool; large reads, read-ahead). */
  md5File(path: string): Promise<string>;
  /** One read into buffer at offset (-1: at the current position); 0 at end of file. */
  pread(fd: number, buffer: Buffer, offset: number, path: string): Promise<number>;
  /** Synchronous page-cache-only read (RWF_NOWAIT): bytes read, or -errno when it would block or is unsupported. */
  preadCached(fd: number, buffer: Buffer, offset: number): number;
  /** Writes the whole buffer at offset (-1: at the current position); resolves with its length. */
  pwrite(fd: number, buffer: Buffer, offset: number, path: string): Promise<number>;
  /** Makes every stream read or write (offset -1), waiting now or later, fail with ECANCELED. For exit. */
  cancelStreams(): void;
}

export const fileio = bindings<FileBindings>();
