// A zero-work guest on the bridge, in a process of its own as an agent would be, on the agent's
// own port driver. Two modes:
//   node stand-in-guest.js PTY ANSWER_BYTES
//     answers every line it reads with a line of ANSWER_BYTES bytes (newline included): the
//     bridge's request/response ceiling with no host work either (bridgeRequestResponse).
//   node stand-in-guest.js PTY phoenix FILE
//     speaks enough phoenix for a host's one-at-a-time transfers (ping, agent-info, file-stat,
//     file-open, file-read, file-write, file-close) as ember-ga would answer them, byte for byte
//     (test/integration/bench-stand-in.test.ts compares): every file-read answer of FILE is made
//     before the first request, so a download is verified against the stand-in like against an
//     agent; file-write answers true and the data goes nowhere. It stands in for the agent
//     behind the very hosts that drive it (bench/per-request.ts).
// Either says "ready" on stdout once it serves.
import { createHash } from 'crypto';
import * as fs from 'fs';
import { constants } from 'os';
import { defaultConfig } from '../../lib/context';
import { goStatFile } from '../../lib/files/stat';
import { native } from '../../lib/native';
import { VERSION } from '../../lib/version';
import { encodeError, encodeReturn, RawJson } from '../../lib/wire/answer';
import { MAX_LINE_BYTES } from '../../lib/wire/framing';
import { goJson } from '../../lib/wire/json';

const { EINVAL } = constants.errno;

const [pty, mode, file] = process.argv.slice(2);

if (mode === 'phoenix') {
  void phoenix(pty, file).then(
    () => process.stdout.write('ready\n'),
    (e: Error) => {
      process.stderr.write(`stand-in guest: ${e.message}\n`);
      process.exit(1);
    },
  );
} else {
  const answer = Buffer.alloc(Math.max(1, Number(mode)), 0x41);
  answer[answer.length - 1] = 0x0a;
  // The port opened as the agent opens it (lib/transports/port.ts): 'data' as views of a slab.
  const port = new native.Port(
    pty,
    (type, arg, start, end) => {
      if (type !== 'data') return;
      const d = (arg as Buffer).subarray(start, end);
      for (let i = d.indexOf(0x0a); i >= 0; i = d.indexOf(0x0a, i + 1)) port.write(answer);
    },
    { views: true },
  );
  closeOnTerm(() => port.close());
  process.stdout.write('ready\n');
}

function closeOnTerm(close: () => void): void {
  process.on('SIGTERM', () => {
    close();
    process.exit(0);
  });
}

const CHUNK = 4096;
/** Tags longer than this take the slow path (the fast one splices into a buffer of fixed size). */
const MAX_FAST_TAG = 256;
const TAG_KEY = Buffer.from('"tag":"');
const EXECUTE = Buffer.from('{"execute":"');
const READ = Buffer.from('{"execute":"file-read","arguments":{"handle_id":');
const WRITE = Buffer.from('{"execute":"file-write","arguments":{"handle_id":');
const BUFB64 = Buffer.from(',"bufb64":"');
const SIZE = Buffer.from(',"size":4096}');
const EOF_TRUE = Buffer.from('","eof":true}');
const EOF_FALSE = Buffer.from('","eof":false}');

/** `{"return":VALUE,"tag":"` and `"}\n`: an answer with its tag's text to go in between. */
interface Split {
  head: Buffer;
  tail: Buffer;
}

/** An answer as ember-ga makes it (encodeReturn), cut where its tag goes. */
function split(value: unknown): Split {
  const line = Buffer.from(encodeReturn(value, ''), 'utf8');
  const at = line.lastIndexOf('"tag":""') + TAG_KEY.length;
  return { head: line.subarray(0, at), tail: line.subarray(at) };
}

/** Whether `line` holds `s` at `pos`. */
function holds(line: Buffer, s: Buffer, pos: number): boolean {
  return pos >= 0 && pos + s.length <= line.length && line.compare(s, 0, s.length, pos, pos + s.length) === 0;
}

