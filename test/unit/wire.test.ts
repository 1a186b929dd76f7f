import * as assert from 'uvu/assert';
import { Base64Text, decodeBase64, type Base64Decoder } from '../../lib/wire/base64';
import { LineFramer } from '../../lib/wire/framing';
import { answerBytes, encodeError, encodeRawReturn, encodeReturn, RawJson } from '../../lib/wire/answer';
import {
  countJson,
  MAX_NESTING_DEPTH,
  MAX_REQUEST_TOKENS,
  parseRequest,
  RequestError,
  type Request,
} from '../../lib/wire/request';
import { AgentError, withoutStacks } from '../../lib/errors';
import { bytesSearched } from '../helpers/harness';
import { QgaError } from '../../lib/protocols/qemu-ga/schema';
import { goBytesJson, goJson, quote } from '../../lib/wire/json';
import { checkArgs } from '../../lib/protocols/phoenix/registry';
import { suite } from '../helpers/harness';

const test = suite('protocol');

function frame(chunks: (string | Buffer)[], max?: number) {
  const lines: string[] = [];
  let overflows = 0;
  const f = new LineFramer(
    (l) => lines.push(l.toString()),
    () => overflows++,
    max,
  );
  for (const c of chunks) f.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return { lines, overflows, f };
}

test('tokens counted as a JSON lexer finds them: a string one, spaces none, escapes kept inside', () => {
  const b = (t: string) => Buffer.from(t, 'latin1');
  const over = (t: string, max: number) => countJson(b(t), max, Infinity).tokens > max;
  // 9 tokens: { "a" : [ 1 , true ] }
  const nine = '{"a" :  [12,  true]}';
  assert.is(over(nine, 8), true);
  assert.is(over(nine, 9), false);
  // A string with an escaped quote, backslashes and brackets is one token; a run of escaped
  // backslashes before its closing quote ends it.
  const str = '["a\\"{[,:]}\\\\", 1]';
  assert.is(over(str, 5), false);
  assert.is(over(str, 4), true);
  assert.is(over('"never closed [[[[[[[[[[', 3), false, 'unterminated: left to JSON.parse');
  // Depth: brackets and braces together, none inside strings, each closed one off again.
  assert.equal(countJson(b('[{"a":[1,{}]},["[[[{{{"]]'), 100, 100), { tokens: 16, depth: 4 });
  assert.is(countJson(b('['.repeat(50)), 100, 10).depth, 11, 'stops at the bracket past the limit');
});

test('nesting: 10000 deep is parsed as before, 10001 refused before parsing, as Go reads JSON', () => {
  assert.is(MAX_NESTING_DEPTH, 10_000);
  // The request object and "arguments" are two levels; the path holds the rest.
  const line = (depth: number, close = true) => {
    const inner = depth - 2;
    return Buffer.from(
      `{"execute":"file-stat","arguments":{"path":${'['.repeat(inner)}${close ? ']'.repeat(inner) : ''}}}`,
    );
  };
  const path = parseRequest(line(MAX_NESTING_DEPTH)).arguments.path;
  let depth = 0;
  for (let v: unknown = path; Array.isArray(v); v = v[0]) depth++;
  assert.is(depth, MAX_NESTING_DEPTH - 2);
  assert.throws(() => parseRequest(line(MAX_NESTING_DEPTH + 1)), /^Invalid JSON: nested more than 10000 deep$/);
  // The error is the request's: a RequestError with no tag.
  try {
    parseRequest(line(MAX_NESTING_DEPTH + 1));
  } catch (e) {
    assert.instance(e, RequestError);
    assert.is((e as RequestError).tag, '');
  }
  // Refused even when it would not parse, and strings' brackets are not counted.
  assert.throws(() => parseRequest(line(MAX_NESTING_DEPTH + 1, false)), /nested more than 10000 deep/);
  const inString = `{"execute":"ping","tag":"${'['.repeat(3 * MAX_NESTING_DEPTH)}"}`;
  assert.is(parseRequest(Buffer.from(inString)).tag.length, 3 * MAX_NESTING_DEPTH);
  // Deep and wide: siblings at 10000 deep do not add up.
  const wide = `{"execute":"x","arguments":{"a":${'['.repeat(9_997)}${'[],'.repeat(10)}[]${']'.repeat(9_997)}}}`;
  assert.is(parseRequest(Buffer.from(wide)).execute, 'x');
});

