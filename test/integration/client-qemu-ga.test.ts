// GuestAgent over qemu-ga's protocol: against the real qemu-ga 7.2 (only what is safe on this
// machine: ping, info, sync, files in a temporary directory, /bin/echo, host name, OS, time),
// against ember-ga --protocol qemu-ga, and against a fake agent for what neither does on request
// (junk before a sync's 0xFF, answers that are not JSON or have no id, silence, a connection
// dropped mid-request). Never send guest-fsfreeze-*, guest-shutdown, guest-suspend-*,
// guest-set-* or guest-fstrim to the real qemu-ga: the freeze mapping is checked on the fake.
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { PassThrough, Readable, Writable } from 'stream';
import { GuestAgent, GuestAgentError } from '../../lib';
import { allQgaCommands } from '../../lib/protocols/qemu-ga/commands';
import { startEmberQemuGa, realQemuGa, startRealQemuGa, type RealQemuGa } from '../helpers/qemu-ga';
import { tmpDir, type RunningAgent } from '../helpers/agent';
import { md5Of, partFiles, randomFile } from '../helpers/client';
import { startFakeQga, type FakeOptions, type FakeQga, type FakeRequest } from '../helpers/fake-qga';
import { sleep, suite, waitFor, type Requirement, rejection } from '../helpers/harness';

const test = suite('client-qemu-ga');
const needs = [realQemuGa];
const MiB = 1024 * 1024;

/** The built ember-ga serves these qemu-ga commands (the file group comes from another branch). */
function qgaHas(...names: string[]): Requirement {
  return () => {
    const missing = names.filter((n) => !allQgaCommands.some((c) => c.name === n));
    return missing.length ? `needs ember-ga's qemu-ga ${missing.join(', ')}` : undefined;
  };
}

const rejects = (p: PromiseLike<unknown>) => rejection(p, GuestAgentError);

