// guest-set-user-password's base64, decoded as qemu's qbase64_decode and glib's g_base64_decode
// do it (lenient in ways strict base64 is not).
import * as assert from 'uvu/assert';
import { qbase64Decode, qemuBytes, qemuString } from '../../../../lib/protocols/qemu-ga/commands/users';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga-base64');

test("glib's decoding: padding, newlines, a trailing partial group, a C string", () => {
  const cases: [string, string][] = [
    ['', ''],
    ['YWJj', 'abc'],
    ['eA==', 'x'],
    ['eHk=', 'xy'],
    ['eA', ''], // a partial group is dropped
    ['YWJjZA', 'abc'],
    ['eA=\n=', 'x'],
    ['YW\nJj\n', 'abc'],
    ['YQ==YQ==', 'aa'],
  ];
  for (const [text, bytes] of cases) assert.is(qbase64Decode(text).toString('latin1'), bytes, JSON.stringify(text));
});

test('characters outside the alphabet, "=" and "\\n" are refused', () => {
  // (a NUL is 0xC0 0x80 in qemu's strings: no base64 either)
  for (const text of ['YW Jj', 'YWJj\r\n', 'YW-j', 'YW_j', '\u00e9', 'YWJj\u0000']) {
    assert.throws(
      () => qbase64Decode(text),
      (e: Error) => e.message === 'Base64 data contains invalid characters',
      JSON.stringify(text),
    );
  }
});

test('strings as qemu holds them: NUL as 0xC0 0x80, and back; what its writer replaces', () => {
  assert.equal([...qemuBytes('a\u0000b\u00e9')], [0x61, 0xc0, 0x80, 0x62, 0xc3, 0xa9]);
  assert.is(qemuString(qemuBytes('a\u0000b\u00e9\u{1f600}')), 'a\u0000b\u00e9\u{1f600}');
  const bytes = (...b: number[]) => Buffer.from(b);
  assert.is(qemuString(bytes(0x61, 0x00, 0x62)), 'a'); // a real NUL ends it
  assert.is(qemuString(bytes(0xff, 0x61)), '\ufffda');
  assert.is(qemuString(bytes(0x80, 0x61)), '\ufffda'); // a stray continuation byte
  assert.is(qemuString(bytes(0xc3, 0x61)), '\ufffda'); // a continuation missing
  assert.is(qemuString(bytes(0xe0, 0x80, 0xaf)), '\ufffd'); // overlong
  assert.is(qemuString(bytes(0xef, 0xbf, 0xbe)), '\ufffd'); // U+FFFE, a noncharacter
  assert.is(qemuString(bytes(0xf4, 0x90, 0x80, 0x80)), '\ufffd'); // past U+10FFFF
});

test.run();
