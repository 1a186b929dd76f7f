#!/usr/bin/env node
// ember-ga-ctl: drive a guest agent from the host, over phoenix's protocol or qemu-ga's. One
// subcommand per agent command, in human form (tables) or --json for scripts; `cp` with a
// progress bar when stderr is a terminal.
import { Command, CommanderError, Option } from 'commander';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { jsonWithBigInts } from '../wire/json';
import { SystemError, toSystemError } from '../errors';
import { VERSION } from '../version';
import { GuestAgentError } from './errors';
import { GuestAgent, type Protocol } from './guest-agent';
import {
  byteCount,
  collect,
  devName,
  guestPath,
  integer,
  jsonRequest,
  octalMode,
  owner,
  protocolOf,
  routeSpec,
  seconds,
  secondsOrZero,
  usage,
} from './ctl-args';
import { execJson, execOptions, gatherSystem, sendQmp, type ExecFlags } from './ctl-qemu-ga';
import { cp, dieOf, runCopy, Stopped, watchStdout, type CpOptions } from './ctl-copy';
import * as fmt from './format';
import { notADevice, socketPath } from './link';

interface Globals {
  socket?: string;
  device?: string;
  listen?: string;
  wait: number;
  /** -w given: it bounds the end of a copy too (CopyOptions.finishTimeout), in ms. */
  finishTimeout?: number;
  json?: boolean;
  protocol?: Protocol;
}

type Action = (ga: GuestAgent, g: Globals, ...rest: never[]) => Promise<void>;

/** The exit status of a subcommand that has its own (exec: the guest process's; qmp: 1 for an error answer). */
let status = 0;
/** --json was given: errors too are JSON (one line on stderr, see report()). */
let jsonErrors = false;

export { routeSpec } from './ctl-args';

function out(g: Globals, value: unknown, human: () => string): void {
  // stat's exact 64-bit fields as digits; human text escapes what a guest could use to drive the terminal
  process.stdout.write(g.json ? jsonWithBigInts(value) + '\n' : fmt.terminalSafe(human()));
}

/** A change that answers nothing: `{}` under --json (one JSON value per run), else `human()` or nothing. */
function done(g: Globals, human: () => string = () => ''): void {
  out(g, {}, human);
}

function connectOptions(g: Globals) {
  const given = [g.socket, g.device, g.listen].filter((x) => x !== undefined).length;
  if (given !== 1)
    usage('say where the agent is: one of --socket PATH, --device PATH, --listen PATH (or EMBER_GA_SOCKET)');
  if (g.device !== undefined) checkDevice(g.device);
  const timeout = g.wait * 1000;
  const socket = g.socket === undefined ? undefined : socketPath(g.socket);
  const listen = g.listen === undefined ? undefined : socketPath(g.listen);
  const protocol = g.protocol ?? protocolOf((socket ?? g.device ?? listen)!);
  if (socket !== undefined) return { socket, timeout, reconnect: false, protocol };
  if (g.device !== undefined) return { device: g.device, timeout, reconnect: false, protocol };
  return { listen: listen!, timeout, connectTimeout: timeout, reconnect: false, protocol };
}

/** -d: a usage error for what is not a pty or character device, before it is opened; a missing one fails connecting. */
function checkDevice(device: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(device);
  } catch {
    return;
  }
  const wrong = notADevice(st);
  if (wrong) usage(`--device ${device}: ${wrong}${st.isSocket() ? ' (a socket takes --socket)' : ''}`);
}

/** Wraps a subcommand: connect, run, close. */
function act(fn: Action) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const g = cmd.optsWithGlobals() as Globals;
    let top = cmd;
    while (top.parent) top = top.parent;
    // EMBER_GA_SOCKET / EMBER_GA_DEVICE are defaults: a location given on the command line wins.
    const explicit = (['socket', 'device', 'listen'] as const).filter(
      (k) => g[k] !== undefined && top.getOptionValueSource(k) !== 'env',
    );
    if (explicit.length > 0)
      for (const k of ['socket', 'device', 'listen'] as const) if (!explicit.includes(k)) g[k] = undefined;
    // Without -w a copy's end waits as long as a large file takes to check (see CLIENT.md).
    if (top.getOptionValueSource('wait') !== 'default') g.finishTimeout = g.wait * 1000;
    const ga = new GuestAgent(connectOptions(g));
    try {
      await ga.connect();
      await (fn as (...a: unknown[]) => Promise<void>)(ga, g, ...args.slice(0, -1));
    } finally {
      await ga.close();
    }
  };
}

