// guest-set-user-password's base64, decoded as qemu's qbase64_decode and glib's g_base64_decode
// do it (lenient in ways strict base64 is not).
import * as assert from 'uvu/assert';
import { qbase64Decode } from '../../../../lib/protocols/qemu-ga/commands/users';
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
    ['YWJj\u0000!!', 'abc'], // C reads up to the NUL
  ];
  for (const [text, bytes] of cases) assert.is(qbase64Decode(text).toString('latin1'), bytes, JSON.stringify(text));
});

test('characters outside the alphabet, "=" and "\\n" are refused', () => {
  for (const text of ['YW Jj', 'YWJj\r\n', 'YW-j', 'YW_j', '\u00e9']) {
    assert.throws(
      () => qbase64Decode(text),
      (e: Error) => e.message === 'Base64 data contains invalid characters',
      JSON.stringify(text),
    );
  }
});

test.run();
