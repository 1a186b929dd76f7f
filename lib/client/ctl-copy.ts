// ember-ga-ctl's copies: cp's two ends (a local or guest directory takes the source's name),
// and the runner of cp and cat, with a progress bar and a clean stop on a signal or on EPIPE.
import * as fs from 'fs';
import * as path from 'path';
import type { CopyResult, Transfer } from './copy';
import { S_IFLNK, S_IFMT } from './copy-from';
import { location, usage } from './ctl-args';
import type { GuestAgentError } from './errors';
import * as fmt from './format';
import type { GuestAgent } from './guest-agent';
import { progressBar } from './progress';

/** Signals that stop a copy: its guest handle is closed first, then ember-ga-ctl dies of the signal. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** A copy stopped by a signal, or by its stdout reader going away (SIGPIPE), once cleaned up. */
export class Stopped extends Error {
  constructor(
    readonly signal: NodeJS.Signals,
    readonly failure: unknown,
  ) {
    super(`stopped by ${signal}`);
  }
}

/** Ends the process by `signal`'s default action, as a shell reports it (128 + its number). */
export function dieOf(signal: NodeJS.Signals): void {
  // A listener added and removed leaves the default action in place (Node ignores SIGPIPE).
  const none = () => {};
  process.on(signal, none);
  process.off(signal, none);
  process.kill(process.pid, signal);
}

/** Set once stdout's reader went away (`| head`): process.stdout says EPIPE only as an 'error' event. */
let stdoutGone = false;
/** A copy is running: it stops itself on EPIPE (its guest handle closed first), then dies. */
let copying = false;

/**
 * Watches stdout for its reader going away (`ember-ga-ctl ls / | head -1`): ember-ga-ctl then
 * dies of SIGPIPE without a word, as a C program does (Node ignores SIGPIPE and reports an
 * 'error' event instead, which unheard crashes with "write EPIPE"). A copy under way is left to
 * stop cleanly first (runCopy). Other stdout errors are `onOther`'s.
 */
export function watchStdout(onOther: (e: Error) => void): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') return onOther(e);
    stdoutGone = true;
    if (!copying) dieOf('SIGPIPE');
  });
}

/**
 * The warning for an upload written in place because the agent refused its atomic open, or
 * undefined where in place is the only way to write the target: a device, a FIFO or a
 * bind-mounted file (EINVAL).
 */
function inPlaceWarning(target: string, refusal: GuestAgentError): string | undefined {
  if (refusal.code === 'EINVAL') return undefined;
  const why = refusal.message.replace(/; without atomic the file is written in place$/, '');
  return `ember-ga-ctl: warning: ${fmt.escaped(target)} written in place, not atomically: ${fmt.escaped(why)}\n`;
}

/**
 * Runs a copy with a progress bar on a terminal. SIGINT, SIGTERM and SIGHUP stop it cleanly (its
 * guest handle closed; a second one stops at once), and so does EPIPE on stdout; the copy then
 * rejects with Stopped. `warnings`: an upload written in place instead of atomically says so on
 * stderr once it ends, whether or not it succeeded (--json has the result's `atomic` instead).
 */
