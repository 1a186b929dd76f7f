// parseExactJson: JSON.parse, except that integers past 2^53 come back exact, as bigints.
import * as assert from 'uvu/assert';
import { parseExactJson } from '../../../lib/client/exact-json';
import { suite } from '../../helpers/harness';

const test = suite('exact json');

test('integers past 2^53 become bigints; everything else is what JSON.parse gives', () => {
  const text =
    '{"Ino":9223372036854775810,"neg":-9007199254740993,"max":9007199254740991,"min":-9007199254740991,"f":1.5e300,"big float":12345678901234567.5,"e":1234567890123456789e2,"a":[18446744073709551615,0,-0,1e5]}';
  assert.equal(parseExactJson(text), {
    Ino: 9223372036854775810n,
    neg: -9007199254740993n,
    max: 9007199254740991,
    min: -9007199254740991,
    f: 1.5e300,
    // eslint-disable-next-line no-loss-of-precision -- JSON text with more digits than a double holds, on purpose
    'big float': 12345678901234567.5,
    // eslint-disable-next-line no-loss-of-precision -- likewise
    e: 1234567890123456789e2,
    a: [18446744073709551615n, 0, -0, 1e5],
  });
});

test('digits inside strings are left alone, escapes included', () => {
  const text = JSON.stringify({
    name: 'file 12345678901234567890',
    q: 'say \\"99999999999999999999\\"',
    tag: 'ab-1',
  }).replace('}', ',"n":99999999999999999999}');
  assert.equal(parseExactJson(text), {
    name: 'file 12345678901234567890',
    q: 'say \\"99999999999999999999\\"',
    tag: 'ab-1',
    n: 99999999999999999999n,
  });
});

test('no long integers: exactly JSON.parse; bad JSON still throws', () => {
  const text = '{"return":{"name":"x","stat":{"Ino":42,"Size":0}},"tag":"t"}';
  assert.equal(parseExactJson(text), JSON.parse(text));
  assert.throws(() => parseExactJson('{"a":12345678901234567890'));
  assert.throws(() => parseExactJson('{nope'));
});

test.run();
