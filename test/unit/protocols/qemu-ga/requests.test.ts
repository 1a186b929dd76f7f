// Request JSON qemu-ga 7.2 reads its own way, through the framer and the dispatcher: each answer
// is what qemu-ga 7.2.22 sent for the same bytes, whole or cut into chunks at any byte.
import * as assert from 'uvu/assert';
import { JsonStreamFramer } from '../../../../lib/protocols/qemu-ga/framing';
import { QgaDispatcher } from '../../../../lib/protocols/qemu-ga/dispatcher';
import { coreCommands } from '../../../../lib/protocols/qemu-ga/commands/core';
import { defineQgaCommand, type QgaCommand } from '../../../../lib/protocols/qemu-ga/schema';
import { silentLogger } from '../../../../lib/log';
import { runDecoder } from '../../../../lib/wire/decode-native';
import type { Call, Context } from '../../../../lib/context';
import { suite } from '../../../helpers/harness';

const test = suite('qemu-ga requests read as qemu reads them');

/** Stands in for a command with qemu-ga's arguments, answering them back. */
const echo = defineQgaCommand({
  name: 'guest-file-write',
  doc: '',
  args: {
    handle: { type: 'int', doc: '' },
    'buf-b64': { type: 'base64', doc: '' },
    count: { type: 'int', optional: true, doc: '' },
  },
  handler: (a) => ({ count: a['buf-b64']?.length ?? 0, eof: false }),
});

/** Each answer to `bytes`, sent whole and then in two chunks split at every byte. */
async function answers(bytes: string | Buffer): Promise<string[]> {
  const ctx = { state: { frozen: false }, log: silentLogger } as unknown as Context;
  const d = new QgaDispatcher(ctx, [...coreCommands, echo, nested] as QgaCommand[]);
  const call: Call = { session: 1, signal: new AbortController().signal };
  const text = Buffer.from(bytes);
  const run = async (chunks: Buffer[]) => {
    const pending: Promise<unknown>[] = [];
    const f = new JsonStreamFramer((m) => pending.push(d.dispatch(m, call)), undefined, runDecoder);
    for (const c of chunks) f.push(c);
    return (await Promise.all(pending)).map((a) => Buffer.from(a as string | Buffer).toString('latin1'));
  };
  const whole = await run([text]);
  const splits = text.length < 4096 ? text.length : 64;
  for (let k = 1; k < splits; k++) {
    const at = Math.floor((k * text.length) / splits);
    assert.equal(await run([text.subarray(0, at), text.subarray(at)]), whole, `split at ${at}`);
  }
  return whole;
}

const DUPLICATE = '{"error": {"class": "GenericError", "desc": "JSON parse error, duplicate key"}}\n';

test('a duplicate key anywhere is a parse error, with no id', async () => {
  for (const req of [
    '{"execute":"guest-ping","execute":"guest-ping"}',
    '{"execute":"guest-ping","id":7,"execute":"guest-ping"}',
    '{"id":7,"execute":"guest-ping","id":8}',
    '{"execute":"guest-sync","arguments":{"id":1,"id":2},"id":9}',
    '{"id":3,"execute":"guest-ping","arguments":{},"arguments":{}}',
    '{"execute":"guest-ping","id":{"a":1,"a":2}}',
    '{"execute":"guest-ping","\\u0061":1,"a":2}',
    '{"execute":"guest-ping","__proto__":1,"__proto__":2}',
    '[{"a":1,"a":2}]',
  ]) {
    assert.equal(await answers(req), [DUPLICATE], req);
  }
  // Framing goes on: the requests around it are served.
  assert.equal(
    await answers(
      '{"execute":"guest-ping","id":1}{"execute":"guest-ping","execute":"guest-ping"}{"execute":"guest-ping","id":2}',
    ),
    ['{"return": {}, "id": 1}\n', DUPLICATE, '{"return": {}, "id": 2}\n'],
  );
  // A long base64 string, decoded as it arrived, is one token like any other.
  const b64 = Buffer.alloc(96 * 1024, 7).toString('base64');
  const write = (more: string) => `{"execute":"guest-file-write","arguments":{"handle":1,"buf-b64":"${b64}"${more}}}`;
  assert.equal(await answers(write('')), ['{"return": {"count": 98304, "eof": false}}\n']);
  assert.equal(await answers(write(`,"buf-b64":"${b64}"`)), [DUPLICATE]);
  assert.equal(await answers(write(',"handle":1')), [DUPLICATE]);
});

