import * as assert from 'uvu/assert';
import {
  fractionArgs,
  integerAt,
  qdictOrder,
  qemuBytes,
  qemuString,
  qmpJson,
} from '../../../../lib/protocols/qemu-ga/json';
import type { QSchema } from '../../../../lib/protocols/qemu-ga/schema';
import { RawJson } from '../../../../lib/wire/answer';
import { bytesSearched, suite } from '../../../helpers/harness';

const test = suite('qemu-ga JSON writer');

// The orders qemu-ga 7.2.22 was seen to write (its QDict hash buckets).
test("members in qemu's QDict order", () => {
  assert.equal(qdictOrder(['return', 'id']), ['return', 'id']);
  assert.equal(qdictOrder(['error', 'id']), ['id', 'error']);
  assert.equal(qdictOrder(['name', 'enabled', 'success-response']), ['enabled', 'name', 'success-response']);
  assert.equal(qdictOrder(['logical-id', 'online', 'can-offline']), ['online', 'can-offline', 'logical-id']);
  assert.equal(
    qdictOrder(['id', 'name', 'pretty-name', 'version', 'version-id', 'kernel-release', 'kernel-version', 'machine']),
    ['name', 'kernel-release', 'version', 'pretty-name', 'version-id', 'kernel-version', 'machine', 'id'],
  );
});

test('separators, escapes and numbers as qemu writes them', () => {
  assert.is(qmpJson({ zone: 'UTC', offset: 0 }), '{"zone": "UTC", "offset": 0}');
  assert.is(qmpJson([]), '[]');
  assert.is(qmpJson({}), '{}');
  assert.is(qmpJson('a"\\\n\t\u0001/'), '"a\\"\\\\\\n\\t\\u0001/"');
  assert.is(qmpJson('é😀\u007f'), '"\\u00E9\\uD83D\\uDE00\\u007F"');
  assert.is(qmpJson([1, -2, 0.1, 2.5, 1e21]), '[1, -2, 0.10000000000000001, 2.5, 1e+21]');
  assert.is(qmpJson({ a: undefined, b: null }), '{"b": null}');
  assert.is(qmpJson(new RawJson('"abc"')), '"abc"');
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

test("integerAt: an integer's exact text at a member path, the last member of a name counting", () => {
  const at = (json: string, path: string[]) => integerAt(Buffer.from(json), path);
  assert.is(at('{"id":9223372036854775807}', ['id']), 9223372036854775807n);
  assert.is(at(' { "x" : [1,{"id":2}], "id" : -12345678901234567 } ', ['id']), -12345678901234567n);
  assert.is(at('{"id":1,"id":12345678901234567}', ['id']), 12345678901234567n);
  assert.is(at('{"\\u0069d":12345678901234567}', ['id']), 12345678901234567n);
  assert.is(
    at('{"s":"}{\\"id\\":5","arguments":{"id":18446744073709551615}}', ['arguments', 'id']),
    18446744073709551615n,
  );
  // A later "arguments" replaces the earlier one whole, as JSON.parse does.
  assert.is(at('{"arguments":{"id":12345678901234567},"arguments":{"x":1}}', ['arguments', 'id']), undefined);
  assert.is(at('{"arguments":{"id":1},"id":12345678901234567}', ['arguments', 'id']), 1n);
  for (const text of ['1e300', '1.5', '"7"', '[1]', 'null']) assert.is(at(`{"id":${text}}`, ['id']), undefined, text);
  assert.is(at('{"x":1}', ['id']), undefined);
});

test('fractionArgs: the declared arguments written as 5.0 or 1e3, by qemu name; unknown keys build no names', () => {
  const schema: QSchema = {
    count: { type: 'int', doc: '' },
    vcpus: { type: { array: { object: { 'logical-id': { type: 'int', doc: '' } } } }, doc: '' },
  };
  const names = (text: string) => [...fractionArgs(Buffer.from(text), schema)].sort();
  assert.equal(names('{"execute":"x","arguments":{"count":1.0},"id":2.5}'), ['count']);
  assert.equal(names('{"arguments":{"vcpus":[{"logical-id":1},{"logical-id":1e0}]}}'), ['vcpus[1].logical-id']);
  // A hostile request's long unknown keys, each over fractions: nothing named (they are refused anyway).
  const key = '~'.repeat(1000);
  assert.equal(names(`{"arguments":{"${key}":{"${key}":[1.5,2.5]},"count":3}}`), []);
  assert.equal(names('{"arguments":{"__proto__":1.5,"toString":2.5}}'), []);
});

test('fractionArgs passes a string of many escapes in time linear in its length', () => {
  const text = Buffer.from(`{"arguments":{"count":1.5,"s":"${'\\n'.repeat(20_000)}"}}`);
  let got: Set<string> | undefined;
  const searched = bytesSearched(() => (got = fractionArgs(text, { count: { type: 'int', doc: '' } })));
  assert.equal([...got!], ['count']);
  assert.ok(searched < 4 * text.length, `searched ${searched} bytes of ${text.length}`);
});

test.run();
