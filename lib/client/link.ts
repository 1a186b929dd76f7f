// The byte pipe to the agent, for the three things QEMU hands the host for a virtio-serial port:
// a unix socket QEMU listens on (chardev socket, server=on: we connect), a unix socket we listen
// on (server=off: QEMU connects to us), or a pty / character device (chardev pty: we open it).
// A Link is one connection; a Connector makes a new one each time the GuestAgent (re)connects.
import * as fs from 'fs';
import * as net from 'net';
import { errnoMessage, SystemError, toSystemError } from '../errors';
import type { Addon, NativePort, PortEvent } from '../native';
import { hostError } from './errors';

export interface LinkHandlers {
  data(chunk: Buffer): void;
  /** The connection ended (peer closed, hang-up, error); called once. */
  close(reason: Error | undefined): void;
}

export interface Link {
  /** Queues a request line; `ascii`: it is known to be ASCII (written as latin1, no UTF-8 scan). */
  write(data: string, ascii?: boolean): void;
  /** Bytes accepted by write() but not yet taken by the kernel. */
  readonly queued: number;
  /** Ends the connection; the close handler is not called. */
  destroy(): void;
}

export interface Connector {
  readonly description: string;
  /**
   * Why a connection that got nothing at all may be silent, for a timeout's message: a unix
   * socket is served one connection at a time, so a connect that succeeds may still wait.
   */
  readonly silenceHint?: string;
  connect(handlers: LinkHandlers, timeoutMs: number): Promise<Link>;
  /** Releases what outlives a connection (the listening socket). */
  close(): void;
}

export type Target = { socket: string } | { listen: string } | { device: string };

/** A socket path as the agent's --listen takes it (`unix:PATH`), or plain: the path. */
export function socketPath(p: string): string {
  return p.startsWith('unix:') ? p.slice(5) : p;
}

export function connectorFor(target: Target): Connector {
  if ('socket' in target) return new SocketConnector(socketPath(target.socket));
  if ('listen' in target) return new ListenConnector(socketPath(target.listen));
  if ('device' in target) return new DeviceConnector(target.device);
  throw new TypeError('GuestAgent needs one of socket, listen or device');
}

function socketLink(sock: net.Socket, handlers: LinkHandlers): Link {
  let done = false;
  let error: Error | undefined;
  sock.setNoDelay?.(true);
  sock.on('data', (d: Buffer) => handlers.data(d));
  sock.on('error', (e) => (error = e));
  sock.on('close', () => {
    if (done) return;
    done = true;
    handlers.close(error);
  });
  return {
    write: (data, ascii) => void sock.write(data, ascii ? 'latin1' : 'utf8'),
    get queued() {
      return sock.writableLength;
    },
    destroy: () => {
      done = true;
      sock.destroy();
    },
  };
}

function connectFailure(what: string, e: unknown): Error {
  const err = toSystemError(e);
  if (err instanceof SystemError)
    return hostError(err.code, `cannot connect to ${what}: ${errnoMessage(err.errno)}`, undefined, e);
  return hostError('ENOTCONN', `cannot connect to ${what}: ${(e as Error).message}`, undefined, e);
}

class SocketConnector implements Connector {
  constructor(readonly path: string) {}

  get description(): string {
    return `unix:${this.path}`;
  }

  // The kernel accepts a connection the agent (or QEMU, for its chardev socket) has not taken
  // yet: both serve one at a time, and the next waits, connected and unanswered.
  get silenceHint(): string {
    return `nothing came from ${this.description} since connecting: it serves one connection at a time, so another host (a second ember-ga-ctl, libvirt) may hold it`;
  }