export function program(): Command {
  const p = new Command('ember-ga-ctl')
    .description(
      'Drive a guest agent from the host: ember-ga, phoenix-guest-agent 0.7.1 or qemu-guest-agent (--protocol qemu-ga).',
    )
    .version(VERSION, '-v, --version') // as the agent's
    .addOption(
      new Option(
        '-s, --socket <path>',
        "unix socket of the VM's guest-agent port (QEMU chardev socket, server=on); PATH or unix:PATH",
      ).env('EMBER_GA_SOCKET'),
    )
    .addOption(
      new Option('-d, --device <path>', 'pty or character device of the port (QEMU chardev pty)').env(
        'EMBER_GA_DEVICE',
      ),
    )
    .addOption(
      new Option(
        '--listen <path>',
        'listen on a unix socket and wait for QEMU to connect (chardev socket, server=off); unix:PATH as the agent takes it, or PATH',
      ),
    )
    .addOption(
      new Option(
        '--protocol <name>',
        "the agent's protocol (default: qemu-ga when the socket or device is named org.qemu.guest_agent.0, else phoenix)",
      ).choices(['phoenix', 'qemu-ga']),
    )
    .addOption(
      new Option(
        '-w, --wait <seconds>',
        "how long to wait for each answer, a copy's last included, plus 1 s per 20 MB copied (without -w a copy's last waits 60 s or more)",
      )
        .argParser(seconds)
        .default(30),
    )
    .option('--json', 'print answers as JSON (one line) for scripts')
    .allowExcessArguments(false) // `ping extra` is a mistake, not a ping (subcommands inherit it)
    .exitOverride();
  // Under --json main() reports commander's errors as JSON, and help shown for a missing
  // command would only garble that stream.
  p.configureOutput({
    outputError: (s, write) => (jsonErrors ? undefined : write(s.replace(/^error: /, 'ember-ga-ctl: '))),
    writeErr: (s) => (jsonErrors ? undefined : process.stderr.write(s)),
  });

  p.command('ping')
    .description("the agent's version")
    .action(
      act(async (ga, g) => {
        const v = await ga.ping();
        out(g, v, () => `${fmt.escaped(v)}\n`);
      }),
    );

  p.command('info')
    .alias('sysinfo')
    .description(
      'the agent and the guest system: uname, uptime, load, memory, disks, users (qemu-ga: host name, OS, time, users)',
    )
    .action(
      act(async (ga, g) => {
        if (ga.protocol === 'qemu-ga') {
          const [f, s] = await Promise.all([ga.features(), gatherSystem(ga)]);
          return out(g, { agent: f, system: s }, () => fmt.qgaSystemText(f, s));
        }
        const [f, s] = await Promise.all([ga.features(), ga.systemInfo()]);
        out(g, { agent: f, sysinfo: s }, () => fmt.sysinfoText(f, s));
      }),
    );

  p.command('commands')
    .description('every command the agent accepts')
    .action(
      act(async (ga, g) => {
        const list = await ga.commands();
        out(g, list, () => list.map(fmt.escaped).join('\n') + '\n');
      }),
    );

  p.command('shutdown')
    .description('agent-shutdown: the agent exits (its supervisor restarts it)')
    .action(
      act(async (ga, g) => {
        await ga.shutdown();
        done(g, () => 'agent shutting down\n');
      }),
    );

  p.command('ls')
    .argument('<path>', 'guest directory', guestPath)
    .option('-n, --limit <n>', 'at most n entries (0: all)', integer)
    .description('list a guest directory')
    .action(
      act(async (ga, g, dir: string, o: { limit?: number }) => {
        const list = await ga.listDirectory(dir, o.limit, { exact: true });
        out(g, list, () => fmt.listing(list));
      }),
    );

  p.command('stat')
    .argument('<path>', 'guest path', guestPath)
    .description('file-stat (lstat) of a guest path')
    .action(
      act(async (ga, g, file: string) => {
        const s = await ga.statFile(file, { exact: true });
        out(g, s, () => fmt.statText(s));
      }),
    );

  p.command('md5')
    .argument('<path>', 'guest file', guestPath)
    .description('md5 of a guest file')
    .action(
      act(async (ga, g, file: string) => {
        const sum = await ga.md5File(file, { timeout: Math.max(g.wait * 1000, 600_000) });
        // md5sum's line (`md5sum -c` reads it back): a name with a backslash or a newline has
        // those escaped and a backslash first. The sum is the agent's: escaped as its text.
        const tricky = /[\\\n]/.test(file);
        const name = tricky ? file.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : file;
        out(g, sum, () => `${tricky ? '\\' : ''}${fmt.escaped(sum)}  ${name}\n`);
      }),
    );

  p.command('cat')
    .argument('<path>', 'guest file', guestPath)
    .option('--no-verify', 'skip the md5 check')
    .description('write a guest file to stdout (md5-verified at the end)')
    .action(
      act(async (ga, g, file: string, o: { verify: boolean }) => {
        await runCopy(
          (signal) =>
            ga.copyFrom(file, process.stdout, {
              end: false,
              verify: o.verify,
              signal,
              finishTimeout: g.finishTimeout,
            }),
          path.posix.basename(file),
          { progress: false },
        );
      }),
    );

  p.command('cp')
    .argument('<src>', 'guest:PATH, a local path, or - for stdin')
    .argument('<dst>', 'guest:PATH, a local path, or - for stdout')
    .option('-m, --perm <mode>', 'mode of a file created in the guest (octal, default 644)', octalMode)
    .option('-f, --force', 'replace a busy executable in the guest')
    .option('--keep-partial', 'keep what arrived at a local destination if the copy fails')
    .option(
      '--in-place',
      'write the guest file in place (default: replace it only when the copy is complete and verified)',
    )
    .option('--no-verify', 'skip the md5 check at the end')
    .option('--no-progress', 'no progress bar')
    .option(
      '--chunk-size <bytes>',
      'bytes per request (default 1 MiB, 4 KiB for 0.7.1 agents and qemu-ga itself)',
      byteCount,
    )
    .description('copy between host and guest; guest paths start with guest:')
    .action(
      act(async (ga, g, srcArg: string, dstArg: string, o: CpOptions) => {
        const r = await cp(ga, srcArg, dstArg, { ...o, finishTimeout: g.finishTimeout }, g.json);
        // To stdout, the file is the output: a result after it would become part of it.
        if (g.json && dstArg !== '-') out(g, r, () => '');
      }),
    );

  p.command('mkdir')
    .argument('<path>', 'guest directory', guestPath)
    .option('-m, --mode <mode>', 'mode (octal, default 755)', octalMode)
    .description('create a guest directory and its missing parents')
    .action(
      act(async (ga, g, dir: string, o: { mode?: number }) => {
        await ga.mkdirAll(dir, o.mode);
        done(g);
      }),
    );

  p.command('chmod')
    .argument('<mode>', 'octal mode, e.g. 644', octalMode)
    .argument('<path>', 'guest path', guestPath)
    .description('change mode bits of a guest path')
    .action(
      act(async (ga, g, mode: number, file: string) => {
        await ga.chmod(file, mode);
        done(g);
      }),
    );

  p.command('chown')
    .argument('<owner>', 'UID[:GID], numeric', owner)
    .argument('<path>', 'guest path', guestPath)
    .description('change owner (and group) of a guest path')
    .action(
      act(async (ga, g, { uid, gid }: { uid: number; gid: number }, file: string) => {
        await ga.chown(file, uid, gid);
        done(g);
      }),
    );

  p.command('freeze')
    .argument('[mount...]', 'mount points to freeze, in order (default: the agent picks, like the reference)')
    .option(
      '--timeout <seconds>',
      "the agent thaws by itself if no thaw comes within this time (0: never; default: the agent's --freeze-timeout)",
      secondsOrZero,
    )
    .description('freeze guest filesystems (before a snapshot)')
    .action(
      act(async (ga, g, mounts: string[], o: { timeout?: number }) => {
        const r = await ga.freeze({ mountpoints: mounts, timeout: o.timeout });
        out(g, r, () => (r.count === undefined ? 'frozen\n' : `frozen (${r.count} filesystems)\n`));
      }),
    );

  p.command('thaw')
    .description('thaw guest filesystems (after a snapshot)')
    .action(
      act(async (ga, g) => {
        const r = await ga.thaw();
        out(g, r, () => (r.count === undefined ? 'thawed\n' : `thawed (${r.count} filesystems)\n`));
      }),
    );

  p.command('frozen')
    .description('whether guest filesystems are frozen')
    .action(
      act(async (ga, g) => {
        const f = await ga.frozen();
        out(g, f, () => (f ? 'frozen\n' : 'thawed\n'));
      }),
    );

  p.command('ifaces')
    .description('network interfaces and their addresses')
    .action(
      act(async (ga, g) => {
        if (ga.protocol === 'qemu-ga') {
          const list = await ga.qga.networkInterfaces();
          return out(g, list, () => fmt.qgaIfacesText(list));
        }
        const list = await ga.links();
        out(g, list, () => fmt.ifacesText(list));
      }),
    );

  p.command('addr')
    .argument('<add|del>')
    .argument('<cidr>', 'address/prefix, e.g. 192.0.2.10/24')
    .argument('<ifname...>', '[dev] IFNAME')
    .description('add or delete an address: addr add 192.0.2.10/24 dev eth0')
    .action(
      act(async (ga, g, op: string, cidr: string, rest: string[]) => {
        const ifname = devName(rest);
        if (op === 'add') await ga.addAddress({ ifname, cidr });
        else if (op === 'del' || op === 'delete') await ga.deleteAddress({ ifname, cidr });
        else usage(`addr takes add or del, got ${JSON.stringify(op)}`);
        done(g);
      }),
    );

  p.command('link')
    .argument('<up|down>')
    .argument('<ifname>')
    .description('bring an interface up or down')
    .action(
      act(async (ga, g, op: string, ifname: string) => {
        if (op === 'up') await ga.setLinkUp(ifname);
        else if (op === 'down') await ga.setLinkDown(ifname);
        else usage(`link takes up or down, got ${JSON.stringify(op)}`);
        done(g);
      }),
    );

  p.command('routes')
    .option('-4', 'IPv4 only')
    .option('-6', 'IPv6 only')
    .description('the main routing table')
    .action(
      act(async (ga, g, o: { 4?: boolean; 6?: boolean }) => {
        const list = await ga.routes({ family: o[4] ? 4 : o[6] ? 6 : 0 });
        out(g, list, () => fmt.routesText(list));
      }),
    );

  p.command('route')
    .argument('<add|del>')
    .argument('<spec...>', 'DST [via GW] [dev IFNAME] [src SRC] [scope N|link|host|global]')
    .description('add or delete a route, like ip route: route add 198.51.100.0/24 via 192.0.2.1 dev eth0')
    .action(
      act(async (ga, g, op: string, spec: string[]) => {
        const r = routeSpec(spec);
        if (op === 'add') await ga.addRoute(r);
        else if (op === 'del' || op === 'delete') await ga.deleteRoute(r);
        else usage(`route takes add or del, got ${JSON.stringify(op)}`);
        done(g);
      }),
    );

  p.command('raw')
    .argument('<json>', '{"execute": NAME, "arguments": {...}}')
    .description("send one request as JSON and print its return value as JSON (in the agent's protocol)")
    .action(
      act(async (ga, _g, text: string) => {
        const req = jsonRequest('raw', text);
        const args =
          req.arguments === undefined || req.arguments === null
            ? undefined
            : (req.arguments as Record<string, unknown>);
        const v = await ga.call(req.execute, args);
        process.stdout.write(JSON.stringify(v) + '\n');
      }),
    );

  p.command('qmp')
    .argument('<json>', '{"execute": NAME, "arguments": {...}}')
    .description('qemu-ga: send one request as it is and print the whole answer, an error answer too (exit status 1)')
    .action(
      act(async (ga, _g, text: string) => {
        const answer = await sendQmp(ga, text);
        process.stdout.write(JSON.stringify(answer) + '\n');
        if (answer.error !== undefined) status = 1;
      }),
    );

  p.command('exec')
    .argument('<path>', 'program to run in the guest')
    .argument('[args...]', 'its arguments (put -- before PATH when they hold options)')
    .option('-e, --env <NAME=VALUE>', "environment, repeatable: the whole environment (default: the agent's)", collect)
    .option('-i, --input <file>', "the program's stdin: a local file, or - for ember-ga-ctl's stdin")
    .option('--no-capture', "do not collect the program's output")
    .option('--timeout <seconds>', 'stop waiting after this long (the program runs on)', seconds)
    // `exec /bin/sh -c CMD`: -c is taken for exec's own option; say how to pass it on.
    .exitOverride((err) => {
      throw err.code === 'commander.unknownOption' ? Object.assign(err, { hint: EXEC_HINT }) : err;
    })
    .description(
      'qemu-ga: run a program in the guest (guest-exec), print its output and exit with its status (128+N for signal N)',
    )
    .action(
      act(async (ga, g, file: string, args: string[], o: ExecFlags) => {
        const r = await ga.exec(file, args, await execOptions(o));
        if (g.json) process.stdout.write(JSON.stringify(execJson(r)) + '\n');
        else {
          process.stdout.write(r.stdout);
          process.stderr.write(r.stderr);
          const cut = [r.stdoutTruncated && 'stdout', r.stderrTruncated && 'stderr'].filter((x) => x);
          if (cut.length > 0)
            process.stderr.write(`ember-ga-ctl: warning: the agent cut the program's ${cut.join(' and ')} short\n`);
        }
        status = r.signal !== undefined ? 128 + r.signal : (r.exitcode ?? 0);
      }),
    );

  return p;
}

