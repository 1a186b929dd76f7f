// directory-list and listDirectory: the answer byte for byte as Node's lstat and JSON.stringify
// give it, cancellation, and a 100,000-entry directory listed without holding up the agent (pings
// answered meanwhile) or letting eight such listings at once take hundreds of MB.
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { SystemError, listDirectory } from '../../lib';
import { GuestStats, listDirectoryBatches, goStat, type FileStat } from '../../lib/files/stat';
import { encodeReturn } from '../../lib/wire/answer';
import { memKiB, startAgent, tmpDir, withTmpfs } from '../helpers/agent';
import { MAX_LISTING_BYTES, MAX_LISTING_NAME_BYTES } from '../../lib/protocols/phoenix/commands/files';
import { command, root, suite } from '../helpers/harness';

const test = suite<{ dir: string }>('directory listing', { dir: '' });

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-dirlist-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** The listing as Node's readdir and bigint lstat give it, one entry at a time: the reference. */
function expectedListing(dir: string, n = 0): FileStat[] {
  let names = fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
  if (n > 0) names = names.slice(0, n);
  const prefix = Buffer.from(dir.endsWith('/') ? dir : dir + '/');
  return names.map((b) => {
    const s = fs.lstatSync(Buffer.concat([prefix, b]), { bigint: true });
    return { name: b.toString('utf8'), isdir: s.isDirectory(), stat: goStat(s) };
  });
}

/** directory-list's entries (the Go shape), as the agent answers them. */
async function wireListing(dir: string, n = 0): Promise<FileStat[]> {
  const out: FileStat[] = [];
  for await (const batch of listDirectoryBatches(dir, n)) out.push(...batch);
  return out;
}

/** Entries of every kind, names that are not UTF-8 or that JSON and Go escape, times before 1970. */
function oddDirectory(dir: string, name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d);
  const names = [
    'a',
    'B',
    '<b>&c',
    '\u2028x\u2029',
    'é',
    '日本',
    'emoji😀',
    'q"uote',
    'back\\slash',
    'ctl\x01\x1f\x7f',
    'new\nline',
    ' sp',
    '.hidden',
    '..x',
    'z'.repeat(255),
  ];
  for (const n of names) fs.writeFileSync(path.join(d, n), n);
  for (const bytes of [[0xff, 0x41], [0xc3], [0xe6, 0x97], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0x80]]) {
    fs.writeFileSync(Buffer.concat([Buffer.from(`${d}/bad`), Buffer.from(bytes), Buffer.from('end')]), '');
  }
  fs.mkdirSync(path.join(d, 'dir'));
  fs.symlinkSync('/nonexistent', path.join(d, 'link'));
  fs.symlinkSync('dir', path.join(d, 'linkdir'));
  fs.linkSync(path.join(d, 'a'), path.join(d, 'hardlink'));
  fs.utimesSync(path.join(d, 'a'), -1.5, 4102444800.123);
  fs.truncateSync(path.join(d, 'é'), 2 ** 40);
  execFileSync('mkfifo', [path.join(d, 'fifo')]);
  execFileSync('mknod', [path.join(d, 'chr'), 'c', '1', '3']);
  execFileSync('mknod', [path.join(d, 'blk'), 'b', '259', '65537']); // a minor past 255
  return d;
}

test(
  "listDirectory: each entry as Node's lstat gives it, byte for byte, in byte order of names",
  async ({ dir }) => {
    const d = oddDirectory(dir, 'odd-lib');
    for (const n of [0, 1, 7, -1, 1000]) {
      const want = expectedListing(d, n);
      assert.is(JSON.stringify(await wireListing(d, n)), JSON.stringify(want), `n=${n}`);
      const lib = await listDirectory(d, n);
      assert.equal(
        lib,
        want.map((e) => new GuestStats(e.name, e.stat)),
        `n=${n}: the library's entries`,
      );
      assert.ok(lib.every((e) => e instanceof GuestStats));
    }
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    assert.equal(await listDirectory(empty, 5), []);
  },
  { needs: [root, command('mkfifo'), command('mknod')] },
);

