import * as assert from 'uvu/assert';
import { checkQgaArgs, QgaError, type QSchema } from '../../../../lib/protocols/qemu-ga/schema';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga argument schema');

const schema: QSchema = {
  handle: { type: 'int', doc: '' },
  mode: { type: 'str', optional: true, doc: '' },
  whence: { type: { alternate: ['int', { enum: ['set', 'cur', 'end'] }] }, optional: true, doc: '' },
  vcpus: {
    type: { array: { object: { 'logical-id': { type: 'int', doc: '' }, online: { type: 'bool', doc: '' } } } },
    optional: true,
    doc: '',
  },
  data: { type: 'base64', optional: true, doc: '' },
};

function message(raw: Record<string, unknown>): string {
  try {
    checkQgaArgs(schema, raw);
  } catch (e) {
    assert.instance(e, QgaError);
    return (e as Error).message;
  }
  return 'ok';
}

// Each message is what qemu-ga 7.2.22 answered for the same mistake.
test("qemu's messages for missing, unexpected and mistyped arguments", () => {
  assert.is(message({}), "Parameter 'handle' is missing");
  assert.is(message({ handle: 1, x: 1 }), "Parameter 'x' is unexpected");
  assert.is(message(JSON.parse('{"handle":1,"constructor":1}')), "Parameter 'constructor' is unexpected");
  assert.is(message(JSON.parse('{"handle":1,"__proto__":1}')), "Parameter '__proto__' is unexpected");
  assert.is(message({ handle: 'x' }), "Invalid parameter type for 'handle', expected: integer");
  assert.is(message({ handle: 1.5 }), "Invalid parameter type for 'handle', expected: integer");
  assert.is(message({ handle: 2 ** 64 }), "Invalid parameter type for 'handle', expected: integer");
  assert.is(message({ handle: 1, mode: null }), "Invalid parameter type for 'mode', expected: string");
  assert.is(message({ handle: 1, whence: 'xx' }), "Parameter 'whence' does not accept value 'xx'");
  assert.is(message({ handle: 1, whence: 1.5 }), "Invalid parameter type for 'whence', expected: integer");
  assert.is(message({ handle: 1, vcpus: [{}] }), "Parameter 'vcpus[0].logical-id' is missing");
  assert.is(
    message({ handle: 1, vcpus: [{ 'logical-id': 'a' }] }),
    "Invalid parameter type for 'vcpus[0].logical-id', expected: integer",
  );
  assert.is(message({ handle: 1, vcpus: 'x' }), "Invalid parameter type for 'vcpus', expected: array");
});

test('good arguments come back checked; base64 decoded, null when invalid', () => {
  const a = checkQgaArgs(schema, {
    handle: 3,
    whence: 'cur',
    vcpus: [{ 'logical-id': 0, online: true }],
    data: 'aGk=',
  });
  assert.equal(a.handle, 3);
  assert.equal(a.whence, 'cur');
  assert.equal((a.data as Buffer).toString(), 'hi');
  assert.is(checkQgaArgs(schema, { handle: 3, data: '!!' }).data, null);
  assert.not.ok('mode' in a);
});

test.run();
