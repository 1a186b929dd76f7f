import * as assert from 'uvu/assert';
import { Dispatcher } from '../../../../lib/protocols/phoenix/dispatcher';
import { HandleTable } from '../../../../lib/files/handle-table';
import { Freezer } from '../../../../lib/freeze/freezer';
import { Registry, defineCommand, checkArgs, type Command } from '../../../../lib/protocols/phoenix/registry';
import { defaultConfig, type Call, type Context } from '../../../../lib/context';
import { LARGE_ANSWERS_HELD, LargeAnswers } from '../../../../lib/large-answers';
import { HoldingLogger, silentLogger } from '../../../../lib/log';
import { coreCommands } from '../../../../lib/protocols/phoenix/commands/core';
import { AgentError, SystemError } from '../../../../lib/errors';
import type { AnswerLine } from '../../../../lib/wire/answer';
import { suite } from '../../../helpers/harness';

const test = suite('dispatcher');

const echo = defineCommand({
  name: 'echo-args',
  aliases: ['linux-echo-args'],
  doc: 'test command',
  args: {
    path: { type: 'string', required: true, doc: '' },
    n: { type: 'int', default: 0, min: 0, doc: '' },
    mode: { type: 'string', default: 'r', oneOf: ['r', 'w'], doc: '' },
    force: { type: 'bool', default: false, doc: '' },
    list: { type: 'string[]', doc: '' },
  },
  handler: (args) => args,
});
const failing = defineCommand({
  name: 'fail-enoent',
  doc: 'test command',
  args: {},
  handler: () => {
    throw new SystemError(2, 'open', '/nonexistent');
  },
});
const slow = defineCommand({
  name: 'slow',
  doc: 'test command',
  args: {},
  handler: () => new Promise((r) => setTimeout(() => r('late'), 50)),
});

function makeCtx(extra: Command[] = []): Context {
  const large = new LargeAnswers(LARGE_ANSWERS_HELD);
  const registry = new Registry([...coreCommands, echo, failing, slow, ...extra]);
  const ctx = {
    config: defaultConfig,
    state: { frozen: false },
    registry,
    log: new HoldingLogger(silentLogger),
    version: '9.9.9',
    shutdown: () => {},
    onExit: () => {},
    onHostGone: () => {},
    endpointOf: () => 'unix:test',
    servesBothProtocols: () => true,
    outputRoom: () => undefined,
    hasOutputRoom: () => true,
    holdOutput: () => {},
    reserveOutput: () => () => {},
    runBulk: (_call: unknown, _name: string, produce: () => Promise<AnswerLine>) => produce(),
    largeAnswer: (call: Call, bytes: number) => large.take(bytes, call.signal),
    largeAnswerNow: (call: Call, bytes: number) => large.takeNow(bytes, call.signal),
  };
  return {
    ...ctx,
    handles: new HandleTable(ctx as never),
    freezer: new Freezer(),
    sysinfoFailures: new Map(),
    qemuGa: undefined as never,
  };
}

/** A call of a session that never ends. */
const call = { session: 1, signal: new AbortController().signal };

async function run(ctx: Context, req: unknown) {
  const d = new Dispatcher(ctx, ctx.registry as Registry);
  const answer = await d.dispatch(typeof req === 'string' ? req : JSON.stringify(req), call);
  const line = answer.toString();
  assert.ok(line.endsWith('\n'));
  const a = JSON.parse(line);
  return { ...a, message: a.error ? Buffer.from(a.error.bufb64, 'base64').toString() : undefined };
}

test('ping and get-commands (aliases included)', async () => {
  const ctx = makeCtx();
  assert.equal(await run(ctx, { execute: 'ping', tag: 'a' }), { return: '9.9.9', tag: 'a', message: undefined });
  const names = (await run(ctx, { execute: 'get-commands' })).return;
  assert.equal(names, [
    'ping',
    'get-commands',
    'agent-info',
    'agent-shutdown',
    'echo-args',
    'linux-echo-args',
    'fail-enoent',
    'slow',
  ]);
});

test('agent-info: what a new host may use', async () => {
  const ctx = makeCtx();
  assert.equal((await run(ctx, { execute: 'agent-info' })).return, {
    name: 'ember-ga',
    version: '9.9.9',
    max_line_bytes: 16777216,
    max_read_size: 4194304,
    atomic_write: true,
    read_md5: true,
  });
  const legacy = { ...ctx, config: { ...ctx.config, largeReads: false } };
  assert.is((await run(legacy, { execute: 'agent-info' })).return.max_read_size, 4096);
});

test('unknown command and tag echo', async () => {
  const a = await run(makeCtx(), { execute: 'bogus', tag: 'z' });
  assert.is(a.message, 'Unknown command: bogus');
  assert.is(a.error.code, -1);
  assert.is(a.tag, 'z');
});

test('parse errors answer with tag ""', async () => {
  const a = await run(makeCtx(), '{"execute":"ping","tag":"lost"');
  assert.match(a.message, /^Invalid JSON/);
  assert.is(a.tag, '');
});