async function phoenix(ptyPath: string, served: string): Promise<void> {
  // Read first, then stat: reading may move the file's atime, and the stat answer must be the
  // file as an agent would find it during the transfer.
  const data = fs.readFileSync(served);
  const stat = await goStatFile(served);
  const reads: Split[] = [];
  for (let off = 0; off < data.length; off += CHUNK) {
    const b64 = data.toString('base64', off, Math.min(data.length, off + CHUNK));
    reads.push(split(new RawJson(['{"bufb64":"', b64, '","eof":false}'])));
  }
  const md5 = createHash('md5').update(data).digest('hex');
  const at = {
    eof: split({ bufb64: '', eof: true }),
    eofMd5: split({ bufb64: '', eof: true, md5 }),
    true: split(true),
    ping: split(VERSION),
    info: split({
      name: 'ember-ga',
      version: VERSION,
      max_line_bytes: MAX_LINE_BYTES,
      max_read_size: defaultConfig.maxReadSize,
      atomic_write: true,
      read_md5: true,
    }),
    stat: split(stat),
  };
  // Handles as ember-ga numbers them (1, 2, ... never reused); a read handle's next chunk.
  const handles = new Map<number, { write: boolean; next: number; md5: boolean }>();
  let lastHandle = 0;
  // Every fast answer is spliced here: the port copies what the kernel does not take at once.
  let longest = 0;
  for (const s of [...reads, ...Object.values(at)]) longest = Math.max(longest, s.head.length + s.tail.length);
  const out = Buffer.allocUnsafe(longest + MAX_FAST_TAG);
  let pending: Buffer[] = [];

  /** The answer `s` with the tag line[tagAt, tagEnd) (its JSON text). */
  const send = (s: Split, line: Buffer, tagAt: number, tagEnd: number) => {
    let n = s.head.copy(out, 0);
    n += line.copy(out, n, tagAt, tagEnd);
    n += s.tail.copy(out, n);
    port.write(out.subarray(0, n));
  };

  /** The answer to file-read on handle `id` (open for reading). */
  const nextRead = (id: number, h: { next: number; md5: boolean }): Split => {
    if (h.next < reads.length) return reads[h.next++];
    handles.delete(id); // closed at end of file, as ember-ga does
    return h.md5 ? at.eofMd5 : at.eof;
  };

  /**
   * file-read and file-write in the shapes hosts send them, found by comparing bytes: false
   * (nothing sent) for anything else, which the slow path answers. `end`: the line's end before
   * its \r\n.
   */
  const fast = (line: Buffer, end: number): boolean => {
    // Untagged requests end in `}}`, tagged ones in `},"tag":"TAG"}` with a plain TAG.
    if (line[end - 1] !== 0x7d) return false;
    let tagAt = end - 1;
    let tagEnd = tagAt;
    let body = end - 1; // the request up to its arguments' `}`, inclusive
    if (line[end - 2] !== 0x7d) {
      if (line[end - 2] !== 0x22) return false;
      const open = line.lastIndexOf(0x22, end - 3);
      if (open < 8 || end - 2 - open > MAX_FAST_TAG) return false;
      if (!holds(line, TAG_KEY, open - 6) || line[open - 7] !== 0x2c) return false;
      for (let i = open + 1; i < end - 2; i++) {
        const c = line[i]; // letters, digits, - . : _ need no escaping: they go out as they came
        if (!(
          (c >= 0x30 && c <= 0x3a) ||
          (c >= 0x41 && c <= 0x5a) ||
          (c >= 0x61 && c <= 0x7a) ||
          c === 0x2d ||
          c === 0x2e ||
          c === 0x5f
        ))
          return false;
      }
      tagAt = open + 1;
      tagEnd = end - 2;
      body = open - 7;
    }
    const isRead = holds(line, READ, 0);
    if (!isRead && !holds(line, WRITE, 0)) return false;
    const from = isRead ? READ.length : WRITE.length;
    let i = from;
    let id = 0;
    for (; line[i] >= 0x30 && line[i] <= 0x39 && i - from < 15; i++) id = id * 10 + line[i] - 0x30;
    const h = handles.get(id);
    if (i === from || h === undefined || h.write === isRead) return false; // the slow path says what is wrong
    if (isRead) {
      if (!(i + 1 === body && line[i] === 0x7d) && !(i + SIZE.length === body && holds(line, SIZE, i))) return false;
      send(nextRead(id, h), line, tagAt, tagEnd);
      return true;
    }
    // file-write: the data goes nowhere; with eof true the handle closes.
    if (!holds(line, BUFB64, i)) return false;
    const ends = (s: Buffer) => body - s.length > i && holds(line, s, body - s.length);
    if (ends(EOF_TRUE)) handles.delete(id);
    else if (!ends(EOF_FALSE) && !(line[body - 2] === 0x22 && line[body - 1] === 0x7d)) return false;
    send(at.true, line, tagAt, tagEnd);
    return true;
  };

  // A host whose reads or writes miss the fast path measures JSON.parse, not the bridge: said once.
  const slowOnes = new Set<string>();
  const slowHot = (command: string) => {
    if (slowOnes.has(command)) return;
    slowOnes.add(command);
    process.stderr.write(`stand-in guest: a ${command} took the slow path\n`);
  };

  /** Every other request, and whatever the fast path does not recognise: parsed, as an agent would. */
  const slow = (line: Buffer, end: number) => {
    let req: { execute?: unknown; arguments?: Record<string, unknown>; tag?: unknown };
    try {
      req = JSON.parse(line.toString('utf8', 0, end)) as typeof req;
    } catch {
      port.write(Buffer.from(encodeError('stand-in guest: not JSON', EINVAL, ''), 'utf8'));
      return;
    }
    const tag = typeof req.tag === 'string' ? req.tag : '';
    const a = req.arguments ?? {};
    const answer = (s: Split) =>
      port.write(Buffer.concat([s.head, Buffer.from(goJson(tag).slice(1, -1), 'utf8'), s.tail]));
    const fail = (what: string) => port.write(Buffer.from(encodeError(`stand-in guest: ${what}`, EINVAL, tag), 'utf8'));
    const id = Number(a.handle_id);
    const h = handles.get(id);
    switch (req.execute) {
      case 'ping':
        return answer(at.ping);
      case 'agent-info':
        return answer(at.info);
      case 'file-stat':
        return a.path === served ? answer(at.stat) : fail(`file-stat: only ${served} is here`);
      case 'file-open': {
        const write = a.mode === 'w';
        if (!write && a.path !== served) return fail(`file-open: only ${served} can be read`);
        handles.set(++lastHandle, { write, next: 0, md5: a.md5 === true });
        return answer(split(lastHandle));
      }
      case 'file-read':
        slowHot(req.execute);
        if (h === undefined || h.write || (a.size !== undefined && a.size !== CHUNK))
          return fail(`file-read: handle ${id} is not open for reading here, or size is not ${CHUNK}`);
        return answer(nextRead(id, h));
      case 'file-write':
        slowHot(req.execute);
        if (h === undefined || !h.write) return fail(`file-write: handle ${id} is not open for writing`);
        if (a.eof === true) handles.delete(id);
        return answer(at.true);
      case 'file-close':
        if (!handles.delete(id)) return fail(`file-close: no handle ${id}`);
        return answer(at.true);
      default:
        return fail(`${String(req.execute)}: not a command it answers`);
    }
  };

  const onLine = (line: Buffer) => {
    let end = line.length - 1; // the newline
    if (line[end - 1] === 0x0d) end--;
    if (!holds(line, EXECUTE, 0) || !fast(line, end)) slow(line, end);
  };

  const port = new native.Port(
    ptyPath,
    (type, arg, start, end) => {
      if (type !== 'data') return;
      let d = (arg as Buffer).subarray(start, end); // as the agent's transport takes it
      for (let nl = d.indexOf(0x0a); nl >= 0; nl = d.indexOf(0x0a)) {
        if (pending.length > 0) {
          pending.push(d.subarray(0, nl + 1));
          onLine(Buffer.concat(pending));
          pending = [];
        } else onLine(nl + 1 === d.length ? d : d.subarray(0, nl + 1));
        d = d.subarray(nl + 1);
      }
      if (d.length > 0) pending.push(d);
    },
    { views: true },
  );
  closeOnTerm(() => port.close());
}
