// lib/wire/pending.ts: a large request's bytes copied out of the chunks they came in, so that
// the chunks are garbage at once; short ones held as slices.
import * as assert from 'uvu/assert';
import { chunkPool } from '../../../lib/buffers';
import { JsonStreamFramer, type Framed } from '../../../lib/protocols/qemu-ga/framing';
import { LineFramer } from '../../../lib/wire/framing';
import { COPY_FROM, PendingBytes } from '../../../lib/wire/pending';
import { suite } from '../../helpers/harness';

const test = suite('wire: pending bytes');
const KiB = 1024;

/** `bytes` of text cut into chunks of `size`, each a buffer of its own (as the transports hand them over). */
function chunks(text: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < text.length; i += size) out.push(Buffer.from(text.subarray(i, i + size)));
  return out;
}

test('short: held as slices, joined by take(); large: copied as they come, the chunks free at once', () => {
  const small = new PendingBytes();
  const a = Buffer.from('{"execute":');
  small.add(a);
  small.add(Buffer.alloc(0));
  assert.is(small.size, a.length);
  assert.is(small.take(Buffer.from('"ping"}')).toString(), '{"execute":"ping"}');
  assert.is(small.size, 0);

  const text = Buffer.from('x'.repeat(3 * COPY_FROM + 123));
  const pending = new PendingBytes();
  const parts = chunks(text, 60 * KiB);
  const last = parts.pop()!;
  for (const c of parts) {
    pending.add(c);
    if (pending.size >= COPY_FROM) c.fill(0x21); // the caller's chunk is free once added
  }
  assert.is(pending.size, text.length - last.length);
  // The first chunk, held while the request was short, was copied when it grew.
  parts[0].fill(0x21);
  const whole = pending.take(last);
  assert.ok(whole.equals(text), 'the bytes, in order');
  assert.is(pending.size, 0);
  const kept = chunkPool.kept;
  // The next large one reuses the buffer the last one gave back, sized for it at once.
  const again = new PendingBytes();
  for (const c of chunks(text, 60 * KiB)) again.add(c);
  assert.ok(chunkPool.kept <= kept);
  again.clear();
  assert.is(again.size, 0);
});

test('both framers: a large request in many chunks arrives whole though its chunks are reused after each push', () => {
  const body = 'QUJD'.repeat(100 * KiB);
  const line = Buffer.from(`{"execute":"file-write","arguments":{"bufb64":"${body}"},"tag":"t"}\n`);
  const lines: string[] = [];
  const lf = new LineFramer(
    (l) => lines.push(l.toString()),
    () => lines.push('overflow'),
  );
  const messages: Framed[] = [];
  const jf = new JsonStreamFramer((m) => messages.push(m));
  const scratch = Buffer.alloc(64 * KiB);
  for (const framer of [lf, jf]) {
    for (let i = 0; i < line.length; i += scratch.length) {
      const n = line.copy(scratch, 0, i, i + scratch.length);
      framer.push(scratch.subarray(0, n));
      scratch.fill(0x20); // a reused read buffer: the framer must not hold it
    }
  }
  assert.equal(lines, [line.toString().trimEnd()]);
  assert.is(messages.length, 1);
  assert.is((messages[0] as { bytes: Buffer }).bytes.toString(), line.toString().trimEnd());
});

test.run();
