// Long strings decoded as their request arrives (JsonStreamFramer with a decoder): the framer
// finds the same requests and errors as without one, whatever the chunks, hostile bytes
// included; each string cut out is its exact text and bytes; and the dispatcher answers every
// request exactly as it does when nothing was cut.
import * as crypto from 'crypto';
import * as assert from 'uvu/assert';
import { JsonStreamFramer, type Framed } from '../../../../lib/protocols/qemu-ga/framing';
import { QgaDispatcher } from '../../../../lib/protocols/qemu-ga/dispatcher';
import { defineQgaCommand, type QgaCommand } from '../../../../lib/protocols/qemu-ga/schema';
import { silentLogger } from '../../../../lib/log';
import type { Base64RunDecoder } from '../../../../lib/wire/base64';
import { runDecoder } from '../../../../lib/wire/decode-native';
import { MAX_REQUEST_TOKENS as MAX_TOKEN_COUNT, wholeRequest } from '../../../../lib/wire/request';
import type { Call, Context } from '../../../../lib/context';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga: strings decoded as they arrive');

/** runDecoder, counting the destinations out: every one must come back. */
function countingDecoder(): Base64RunDecoder & { out: number } {
  const d = {
    out: 0,
    take(size: number) {
      d.out++;
      return runDecoder.take(size);
    },
    give(buf: Buffer) {
      d.out--;
      runDecoder.give(buf);
    },
    run: runDecoder.run.bind(runDecoder),
  };
  return d;
}

/** What a framer makes of `chunks`; with a decoder, each request's bytes with its cut strings put back. */
function frame(chunks: Buffer[], decoder?: Base64RunDecoder, max?: number): { out: string[]; framed: Framed[] } {
  const framed: Framed[] = [];
  const f = new JsonStreamFramer((m) => framed.push(m), max, decoder);
  for (const c of chunks) f.push(c);
  const out = framed.map((m) =>
    'bytes' in m ? wholeRequest(m.bytes, m.cuts ?? []).toString('latin1') : `ERR ${m.error}`,
  );
  return { out, framed };
}

/** `text` cut into chunks at random places (a few very small, as a pty's reads can be). */
function chunked(text: Buffer, rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < text.length;) {
    const n = rand() < 0.1 ? 1 + Math.floor(rand() * 5) : 1 + Math.floor(rand() * 70_000);
    out.push(Buffer.from(text.subarray(i, i + n)));
    i += n;
  }
  return out;
}

function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

const b64 = (n: number) => crypto.randomBytes(n).toString('base64');

/** Long strings, strict and not, and the bytes that end a run: every way a run can stop. */
function strings(rand: () => number): string[] {
  const body = b64(96 * 1024); // 128 KiB of text, no padding
  const spoil = (s: string, what: string) => {
    const at = Math.floor(rand() * s.length);
    return s.slice(0, at) + what + s.slice(at);
  };
  return [
    body,
    b64(96 * 1024 + 1), // "xx=="
    b64(96 * 1024 + 2), // "xxx="
    `${body}QR==`, // a padded group with its dropped bits set
    `${body}Q===`,
    `${body}QQ==QUJD`,
    `${body}QQ=`,
    `${body}QU`,
    `${body}===`,
    spoil(body, '\\n'),
    spoil(body, '\\"'),
    spoil(body, '\\u0041'),
    spoil(body, '-'),
    spoil(body, '='),
    spoil(body, '\u00e9'),
    spoil(body, '}'),
    spoil(body, ' '),
    b64(3000), // short: held as text
    b64(48 * 1024 - 1),
    '',
  ];
}

