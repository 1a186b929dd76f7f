// Runs scripts/freeze-guard.js, the project's safety net for freeze tests, as a process of its
// own (a test process can block behind a frozen filesystem; the guard must not). It FITHAWs this
// machine's own filesystems every 200 ms, and its report says whether it ever had to.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { REPO } from './agent';

export const FREEZE_GUARD = path.join(REPO, 'scripts', 'freeze-guard.js');

export interface GuardReport {
  guarded: string[];
  thawed: { mountpoint: string; at: number }[];
}

export interface GuardResult {
  code: number | null;
  report: GuardReport;
}

export interface RunningGuard {
  proc: ChildProcess;
  /** Resolves with the exit code once the guard has exited. */
  exited: Promise<number | null>;
  /** What the guard wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM (unless it already exited), then its exit code and report. */
  stop(): Promise<GuardResult>;
}

export interface GuardOptions {
  /** Where the guard writes its report. */
  report: string;
  maxSeconds?: number;
  interval?: number;
  /** A fixture mount table instead of /proc/self/mounts (only the guard's own test). */
  mountsFile?: string;
  /** Keep its stderr to stderr() only (its own test, where a thaw is what is tested). */
  quiet?: boolean;
}

/** Starts the guard and resolves once it is watching (its "guarding" line on stderr). */
export async function startFreezeGuard(opts: GuardOptions): Promise<RunningGuard> {
  const args = [FREEZE_GUARD, '--report', opts.report, '--max-seconds', String(opts.maxSeconds ?? 600)];
  if (opts.interval !== undefined) args.push('--interval', String(opts.interval));
  if (opts.mountsFile !== undefined) args.push('--mounts-file', opts.mountsFile);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const exited = new Promise<number | null>((r) => {
    proc.once('exit', (code) => r(code));
    proc.once('error', (e) => {
      err += `cannot run freeze-guard: ${e.message}\n`;
      r(-1);
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`freeze-guard did not start within 10 s: ${err}`)), 10_000);
    proc.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      err += text;
      // Its other lines belong in the test's output: a thaw means a test froze this machine.
      const rest = text.replace(/^freeze-guard: guarding .*\n/m, '');
      if (rest && !opts.quiet) process.stderr.write(rest);
      if (err.includes('freeze-guard: guarding')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`freeze-guard exited (${code}) before it was watching: ${err}`));
    });
  });
  await ready;
  return {
    proc,
    exited,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const code = await exited;
      return { code, report: JSON.parse(fs.readFileSync(opts.report, 'utf8')) as GuardReport };
    },
  };
}