test('arguments: defaults, alias, wrong types named', async () => {
  const ctx = makeCtx();
  const ok = await run(ctx, { execute: 'linux-echo-args', arguments: { path: '/x' } });
  assert.equal(ok.return, { path: '/x', n: 0, mode: 'r', force: false });
  const cases: [Record<string, unknown>, string][] = [
    [{}, 'Missing argument "path"'],
    [{ path: 5 }, 'Invalid argument "path": expected a string, got an integer'],
    [{ path: '/x', n: 'x' }, 'Invalid argument "n": expected an integer, got a string'],
    [{ path: '/x', n: 1.5 }, 'Invalid argument "n": expected an integer, got 1.5'],
    [{ path: '/x', n: -1 }, 'Invalid argument "n": expected an integer from 0 to 9007199254740991, got -1'],
    [{ path: '/x', mode: 'a' }, 'Invalid argument "mode": expected one of "r", "w", got "a"'],
    [{ path: '/x', force: 'yes' }, 'Invalid argument "force": expected true or false, got a string'],
    [{ path: '/x', list: ['a', 1] }, 'Invalid argument "list": expected an array of strings, got an array'],
    [{ path: '/etc/passwd\u0000x' }, 'Invalid argument "path": contains a NUL character'],
    [{ path: '/x', list: ['/\u0000x'] }, 'Invalid argument "list": contains a NUL character'],
  ];
  for (const [args, msg] of cases) {
    const a = await run(ctx, { execute: 'echo-args', arguments: args, tag: 'k' });
    assert.is(a.message, msg);
    assert.is(a.error.code, -1);
    assert.is(a.tag, 'k');
  }
});

test('numbers past 2^53 or a declared range: the message gives the range and the value', async () => {
  const numbers = defineCommand({
    name: 'numbers',
    doc: 'test command',
    args: {
      handle_id: { type: 'int', doc: '' },
      scope: { type: 'int', min: 0, max: 255, doc: '' },
      timeout: { type: 'number', min: 0, max: 100, doc: '' },
      low: { type: 'number', min: 0, doc: '' },
      any: { type: 'number', doc: '' },
    },
    handler: () => true,
  });
  const ctx = makeCtx([numbers]);
  const safe = 'from -9007199254740991 to 9007199254740991';
  const cases: [string, string][] = [
    ['"handle_id":9007199254740992', `Invalid argument "handle_id": expected an integer ${safe}, got 9007199254740992`],
    [
      '"handle_id":-9007199254740993',
      `Invalid argument "handle_id": expected an integer ${safe}, got -9007199254740992`,
    ],
    ['"handle_id":1e308', `Invalid argument "handle_id": expected an integer ${safe}, got 1e+308`],
    [
      '"handle_id":1e400',
      `Invalid argument "handle_id": expected an integer ${safe}, got a number too large to represent`,
    ],
    ['"handle_id":0.5', 'Invalid argument "handle_id": expected an integer, got 0.5'],
    ['"scope":256', 'Invalid argument "scope": expected an integer from 0 to 255, got 256'],
    ['"scope":-1.5', 'Invalid argument "scope": expected an integer from 0 to 255, got -1.5'],
    ['"timeout":-1', 'Invalid argument "timeout": expected a number from 0 to 100, got -1'],
    ['"low":-0.5', 'Invalid argument "low": expected a number of at least 0, got -0.5'],
    ['"any":-1e999', 'Invalid argument "any": expected a number, got a number too large to represent'],
  ];
  for (const [arg, msg] of cases) {
    const a = await run(ctx, `{"execute":"numbers","arguments":{${arg}},"tag":"n"}`);
    assert.is(a.message, msg, arg);
  }
  const ok = await run(
    ctx,
    '{"execute":"numbers","arguments":{"handle_id":9007199254740991,"scope":255,"timeout":99.5,"any":-1e300}}',
  );
  assert.is(ok.return, true);
});

test('a lone surrogate a host sent comes back as U+FFFD: in the tag and in a message quoting it', async () => {
  const ctx = makeCtx();
  const d = new Dispatcher(ctx, ctx.registry as Registry);
  const line = String(await d.dispatch('{"execute":"ping","tag":"\\udc00"}', call));
  assert.is(line, '{"return":"9.9.9","tag":"\ufffd"}\n');
  const a = await run(ctx, '{"execute":"echo-args","arguments":{"path":"/x","mode":"\\ud800r"},"tag":"a\\udfff"}');
  assert.is(a.message, 'Invalid argument "mode": expected one of "r", "w", got "\ufffdr"');
  assert.is(a.tag, 'a\ufffd');
});

test('system errors carry errno and a Go-style sentence', async () => {
  const a = await run(makeCtx(), { execute: 'fail-enoent' });
  assert.is(a.message, 'open /nonexistent: no such file or directory');
  assert.is(a.error.code, 2);
});