/** Stands in for guest-set-vcpus and guest-set-memory-blocks: ints and uint64s inside arrays. */
const nested = defineQgaCommand({
  name: 'nested',
  doc: '',
  args: {
    vcpus: {
      type: { array: { object: { 'logical-id': { type: 'int', doc: '' }, online: { type: 'bool', doc: '' } } } },
      optional: true,
      doc: '',
    },
    'mem-blks': { type: { array: { object: { 'phys-index': { type: 'uint64', doc: '' } } } }, optional: true, doc: '' },
    whence: { type: { alternate: ['int', { enum: ['set', 'cur', 'end'] }] }, optional: true, doc: '' },
    ratio: { type: 'number', optional: true, doc: '' },
  },
  handler: () => ({}),
});

const notInteger = (name: string) =>
  `{"error": {"class": "GenericError", "desc": "Invalid parameter type for '${name}', expected: integer"}}\n`;

test('a number with a fraction or an exponent is no integer, though its value is one', async () => {
  const cases: [string, string][] = [
    ['{"execute":"guest-file-write","arguments":{"handle":5.0,"buf-b64":""}}', notInteger('handle')],
    ['{"execute":"guest-file-write","arguments":{"handle":1e3,"buf-b64":""}}', notInteger('handle')],
    ['{"execute":"guest-file-write","arguments":{"handle":1,"buf-b64":"","count":10e-1}}', notInteger('count')],
    ['{"execute":"guest-file-write","arguments":{"buf-b64":"1.5e3","handle":-2E0}}', notInteger('handle')],
    ['{"execute":"guest-sync","arguments":{"id":5.0}}', notInteger('id')],
    ['{"execute":"nested","arguments":{"whence":0.0}}', notInteger('whence')],
    [
      '{"execute":"nested","arguments":{"vcpus":[{"logical-id":1,"online":true},{"logical-id":1.0,"online":true}]}}',
      notInteger('vcpus[1].logical-id'),
    ],
    [
      '{"execute":"nested","arguments":{"mem-blks":[{"phys-index":1e0}]}}',
      `{"error": {"class": "GenericError", "desc": "Parameter 'mem-blks[0].phys-index' expects uint64"}}\n`,
    ],
    // Where no int is expected, or no argument is, a fraction is as good as any number.
    ['{"execute":"nested","arguments":{"ratio":2.5e0,"whence":"cur"}}', '{"return": {}}\n'],
    ['{"execute":"guest-sync","arguments":{"id":5},"id":5.0}', '{"return": 5, "id": 5}\n'],
    ['{"execute":"guest-sync","arguments":{"id":7,"\\u0069d":7}}', DUPLICATE],
    ['{"execute":"guest-file-write","arguments":{"handle":1,"buf-b64":"","count":true}}', notInteger('count')],
  ];
  for (const [req, answer] of cases) assert.equal(await answers(req), [answer], req);
});

test('an id past any integer is echoed as qemu writes its double: inf past the largest', async () => {
  const cases: [string, string][] = [
    ['123456789012345678901234567890', '1.2345678901234568e+29'],
    ['-123456789012345678901234567890', '-1.2345678901234568e+29'],
    ['1e400', 'inf'],
    ['-1e400', '-inf'],
    ['[1e400,{"a":-1E999}]', '[inf, {"a": -inf}]'],
    ['1e-400', '0'],
    ['-0', '0'],
    ['-0.0', '-0'],
    ['5.0', '5'],
    ['1e17', '1e+17'],
  ];
  for (const [id, echo] of cases) {
    assert.equal(await answers(`{"execute":"guest-ping","id":${id}}`), [`{"return": {}, "id": ${echo}}\n`], id);
  }
});

test.run();
