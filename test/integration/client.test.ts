// The GuestAgent client library against a real agent (unix socket, pty, listen mode) and against
// stub agents for what a real ember-ga cannot show (0.7.1 protocol, answers in reverse order,
// silence).
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import { once } from 'events';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { PassThrough, Readable, Writable } from 'stream';
import { GuestAgent, GuestAgentError, type Progress } from '../../lib';
import {
  fdsOn,
  longPath,
  startAgent,
  startAgentWith,
  tmpDir,
  unnamed,
  withBindMount,
  withTmpfs,
  withXinoOverlay,
  type RunningAgent,
} from '../helpers/agent';
import { agentHas, ctl, md5Of, partFiles, randomFile, startPtyBridge } from '../helpers/client';
import { command, root, sleep, suite, waitFor, rejection } from '../helpers/harness';
import { startStub } from '../helpers/stub-agent';

const test = suite('client');
const files = [agentHas('file-open')];
const MiB = 1024 * 1024;

const rejects = (p: PromiseLike<unknown>) => rejection(p, GuestAgentError);

async function withStub<T>(
  opts: Parameters<typeof startStub>[1],
  fn: (ga: GuestAgent, stub: Awaited<ReturnType<typeof startStub>>, dir: string) => Promise<T>,
  gaOpts: { timeout?: number; reconnect?: boolean } = {},
): Promise<T> {
  const dir = tmpDir();
  const stub = await startStub(path.join(dir, 'stub.sock'), opts);
  const ga = new GuestAgent({ socket: stub.path, ...gaOpts });
  try {
    return await fn(ga, stub, dir);
  } finally {
    await ga.close();
    await stub.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A real agent (flags), a temp dir, a client on its socket or through a pty bridge; all cleaned up. */
async function withAgent(
  fn: (ga: GuestAgent, dir: string, agent: RunningAgent) => Promise<void>,
  opts: { flags?: string[]; pty?: boolean } = {},
): Promise<void> {
  const agent = await startAgent(opts.flags);
  const dir = tmpDir();
  const bridge = opts.pty ? await startPtyBridge(dir, agent.socket) : undefined;
  let ga: GuestAgent | undefined;
  try {
    ga = await GuestAgent.connect(bridge ? { device: bridge.device } : { socket: agent.socket });
    await fn(ga, dir, agent);
  } finally {
    await ga?.close();
    await bridge?.stop();
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('real agent: typed calls, 300 requests in flight matched by tag, features', () =>
  withAgent(async (ga) => {
    const version = await ga.ping();
    assert.match(version, /^\d+\.\d+\.\d+/);
    const all = await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 2 ? ga.ping() : ga.commands())));
    all.forEach((v, i) => (i % 2 ? assert.is(v, version) : assert.ok(Array.isArray(v) && v.includes('ping'))));
    assert.is(ga.inFlight, 0);
    const f = await ga.features();
    assert.equal(f, {
      protocol: 'phoenix',
      emberGa: true,
      version,
      maxReadSize: 4 * MiB,
      maxLineBytes: 16 * MiB,
      orderedHandles: true,
      atomicWrite: true,
      readMd5: true,
    });
    assert.is((await ga.agentInfo()).name, 'ember-ga');
    assert.is(await ga.call('ping'), version);
  }));

test('real agent: guest errors are GuestAgentError with the decoded message and code', () =>
  withAgent(async (ga) => {
    let e = await rejects(ga.call('no-such-command'));
    assert.is(e.message, 'Unknown command: no-such-command');
    assert.is(e.code, 'EGUEST');
    assert.is(e.errno, -1);
    assert.is(e.remote, true);
    assert.is(e.command, 'no-such-command');
    // The agent keeps serving after errors.
    assert.ok(await ga.ping());
    if (agentHas('file-open')() === undefined) {
      e = await rejects(ga.statFile('/nonexistent/ember-ga'));
      assert.is(e.code, 'ENOENT');
      assert.is(e.errno, 2);
      assert.match(e.message, /no such file or directory/);
      e = await rejects(ga.call('file-read', { handle_id: 'x' }));
      assert.match(e.message, /handle_id/);
    }
  }));

test('socket and listen paths may be written unix:PATH, as ember-ga-ctl and the agent take them', async () => {
  const dir = tmpDir();
  const stub = await startStub(path.join(dir, 'stub.sock'), { answers: { ping: 'pong' } });
  try {
    const ga = await GuestAgent.connect({ socket: `unix:${stub.path}` });
    try {
      assert.is(await ga.ping(), 'pong');
    } finally {
      await ga.close();
    }
    // --listen's side: QEMU connects to the path without the prefix.
    const listen = path.join(dir, 'listen.sock');
    const lga = new GuestAgent({ listen: `unix:${listen}`, connectTimeout: 5_000 });
    try {
      const connecting = lga.connect();
      await waitFor(() => fs.existsSync(listen), 2_000, 'the client to listen');
      const qemu = net.createConnection(listen);
      const upstream = net.createConnection(stub.path);
      qemu.pipe(upstream).pipe(qemu);
      await connecting;
      assert.is(await lga.ping(), 'pong');
      qemu.destroy();
      upstream.destroy();
    } finally {
      await lga.close();
    }
    assert.not.ok(fs.existsSync(path.join(dir, 'unix:listen.sock')));
  } finally {
    await stub.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('connection failures: missing socket, missing device, nobody listening', async () => {
  const dir = tmpDir();
  try {
    let e = await rejects(GuestAgent.connect({ socket: path.join(dir, 'none.sock') }));
    assert.is(e.code, 'ENOENT');
    assert.match(e.message, /^cannot connect to unix:.*none\.sock: no such file or directory$/);
    assert.is(e.remote, false);
    e = await rejects(GuestAgent.connect({ device: path.join(dir, 'none-dev') }));
    assert.is(e.code, 'ENOENT');
    // A regular file is refused before it is opened: the request would be written over its bytes.
    fs.writeFileSync(path.join(dir, 'file'), 'keep');
    e = await rejects(GuestAgent.connect({ device: path.join(dir, 'file'), timeout: 500 }));
    assert.equal(
      [e.code, e.message],
      ['ENOTTY', `cannot connect to ${path.join(dir, 'file')}: a regular file, not a pty or character device`],
    );
    assert.is(fs.readFileSync(path.join(dir, 'file'), 'utf8'), 'keep');
    e = await rejects(GuestAgent.connect({ listen: path.join(dir, 'l.sock'), connectTimeout: 100 }));
    assert.is(e.code, 'ETIMEDOUT');
    // close() while waiting for QEMU to connect: the wait ends at once.
    const ga = new GuestAgent({ listen: path.join(dir, 'l2.sock'), connectTimeout: 10_000 });
    const waiting = ga.connect();
    await waitFor(() => fs.existsSync(path.join(dir, 'l2.sock')), 2_000, 'the client to listen');
    const t0 = Date.now();
    await ga.close();
    assert.is((await rejects(waiting)).code, 'ENOTCONN');
    assert.ok(Date.now() - t0 < 1_000);
    assert.not.ok(fs.existsSync(path.join(dir, 'l.sock')), 'the listening socket is removed');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the library's vocabulary: object arguments, families 4 and 6, mutators resolve to nothing (stub recording)", () =>
  withStub(
    {
      answers: {
        'ipaddr-add': true,
        'ipaddr-del': true,
        'net-iface-up': true,
        'net-iface-down': true,
        'route-add': true,
        'route-del': true,
        'get-route-list': [],
        'get-netifaces': [],
        'file-chmod': true,
        'file-chown': true,
        'directory-create': true,
        'fs-freeze': true,
        'fs-unfreeze': true,
      },
    },
    async (ga, stub) => {
      const calls: [Promise<unknown>, string, unknown, unknown][] = [
        [
          ga.addAddress({ ifname: 'eth0', cidr: '192.0.2.1/24' }),
          'ipaddr-add',
          { ip: '192.0.2.1/24', ifname: 'eth0' },
          undefined,
        ],
        [
          ga.deleteAddress({ cidr: '2001:db8::1/64', ifname: 'eth0' }),
          'ipaddr-del',
          { ip: '2001:db8::1/64', ifname: 'eth0' },
          undefined,
        ],
        [ga.setLinkUp('eth1'), 'net-iface-up', { ifname: 'eth1' }, undefined],
        [ga.setLinkDown('eth1'), 'net-iface-down', { ifname: 'eth1' }, undefined],
        [ga.routes(), 'get-route-list', { family: 0 }, []],
        [ga.routes({ family: 4 }), 'get-route-list', { family: 2 }, []],
        [ga.routes({ family: 6, timeout: 5000 }), 'get-route-list', { family: 10 }, []],
        [
          ga.addRoute({ dst: '198.51.100.0/24', gateway: '192.0.2.254' }),
          'route-add',
          { dst: '198.51.100.0/24', gateway: '192.0.2.254' },
          undefined,
        ],
        [ga.deleteRoute({ dst: '198.51.100.0/24' }), 'route-del', { dst: '198.51.100.0/24' }, undefined],
        [ga.links(), 'get-netifaces', undefined, []],
        [ga.chmod('/x', 0o600), 'file-chmod', { path: '/x', perm: 0o600 }, undefined],
        [ga.chown('/x', 1, 2), 'file-chown', { path: '/x', uid: 1, gid: 2 }, undefined],
        [ga.mkdirAll('/x/y'), 'directory-create', { path: '/x/y' }, undefined],
        [ga.freeze({ mountpoints: ['/srv'] }), 'fs-freeze', { mountpoints: ['/srv'] }, {}],
        [ga.thaw(), 'fs-unfreeze', undefined, {}],
      ];
      const seen = new Map<string, number>(); // the stub got them in the order sent
      for (const [p, execute, args, value] of calls) {
        assert.equal(await p, value, execute);
        const nth = seen.get(execute) ?? 0;
        seen.set(execute, nth + 1);
        const req = stub.requests.filter((r) => r.execute === execute)[nth];
        assert.ok(req, execute);
        assert.equal(req!.arguments, args ?? {}, execute);
      }
      const before = stub.requests.length;
      // Positional strings, as the old addAddress(ip, ifname) took them, are refused.
      const swapped = ga.addAddress('192.0.2.1/24' as never);
      await swapped.then(
        () => assert.unreachable('a string is not { ifname, cidr }'),
        (e: unknown) => {
          assert.instance(e, TypeError);
          assert.match((e as Error).message, /^addAddress takes \{ ifname, cidr \}/);
        },
      );
      await ga.routes({ family: 2 as never }).then(
        () => assert.unreachable("the wire's AF_INET is not a family"),
        (e: unknown) => assert.instance(e, RangeError),
      );
      assert.is(stub.requests.length, before, 'nothing sent for either');
    },
  ));

test('answers in reverse order reach the right callers', () =>
  withStub({ reverseBatch: 16 }, async (ga, stub) => {
    const paths = Array.from({ length: 16 }, (_, i) => `/guest/file-${i}`);
    const sums = await Promise.all(paths.map((p) => ga.md5File(p)));
    sums.forEach((s, i) => assert.is(s, createHash('md5').update(paths[i]).digest('hex')));
    // The stub really answered in reverse: the first request's answer came last.
    assert.is(stub.requests.length, 16);
  }));

test('timeout: ETIMEDOUT after the request timeout; the late answer is ignored; the client goes on', () =>
  withStub(
    { delay: (r) => (r.execute === 'ping' ? 400 : 0) },
    async (ga) => {
      const unmatched: unknown[] = [];
      ga.on('unmatched', (a) => unmatched.push(a));
      const t0 = Date.now();
      const e = await rejects(ga.ping());
      const took = Date.now() - t0;
      assert.is(e.code, 'ETIMEDOUT');
      // Nothing came on the connection yet: the agent may be serving another host.
      assert.match(
        e.message,
        /^ping: no answer from the agent within 150 ms; nothing came from unix:\S+ since connecting: it serves one connection at a time, so another host \(a second ember-ga-ctl, libvirt\) may hold it$/,
      );
      assert.ok(took >= 140 && took < 350, `took ${took} ms`);
      assert.is((await ga.agentInfo()).name, 'ember-ga');
      await waitFor(() => unmatched.length === 1, 2_000, 'the late answer');
      assert.is(ga.inFlight, 0);
      // Once the agent has answered on this connection, a timeout is only a timeout.
      assert.match((await rejects(ga.ping())).message, /^ping: no answer from the agent within 150 ms$/);
      await waitFor(() => unmatched.length === 2, 2_000, 'the second late answer');
      // A per-call timeout overrides the client's.
      assert.ok(await ga.ping({ timeout: 2_000 }));
    },
    { timeout: 150 },
  ));

test('connection lost: requests in flight fail with ECONNRESET; the next call reconnects', () =>
  withStub({ silent: ['ping'] }, async (ga, stub) => {
    let connects = 0;
    ga.on('connect', () => connects++);
    await ga.connect();
    const pending = ga.ping();
    await waitFor(() => stub.requests.length === 1, 2_000, 'the request to arrive');
    stub.dropConnections();
    const e = await rejects(pending);
    assert.is(e.code, 'ECONNRESET');
    assert.match(e.message, /^ping: connection to unix:.* lost/);
    assert.is(ga.connected, false);
    assert.is((await ga.agentInfo()).name, 'ember-ga');
    assert.is(connects, 2);
    assert.is(stub.connections, 2);
  }));

test('reconnect: false: after a loss, calls fail with ENOTCONN', () =>
  withStub(
    {},
    async (ga, stub) => {
      await ga.ping();
      stub.dropConnections();
      await waitFor(() => !ga.connected, 2_000, 'the loss to be seen');
      const e = await rejects(ga.ping());
      assert.is(e.code, 'ENOTCONN');
      await ga.connect(); // an explicit connect still works
      assert.ok(await ga.ping());
    },
    { reconnect: false },
  ));

test('real agent restarted on the same socket: the client reconnects', async () => {
  let agent = await startAgent();
  const dir = tmpDir();
  const sock = path.join(dir, 'ga.sock');
  await agent.stop();
  agent = await startAgentWith(['--listen', `unix:${sock}`], sock, dir);
  const ga = await GuestAgent.connect({ socket: sock });
  try {
    assert.ok(await ga.ping());
    agent.proc.kill('SIGKILL');
    await agent.exited;
    await waitFor(() => !ga.connected, 2_000, 'the loss to be seen');
    assert.is((await rejects(ga.ping())).code, 'ECONNREFUSED');
    agent = await startAgentWith(['--listen', `unix:${sock}`], sock, dir);
    assert.ok(await ga.ping());
  } finally {
    await ga.close();
    await agent.stop();
  }
});

test('0.7.1 protocol (stub): detected, 4096-byte chunks, one request per handle, empty eof write', () =>
  withStub({ reference: true }, async (ga, stub, dir) => {
    const f = await ga.features();
    assert.equal(f, {
      protocol: 'phoenix',
      emberGa: false,
      version: '0.7.1',
      maxReadSize: 4096,
      maxLineBytes: 65536,
      orderedHandles: false,
      atomicWrite: false,
      readMd5: false,
    });
    const src = path.join(dir, 'src');
    const sum = randomFile(src, MiB + 123);
    const up = await ga.copyTo(src, path.join(dir, 'guest'));
    assert.equal(
      [up.bytes, up.md5, up.chunkSize, up.inFlight, up.emberGa, up.verified],
      [MiB + 123, sum, 4096, 1, false, true],
    );
    assert.is(md5Of(path.join(dir, 'guest')), sum);
    const writes = stub.requests
      .filter((r) => r.execute === 'file-write')
      .map((r) => r.arguments as { bufb64: string; eof: boolean });
    assert.ok(writes.slice(0, -1).every((w) => !w.eof && Buffer.from(w.bufb64, 'base64').length <= 4096));
    assert.equal(writes[writes.length - 1], {
      handle_id: writes[0] && (stub.requests.find((r) => r.execute === 'file-write')!.arguments.handle_id as number),
      bufb64: '',
      eof: true,
    });
    const down = await ga.copyFrom(path.join(dir, 'guest'), path.join(dir, 'back'));
    assert.equal([down.bytes, down.md5, down.chunkSize, down.inFlight], [MiB + 123, sum, 4096, 1]);
    assert.is(md5Of(path.join(dir, 'back')), sum);
    assert.is(stub.maxPerHandle, 1);
    assert.ok(stub.requests.filter((r) => r.execute === 'file-read').every((r) => !('size' in r.arguments)));
    // Empty files both ways.
    fs.writeFileSync(path.join(dir, 'empty'), '');
    assert.is((await ga.copyTo(path.join(dir, 'empty'), path.join(dir, 'guest-empty'))).bytes, 0);
    assert.is((await ga.copyFrom(path.join(dir, 'guest-empty'), path.join(dir, 'back-empty'))).bytes, 0);
    assert.is(fs.statSync(path.join(dir, 'back-empty')).size, 0);
  }));

test('ember-ga protocol (stub): large chunks, several requests in flight, data with the eof write', () =>
  withStub({}, async (ga, stub, dir) => {
    const src = path.join(dir, 'src');
    const sum = randomFile(src, 5 * MiB + 7);
    const up = await ga.copyTo(src, path.join(dir, 'guest'));
    assert.equal([up.md5, up.chunkSize, up.inFlight], [sum, MiB, 4]);
    const writes = stub.requests
      .filter((r) => r.execute === 'file-write')
      .map((r) => r.arguments as { bufb64: string; eof: boolean });
    assert.is(writes.length, 6);
    assert.ok(writes[5].eof && Buffer.from(writes[5].bufb64, 'base64').length === 7);
    const down = await ga.copyFrom(path.join(dir, 'guest'), path.join(dir, 'back'));
    assert.equal([down.md5, down.chunkSize, down.inFlight, down.verified], [sum, MiB, 4, true]);
    assert.ok(
      stub.requests.some((r) => r.execute === 'get-file-md5sum'),
      'without read_md5, get-file-md5sum checks a download',
    );
    assert.ok(stub.maxPerHandle > 1, 'requests were pipelined');
    assert.ok(stub.requests.filter((r) => r.execute === 'file-read').every((r) => r.arguments.size === MiB));
    // An ember-ga without atomic_write and read_md5 ignores unknown arguments: none are sent to it.
    assert.equal([(await ga.features()).atomicWrite, (await ga.features()).readMd5], [false, false]);
    assert.ok(stub.requests.every((r) => !('atomic' in (r.arguments ?? {})) && !('md5' in (r.arguments ?? {}))));
    const e = await rejects(ga.copyTo(src, path.join(dir, 'guest'), { atomic: true }));
    assert.is(e.code, 'ENOTSUP');
  }));

test('bad chunkSize, inFlight and timeouts throw at once (TypeError, RangeError), before any request', () =>
  withStub({}, async (ga, stub, dir) => {
    const src = path.join(dir, 'src');
    fs.writeFileSync(src, 'x');
    const bad: [Record<string, unknown>, typeof TypeError, RegExp][] = [
      [{ chunkSize: 0 }, RangeError, /^chunkSize must be a whole number >= 1, got 0$/],
      [{ chunkSize: -4096 }, RangeError, /^chunkSize must be a whole number >= 1, got -4096$/],
      [{ chunkSize: 1.5 }, TypeError, /^chunkSize must be a whole number >= 1, got 1\.5$/],
      [{ chunkSize: Number.NaN }, TypeError, /got NaN$/],
      [{ chunkSize: '4096' }, TypeError, /^chunkSize must be a whole number >= 1, got "4096"$/],
      [{ inFlight: 0 }, RangeError, /^inFlight must be a whole number >= 1, got 0$/],
      [{ inFlight: Infinity }, TypeError, /^inFlight must be a whole number >= 1, got Infinity$/],
      [{ finishTimeout: 0 }, RangeError, /^finishTimeout must be more than 0 and at most \d+ ms, got 0$/],
      [{ finishTimeout: '1000' }, TypeError, /^finishTimeout must be a number of milliseconds, got "1000"$/],
    ];
    for (const [opts, type, re] of bad) {
      assert.throws(
        () => ga.copyTo(src, path.join(dir, 'guest'), opts),
        (e: Error) => e instanceof type && re.test(e.message),
        JSON.stringify(opts),
      );
      assert.throws(
        () => ga.copyFrom(src, path.join(dir, 'back'), opts),
        (e: Error) => e instanceof type && re.test(e.message),
        JSON.stringify(opts),
      );
    }
    assert.equal(stub.requests, [], 'nothing was sent');
    // A timer past 2^31-1 ms would fire at once: every request would time out.
    assert.throws(
      () => new GuestAgent({ socket: stub.path, timeout: 3e9 }),
      (e: Error) =>
        e instanceof RangeError &&
        /^timeout must be more than 0 and at most 2147483647 ms, got 3000000000$/.test(e.message),
    );
    assert.throws(
      () => new GuestAgent({ socket: stub.path, connectTimeout: 0 }),
      (e: Error) => e instanceof RangeError,
    );
    const e = await ga.ping({ timeout: -1 }).then(
      () => undefined,
      (x: Error) => x,
    );
    assert.instance(e, RangeError);
    assert.equal(stub.requests, []);
    const up = await ga.copyTo(src, path.join(dir, 'guest'), { chunkSize: 1, inFlight: 1 });
    assert.equal([up.bytes, up.chunkSize, up.inFlight], [1, 1, 1]);
  }));

test('file-read answers in another key order are decoded through JSON; raw calls get the wire shape', () =>
  withStub({ eofFirst: true }, async (ga, _stub, dir) => {
    const src = path.join(dir, 'src');
    const sum = randomFile(src, 2 * MiB + 9);
    assert.is((await ga.copyFrom(src, path.join(dir, 'back'))).md5, sum);
    assert.is(md5Of(path.join(dir, 'back')), sum);
    const h = await ga.fileOpen(src);
    assert.equal(Object.keys(await ga.call<object>('file-read', { handle_id: h, size: 3 })), ['eof', 'bufb64']);
  }));

test(
  'listen mode (QEMU chardev socket server=off): the client waits for the connection',
  async () => {
    const agent = await startAgent();
    const dir = tmpDir();
    const listen = path.join(dir, 'host.sock');
    const ga = new GuestAgent({ listen, connectTimeout: 5_000 });
    const connecting = ga.connect();
    await waitFor(() => fs.existsSync(listen), 2_000, 'the client to listen');
    const bridge = spawn('socat', [`UNIX-CONNECT:${listen}`, `UNIX-CONNECT:${agent.socket}`], { stdio: 'ignore' });
    try {
      await connecting;
      assert.ok(await ga.ping());
    } finally {
      await ga.close();
      bridge.kill();
      await agent.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs: [command('socat')] },
);

test(
  'pty (QEMU chardev pty): calls, hang-up fails requests in flight, reconnect when the pty returns',
  async () => {
    const agent = await startAgent();
    const dir = tmpDir();
    let bridge = await startPtyBridge(dir, agent.socket);
    const ga = await GuestAgent.connect({ device: bridge.device, connectTimeout: 5_000 });
    try {
      const all = await Promise.all(Array.from({ length: 200 }, () => ga.ping()));
      assert.ok(all.every((v) => v === all[0]));
      assert.is((await ga.features()).emberGa, true);
      await bridge.stop();
      await waitFor(() => !ga.connected, 3_000, 'the hang-up to be seen');
      bridge = await startPtyBridge(dir, agent.socket);
      assert.ok(await ga.ping());
    } finally {
      await ga.close();
      await bridge.stop();
      await agent.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs: [command('socat')] },
);

// ---- copies against the real agent (need the file commands) ----

test(
  '100 MiB each way over the unix socket, md5-verified, progress to the end, no temp files',
  () =>
    withAgent(async (ga, dir) => {
      const src = path.join(dir, 'src');
      const sum = randomFile(src, 100 * MiB);
      const seen: Progress[] = [];
      const up = ga.copyTo(src, path.join(dir, 'guest'));
      up.on('progress', (p: Progress) => seen.push(p));
      const r = await up;
      assert.equal([r.bytes, r.md5, r.verified, r.chunkSize], [100 * MiB, sum, true, MiB]);
      assert.is(md5Of(path.join(dir, 'guest')), sum);
      const copying = seen.filter((p) => p.phase === 'copy');
      assert.is(copying[copying.length - 1].bytes, 100 * MiB);
      assert.ok(copying.every((p, i) => p.total === 100 * MiB && (i === 0 || p.bytes > copying[i - 1].bytes)));
      assert.is(seen[seen.length - 1].phase, 'verify');
      fs.rmSync(src);
      let events = 0;
      const down = await ga.copyFrom(path.join(dir, 'guest'), path.join(dir, 'back'), { onProgress: () => events++ });
      assert.equal([down.bytes, down.md5], [100 * MiB, sum]);
      assert.ok(events >= 100);
      assert.is(md5Of(path.join(dir, 'back')), sum);
      assert.equal(partFiles(dir), []);
    }),
  { needs: files, timeout: 60_000 },
);

test(
  'over a pty: 100 MiB each way, md5-verified',
  () =>
    withAgent(
      async (ga, dir) => {
        const src = path.join(dir, 'src');
        const sum = randomFile(src, 100 * MiB + 5);
        assert.is((await ga.copyTo(src, path.join(dir, 'guest'))).md5, sum);
        assert.is((await ga.copyFrom(path.join(dir, 'guest'), path.join(dir, 'back'))).md5, sum);
        assert.is(md5Of(path.join(dir, 'back')), sum);
      },
      { pty: true },
    ),
  { needs: [...files, command('socat')], timeout: 60_000 },
);

test(
  'agent with --no-large-reads: 4096-byte reads, still pipelined and verified',
  () =>
    withAgent(
      async (ga, dir) => {
        const f = await ga.features();
        assert.is(f.maxReadSize, 4096);
        const src = path.join(dir, 'src');
        const sum = randomFile(src, 3 * MiB + 1);
        const up = await ga.copyTo(src, path.join(dir, 'guest'));
        assert.equal([up.md5, up.chunkSize], [sum, MiB]); // writes are not limited by the flag
        const down = await ga.copyFrom(path.join(dir, 'guest'), path.join(dir, 'back'));
        assert.equal([down.md5, down.chunkSize, down.inFlight], [sum, 4096, 64]);
        assert.is(md5Of(path.join(dir, 'back')), sum);
      },
      { flags: ['--no-large-reads'] },
    ),
  { needs: files },
);

test(
  'agent killed mid-copy: a clear error, no partial file (unless keepPartial)',
  async () => {
    const dir = tmpDir();
    const src = path.join(dir, 'src');
    const size = 64 * MiB;
    randomFile(src, size);
    try {
      for (const keepPartial of [false, true]) {
        const agent = await startAgent();
        const ga = await GuestAgent.connect({ socket: agent.socket });
        const dest = path.join(dir, `dest-${keepPartial}`);
        const t = ga.copyFrom(src, dest, { keepPartial, chunkSize: 256 * 1024 });
        t.on('progress', (p: Progress) => {
          if (p.bytes >= 4 * MiB && agent.proc.exitCode === null) agent.proc.kill('SIGKILL');
        });
        const e = await rejects(t);
        assert.is(e.code, 'ECONNRESET');
        assert.match(e.message, /^file-read: connection to unix:.* lost/);
        assert.equal(partFiles(dir), []);
        if (keepPartial) {
          const got = fs.statSync(dest).size;
          assert.ok(got >= 4 * MiB && got < size, `kept ${got} bytes`);
        } else {
          assert.not.ok(fs.existsSync(dest));
        }
        await ga.close();
        await agent.stop();
      }
      // Upload: the error names the failed request; the guest file is as it was (an atomic
      // upload), and nothing is left beside it: the new file had no name yet (O_TMPFILE).
      const agent = await startAgent();
      const ga = await GuestAgent.connect({ socket: agent.socket });
      const up = path.join(dir, 'up');
      fs.writeFileSync(up, 'the previous version');
      const t = ga.copyTo(src, up, { chunkSize: 256 * 1024 });
      t.on('progress', (p: Progress) => {
        if (p.bytes >= 4 * MiB && agent.proc.exitCode === null) agent.proc.kill('SIGKILL');
      });
      const e = await rejects(t);
      assert.is(e.code, 'ECONNRESET');
      assert.is(fs.readFileSync(up, 'utf8'), 'the previous version');
      assert.equal(partFiles(dir), [], 'the killed agent left no temporary file');
      await ga.close();
      await agent.stop();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs: files, timeout: 60_000 },
);

test(
  'uploads replace the guest file atomically: an aborted copy leaves it as it was; a FIFO is written in place',
  () =>
    withAgent(async (ga, dir) => {
      assert.is((await ga.features()).atomicWrite, true);
      const src = path.join(dir, 'src');
      const sum = randomFile(src, 16 * MiB);
      const dst = path.join(dir, 'guest');
      fs.writeFileSync(dst, 'version 1');
      fs.chmodSync(dst, 0o640);
      const ac = new AbortController();
      const t = ga.copyTo(src, dst, { chunkSize: 256 * 1024, signal: ac.signal });
      t.on('progress', (p: Progress) => {
        if (p.bytes >= 4 * MiB) ac.abort();
      });
      assert.is((await rejects(t)).code, 'ABORT_ERR');
      await waitFor(() => partFiles(dir).length === 0, 5000, 'the discarded temporary file to go');
      assert.is(fs.readFileSync(dst, 'utf8'), 'version 1');
      const r = await ga.copyTo(src, dst);
      assert.equal([r.atomic, r.verified, r.md5], [true, true, sum]);
      assert.is(md5Of(dst), sum);
      assert.is(fs.statSync(dst).mode & 0o777, 0o640, 'an existing file keeps its mode');
      // A FIFO cannot be replaced: written in place (unless atomic is asked for).
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const reader = fs.createReadStream(fifo);
      const got: Buffer[] = [];
      reader.on('data', (d) => got.push(d as Buffer));
      const ended = once(reader, 'end'); // may come before the copy's last answer
      const e = await rejects(ga.copyTo(Readable.from([Buffer.from('x')]), fifo, { atomic: true }));
      assert.is(e.code, 'EINVAL');
      // Checked as it is written: the md5 of the bytes written to it (nothing to read back).
      const w = await ga.copyTo(Readable.from([Buffer.from('through the fifo')]), fifo);
      assert.equal([w.atomic, w.verified], [false, true]);
      await ended;
      assert.is(Buffer.concat(got).toString(), 'through the fifo');
      assert.equal(partFiles(dir), []);
    }),
  { needs: [...files, command('mkfifo')] },
);

test(
  'an upload to a block device smaller than it is checked against the bytes written, not the whole disk',
  () =>
    withAgent(async (ga, dir) => {
      const img = path.join(dir, 'disk.img');
      fs.writeFileSync(img, Buffer.alloc(4 * MiB, 0x5a)); // the disk: 4 MiB, the image written to it: 300 KiB
      const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
      try {
        const src = path.join(dir, 'image');
        const sum = randomFile(src, 300 * 1024);
        const r = await ga.copyTo(src, dev);
        assert.equal([r.atomic, r.verified, r.md5], [false, true, sum]);
        execFileSync('losetup', ['-d', dev]);
        const disk = fs.readFileSync(img);
        assert.ok(disk.subarray(0, 300 * 1024).equals(fs.readFileSync(src)), 'the image is at the start of the disk');
        assert.is(disk[300 * 1024], 0x5a, 'the rest of the disk as it was');
      } finally {
        spawnSync('losetup', ['-d', dev]);
      }
    }),
  { needs: [...files, root, command('losetup')] },
);

test(
  'an upload to a character device is written in place and checked against the bytes written to it',
  () =>
    withAgent(async (ga, dir, agent) => {
      const dev = path.join(dir, 'null'); // /dev/null's numbers, a node of the test's own
      execFileSync('mknod', ['-m', '666', dev, 'c', '1', '3']);
      const src = path.join(dir, 'src');
      const sum = randomFile(src, 200 * 1024);
      const r = await ga.copyTo(src, dev);
      assert.equal([r.atomic, r.verified, r.md5], [false, true, sum]);
      assert.ok(fs.lstatSync(dev).isCharacterDevice());
      // Through ember-ga-ctl: exit 0, as for a file (the agent serves one host at a time).
      await ga.close();
      const c = await ctl(['-s', agent.socket, 'cp', src, `guest:${dev}`]);
      assert.is(c.status, 0, c.stderr);
    }),
  { needs: [...files, root, command('mknod')] },
);

test(
  'an upload to a bind-mounted file (rename cannot replace it) is written in place',
  () =>
    withAgent(async (ga, dir) => {
      const target = path.join(dir, 'resolv.conf');
      const source = path.join(dir, 'source');
      fs.writeFileSync(target, 'underneath');
      fs.writeFileSync(source, 'nameserver 192.0.2.1\n');
      await withBindMount(source, target, async () => {
        const r = await ga.copyTo(Readable.from([Buffer.from('nameserver 198.51.100.7\n')]), target);
        assert.equal([r.atomic, r.verified], [false, true]);
        assert.is(fs.readFileSync(target, 'utf8'), 'nameserver 198.51.100.7\n');
        assert.is(fs.readFileSync(source, 'utf8'), 'nameserver 198.51.100.7\n'); // the same file
        assert.is(
          (await rejects(ga.copyTo(Readable.from([Buffer.from('x')]), target, { atomic: true }))).code,
          'EINVAL',
        );
      });
      assert.equal(partFiles(dir), []);
    }),
  { needs: [...files, root, command('mount')] },
);

test(
  'an upload to a path too long for the temporary name beside it (ENAMETOOLONG at the open) is written in place',
  () =>
    withAgent(async (ga, dir) => {
      const f = longPath(dir, 4080);
      fs.writeFileSync(f, 'old');
      const t = ga.copyTo(Readable.from([Buffer.from('new content')]), f);
      const refusals: GuestAgentError[] = [];
      t.on('inPlace', (e: GuestAgentError) => refusals.push(e));
      const r = await t;
      assert.equal([r.atomic, r.verified], [false, true]);
      assert.equal(
        refusals.map((e) => [e.code, e.remote]),
        [['ENAMETOOLONG', true]],
        "'inPlace' tells why, once",
      );
      assert.is(fs.readFileSync(f, 'utf8'), 'new content');
      const e = await rejects(ga.copyTo(Readable.from([Buffer.from('x')]), f, { atomic: true }));
      assert.is(e.code, 'ENAMETOOLONG');
      assert.match(e.message, /without atomic the file is written in place$/);
    }),
  { needs: files },
);

test(
  'no room for the new file beside the old one (ENOSPC): the upload fails, the guest file untouched',
  () =>
    withAgent(async (ga, dir) => {
      // Two inodes: the root directory and the file. Writing in place would fit, but would
      // truncate the file first; the copy must fail instead.
      await withTmpfs(dir, 'full', 'size=1m,nr_inodes=2', async (mnt) => {
        const f = path.join(mnt, 'f');
        fs.writeFileSync(f, 'precious');
        const e = await rejects(ga.copyTo(Readable.from([Buffer.from('new content')]), f));
        assert.is(e.code, 'ENOSPC');
        assert.match(e.message, /cannot create the temporary file beside it: no space left on device/);
        assert.is(fs.readFileSync(f, 'utf8'), 'precious');
        const r = await ga.copyTo(Readable.from([Buffer.from('new content')]), f, { atomic: false }); // asked for: in place
        assert.is(r.atomic, false);
        assert.is(fs.readFileSync(f, 'utf8'), 'new content');
      });
    }),
  { needs: [...files, root, command('mount')] },
);

/** What a copy that should fail rejects with (a local failure need not be a GuestAgentError). */
async function failure(p: PromiseLike<unknown>): Promise<NodeJS.ErrnoException> {
  return p.then(
    () => assert.unreachable('the copy succeeded') as never,
    (e) => e as NodeJS.ErrnoException,
  );
}

test(
  'a failed upload has closed its guest handle when it rejects: ENOSPC in place (the space is free once the file is deleted) and atomic, a failing source',
  () =>
    withAgent(async (ga, dir, agent) => {
      const pid = agent.proc.pid!;
      const src = path.join(dir, 'src');
      randomFile(src, 3 * MiB);
      await withTmpfs(dir, 'full', 'size=1m', async (mnt) => {
        const f = path.join(mnt, 'f');
        assert.is((await failure(ga.copyTo(src, f, { atomic: false, chunkSize: 256 * 1024 }))).code, 'ENOSPC');
        assert.equal(fdsOn(pid, f), [], 'the agent holds nothing of the file');
        fs.rmSync(f);
        const st = fs.statfsSync(mnt);
        assert.is(st.bfree, st.blocks, 'the space of the deleted file is free');
        fs.writeFileSync(f, 'before');
        assert.is((await failure(ga.copyTo(src, f, { chunkSize: 256 * 1024 }))).code, 'ENOSPC');
        assert.equal(unnamed(pid, mnt), [], 'the new data was dropped');
        assert.is(fs.readFileSync(f, 'utf8'), 'before');
      });
      const g = path.join(dir, 'g');
      let chunks = 0;
      const failing = new Readable({
        read() {
          if (++chunks <= 4) this.push(Buffer.alloc(256 * 1024, chunks));
          else this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
        },
      });
      assert.is((await failure(ga.copyTo(failing, g, { atomic: false, chunkSize: 256 * 1024 }))).code, 'EIO');
      assert.equal(fdsOn(pid, g), []);
    }),
  { needs: [...files, root, command('mount')] },
);

test(
  'a failed download has closed its guest handle when it rejects: an abort while a read waits (FIFO), a failing Writable, a full local disk',
  () =>
    withAgent(async (ga, dir, agent) => {
      const pid = agent.proc.pid!;
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const writer = fs.openSync(fifo, fs.constants.O_RDWR); // a writer that never writes: reads wait
      try {
        const ac = new AbortController();
        const t = ga.copyFrom(fifo, path.join(dir, 'from-fifo'), { signal: ac.signal });
        await waitFor(() => fdsOn(pid, fifo).length > 0, 5_000, 'the agent to open the FIFO');
        await sleep(100);
        const t0 = Date.now();
        ac.abort();
        assert.is((await rejects(t)).code, 'ABORT_ERR');
        assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
        assert.equal(fdsOn(pid, fifo), []);
      } finally {
        fs.closeSync(writer);
      }
      const src = path.join(dir, 'src');
      randomFile(src, 16 * MiB);
      const sink = new Writable({
        write: (_chunk, _enc, cb) => cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })),
      });
      assert.is((await failure(ga.copyFrom(src, sink, { chunkSize: 256 * 1024 }))).code, 'EPIPE');
      assert.equal(fdsOn(pid, src), []);
      await withTmpfs(dir, 'host-full', 'size=1m', async (mnt) => {
        assert.is((await failure(ga.copyFrom(src, path.join(mnt, 'dest')))).code, 'ENOSPC');
        assert.equal(fdsOn(pid, src), []);
        assert.equal(fs.readdirSync(mnt), [], 'nothing left behind');
      });
      assert.equal(partFiles(dir), []);
    }),
  { needs: [...files, root, command('mount'), command('mkfifo')] },
);

/**
 * A proxy at `proxyPath` between a client and the agent that passes each line (a request going
 * up, an answer coming down) through `edit`, which may change it.
 */
async function lineProxy(
  agentSocket: string,
  proxyPath: string,
  edit: (line: string, up: boolean) => string,
): Promise<net.Server> {
  const proxy = net.createServer((c) => {
    const up = net.createConnection(agentSocket);
    const relay = (from: net.Socket, to: net.Socket, goingUp: boolean) => {
      let pending = '';
      from.on('data', (d: Buffer) => {
        pending += d.toString('latin1');
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          if (!to.destroyed) to.write(edit(pending.slice(0, nl + 1), goingUp), 'latin1');
          pending = pending.slice(nl + 1);
        }
      });
      // Either side may go first (the client's close, the agent's): the other follows, and a
      // write racing the close (EPIPE) must not take the test process down.
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    };
    relay(c, up, true);
    relay(up, c, false);
  });
  await new Promise<void>((r) => proxy.listen(proxyPath, r));
  return proxy;
}

/**
 * `run` with a client that reaches the agent through lineProxy(edit); `direct`, the test's own
 * client, is closed first: the agent serves one host connection at a time.
 */
async function viaProxy(
  direct: GuestAgent,
  agent: RunningAgent,
  dir: string,
  edit: (line: string, up: boolean) => string,
  run: (ga: GuestAgent) => Promise<void>,
): Promise<void> {
  await direct.close();
  const proxy = await lineProxy(agent.socket, path.join(dir, 'proxy.sock'), edit);
  const ga = await GuestAgent.connect({ socket: path.join(dir, 'proxy.sock') });
  try {
    await run(ga);
  } finally {
    await ga.close();
    proxy.close();
  }
}

/** line with the base64 character `skip` characters into the value of "bufb64" changed. */
function flipBase64(line: string, skip: number): string {
  const at = line.indexOf('"bufb64":"') + 10 + skip;
  return line.slice(0, at) + (line[at] === 'A' ? 'B' : 'A') + line.slice(at + 1);
}

test(
  'an upload corrupted on the way fails its md5 check before it replaces anything (ECHECKSUM)',
  () =>
    withAgent(async (direct, dir, agent) => {
      // One base64 character of the second write changed.
      let writes = 0;
      await viaProxy(
        direct,
        agent,
        dir,
        (line, up) => (up && line.includes('"file-write"') && ++writes === 2 ? flipBase64(line, 10) : line),
        async (ga) => {
          const dst = path.join(dir, 'guest');
          fs.writeFileSync(dst, 'intact');
          const src = path.join(dir, 'src');
          const sum = randomFile(src, 3 * MiB);
          const e = await rejects(ga.copyTo(src, dst, { chunkSize: MiB }));
          assert.is(e.code, 'ECHECKSUM');
          assert.match(
            e.message,
            new RegExp(
              `^copy to guest:.*guest: .*md5 mismatch: the data written has md5 [0-9a-f]{32}, not ${sum}; not replaced: the file is as it was$`,
            ),
          );
          assert.is(fs.readFileSync(dst, 'utf8'), 'intact');
          assert.equal(partFiles(dir), []);
        },
      );
    }),
  { needs: files },
);

test(
  'a download corrupted on the way fails the check against the md5 the agent sent (ECHECKSUM); nothing is left',
  () =>
    withAgent(async (direct, dir, agent) => {
      // One base64 character of the second file-read answer changed.
      let reads = 0;
      await viaProxy(
        direct,
        agent,
        dir,
        (line, up) => (!up && line.startsWith('{"return":{"bufb64":"') && ++reads === 2 ? flipBase64(line, 10) : line),
        async (ga) => {
          const src = path.join(dir, 'src');
          const sum = randomFile(src, 3 * MiB);
          const e = await rejects(ga.copyFrom(src, path.join(dir, 'dest'), { chunkSize: MiB }));
          assert.is(e.code, 'ECHECKSUM');
          assert.match(
            e.message,
            new RegExp(
              `^copy guest:.*src: md5 mismatch: the data received has md5 [0-9a-f]{32}, the agent sent data with md5 ${sum}$`,
            ),
          );
          assert.not.ok(fs.existsSync(path.join(dir, 'dest')));
          assert.equal(partFiles(dir), []);
        },
      );
    }),
  { needs: files },
);

test(
  'a file appended to while it is downloaded: verified against what the agent read; the copy is a prefix of the file',
  () =>
    withAgent(async (ga, dir) => {
      const f = path.join(dir, 'growing.log');
      fs.writeFileSync(f, randomBytes(MiB));
      let appends = 0;
      const t = ga.copyFrom(f, path.join(dir, 'copy'), { chunkSize: 64 * 1024, inFlight: 2 });
      t.on('progress', (p: Progress) => {
        if (p.phase === 'copy' && appends++ < 20) fs.appendFileSync(f, randomBytes(64 * 1024)); // a writer, while the copy reads
      });
      const r = await t;
      const got = fs.readFileSync(path.join(dir, 'copy'));
      assert.equal([r.verified, r.bytes, r.md5], [true, got.length, md5Of(path.join(dir, 'copy'))]);
      assert.ok(got.length > MiB, `the appended data was read too (${got.length} bytes)`);
      assert.ok(fs.readFileSync(f).subarray(0, got.length).equals(got), 'the copy is a prefix of the file');
      // A character device: get-file-md5sum refuses one, the md5 of what was read is that of nothing.
      const dn = await ga.copyFrom('/dev/null', path.join(dir, 'null'));
      assert.equal([dn.bytes, dn.verified, dn.md5], [0, true, 'd41d8cd98f00b204e9800998ecf8427e']);
      assert.is(fs.readFileSync(path.join(dir, 'null')).length, 0);
    }),
  { needs: files },
);

test(
  'a download onto a device or a FIFO is written into it, in place: the node stays what it was',
  () =>
    withAgent(async (ga, dir) => {
      const src = path.join(dir, 'guest');
      const sum = randomFile(src, 300 * 1024);
      // A FIFO, written through a symbolic link (as /dev/stdout in a pipe is): its reader gets the data.
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      fs.symlinkSync(fifo, path.join(dir, 'stdout'));
      const reader = new Promise<Buffer>((resolve, reject) =>
        fs.readFile(fifo, (e, b) => (e ? reject(e) : resolve(b))),
      );
      const r = await ga.copyFrom(src, path.join(dir, 'stdout'));
      assert.equal([r.bytes, r.md5, r.verified], [300 * 1024, sum, true]);
      assert.is(
        createHash('md5')
          .update(await reader)
          .digest('hex'),
        sum,
      );
      assert.ok(fs.lstatSync(fifo).isFIFO(), 'the FIFO is still a FIFO');
      // A character device of our own (/dev/null's numbers): it stays a device, and nothing is left beside it.
      const dev = path.join(dir, 'null');
      execFileSync('mknod', ['-m', '666', dev, 'c', '1', '3']);
      assert.equal((await ga.copyFrom(src, dev)).md5, sum);
      const st = fs.lstatSync(dev);
      assert.ok(st.isCharacterDevice(), 'the device node is still a device');
      assert.is(st.rdev, fs.statSync('/dev/null').rdev);
      assert.equal(partFiles(dir), []);
    }),
  { needs: [...files, root, command('mkfifo'), command('mknod')] },
);

test(
  'a download onto a FIFO nobody reads, or nobody opens, ends at its abort',
  () =>
    withAgent(async (ga, dir) => {
      const src = path.join(dir, 'guest');
      randomFile(src, MiB);
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      // Nobody opens it: the open waits for a reader, until the abort.
      let ac = new AbortController();
      let t = ga.copyFrom(src, fifo, { signal: ac.signal });
      await sleep(300);
      ac.abort();
      assert.is((await rejects(t)).code, 'ABORT_ERR');
      // The open still waiting on the pool ends when a reader comes, and is closed at once.
      let reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      fs.closeSync(reader);
      // A reader that never reads: the writes fill the pipe and wait, until the abort.
      reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        ac = new AbortController();
        t = ga.copyFrom(src, fifo, { signal: ac.signal });
        await sleep(500);
        ac.abort();
        assert.is((await rejects(t)).code, 'ABORT_ERR');
      } finally {
        fs.closeSync(reader); // the blocked write ends (EPIPE) and its handle closes
      }
      assert.ok(fs.lstatSync(fifo).isFIFO());
      assert.ok(await ga.ping());
    }),
  { needs: [...files, command('mkfifo')] },
);

test(
  'stat and readdir with exact: an inode number past 2^53 (overlayfs xino) comes back as the exact bigint',
  () =>
    withAgent(async (ga, dir, agent) => {
      await withXinoOverlay(dir, async (merged, f, ino) => {
        assert.is((await ga.statFile(f, { exact: true })).stat.Ino, ino);
        const [entry] = await ga.listDirectory(merged, 0, { exact: true });
        assert.is(entry.stat.Ino, ino);
        assert.is(typeof entry.stat.Size, 'number'); // small values stay numbers
        const plain = await ga.statFile(f); // JSON.parse: a number, rounded
        assert.is(typeof plain.stat.Ino, 'number');
        assert.is.not(BigInt(plain.stat.Ino), ino);
        // ember-ga-ctl stat and ls print it exact, as text and as --json (the agent serves one
        // host connection at a time: the client steps aside).
        await ga.close();
        const run = async (...args: string[]) => {
          const r = await ctl(['-s', agent.socket, ...args]);
          assert.is(r.status, 0, r.stderr);
          return r.stdout;
        };
        assert.match(await run('stat', f), new RegExp(`Inode: ${ino}\\b`));
        assert.ok((await run('--json', 'stat', f)).includes(`"Ino":${ino},`));
        assert.ok((await run('--json', 'ls', merged)).includes(`"Ino":${ino},`));
      });
    }),
  { needs: [...files, root, command('mount'), command('stat')] },
);

test(
  'copy errors: missing guest file, a directory, a missing guest directory, a missing local file',
  () =>
    withAgent(async (ga, dir) => {
      let e = await rejects(ga.copyFrom('/nonexistent/ember-ga/x', path.join(dir, 'x')));
      assert.is(e.code, 'ENOENT');
      assert.is(e.remote, true);
      assert.not.ok(fs.existsSync(path.join(dir, 'x')));
      e = await rejects(ga.copyFrom(dir, path.join(dir, 'y')));
      assert.is(e.code, 'EISDIR');
      e = await rejects(ga.copyTo(Readable.from([Buffer.from('x')]), '/nonexistent/ember-ga/y'));
      assert.is(e.code, 'ENOENT');
      assert.match(e.message, /\/nonexistent\/ember-ga\/y/);
      await ga.copyTo(path.join(dir, 'missing'), path.join(dir, 'z')).then(
        () => assert.unreachable('copied a missing file'),
        (err) => assert.is((err as NodeJS.ErrnoException).code, 'ENOENT'),
      );
      assert.equal(partFiles(dir), []);
      assert.ok(await ga.ping());
    }),
  { needs: files },
);

test(
  'streams: copyTo from a Readable, copyFrom into a Writable, empty files',
  () =>
    withAgent(async (ga, dir) => {
      const parts = Array.from({ length: 50 }, (_, i) => Buffer.alloc(30_001 + i, i));
      const whole = Buffer.concat(parts);
      const up = await ga.copyTo(Readable.from(parts), path.join(dir, 'g'), { perm: 0o600 });
      assert.is(up.bytes, whole.length);
      assert.is(fs.statSync(path.join(dir, 'g')).mode & 0o777, 0o600);
      const sink = new PassThrough();
      const got: Buffer[] = [];
      sink.on('data', (d: Buffer) => got.push(d));
      await ga.copyFrom(path.join(dir, 'g'), sink);
      assert.ok(Buffer.concat(got).equals(whole));
      // fileRead decodes; call('file-read') gives the wire shape.
      const h = await ga.fileOpen(path.join(dir, 'g'));
      assert.equal(await ga.call('file-read', { handle_id: h, size: 5 }), {
        bufb64: whole.subarray(0, 5).toString('base64'),
        eof: false,
      });
      const r = await ga.fileRead(h, 7);
      assert.ok(r.data.equals(whole.subarray(5, 12)) && r.eof === false);
      assert.is(await ga.fileClose(h), undefined);
      fs.writeFileSync(path.join(dir, 'empty'), '');
      assert.is((await ga.copyTo(path.join(dir, 'empty'), path.join(dir, 'g-empty'))).bytes, 0);
      assert.is((await ga.copyFrom(path.join(dir, 'g-empty'), path.join(dir, 'back-empty'))).bytes, 0);
      assert.is(fs.readFileSync(path.join(dir, 'back-empty')).length, 0);
    }),
  { needs: files },
);

test.run();
void sleep;
