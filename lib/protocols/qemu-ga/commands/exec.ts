// guest-exec and guest-exec-status (qga/commands.c), on lib/exec: one table of the agent's
// processes, whichever host started them, with qemu-ga's answers and errors. The table is
// bounded (lib/exec/table.ts; docs/QEMU-GA.md "Exec").
import type { Context } from '../../../context';
import { ExecLimitError, ExecTable, type ExecStatus } from '../../../exec';
import { SystemError, toSystemError } from '../../../errors';
import { defineQgaCommand, QgaError } from '../schema';
import { strerror } from '../dispatcher';
import { qdictOrder, qemuBytes } from '../json';
import { LARGE_ANSWER, type AnswerHold } from '../../../large-answers';
import { collectAll } from '../../../memory';
import { native } from '../../../native';
import { RawJson } from '../../../wire/answer';
import { roomFor } from '../../output-gate';

const tables = new WeakMap<Context, ExecTable>();

/** Captured bytes from which a status is worth a full garbage collection before it is made. */
const LARGE_STATUS = 4 * 1024 * 1024;
/** A status's JSON beside its output's base64, with room to spare. */
const STATUS_JSON = 256;

/** The agent's process table, made with its budgets on first use. */
function tableOf(ctx: Context): ExecTable {
  let t = tables.get(ctx);
  if (!t) {
    t = new ExecTable(
      {
        maxProcesses: ctx.config.execMaxProcesses,
        maxOutput: ctx.config.execMaxOutput,
        maxHeldOutput: ctx.config.execMaxHeldOutput,
      },
      (pid) => ctx.log.warn(`guest-exec: forgot process ${pid}'s status, never collected, to make room`),
    );
    tables.set(ctx, t);
  }
  return t;
}

/** glib's g_spawn error texts, as qemu-ga wraps them. */
function spawnError(path: string, e: unknown): QgaError {
  const failed = (why: string) => new QgaError(`Guest agent command failed, error was '${why}'`);
  if (e instanceof ExecLimitError) return failed(e.message);
  const err = toSystemError(e);
  if (!(err instanceof SystemError)) throw e;
  const text = strerror(err.errno);
  switch (err.syscall) {
    case 'execve':
      return failed(`Failed to execute child process \u201c${path}\u201d (${text})`);
    case 'fork':
      return failed(`Failed to fork (${text})`);
    case 'pipe2':
      return failed(`Failed to create pipe for communicating with child process (${text})`);
    case 'dup2':
      return failed(`Failed to redirect output or input of child process (${text})`);
    default:
      return failed(`Failed to open file \u201c/dev/null\u201d (${text})`);
  }
}

/**
 * guest-exec-status's answer: exitcode or signal, and each output stream written to, with its
 * flag. With output, JSON text made here in pieces (each stream's base64 a piece per block of it):
 * two 16 MiB streams never exist as one string, nor as one buffer.
 */
function statusAnswer(s: ExecStatus): Record<string, unknown> | RawJson {
  if (!s.exited) return { exited: false };
  const fields: Record<string, string | (string | Buffer)[]> = { exited: 'true' };
  if (s.exitCode !== undefined) fields.exitcode = String(s.exitCode);
  else if (s.signal !== undefined) fields.signal = String(s.signal);
  // qemu-ga reports a stream only when it kept some of it; ember-ga also when the shared budget
  // left it nothing to keep, so that the loss shows (out-truncated without out-data).
  for (const [name, out] of [
    ['out', s.stdout],
    ['err', s.stderr],
  ] as const) {
    if (out.length === 0 && !out.truncated) continue;
    if (out.length > 0) fields[`${name}-data`] = ['"', ...out.pieces.map((p) => native.base64(p, p.length)), '"'];
    fields[`${name}-truncated`] = String(out.truncated);
  }
  const parts: (string | Buffer)[] = ['{'];
  for (const [i, k] of qdictOrder(Object.keys(fields)).entries()) {
    parts.push(`${i ? ', ' : ''}"${k}": `);
    const v = fields[k];
    if (typeof v === 'string') parts.push(v);
    else parts.push(...v);
  }
  parts.push('}');
  return new RawJson(parts);
}

export const execCommands = [
  defineQgaCommand({
    name: 'guest-exec-status',
    doc: "A process's state: `{exited: false}` while it runs; once it has ended and closed its output, its exit code or signal and captured output, after which its pid is forgotten.",
    args: { pid: { type: 'int', doc: 'What guest-exec answered.' } },
    handler: async (a, ctx, call) => {
      const table = tableOf(ctx);
      const p = table.find(a.pid);
      if (!p) throw new QgaError("Invalid parameter 'pid'");
      let hold: AnswerHold | undefined;
      if (p.finished && p.held > 0) {
        // Up to two 16 MiB streams as base64: wait, as file reads do, until the host has taken
        // what is queued for it (the status stays in the table meanwhile).
        // Its host gone, the status stays for the next one to collect.
        if (!(await roomFor(ctx, call))) throw new QgaError('the host that asked is gone');
        // A large answer, made within the agent's budget of them when it has room now; never a
        // wait for it (the session's later requests would wait behind), so past it as before.
        const bytes = Math.ceil(p.held / 3) * 4 + STATUS_JSON;
        if (bytes > LARGE_ANSWER) hold = ctx.largeAnswerNow(call, bytes);
        // And let the last large status's buffers go first (see collectAll).
        if (p.held >= LARGE_STATUS) collectAll();
      }
      try {
        const s = table.collect(a.pid);
        if (!s) throw new QgaError("Invalid parameter 'pid'"); // collected by another host meanwhile
        const answer = statusAnswer(s);
        if (s.exited) ctx.holdOutput(Math.ceil((s.stdout.length + s.stderr.length) / 3) * 4, call);
        if (hold && answer instanceof RawJson) return hold.keep(answer);
        hold?.release();
        return answer;
      } catch (e) {
        hold?.release();
        throw e;
      }
    },
  }),
  defineQgaCommand({
    name: 'guest-exec',
    doc: "Starts a program, searched in PATH when it has no '/': its pid. Its stdin gets `input-data`, then end of file; its stdout and stderr are kept for guest-exec-status with `capture-output` (16 MiB each), else discarded.",
    args: {
      path: { type: 'str', doc: 'The program; also its argv[0].' },
      arg: { type: { array: 'str' }, optional: true, doc: 'Its arguments.' },
      env: { type: { array: 'str' }, optional: true, doc: 'Its whole environment, NAME=value entries.' },
      // Decoded as the request arrives (the framer's), not parsed into a string of up to 16 MiB
      // and decoded after: an 11 MiB input-data cost the agent ~85 MiB of RSS that way.
      'input-data': { type: 'base64', optional: true, doc: 'Its stdin, base64.' },
      'capture-output': { type: 'bool', optional: true, doc: 'Keep its stdout and stderr.' },
    },
    handler: async (a, ctx) => {
      const input = a['input-data'];
      if (input === null) throw new QgaError('Base64 data contains invalid characters');
      // qemu's bytes: a NUL is 0xC0 0x80, no end of the string ("/bin/sh\u0000" is no /bin/sh).
      try {
        const p = await tableOf(ctx).start(qemuBytes(a.path), {
          args: a.arg?.map(qemuBytes),
          env: a.env?.map(qemuBytes),
          input, // copied by exec() before it awaits anything: the framer reuses these bytes
          capture: a['capture-output'] === true,
        });
        return { pid: p.pid };
      } catch (e) {
        throw spawnError(a.path, e);
      }
    },
  }),
];