test(
  'directory-list answers what JSON.stringify of the reference gives, byte for byte',
  async ({ dir }) => {
    const d = oddDirectory(dir, 'odd-agent');
    const agent = await startAgent();
    const c = await TimedClient.connect(agent.socket);
    try {
      for (const n of [0, 3]) {
        const a = await c.call('directory-list', { path: d, n });
        assert.is(a.line.toString('utf8') + '\n', encodeReturn(expectedListing(d, n), a.tag));
      }
    } finally {
      c.close();
      await agent.stop();
    }
  },
  { needs: [root, command('mkfifo'), command('mknod')] },
);

/** Files open in this process. */
const openFds = () => fs.readdirSync('/proc/self/fd').length;

test('listDirectory: a signal cancels it with ECANCELED, and its directory is closed', async ({ dir }) => {
  const d = path.join(dir, 'cancel');
  fs.mkdirSync(d);
  for (let i = 0; i < 2000; i++) fs.writeFileSync(path.join(d, `f${i}`), '');
  const before = openFds();
  const ac = new AbortController();
  ac.abort();
  const early = await listDirectory(d, 0, { signal: ac.signal }).catch((e: unknown) => e);
  assert.instance(early, SystemError);
  assert.is((early as SystemError).code, 'ECANCELED');
  assert.match((early as SystemError).message, /cancel\/?: listing cancelled$/);

  const mid = new AbortController();
  const batches = listDirectoryBatches(d, 0, { signal: mid.signal });
  assert.ok((await batches.next()).value.length > 0);
  mid.abort();
  const late = await batches.next().catch((e: unknown) => e);
  assert.is((late as SystemError).code, 'ECANCELED');
  assert.is(openFds(), before, 'the directory fd is closed');
  assert.is((await listDirectory(d)).length, 2000, 'unaffected without a signal');
  assert.is(openFds(), before);
});

test('listDirectory: entries removed while listing are left out', async ({ dir }) => {
  const d = path.join(dir, 'shrinking');
  fs.mkdirSync(d);
  const names = Array.from({ length: 1200 }, (_, i) => `f${String(i).padStart(4, '0')}`);
  for (const n of names) fs.writeFileSync(path.join(d, n), '');
  const batches = listDirectoryBatches(d);
  const got = (await batches.next()).value as FileStat[];
  for (const n of names.slice(1100)) fs.unlinkSync(path.join(d, n)); // in a batch not yet lstat-ed
  for await (const b of batches) got.push(...b);
  assert.equal(
    got.map((e) => e.name),
    names.slice(0, 1100),
  );
});

interface Timed {
  tag: string;
  line: Buffer;
  /** When the request was sent, the answer's first byte came and its last: performance.now(). */
  sent: number;
  start: number;
  end: number;
}

/**
 * A connection reading answers as bytes (a 31 MB line as a string would be slow to take apart),
 * timing when each line's first and last bytes come.
 */
class TimedClient {
  private parts: Buffer[] = [];
  private lineStart = 0;
  private seq = 0;
  private readonly waiting = new Map<string, { sent: number; done: (t: Timed) => void }>();

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
  }

  static connect(socket: string): Promise<TimedClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(socket, () => resolve(new TimedClient(s)));
      s.once('error', reject);
    });
  }

  private onData(d: Buffer): void {
    const now = performance.now();
    for (let from = 0; from < d.length;) {
      if (this.parts.length === 0) this.lineStart = now;
      const nl = d.indexOf(0x0a, from);
      if (nl < 0) {
        this.parts.push(d.subarray(from));
        return;
      }
      this.parts.push(d.subarray(from, nl));
      const line = Buffer.concat(this.parts);
      this.parts = [];
      from = nl + 1;
      const tag = /"tag":"([^"]*)"\}$/.exec(line.toString('latin1', Math.max(0, line.length - 64)))![1];
      const w = this.waiting.get(tag)!;
      this.waiting.delete(tag);
      w.done({ tag, line, sent: w.sent, start: this.lineStart, end: now });
    }
  }

  call(execute: string, args: Record<string, unknown> = {}): Promise<Timed> {
    const tag = `t${++this.seq}`;
    return new Promise((done) => {
      this.waiting.set(tag, { sent: performance.now(), done });
      this.sock.write(JSON.stringify({ execute, arguments: args, tag }) + '\n');
    });
  }

  /** Reads nothing for `ms`. */
  pause(ms: number): void {
    this.sock.pause();
    setTimeout(() => this.sock.resume(), ms);
  }

  close(): void {
    this.sock.destroy();
  }
}