async function withReal(
  fn: (ga: GuestAgent, dir: string, real: RealQemuGa) => Promise<void>,
  opts: { timeout?: number } = {},
): Promise<void> {
  const real = await startRealQemuGa();
  const dir = tmpDir();
  const ga = new GuestAgent({ socket: real.socket, protocol: 'qemu-ga', timeout: opts.timeout ?? 10_000 });
  try {
    await fn(ga, dir, real);
  } finally {
    await ga.close();
    await real.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function withEmber(fn: (ga: GuestAgent, dir: string, agent: RunningAgent) => Promise<void>): Promise<void> {
  const agent = await startEmberQemuGa();
  const dir = tmpDir();
  const ga = new GuestAgent({ socket: agent.socket, protocol: 'qemu-ga', timeout: 10_000 });
  try {
    await fn(ga, dir, agent);
  } finally {
    await ga.close();
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function withFake(
  opts: FakeOptions,
  fn: (ga: GuestAgent, fake: FakeQga) => Promise<void>,
  gaOpts: { timeout?: number } = {},
): Promise<void> {
  const dir = tmpDir();
  const fake = await startFakeQga(path.join(dir, 'fake.sock'), opts);
  const ga = new GuestAgent({ socket: fake.path, protocol: 'qemu-ga', timeout: gaOpts.timeout ?? 5_000 });
  try {
    await fn(ga, fake);
  } finally {
    await ga.close();
    await fake.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const executed = (fake: FakeQga) => fake.requests.map((r) => r.execute);

// ---- the real qemu-ga ----

test(
  'qemu-ga: ping, features, commands, guest-info, sync, host name, OS, time',
  () =>
    withReal(async (ga) => {
      const syncs: number[] = [];
      ga.on('sync', (id: number) => syncs.push(id));
      const unmatched: unknown[] = [];
      ga.on('unmatched', (a) => unmatched.push(a));
      assert.match(await ga.ping(), /^7\.2\./);
      assert.is(syncs.length, 1, 'synchronised once, before the first request');
      const f = await ga.features();
      assert.equal(f, {
        protocol: 'qemu-ga',
        emberGa: false,
        version: f.version,
        maxReadSize: 4096,
        maxLineBytes: 64 * MiB,
        orderedHandles: false,
        atomicWrite: false,
        readMd5: false,
      });
      const info = await ga.qga.info();
      assert.is(info.version, f.version);
      const commands = await ga.commands();
      assert.ok(commands.includes('guest-exec') && commands.includes('guest-file-open'));
      assert.not.ok(commands.includes('ember-ga-info'));
      assert.equal(
        commands,
        info.supported_commands.filter((c) => c.enabled).map((c) => c.name),
      );
      assert.is(await ga.qga.sync(123456), 123456);
      await ga.resync();
      assert.is(syncs.length, 2);
      assert.is.not(syncs[0], syncs[1], 'a random id each time');
      assert.type(await ga.qga.hostName(), 'string');
      const os = await ga.qga.osInfo();
      assert.type(os['kernel-release'], 'string');
      const t = await ga.qga.time();
      assert.ok(Math.abs(t / 1e6 - Date.now()) < 60_000, `guest time ${t}`);
      // typed raw calls, and qmp() for the whole answer
      assert.equal(await ga.call('guest-sync', { id: 7 }), 7);
      assert.equal(await ga.qmp('guest-sync', { id: 8 }), { return: 8 });
      assert.equal(await ga.qmp('guest-nope'), {
        error: { class: 'CommandNotFound', desc: 'The command guest-nope has not been found' },
      });
      assert.equal(unmatched, [], 'nothing stray outside a sync');
      assert.is(ga.inFlight, 0);
    }),
  { needs },
);

test(
  "qemu-ga: an error answer keeps qemu-ga's class and desc; a system error gets its code",
  () =>
    withReal(async (ga, dir) => {
      const missing = path.join(dir, 'missing', 'x');
      const e = await rejects(ga.qga.fileOpen(missing));
      assert.is(e.message, `failed to open file '${missing}' (mode: 'r'): No such file or directory`);
      assert.equal([e.code, e.errorClass, e.remote, e.command], ['ENOENT', 'GenericError', true, 'guest-file-open']);
      const nf = await rejects(ga.call('guest-nope'));
      assert.equal(
        [nf.code, nf.errorClass, nf.message],
        ['EGUEST', 'CommandNotFound', 'The command guest-nope has not been found'],
      );
      const bad = await rejects(ga.call('guest-sync', { id: 'x' }));
      assert.equal(
        [bad.errorClass, bad.message],
        ['GenericError', "Invalid parameter type for 'id', expected: integer"],
      );
      assert.is(await ga.ping(), (await ga.features()).version, 'still in step after errors');
    }),
  { needs },
);

test(
  'qemu-ga: exec of /bin/echo, its output and status',
  () =>
    withReal(async (ga) => {
      const r = await ga.exec('/bin/echo', ['hello', 'world']);
      assert.equal(
        [r.exitcode, r.signal, r.stdout.toString(), r.stderr.toString(), r.stdoutTruncated],
        [0, undefined, 'hello world\n', '', false],
      );
      assert.ok(r.pid > 0);
      const quiet = await ga.exec('/bin/echo', ['x'], { capture: false });
      assert.equal([quiet.exitcode, quiet.stdout.length], [0, 0]);
      // the pid is forgotten once its exit was reported
      const e = await rejects(ga.qga.execStatus(r.pid));
      assert.is(e.message, "Invalid parameter 'pid'");
      const ac = new AbortController();
      ac.abort();
      assert.is((await rejects(ga.exec('/bin/echo', [], { signal: ac.signal }))).code, 'ABORT_ERR');
    }),
  { needs },
);

test(
  'qemu-ga: copies both ways in 4 KiB requests, one at a time, verified on the host',
  () =>
    withReal(async (ga, dir) => {
      const src = path.join(dir, 'src');
      const sum = randomFile(src, MiB + 123);
      const guest = path.join(dir, 'guest');
      const phases = new Set<string>();
      const up = await ga.copyTo(src, guest, { onProgress: (p) => phases.add(p.phase) });
      assert.equal(
        [up.bytes, up.md5, up.verified, up.atomic, up.chunkSize, up.inFlight, up.emberGa],
        [MiB + 123, sum, true, false, 4096, 1, false],
      );
      assert.equal([...phases], ['copy', 'verify']);
      assert.is(md5Of(guest), sum);
      const back = path.join(dir, 'back');
      let total: number | undefined;
      const down = await ga.copyFrom(guest, back, { onProgress: (p) => (total = p.total) });
      assert.equal([down.bytes, down.md5, down.verified, down.chunkSize], [MiB + 123, sum, true, 4096]);
      assert.is(total, MiB + 123, 'the size from guest-file-seek');
      assert.is(md5Of(back), sum);
      assert.is(await ga.md5File(guest), sum, 'md5 computed here from the bytes read');
      // a larger chunk when asked; into a Writable; an empty file
      const chunks: Buffer[] = [];
      const sink = new Writable({
        write: (c, _e, cb) => {
          chunks.push(c);
          cb();
        },
      });
      const big = await ga.copyFrom(guest, sink, { chunkSize: 256 * 1024 });
      assert.equal([big.chunkSize, Buffer.concat(chunks).equals(fs.readFileSync(src))], [256 * 1024, true]);
      fs.writeFileSync(path.join(dir, 'empty'), '');
      const empty = await ga.copyFrom(path.join(dir, 'empty'), path.join(dir, 'empty2'));
      assert.equal([empty.bytes, fs.readFileSync(path.join(dir, 'empty2')).length], [0, 0]);
      // an upload from a stream replaces the file in place
      const s = new PassThrough();
      const t = ga.copyTo(s, guest);
      s.end('short');
      assert.is((await t).bytes, 5);
      assert.is(fs.readFileSync(guest, 'utf8'), 'short');
      assert.equal(partFiles(dir), []);
      // Failing once the file is open (mode "w" truncated it), the error says what is left.
      const ac = new AbortController();
      const s2 = new PassThrough();
      const t2 = ga.copyTo(s2, guest, { signal: ac.signal });
      await waitFor(() => fs.readFileSync(guest).length === 0, 5000, 'the open to truncate the file');
      ac.abort();
      const e = await rejection(t2, GuestAgentError);
      assert.is(e.code, 'ABORT_ERR');
      assert.match(
        e.message,
        /aborted \(the guest file holds only what was written before: qemu-ga writes in place\)$/,
      );
      // So does a local read error (not the agent's), the file open and truncated.
      const failing = new Readable({
        read() {
          this.destroy(Object.assign(new Error('read: input/output error'), { code: 'EIO' }));
        },
      });
      const e2 = await rejection(ga.copyTo(failing, guest), Error);
      assert.match(e2.message, /input\/output error \(the guest file holds only what was written before/);
      assert.is(fs.readFileSync(guest).length, 0);
    }),
  { needs, timeout: 60_000 },
);

test(
  'qemu-ga: what qemu-ga cannot do fails with ENOTSUP naming the protocol, before any request',
  () =>
    withReal(async (ga, dir) => {
      await ga.ping();
      const before = ga.inFlight;
      const cases: [string, Promise<unknown>][] = [
        ['file-stat', ga.statFile(dir)],
        ['file-chmod', ga.chmod(dir, 0o755)],
        ['directory-list', ga.listDirectory(dir)],
        ['agent-shutdown', ga.shutdown()],
        ['sysinfo', ga.systemInfo()],
        ['get-route-list', ga.routes()],
        ['file-open', ga.fileOpen(dir)],
        ['get-netifaces', ga.links()],
      ];
      for (const [command, p] of cases) {
        const e = await rejects(p);
        assert.equal([e.code, e.remote, e.command], ['ENOTSUP', false, command], command);
        assert.match(e.message, /^[\w-]+: phoenix's protocol only/);
      }
      assert.is(ga.inFlight, before);
      const src = path.join(dir, 'src');
      fs.writeFileSync(src, 'x');
      for (const opts of [{ perm: 0o600 }, { atomic: true }, { force: true }, { fsync: true }]) {
        const e = await rejects(ga.copyTo(src, path.join(dir, 'dst'), opts));
        assert.is(e.code, 'ENOTSUP', JSON.stringify(opts));
      }
      assert.not.ok(fs.existsSync(path.join(dir, 'dst')), 'refused before opening');
      assert.is((await rejects(ga.freeze({ timeout: 5 }))).code, 'ENOTSUP');
      // and the other way: qemu-ga's own over phoenix
      const ph = new GuestAgent({ socket: path.join(dir, 'none.sock') });
      assert.is((await rejects(ph.exec('/bin/echo'))).code, 'ENOTSUP');
      assert.throws(() => ph.qga, /qemu-ga's protocol only/);
      await ph.close();
    }),
  { needs },
);

test(
  'qemu-ga: a copy fails cleanly when the agent vanishes mid-request (SIGKILL)',
  () =>
    withReal(async (ga, dir, real) => {
      const src = path.join(dir, 'src');
      randomFile(src, 4 * MiB);
      const t = ga.copyFrom(src, path.join(dir, 'dst'));
      let killed = false;
      t.on('progress', () => {
        if (!killed) real.proc.kill('SIGKILL');
        killed = true;
      });
      const disconnected = new Promise((r) => ga.once('disconnect', r));
      const e = await rejects(t);
      assert.is(e.code, 'ECONNRESET');
      await disconnected;
      assert.not.ok(fs.existsSync(path.join(dir, 'dst')));
      assert.equal(partFiles(dir), []);
      assert.is(ga.connected, false);
    }),
  { needs },
);

// ---- ember-ga --protocol qemu-ga ----

test('ember-ga: found by ember-ga-info (unlisted), pipelined, ping, info, sync', () =>
  withEmber(async (ga) => {
    const syncs: number[] = [];
    ga.on('sync', (id: number) => syncs.push(id));
    assert.is(await ga.ping(), '7.2.0');
    const f = await ga.features();
    assert.equal(f, {
      protocol: 'qemu-ga',
      emberGa: true,
      version: '7.2.0',
      emberVersion: f.emberVersion,
      maxReadSize: 48 * MiB, // guest-file-read's largest count
      maxLineBytes: 16 * MiB,
      orderedHandles: true,
      atomicWrite: false,
      readMd5: false,
    });
    assert.match(f.emberVersion!, /^\d+\.\d+\.\d+/);
    const info = await ga.qga.info();
    assert.not.ok(
      info.supported_commands.some((c) => c.name === 'ember-ga-info'),
      'guest-info lists only qemu-ga commands',
    );
    assert.ok((await ga.commands()).includes('guest-sync-delimited'));
    // pipelined: all sent before the first answer, answered in order
    const all = await Promise.all(Array.from({ length: 200 }, (_, i) => ga.qga.sync(i)));
    assert.equal(
      all,
      Array.from({ length: 200 }, (_, i) => i),
    );
    await ga.resync();
    assert.is(syncs.length, 2);
    const e = await rejects(ga.call('guest-nope'));
    assert.equal([e.errorClass, e.message], ['CommandNotFound', 'The command guest-nope has not been found']);
    assert.is(ga.inFlight, 0);
  }));

test(
  'ember-ga: copies both ways in 1 MiB chunks, pipelined, verified on the host',
  () =>
    withEmber(async (ga, dir) => {
      const src = path.join(dir, 'src');
      const sum = randomFile(src, 3 * MiB + 7);
      const guest = path.join(dir, 'guest');
      const up = await ga.copyTo(src, guest);
      assert.equal([up.md5, up.chunkSize, up.inFlight, up.emberGa], [sum, MiB, 4, true]);
      const down = await ga.copyFrom(guest, path.join(dir, 'back'));
      assert.equal([down.md5, down.chunkSize, down.inFlight], [sum, MiB, 4]);
      assert.is(md5Of(path.join(dir, 'back')), sum);
      assert.is(await ga.md5File(guest), sum);
    }),
  { needs: [qgaHas('guest-file-open', 'guest-file-read', 'guest-file-write', 'guest-file-seek', 'guest-file-close')] },
);

test(
  'ember-ga: exec of /bin/echo',
  () =>
    withEmber(async (ga) => {
      const r = await ga.exec('/bin/echo', ['hi']);
      assert.equal([r.exitcode, r.stdout.toString()], [0, 'hi\n']);
    }),
  { needs: [qgaHas('guest-exec', 'guest-exec-status')] },
);

// ---- the fake agent ----

test('sync: junk, stale answers and a stray 0xFF before the sync answer are skipped', () =>
  withFake(
    {
      reply: (req) => {
        if (req.execute !== 'guest-sync-delimited') return undefined;
        const id = req.arguments!.id as number;
        // What a previous client may have left: half an answer, a stale sync answer (after its
        // own 0xFF), bytes that are not UTF-8, then the sync's own 0xFF and answer.
        return {
          raw: Buffer.concat([
            Buffer.from('{"return": {"count": 3, "buf-b64": "YWJj", "eo'),
            Buffer.from([0xff]),
            Buffer.from(`{"return": ${id + 1}}\n{"return": {}, "id": "x-1"}\nnot json at all\n`),
            Buffer.from([0xfe, 0x80, 0x0a, 0x22]),
            Buffer.from([0xff]),
            Buffer.from(`{"return": ${id}}\n`),
          ]),
        };
      },
    },
    async (ga, fake) => {
      const unmatched: unknown[] = [];
      ga.on('unmatched', (a) => unmatched.push(a));
      await ga.qga.ping();
      assert.equal(executed(fake), ['guest-sync-delimited', 'guest-ping']);
      assert.equal(unmatched, [], 'what the sync skips is not reported');
      assert.is(fake.connections, 1);
    },
  ));

test('garbage in place of an answer: that request fails (EPROTO), the next resynchronises first', () => {
  let n = 0;
  return withFake(
    { reply: (req) => (req.execute === 'guest-ping' && n++ === 0 ? { raw: 'this is not json\n' } : undefined) },
    async (ga, fake) => {
      const unmatched: unknown[] = [];
      ga.on('unmatched', (a) => unmatched.push(a));
      const e = await rejects(ga.qga.ping());
      assert.equal([e.code, e.command], ['EPROTO', 'guest-ping']);
      await ga.qga.ping();
      assert.equal(executed(fake), ['guest-sync-delimited', 'guest-ping', 'guest-sync-delimited', 'guest-ping']);
      assert.equal(unmatched, [{ invalid: 'this is not json' }]);
    },
  );
});

test('a timeout: the late answer is skipped by the resync before the next request', () => {
  let slow: FakeRequest | undefined;
  return withFake(
    {
      reply: (req) => {
        if (req.execute === 'guest-get-time') {
          slow = req;
          return { silent: true };
        }
        return undefined;
      },
    },
    async (ga, fake) => {
      const e = await rejects(ga.qga.time({ timeout: 100 }));
      assert.equal([e.code, e.command], ['ETIMEDOUT', 'guest-get-time']);
      // The agent answers the timed-out request now, before the next sync's answer.
      fake.send(JSON.stringify({ return: 1, id: slow!.id }) + '\n');
      assert.equal(await ga.qga.sync(5), 5);
      assert.equal(executed(fake), ['guest-sync-delimited', 'guest-get-time', 'guest-sync-delimited', 'guest-sync']);
    },
  );
});

test('an error answer without an id fails the request it is about, then a resync', () =>
  withFake(
    {
      reply: (req) =>
        req.execute === 'guest-file-open'
          ? { raw: '{"error": {"class": "GenericError", "desc": "JSON parse error, too big"}}\n' }
          : undefined,
    },
    async (ga, fake) => {
      const e = await rejects(ga.qga.fileOpen('/x'));
      assert.equal([e.errorClass, e.message, e.remote], ['GenericError', 'JSON parse error, too big', true]);
      await ga.qga.ping();
      assert.equal(executed(fake).slice(-2), ['guest-sync-delimited', 'guest-ping']);
    },
  ));

test('the agent vanishes mid-request: ECONNRESET, disconnect, the next call connects and syncs again', () =>
  withFake({ reply: (req) => (req.execute === 'guest-get-osinfo' ? { drop: true } : undefined) }, async (ga, fake) => {
    const events: string[] = [];
    ga.on('connect', () => events.push('connect'));
    ga.on('disconnect', () => events.push('disconnect'));
    await ga.qga.ping();
    const dropped = ga.qga.osInfo();
    const queued = ga.qga.ping(); // waits for the dropped one's answer, never sent
    const e = await rejects(dropped);
    assert.equal([e.code, e.command], ['ECONNRESET', 'guest-get-osinfo']);
    assert.is((await rejects(queued)).code, 'ECONNRESET');
    assert.equal(events, ['connect', 'disconnect']);
    await ga.qga.ping();
    assert.equal(events, ['connect', 'disconnect', 'connect']);
    assert.is(fake.connections, 2);
    assert.equal(executed(fake).filter((x) => x === 'guest-sync-delimited').length, 2);
  }));

test('a silent agent: the sync times out, and the requests waiting for it fail', () =>
  withFake(
    { reply: (req) => (req.execute === 'guest-sync-delimited' ? { silent: true } : undefined) },
    async (ga) => {
      const [a, b] = await Promise.all([rejects(ga.qga.ping()), rejects(ga.qga.ping())]);
      assert.equal([a.code, b.code], ['ETIMEDOUT', 'ETIMEDOUT']);
      assert.is(ga.inFlight, 0);
    },
    { timeout: 150 },
  ));

test('one request at a time to qemu-ga; pipelined to an agent that answers ember-ga-info', async () => {
  const ember = (req: FakeRequest) =>
    req.execute === 'ember-ga-info'
      ? {
          return: {
            name: 'ember-ga',
            version: '9.9.9',
            'max-read-count': MiB,
            'max-request-bytes': 16 * MiB,
            pipelined: true,
          },
        }
      : undefined;
  for (const [reply, expected] of [
    [undefined, 1],
    [ember, 20],
  ] as const) {
    await withFake({ reply, delay: 5 }, async (ga, fake) => {
      const f = await ga.features();
      assert.is(f.emberGa, expected > 1);
      const before = fake.maxOutstanding;
      await Promise.all(Array.from({ length: 20 }, () => ga.qga.ping()));
      assert.is(before, 1);
      assert.is(fake.maxOutstanding, expected);
      if (f.emberGa) assert.equal([f.emberVersion, f.maxReadSize], ['9.9.9', MiB]);
    });
  }
});

/** A fake agent with one guest file whose bytes `content()` gives at each open or seek to 0. */
function fileAgent(content: () => Buffer, opts: { seekable?: boolean } = {}): FakeOptions {
  let data: Buffer = Buffer.alloc(0);
  let pos = 0;
  return {
    reply: (req) => {
      const a = req.arguments ?? {};
      switch (req.execute) {
        case 'guest-file-open':
          data = content();
          pos = 0;
          return { return: 1000 };
        case 'guest-file-seek':
          if (opts.seekable === false)
            return { error: { class: 'GenericError', desc: 'failed to seek file: Illegal seek' } };
          if (a.whence === 'end') pos = data.length + (a.offset as number);
          else {
            pos = a.offset as number;
            if (pos === 0) data = content();
          }
          return { return: { position: pos, eof: false } };
        case 'guest-file-read': {
          const chunk = data.subarray(pos, pos + ((a.count as number) ?? 4096));
          pos += chunk.length;
          return { return: { count: chunk.length, 'buf-b64': chunk.toString('base64'), eof: pos >= data.length } };
        }
        case 'guest-file-close':
          return { return: {} };
        default:
          return undefined;
      }
    },
    delay: 0,
  };
}

test('download: a guest file that differs on the second read fails with ECHECKSUM; one that cannot seek needs verify: false', async () => {
  let version = 0;
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  await withFake(
    fileAgent(() => Buffer.from(`version ${version++}`)),
    async (ga) => {
      const e = await rejects(ga.copyFrom('/f', sink()));
      assert.is(e.code, 'ECHECKSUM');
      assert.match(e.message, /a second read of the guest file/);
    },
  );
  await withFake(
    fileAgent(() => Buffer.from('a pipe'), { seekable: false }),
    async (ga, fake) => {
      const e = await rejects(ga.copyFrom('/f', sink()));
      assert.is(e.code, 'ENOTSUP');
      assert.ok(executed(fake).includes('guest-file-close'), 'the handle is closed');
      const r = await ga.copyFrom('/f', sink(), { verify: false });
      assert.equal([r.bytes, r.verified], [6, false]);
    },
  );
});

test('freeze, thaw and frozen map to guest-fsfreeze-* (on the fake: never on this machine)', () => {
  let frozen = false;
  return withFake(
    {
      reply: (req) => {
        switch (req.execute) {
          case 'guest-fsfreeze-freeze':
          case 'guest-fsfreeze-freeze-list':
            frozen = true;
            return { return: ((req.arguments?.mountpoints as string[]) ?? ['/', '/srv']).length };
          case 'guest-fsfreeze-thaw':
            frozen = false;
            return { return: 2 };
          case 'guest-fsfreeze-status':
            return { return: frozen ? 'frozen' : 'thawed' };
          default:
            return undefined;
        }
      },
    },
    async (ga, fake) => {
      assert.is(await ga.frozen(), false);
      assert.equal(await ga.freeze(), { count: 2 }, "qemu-ga's count");
      assert.is(await ga.frozen(), true);
      assert.equal(await ga.thaw(), { count: 2 });
      assert.is(await ga.qga.fsfreezeFreeze(['/mnt/a']), 1);
      assert.equal(await ga.freeze({ mountpoints: ['/mnt/a', '/mnt/b'] }), { count: 2 });
      const sent = fake.requests.filter((r) => r.execute.startsWith('guest-fsfreeze'));
      assert.equal(
        sent.map((r) => [r.execute, r.arguments]),
        [
          ['guest-fsfreeze-status', undefined],
          ['guest-fsfreeze-freeze', undefined],
          ['guest-fsfreeze-status', undefined],
          ['guest-fsfreeze-thaw', undefined],
          ['guest-fsfreeze-freeze-list', { mountpoints: ['/mnt/a'] }],
          ['guest-fsfreeze-freeze-list', { mountpoints: ['/mnt/a', '/mnt/b'] }],
        ],
      );
    },
  );
});

test('every request carries an id of its own, and the sync none (its answer is matched by value)', () =>
  withFake({}, async (ga, fake) => {
    await Promise.all([ga.qga.ping(), ga.qga.ping(), ga.call('guest-sync', { id: 1 })]);
    const [sync, ...rest] = fake.requests;
    assert.equal([sync.execute, 'id' in sync, typeof sync.arguments?.id], ['guest-sync-delimited', false, 'number']);
    const ids = rest.map((r) => r.id);
    assert.ok(ids.every((i) => typeof i === 'string'));
    assert.is(new Set(ids).size, ids.length);
  }));

test('a connection given up while waiting for the sync fails its requests with ECONNRESET', () =>
  withFake({ reply: (req) => (req.execute === 'guest-sync-delimited' ? { silent: true } : undefined) }, async (ga) => {
    const p = ga.qga.ping();
    await waitFor(() => ga.connected, 2_000, 'the connection');
    await sleep(20);
    await ga.close();
    assert.is((await rejects(p)).code, 'ECONNRESET');
  }));

test('protocol: anything but phoenix or qemu-ga is a TypeError', () => {
  assert.throws(
    () => new GuestAgent({ socket: '/nonexistent', protocol: 'qmp' as never }),
    (e: Error) => e instanceof TypeError && /protocol must be 'phoenix' or 'qemu-ga'/.test(e.message),
  );
});

test.run();