test('a line of more tokens than the limit is refused before it is parsed', () => {
  const line = Buffer.from('[' + '[],'.repeat(MAX_REQUEST_TOKENS / 3) + '[]]');
  assert.throws(() => parseRequest(line), /Invalid JSON: more than 2097152 tokens in one request/);
  const write = Buffer.from(
    `{"execute":"file-write","arguments":{"handle_id":1,"bufb64":"${'QUJD'.repeat(MAX_REQUEST_TOKENS)}"}}`,
  );
  assert.is(parseRequest(write).execute, 'file-write', 'one long string is one token');
});

test('LF and CRLF lines, several in one chunk', () => {
  const { lines } = frame(['a\r\nb\nc\r\n']);
  assert.equal(lines, ['a', 'b', 'c']);
});

test('a line split across many small chunks', () => {
  const msg = '{"execute":"ping","tag":"x"}\r\n';
  const { lines } = frame([...msg]);
  assert.equal(lines, ['{"execute":"ping","tag":"x"}']);
});

test('a partial line waits for its newline', () => {
  const { lines, f } = frame(['abc', 'def']);
  assert.equal(lines, []);
  assert.is(f.buffered, 6);
  f.push(Buffer.from('\n'));
  assert.equal(lines, ['abcdef']);
  assert.is(f.buffered, 0);
});

test('an oversized line: one overflow, never buffered past the limit, then resync', () => {
  const lines: string[] = [];
  let overflows = 0;
  let maxBuffered = 0;
  const f = new LineFramer(
    (l) => lines.push(l.toString()),
    () => overflows++,
    100,
  );
  f.push(Buffer.from('ok1\n'));
  for (let i = 0; i < 50; i++) {
    f.push(Buffer.alloc(64, 0x61));
    maxBuffered = Math.max(maxBuffered, f.buffered);
  }
  f.push(Buffer.from('tail\nok2\n'));
  assert.equal(lines, ['ok1', 'ok2']);
  assert.is(overflows, 1);
  assert.ok(maxBuffered <= 101, `buffered ${maxBuffered}`);
});

test('a line of exactly the limit passes, with or without CR', () => {
  const line = 'x'.repeat(100);
  const { lines, overflows } = frame([line + '\r\n' + line + '\n'], 100);
  assert.equal(lines, [line, line]);
  assert.is(overflows, 0);
  assert.is(frame(['y'.repeat(102) + '\n'], 100).overflows, 1);
  assert.is(frame(['y'.repeat(101) + '\n'], 100).overflows, 1);
  assert.is(frame(['y'.repeat(100) + '\r\n'], 100).overflows, 0);
});

test('reset drops a partial line', () => {
  const { lines, f } = frame(['garbage-from-old-host']);
  f.reset();
  f.push(Buffer.from('fresh\n'));
  assert.equal(lines, ['fresh']);
});

test('answers are byte-compatible with the reference (Go encoding/json)', () => {
  assert.is(encodeReturn('0.1.0', ''), '{"return":"0.1.0","tag":""}\n');
  assert.is(encodeReturn(true, 'abc'), '{"return":true,"tag":"abc"}\n');
  assert.is(encodeReturn({ a: [1, 2] }, 't'), '{"return":{"a":[1,2]},"tag":"t"}\n');
  assert.is(encodeReturn(undefined, 't'), '{"return":null,"tag":"t"}\n');
  // Go escapes <, > and & inside strings
  assert.is(encodeReturn('<a&b>', 'x<'), '{"return":"\\u003ca\\u0026b\\u003e","tag":"x\\u003c"}\n');
  // Backspace and form feed as Go before 1.22 writes them (go1.19's json.Marshal, checked); an
  // escaped backslash before a b or f stays what it is.
  assert.is(
    goJson(['a\b\f\t<', 'x\\b', '\\\b', 'q"\\f']),
    '["a\\u0008\\u000c\\t\\u003c","x\\\\b","\\\\\\u0008","q\\"\\\\f"]',
  );
  const msg = 'open /nonexistent: no such file or directory';
  assert.is(
    encodeError(msg, 2, 'q'),
    `{"error":{"bufb64":"${Buffer.from(msg).toString('base64')}","code":2},"tag":"q"}\n`,
  );
});