function requests(rand: () => number): string[] {
  const out: string[] = [];
  for (const s of strings(rand)) {
    out.push(`{"execute":"echo","arguments":{"n":1,"b":"${s}"}}`);
    out.push(`{"execute":"echo","arguments":{"s":"${s}","b":"QUJD"},"id":"${s.slice(0, 5)}"}`);
  }
  const s = b64(90_000);
  out.push(
    `{"execute":"echo","arguments":{"b":"${s}","b":"QUJD"}}`, // a duplicate key's loser
    `{"execute":"echo","arguments":{"${s}":1}}`, // a key
    `{"execute":"echo","arguments":{"b":"QUJD","x":["${s}"]}}`, // nested
    `{"execute":"echo","id":"${s}","arguments":{"b":"QUJD"}}`, // outside the arguments
    `{"execute":"echo","arguments":{"b":"${s}"},}`, // invalid JSON after it
    `{"execute":"echo","arguments":{"b":"${s}", "b2":"${s}"}}`, // two
    `{"execute":"echo","arguments":{"__proto__":"${s}","b":"QUJD"}}`,
    `["${s}"]`,
    `"${s}"`, // a top-level string
  );
  return out;
}

test('the same requests and errors as without a decoder, whatever the chunks; every destination given back', () => {
  for (let round = 0; round < 6; round++) {
    const rand = lcg(round + 1);
    const text = Buffer.from(requests(rand).join(round % 2 ? '\n' : ''), 'utf8');
    const want = frame([text]).out;
    const decoder = countingDecoder();
    const { out, framed } = frame(chunked(text, rand), decoder);
    assert.equal(out, want, `round ${round}`);
    const cuts = framed.flatMap((m) => ('bytes' in m ? (m.cuts ?? []) : []));
    assert.ok(cuts.length >= 8, `${cuts.length} strings cut out`);
    for (const c of cuts) {
      assert.ok(c.decoded.bytes.equals(Buffer.from(c.text().toString('latin1'), 'base64')));
      assert.is(c.chars, c.text().length);
    }
    for (const c of cuts) c.decoded.release();
    assert.is(decoder.out, 0, 'every destination given back');
  }
});

test('a string whose opening quote ends a chunk is decoded as it arrives too', () => {
  const s = b64(100_000);
  const text = Buffer.from(`{"execute":"echo","arguments":{"b":"${s}"}}`);
  const q = text.indexOf('"', text.indexOf('"b":') + 4);
  const { framed } = frame(
    [text.subarray(0, q + 1), text.subarray(q + 1, q + 1000), text.subarray(q + 1000)],
    runDecoder,
  );
  const m = framed[0] as { bytes: Buffer; cuts: { decoded: { bytes: Buffer } }[] };
  assert.is(m.bytes.toString(), '{"execute":"echo","arguments":{"b":""}}');
  assert.ok(m.cuts[0].decoded.bytes.equals(Buffer.from(s, 'base64')));
});

test('limit, 0xFF and a host gone mid-string: errors as without a decoder, destinations given back', () => {
  const s = b64(60_000);
  const long = Buffer.from(`{"a":"${s}${s}"}{"b":1}`);
  const decoder = countingDecoder();
  const max = 100_000;
  const done = (r: { out: string[]; framed: Framed[] }) => {
    for (const m of r.framed) for (const c of 'bytes' in m ? (m.cuts ?? []) : []) c.decoded.release();
    return r.out;
  };
  assert.equal(done(frame(chunked(long, lcg(7)), decoder, max)), frame([long], undefined, max).out);
  assert.equal(frame([long], undefined, max).out, [
    'ERR JSON parse error, request longer than 100000 bytes',
    '{"b":1}',
  ]);
  // Exactly at the limit, and one past it.
  const at = Buffer.from(`{"a":"${s}"}`);
  for (const m of [at.length, at.length - 1]) {
    assert.equal(done(frame(chunked(at, lcg(m)), decoder, m)), frame([at], undefined, m).out, `limit ${m}`);
  }
  const ff = Buffer.concat([Buffer.from(`{"a":"${s}`), Buffer.from([0xff]), Buffer.from(`${s}"}{"b":2}`)]);
  assert.equal(done(frame(chunked(ff, lcg(3)), decoder)), frame([ff]).out);
  assert.is(decoder.out, 0);
  // Past the limit mid-string: its destination is given back then, not at the string's end.
  const over = new JsonStreamFramer(() => assert.unreachable('nothing is whole'), max, decoder);
  const ss = s + s;
  over.push(Buffer.from(`{"a":"${ss.slice(0, 4)}`));
  over.push(Buffer.from(ss.slice(4, 99_992)));
  assert.is(decoder.out, 1);
  over.push(Buffer.from(ss.slice(99_992, 99_996)));
  assert.is(decoder.out, 0);
  const f = new JsonStreamFramer(() => assert.unreachable('nothing is whole'), undefined, decoder);
  f.push(Buffer.from(`{"a":"${s}`));
  assert.is(decoder.out, 1);
  assert.is(f.buffered, s.length + 6);
  f.reset();
  assert.is(decoder.out, 0);
  assert.is(f.buffered, 0);
});