const ENTRIES = 100_000;

/** A tmpfs holding DIR/big with ENTRIES empty files f0 ... f99999, for the time `run` takes. */
async function withBigDirectory(dir: string, run: (big: string) => Promise<void>): Promise<void> {
  await withTmpfs(dir, 'tmpfs', '', async (mnt) => {
    const big = path.join(mnt, 'big');
    fs.mkdirSync(big);
    const t0 = performance.now();
    for (let i = 0; i < ENTRIES; i++) fs.writeFileSync(path.join(big, `f${i}`), '');
    process.stderr.write(`  directory listing: ${ENTRIES} files made in ${(performance.now() - t0).toFixed(0)} ms\n`);
    await run(big);
  });
}

/**
 * Lists `dir` while pinging the agent every 5 ms; the latest answer of a ping, less any time it
 * waited for the listing's answer to reach this host (an answer is one line: what comes after
 * ~31 MB waits for the host to read them, which is the host's time, not the agent's).
 */
async function listWithPings(c: TimedClient, dir: string): Promise<{ listing: Timed; pings: number; max: number }> {
  let listed: Timed | undefined;
  const listing = c.call('directory-list', { path: dir }).then((t) => (listed = t));
  const pings: Timed[] = [];
  while (!listed) {
    pings.push(await c.call('ping'));
    await new Promise((r) => setTimeout(r, 5));
  }
  const l = await listing;
  const late = pings.map((p) => p.end - p.sent - Math.max(0, Math.min(p.end, l.end) - Math.max(p.sent, l.start)));
  return { listing: l, pings: pings.length, max: Math.max(...late) };
}

/** Milliseconds: how late a ping during a listing may be answered (the goal is 50, on a quiet machine). */
const PING_BOUND_MS = 250;

test(
  `directory-list of ${ENTRIES} entries: right, and pings answered meanwhile within ${PING_BOUND_MS} ms`,
  async ({ dir }) => {
    await withBigDirectory(dir, async (big) => {
      const agent = await startAgent();
      const c = await TimedClient.connect(agent.socket);
      try {
        await c.call('ping');
        // On a busy 2-CPU machine a ping's latency also holds moments the scheduler ran something
        // else. Those fall at random, where a stall of the agent's comes in every listing: the
        // first of up to three listings whose pings all meet the bound passes.
        const runs: Awaited<ReturnType<typeof listWithPings>>[] = [];
        do runs.push(await listWithPings(c, big));
        while (runs.length < 3 && runs[runs.length - 1].max >= PING_BOUND_MS);
        const { listing: l, pings, max } = runs[runs.length - 1];
        process.stderr.write(
          `  directory listing: ${ENTRIES} entries in ${(l.end - l.sent).toFixed(0)} ms (${l.line.length} bytes), ${pings} pings meanwhile, the latest ${runs.map((r) => r.max.toFixed(1)).join(', then ')} ms; peak RSS ${(memKiB(agent.proc.pid!, 'VmHWM') / 1024).toFixed(0)} MiB\n`,
        );
        assert.ok(pings >= 5, `only ${pings} pings during the listing`);
        assert.ok(
          max < PING_BOUND_MS,
          `a ping during each listing was answered late: ${runs.map((r) => r.max.toFixed(0)).join(', ')} ms`,
        );

        const want = expectedListing(big);
        assert.is(want.length, ENTRIES);
        assert.equal(
          want.slice(0, 4).map((e) => e.name),
          ['f0', 'f1', 'f10', 'f100'],
        );
        assert.is(want[ENTRIES - 1].name, 'f99999');
        assert.ok(
          l.line.equals(Buffer.from(encodeReturn(want, l.tag).slice(0, -1))),
          'the answer is the reference, byte for byte',
        );
      } finally {
        c.close();
        await agent.stop();
      }
    });
  },
  { needs: [root, command('mount')], timeout: 120_000 },
);

/** MiB: the agent's peak RSS while eight 100,000-entry listings are asked for at once (was ~1.1 GB). */
const EIGHT_LISTINGS_PEAK_MIB = 200;

