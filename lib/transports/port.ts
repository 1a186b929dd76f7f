// The virtio-serial port (or a pty standing in for it), through the addon's event-loop driver.
import { native, type NativePort, type PortEvent } from '../native';
import { toSystemError } from '../errors';
import type { Logger } from '../log';
import type { Transport, TransportSink } from './transport';

export class PortTransport implements Transport {
  private port: NativePort | undefined;
  private drainWaiters: (() => void)[] = [];

  constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {}

  get description(): string {
    return `port ${this.path}`;
  }

  async start(sink: TransportSink): Promise<void> {
    try {
      this.port = new native.Port(this.path, (type: PortEvent, arg?: Buffer | Error) => {
        switch (type) {
          case 'data':
            sink.data(arg as Buffer);
            break;
          case 'hangup':
            this.log.info(`host disconnected from ${this.path}; waiting for it`);
            sink.reset();
            break;
          case 'connect':
            this.log.info(`host connected on ${this.path}`);
            break;
          case 'reopen':
            this.log.info(`${this.path} now names another device; reopened it`);
            sink.reset();
            break;
          case 'drain':
            this.wakeDrainWaiters();
            sink.drain();
            break;
          case 'error':
            this.log.warn((arg as Error).message);
            break;
        }
      });
    } catch (e) {
      throw toSystemError(e);
    }
  }

  write(line: string | Buffer): void {
    this.port?.write(typeof line === 'string' ? Buffer.from(line, 'utf8') : line);
  }

  get queued(): number {
    return this.port?.queued ?? 0;
  }

  pause(): void {
    this.port?.pause();
  }

  resume(): void {
    this.port?.resume();
  }

  flush(timeoutMs: number): Promise<void> {
    if (!this.port || this.port.queued === 0 || !this.port.connected) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.drainWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private wakeDrainWaiters(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  async close(): Promise<void> {
    this.port?.close();
    this.port = undefined;
    this.wakeDrainWaiters();
  }
}
