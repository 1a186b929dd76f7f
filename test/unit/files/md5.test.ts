// md5File's AbortSignal and queues: work of a host that went away is cancelled (a running
// digest stops, a queued one never starts), and file-close's md5 checks never wait behind
// whole-file digests.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { AbortError, md5File, openFile } from '../../../lib';
import { MD5_CONCURRENCY } from '../../../lib/files/md5';
import { native } from '../../../lib/native';
import { tmpDir } from '../../helpers/agent';
import { sleep, suite, waitFor, type Requirement } from '../../helpers/harness';

const test = suite<{ dir: string; huge: string }>('md5File cancel', { dir: '', huge: '' });
const md5 = (s: string | Buffer) => crypto.createHash('md5').update(s).digest('hex');
const GiB = 1024 * 1024 * 1024;

/** The temp directory's filesystem keeps holes: a truncated 50 GiB file takes no space. */
const sparse: Requirement = () => {
  const dir = tmpDir('ember-ga-sparse-probe-');
  try {
    const f = path.join(dir, 'probe');
    fs.writeFileSync(f, '');
    fs.truncateSync(f, 1024 * 1024);
    return fs.statSync(f).blocks === 0 ? undefined : 'needs a temp directory on a filesystem with sparse files';
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};

test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-md5-');
  ctx.huge = path.join(ctx.dir, 'sparse-50g');
  fs.writeFileSync(ctx.huge, '');
  fs.truncateSync(ctx.huge, 50 * GiB); // holes read as zeros: over a minute of hashing each
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** The process's user + system CPU time in seconds (/proc/self/stat, clock ticks of 100 Hz). */
function cpuSeconds(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime and stime: fields 14 and 15
}

const threads = () => fs.readdirSync('/proc/self/task').length;
/** The process's open descriptors on files in dir. */
function fdsIn(dir: string): string[] {
  return fs.readdirSync('/proc/self/fd').flatMap((n) => {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${n}`);
      return target.startsWith(dir + path.sep) ? [target] : [];
    } catch {
      return []; // closed meanwhile
    }
  });
}

async function rejectsAbort(p: Promise<unknown>): Promise<AbortError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, AbortError);
    assert.is((e as AbortError).name, 'AbortError');
    assert.is((e as AbortError).code, 'ABORT_ERR');
    return e as AbortError;
  }
  throw new Error('expected an AbortError');
}

/** Counts the digests the addon starts while fn runs. */
async function countingStarts<T>(fn: (started: () => number) => Promise<T>): Promise<T> {
  const real = native.md5File;
  let n = 0;
  native.md5File = (p: string) => {
    n++;
    return real(p);
  };
  try {
    return await fn(() => n);
  } finally {
    native.md5File = real;
  }
}

test(
  'four digests of a 50 GiB sparse file, aborted: reject at once, the CPU goes idle, a small md5 answers at once',
  async ({ dir, huge }) => {
    const baseThreads = threads();
    const acs = Array.from({ length: MD5_CONCURRENCY }, () => new AbortController());
    const sums = acs.map((ac) => md5File(huge, { signal: ac.signal }));
    sums.forEach((p) => p.catch(() => undefined));
    let busy: number;
    try {
      await waitFor(() => threads() >= baseThreads + MD5_CONCURRENCY, 2000, 'the digest threads');
      const cpu0 = cpuSeconds();
      await sleep(500);
      busy = cpuSeconds() - cpu0; // for the message: how much less than the CPUs other processes leave
    } catch (e) {
      acs.forEach((ac) => ac.abort()); // no 50 GiB digests left running for the next tests
      throw e;
    }

    const t0 = Date.now();
    acs.forEach((ac) => ac.abort());
    for (const p of sums) {
      const e = await rejectsAbort(p);
      assert.is(e.message, 'The operation was aborted');
      assert.instance(e.cause, DOMException); // the signal's reason, as with Node's fs calls
    }
    assert.ok(Date.now() - t0 < 1000, `aborted digests rejected after ${Date.now() - t0} ms`);

    // The threads end (reader threads too), and with them the CPU use.
    await waitFor(
      () => threads() <= baseThreads,
      1000,
      `the digest threads to end (${threads()} threads, ${baseThreads} before)`,
    );
    const cpuIdle = cpuSeconds();
    await sleep(1000);
    const after = cpuSeconds() - cpuIdle;
    assert.ok(
      after < 0.25,
      `${after.toFixed(2)} s of CPU in the second after the abort (${busy.toFixed(2)} s in half a second before it)`,
    );

    const six = path.join(dir, 'six');
    fs.writeFileSync(six, 'sixsix');
    const t1 = Date.now();
    assert.is(await md5File(six), md5('sixsix'));
    assert.ok(Date.now() - t1 < 200, `a 6-byte md5 took ${Date.now() - t1} ms`);
  },
  { needs: [sparse] },
);

test('an already-aborted signal rejects at once and starts nothing', async ({ dir }) =>
  countingStarts(async (started) => {
    const f = path.join(dir, 'small');
    fs.writeFileSync(f, 'small');
    const reason = new Error('host gone');
    const e = await rejectsAbort(md5File(f, { signal: AbortSignal.abort(reason) }));
    assert.is(e.cause, reason);
    assert.is(started(), 0);
    // An abort after the end changes nothing.
    const ac = new AbortController();
    assert.is(await md5File(f, { signal: ac.signal }), md5('small'));
    ac.abort();
  }));

test(
  'queued digests aborted before their turn leave the queue at once and never start',
  async ({ dir, huge }) =>
    countingStarts(async (started) => {
      const running = new AbortController();
      const sums = Array.from({ length: MD5_CONCURRENCY }, () => md5File(huge, { signal: running.signal }));
      sums.forEach((p) => p.catch(() => undefined));
      const queued = [new AbortController(), new AbortController()];
      const waiting = queued.map((ac) => md5File(huge, { signal: ac.signal }));
      waiting.forEach((p) => p.catch(() => undefined));
      try {
        await sleep(100);
        assert.is(started(), MD5_CONCURRENCY, 'the 5th and 6th wait');
        const t0 = Date.now();
        queued.forEach((ac) => ac.abort());
        for (const p of waiting) await rejectsAbort(p);
        assert.ok(Date.now() - t0 < 50, `queued digests rejected after ${Date.now() - t0} ms`);
      } finally {
        // The running four free their slots when aborted; the two aborted ones never take them.
        running.abort();
      }
      for (const p of sums) await rejectsAbort(p);
      const f = path.join(dir, 'next');
      fs.writeFileSync(f, 'next');
      assert.is(await md5File(f), md5('next'));
      assert.is(started(), MD5_CONCURRENCY + 1);
    }),
  { needs: [sparse] },
);

test(
  'a file-close md5 check does not wait behind four endless digests',
  async ({ dir, huge }) => {
    const ac = new AbortController();
    const sums = Array.from({ length: MD5_CONCURRENCY + 2 }, () => md5File(huge, { signal: ac.signal }));
    sums.forEach((p) => p.catch(() => undefined));
    let closed: Promise<void> | undefined;
    try {
      await sleep(100);
      const f = path.join(dir, 'upload');
      const data = crypto.randomBytes(64 * 1024 + 3);
      const t0 = Date.now();
      const h = await openFile(f, { mode: 'w' });
      await h.write(data);
      closed = h.close({ md5: md5(data) });
      assert.is(await Promise.race([closed.then(() => 'closed'), sleep(2000).then(() => 'waiting')]), 'closed');
      assert.ok(Date.now() - t0 < 1000, `the checked close took ${Date.now() - t0} ms`);
      assert.ok(fs.readFileSync(f).equals(data));
    } finally {
      ac.abort(); // a close that waited behind the digests gets its turn now
      await closed;
    }
    for (const p of sums) await rejectsAbort(p);
  },
  { needs: [sparse] },
);

test(
  'abort racing the end of a digest: a sum or an AbortError, never a crash, no fd or thread left',
  async ({ dir }) => {
    const small = path.join(dir, 'race-small');
    const large = path.join(dir, 'race-large'); // 8 MiB and more: the pipelined path, with a reader thread
    const smallData = crypto.randomBytes(4096);
    const largeData = crypto.randomBytes(9 * 1024 * 1024);
    fs.writeFileSync(small, smallData);
    fs.writeFileSync(large, largeData);
    const want = { [small]: md5(smallData), [large]: md5(largeData) };
    await md5File(large); // warm
    const baseThreads = threads();
    const outcomes = { sum: 0, aborted: 0 };
    const one = async (i: number) => {
      const f = i % 3 === 0 ? large : small;
      const ac = new AbortController();
      const p = md5File(f, { signal: ac.signal });
      // Abort at once, in a microtask, on the next turn or a few ms later: around the end.
      const when = i % 4;
      if (when === 0) ac.abort();
      else if (when === 1) queueMicrotask(() => ac.abort());
      else if (when === 2) setImmediate(() => ac.abort());
      else setTimeout(() => ac.abort(), i % 13);
      try {
        assert.is(await p, want[f]);
        outcomes.sum++;
      } catch (e) {
        assert.instance(e, AbortError, String(e));
        outcomes.aborted++;
      }
    };
    for (let i = 0; i < 400; i += 4) await Promise.all([one(i), one(i + 1), one(i + 2), one(i + 3)]);
    assert.ok(outcomes.sum > 0 && outcomes.aborted > 0, JSON.stringify(outcomes));
    await waitFor(
      () => threads() <= baseThreads,
      1000,
      `the digest threads to end (${threads()} threads, ${baseThreads} before)`,
    );
    assert.equal(fdsIn(dir), [], 'no descriptor left open');
    // Every queue slot came back: four digests still start at once.
    const t0 = Date.now();
    await Promise.all(Array.from({ length: MD5_CONCURRENCY }, () => md5File(small)));
    assert.ok(Date.now() - t0 < 500);
  },
  { timeout: 60_000 },
);

test.run();
