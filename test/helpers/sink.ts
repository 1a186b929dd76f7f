// A TransportSink that records what a transport tells it, for transport tests.
import type { SessionOutput, SessionSink, TransportSink } from '../../lib/transports/transport';

export class RecordedSession implements SessionSink {
  readonly received: Buffer[] = [];
  ended = false;
  /** Requests in flight, as the test pretends: settled() waits until release() or end(). */
  busy = false;
  private waiters: (() => void)[] = [];

  constructor(
    readonly output: SessionOutput,
    private readonly events: string[],
  ) {}

  data(chunk: Buffer): void {
    this.received.push(chunk);
  }

  reset(): void {
    this.events.push('reset');
  }

  settled(): Promise<void> {
    if (!this.busy || this.ended) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  release(): void {
    this.busy = false;
    for (const w of this.waiters.splice(0)) w();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.events.push('end');
    this.release();
  }
}

/** Every session begun, in order, and the events heard: 'begin', 'reset', 'end'. */
export class RecordingSink implements TransportSink {
  readonly sessions: RecordedSession[] = [];
  readonly events: string[] = [];

  begin(output: SessionOutput): RecordedSession {
    this.events.push('begin');
    const s = new RecordedSession(output, this.events);
    this.sessions.push(s);
    return s;
  }

  drain(): void {}
}