test('64-bit integers past 2^53 are written exactly, as Go prints them', () => {
  const big = 2n ** 63n + 2n; // an overlayfs inode number with xino
  assert.is(
    encodeReturn({ Ino: big, Size: -(2n ** 62n), n: 7 }, 't'),
    `{"return":{"Ino":9223372036854775810,"Size":-4611686018427387904,"n":7},"tag":"t"}\n`,
  );
  // A string that looks like a bigint stays a string, NUL and all, and Go's escapes still apply.
  assert.is(
    encodeReturn([big, '\u00000:0', '<'], ''),
    '{"return":[9223372036854775810,"\\u00000:0","\\u003c"],"tag":""}\n',
  );
});

test('a lone surrogate in an answer string is written as U+FFFD, as Go writes it', () => {
  assert.is(encodeReturn('a\ud800b', '\udc00'), '{"return":"a\ufffdb","tag":"\ufffd"}\n');
  // A pair is one character; a backslash before "ud800" is text, also next to a lone surrogate.
  assert.is(
    encodeReturn(['\ud83d\ude00', '\\ud800', '\\\udfff', '\ud83d'], ''),
    '{"return":["\ud83d\ude00","\\\\ud800","\\\\\ufffd","\ufffd"],"tag":""}\n',
  );
  // With a bigint (another stringify path) and Go's HTML escapes.
  assert.is(
    encodeReturn({ Ino: 2n ** 63n, name: '<\udc00' }, 't'),
    '{"return":{"Ino":9223372036854775808,"name":"\\u003c\ufffd"},"tag":"t"}\n',
  );
  assert.is(
    encodeError('bad \udc00', -1, '\udc00'),
    `{"error":{"bufb64":"${Buffer.from('bad \ufffd').toString('base64')}","code":-1},"tag":"\ufffd"}\n`,
  );
  assert.is(quote('\ud800x'), '"\ufffdx"');
});

test('a string of bytes that are not UTF-8 is written as Go writes it: \\ufffd per byte that begins no character', () => {
  // What go1.19's json.Marshal wrote for string([]byte) of these (the hex is the bytes).
  const cases: [string, string][] = [
    ['61ff', '"a\\ufffd"'],
    ['61efbfbd', '"a\ufffd"'], // a U+FFFD that is there as text: as it is
    ['64e282', '"d\\ufffd\\ufffd"'], // a cut sequence: one per byte (Node's decoder makes one U+FFFD)
    ['eda080', '"\\ufffd\\ufffd\\ufffd"'], // a surrogate
    ['62c080', '"b\\ufffd\\ufffd"'], // overlong
    ['f4908080', '"\\ufffd\\ufffd\\ufffd\\ufffd"'], // past U+10FFFF
    ['3c3e26', '"\\u003c\\u003e\\u0026"'],
    ['e280a8', '"\\u2028"'],
    ['c3a9', '"\u00e9"'],
    ['01220a5c', '"\\u0001\\"\\n\\\\"'],
    ['61ff62fe63', '"a\\ufffdb\\ufffdc"'],
    ['f09f9880ff', '"\ud83d\ude00\\ufffd"'],
    ['', '""'],
  ];
  for (const [hex, json] of cases) assert.is(goBytesJson(Buffer.from(hex, 'hex')), json, hex);
});

test('every answer is well-formed UTF-8 holding what the string holds, lone surrogates as U+FFFD', () => {
  // String.prototype.toWellFormed, written out (Node 18 has none).
  const wellFormed = (s: string) =>
    s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  const strict = new TextDecoder('utf-8', { fatal: true });
  const alphabet = [
    'a',
    '\\',
    '"',
    'u',
    'd',
    '8',
    '0',
    '\n',
    '<',
    '\u0001',
    '\ud800',
    '\udbff',
    '\udc00',
    '\udfff',
    '\ud83d\ude00',
    '\ufffd',
  ];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) >>> 16; // an LCG's low bits cycle fast
  for (let i = 0; i < 2000; i++) {
    const s = Array.from({ length: next() % 12 }, () => alphabet[next() % alphabet.length]).join('');
    const line = encodeReturn(s, s);
    assert.is(strict.decode(Buffer.from(line)), line, JSON.stringify(s));
    assert.equal(JSON.parse(line), { return: wellFormed(s), tag: wellFormed(s) }, JSON.stringify(s));
  }
});

