// The per-request bench's stand-in guest (bench/helpers/stand-in-guest.ts, phoenix mode) answers
// the hosts' requests with the very bytes ember-ga sends for them, so a host parses the same
// lines from either: the same requests go to both, each through a bridge of its own, and every
// answer line is compared. And the project's client downloads from it, verified.
import type { ChildProcess } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import type * as net from 'net';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { EMBER_GA, connectHost, kill, spawnBridgedAgent, standInGuest, type Bridge } from '../../bench/helpers/bridge';
import { GuestAgent } from '../../lib/client/guest-agent';
import { tmpDir } from '../helpers/agent';
import { command, rejection, suite } from '../helpers/harness';

const test = suite('bench stand-in guest');

/** Sends each line and collects each answer line, one at a time. */
async function answers(sock: net.Socket, lines: string[]): Promise<string[]> {
  const got: string[] = [];
  let buf = '';
  let wake: (() => void) | undefined;
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    wake?.();
  });
  for (const line of lines) {
    sock.write(line);
    while (!buf.includes('\n')) await new Promise<void>((r) => (wake = r));
    const nl = buf.indexOf('\n');
    got.push(buf.slice(0, nl + 1));
    buf = buf.slice(nl + 1);
  }
  return got;
}

/** The requests: untagged (the minimal hosts), tagged with \r\n (the client), a write and read handle each. */
function requests(file: string, out: string, chunks: number): string[] {
  const r: string[] = [];
  r.push('{"execute":"ping"}\n', '{"execute":"agent-info","tag":"t-1"}\r\n');
  r.push(`{"execute":"file-stat","arguments":{"path":${JSON.stringify(file)}},"tag":"t-2"}\r\n`);
  // Minimal host: open, reads to end of file (the handle closes there).
  r.push(`{"execute":"file-open","arguments":{"path":${JSON.stringify(file)}}}\n`);
  for (let i = 0; i <= chunks; i++) r.push('{"execute":"file-read","arguments":{"handle_id":1}}\n');
  // Client: open with md5, sized reads, tags, the md5 at end of file.
  r.push(`{"execute":"file-open","arguments":{"path":${JSON.stringify(file)},"mode":"r","md5":true},"tag":"a0-3"}\r\n`);
  for (let i = 0; i <= chunks; i++)
    r.push(`{"execute":"file-read","arguments":{"handle_id":2,"size":4096},"tag":"a0-${4 + i}"}\r\n`);
  // Writes: untagged, tagged with eof false, then a close; a handle closed by eof true.
  const b64 = crypto.randomBytes(4096).toString('base64');
  r.push(`{"execute":"file-open","arguments":{"path":${JSON.stringify(out)},"mode":"w"}}\n`);
  r.push(`{"execute":"file-write","arguments":{"handle_id":3,"bufb64":"${b64}"}}\n`);
  r.push(`{"execute":"file-write","arguments":{"handle_id":3,"bufb64":"${b64}","eof":false},"tag":"w-1"}\r\n`);
  r.push('{"execute":"file-close","arguments":{"handle_id":3}}\n');
  r.push(
    `{"execute":"file-open","arguments":{"path":${JSON.stringify(out)},"mode":"w","atomic":true},"tag":"w-2"}\r\n`,
  );
  r.push(`{"execute":"file-write","arguments":{"handle_id":4,"bufb64":"${b64}","eof":true},"tag":"w-3"}\r\n`);
  return r;
}

test(
  'answers every request of the hosts with the bytes ember-ga answers it with',
  async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'data.bin');
    fs.writeFileSync(file, crypto.randomBytes(3 * 4096 + 100));
    const started: { bridge: Bridge; proc: ChildProcess; err: () => string }[] = [];
    const socks: net.Socket[] = [];
    try {
      const got: string[][] = [];
      // The stand-in first: it reads the file at start, which may move its atime; then both stat the same file.
      for (const [cmd, out] of [
        [standInGuest(file), 'out-stand-in.bin'],
        [EMBER_GA, 'out-ember-ga.bin'],
      ] as const) {
        const a = await spawnBridgedAgent(cmd);
        started.push(a);
        const sock = await connectHost(a.bridge);
        socks.push(sock);
        got.push(await answers(sock, requests(file, path.join(dir, out), 4)));
      }
      const [standIn, ember] = got;
      assert.not.match(started[0].err(), /slow path/);
      assert.is(standIn.length, ember.length);
      for (let i = 0; i < ember.length; i++) assert.is(standIn[i], ember[i], `answer ${i}`);
      assert.match(ember[ember.length - 1], /^\{"return":true,"tag":"w-3"\}\n$/);
      assert.ok(
        ember.some((l) => /"eof":true,"md5":"[0-9a-f]{32}"/.test(l)),
        'the md5 at end of file',
      );
    } finally {
      for (const s of socks) s.destroy();
      for (const a of started) {
        await kill(a.proc);
        await a.bridge.close();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 30_000, needs: [command('socat')] },
);

test(
  "the project's client downloads the file from it, verified, and uploads to it",
  async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'data.bin');
    const data = crypto.randomBytes(40 * 4096 + 7);
    fs.writeFileSync(file, data);
    const a = await spawnBridgedAgent(standInGuest(file));
    let ga: GuestAgent | undefined;
    try {
      ga = await GuestAgent.connect({ socket: a.bridge.hostSocket, timeout: 10_000 });
      const copy = path.join(dir, 'copy.bin');
      await ga.copyFrom(file, copy, { chunkSize: 4096, inFlight: 1 }); // verify: the md5 at end of file
      assert.ok(fs.readFileSync(copy).equals(data));
      await ga.copyTo(file, path.join(dir, 'nowhere.bin'), { chunkSize: 4096, inFlight: 1, verify: false });
      assert.not.ok(fs.existsSync(path.join(dir, 'nowhere.bin')), 'the data goes nowhere');
      // A request it does not serve fails loudly instead of passing for an answer.
      const e = await rejection(ga.call('get-file-md5sum', { path: file }));
      assert.match(e.message, /stand-in guest: get-file-md5sum: not a command it answers/);
    } finally {
      await ga?.close();
      await kill(a.proc);
      await a.bridge.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 30_000, needs: [command('socat')] },
);

test.run();
