// ember-ga-ctl's qemu-ga pieces: what `info` gathers, the `qmp` passthrough, `exec`'s options
// and its --json shape.
import * as fs from 'fs';
import type { GuestAgent } from './guest-agent';
import type { ExecOptions } from './qemu-ga-commands';
import type { ExecResult } from './qemu-ga-types';
import type { QmpAnswer } from './qmp-connection';
import type { QgaSystem } from './format';
import { jsonRequest, usage } from './ctl-args';

/** info over qemu-ga: each part from its command, where guest-info says it is enabled. */
export async function gatherSystem(ga: GuestAgent): Promise<QgaSystem> {
  const info = await ga.qga.info();
  const on = new Set(info.supported_commands.filter((c) => c.enabled).map((c) => c.name));
  const part = <T>(name: string, get: () => Promise<T>) => (on.has(name) ? get() : Promise.resolve(undefined));
  const [hostName, osinfo, time, timezone, users] = await Promise.all([
    part('guest-get-host-name', () => ga.qga.hostName()),
    part('guest-get-osinfo', () => ga.qga.osInfo()),
    part('guest-get-time', () => ga.qga.time()),
    part('guest-get-timezone', () => ga.qga.timezone()),
    part('guest-get-users', () => ga.qga.users()),
  ]);
  const s: QgaSystem = { commands: { enabled: on.size, listed: info.supported_commands.length } };
  if (hostName !== undefined) s['host-name'] = hostName;
  if (osinfo !== undefined) s.osinfo = osinfo;
  if (time !== undefined) s.time = time;
  if (timezone !== undefined) s.timezone = timezone;
  if (users !== undefined) s.users = users;
  return s;
}

/** qmp JSON: the request as given (its own "id" echoed back), the whole answer. */
export async function sendQmp(ga: GuestAgent, text: string): Promise<QmpAnswer> {
  if (ga.protocol !== 'qemu-ga') usage('qmp speaks qemu-ga: add --protocol qemu-ga');
  const req = jsonRequest('qmp', text);
  const args = req.arguments === undefined ? undefined : (req.arguments as Record<string, unknown>); // the agent judges it
  const answer = await ga.qmp(req.execute, args);
  return 'id' in req ? { ...answer, id: req.id } : answer;
}

/** exec's options, as commander hands them over. */
export interface ExecFlags {
  env?: string[];
  input?: string;
  capture: boolean;
  timeout?: number;
}

export async function execOptions(o: ExecFlags): Promise<ExecOptions> {
  const opts: ExecOptions = { capture: o.capture };
  if (o.env !== undefined) {
    for (const e of o.env) if (!/^[^=]+=/.test(e)) usage(`--env takes NAME=VALUE, got ${JSON.stringify(e)}`);
    opts.env = o.env;
  }
  if (o.input !== undefined)
    opts.input = o.input === '-' ? await readAll(process.stdin) : await fs.promises.readFile(o.input);
  if (o.timeout !== undefined) opts.timeout = o.timeout * 1000;
  return opts;
}

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of s) parts.push(typeof p === 'string' ? Buffer.from(p) : p);
  return Buffer.concat(parts);
}

/** exec --json: the output base64, as qemu-ga sends it; exitcode or signal null where it does not apply. */
export function execJson(r: ExecResult): Record<string, unknown> {
  return {
    pid: r.pid,
    exitcode: r.exitcode ?? null,
    signal: r.signal ?? null,
    stdout: r.stdout.toString('base64'),
    stderr: r.stderr.toString('base64'),
    'stdout-truncated': r.stdoutTruncated,
    'stderr-truncated': r.stderrTruncated,
  };
}