/** A request without its release(), for deep comparisons. */
function fields(req: Request): Omit<Request, 'release'> {
  const { release: _, ...rest } = req;
  return rest;
}

test('a RawJson answer over 4 MiB stays in pieces, the same bytes as one line; smaller ones are one buffer', () => {
  const entry = Buffer.from('{"name":"f","isdir":false}');
  const parts: (string | Buffer)[] = ['['];
  for (let i = 0; i < 200_000; i++) parts.push(i === 0 ? '' : ',', entry);
  parts.push(']');
  const big = new RawJson(parts);
  const pieces = encodeRawReturn(big, '<t>');
  assert.ok(Array.isArray(pieces), 'pieces');
  const joined = Buffer.concat(pieces as Buffer[]);
  assert.ok(joined.length > 4 * 1024 * 1024);
  assert.is(answerBytes(pieces), joined.length);
  assert.is(joined.toString('utf8'), encodeReturn(big, '<t>'));
  const small = encodeRawReturn(new RawJson(['[', entry, ']']), '<t>');
  assert.instance(small, Buffer);
});

test('a RawJson answer with a part of 64 KiB or more is pieces: that part as it is, the JSON around it one buffer each', () => {
  const b64 = Buffer.from('QUJD'.repeat(256 * 1024)); // a 1 MiB chunk's base64
  const value = new RawJson(['{"bufb64":"', b64, '","eof":false}']);
  for (const tag of ['t', 'é\u2028']) {
    const pieces = encodeRawReturn(value, tag);
    assert.ok(Array.isArray(pieces), 'pieces');
    assert.is((pieces as Buffer[]).length, 3);
    assert.is((pieces as Buffer[])[1], b64, 'the base64 itself, not a copy');
    assert.is(Buffer.concat(pieces as Buffer[]).toString('utf8'), encodeReturn(value, tag));
  }
  // Only small parts (a listing of a few MB): one buffer, as before.
  const entries = new RawJson(['[', Buffer.alloc(60 * 1024, 0x20), ',', Buffer.alloc(60 * 1024, 0x20), ']']);
  assert.instance(encodeRawReturn(entries, 't'), Buffer);
});

test('parseRequest: shapes and clear errors', () => {
  assert.equal(fields(parseRequest('{"execute":"ping"}')), { execute: 'ping', arguments: {}, tag: '' });
  assert.equal(fields(parseRequest('{"execute":"x","arguments":{"a":1},"tag":"t"}')), {
    execute: 'x',
    arguments: { a: 1 },
    tag: 't',
  });
  assert.equal(fields(parseRequest('{"execute":"x","arguments":null,"tag":null}')), {
    execute: 'x',
    arguments: {},
    tag: '',
  });
  const fails: [string, RegExp, string][] = [
    ['{bad', /Invalid JSON/, ''],
    ['[1,2]', /expected a JSON object, got an array/, ''],
    ['"ping"', /expected a JSON object, got a string/, ''],
    ['null', /got null/, ''],
    ['{"tag":"t"}', /"execute" is missing/, 't'],
    ['{"execute":5,"tag":"t"}', /"execute" must be a string, got an integer/, 't'],
    ['{"execute":"x","arguments":[1],"tag":"t"}', /"arguments" must be an object/, 't'],
    ['{"execute":"x","tag":7}', /"tag" must be a string/, ''],
  ];
  for (const [line, re, tag] of fails) {
    try {
      parseRequest(line);
      assert.unreachable(line);
    } catch (e) {
      assert.match((e as Error).message, re, line);
      assert.is((e as { tag: string }).tag, tag, line);
    }
  }
});

/**
 * A decoder with decodeBase64's rules (less line breaks, as Base64Decoder says) that counts what
 * it hands out and what comes back.
 */
function countingDecoder() {
  const out = { given: 0, released: 0, decode: undefined as unknown as Base64Decoder };
  out.decode = (line, start, end) => {
    const text = line.toString('latin1', start, end);
    const bytes = /[\r\n]/.test(text) ? undefined : decodeBase64(text);
    if (!bytes) return undefined;
    out.given++;
    let done = false;
    return {
      bytes,
      release: () => {
        if (!done) out.released++;
        done = true;
      },
    };
  };
  return out;
}

/**
 * parseRequest of a line as bytes (as the agent gets it), with every argument that came as a
 * Base64Text turned back into its text: what JSON.parse of the whole line must also give.
 */