test('errno texts are the ones Go prints, not libuv texts', async () => {
  const { errnoMessage } = await import('../../../../lib/errors');
  assert.is(errnoMessage(21), 'is a directory');
  assert.is(errnoMessage(26), 'text file busy');
  assert.is(errnoMessage(17), 'file exists');
  assert.is(errnoMessage(2), 'no such file or directory');
  assert.is(errnoMessage(5), 'input/output error');
  assert.is(errnoMessage(95), 'operation not supported');
  assert.is(errnoMessage(4095), 'errno 4095');
});

test('while frozen only ping, get-commands and commands marked allowWhileFrozen run', async () => {
  const ctx = makeCtx();
  ctx.state.frozen = true;
  assert.is((await run(ctx, { execute: 'ping' })).return, '9.9.9');
  const a = await run(ctx, { execute: 'linux-echo-args', arguments: { path: '/' } });
  assert.is(a.message, 'All filesystems are frozen. Cannot execute: linux-echo-args');
  assert.is(
    (await run(ctx, { execute: 'agent-shutdown' })).message,
    'All filesystems are frozen. Cannot execute: agent-shutdown',
  );
});

test('a slow handler does not hold up a fast one', async () => {
  const ctx = makeCtx();
  const d = new Dispatcher(ctx, ctx.registry as Registry);
  const order: string[] = [];
  await Promise.all([
    d.dispatch('{"execute":"slow","tag":"s"}', call).then(() => order.push('slow')),
    d.dispatch('{"execute":"ping","tag":"p"}', call).then(() => order.push('ping')),
  ]);
  assert.equal(order, ['ping', 'slow']);
});

test('decoded base64 arguments are released once the answer settles, never before; also on every error path', async () => {
  let finish: (v: unknown) => void = () => {};
  const seen: (Buffer | null)[] = [];
  const hold = defineCommand({
    name: 'hold',
    doc: 'test command',
    args: { data: { type: 'base64', default: '', doc: '' }, fail: { type: 'bool', default: false, doc: '' } },
    handler: (args) => {
      seen.push(args.data);
      if (args.fail) throw new AgentError('failed');
      return new Promise((r) => (finish = r));
    },
  });
  const ctx = makeCtx([hold]);
  let given = 0;
  let released = 0;
  const d = new Dispatcher(ctx, ctx.registry as Registry, (line, start, end) => {
    given++;
    let done = false;
    return {
      bytes: Buffer.from(line.toString('latin1', start, end), 'base64'),
      release: () => {
        if (!done) released++;
        done = true;
      },
    };
  });
  const data = Buffer.alloc(12 * 1024, 1).toString('base64');
  const line = (o: object) => Buffer.from(JSON.stringify(o));
  const answer = d.dispatch(line({ execute: 'hold', arguments: { data }, tag: 'h' }), call);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(seen[0], Buffer.alloc(12 * 1024, 1));
  assert.equal([given, released], [1, 0], 'still held while the handler works');
  finish(true);
  assert.match((await answer).toString(), /"return":true/);
  assert.equal([given, released], [1, 1]);
  // Errors before and in the handler: each decoded argument is released with the error answer.
  const errors = [
    { execute: 'nope', arguments: { data } },
    { execute: 'hold', arguments: { data, fail: 'yes' } },
    { execute: 'hold', arguments: { data, fail: true } },
    { execute: 1, arguments: { data } },
  ];
  for (const req of errors) assert.match((await d.dispatch(line(req), call)).toString(), /"error"/);
  assert.equal([given, released], [5, 5]);
  ctx.state.frozen = true;
  const frozen = JSON.parse((await d.dispatch(line({ execute: 'hold', arguments: { data } }), call)).toString());
  assert.match(Buffer.from(frozen.error.bufb64, 'base64').toString(), /frozen/);
  assert.equal([given, released], [6, 6]);
});

test('dispatchNow: a value answered at once, byte for byte what dispatch gives; a promise stays one; errors alike', async () => {
  const ctx = makeCtx();
  const d = new Dispatcher(ctx, ctx.registry as Registry);
  const lines = [
    '{"execute":"ping","tag":"p"}',
    JSON.stringify({ execute: 'echo-args', arguments: { path: '/x', n: 3 }, tag: 't' }),
    JSON.stringify({ execute: 'echo-args', arguments: { n: 3 }, tag: 'missing' }),
    '{"execute":"fail-enoent","tag":"f"}',
    '{"execute":"nope"}',
    'not json',
  ];
  for (const line of lines) {
    const now = d.dispatchNow(line, call);
    assert.ok(!(now instanceof Promise), `${line}: answered at once`);
    assert.is(now.toString(), (await d.dispatch(line, call)).toString(), line);
  }
  const slowNow = d.dispatchNow('{"execute":"slow","tag":"s"}', call);
  assert.instance(slowNow, Promise);
  assert.is((await slowNow).toString(), '{"return":"late","tag":"s"}\n');
});

test('checkArgs ignores unknown arguments and treats null as absent', () => {
  assert.equal(checkArgs(echo.args, { path: '/a', extra: 1, n: null }), { path: '/a', n: 0, mode: 'r', force: false });
  assert.instance(
    (() => {
      try {
        checkArgs(echo.args, {});
      } catch (e) {
        return e;
      }
    })(),
    AgentError,
  );
});

test.run();