/** Answers the checked arguments as qemu would see them: the bytes of `b`, the text of `s`. */
const echo = defineQgaCommand({
  name: 'echo',
  doc: '',
  args: {
    b: { type: 'base64', optional: true, doc: '' },
    s: { type: 'str', optional: true, doc: '' },
    n: { type: 'int', optional: true, doc: '' },
  },
  handler: (a) => ({
    b: a.b === undefined ? 'none' : a.b === null ? 'invalid' : crypto.createHash('md5').update(a.b).digest('hex'),
    s: a.s === undefined ? 'none' : crypto.createHash('md5').update(a.s).digest('hex'),
  }),
});

test('a long string that goes over the token limit is passed over, not decoded, in any chunks', () => {
  const pairs = MAX_TOKEN_COUNT / 2 - 1; // '[', these pairs and one '0' reach the limit
  const text = Buffer.from(
    '[' +
      '0,'.repeat(pairs) +
      `0"${'QUJD'.repeat(50_000)}"]` +
      `{"execute":"x","arguments":{"b":"${'QUJD'.repeat(50_000)}"}}`,
    'latin1',
  );
  const want = ['ERR JSON token count limit exceeded', 'ERR JSON parse error, expecting value'];
  const whole = frame([text]).out;
  assert.equal(whole.slice(0, 2), want);
  assert.equal(whole.length, 3);
  for (const seed of [1, 2, 3]) {
    const d = countingDecoder();
    const { out, framed } = frame(chunked(text, lcg(seed)), d);
    assert.equal(out, whole, `seed ${seed}`);
    assert.is(d.out, 1, 'only the request after it has a string decoded as it came');
    for (const m of framed) for (const c of 'bytes' in m ? (m.cuts ?? []) : []) c.decoded.release();
    assert.is(d.out, 0, 'given back');
  }
});

test('the dispatcher answers each request as it does when nothing was cut out', async () => {
  const ctx = { state: { frozen: false }, log: silentLogger } as unknown as Context;
  const d = new QgaDispatcher(ctx, [echo as QgaCommand]);
  const call: Call = { session: 1, signal: new AbortController().signal };
  const answer = async (m: Framed) => {
    const a = await d.dispatch(m, call);
    return typeof a === 'string' ? a : Buffer.concat([a].flat()).toString();
  };
  const rand = lcg(42);
  const reqs = requests(rand);
  reqs.push(
    `{"execute":"echo","arguments":{"b":"${b64(70_000)}"}} trailing`,
    '{"execute":"echo","arguments":{"n":"x"}}',
  );
  const text = Buffer.from(reqs.join(''));
  const plain = frame([text]).framed;
  const cut = frame(chunked(text, rand), runDecoder).framed;
  assert.is(cut.length, plain.length);
  let cuts = 0;
  for (let i = 0; i < plain.length; i++) {
    if ('bytes' in cut[i]) cuts += (cut[i] as { cuts?: unknown[] }).cuts?.length ?? 0;
    assert.is(await answer(cut[i]), await answer(plain[i]), `request ${i}`);
  }
  assert.ok(cuts >= 8, `${cuts} strings cut out`);
});

test.run();