function parsedAsText(line: string): { req: Omit<Request, 'release'>; cut: string[] } {
  const d = countingDecoder();
  const { release, ...req } = parseRequest(Buffer.from(line, 'utf8'), { decodeBase64: d.decode });
  assert.equal(fields(parseRequest(Buffer.from(line, 'utf8'))), viaJsonParse(line), 'without a decoder');
  const cut: string[] = [];
  for (const [k, v] of Object.entries(req.arguments)) {
    if (v instanceof Base64Text) {
      cut.push(k);
      req.arguments[k] = v.text;
    }
  }
  release();
  assert.is(d.released, d.given, 'every decoded string released');
  return { req, cut };
}

function viaJsonParse(line: string) {
  const v = JSON.parse(line);
  return { execute: v.execute, arguments: v.arguments ?? {}, tag: v.tag ?? '' };
}

test('parseRequest: a long base64 argument comes decoded, cut out of the line', () => {
  const data = Buffer.alloc(1024 * 1024 + 1);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
  const b64 = data.toString('base64');
  const line = JSON.stringify({
    execute: 'file-write',
    arguments: { handle_id: 3, bufb64: b64, eof: false },
    tag: 't1',
  });
  const d = countingDecoder();
  const { release, ...req } = parseRequest(Buffer.from(line), { decodeBase64: d.decode });
  const arg = req.arguments.bufb64;
  assert.instance(arg, Base64Text);
  assert.is((arg as Base64Text).text, b64);
  assert.equal((arg as Base64Text).decoded.bytes, data);
  assert.equal({ ...req, arguments: { ...req.arguments, bufb64: b64 } }, viaJsonParse(line));
  // A 'string' argument gets its text, a 'base64' one its bytes; a plain string decodes strictly.
  const schema = {
    bufb64: { type: 'base64', doc: '' },
    s: { type: 'string', doc: '' },
    d: { type: 'base64', default: '', doc: '' },
    bad: { type: 'base64', doc: '' },
  } as const;
  const args = checkArgs(schema, { bufb64: arg, s: arg, bad: 'QQ=' });
  assert.is(args.bufb64, (arg as Base64Text).decoded.bytes);
  assert.is(args.s, b64);
  assert.equal(args.d, Buffer.alloc(0));
  assert.is(args.bad, null);
  assert.throws(
    () => checkArgs({ h: { type: 'int', required: true, doc: '' } }, { h: arg }),
    /"h": expected an integer, got a string/,
  );
  // A cut string meets every check a string argument has (file-open's mode: "r" or "w", never 8 KiB of base64).
  assert.throws(
    () => checkArgs({ mode: { type: 'string', default: 'r', oneOf: ['r', 'w'], doc: '' } }, { mode: arg }),
    /"mode": expected one of "r", "w"/,
  );
  assert.is(d.released, 0);
  release();
  release();
  assert.equal([d.given, d.released], [1, 1]);
  // Lines whose shape is wrong release what was decoded before they throw.
  for (const bad of [
    `{"execute":1,"arguments":{"a":"${b64}"}}`,
    `{"execute":"x","arguments":{"a":"${b64}"},"tag":2}`,
    `["${b64}"]`,
  ]) {
    assert.throws(() => parseRequest(Buffer.from(bad), { decodeBase64: d.decode }), /Invalid request/);
  }
  assert.equal([d.given, d.released], [4, 4]);
});

