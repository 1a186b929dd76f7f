// The small-chunk base64 path of the wire: Node's decoder held to the addon's rules, and a 4 KiB
// file-write line's base64 cut out of it.
import * as crypto from 'crypto';
import * as assert from 'uvu/assert';
import { native } from '../../../lib/native';
import { decodeBase64Into } from '../../../lib/wire/decode-native';
import { parseRequest, RequestError } from '../../../lib/wire/request';
import { Base64Text } from '../../../lib/wire/base64';
import { suite } from '../../helpers/harness';

const test = suite('wire: small base64');

test("small base64 text is decoded by Node's decoder, to the addon's verdict on every input", () => {
  const addon = (line: Buffer) => {
    const dst = Buffer.alloc(Math.floor((line.length - 2) / 4) * 3);
    const n = native.base64Decode(line, 1, line.length - 1, dst);
    return n < 0 ? undefined : dst.subarray(0, n);
  };
  const cases = ['', 'QQ==', 'QUI=', 'QUJD', 'QR==', 'aGVs\r\nbG8K', 'aGVsbG8', 'aGVsbG8!', 'aG Vs', 'QUJD\t\t\t\t'];
  cases.push('QUJ-', '-_-_', 'aG==aGk=', 'QQ==QUJD', 'a===', '====', 'QU=D', 'QUJD\u00e9AAA', 'QUJD\u0000AAA', 'QUJ\r');
  const alphabet = 'AQZaz09+/= \r\n\t\u0001-_.\u00ff';
  let seed = 11;
  for (let i = 0; i < 4000; i++) {
    let t = '';
    const len = 4 * (1 + (i % 5)) + (i % 7 === 0 ? 1 : 0);
    for (let k = 0; k < len; k++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      t += seed % 5 === 0 ? alphabet[seed % alphabet.length] : 'QUJDRUZH'[seed % 8];
    }
    cases.push(t);
  }
  cases.push(crypto.randomBytes(4096).toString('base64'), crypto.randomBytes(4095).toString('base64'));
  for (const t of cases) {
    const line = Buffer.from(`"${t}"`, 'latin1'); // at an offset, as in a request line
    const mine = decodeBase64Into(line, 1, line.length - 1);
    assert.equal(mine?.bytes, addon(line), JSON.stringify(t));
    mine?.release();
  }
});

test('a 4 KiB file-write line: its base64 cut out and decoded, the rest as JSON.parse reads it; a raw control character in it is still invalid JSON', () => {
  const data = crypto.randomBytes(4096);
  const line = `{"execute":"file-write","arguments":{"handle_id":7,"bufb64":"${data.toString('base64')}"},"tag":"w"}`;
  const req = parseRequest(Buffer.from(line), { decodeBase64: decodeBase64Into });
  assert.instance(req.arguments.bufb64, Base64Text);
  assert.ok((req.arguments.bufb64 as Base64Text).decoded.bytes.equals(data));
  assert.equal([req.execute, req.arguments.handle_id, req.tag], ['file-write', 7, 'w']);
  req.release();
  // A raw CR in it (JSON allows none in a string; Go's base64 would skip it as a line break):
  // base64 no more, so not cut, and JSON.parse refuses the line as it always did.
  const b64 = data.toString('base64');
  const bad = `{"execute":"file-write","arguments":{"handle_id":7,"bufb64":"${b64.slice(0, 100)}\r${b64.slice(100)}"}}`;
  assert.throws(
    () => parseRequest(Buffer.from(bad), { decodeBase64: decodeBase64Into }),
    (e: unknown) => {
      return e instanceof RequestError && /^Invalid JSON: /.test(e.message);
    },
  );
});

test.run();
