// A host that pipelines many large reads and then stops reading its socket: the agent's output
// queue stays bounded (reads wait for the host to catch up) instead of holding every answer.
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { memKiB, startAgent } from '../helpers/agent';
import { sleep, suite, waitFor } from '../helpers/harness';

const test = suite('files backpressure');

test(
  '100 pipelined 4 MiB reads, host not reading: agent RSS stays bounded, then every answer arrives',
  async () => {
    const agent = await startAgent();
    const file = path.join(agent.dir, 'sparse.bin');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, 400 * 1024 * 1024); // sparse: reads are fast, answers are 5.6 MB of base64 each
    try {
      const c = await agent.connect();
      const id = (await c.ok('file-open', { path: file })) as number;
      c.sock.pause(); // the host stops reading
      let batch = '';
      for (let i = 0; i < 100; i++)
        batch +=
          JSON.stringify({ execute: 'file-read', arguments: { handle_id: id, size: 4 << 20 }, tag: `r${i}` }) + '\r\n';
      c.send(batch);
      await sleep(3_000); // without the bound the agent reads all 400 MiB and queues 560 MB of answers
      const rss = memKiB(agent.proc.pid!, 'VmRSS');
      assert.ok(rss < 200 * 1024, `agent RSS ${rss} KiB while the host was not reading`);
      // The host catches up: every read is answered, in order, none lost.
      let answered = 0;
      let bytes = 0;
      let buf = '';
      c.sock.removeAllListeners('data');
      c.sock.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const a = JSON.parse(line) as { return: { bufb64: string; eof: boolean }; tag: string };
          assert.is(a.tag, `r${answered}`);
          bytes += Buffer.byteLength(a.return.bufb64, 'base64');
          answered++;
        }
      });
      c.sock.resume();
      await waitFor(() => answered === 100, 60_000, 'all 100 answers');
      assert.is(bytes, 400 * 1024 * 1024);
      c.close();
    } finally {
      await agent.stop();
    }
  },
  { timeout: 90_000 },
);

test.run();