test('parseRequest: cutting long strings out never changes what the line says', () => {
  const b64 = Buffer.alloc(12 * 1024, 0xab).toString('base64'); // 16 KiB of text: long enough to cut
  const lines = [
    // cut: a value of "arguments", one or two of them, with spaces around
    `{"execute":"file-write","arguments":{"bufb64":"${b64}","handle_id":1},"tag":"a"}`,
    `{ "execute" : "x" , "arguments" : { "a" : "${b64}" , "b" : "${b64}Zm9v" } }`,
    // as text: a long key, a value elsewhere (nested, in an array, tag, execute)
    `{"execute":"x","arguments":{"${b64}":1,"k":{"${b64}" :2}}}`,
    `{"execute":"x","arguments":{"n":{"v":"${b64}"},"l":["${b64}"]},"tag":"${b64}"}`,
    `{"execute":"${b64}","arguments":{}}`,
    // escapes: a quote or backslash before a run of base64 must not start a string there
    `{"execute":"x","arguments":{"a":"\\"${b64}\\"","b":"\\\\","c":"${b64}"}}`,
    `{"execute":"x","arguments":{"a":"\\\\\\"${b64}","c":"\\u0041${b64}"}}`,
    `{"execute":"x","arguments":{"a":"\\"\\"${b64}"}}`, // a scanner blind to escapes would cut from the second quote
    // not strict base64: left to JSON.parse (URL alphabet, bad length, non-ASCII, a line break)
    `{"execute":"x","arguments":{"a":"${b64}-_AA","b":"${b64}A","c":"${b64}\u00e9AAA","d":"${b64.slice(0, 76)}\\n${b64.slice(76)}"}}`,
    // the same key twice: the last wins, as with JSON.parse
    `{"execute":"x","arguments":{"a":"${b64}","a":"QUJD"}}`,
    `{"execute":"x","arguments":{"a":"QUJD","a":"${b64}"}}`,
    // arguments null, or an array holding one
    `{"execute":"x","arguments":null,"tag":"${b64}"}`,
  ];
  const cutKeys = [['bufb64'], ['a', 'b'], [], [], [], ['c'], [], [], [], [], ['a'], []];
  lines.forEach((line, i) => {
    const { req, cut } = parsedAsText(line);
    assert.equal(req, viaJsonParse(line), `line ${i}`);
    assert.equal(cut.sort(), cutKeys[i], `line ${i}: the arguments cut out`);
  });
  assert.throws(
    () =>
      parseRequest(Buffer.from(`{"execute":"x","arguments":["${b64}"]}`), { decodeBase64: countingDecoder().decode }),
    /"arguments" must be an object, got an array/,
  );
  // An invalid line is JSON.parse's error, position and all.
  for (const bad of [
    `{"execute":"x","arguments":{"a":"${b64}",}}`,
    `{"execute":"x","arguments":{"a":"${b64}"}`,
    `{"execute":"x","arguments":{"a":"${b64}`,
  ]) {
    let want = '';
    try {
      JSON.parse(bad);
    } catch (e) {
      want = `Invalid JSON: ${(e as Error).message}`;
    }
    assert.throws(
      () => parseRequest(Buffer.from(bad), { decodeBase64: countingDecoder().decode }),
      (e: Error) => e.message === want,
    );
  }
});

test('errors answered to a host are made without a stack; others keep theirs', () => {
  const framesOf = (e: unknown) =>
    ((e as Error).stack ?? '').split('\n').filter((l) => l.trim().startsWith('at ')).length;
  const limit = Error.stackTraceLimit;
  const thrown = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e;
    }
    assert.unreachable('no error thrown');
  };
  // A bad line: JSON.parse's SyntaxError inside, then the RequestError answered.
  const bad = thrown(() => parseRequest(Buffer.from('{"execute":"ping",,}')));
  assert.instance(bad, RequestError);
  assert.match((bad as Error).message, /^Invalid JSON: /);
  assert.is(framesOf(bad), 0);
  assert.is(framesOf(thrown(() => parseRequest('{"execute":1}'))), 0);
  assert.is(framesOf(new AgentError('Unknown command: nope')), 0);
  assert.is(framesOf(new QgaError('The command nope has not been found', 'CommandNotFound')), 0);
  assert.is(new QgaError('x', 'CommandNotFound').errorClass, 'CommandNotFound');
  assert.is(new AgentError('x', 2).code, 2);
  // The limit is put back, also after a throw: an error of a bug still says where it came from.
  assert.is(Error.stackTraceLimit, limit);
  assert.ok(framesOf(new Error('a bug')) > 0);
  assert.is(framesOf(thrown(() => withoutStacks(() => JSON.parse('{')))), 0);
  assert.is(Error.stackTraceLimit, limit);
});

test('countJson finds the end of a string of many escapes in time linear in its length', () => {
  // Each escape once searched again for the closing quote: 20,000 escapes were 20,000 passes.
  const line = Buffer.from(`{"a":"${'\\n'.repeat(20_000)}","b":1}`);
  let counted: { tokens: number; depth: number } | undefined;
  const searched = bytesSearched(() => (counted = countJson(line, 1000, 10)));
  assert.equal(counted, { tokens: 9, depth: 1 });
  assert.ok(searched < 4 * line.length, `searched ${searched} bytes of a ${line.length}-byte line`);
});

test.run();
