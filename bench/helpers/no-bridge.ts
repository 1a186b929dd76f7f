// The agent's own work per request, with no port, pty or host process: an Agent in this process
// on a transport that hands it request lines and takes its answers, one request at a time (the
// next line once the answer is out), as a 0.7.1 host drives it. What is left is the request's
// parse and dispatch, the file call, the answer, and the write helper's hand-off; through the
// bridge (per-request.ts) the pty, the wake-ups and the host share this machine's two CPUs with
// it. Run as a process of its own, so that only the agent's threads are counted:
//   node no-bridge.js FILE DIR   prints one JSON line: per kind, { wallUs, cpuUs } per round
import * as fs from 'fs';
import * as path from 'path';
import { Agent } from '../../lib/agent';
import { allCommands } from '../../lib/protocols/phoenix/commands';
import type { AnswerLine } from '../../lib/wire/answer';
import type { SessionSink, Transport } from '../../lib/transports/transport';

export type NoBridgeKind = 'file-read' | 'file-write' | 'ping';
export type NoBridgeResult = Record<NoBridgeKind, { wallUs: number; cpuUs: number }[]>;

const CHUNK = 4096;
const ROUNDS = Number(process.env.EMBER_BENCH_QUICK === '1' ? 1 : 5);

/** Hands lines to the agent's session; each answer resolves the request that is waiting for it. */
class InProcessHost implements Transport {
  readonly description = 'in-process host';
  readonly queued = 0;
  private session: SessionSink | undefined;
  private waiting: ((line: Buffer) => void) | undefined;

  async start(sink: Parameters<Transport['start']>[0]): Promise<void> {
    this.session = sink.begin((line: AnswerLine) => {
      const bytes = typeof line === 'string' ? Buffer.from(line) : Buffer.isBuffer(line) ? line : Buffer.concat(line);
      const w = this.waiting;
      this.waiting = undefined;
      w?.(bytes);
    });
  }

  ask(line: Buffer | string): Promise<Buffer> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.session!.data(typeof line === 'string' ? Buffer.from(line) : line);
    });
  }

  pause(): void {}
  resume(): void {}
  flush(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function checked(line: Buffer): Buffer {
  if (line.indexOf('"error"') >= 0) throw new Error(`agent: ${line.toString('utf8', 0, 300)}`);
  return line;
}

async function openHandle(host: InProcessHost, file: string, mode: 'r' | 'w'): Promise<number> {
  const open = checked(
    await host.ask(`{"execute":"file-open","arguments":{"path":${JSON.stringify(file)},"mode":"${mode}"}}\n`),
  );
  return Number(/"return":(\d+)/.exec(open.toString())![1]);
}

type Spent = { requests: number; wallUs: number; cpuUs: number };

/** Runs `ask` for each line, one at a time; its time and CPU a request. */
async function timed(host: InProcessHost, lines: Buffer[], last?: (answer: Buffer) => boolean): Promise<Spent> {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let n = 0;
  for (const line of lines) {
    n++;
    const answer = checked(await host.ask(line)); // not inside last?.(): it would not be asked without `last`
    if (last?.(answer)) break;
  }
  const cpu = process.cpuUsage(c0);
  return { requests: n, wallUs: Number(process.hrtime.bigint() - t0) / 1e3 / n, cpuUs: (cpu.user + cpu.system) / n };
}

/** One pass of `kind` over the file (or as many pings as it has chunks); lines are made before the clock starts. */
async function pass(host: InProcessHost, kind: NoBridgeKind, file: string, data: Buffer, copy: string): Promise<Spent> {
  const chunks = Math.ceil(data.length / CHUNK);
  if (kind === 'ping') return timed(host, Array<Buffer>(chunks).fill(Buffer.from('{"execute":"ping"}\n')));
  if (kind === 'file-read') {
    const id = await openHandle(host, file, 'r');
    const read = Buffer.from(`{"execute":"file-read","arguments":{"handle_id":${id}}}\n`);
    // The reads and the one at end of file, which closes the handle.
    return timed(host, Array<Buffer>(chunks + 1).fill(read), (a) => a.indexOf('"eof":true') >= 0);
  }
  const id = await openHandle(host, copy, 'w');
  const lines: Buffer[] = [];
  for (let off = 0; off < data.length; off += CHUNK)
    lines.push(
      Buffer.from(
        `{"execute":"file-write","arguments":{"handle_id":${id},"bufb64":"${data.toString('base64', off, off + CHUNK)}"}}\n`,
      ),
    );
  const spent = await timed(host, lines);
  checked(await host.ask(`{"execute":"file-close","arguments":{"handle_id":${id}}}\n`));
  return spent;
}

export async function measureNoBridge(file: string, dir: string): Promise<NoBridgeResult> {
  const host = new InProcessHost();
  const agent = new Agent({ transport: host, commands: allCommands });
  await agent.start();
  const data = fs.readFileSync(file);
  const copy = path.join(dir, 'no-bridge-copy.bin');
  const result: NoBridgeResult = { 'file-read': [], 'file-write': [], ping: [] };
  try {
    // Round -1 warms up (the JIT), and is not counted.
    for (let round = -1; round < ROUNDS; round++) {
      for (const kind of ['file-read', 'file-write', 'ping'] as const) {
        const { wallUs, cpuUs } = await pass(host, kind, file, data, copy);
        if (round >= 0) result[kind].push({ wallUs, cpuUs });
      }
    }
    const got = fs.readFileSync(copy);
    if (!got.equals(data))
      throw new Error(`no-bridge: the file written (${got.length} bytes) is not the file read (${data.length})`);
  } finally {
    fs.rmSync(copy, { force: true });
    await agent.stop();
  }
  return result;
}

if (require.main === module) {
  const [file, dir] = process.argv.slice(2);
  measureNoBridge(file, dir).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (e: Error) => {
      process.stderr.write(`no-bridge: ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}
