// The addon's table-driven base64: the run decoder that decodes a long string as its request
// arrives (base64DecodeRun), the strict decoder and the encoder, each against Node's codec.
import * as crypto from 'crypto';
import * as assert from 'uvu/assert';
import { native } from '../../../lib/native';
import { suite } from '../../helpers/harness';

const test = suite('wire: base64 runs');

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

test('a run decodes whole groups up to the first group with any byte outside the alphabet', () => {
  const text = Buffer.from(crypto.randomBytes(3000).toString('base64')); // 4000 characters, no padding
  const want = Buffer.from(text.toString('latin1'), 'base64');
  for (let byte = 0; byte < 256; byte++) {
    const bad = !ALPHABET.includes(String.fromCharCode(byte));
    for (const at of [0, 1, 2, 3, 17, 63, 64, 65, 66, 67, 3999]) {
      const src = Buffer.from(text);
      src[at] = byte;
      const dst = Buffer.alloc(3000);
      const used = native.base64DecodeRun(src, 0, src.length, dst, 0);
      if (!bad) {
        assert.is(used, 4000);
        assert.ok(dst.equals(Buffer.from(src.toString('latin1'), 'base64')));
        continue;
      }
      assert.is(used, at - (at % 4), `byte ${byte} at ${at}`);
      assert.ok(dst.subarray(0, (used / 4) * 3).equals(want.subarray(0, (used / 4) * 3)));
    }
  }
});

test('a run stops before an incomplete group, at the end of its range and where dst is full', () => {
  const text = Buffer.from(`xx${crypto.randomBytes(300).toString('base64')}yy`, 'latin1');
  const want = Buffer.from(text.toString('latin1', 2, 402), 'base64');
  for (let end = 2; end <= 402; end += 7) {
    const dst = Buffer.alloc(300, 0xee);
    const used = native.base64DecodeRun(text, 2, end, dst, 0);
    assert.is(used, end - 2 - ((end - 2) % 4));
    assert.ok(dst.subarray(0, (used / 4) * 3).equals(want.subarray(0, (used / 4) * 3)));
    assert.ok(
      dst.subarray((used / 4) * 3).every((b) => b === 0xee),
      'nothing written past the run',
    );
  }
  // Room for 10 groups from `at`: exactly that many, and not a byte past dst.
  for (const room of [0, 1, 2, 3, 29, 30, 31]) {
    const dst = Buffer.alloc(5 + room + 4, 0xee);
    const used = native.base64DecodeRun(text, 2, 402, dst.subarray(0, 5 + room), 5);
    assert.is(used, Math.floor(room / 3) * 4, `room ${room}`);
    assert.ok(
      dst.subarray(5 + (used / 4) * 3).every((b) => b === 0xee),
      `room ${room}: nothing past the groups`,
    );
  }
  assert.is(native.base64DecodeRun(Buffer.from('QUJD=AAA'), 0, 8, Buffer.alloc(6), 0), 4); // '=' is no character of a run
  assert.throws(() => native.base64DecodeRun(text, 3, 2, Buffer.alloc(3), 0), /within the source/);
  assert.throws(() => native.base64DecodeRun(text, 0, 4, Buffer.alloc(3), 4), /within the destination/);
});

test('encoder and strict decoder agree with Node at every length and across the unrolled loop', () => {
  for (let n = 0; n < 200; n++) {
    const data = crypto.randomBytes(n);
    const text = native.base64(data, n);
    assert.is(text.toString('latin1'), data.toString('base64'), `length ${n}`);
    const dst = Buffer.alloc(n);
    assert.is(native.base64Decode(text, 0, text.length, dst), n);
    assert.ok(dst.equals(data));
  }
  const big = crypto.randomBytes((5 << 20) + 2);
  const text = native.base64(big, big.length);
  assert.is(text.toString('latin1'), big.toString('base64'));
  const dst = Buffer.alloc(big.length);
  assert.is(native.base64Decode(text, 0, text.length, dst), big.length);
  assert.ok(dst.equals(big));
  // A padded group's dropped bits may be set, as in any decoder: "QR==" is "A".
  const one = Buffer.alloc(1);
  assert.is(native.base64Decode(Buffer.from('QR=='), 0, 4, one), 1);
  assert.is(one[0], 0x41);
});

test.run();