export async function runCopy(
  start: (signal: AbortSignal) => Transfer,
  label: string,
  opts: { progress: boolean; warnings?: { target: string } },
): Promise<CopyResult> {
  const ac = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const stopListening = () => {
    for (const s of STOP_SIGNALS) process.off(s, onSig);
  };
  const onSig = (sig: NodeJS.Signals) => {
    if (caught) {
      stopListening();
      dieOf(sig);
    }
    caught = sig;
    ac.abort();
  };
  for (const s of STOP_SIGNALS) process.on(s, onSig);
  copying = true;
  const bar = opts.progress && process.stderr.isTTY ? progressBar(label, process.stderr) : undefined;
  const started = Date.now();
  const t = start(ac.signal);
  if (bar) t.on('progress', (p) => bar.update(p));
  let warning: string | undefined;
  const warnings = opts.warnings;
  if (warnings) t.on('inPlace', (e: GuestAgentError) => (warning = inPlaceWarning(warnings.target, e)));
  // After the bar, which a line in its midst would break.
  const warn = () => {
    bar?.stop();
    if (warning) process.stderr.write(warning);
  };
  try {
    const r = await t;
    warn();
    if (process.stderr.isTTY && opts.progress) {
      const s = (Date.now() - started) / 1000;
      process.stderr.write(
        `${label}: ${fmt.bytes(r.bytes)} in ${s.toFixed(1)} s (${fmt.bytes(r.bytes / Math.max(s, 0.001))}/s)${r.verified ? ', md5 verified' : ''}\n`,
      );
    }
    return r;
  } catch (e) {
    warn();
    if (caught) throw new Stopped(caught, e);
    if (stdoutGone) throw new Stopped('SIGPIPE', e);
    throw e;
  } finally {
    copying = false;
    stopListening();
  }
}

/** cp's options, as commander hands them over. */
export interface CpOptions {
  perm?: number;
  force?: boolean;
  keepPartial?: boolean;
  inPlace?: boolean;
  verify: boolean;
  progress: boolean;
  chunkSize?: number;
  /** -w in ms when given (not commander's: ember-ga-ctl's global). */
  finishTimeout?: number;
}

/**
 * cp SRC DST: one of them a guest path, the other a local path or - (stdin, stdout). `json`: the
 * result is printed as JSON, and its `atomic` says what a warning would.
 */
export async function cp(
  ga: GuestAgent,
  srcArg: string,
  dstArg: string,
  o: CpOptions,
  json = false,
): Promise<CopyResult> {
  const src = location(srcArg);
  const dst = location(dstArg);
  const common = { verify: o.verify, chunkSize: o.chunkSize, finishTimeout: o.finishTimeout };
  let r: CopyResult;
  if ('guest' in src && !('guest' in dst)) {
    let dest: string | NodeJS.WritableStream = process.stdout;
    if ('local' in dst) {
      dest = dst.local;
      if (fs.statSync(dest, { throwIfNoEntry: false })?.isDirectory())
        dest = path.join(dest, path.posix.basename(src.guest));
    }
    const to = dest as string;
    r = await runCopy(
      (signal) =>
        ga.copyFrom(src.guest, to, {
          ...common,
          signal,
          keepPartial: o.keepPartial,
          end: typeof to === 'string',
        }),
      path.posix.basename(src.guest),
      { progress: o.progress },
    );
  } else if ('guest' in dst && !('guest' in src)) {
    let target = dst.guest;
    const name = 'local' in src ? path.basename(src.local) : undefined;
    if (target.endsWith('/') || (await isGuestDir(ga, target))) {
      if (!name) usage('copying stdin into a guest directory: name the guest file');
      target = path.posix.join(target, name);
    }
    const input = 'local' in src ? src.local : process.stdin;
    r = await runCopy(
      (signal) =>
        ga.copyTo(input, target, {
          ...common,
          signal,
          perm: o.perm,
          force: o.force,
          atomic: o.inPlace ? false : undefined,
        }),
      name ?? path.posix.basename(target),
      { progress: o.progress, warnings: json ? undefined : { target: `guest:${target}` } },
    );
  } else {
    usage('one of SRC and DST must be a guest path (guest:/path), the other local or -');
  }
  return r;
}

/**
 * Whether a guest path is a directory, through a symbolic link as cp(1) takes it: file-stat is
 * lstat, and a link's "PATH/." resolves it.
 */
async function isGuestDir(ga: GuestAgent, target: string): Promise<boolean> {
  const st = await ga.statFile(target).catch(() => undefined);
  if (!st) return false;
  if (st.isdir) return true;
  if ((st.stat.Mode & S_IFMT) !== S_IFLNK) return false;
  return ga.statFile(`${target}/.`).then(
    (s) => s.isdir,
    () => false,
  );
}
