// What the port's output costs in memory (docs/AGENT.md "Memory"): an answer's base64 goes out
// from the buffers it was made in, never copied into the writer's queue, and is freed as soon as
// it is written. Held to the copy counter of the port's driver and to the buffers themselves, not
// to RSS or time, so that a loaded machine cannot make it pass or fail.
import * as assert from 'uvu/assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Agent } from '../../lib/agent';
import { GuestAgent } from '../../lib/client/guest-agent';
import { silentLogger } from '../../lib/log';
import { native, type NativePort, type PortEventHandler } from '../../lib/native';
import { MMAP_THRESHOLD } from '../../lib/memory';
import { allCommands } from '../../lib/protocols/phoenix/commands';
import type { ProtocolName } from '../../lib/protocols/protocol';
import { PortTransport } from '../../lib/transports/port';
import { command, suite, waitFor } from '../helpers/harness';
import { QgaBulkHost, qgaDownload } from '../helpers/qga-bulk';
import { withPortToFile, withPtyBridge, type PtyBridge } from '../helpers/pty';

const test = suite('port output memory (pty)');
const needs = [command('socat')];
const MiB = 1024 * 1024;

/** The port's driver as the agent opens it, and the base64 written through it with `give`. */
function watchedPort() {
  const given: Buffer[] = [];
  let port: NativePort | undefined;
  let maxQueued = 0;
  const open = (p: string, onEvent: PortEventHandler): NativePort => {
    const real = new native.Port(p, onEvent, { views: true });
    port = real;
    return {
      write: (data, keep, give) => {
        if (give && data.length >= 64 * 1024) given.push(data); // not the JSON around it
        const queued = real.write(data, keep, give);
        maxQueued = Math.max(maxQueued, queued);
        return queued;
      },
      pause: () => real.pause(),
      resume: () => real.resume(),
      close: () => real.close(),
      discard: () => real.discard(),
      get queued() {
        return real.queued;
      },
      get copied() {
        return real.copied;
      },
      get connected() {
        return real.connected;
      },
      get foundBy() {
        return real.foundBy;
      },
    };
  };
  return {
    open,
    given,
    get port() {
      return port!;
    },
    get maxQueued() {
      return maxQueued;
    },
  };
}

test(
  'the driver: a kept write is sent from its own buffer, a given one freed once written; the rest is copied',
  () =>
    withPortToFile(async (port, out) => {
      const copied = Buffer.alloc(4 * MiB, 0x41);
      const kept = Buffer.alloc(8 * MiB, 0x42);
      const given = [1, 2, 3].map((i) => Buffer.alloc(8 * MiB, 0x42 + i));
      const slice = Buffer.from('a slice of the pool: never freed by the port\n');
      const want = Buffer.concat([copied, kept, ...given, slice]);
      port.write(copied); // a pty takes a few KiB: the rest is copied
      const afterCopy = port.copied;
      assert.ok(afterCopy > 3 * MiB && afterCopy <= 4 * MiB, `${afterCopy} bytes copied`);
      port.write(kept, true);
      for (const g of given) port.write(g, true, true);
      port.write(slice, true, true);
      assert.is(port.copied, afterCopy, 'kept writes are not copied');
      copied.fill(0x20); // the copy went out, not the caller's buffer
      await waitFor(() => fs.statSync(out).size === want.length, 20_000, 'everything to arrive');
      await waitFor(() => given.every((g) => g.length === 0), 5_000, 'the given buffers freed');
      assert.ok(fs.readFileSync(out).equals(want), 'the bytes, in order');
      assert.is(kept.length, 8 * MiB, 'a buffer kept and not given stays');
      assert.is(slice.toString(), 'a slice of the pool: never freed by the port\n');
      assert.is(port.queued, 0);
    }),
  { needs, timeout: 60_000 },
);

/** Minor page faults this process has taken so far (/proc/self/stat). */
function minorFaults(): number {
  return Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
}

