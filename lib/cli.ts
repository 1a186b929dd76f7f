#!/usr/bin/env node
// The agent's entry point. Flags follow the reference (-p, -debug, -v) so existing service files
// keep working; both -flag and --flag are accepted, with "-flag value" or "-flag=value".
import * as v8 from 'v8';
import { Agent } from './agent';
import { allCommands } from './protocols/phoenix/commands';
import { defaultConfig, type AgentConfig } from './context';
import { DEFAULT_FSFREEZE_HOOK } from './freeze/hook';
import { HoldingLogger, stderrLogger } from './log';
import { enableCollections, MMAP_THRESHOLD } from './memory';
import { native } from './native';
import { MAX_TIMEOUT_SECONDS } from './timers';
import { HOST_GONE_MS, PortTransport } from './transports/port';
import { KNOWN_PORTS, portNameOf, QGA_PORT_NAME, SYS_PORTS_DIR } from './transports/find-port';
import { PortWatcher } from './transports/port-watch';
import { UnixTransport } from './transports/unix';
import type { Transport } from './transports/transport';
import { VERSION } from './version';
import { installUnit, uninstallUnit } from './install-unit';
import { PROTOCOL_NAMES, type ProtocolName } from './protocols/protocol';
import type { Endpoint } from './agent';

export { QGA_PORT_NAME };

/** How often, by default, the agent looks for ports appearing and going away (--port-scan). */
export const PORT_SCAN_SECONDS = 2;

/**
 * The protocol of a port: as asked, else by the port's name (its file name, or the name sysfs
 * gives the device it leads to): qemu-ga on org.qemu.guest_agent.0, phoenix on any other.
 */
export function protocolFor(
  asked: ProtocolName | undefined,
  portPath: string | undefined,
  sysDir = SYS_PORTS_DIR,
): ProtocolName {
  if (asked) return asked;
  if (portPath === undefined) return 'phoenix';
  return KNOWN_PORTS[portNameOf(portPath, sysDir) ?? ''] ?? 'phoenix';
}

/** One -p or --listen: what to open and, when its value said so, the protocol its hosts speak. */
export interface EndpointSpec {
  kind: 'port' | 'unix';
  path: string;
  protocol?: ProtocolName;
}

export interface CliOptions {
  /** -p and --listen, in the order given; none: the ports are found by name and followed. */
  endpoints: EndpointSpec[];
  /** The protocol of every -p and --listen without a PROTO: prefix. */
  protocol?: ProtocolName;
  /** Seconds the port may stay hung up before the host's session is over. */
  hostGoneTimeout?: number;
  /** Where ports are found by name, and their device nodes. */
  sysDir?: string;
  devDir?: string;
  /** Seconds between looks for ports coming and going; 0: only at start. */
  portScan?: number;
  debug: boolean;
  version: boolean;
  help: boolean;
  /** --install-unit / --uninstall-unit, and their --unit-root. */
  unit?: 'install' | 'uninstall';
  unitRoot?: string;
  config: Partial<AgentConfig>;
}

/** "PROTO:REST" -> the protocol and REST; anything else is all REST. */
function protocolPrefix(v: string): { protocol?: ProtocolName; rest: string } {
  const m = /^([a-z-]+):(.*)$/s.exec(v);
  if (m && (PROTOCOL_NAMES as readonly string[]).includes(m[1])) return { protocol: m[1] as ProtocolName, rest: m[2] };
  return { rest: v };
}

function addEndpoint(o: CliOptions, spec: EndpointSpec, flag: string): void {
  if (o.endpoints.some((e) => e.kind === spec.kind && e.path === spec.path))
    throw new UsageError(`${flag} ${spec.path} given twice`);
  o.endpoints.push(spec);
}

interface FlagSpec {
  names: string[];
  value?: string; // the value's name in --help; absent for a boolean flag
  /** The value may be left out; it is then only taken as --flag=VALUE, never from the next argument. */
  optionalValue?: boolean;
  help: string;
  set(o: CliOptions, v: string): void;
}

/** Seconds for a timer flag: a number from 0 (never) to the longest a timer waits (MAX_TIMEOUT_SECONDS). */
function timerSeconds(flag: string, v: string): number {
  const s = positiveNumber(flag, v, false);
  if (s > MAX_TIMEOUT_SECONDS)
    throw new UsageError(`${flag} takes at most ${MAX_TIMEOUT_SECONDS} seconds (0 = never), got ${JSON.stringify(v)}`);
  return s;
}

