// Typed loader of the C++ addon (node-gyp-build: build/Release when built from source, else the
// prebuild for this platform shipped in prebuilds/). Loaded once, at start-up.
import * as path from 'path';
import load from 'node-gyp-build';

export type PortEvent = 'data' | 'hangup' | 'connect' | 'reopen' | 'drain' | 'error';

export interface NativePort {
  /** Writes what the kernel takes now and queues the rest; returns the bytes still queued. */
  write(data: Buffer): number;
  pause(): void;
  resume(): void;
  close(): void;
  readonly queued: number;
  readonly connected: boolean;
}

/** Watches a stream socket for its peer's close (not a mere shutdown of its sending side). */
export interface NativeHangupWatch {
  /** Stops watching; the socket stays open. */
  close(): void;
}

export interface NativeBinding {
  Port: new (path: string, onEvent: (type: PortEvent, arg?: Buffer | Error) => void) => NativePort;
  /** onHangup runs once, when the peer of the socket at fd has closed it (or it is in error). */
  HangupWatch: new (fd: number, onHangup: () => void) => NativeHangupWatch;
}

export const native = load(path.join(__dirname, '..', '..')) as NativeBinding;

/**
 * The addon's exports typed as T. Each concern (freeze, netlink, md5 and file I/O) declares the
 * interface of its own bindings in its own module and reads them through this.
 */
export function bindings<T>(): T {
  return native as unknown as T;
}
