// The ports the agent finds by name, followed as they come and go: a hot-plugged channel is
// served once the host has named it, and one that is unplugged is let go. sysfs sends no inotify
// events and a port's name arrives after its device node, so the watcher looks again every
// interval (a readdir and a small read per port: nothing an idle guest would notice).
import { findPorts, SYS_PORTS_DIR, type FoundPort } from './find-port';
import type { Logger } from '../log';

export interface PortWatchOptions {
  /** The port names to serve. */
  names: readonly string[];
  sysDir?: string;
  devDir?: string;
  /** How often to look again, in ms; 0: only once, at start. */
  intervalMs: number;
  log: Logger;
}

export interface PortWatchHandlers {
  /** Serve this port; a rejection (the port busy, its node not there yet) is retried at the next look. */
  add(port: FoundPort): Promise<void>;
  /** The port went away (or now has another name): stop serving it. */
  remove(port: FoundPort): Promise<void>;
}

const key = (p: FoundPort) => `${p.entry}\0${p.name}`;

export class PortWatcher {
  /** The ports being served, by entry and name. */
  private readonly served = new Map<string, FoundPort>();
  /** Why each port that could not be served failed last: logged once, not at every look. */
  private readonly failing = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private looking: Promise<void> = Promise.resolve();

  constructor(
    private readonly opts: PortWatchOptions,
    private readonly handlers: PortWatchHandlers,
  ) {}

  /** The ports served now. */
  get ports(): FoundPort[] {
    return [...this.served.values()];
  }

  /** Looks once (resolves when the ports found are served or have failed), then every interval. */
  async start(): Promise<void> {
    await this.look();
    this.schedule();
  }

  /** Stops looking; the ports stay served (the agent closes them when it stops). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.looking;
  }

  private schedule(): void {
    if (this.stopped || this.opts.intervalMs <= 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.look().then(() => this.schedule());
    }, this.opts.intervalMs);
  }

  /** One look: let go of the ports that are gone, serve the new ones. */
  look(): Promise<void> {
    this.looking = this.looking.then(() => this.lookNow());
    return this.looking;
  }

  private async lookNow(): Promise<void> {
    if (this.stopped) return;
    const { log } = this.opts;
    const found = findPorts(this.opts.names, this.opts.sysDir ?? SYS_PORTS_DIR, this.opts.devDir);
    const now = new Set(found.map(key));
    for (const [k, p] of this.served) {
      if (now.has(k)) continue;
      this.served.delete(k);
      log.info(`port ${p.name} (${p.entry}) went away: no longer serving ${p.path}`);
      try {
        await this.handlers.remove(p);
      } catch (e) {
        log.warn(`letting go of ${p.path}: ${(e as Error).message}`);
      }
    }
    for (const k of this.failing.keys()) if (!now.has(k)) this.failing.delete(k);
    for (const p of found) {
      const k = key(p);
      if (this.served.has(k) || this.stopped) continue;
      try {
        await this.handlers.add(p);
        this.served.set(k, p);
        if (this.failing.delete(k)) log.info(`port ${p.name} (${p.path}) served at last`);
      } catch (e) {
        const why = (e as Error).message;
        if (this.failing.get(k) !== why) {
          const again = this.opts.intervalMs > 0 ? `; trying again every ${this.opts.intervalMs / 1000} s` : '';
          log.warn(`cannot serve port ${p.name} (${p.path}): ${why}${again}`);
        }
        this.failing.set(k, why);
      }
    }
  }
}