const HELP_HINT = '(ember-ga-ctl --help lists the commands)';
const EXEC_HINT = "(options after PATH are the program's own: put -- before PATH, as in exec -- /bin/sh -c CMD)";

/** An error as --json reports it: where it happened (the agent's answer, or here) and its code. */
export interface ErrorReport {
  /** The errno's name ('ENOENT'), the client's ('ETIMEDOUT', 'ECHECKSUM'), 'EGUEST' for a guest error without one, 'EUSAGE'. */
  code: string;
  message: string;
  /** 'guest': the agent answered this error; 'host': it happened here (a local file, the connection, a timeout, a usage error). */
  side: 'host' | 'guest';
  /** qemu-ga's error class ('GenericError', 'CommandNotFound'), for its error answers. */
  class?: string;
}

export function errorReport(e: unknown): ErrorReport {
  if (e instanceof GuestAgentError) {
    // The other protocol's answers: the flag that fixes it, not the library's option.
    const message = e.speaks
      ? e.message.replace(/connect with protocol \S+$/, `add --protocol ${e.speaks}`)
      : e.message;
    const r: ErrorReport = { code: e.code, message, side: e.remote ? 'guest' : 'host' };
    if (e.errorClass !== undefined) r.class = e.errorClass;
    return r;
  }
  const err = toSystemError(e); // a local file's: "open /x: no such file or directory"
  if (err instanceof SystemError) return { code: err.code, message: err.message, side: 'host' };
  const code = (err as { code?: unknown })?.code;
  return {
    code: typeof code === 'string' ? code : 'ERROR',
    message: err instanceof Error ? err.message : String(err),
    side: 'host',
  };
}

