// guest-file-* against qemu-ga 7.2 itself: every fopen mode, reads, writes, seeks, flush and
// close and every error found, on files in a temporary dir; a large round trip; handles that
// outlive their connection; the handle limit shared with the phoenix front-end.
//
// Each script runs on qemu-ga, then on ember-ga, on the same fixture made afresh in the same
// dir, so paths in messages match; answers are compared field by field, handle values aside
// (qemu-ga's start at 1000), and so are the files left behind.
import { execFileSync, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { Agent } from '../../lib/agent';
import { allCommands } from '../../lib/protocols/phoenix/commands';
import { silentLogger } from '../../lib/log';
import { UnixTransport } from '../../lib/transports/unix';
import { errorMessage, LineClient, memKiB, startAgentWith, tmpDir, type RunningAgent } from '../helpers/agent';
import { command, suite, waitFor } from '../helpers/harness';
import { unixListening } from '../helpers/unix-socket';
import { qgaDownload, qgaUpload, QgaBulkHost } from '../helpers/qga-bulk';
import {
  diffAnswers,
  QmpClient,
  realQemuGa,
  startEmberQemuGa,
  startPair,
  stopPair,
  type Pair,
  type QmpAnswer,
} from '../helpers/qemu-ga';

const test = suite<{ p?: Pair; dir?: string }>('qemu-ga files', {});
const needs = [realQemuGa];
const MiB = 1024 * 1024;

test.before(async (ctx) => {
  if (realQemuGa() === undefined) {
    ctx.p = await startPair();
    ctx.dir = tmpDir('ember-ga-qga-files-');
  }
});
test.after(async (ctx) => {
  await stopPair(ctx.p);
  if (ctx.dir) fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** Stands for the id of the handle a step opened `as` this name. */
interface HandleRef {
  handleOf: string;
}
const H = (name: string): HandleRef => ({ handleOf: name });
/** A handle neither agent has. */
const UNKNOWN = 999999;

/** A request (its arguments may hold HandleRefs; `as` names the handle it opens), or an action on the files. */
type Step = { cmd: string; args?: Record<string, unknown>; as?: string } | { act: (dir: string) => void };

/** The fixture every script starts from. */
function fixture(dir: string): void {
  // By bytes: a name that is not UTF-8 (a NUL qemu opened as 0xC0 0x80) is removed too.
  for (const f of fs.readdirSync(dir, { encoding: 'buffer' }))
    fs.rmSync(Buffer.concat([Buffer.from(`${dir}/`), f]), { recursive: true, force: true });
  fs.writeFileSync(path.join(dir, 'a.txt'), 'hello world');
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.writeFileSync(path.join(dir, 'private'), 'secret', { mode: 0o600 });
  fs.chmodSync(path.join(dir, 'private'), 0o600);
  // 100 KiB: reads past 64 KiB have their base64 made by the addon.
  const big = Buffer.alloc(100 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
  fs.writeFileSync(path.join(dir, 'big.bin'), big);
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
}

/** What a script left in dir: each entry's type, mode bits and content's md5. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
    const f = Buffer.concat([Buffer.from(`${dir}/`), name]); // by bytes: a name need not be UTF-8
    const st = fs.lstatSync(f);
    const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isFIFO() ? 'fifo' : 'link';
    const md5 = st.isFile() ? crypto.createHash('md5').update(fs.readFileSync(f)).digest('hex') : '';
    out[name.toString('latin1')] = `${kind} ${(st.mode & 0o7777).toString(8)} ${st.size} ${md5}`;
  }
  return out;
}

function resolve(v: unknown, handles: Map<string, number>): unknown {
  if (v !== null && typeof v === 'object' && 'handleOf' in v) {
    // A handle whose open failed (on both agents, or the open's answers differ): an unknown one.
    return handles.get((v as HandleRef).handleOf) ?? UNKNOWN;
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v))
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x, handles)]));
  return v;
}

interface Run {
  answers: (QmpAnswer | undefined)[];
  handles: Map<string, number>;
  files: Record<string, string>;
}

async function runScript(c: QmpClient, dir: string, steps: Step[]): Promise<Run> {
  fixture(dir);
  const handles = new Map<string, number>();
  const answers: (QmpAnswer | undefined)[] = [];
  try {
    for (const s of steps) {
      if ('act' in s) {
        s.act(dir);
        answers.push(undefined);
        continue;
      }
      const a = await c.call(s.cmd, s.args && (resolve(s.args, handles) as Record<string, unknown>));
      if (s.as && typeof a.return === 'number') handles.set(s.as, a.return);
      answers.push(a);
    }
  } finally {
    for (const id of handles.values()) await c.call('guest-file-close', { handle: id });
  }
  return { answers, handles, files: snapshot(dir) };
}

/** Runs the script on both agents; the differences, each with its step. */
async function compare(p: Pair, dir: string, steps: Step[]): Promise<string[]> {
  const real = await runScript(p.q, dir, steps);
  const ember = await runScript(p.e, dir, steps);
  // A handle's id is named as qemu-ga's in ember-ga's messages: ids are the one thing that differs.
  const ids = [...ember.handles].map(([name, id]) => [id, real.handles.get(name)] as const);
  const sameIds = (a: QmpAnswer | undefined): QmpAnswer | undefined => {
    if (!a?.error) return a;
    let desc = a.error.desc;
    for (const [e, q] of ids) if (q !== undefined) desc = desc.split(`handle '${e}'`).join(`handle '${q}'`);
    return { ...a, error: { ...a.error, desc } };
  };
  const out: string[] = [];
  steps.forEach((s, i) => {
    if ('act' in s) return;
    const r = real.answers[i];
    const e = sameIds(ember.answers[i]);
    const opened = s.as !== undefined && typeof r?.return === 'number' && typeof e?.return === 'number';
    const label = `${s.cmd} ${JSON.stringify(s.args ?? {})}`;
    for (const d of diffAnswers(r, e, opened ? [/^return$/] : [])) out.push(`${label}: ${d}`);
  });
  for (const d of diffAnswers(real.files, ember.files)) out.push(`files: ${d}`);
  return out;
}

let unnamed = 0;
/** A guest-file-open; its handle is named `as` (or a name of its own), so the script closes it. */
const open = (p: string, mode?: string, as = `open${unnamed++}`): Step => ({
  cmd: 'guest-file-open',
  args: mode === undefined ? { path: p } : { path: p, mode },
  as,
});
const read = (h: string, count?: unknown): Step => ({
  cmd: 'guest-file-read',
  args: count === undefined ? { handle: H(h) } : { handle: H(h), count },
});
const write = (h: string, b64: unknown, count?: number): Step => ({
  cmd: 'guest-file-write',
  args: count === undefined ? { handle: H(h), 'buf-b64': b64 } : { handle: H(h), 'buf-b64': b64, count },
});
const seek = (h: string, offset: unknown, whence: unknown): Step => ({
  cmd: 'guest-file-seek',
  args: { handle: H(h), offset, whence },
});
const close = (h: string): Step => ({ cmd: 'guest-file-close', args: { handle: H(h) } });
const flush = (h: string): Step => ({ cmd: 'guest-file-flush', args: { handle: H(h) } });

const MODES = ['r', 'rb', 'w', 'wb', 'a', 'ab', 'r+', 'rb+', 'r+b', 'w+', 'wb+', 'w+b', 'a+', 'ab+', 'a+b'];

test(
  'every fopen mode, on an existing file and a new one: the same answers and the same files',
  async ({ p, dir }) => {
    const f = (n: string) => path.join(dir!, n);
    const steps: Step[] = [];
    for (const [i, m] of MODES.entries()) {
      steps.push(
        open(f('a.txt'), m, `a${i}`),
        read(`a${i}`, 3),
        write(`a${i}`, 'QUJD'),
        seek(`a${i}`, 0, 'cur'),
        seek(`a${i}`, 0, 'set'),
        read(`a${i}`, 100),
        write(`a${i}`, 'REVG'),
        seek(`a${i}`, 0, 'end'),
        read(`a${i}`),
        close(`a${i}`),
        // Missing: created 0666 whatever the umask, or ENOENT.
        open(f(`new-${i}`), m, `n${i}`),
        write(`n${i}`, 'QUJDREVG'),
        seek(`n${i}`, 2, 'set'),
        read(`n${i}`, 10),
        close(`n${i}`),
        // An existing file keeps its mode.
        open(f('private'), m, `p${i}`),
        close(`p${i}`),
      );
    }
    for (const m of ['', 'x', 'rw', 'br', 'R', 'r ', 'wx', 'x+', 'rb+x', 'a+b+', 'rr']) steps.push(open(f('a.txt'), m));
    steps.push(
      open(f('a.txt')), // mode defaults to r
      open(f('nowhere')),
      open(f('sub'), 'w'),
      open(f('sub'), 'r+'),
      open(f('dangling'), 'w'), // not followed to create its target
      open(f('fifo'), 'w'), // no reader: ENXIO, not a wait
      open(''),
      open(f('sub/deeper/x'), 'w'),
      // A NUL is no end of the name, nor Node's error: qemu opens it as 0xC0 0x80.
      open(f('a.txt\u0000')),
      open(`\u0000${f('a.txt')}`),
      open(f('sub\u0000/x'), 'w'),
      open(f('n\u0000ul'), 'w', 'nul'),
      write('nul', 'QUJD'),
      close('nul'),
      open(f('n\u0000ul'), 'a+', 'nul2'),
      read('nul2'),
    );
    assert.equal(await compare(p!, dir!, steps), []);
  },
  { needs, timeout: 60_000 },
);

test(
  'reads: counts, the end of the file, limits, directories, FIFOs, wrong directions',
  async ({ p, dir }) => {
    const f = (n: string) => path.join(dir!, n);
    let writer = -1;
    const steps: Step[] = [
      open(f('a.txt'), 'r', 'h'),
      read('h', 5),
      read('h', 6), // exactly to the end: not eof yet
      read('h', 6),
      read('h', 0),
      seek('h', 0, 'set'),
      read('h'),
      read('h', -1),
      read('h', 48 * MiB),
      read('h', 48 * MiB + 1),
      read('h', 2 ** 40),
      read('h', 1.5),
      read('h', '1'),
      read('h', null),
      { cmd: 'guest-file-read', args: {} },
      { cmd: 'guest-file-read', args: { handle: H('h'), x: 1 } },
      { cmd: 'guest-file-read', args: { handle: UNKNOWN } },
      { cmd: 'guest-file-read', args: { handle: UNKNOWN, count: -1 } },
      open(f('big.bin'), 'rb', 'b'),
      read('b', 70000), // > 64 KiB: native base64
      read('b', 70000), // the rest, eof
      seek('b', 1000, 'set'),
      read('b', 48 * MiB),
      open(f('empty'), 'r', 'e'),
      read('e'),
      read('e'),
      open(f('sub'), 'r', 'd'),
      read('d'),
      read('d', 0),
      open(f('a.txt'), 'a', 'w'),
      read('w'),
      read('w', 0),
      close('h'),
      read('h'),
      // A FIFO: no writer is the end; a writer with nothing written yet is EAGAIN (never a
      // wait); what it wrote before it left, then the end.
      open(f('fifo'), 'r', 'fifo'),
      read('fifo'),
      { act: (d) => (writer = fs.openSync(path.join(d, 'fifo'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)) },
      read('fifo'),
      {
        act: () => {
          fs.writeSync(writer, 'bye');
          fs.closeSync(writer);
        },
      },
      read('fifo'),
      read('fifo'),
    ];
    assert.equal(await compare(p!, dir!, steps), []);
  },
  { needs },
);

test(
  "writes: counts, qemu-ga's base64 rules, append and read-write positions, wrong directions",
  async ({ p, dir }) => {
    const f = (n: string) => path.join(dir!, n);
    const steps: Step[] = [
      open(f('out'), 'w', 'h'),
      write('h', 'QUJD'),
      write('h', 'QUJD', 2),
      write('h', 'QUJD', 4),
      write('h', 'QUJD', -1),
      write('h', 'QUJD', 0),
      write('h', ''),
      // qemu-ga's base64: glib's lenient decoding after a check of the characters.
      ...[
        '!!',
        'QQ',
        'QQ=',
        'QQ==',
        'QQ==QUJD',
        '=AAA',
        'QU\nJD',
        'QU\rJD',
        'QUJD ',
        ' QUJD',
        'QQ=A',
        'A',
        'AB',
        'ABC',
        'Q===',
        '====',
        'QUJ',
        '-_',
        'QU\u0000JD',
        'QUJD\u00e9',
        'QUJD'.repeat(3000) + '\n', // long: not strict, so not decoded on the fast path
      ].map((b) => write('h', b)),
      write('h', '!!', 0),
      write('h', 'QUJD', 9),
      { cmd: 'guest-file-write', args: { handle: H('h') } },
      write('h', 5),
      write('h', null),
      { cmd: 'guest-file-write', args: { handle: UNKNOWN, 'buf-b64': '!!' } },
      write('h', Buffer.alloc(40000, 7).toString('base64')), // long and strict: decoded on the fast path
      seek('h', 0, 'cur'),
      read('h'),
      read('h', 0),
      close('h'),
      // Wrong direction.
      open(f('a.txt'), 'r', 'r'),
      write('r', 'QUJD'),
      write('r', ''),
      // Append: the position follows the end; a seek does not move where writes go.
      open(f('a.txt'), 'a', 'a'),
      seek('a', 0, 'cur'),
      write('a', 'QUJD'),
      seek('a', 0, 'cur'),
      seek('a', 0, 'set'),
      write('a', 'REVG'),
      seek('a', 0, 'cur'),
      close('a'),
      open(f('a.txt'), 'a+', 'ap'),
      seek('ap', 0, 'cur'),
      read('ap', 3),
      write('ap', 'WFla'),
      seek('ap', 0, 'cur'),
      read('ap', 3),
      seek('ap', 0, 'set'),
      read('ap', 3),
      close('ap'),
      // Read-write: reads and writes share one position.
      open(f('a.txt'), 'r+', 'rp'),
      read('rp', 3),
      write('rp', 'MTIz'),
      read('rp', 3),
      seek('rp', 0, 'cur'),
      write('rp', 'NDU2'),
      seek('rp', 0, 'cur'),
      seek('rp', 100, 'set'),
      write('rp', 'eg=='), // past the end: a hole
      close('rp'),
      open(f('w+'), 'w+', 'wp'),
      read('wp'),
      write('wp', 'QUJDREVG'),
      read('wp'),
      seek('wp', 2, 'set'),
      read('wp', 2),
      close('wp'),
    ];
    assert.equal(await compare(p!, dir!, steps), []);
  },
  { needs },
);

test(
  'long base64 strings, which ember-ga decodes as they arrive: every way one ends, and every place one stands',
  async ({ p, dir }) => {
    const f = (n: string) => path.join(dir!, n);
    const long = 'QUJD'.repeat(50_000) + 'REVG'; // 200 KB: many chunks of the stream
    const steps: Step[] = [
      open(f('out'), 'w', 'h'),
      ...[
        long,
        `${long}QQ==`,
        `${long}QR==`, // its dropped bits set
        `${long}QUI=`,
        `${long}Q===`,
        `${long}QQ==QUJD`,
        `${long}QQ=`,
        `${long}QU`,
        `${long}!`,
        `${long}\n${long}`, // an escape: not decoded as it arrives
        `${long}\u00e9`,
        `${long}-_`,
        `${long} `,
      ].map((b) => write('h', b)),
      write('h', long, 7),
      write('h', long, 1_000_000),
      // Where a long string is no data to write: a key, a string argument, the wrong type.
      { cmd: 'guest-file-write', args: { handle: H('h'), 'buf-b64': 'QUJD', [long]: 1 } },
      { cmd: 'guest-file-write', args: { handle: H('h'), 'buf-b64': long, count: long } },
      { cmd: 'guest-file-write', args: { handle: H('h'), 'buf-b64': [long] } },
      open(f(long), 'r'),
      close('h'),
    ];
    assert.equal(await compare(p!, dir!, steps), []);
  },
  { needs },
);

test(
  'seek: whence as a number and as a name, bad whences, past either end, a directory, a FIFO',
  async ({ p, dir }) => {
    const f = (n: string) => path.join(dir!, n);
    const steps: Step[] = [
      open(f('a.txt'), 'r', 'h'),
      seek('h', 0, 'set'),
      seek('h', 2, 0),
      seek('h', 1, 'cur'),
      seek('h', 1, 1),
      seek('h', -3, 'end'),
      seek('h', 0, 2),
      seek('h', -30, 'end'),
      seek('h', -30, 'cur'),
      seek('h', -1, 'set'),
      seek('h', 100, 'cur'),
      read('h'),
      seek('h', 0, 3),
      seek('h', 0, -1),
      seek('h', 0, 2 ** 40),
      seek('h', 0, 'x'),
      seek('h', 0, 'SET'),
      seek('h', 0, true),
      seek('h', 0, 1.5),
      seek('h', 0, null),
      seek('h', 0, [1]),
      seek('h', 0, {}),
      seek('h', '1', 0),
      seek('h', 1.5, 0),
      { cmd: 'guest-file-seek', args: { handle: H('h'), offset: 0 } },
      { cmd: 'guest-file-seek', args: { handle: H('h'), whence: 0 } },
      { cmd: 'guest-file-seek', args: { handle: UNKNOWN, offset: 0, whence: 7 } },
      open(f('sub'), 'r', 'd'),
      seek('d', 0, 'end'), // ext4 puts a directory's end at 2^63 - 1
      seek('d', 0, 'set'),
      open(f('fifo'), 'r', 'fifo'),
      seek('fifo', 0, 'set'),
      seek('fifo', 0, 'cur'),
    ];
    assert.equal(await compare(p!, dir!, steps), []);
  },
  { needs },
);

test(
  'seek near 2^63: positions and offsets exact over the whole int64 range, byte for byte',
  async ({ p, dir }) => {
    fixture(dir!);
    // ext4 puts a directory's end at 2^63 - 1; a tmpfs file may be as long, and sparse.
    const files: [string, string][] = [[path.join(dir!, 'sub'), 'r']];
    const shm = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/ember-ga-seek-') : undefined;
    if (shm) files.push([path.join(shm, 'sparse'), 'w+']);
    const big = (n: bigint) => n.toString();
    const seeks: [string, string][] = [
      ['0', 'end'],
      ['-1', 'end'],
      ['0', 'cur'],
      ['-1', 'cur'],
      ['1', 'cur'],
      ['2', 'cur'], // past 2^63 - 1
      [big(2n ** 63n - 1n), 'set'],
      ['0', 'cur'],
      [big(2n ** 53n + 1n), 'set'],
      ['1', 'cur'],
      [big(-(2n ** 63n) + 1n), 'end'],
      [big(-(2n ** 63n)), 'end'],
      [big(-(2n ** 53n) - 1n), 'end'],
      [big(2n ** 63n), 'set'], // not an int64
      [big(-(2n ** 63n) - 1n), 'set'],
      [big(2n ** 60n + 1n), 'set'],
      ['-4611686018427387904', 'cur'],
    ];
    const lines = (c: QmpClient) => async (h: number) => {
      const out: string[] = [];
      const send = async (json: string) => {
        c.send(json + '\n');
        out.push((await c.rawAnswer()).toString('utf8'));
      };
      for (const [offset, whence] of seeks) {
        await send(
          `{"execute": "guest-file-seek", "arguments": {"handle": ${h}, "offset": ${offset}, "whence": "${whence}"}}`,
        );
        // A tmpfs file takes a write there, and reads it back from there.
        if (offset === big(2n ** 60n + 1n)) {
          await send(`{"execute": "guest-file-write", "arguments": {"handle": ${h}, "buf-b64": "QUJD"}}`);
          await send(`{"execute": "guest-file-seek", "arguments": {"handle": ${h}, "offset": -2, "whence": "cur"}}`);
          await send(`{"execute": "guest-file-read", "arguments": {"handle": ${h}, "count": 10}}`);
        }
      }
      return out;
    };
    try {
      for (const [file, mode] of files) {
        const hq = await p!.q.ok<number>('guest-file-open', { path: file, mode });
        const real = await lines(p!.q)(hq);
        await p!.q.ok('guest-file-close', { handle: hq });
        const he = await p!.e.ok<number>('guest-file-open', { path: file, mode });
        const ember = await lines(p!.e)(he);
        await p!.e.ok('guest-file-close', { handle: he });
        assert.equal(ember, real, file);
      }
    } finally {
      if (shm) fs.rmSync(shm, { recursive: true, force: true });
    }
  },
  { needs },
);

test(
  'flush, close, and every command on a closed or unknown handle; bad arguments',
  async ({ p, dir }) => {
    const f = (n: string) => path.join(dir!, n);
    const steps: Step[] = [
      open(f('out'), 'w', 'h'),
      write('h', 'QUJD'),
      flush('h'),
      open(f('out'), 'r', 'r'),
      read('r'), // flushed: the data is in the file
      flush('r'),
      close('r'),
      close('h'),
      close('h'),
      flush('h'),
      read('h'),
      write('h', 'QUJD'),
      seek('h', 0, 0),
      { cmd: 'guest-file-flush', args: {} },
      { cmd: 'guest-file-flush', args: { handle: UNKNOWN } },
      { cmd: 'guest-file-flush', args: { handle: '1' } },
      { cmd: 'guest-file-close', args: {} },
      { cmd: 'guest-file-close', args: { handle: UNKNOWN } },
      { cmd: 'guest-file-close', args: { handle: H('h'), x: 1 } },
      { cmd: 'guest-file-close', args: { handle: -1 } },
      { cmd: 'guest-file-open', args: {} },
      { cmd: 'guest-file-open', args: { path: f('a.txt'), mode: null } },
      { cmd: 'guest-file-open', args: { path: f('a.txt'), mode: 1 } },
      { cmd: 'guest-file-open', args: { path: 1 } },
      { cmd: 'guest-file-open', args: { path: f('a.txt'), extra: 1 } },
    ];
    assert.equal(await compare(p!, dir!, steps), []);
  },
  { needs },
);

test(
  'ember-ga: a FIFO read gives what the writer has written so far (qemu-ga loses it to EAGAIN)',
  async ({ p, dir }) => {
    fixture(dir!);
    const fifo = path.join(dir!, 'fifo');
    const h = await p!.e.ok<number>('guest-file-open', { path: fifo });
    const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    try {
      fs.writeSync(w, 'hello');
      assert.equal(await p!.e.ok('guest-file-read', { handle: h }), { count: 5, 'buf-b64': 'aGVsbG8=', eof: false });
      const again = await p!.e.call('guest-file-read', { handle: h });
      assert.equal(again.error, {
        class: 'GenericError',
        desc: 'failed to read file: Resource temporarily unavailable',
      });
    } finally {
      fs.closeSync(w);
      await p!.e.ok('guest-file-close', { handle: h });
    }
  },
  { needs },
);

test(
  'a large round trip, md5-checked: 48 MiB reads, 8 MiB writes, on both agents',
  async ({ p, dir }) => {
    fixture(dir!);
    const data = crypto.randomBytes(60 * MiB + 12345);
    const want = crypto.createHash('md5').update(data).digest('hex');
    const src = path.join(dir!, 'large.bin');
    fs.writeFileSync(src, data);
    // Their own connections: each agent serves one at a time, so the pair's clients step aside.
    p!.q.close();
    p!.e.close();
    for (const [name, socket] of [
      ['qemu-ga', p!.real.socket],
      ['ember-ga', p!.ember.socket],
    ] as const) {
      const host = await QgaBulkHost.connect(socket);
      try {
        const down = await qgaDownload(host, src, 48 * MiB);
        assert.equal({ md5: down.md5, bytes: down.bytes }, { md5: want, bytes: data.length }, `${name}: read`);
        const dst = path.join(dir!, `copy-${name}`);
        await qgaUpload(host, data, dst, 8 * MiB);
        const got = crypto.createHash('md5').update(fs.readFileSync(dst)).digest('hex');
        assert.is(got, want, `${name}: write`);
        fs.rmSync(dst);
      } finally {
        host.close();
      }
    }
    p!.q = await p!.real.connect();
    p!.e = await QmpClient.connect(p!.ember.socket);
    fs.rmSync(src);
  },
  { needs, timeout: 120_000 },
);

test(
  'a handle survives its connection: opened on one, read and closed on the next (as with qemu-ga)',
  async (ctx) => {
    const p = ctx.p!;
    fixture(ctx.dir!);
    const file = path.join(ctx.dir!, 'a.txt');
    for (const side of ['q', 'e'] as const) {
      const h = await p[side].ok<number>('guest-file-open', { path: file });
      assert.equal(await p[side].ok('guest-file-read', { handle: h, count: 5 }), {
        count: 5,
        'buf-b64': 'aGVsbG8=',
        eof: false,
      });
      p[side].close();
      p[side] = side === 'q' ? await p.real.connect() : await QmpClient.connect(p.ember.socket);
      assert.equal(
        await p[side].ok('guest-file-read', { handle: h }),
        { count: 6, 'buf-b64': 'IHdvcmxk', eof: true },
        side,
      );
      assert.equal(await p[side].ok('guest-file-close', { handle: h }), {});
    }
  },
  { needs },
);

/** Both protocols' hosts on one in-process agent: phoenix sockets (one per name) and a qemu-ga one. */
async function withBothProtocols(
  maxHandles: number,
  fn: (h: {
    file: string;
    phoenix: (name?: string) => Promise<LineClient>;
    qga: () => Promise<QmpClient>;
  }) => Promise<void>,
): Promise<void> {
  const dir = tmpDir('ember-ga-qga-limit-');
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, 'x');
  const sock = (name: string) => path.join(dir, `${name}.sock`);
  const agent = new Agent({
    endpoints: [
      { transport: new UnixTransport(sock('phoenix'), silentLogger), protocol: 'phoenix' },
      { transport: new UnixTransport(sock('phoenix2'), silentLogger), protocol: 'phoenix' },
      { transport: new UnixTransport(sock('qga'), silentLogger), protocol: 'qemu-ga' },
    ],
    commands: allCommands,
    config: { maxHandles },
  });
  await agent.start();
  const clients: { close(): void }[] = [];
  const kept = <T extends { close(): void }>(c: T): T => (clients.push(c), c);
  try {
    await fn({
      file,
      phoenix: async (name = 'phoenix') => kept(await LineClient.connect(sock(name))),
      qga: async () => kept(await QmpClient.connect(sock('qga'))),
    });
  } finally {
    for (const c of clients) c.close();
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens `file` until the agent refuses: the ids opened, and the refusal's message. */
async function openUntilRefused(
  open: () => Promise<{ id?: number; error?: string }>,
): Promise<{ ids: number[]; error: string }> {
  const ids: number[] = [];
  for (let i = 0; i < 64; i++) {
    const r = await open();
    if (r.error !== undefined) return { ids, error: r.error };
    ids.push(r.id!);
  }
  throw new Error('64 opens and no refusal');
}
const qgaOpen = (c: QmpClient, file: string) => async () => {
  const a = await c.call('guest-file-open', { path: file });
  return a.error ? { error: a.error.desc } : { id: a.return as number };
};
const phoenixOpen = (c: LineClient, file: string) => async () => {
  const a = await c.call('file-open', { path: file });
  if (!a.error) return { id: a.return as number };
  assert.is(a.error.code, 24, 'EMFILE');
  return { error: errorMessage(a) };
};

test('ember-ga: a qemu-ga host that fills its half of --max-handles and leaves does not lock phoenix hosts out', () =>
  withBothProtocols(4, async ({ file, phoenix, qga }) => {
    let q = await qga();
    const filled = await openUntilRefused(qgaOpen(q, file));
    q.close(); // its handles stay open (libvirt reconnects and uses them)
    const ph = await phoenix();
    const phIds = [await ph.ok('file-open', { path: file }), await ph.ok('file-open', { path: file })];
    assert.equal(filled.ids.length, 2, 'qemu-ga hosts hold half of 4');
    assert.is(
      filled.error,
      `failed to open file '${file}' (mode: 'r'): Too many open files; qemu-ga hosts hold 2 of the 2 handles they may at once (half of ember-ga's --max-handles, 4; the rest is for phoenix hosts), and a handle stays open when its host goes: close some with guest-file-close (the oldest open is handle ${filled.ids[0]})`,
    );
    assert.match(errorMessage(await ph.call('file-open', { path: file })), /phoenix hosts hold 2 of the 2/);
    // The next qemu-ga host finds its half still held, closes the oldest, and opens again.
    q = await qga();
    assert.match((await q.call('guest-file-open', { path: file })).error!.desc, /the oldest open is handle /);
    assert.equal(await q.ok('guest-file-close', { handle: filled.ids[0] }), {});
    const again = await q.ok<number>('guest-file-open', { path: file });
    assert.not.ok([...filled.ids, ...phIds].includes(again), 'a handle id is never reused');
    // A phoenix handle is not a qemu-ga one.
    assert.equal(
      (await q.call('guest-file-read', { handle: phIds[0] })).error?.desc,
      `handle '${phIds[0]}' has not been found`,
    );
  }));

test('ember-ga: phoenix hosts that fill their half of --max-handles do not lock qemu-ga hosts out', () =>
  withBothProtocols(4, async ({ file, phoenix, qga }) => {
    const ph = await phoenix();
    const filled = await openUntilRefused(phoenixOpen(ph, file));
    const q = await qga();
    const qIds = [
      await q.ok<number>('guest-file-open', { path: file }),
      await q.ok<number>('guest-file-open', { path: file }),
    ];
    assert.equal(filled.ids.length, 2, 'phoenix hosts hold half of 4');
    assert.is(
      filled.error,
      "Too many open file handles: phoenix hosts hold 2 of the 2 they may at once (half of --max-handles, 4; the rest is for qemu-ga hosts), 2 of them this host's; close some with file-close or read them to the end (a host's handles close when it goes)",
    );
    // Phoenix hosts share their half: another one is refused until the first closes one, or goes.
    const other = await phoenix('phoenix2');
    assert.match(errorMessage(await other.call('file-open', { path: file })), /2 of the 2 .*, 0 of them this host's/);
    ph.close();
    await waitFor(async () => !(await other.call('file-open', { path: file })).error, 5000, 'the first host gone');
    assert.match((await q.call('guest-file-open', { path: file })).error!.desc, /qemu-ga hosts hold 2 of the 2/);
    for (const h of qIds) assert.equal(await q.ok('guest-file-close', { handle: h }), {});
  }));

test('ember-ga: an odd --max-handles is all the handles of both protocols together', () =>
  withBothProtocols(3, async ({ file, phoenix, qga }) => {
    const ph = await phoenix();
    const q = await qga();
    await ph.ok('file-open', { path: file });
    await ph.ok('file-open', { path: file }); // half of 3, rounded up
    await q.ok('guest-file-open', { path: file });
    assert.is(
      (await q.call('guest-file-open', { path: file })).error!.desc,
      `failed to open file '${file}' (mode: 'r'): Too many open files; ember-ga allows 3 handles at once (--max-handles), qemu-ga and phoenix hosts together; close some with guest-file-close`,
    );
    assert.match(errorMessage(await ph.call('file-open', { path: file })), /phoenix hosts hold 2 of the 2/);
  }));

test('ember-ga alone: the file commands answer without qemu-ga installed', async () => {
  // The conformance tests above need qemu-ga; this one shows the commands work anywhere.
  const agent = await startEmberQemuGa();
  const dir = tmpDir('ember-ga-qga-alone-');
  try {
    const c = await agent.qmp();
    const file = path.join(dir, 'f');
    const h = await c.ok<number>('guest-file-open', { path: file, mode: 'w+' });
    assert.equal(await c.ok('guest-file-write', { handle: h, 'buf-b64': 'aGVsbG8=' }), { count: 5, eof: false });
    assert.equal(await c.ok('guest-file-seek', { handle: h, offset: 0, whence: 'set' }), { position: 0, eof: false });
    assert.equal(await c.ok('guest-file-read', { handle: h }), { count: 5, 'buf-b64': 'aGVsbG8=', eof: true });
    assert.equal(await c.ok('guest-file-flush', { handle: h }), {});
    assert.equal(await c.ok('guest-file-close', { handle: h }), {});
    assert.is(fs.statSync(file).mode & 0o777, 0o666);
    c.close();
  } finally {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'back-to-back 48 MiB reads, two in flight, on a unix socket: each answer freed as written, not held beside the next',
  async () => {
    const agent = await startEmberQemuGa();
    const dir = tmpDir('ember-ga-qga-back-to-back-');
    let host: QgaBulkHost | undefined;
    try {
      const file = path.join(dir, 'big'); // sparse: its reads cost no disk
      fs.closeSync(fs.openSync(file, 'w'));
      fs.truncateSync(file, 256 * MiB);
      host = await QgaBulkHost.connect(agent.socket);
      const r = await qgaDownload(host, file, 48 * MiB, 2);
      assert.is(r.bytes, 256 * MiB);
      // Each read whole: the second in flight runs once the first's answer is written (its queue
      // drained, the budget of large answers given back), never cut to 4.5 MiB.
      assert.is(r.reads, 6);
      // One 64 MiB answer at a time: ~123 MiB here. With the written pieces left to the
      // collector, the next answer was made beside the last one: 183 MiB.
      const peak = memKiB(agent.proc.pid!, 'VmHWM') / 1024;
      assert.ok(peak < 160, `peak RSS ${peak.toFixed(1)} MiB`);
    } finally {
      host?.close();
      await agent.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { timeout: 60_000 },
);

test(
  'over a pty port, a read whose answer passes the 16 MiB output limit arrives whole (the agent waits for it, paused)',
  async () => {
    const dir = tmpDir('ember-ga-qga-pty-');
    const pty = path.join(dir, 'pty');
    const hostSocket = path.join(dir, 'host.sock');
    const socat = spawn('socat', [`PTY,link=${pty},raw,echo=0`, `UNIX-LISTEN:${hostSocket}`], { stdio: 'ignore' });
    let agent: RunningAgent | undefined;
    let host: QgaBulkHost | undefined;
    try {
      await waitFor(() => fs.existsSync(pty) && unixListening(hostSocket), 5_000, 'socat');
      agent = await startAgentWith(['-p', pty, '--protocol', 'qemu-ga'], hostSocket, dir);
      const data = crypto.randomBytes(20 * MiB);
      const file = path.join(dir, 'data');
      fs.writeFileSync(file, data);
      host = await QgaBulkHost.connect(hostSocket);
      const r = await qgaDownload(host, file, 20 * MiB);
      assert.equal(
        { md5: r.md5, bytes: r.bytes },
        { md5: crypto.createHash('md5').update(data).digest('hex'), bytes: data.length },
      );
      assert.is(agent.proc.exitCode, null, 'the agent is still running');
    } finally {
      host?.close();
      await agent?.stop();
      socat.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  { needs: [command('socat')], timeout: 60_000 },
);

test.run();