  connect(handlers: LinkHandlers, timeoutMs: number): Promise<Link> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(hostError('ETIMEDOUT', `cannot connect to ${this.description}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(connectFailure(this.description, e));
      });
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(socketLink(sock, handlers));
      });
    });
  }

  close(): void {}
}

/** Listens on a unix socket and takes the connections QEMU makes to it, one at a time. */
class ListenConnector implements Connector {
  private server: net.Server | undefined;
  private ready: Promise<void> | undefined;
  private readonly accepted: net.Socket[] = [];
  private waiter: ((s: net.Socket) => void) | undefined;
  private cancelWait: ((e: Error) => void) | undefined;
  private cancelListen: ((e: Error) => void) | undefined;

  constructor(readonly path: string) {}

  get description(): string {
    return `unix-listen:${this.path}`;
  }

  private listen(): Promise<void> {
    this.ready ??= new Promise<void>((resolve, reject) => {
      this.cancelListen = reject;
      try {
        if (fs.lstatSync(this.path).isSocket()) fs.unlinkSync(this.path);
      } catch {
        // nothing there
      }
      const server = net.createServer((sock) => {
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = undefined;
          w(sock);
        } else {
          this.accepted.push(sock);
          sock.once('close', () => this.accepted.splice(this.accepted.indexOf(sock) >>> 0, 1));
        }
      });
      this.server = server;
      server.once('error', (e) =>
        reject(
          hostError((e as NodeJS.ErrnoException).code ?? 'EADDRINUSE', `cannot listen on ${this.path}: ${e.message}`),
        ),
      );
      server.listen(this.path, () => {
        server.on('error', () => {}); // later accept errors: the next connect() times out or succeeds
        resolve();
      });
    });
    return this.ready;
  }

  async connect(handlers: LinkHandlers, timeoutMs: number): Promise<Link> {
    await this.listen();
    if (!this.server) throw hostError('ENOTCONN', `stopped listening on ${this.path}: the client was closed`);
    const ready = this.accepted.shift();
    if (ready) return socketLink(ready, handlers);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = this.cancelWait = undefined;
        reject(hostError('ETIMEDOUT', `nobody connected to ${this.path} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (sock) => {
        clearTimeout(timer);
        this.cancelWait = undefined;
        resolve(socketLink(sock, handlers));
      };
      this.cancelWait = (e) => {
        clearTimeout(timer);
        this.waiter = this.cancelWait = undefined;
        reject(e);
      };
    });
  }

  close(): void {
    const closed = hostError('ENOTCONN', `stopped listening on ${this.path}: the client was closed`);
    this.cancelListen?.(closed); // no effect once listening
    this.cancelListen = undefined;
    this.cancelWait?.(closed);
    for (const s of this.accepted.splice(0)) s.destroy();
    this.server?.close();
    this.server = undefined;
    this.ready = undefined;
    try {
      fs.unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** Why a device target that is `st` is refused ("a regular file, not a pty or character device"), or undefined for a character device. */
export function notADevice(st: fs.Stats): string | undefined {
  if (st.isCharacterDevice()) return undefined;
  const kind = st.isFile()
    ? 'a regular file'
    : st.isDirectory()
      ? 'a directory'
      : st.isSocket()
        ? 'a unix socket'
        : st.isFIFO()
          ? 'a FIFO'
          : st.isBlockDevice()
            ? 'a block device'
            : 'not a device';
  return `${kind}, not a pty or character device`;
}

/**
 * A pty (QEMU's chardev pty) or another character device, through the addon's event-loop
 * driver (libuv would read a character device with blocking calls on its thread pool). A pty is
 * switched to raw mode. A hang-up (QEMU went away) ends the connection; connecting again waits
 * until the device is there again.
 */
class DeviceConnector implements Connector {
  constructor(readonly path: string) {}

  get description(): string {
    return this.path;
  }

  async connect(handlers: LinkHandlers, timeoutMs: number): Promise<Link> {
    // Opened for writing, a regular file would get the requests written over its first bytes.
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(this.path);
    } catch (e) {
      throw connectFailure(this.path, e);
    }
    const wrong = notADevice(st);
    if (wrong) throw hostError('ENOTTY', `cannot connect to ${this.path}: ${wrong}`);
    // Only a device needs the addon (its port driver); sockets, and so every other use of the
    // client, work where it is not installed (a host on macOS, say).
    let Port: Addon['Port'];
    try {
      Port = (await import('../native')).native.Port;
    } catch (e) {
      throw hostError(
        'ENOTSUP',
        `cannot open ${this.path}: a device needs ember-ga's native addon, which did not load here (${(e as Error).message.split('\n')[0]}); use a socket instead`,
      );
    }
    return new Promise((resolve, reject) => {
      let port: NativePort | undefined;
      let state: 'opening' | 'open' | 'closed' = 'opening';
      let connectedEarly = false;
      let timer: NodeJS.Timeout | undefined;
      const link: Link = {
        write: (data, ascii) => void port?.write(Buffer.from(data, ascii ? 'latin1' : 'utf8')),
        get queued() {
          return port?.queued ?? 0;
        },
        destroy: () => {
          state = 'closed';
          port?.close();
        },
      };
      const opened = () => {
        clearTimeout(timer);
        state = 'open';
        resolve(link);
      };
      const onEvent = (type: PortEvent, arg?: Buffer | Error) => {
        if (state === 'closed') return;
        if (type === 'data' && state === 'open') handlers.data(arg as Buffer);
        else if (type === 'connect') {
          if (port === undefined)
            connectedEarly = true; // emitted from inside the constructor
          else if (state === 'opening') opened();
        } else if (type === 'hangup' && state === 'open') {
          state = 'closed';
          port?.close();
          handlers.close(hostError('ECONNRESET', `${this.path}: the other side hung up`));
        }
      };
      try {
        port = new Port(this.path, onEvent);
      } catch (e) {
        reject(connectFailure(this.path, e));
        return;
      }
      if (connectedEarly || port.connected) {
        opened();
        return;
      }
      timer = setTimeout(() => {
        state = 'closed';
        port?.close();
        reject(hostError('ETIMEDOUT', `cannot connect to ${this.path}: it stayed hung up for ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }

  close(): void {}
}