function positiveNumber(flag: string, v: string, integer: boolean, min = 0): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} takes a ${integer ? 'whole ' : ''}number >= ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export const FLAGS: FlagSpec[] = [
  {
    names: ['p', 'port'],
    value: '[PROTO:]PATH',
    help: `a virtio-serial port to serve; may be repeated. PROTO is ${PROTOCOL_NAMES.join(' or ')} (default: --protocol, else qemu-ga on a port named ${QGA_PORT_NAME}, phoenix on any other). Without -p and --listen: each port named ${Object.keys(KNOWN_PORTS).join(' or ')} that exists, found by name under --virtio-ports-dir, followed as ports come and go`,
    set: (o, v) => {
      const { protocol, rest } = protocolPrefix(v);
      if (rest === '') throw new UsageError(`-p takes [PROTO:]PATH, got ${JSON.stringify(v)}`);
      addEndpoint(o, { kind: 'port', path: rest, protocol }, '-p');
    },
  },
  {
    names: ['listen'],
    value: '[PROTO:]unix:PATH',
    help: 'serve hosts one at a time on a unix socket; may be repeated. PROTO as for -p (default: --protocol, else phoenix)',
    set: (o, v) => {
      const { protocol, rest } = protocolPrefix(v);
      if (!rest.startsWith('unix:') || rest.length <= 5)
        throw new UsageError(`--listen takes [PROTO:]unix:PATH, got ${JSON.stringify(v)}`);
      addEndpoint(o, { kind: 'unix', path: rest.slice(5), protocol }, '--listen');
    },
  },
  {
    names: ['protocol'],
    value: 'NAME',
    help: `what hosts speak on every -p and --listen without a PROTO: prefix: ${PROTOCOL_NAMES.join(' or ')}`,
    set: (o, v) => {
      if (!(PROTOCOL_NAMES as readonly string[]).includes(v))
        throw new UsageError(`--protocol takes ${PROTOCOL_NAMES.join(' or ')}, got ${JSON.stringify(v)}`);
      o.protocol = v as ProtocolName;
    },
  },
  {
    names: ['virtio-ports-dir'],
    value: 'DIR',
    help: `where ports are found by name (default ${SYS_PORTS_DIR})`,
    set: (o, v) => (o.sysDir = v),
  },
  {
    names: ['dev-dir'],
    value: 'DIR',
    help: 'where the device nodes of the ports found by name are (default /dev)',
    set: (o, v) => (o.devDir = v),
  },
  {
    names: ['port-scan'],
    value: 'SECONDS',
    help: `without -p and --listen, look for ports appearing and going away this often; 0 = only at start (default ${PORT_SCAN_SECONDS})`,
    set: (o, v) => (o.portScan = timerSeconds('--port-scan', v)),
  },
  { names: ['debug'], help: 'log every request to stderr', set: (o) => (o.debug = true) },
  { names: ['v', 'version'], help: 'print the version and exit', set: (o) => (o.version = true) },
  { names: ['h', 'help'], help: 'print this help and exit', set: (o) => (o.help = true) },
  {
    names: ['install-unit'],
    help: 'install the systemd unit (ExecStart: this node and this package, by absolute path) and the udev rule, enable it, start it if a port exists; then exit',
    set: (o) => (o.unit = 'install'),
  },
  {
    names: ['uninstall-unit'],
    help: 'stop, disable and remove what --install-unit installed; then exit',
    set: (o) => (o.unit = 'uninstall'),
  },
  {
    names: ['unit-root'],
    value: 'DIR',
    help: 'with --install-unit or --uninstall-unit: the system to change (default /; an image being built)',
    set: (o, v) => (o.unitRoot = v),
  },
  {
    names: ['mounts-file'],
    value: 'PATH',
    help: `mount table the freeze commands and guest-fstrim read (default ${defaultConfig.mountsFile})`,
    set: (o, v) => (o.config.mountsFile = v),
  },
  {
    names: ['F', 'fsfreeze-hook'],
    value: 'PATH',
    optionalValue: true,
    help: `run PATH freeze before every freeze and PATH thaw after every thaw, from either protocol; a failing freeze hook fails the freeze (qemu-ga's -F; PATH defaults to ${DEFAULT_FSFREEZE_HOOK})`,
    set: (o, v) => (o.config.fsfreezeHook = v === '' ? DEFAULT_FSFREEZE_HOOK : v),
  },
  {
    names: ['freeze-timeout'],
    value: 'SECONDS',
    help: `thaw by itself when no fs-unfreeze comes within this time; 0 = never (default ${defaultConfig.freezeTimeout})`,
    set: (o, v) => (o.config.freezeTimeout = timerSeconds('--freeze-timeout', v)),
  },
  {
    names: ['host-gone-timeout'],
    value: 'SECONDS',
    help: `the port hung up this long ends the host's session: its work is cancelled, its handles closed; 0 = never (default ${HOST_GONE_MS / 1000})`,
    set: (o, v) => (o.hostGoneTimeout = timerSeconds('--host-gone-timeout', v)),
  },
  {
    names: ['max-handles'],
    value: 'N',
    help: `open file handles allowed at once, both protocols together; while both are served, each protocol's hosts at most half, so neither locks the other out (default ${defaultConfig.maxHandles})`,
    set: (o, v) => {
      o.config.maxHandles = positiveNumber('--max-handles', v, true, 1); // 0 would fail every open
    },
  },
  {
    names: ['max-held-input'],
    value: 'MIB',
    help: `MiB of a host's request data held in flight before the agent stops reading from it; twice this for all hosts together (default ${defaultConfig.maxHeldInput / 1048576})`,
    set: (o, v) => {
      const mib = positiveNumber('--max-held-input', v, false);
      if (mib < 1) throw new UsageError(`--max-held-input takes at least 1 (MiB), got ${JSON.stringify(v)}`);
      o.config.maxHeldInput = Math.round(mib * 1048576);
    },
  },
  {
    names: ['exec-max-processes'],
    value: 'N',
    help: `guest-exec processes tracked at once, running or not yet collected (default ${defaultConfig.execMaxProcesses})`,
    set: (o, v) => {
      const n = positiveNumber('--exec-max-processes', v, true);
      if (n < 1) throw new UsageError(`--exec-max-processes takes at least 1, got ${JSON.stringify(v)}`);
      o.config.execMaxProcesses = n;
    },
  },
  {
    names: ['exec-max-output'],
    value: 'MIB',
    help: `guest-exec output kept per stream of a process (default ${defaultConfig.execMaxOutput / 1048576})`,
    set: (o, v) => (o.config.execMaxOutput = Math.round(positiveNumber('--exec-max-output', v, false) * 1048576)),
  },
  {
    names: ['exec-max-held'],
    value: 'MIB',
    help: `guest-exec output held for all processes together, and input-data they have not read (default ${defaultConfig.execMaxHeldOutput / 1048576})`,
    set: (o, v) => (o.config.execMaxHeldOutput = Math.round(positiveNumber('--exec-max-held', v, false) * 1048576)),
  },
  {
    names: ['utmp-file'],
    value: 'PATH',
    help: `utmp file sysinfo reads logged-in users from (default ${defaultConfig.utmpFile})`,
    set: (o, v) => (o.config.utmpFile = v),
  },
  {
    names: ['system-root'],
    value: 'DIR',
    help: `directory qemu-ga's system commands find /sys and their programs under (default ${defaultConfig.systemRoot})`,
    set: (o, v) => (o.config.systemRoot = v),
  },
  {
    names: ['no-large-reads'],
    help: 'ignore file-read "size" and answer 4096-byte reads, exactly like phoenix-guest-agent 0.7.1',
    set: (o) => (o.config.largeReads = false),
  },
];

