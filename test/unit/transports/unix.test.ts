import * as assert from 'uvu/assert';
import * as path from 'path';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import { chunkPool } from '../../../lib/buffers';
import { UnixTransport } from '../../../lib/transports/unix';
import { silentLogger } from '../../../lib/log';
import { LineClient, tmpDir } from '../../helpers/agent';
import { suite, sleep, waitFor } from '../../helpers/harness';
import { RecordingSink } from '../../helpers/sink';

const test = suite('unix transport');
const MiB = 1024 * 1024;

/** A UnixTransport on DIR/s.sock, started with a recording sink, for the time fn takes. */
async function withTransport(
  fn: (t: UnixTransport, sink: RecordingSink, sockPath: string) => Promise<void>,
): Promise<void> {
  const dir = tmpDir();
  const sockPath = path.join(dir, 's.sock');
  const t = new UnixTransport(sockPath, silentLogger);
  const sink = new RecordingSink();
  await t.start(sink);
  try {
    await fn(t, sink, sockPath);
  } finally {
    await t.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The sizes chunkPool.take is asked for while fn runs. */
async function recordingTakes(fn: (taken: number[]) => Promise<void>): Promise<void> {
  const take = chunkPool.take;
  const taken: number[] = [];
  chunkPool.take = (size: number) => {
    taken.push(size);
    return take.call(chunkPool, size);
  };
  try {
    await fn(taken);
  } finally {
    chunkPool.take = take;
  }
}

/** A host's raw connection, once the transport has its session. */
async function connectHost(sink: RecordingSink, sockPath: string): Promise<net.Socket> {
  const host = net.createConnection(sockPath);
  await new Promise((r) => host.once('connect', r));
  await waitFor(() => sink.sessions.length === 1, 5_000, 'the connection to be active');
  return host;
}

test('an answer computed after the host half-closed still reaches it, then the agent closes', () =>
  withTransport(async (_t, sink, sockPath) => {
    const c = await LineClient.connect(sockPath);
    await waitFor(() => sink.sessions.length === 1, 5_000, 'the session');
    const s = sink.sessions[0];
    s.busy = true; // a request in flight
    c.sock.end('{"execute":"slow"}\n');
    await waitFor(() => s.received.length > 0, 5_000, 'the request');
    await sleep(100); // the host's FIN has arrived; the answer is still being computed
    s.output('{"return":"late","tag":""}\n');
    s.release();
    const [a] = await c.waitLines(1);
    assert.is(a.return, 'late');
    await waitFor(() => c.closed, 5_000, 'the agent to close its side');
  }));

test('large answers go out from reused buffers: the bytes arrive exact and in order, and the buffers come back', () =>
  withTransport(async (t, sink, sockPath) => {
    const host = net.createConnection(sockPath);
    await new Promise((r) => host.once('connect', r));
    await waitFor(() => t.queued === 0, 5_000, 'the connection to be active');
    host.pause(); // the host does not read yet: answers wait in the socket's queue
    const answers = [1, 2, 3, 4].map((i) =>
      Buffer.from(`{"return":"${crypto.randomBytes(300 * 1024 + i).toString('base64')}","tag":"${i}"}\n`),
    );
    for (const a of answers) sink.sessions[0].output(a);
    // What the pool holds once the copies are taken (some may be earlier tests' buffers); each
    // comes back only when written, and nothing is written before this turn ends.
    const kept = chunkPool.kept;
    for (const a of answers) a.fill(0x20); // the caller's buffers are free once write() returns
    const got: Buffer[] = [];
    host.on('data', (d: Buffer) => got.push(d));
    host.resume();
    const want = answers.reduce((n, a) => n + a.length, 0);
    await waitFor(() => got.reduce((n, d) => n + d.length, 0) >= want, 10_000, 'every answer');
    const lines = Buffer.concat(got)
      .toString('latin1')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { return: string; tag: string });
    assert.equal(
      lines.map((l) => [l.tag, Buffer.from(l.return, 'base64').length]),
      [1, 2, 3, 4].map((i) => [String(i), 300 * 1024 + i]),
    );
    await waitFor(
      () => chunkPool.kept >= kept + 4 * 512 * 1024 || chunkPool.kept === chunkPool.keep,
      5_000,
      'the buffers back in the pool',
    );
    host.destroy();
  }));

test('an answer larger than the pool ever keeps goes out as it is: a copy would only cost time and memory', () =>
  withTransport((_t, sink, sockPath) =>
    recordingTakes(async (taken) => {
      const host = await connectHost(sink, sockPath);
      // 6 MiB: its size class, 8 MiB, is over a quarter of the pool's 16 MiB (a directory listing's
      // answer is tens of MB); 300 KiB still goes through the pool.
      const big = Buffer.from(`{"return":"${crypto.randomBytes(6 * 1024 * 1024).toString('base64')}","tag":"big"}\n`);
      const small = Buffer.from(`{"return":"${crypto.randomBytes(300 * 1024).toString('base64')}","tag":"small"}\n`);
      sink.sessions[0].output(big);
      sink.sessions[0].output(small);
      const got: Buffer[] = [];
      host.on('data', (d: Buffer) => got.push(d));
      await waitFor(() => got.reduce((n, d) => n + d.length, 0) >= big.length + small.length, 10_000, 'both answers');
      assert.ok(Buffer.concat(got).equals(Buffer.concat([big, small])));
      assert.equal(taken, [small.length]);
      host.destroy();
    }),
  ));

test('an answer in pieces the pool keeps goes out from one reused buffer; one larger, as its pieces', () =>
  withTransport((_t, sink, sockPath) =>
    recordingTakes(async (taken) => {
      const host = await connectHost(sink, sockPath);
      const pieces = (n: number) => [
        Buffer.from('{"return":{"bufb64":"'),
        Buffer.from(crypto.randomBytes(n).toString('base64')),
        Buffer.from('","eof":false},"tag":"x"}\n'),
      ];
      const chunk = pieces(MiB);
      const listing = pieces(6 * MiB);
      const want = Buffer.concat([...chunk, ...listing]);
      const chunkBytes = Buffer.concat(chunk).length; // the pieces are the transport's once sent
      sink.sessions[0].output(chunk);
      sink.sessions[0].output(listing);
      const got: Buffer[] = [];
      host.on('data', (d: Buffer) => got.push(d));
      await waitFor(() => got.reduce((n, d) => n + d.length, 0) >= want.length, 10_000, 'both answers');
      assert.ok(Buffer.concat(got).equals(want));
      assert.equal(taken, [chunkBytes]);
      host.destroy();
    }),
  ));

test("an answer's own pieces (64 KiB or more) are freed once copied or written; a Buffer line is left as it is", () =>
  withTransport(async (_t, sink, sockPath) => {
    const host = await connectHost(sink, sockPath);
    const pieces = (n: number) => [
      Buffer.from('{"return":{"bufb64":"'),
      Buffer.from(crypto.randomBytes(n).toString('base64')),
      Buffer.from('","eof":false},"tag":"x"}\n'),
    ];
    const chunk = pieces(MiB); // copied into a reused buffer
    const read = pieces(6 * MiB); // written piece by piece
    const line = Buffer.from(crypto.randomBytes(MiB).toString('base64') + '\n'); // copied, not the transport's
    const want = Buffer.concat([...chunk, ...read, line]);
    const got: Buffer[] = [];
    host.on('data', (d: Buffer) => got.push(d));
    sink.sessions[0].output(chunk);
    assert.is(chunk[1].length, 0, 'a copied piece is freed at once');
    sink.sessions[0].output(read);
    sink.sessions[0].output(line);
    await waitFor(() => got.reduce((n, d) => n + d.length, 0) >= want.length, 10_000, 'every answer');
    assert.ok(Buffer.concat(got).equals(want));
    await waitFor(() => read[1].length === 0, 5_000, 'the written piece freed');
    assert.equal(
      [chunk[0].length, chunk[2].length, read[0].length, read[2].length],
      [21, 26, 21, 26],
      'short pieces untouched',
    );
    assert.ok(line.length > MiB, 'the Buffer line untouched');
    host.destroy();
  }));

test.run();