test(
  "the driver: a given piece's memory is reused by the next base64 of its size, not faulted in anew",
  () =>
    withPortToFile(async (port, out) => {
      // As in the agent (cli.ts): else glibc would serve the second piece from its heap anyway.
      assert.ok(native.mallocMmapThreshold(MMAP_THRESHOLD));
      const src = Buffer.alloc(3 * MiB, 0x5a);
      const pages = (4 * MiB) / 4096; // a piece's pages: what a new one faults in
      let before = minorFaults();
      const first = native.base64(src, src.length);
      const fresh = minorFaults() - before;
      assert.ok(fresh >= pages / 2, `${fresh} page faults for a new piece`);
      port.write(first, true, true);
      await waitFor(() => first.length === 0, 20_000, 'the piece written and freed');
      await new Promise((r) => setImmediate(r)); // its memory goes back to the pool in an immediate
      before = minorFaults();
      const second = native.base64(src, src.length);
      const again = minorFaults() - before;
      assert.ok(again < pages / 4, `${again} page faults for a piece made in a freed one's memory`);
      assert.ok(second.equals(Buffer.alloc(4 * MiB, 'Wlpa')), 'its text');
      port.write(second, true, true);
      await waitFor(() => fs.statSync(out).size === 8 * MiB, 20_000, 'both pieces to arrive');
      assert.ok(fs.readFileSync(out).equals(Buffer.alloc(8 * MiB, 'Wlpa')), 'the bytes, in order');
    }),
  { needs, timeout: 60_000 },
);

/** An Agent serving `protocol` on a pty bridge's port through a watched driver, for the time fn takes. */
function withWatchedAgent(
  protocol: ProtocolName,
  fn: (bridge: PtyBridge, dir: string, watched: ReturnType<typeof watchedPort>) => Promise<void>,
): Promise<void> {
  return withPtyBridge(async (bridge, dir) => {
    const watched = watchedPort();
    const transport = new PortTransport(bridge.port, silentLogger, { open: watched.open });
    const agent = new Agent({ endpoints: [{ transport, protocol }], commands: allCommands });
    try {
      await agent.start();
      await fn(bridge, dir, watched);
    } finally {
      await agent.stop();
    }
  });
}

test(
  'qemu-ga 48 MiB reads over the port: their 64 MiB answers are never copied, freed as written, and queued within the output limit',
  () =>
    withWatchedAgent('qemu-ga', async (bridge, dir, watched) => {
      let host: QgaBulkHost | undefined;
      try {
        const file = path.join(dir, 'big'); // sparse: its reads cost no disk
        fs.closeSync(fs.openSync(file, 'w'));
        fs.truncateSync(file, 100 * MiB);
        host = await QgaBulkHost.connect(bridge.host);
        const r = await qgaDownload(host, file, 48 * MiB, 2);
        assert.is(r.bytes, 100 * MiB);
        assert.is(
          r.md5,
          createHash('md5')
            .update(Buffer.alloc(100 * MiB))
            .digest('hex'),
        );
        // Only the JSON around the base64 (a few dozen bytes an answer) may have been copied.
        assert.ok(watched.port.copied < 64 * 1024, `${watched.port.copied} bytes copied into the writer's queue`);
        assert.ok(watched.given.length >= 2 * 16 + 1, `${watched.given.length} pieces of base64 given`);
        await waitFor(() => watched.given.every((b) => b.length === 0), 5_000, 'every piece freed once written');
        // A read waits until less than the output limit (16 MiB) is queued, then queues its answer.
        assert.ok(watched.maxQueued <= 16 * MiB + 64 * MiB + MiB, `${watched.maxQueued} bytes queued at most`);
      } finally {
        host?.close();
      }
    }),
  { needs, timeout: 120_000 },
);

test(
  "phoenix 1 MiB reads over the port: each chunk's base64 goes out from its own buffer, freed as written",
  () =>
    withWatchedAgent('phoenix', async (bridge, dir, watched) => {
      let client: GuestAgent | undefined;
      try {
        const src = path.join(dir, 'src');
        const data = Buffer.alloc(16 * MiB, 0x5a);
        fs.writeFileSync(src, data);
        client = await GuestAgent.connect({ socket: bridge.host, timeout: 60_000 });
        const dst = path.join(dir, 'dst');
        await client.copyFrom(src, dst, { chunkSize: MiB, inFlight: 4, verify: false, fsync: false });
        assert.ok(fs.readFileSync(dst).equals(data), 'the copy');
        assert.ok(watched.given.length >= 16, `${watched.given.length} pieces of base64 given`);
        assert.ok(watched.port.copied < 64 * 1024, `${watched.port.copied} bytes copied into the writer's queue`);
        await waitFor(() => watched.given.every((b) => b.length === 0), 5_000, 'every piece freed once written');
      } finally {
        await client?.close();
      }
    }),
  { needs, timeout: 120_000 },
);

test.run();
