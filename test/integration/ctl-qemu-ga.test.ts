// ember-ga-ctl over qemu-ga's protocol: against the real qemu-ga 7.2 (ping, info, commands,
// exec of /bin/echo, the qmp passthrough, copies in a temporary directory) and against a fake
// agent for what must not run on this machine (freeze) or that /bin/echo cannot show (an exit
// status, a signal).
import * as assert from 'uvu/assert';
import * as fs from 'fs';
import * as path from 'path';
import { realQemuGa, startEmberQemuGa, startRealQemuGa, type RealQemuGa } from '../helpers/qemu-ga';
import { startAgent, tmpDir } from '../helpers/agent';
import { GuestAgent, GuestAgentError } from '../../lib/client';
import { ctl, md5Of, randomFile } from '../helpers/client';
import { startFakeQga, type FakeOptions, type FakeQga } from '../helpers/fake-qga';
import { suite } from '../helpers/harness';

const test = suite<{ real?: RealQemuGa; dir: string }>('ctl-qemu-ga', { dir: '' });
const needs = [realQemuGa];

test.before(async (ctx) => {
  ctx.dir = tmpDir();
  if (realQemuGa() === undefined) ctx.real = await startRealQemuGa();
});
test.after(async (ctx) => {
  await ctx.real?.stop();
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** ember-ga-ctl against the real qemu-ga, told the protocol. */
const q = (ctx: { real?: RealQemuGa }, args: string[], opts?: Parameters<typeof ctl>[1]) =>
  ctl(['-s', ctx.real!.socket, '--protocol', 'qemu-ga', ...args], opts);

async function withFake(
  opts: FakeOptions,
  fn: (run: (args: string[]) => ReturnType<typeof ctl>, fake: FakeQga) => Promise<void>,
) {
  const dir = tmpDir();
  const fake = await startFakeQga(path.join(dir, 'org.qemu.guest_agent.0'), opts);
  try {
    await fn((args) => ctl(['-s', fake.path, ...args]), fake);
  } finally {
    await fake.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test(
  'ping, info, commands; the protocol from the socket name org.qemu.guest_agent.0',
  async (ctx) => {
    const ping = await q(ctx, ['ping']);
    assert.equal([ping.status, ping.stderr], [0, '']);
    assert.match(ping.stdout, /^7\.2\.\d+\n$/);
    // libvirt's channel socket is named after the port: no --protocol needed
    const named = path.join(ctx.dir, 'org.qemu.guest_agent.0');
    fs.symlinkSync(ctx.real!.socket, named);
    assert.equal(await ctl(['-s', named, 'ping']), ping);
    const info = await q(ctx, ['info']);
    assert.is(info.status, 0, info.stderr);
    assert.match(info.stdout, /^agent: +qemu-ga 7\.2\.\d+ \(4 KiB chunks, one request at a time\)\n/);
    assert.match(info.stdout, /\nhost: +\S+\n/);
    assert.match(info.stdout, /\nos: +.+, Linux \S+ \S+\n/);
    assert.match(info.stdout, /\ntime: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, timezone /);
    assert.match(info.stdout, /\ncommands: \d+ enabled of \d+\n/);
    const json = JSON.parse((await q(ctx, ['--json', 'info'])).stdout);
    assert.equal(
      [json.agent.protocol, json.agent.emberGa, typeof json.system['host-name']],
      ['qemu-ga', false, 'string'],
    );
    const commands = await q(ctx, ['commands']);
    assert.ok(commands.stdout.split('\n').includes('guest-exec'));
    assert.is((await q(ctx, ['raw', '{"execute":"guest-sync","arguments":{"id":42}}'])).stdout, '42\n');
  },
  { needs },
);

test(
  "qmp: the answer as the agent gave it, the request's own id echoed; an error answer exits 1",
  async (ctx) => {
    const ok = await q(ctx, ['qmp', '{"execute":"guest-sync","arguments":{"id":5},"id":"mine"}']);
    assert.equal([ok.status, ok.stdout], [0, '{"return":5,"id":"mine"}\n']);
    const bad = await q(ctx, ['qmp', '{"execute":"guest-sync","arguments":{"id":"x"}}']);
    assert.equal(
      [bad.status, bad.stdout],
      [1, '{"error":{"class":"GenericError","desc":"Invalid parameter type for \'id\', expected: integer"}}\n'],
    );
    const notJson = await q(ctx, ['qmp', '{nope']);
    assert.is(notJson.status, 2);
    assert.match(notJson.stderr, /^ember-ga-ctl: qmp: not JSON/);
    const phoenix = await ctl(['-s', ctx.real!.socket, 'qmp', '{"execute":"guest-ping"}']);
    assert.equal([phoenix.status, phoenix.stderr], [2, 'ember-ga-ctl: qmp speaks qemu-ga: add --protocol qemu-ga\n']);
  },
  { needs },
);

test(
  'exec /bin/echo: its output, its status, --json',
  async (ctx) => {
    const r = await q(ctx, ['exec', '/bin/echo', 'hello', 'world']);
    assert.equal([r.status, r.stdout, r.stderr], [0, 'hello world\n', '']);
    const dash = await q(ctx, ['exec', '--', '/bin/echo', '-n', 'no newline']);
    assert.equal([dash.status, dash.stdout], [0, 'no newline']);
    const j = JSON.parse((await q(ctx, ['--json', 'exec', '/bin/echo', 'x'])).stdout);
    assert.equal([j.exitcode, Buffer.from(j.stdout, 'base64').toString()], [0, 'x\n']);
    const env = await q(ctx, ['exec', '-e', 'bad', '/bin/echo']);
    assert.equal([env.status, env.stderr], [2, 'ember-ga-ctl: --env takes NAME=VALUE, got "bad"\n']);
  },
  { needs },
);

test(
  'cp both ways, cat and md5; what qemu-ga lacks fails naming the protocol',
  async (ctx) => {
    const src = path.join(ctx.dir, 'src');
    const sum = randomFile(src, 300_000);
    const guest = path.join(ctx.dir, 'guest');
    const up = await q(ctx, ['--json', 'cp', src, `guest:${guest}`]);
    assert.is(up.status, 0, up.stderr);
    assert.equal([JSON.parse(up.stdout).md5, JSON.parse(up.stdout).chunkSize, md5Of(guest)], [sum, 4096, sum]);
    const back = path.join(ctx.dir, 'back');
    assert.is((await q(ctx, ['cp', `guest:${guest}`, back])).status, 0);
    assert.is(md5Of(back), sum);
    assert.is((await q(ctx, ['md5', guest])).stdout, `${sum}  ${guest}\n`);
    const cat = await q(ctx, ['cat', guest]);
    assert.ok(cat.stdoutBuf.equals(fs.readFileSync(src)));
    const stdin = await q(ctx, ['cp', '-', `guest:${guest}`], { input: 'from stdin' });
    assert.is(stdin.status, 0, stdin.stderr);
    assert.is(fs.readFileSync(guest, 'utf8'), 'from stdin');
    for (const [args, message] of [
      [['stat', guest], "file-stat: phoenix's protocol only, qemu-ga's has no equivalent"],
      [['ls', ctx.dir], "directory-list: phoenix's protocol only, qemu-ga's has no equivalent"],
      [['shutdown'], "agent-shutdown: phoenix's protocol only, qemu-ga's has no equivalent"],
      [
        ['cp', '-m', '600', src, `guest:${guest}`],
        `copy to guest:${guest}: the mode of a created file (perm): phoenix's protocol only, qemu-ga's has no equivalent`,
      ],
    ] as const) {
      const r = await q(ctx, [...args]);
      assert.equal([r.status, r.stderr], [1, `ember-ga-ctl: host: ${message}\n`], args.join(' '));
    }
    assert.is(fs.readFileSync(guest, 'utf8'), 'from stdin', 'a refused copy leaves the file alone');
  },
  { needs },
);

/** A run that failed at once (well within its 30 s wait), exit 1, with this one line. */
function failedFast(r: Awaited<ReturnType<typeof ctl>>, ms: number, line: RegExp): void {
  assert.ok(ms < 5_000, `failed at once, not after the 30 s wait: ${ms} ms`);
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, line);
  assert.is(r.stderr.split('\n').length, 2, r.stderr);
}

async function timed(args: string[]): Promise<[Awaited<ReturnType<typeof ctl>>, number]> {
  const t0 = Date.now();
  const r = await ctl(args, { timeout: 40_000 });
  return [r, Date.now() - t0];
}

test(
  'the wrong protocol fails at once naming the right --protocol: qemu-ga (a socket named VMID.qga) taken for phoenix',
  async (ctx) => {
    const qga = path.join(ctx.dir, '101.qga'); // Proxmox's name: not org.qemu.guest_agent.0
    fs.symlinkSync(ctx.real!.socket, qga);
    const [r, ms] = await timed(['-s', qga, 'ping']);
    failedFast(
      r,
      ms,
      /^ember-ga-ctl: host: ping: the agent at unix:\S+101\.qga speaks qemu-ga's protocol, not phoenix's \(it answered \{"error": \{"class": "GenericError".*\): add --protocol qemu-ga\n$/,
    );
  },
  { needs },
);

test('the wrong protocol fails at once, both ways, against ember-ga; the library says so with EPROTO', async () => {
  const phoenix = await startAgent();
  const qemu = await startAgent(['--protocol', 'qemu-ga']);
  try {
    let [r, ms] = await timed(['-s', qemu.socket, 'ping']);
    failedFast(
      r,
      ms,
      /^ember-ga-ctl: host: ping: .* speaks qemu-ga's protocol, not phoenix's .*: add --protocol qemu-ga\n$/,
    );
    [r, ms] = await timed(['-s', phoenix.socket, '--protocol', 'qemu-ga', 'ping']);
    failedFast(
      r,
      ms,
      /^ember-ga-ctl: host: guest-ping: .* speaks phoenix's protocol, not qemu-ga's .*: add --protocol phoenix\n$/,
    );
    [r, ms] = await timed(['-s', phoenix.socket, '--protocol', 'qemu-ga', '--json', 'info']);
    assert.ok(ms < 5_000, `${ms} ms`);
    assert.is(JSON.parse(r.stderr).error.code, 'EPROTO');
    for (const [socket, protocol, speaks] of [
      [qemu.socket, 'phoenix', 'qemu-ga'],
      [phoenix.socket, 'qemu-ga', 'phoenix'],
    ] as const) {
      const ga = new GuestAgent({ socket, protocol });
      try {
        const e = await ga.ping().then(
          () => undefined,
          (err: unknown) => err,
        );
        assert.ok(e instanceof GuestAgentError, String(e));
        assert.equal([e.code, e.speaks], ['EPROTO', speaks]);
        assert.match(
          e.message,
          new RegExp(`speaks ${speaks}'s protocol, not ${protocol}'s .*: connect with protocol ${speaks}$`),
        );
      } finally {
        await ga.close();
      }
    }
  } finally {
    await phoenix.stop();
    await qemu.stop();
  }
});

test('ember-ga --protocol qemu-ga: ping, info, qmp, and found to be ember-ga', async () => {
  const agent = await startEmberQemuGa();
  try {
    const run = (args: string[]) => ctl(['-s', agent.socket, '--protocol', 'qemu-ga', ...args]);
    const ping = await run(['ping']);
    assert.equal([ping.status, ping.stdout, ping.stderr], [0, '7.2.0\n', '']);
    const info = await run(['info']);
    assert.is(info.status, 0, info.stderr);
    assert.match(
      info.stdout,
      /^agent: +ember-ga \d+\.\d+\.\d+\S*, qemu-ga 7\.2\.0 protocol \(reads up to 48\.0 MiB, requests up to 16\.0 MiB, pipelined copies\)\n/,
    );
    assert.match(info.stdout, /\ncommands: \d+ enabled of \d+\n$/);
    assert.is((await run(['qmp', '{"execute":"guest-sync","arguments":{"id":9}}'])).stdout, '{"return":9}\n');
  } finally {
    await agent.stop();
  }
});

test("exec: the guest process's exit status, 128+N for a signal, stderr passed on", () => {
  let pid = 100;
  const status = new Map<number, Record<string, unknown>>();
  return withFake(
    {
      reply: (req) => {
        if (req.execute === 'guest-exec') {
          const arg = (req.arguments?.arg as string[]) ?? [];
          pid++;
          status.set(
            pid,
            arg[0] === 'signal'
              ? { exited: true, signal: 9 }
              : arg[0] === 'long'
                ? { exited: true, exitcode: 0, 'out-data': 'b3V0', 'out-truncated': true }
                : { exited: true, exitcode: 3, 'out-data': 'b3V0', 'err-data': 'ZXJy', 'out-truncated': false },
          );
          return { return: { pid } };
        }
        if (req.execute === 'guest-exec-status') return { return: status.get(req.arguments!.pid as number) };
        return undefined;
      },
    },
    async (run) => {
      const r = await run(['exec', '/bin/false']);
      assert.equal([r.status, r.stdout, r.stderr], [3, 'out', 'err']);
      const s = await run(['exec', '/bin/x', 'signal']);
      assert.is(s.status, 128 + 9);
      // --json: both keys, null where it does not apply.
      let j = JSON.parse((await run(['--json', 'exec', '/bin/x', 'signal'])).stdout);
      assert.equal([j.exitcode, j.signal], [null, 9]);
      j = JSON.parse((await run(['--json', 'exec', '/bin/false'])).stdout);
      assert.equal([j.exitcode, j.signal], [3, null]);
      // Output the agent cut short: a warning, and the program's status (0).
      const cut = await run(['exec', '/bin/x', 'long']);
      assert.equal(
        [cut.status, cut.stdout, cut.stderr],
        [0, 'out', "ember-ga-ctl: warning: the agent cut the program's stdout short\n"],
      );
      // The program's options without --: how to pass them.
      const hint = "(options after PATH are the program's own: put -- before PATH, as in exec -- /bin/sh -c CMD)";
      const opt = await run(['exec', '/bin/sh', '-c', 'true']);
      assert.equal([opt.status, opt.stderr], [2, `ember-ga-ctl: unknown option '-c'\n${hint}\n`]);
      const optJson = await run(['--json', 'exec', '/bin/sh', '-c', 'true']);
      assert.equal([optJson.status, JSON.parse(optJson.stderr).error.message], [2, `unknown option '-c' ${hint}`]);
      assert.is((await run(['exec', '--', '/bin/sh', '-c', 'true'])).status, 3); // the fake's status
    },
  );
});

test('freeze, thaw, frozen and ifaces over qemu-ga (on the fake: never on this machine)', () => {
  let frozen = false;
  return withFake(
    {
      reply: (req) => {
        switch (req.execute) {
          case 'guest-fsfreeze-freeze':
            frozen = true;
            return { return: 2 };
          case 'guest-fsfreeze-freeze-list':
            frozen = true;
            return { return: (req.arguments!.mountpoints as string[]).length };
          case 'guest-fsfreeze-thaw':
            frozen = false;
            return { return: 2 };
          case 'guest-fsfreeze-status':
            return { return: frozen ? 'frozen' : 'thawed' };
          case 'guest-network-get-interfaces':
            return {
              return: [
                {
                  name: 'eth0',
                  'hardware-address': '52:54:00:12:34:56',
                  'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '192.0.2.10', prefix: 24 }],
                  statistics: { 'rx-bytes': 2048, 'tx-bytes': 1024 },
                },
              ],
            };
          default:
            return undefined;
        }
      },
    },
    async (run, fake) => {
      assert.is((await run(['frozen'])).stdout, 'thawed\n');
      assert.is((await run(['freeze'])).stdout, 'frozen (2 filesystems)\n');
      assert.is((await run(['frozen'])).stdout, 'frozen\n');
      assert.is((await run(['--json', 'thaw'])).stdout, '{"count":2}\n');
      assert.is((await run(['--json', 'freeze', '/mnt/a'])).stdout, '{"count":1}\n');
      const t = await run(['freeze', '--timeout', '5']);
      assert.equal(
        [t.status, t.stderr],
        [1, "ember-ga-ctl: host: freeze: a timeout: phoenix's protocol only, qemu-ga's has no equivalent\n"],
      );
      assert.ok(fake.requests.some((r) => r.execute === 'guest-fsfreeze-freeze-list'));
      const i = await run(['ifaces']);
      assert.equal(i.stdout.split('\n'), [
        'NAME  HWADDR             ADDRESSES      RX        TX',
        'eth0  52:54:00:12:34:56  192.0.2.10/24  2.00 KiB  1.00 KiB',
        '',
      ]);
    },
  );
});

test.run();
