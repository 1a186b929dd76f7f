import * as assert from 'uvu/assert';
import { LineFramer, encodeError, encodeReturn, parseRequest } from '../lib/protocol';
import { suite } from './helpers/harness';

const test = suite('protocol');

function frame(chunks: (string | Buffer)[], max?: number) {
  const lines: string[] = [];
  let overflows = 0;
  const f = new LineFramer((l) => lines.push(l.toString()), () => overflows++, max);
  for (const c of chunks) f.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return { lines, overflows, f };
}

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
  const f = new LineFramer((l) => lines.push(l.toString()), () => overflows++, 100);
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
  const msg = 'open /nonexistent: no such file or directory';
  assert.is(encodeError(msg, 2, 'q'), `{"error":{"bufb64":"${Buffer.from(msg).toString('base64')}","code":2},"tag":"q"}\n`);
});

test('64-bit integers past 2^53 are written exactly, as Go prints them', () => {
  const big = 2n ** 63n + 2n; // an overlayfs inode number with xino
  assert.is(encodeReturn({ Ino: big, Size: -(2n ** 62n), n: 7 }, 't'), `{"return":{"Ino":9223372036854775810,"Size":-4611686018427387904,"n":7},"tag":"t"}\n`);
  // A string that looks like a bigint stays a string, NUL and all, and Go's escapes still apply.
  assert.is(encodeReturn([big, '\u00000:0', '<'], ''), '{"return":[9223372036854775810,"\\u00000:0","\\u003c"],"tag":""}\n');
});

test('parseRequest: shapes and clear errors', () => {
  assert.equal(parseRequest('{"execute":"ping"}'), { execute: 'ping', arguments: {}, tag: '' });
  assert.equal(parseRequest('{"execute":"x","arguments":{"a":1},"tag":"t"}'), { execute: 'x', arguments: { a: 1 }, tag: 't' });
  assert.equal(parseRequest('{"execute":"x","arguments":null,"tag":null}'), { execute: 'x', arguments: {}, tag: '' });
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

test.run();
