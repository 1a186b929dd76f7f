import * as assert from 'uvu/assert';
import * as path from 'path';
import * as fs from 'fs';
import { UnixTransport } from '../lib/transports/unix';
import { silentLogger } from '../lib/log';
import { LineClient, tmpDir } from './helpers/agent';
import { suite, sleep, waitFor } from './helpers/harness';

const test = suite('unix transport');

test('an answer computed after the host half-closed still reaches it, then the agent closes', async () => {
  const dir = tmpDir();
  const t = new UnixTransport(path.join(dir, 's.sock'), silentLogger);
  let release!: () => void;
  const settled = new Promise<void>((r) => (release = r));
  const got: string[] = [];
  await t.start({ data: (b) => got.push(b.toString()), reset: () => {}, drain: () => {}, settled: () => settled });
  try {
    const c = await LineClient.connect(path.join(dir, 's.sock'));
    c.sock.end('{"execute":"slow"}\n');
    await waitFor(() => got.length > 0, 5_000, 'the request');
    await sleep(100); // the host's FIN has arrived; the answer is still being computed
    t.write('{"return":"late","tag":""}\n');
    release();
    const [a] = await c.waitLines(1);
    assert.is(a.return, 'late');
    await waitFor(() => c.closed, 5_000, 'the agent to close its side');
  } finally {
    await t.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