/**
 * One error on stderr: under --json `{"error": {code, message, side}}` on one line (stdout keeps
 * only answers: a cat or exec's output is never followed by an error there), else
 * `ember-ga-ctl: SIDE: message`, the side saying whether the agent answered it or it happened here.
 */
function report(r: ErrorReport, usageError = false): void {
  if (jsonErrors) process.stderr.write(JSON.stringify({ error: r }) + '\n');
  else {
    // The agent's words are the guest's to choose (escape sequences for this terminal); ours
    // name what the user typed, kept as typed so that it can be copied back.
    const message = r.side === 'guest' && !usageError ? fmt.escaped(r.message) : r.message;
    process.stderr.write(usageError ? `ember-ga-ctl: ${message}\n` : `ember-ga-ctl: ${r.side}: ${message}\n`);
  }
}

/** --json anywhere before `--`, seen before commander parses: its own errors come first. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

export async function main(argv: string[]): Promise<number> {
  jsonErrors = wantsJson(argv);
  watchStdout((e) => {
    report(errorReport(e));
    process.exit(1);
  });
  try {
    status = 0;
    await program().parseAsync(argv, { from: 'user' });
    return status;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0
      if (e.exitCode === 0) return 0;
      const usageError = (message: string) => report({ code: 'EUSAGE', message, side: 'host' }, true);
      const hint = (e as { hint?: string }).hint;
      if (e.code === 'ember-ga-ctl.usage') usageError(e.message);
      else if (e.code === 'commander.help')
        usageError(jsonErrors ? `which command? ${HELP_HINT}` : 'which command? (see above)');
      else if (jsonErrors) usageError(e.message.replace(/^error: /, '') + (hint ? ` ${hint}` : ''));
      // commander printed its own message; a bad value gets its one line (flag, value, what it
      // takes), a wrong command line the hint too.
      else if (e.code !== 'commander.invalidArgument') process.stderr.write(`${hint ?? HELP_HINT}\n`);
      return 2;
    }
    const stopped = e instanceof Stopped ? e : undefined;
    const failure = stopped ? stopped.failure : e;
    // Like cat, nothing is said when the reader of stdout went away.
    if (stopped?.signal !== 'SIGPIPE') report(errorReport(failure));
    if (!stopped) return 1;
    dieOf(stopped.signal);
    return 128 + os.constants.signals[stopped.signal];
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
