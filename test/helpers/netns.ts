// A throwaway network namespace with a veth pair (a <-> b) for the network tests and bench, and
// iproute2's JSON output read in it as the independent oracle. Nothing here touches the
// machine's own interfaces or routes; delete the namespace with destroy() in after/finally.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { randomBytes } from 'crypto';
import { startAgentWith, tmpDir, type RunningAgent } from './agent';
import { waitFor } from './harness';

export class TestNetns {
  private constructor(readonly name: string) {}

  /** `ip netns add ember-test-<random>`, veth a/b inside, no IPv6 DAD (so no probes are sent). */
  static create(): TestNetns {
    const ns = new TestNetns(`ember-test-${randomBytes(4).toString('hex')}`);
    execFileSync('ip', ['netns', 'add', ns.name]);
    try {
      ns.exec(
        'sysctl',
        '-qw',
        'net.ipv6.conf.default.accept_dad=0',
        'net.ipv6.conf.all.accept_dad=0',
        'net.ipv6.conf.default.router_solicitations=0',
      );
      ns.ip('link', 'add', 'name', 'a', 'type', 'veth', 'peer', 'name', 'b');
    } catch (e) {
      ns.destroy();
      throw e;
    }
    return ns;
  }

  /** `ip -n NS ARGS...`, its output. */
  ip(...args: string[]): string {
    return execFileSync('ip', ['-n', this.name, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  }

  /** `ip -j -n NS ARGS...`, parsed (as whatever the test reads of it). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json<T = any>(...args: string[]): T {
    const out = execFileSync('ip', ['-j', '-n', this.name, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
    return (out.trim() === '' ? [] : JSON.parse(out)) as T;
  }

  /** `ip -n NS -batch -` with one command per line. */
  batch(lines: string[]): void {
    execFileSync('ip', ['-n', this.name, '-batch', '-'], { input: lines.join('\n') + '\n', maxBuffer: 64 << 20 });
  }

  /**
   * Waits until every link is running (a veth has carrier only once both ends are up, which
   * the kernel reports with a delay) and no address is still tentative: until then IPv6
   * addresses cannot be a route's src.
   */
  async settle(ms = 10_000): Promise<void> {
    type L = { operstate?: string; flags: string[]; addr_info?: { tentative?: boolean }[] };
    await waitFor(
      () =>
        this.json<L[]>('address', 'show').every(
          (l) =>
            (!l.flags.includes('UP') || l.flags.includes('LOWER_UP')) && !(l.addr_info ?? []).some((a) => a.tentative),
        ),
      ms,
      `links and addresses in ${this.name} to settle`,
      50,
    );
  }

  /** Runs a command inside the namespace. */
  exec(cmd: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], { encoding: 'utf8' });
  }

  /** The agent running inside the namespace, listening on a unix socket outside reach of it. */
  startAgent(extra: string[] = []): Promise<RunningAgent> {
    const dir = tmpDir();
    const socket = path.join(dir, 'ga.sock');
    return startAgentWith(['--listen', `unix:${socket}`, ...extra], socket, dir, ['ip', 'netns', 'exec', this.name]);
  }

  destroy(): void {
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}
