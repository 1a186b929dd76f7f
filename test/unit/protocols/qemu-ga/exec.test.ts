// qemu's base64 decoding of guest-exec's input-data (qbase64_decode + g_base64_decode), on the
// cases whose bytes qemu-ga 7.2 was seen to hand to `cat` (test/integration/qemu-ga-exec.test.ts
// compares against qemu-ga itself).
import * as assert from 'uvu/assert';
import { qbase64Decode } from '../../../../lib/protocols/qemu-ga/commands/exec';
import { QgaError } from '../../../../lib/protocols/qemu-ga/schema';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga-exec-base64');

const hex = (s: string) => qbase64Decode(s).toString('hex');

test('strict base64 decodes as usual', () => {
  assert.is(qbase64Decode('aGk=').toString(), 'hi');
  assert.is(qbase64Decode('aGVsbG8=').toString(), 'hello');
  assert.is(qbase64Decode('').length, 0);
  const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff));
  assert.equal(qbase64Decode(bytes.toString('base64')), bytes);
});

test("GLib's leniency: newlines skipped, '=' anywhere, an incomplete last group dropped", () => {
  assert.is(qbase64Decode('aGk=\naGk=').toString(), 'hihi');
  assert.is(hex('a=Gk'), '6801a4');
  assert.is(qbase64Decode('aG==aGk=').toString(), 'hhi');
  assert.is(qbase64Decode('aGk').length, 0);
  assert.is(qbase64Decode('a').length, 0);
  assert.is(qbase64Decode('aGVsbG8').toString(), 'hel');
  assert.is(qbase64Decode('aGk=\u0000!!').toString(), 'hi'); // a C string ends at its NUL
});

test('anything outside the alphabet, "=" and newline is refused with qemu\'s message', () => {
  for (const bad of ['!!', 'a Gk=', 'a\rGk=', 'aGk=\r\n', 'aG-_', 'é']) {
    assert.throws(
      () => qbase64Decode(bad),
      (e: unknown) => e instanceof QgaError && e.message === 'Base64 data contains invalid characters',
      JSON.stringify(bad),
    );
  }
});

test.run();