test(
  `eight directory-lists of ${ENTRIES} entries at once, the host reading nothing for 3 s: peak RSS under ${EIGHT_LISTINGS_PEAK_MIB} MiB`,
  async ({ dir }) => {
    await withBigDirectory(dir, async (big) => {
      const agent = await startAgent();
      const c = await TimedClient.connect(agent.socket);
      try {
        await c.call('ping');
        const t0 = performance.now();
        // Answers the host has not read yet must not pile up behind the first.
        c.pause(3000);
        const digests = await Promise.all(
          Array.from({ length: 8 }, () =>
            c.call('directory-list', { path: big }).then((t) =>
              crypto
                .createHash('md5')
                .update(t.line.subarray(0, t.line.lastIndexOf(',"tag":')))
                .digest('hex'),
            ),
          ),
        );
        const peak = memKiB(agent.proc.pid!, 'VmHWM') / 1024;
        process.stderr.write(
          `  directory listing: eight at once in ${(performance.now() - t0).toFixed(0)} ms, peak RSS ${peak.toFixed(0)} MiB\n`,
        );
        assert.is(new Set(digests).size, 1, 'the eight answers are the same');
        assert.ok(peak < EIGHT_LISTINGS_PEAK_MIB, `peak RSS ${peak.toFixed(0)} MiB`);
      } finally {
        c.close();
        await agent.stop();
      }
    });
  },
  { needs: [root, command('mount')], timeout: 180_000 },
);

/** `count` empty files in dir named by `len`-byte names, each ending in its number. */
function makeEntries(dir: string, count: number, len: number): void {
  fs.mkdirSync(dir);
  const stem = 'x'.repeat(len - 7);
  for (let i = 0; i < count; i++) fs.closeSync(fs.openSync(path.join(dir, stem + String(i).padStart(7, '0')), 'w'));
}

test(
  `directories past the listing limits (a ${MAX_LISTING_BYTES / 1048576} MiB answer, ${MAX_LISTING_NAME_BYTES / 1048576} MiB of names): refused, the first n of the first still answered, pipelined, under ${EIGHT_LISTINGS_PEAK_MIB} MiB`,
  async ({ dir }) => {
    await withTmpfs(dir, 'limits', 'nr_inodes=400k', async (mnt) => {
      // 140,000 names of 100 bytes: a 56 MB answer, 14 MB of names; of 240 bytes: 34 MB of names.
      const wide = path.join(mnt, 'wide');
      const long = path.join(mnt, 'long');
      makeEntries(wide, 140_000, 100);
      makeEntries(long, 140_000, 240);
      const agent = await startAgent();
      const c = await TimedClient.connect(agent.socket);
      const answer = (t: Timed) =>
        JSON.parse(t.line.toString()) as { return?: FileStat[]; error?: { bufb64: string; code: number } };
      const refused = (t: Timed, why: RegExp) => {
        const a = answer(t);
        assert.ok(a.error, `refused, not ${a.return?.length} entries`);
        assert.is(a.error.code, 7); // E2BIG
        assert.match(Buffer.from(a.error.bufb64, 'base64').toString(), why);
      };
      try {
        // Before: every one answered whole; 300,000 entries (108 MB) took the agent to 182 MiB,
        // three in a row to 232 MiB, and a million names to 188 MiB with n = 1.
        const all = [0, 0, 0].map(() => c.call('directory-list', { path: wide }));
        const some = [0, 0, 0].map(() => c.call('directory-list', { path: wide, n: 100_000 }));
        const names = [0, 1].map((n) => c.call('directory-list', { path: long, n }));
        for (const t of await Promise.all(all))
          refused(t, /\/wide: too many entries for one answer: more than 48 MiB after \d+; list at most n of them$/);
        for (const t of await Promise.all(some)) assert.is(answer(t).return?.length, 100_000);
        for (const t of await Promise.all(names))
          refused(t, /\/long: too many entries to list: their names pass 33554432 bytes$/);
        const peak = memKiB(agent.proc.pid!, 'VmHWM') / 1024;
        process.stderr.write(`  directory listing: past the limits, peak RSS ${peak.toFixed(0)} MiB\n`);
        assert.ok(peak < EIGHT_LISTINGS_PEAK_MIB, `peak RSS ${peak.toFixed(0)} MiB`);
      } finally {
        c.close();
        await agent.stop();
      }
    });
  },
  { needs: [root, command('mount')], timeout: 180_000 },
);

test.run();
