// qbase64Decode: qemu-ga 7.2's base64 (its character check, then glib's lenient decoder). The
// expected bytes are what qemu-ga wrote to a file for each text (test/integration/qemu-ga-files
// checks the same against the binary).
import * as assert from 'uvu/assert';
import { qbase64Decode } from '../../../../lib/protocols/qemu-ga/base64';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga base64');

const CASES: [string, number[] | null][] = [
  ['QUJD', [0x41, 0x42, 0x43]],
  ['', []],
  ['QQ', []], // a group left unfinished is dropped
  ['QQ=', []],
  ['QQ==', [0x41]],
  ['QQ==QUJD', [0x41, 0x41, 0x42, 0x43]], // padding mid-text ends nothing
  ['=AAA', [0, 0, 0]],
  ['QU\nJD', [0x41, 0x42, 0x43]], // newlines are skipped
  ['QQ=A', [0x41, 0]],
  ['Q===', [0x40]],
  ['====', [0]],
  ['QUJ', []],
  ['!!', null],
  ['QU\rJD', null],
  ['QUJD ', null],
  ['-_', null],
  ['QU\u0000JD', null],
  ['QUJD\u00e9', null],
  // guest-exec's input-data and guest-set-user-password's password decode the same way
  ['a=Gk', [0x68, 0x01, 0xa4]],
  ['aG==aGk=', [...Buffer.from('hhi')]],
  ['aGk=\naGk=', [...Buffer.from('hihi')]],
  ['eA=\n=', [0x78]],
  ['aGVsbG8', [...Buffer.from('hel')]],
  ['aGVs\u0000bG8K', null], // a NUL is 0xC0 0x80 to qemu: no base64, no end of the text
  ['aGk=\r\n', null],
  ['YW_j', null],
];

test('decodes as qemu-ga does, refuses what it refuses', () => {
  for (const [text, want] of CASES) {
    const got = qbase64Decode(text);
    assert.equal(got === null ? null : [...got], want, JSON.stringify(text));
  }
});

test('long text: strict base64 and MIME-style lines give the same bytes', () => {
  const data = Buffer.alloc(3 * 100_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const b64 = data.toString('base64');
  assert.ok(qbase64Decode(b64)!.equals(data));
  const lines = b64.replace(/.{76}/g, '$&\n');
  assert.ok(qbase64Decode(lines)!.equals(data));
});

test.run();
