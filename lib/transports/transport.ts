// What the agent needs of a connection to the host.
export interface TransportSink {
  /** Bytes from the host. */
  data(chunk: Buffer): void;
  /** The host went away or a new one arrived: drop any partial line. */
  reset(): void;
  /**
   * The host's session is over: a unix socket closed, the port now names another device, or
   * the port stayed hung up for the host-gone timeout (a brief hang-up is not the end of it).
   */
  hostGone(): void;
  /** The output queue emptied. */
  drain(): void;
  /** Resolves once every request read so far has been answered (for a host that half-closes). */
  settled(): Promise<void>;
}

export interface Transport {
  readonly description: string;
  start(sink: TransportSink): Promise<void>;
  /** Queues an answer line (text, or its bytes); never blocks. */
  write(line: string | Buffer): void;
  /** Bytes written but not yet taken by the kernel. */
  readonly queued: number;
  pause(): void;
  resume(): void;
  /** Resolves once queued output is written (or after timeoutMs). */
  flush(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