export class UsageError extends Error {}

export function parseArgs(argv: string[]): CliOptions {
  const o: CliOptions = { endpoints: [], debug: false, version: false, help: false, config: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--?([a-zA-Z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const spec = FLAGS.find((f) => f.names.includes(m[1]));
    if (!spec) throw new UsageError(`unknown flag ${arg}`);
    let value = m[2];
    if (spec.value && spec.optionalValue) {
      if (value === '') throw new UsageError(`${arg} needs a value after = (or none: ${arg.slice(0, -1)})`);
    } else if (spec.value) {
      if (value === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value (${spec.value})`);
        value = argv[++i];
      }
    } else if (value !== undefined) {
      throw new UsageError(`${arg.split('=')[0]} takes no value`);
    }
    spec.set(o, value ?? '');
  }
  if (o.help) return o; // --help answers whatever else is given
  if (o.protocol !== undefined && o.endpoints.length === 0)
    throw new UsageError('--protocol applies to -p and --listen; the ports found by name speak their own');
  // Alone it would be ignored, and the agent would start serving instead of changing that system.
  if (o.unitRoot !== undefined && o.unit === undefined)
    throw new UsageError('--unit-root goes with --install-unit or --uninstall-unit');
  return o;
}

/** Words into lines of at most `width` characters (a longer word stands alone). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(' ')) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  return [...lines, line];
}

export function usage(): string {
  const lines = FLAGS.map((f) => {
    const value = f.value ? (f.optionalValue ? `[=${f.value}]` : ` ${f.value}`) : '';
    const name = f.names.map((n) => (n.length === 1 ? `-${n}` : `--${n}`)).join(', ') + value;
    return `  ${name.padEnd(28)} ${wrap(f.help, 100 - 31).join(`\n${' '.repeat(31)}`)}`;
  });
  return `Usage: ember-ga [flags]\n\nGuest agent for Linux VMs: phoenix-guest-agent 0.7.1's protocol and qemu-guest-agent 7.2's.\n\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  let opts: CliOptions;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    // One line and a pointer, as ember-ga-ctl's: fifty lines of flags would bury the mistake.
    process.stderr.write(`ember-ga: ${e.message}\n(ember-ga --help lists the flags)\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(usage());
    return 0;
  }
  if (opts.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (opts.unit) {
    const log = (l: string) => process.stdout.write(`${l}\n`);
    try {
      if (opts.unit === 'install') installUnit({ root: opts.unitRoot, log });
      else uninstallUnit({ root: opts.unitRoot, log });
      return 0;
    } catch (e) {
      process.stderr.write(`ember-ga: ${(e as Error).message}\n`);
      return 1;
    }
  }
  // Bounded memory while moving files (docs/FILES.md): every 1 MiB chunk leaves a few MB of
  // short-lived garbage. A young generation kept at its initial size and old-space collections
  // at 10% growth keep RSS low during long transfers for a little CPU.
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  v8.setFlagsFromString('--heap-growing-percent=10');
  // And a young-generation collection every few MB of large lines (lib/memory.ts): the buffers
  // of 1 MiB chunks are memory V8 would otherwise let pile up.
  enableCollections();
  // And malloc's large blocks unmapped when freed, not kept in its heap (lib/memory.ts).
  native.mallocMmapThreshold(MMAP_THRESHOLD);
  // One poll a wait instead of two (native/event_loop.cc): a request at a time, one a request.
  native.stopLoopIdleTime();
  // One holding logger for the transport and the agent: see HoldingLogger (freeze safety).
  const log = new HoldingLogger(stderrLogger(opts.debug));
  const hostGoneMs = opts.hostGoneTimeout === undefined ? undefined : opts.hostGoneTimeout * 1000;
  const portTransport = (p: string, name?: string) => new PortTransport(p, log, { hostGoneMs, name });
  const agent = new Agent({ endpoints: [], commands: allCommands, config: opts.config, log });
  // -p and --listen: each must open, or the agent does not start.
  for (const spec of opts.endpoints) {
    const endpoint: Endpoint =
      spec.kind === 'unix'
        ? { transport: new UnixTransport(spec.path, log), protocol: spec.protocol ?? opts.protocol ?? 'phoenix' }
        : {
            transport: portTransport(spec.path),
            protocol: protocolFor(spec.protocol ?? opts.protocol, spec.path, opts.sysDir),
          };
    try {
      await agent.addEndpoint(endpoint);
    } catch (e) {
      log.error(`cannot serve on ${endpoint.transport.description}: ${(e as Error).message}`);
      await agent.stop();
      return 1;
    }
  }
  // None given: the ports found by name, as they come and go.
  let watcher: PortWatcher | undefined;
  if (opts.endpoints.length === 0) {
    const byPort = new Map<string, Transport>();
    const scan = opts.portScan ?? PORT_SCAN_SECONDS;
    watcher = new PortWatcher(
      { names: Object.keys(KNOWN_PORTS), sysDir: opts.sysDir, devDir: opts.devDir, intervalMs: scan * 1000, log },
      {
        add: async (p) => {
          const transport = portTransport(p.path, p.name);
          await agent.addEndpoint({ transport, protocol: KNOWN_PORTS[p.name] });
          byPort.set(p.entry, transport);
        },
        remove: async (p) => {
          const transport = byPort.get(p.entry);
          byPort.delete(p.entry);
          if (transport) await agent.removeEndpoint(transport);
        },
      },
    );
    await watcher.start();
    if (watcher.ports.length === 0) {
      const names = Object.keys(KNOWN_PORTS).join(' or ');
      const where = opts.sysDir ?? SYS_PORTS_DIR;
      if (scan === 0) {
        log.error(`no virtio-serial port named ${names} to serve under ${where}; use -p PATH`);
        await agent.stop();
        return 1;
      }
      log.info(`no virtio-serial port named ${names} to serve under ${where} yet: looking every ${scan} s`);
    }
  }
  const onSignal = (sig: NodeJS.Signals) => {
    log.info(`${sig}: finishing answers in flight, then exiting`);
    void (watcher?.stop() ?? Promise.resolve()).then(() => agent.stop());
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', (e) => {
    log.error(`fatal: ${e.stack ?? e.message}`);
    void agent.runExitHooks().finally(() => process.exit(1));
  });
  await agent.stopped;
  await watcher?.stop();
  log.info('stopped');
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`ember-ga: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
