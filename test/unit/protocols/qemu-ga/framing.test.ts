import * as assert from 'uvu/assert';
import { JsonStreamFramer, type Framed } from '../../../../lib/protocols/qemu-ga/framing';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga framing');

function frame(chunks: (string | Buffer)[], max?: number): string[] {
  const out: string[] = [];
  const f = new JsonStreamFramer(
    (m: Framed) => out.push('bytes' in m ? m.bytes.toString('latin1') : `ERR ${m.error}`),
    max,
  );
  for (const c of chunks) f.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
  return out;
}

test('an object ends where it closes, with or without a newline', () => {
  assert.equal(frame(['{"a":1}{"b":[2,{"c":3}]}\n {"d":4}']), ['{"a":1}', '{"b":[2,{"c":3}]}', '{"d":4}']);
});

test('braces, brackets and quotes inside strings, escapes included', () => {
  assert.equal(frame(['{"a":"}{][\\"\\\\"}', '{"b":"\\\\"}']), ['{"a":"}{][\\"\\\\"}', '{"b":"\\\\"}']);
});

test('split anywhere: every byte its own chunk gives the same requests', () => {
  const text = '{"execute":"x","arguments":{"s":"a\\"}b","n":[1,2]}} {"execute":"y"}\r\n';
  assert.equal(frame([...text]), frame([text]));
  assert.equal(frame([text]).length, 2);
});

test('a bare scalar is a value of its own; a stray closing bracket is an error', () => {
  assert.equal(frame(['garbage\n"str" 12{"a":1}']), ['garbage', '"str"', '12', '{"a":1}']);
  assert.equal(frame(['}']), ['ERR JSON parse error, expecting value']);
});

test('0xFF drops what is pending, is answered once, and the stream goes on', () => {
  assert.equal(frame(['{"execute":"x"', Buffer.from([0xff]), '{"a":1}']), [
    "ERR JSON parse error, stray '\uFFFD'",
    '{"a":1}',
  ]);
  // Inside a string: the error echoes the string to the stray byte, and what follows is skipped
  // up to a bracket (qemu 7.2's lexer recovery), so the next request is served.
  assert.equal(frame([Buffer.from('{"s":"ab\xffcd"}{"b":2}', 'latin1')]), [
    "ERR JSON parse error, stray '\"ab\uFFFD'",
    'ERR JSON parse error, expecting value',
    '{"b":2}',
  ]);
});

test("0xFF or 0xFE in a string is qemu's stray error, and recovery skips to a bracket", () => {
  const ping = '{"execute":"guest-ping","id":"next"}';
  // What the real qemu-ga 7.2 answers (probed over a unix socket).
  assert.equal(
    frame([Buffer.from(`{"execute":"guest-file-open","arguments":{"path":"/tmp/caf\xff"}}\n${ping}\n`, 'latin1')]),
    [
      "ERR JSON parse error, stray '\"/tmp/caf\uFFFD'",
      'ERR JSON parse error, expecting value',
      'ERR JSON parse error, expecting value',
      ping,
    ],
  );
  // After an escape, and split across chunks: the same.
  assert.equal(frame(['{"a":"x\\', Buffer.from([0xfe]), '"}', ping]), [
    "ERR JSON parse error, stray '\"x\\\uFFFD'",
    'ERR JSON parse error, expecting value',
    ping,
  ]);
  // A 0xFF between values: the rest up to a bracket is skipped too ("abc" is never a value).
  assert.equal(frame([Buffer.from(`\xff"abc"${ping}`, 'latin1')]), ["ERR JSON parse error, stray '\uFFFD'", ping]);
  // A control character is framed with its value and left to the parser (Node's words).
  assert.equal(frame([`{"id":"\x01"}${ping}`]), ['{"id":"\x01"}', ping]);
  // Past the size limit the string is not held: its quote and what the chunk has of it.
  assert.equal(frame([`{"s":"${'x'.repeat(100)}`, Buffer.from('ab\xffcd"}', 'latin1'), ping], 64), [
    "ERR JSON parse error, stray '\"ab\uFFFD'",
    'ERR JSON parse error, expecting value',
    ping,
  ]);
  // An earlier string of the value, and one split across chunks, do not shift the echo.
  assert.equal(frame(['{"execute":"x","arguments":{"p":"lo', Buffer.from('ng\xff"}}', 'latin1'), ping]), [
    "ERR JSON parse error, stray '\"long\uFFFD'",
    'ERR JSON parse error, expecting value',
    'ERR JSON parse error, expecting value',
    ping,
  ]);
});

test('the string that goes over the token limit and holds a 0xFF echoes itself, not an earlier one', () => {
  // (qemu's lexer fails on the string before its streamer counts it: no token-limit error there.)
  const many = '[[' + '1,'.repeat(1_048_575);
  const out = frame(['{"execute":"guest-ping"}', many, Buffer.from('"ABCDEFGHIJKLMNOP\xff"]]{"a":1}', 'latin1')]);
  assert.equal(out, [
    '{"execute":"guest-ping"}',
    'ERR JSON token count limit exceeded',
    "ERR JSON parse error, stray '\"ABCDEFGHIJKLMNOP\uFFFD'",
    'ERR JSON parse error, expecting value',
    'ERR JSON parse error, expecting value',
    '{"a":1}',
  ]);
});

test('a request longer than the limit is one error, never held, and the next is served', () => {
  const long = `{"a":"${'x'.repeat(100)}"}`;
  assert.equal(frame([long.slice(0, 50), long.slice(50), '{"b":1}'], 64), [
    'ERR JSON parse error, request longer than 64 bytes',
    '{"b":1}',
  ]);
});

test('nesting up to 1024 deep is one value, costing a counter, not a stack', () => {
  const deep = '['.repeat(1024) + ']'.repeat(1024);
  assert.equal(frame([deep]), [deep]);
  assert.equal(frame([...deep]), [deep]);
});

test("the 1025th bracket deep is qemu's error: the value is dropped there and framing starts anew", () => {
  const err = 'ERR JSON nesting depth limit exceeded';
  assert.equal(frame(['['.repeat(1025) + '{"a":1}']), [err, '{"a":1}']);
  // Split across chunks, held bytes and all.
  assert.equal(frame(['{"x":' + '['.repeat(600), '{'.repeat(424), '{"a":1}']), [err, '{"a":1}']);
  assert.equal(frame(['['.repeat(3 * 1025 + 2) + ']]']), [err, err, err, '[[]]']);
});

test('commas, colons and closing brackets end a bare word and are values of their own', () => {
  assert.equal(frame(['12,13\n']), ['12', ',', '13']);
  assert.equal(frame(['abc:def}{"a":1},']), [
    'abc',
    ':',
    'def',
    'ERR JSON parse error, expecting value',
    '{"a":1}',
    ',',
  ]);
  assert.equal(frame(['{"a":[1,2],"b":3}']), ['{"a":[1,2],"b":3}']);
});

test.run();
