// A fake system for lib/system's actions (and ember-ga's --system-root): a temporary directory
// with sysfs files and stub programs that record how they were run. Nothing the actions do with
// it touches the machine the test runs on.
import * as fs from 'fs';
import * as path from 'path';
import { tmpDir } from './agent';

export interface StubOptions {
  /** Exit status (default 0). */
  exit?: number;
  /** Kill itself with SIGKILL instead of exiting. */
  killed?: boolean;
  /** Record its standard input (as "NAME stdin BASE64"). */
  stdin?: boolean;
}

export class SystemFixture {
  readonly root = tmpDir('ember-ga-system-');
  private readonly log = path.join(this.root, 'calls.log');

  /** The fixture's path for a system path ("/sys/power/state"). */
  at(file: string): string {
    return path.join(this.root, file);
  }

  /** Writes a file of the fixture (its directories made). */
  write(file: string, contents: string): void {
    fs.mkdirSync(path.dirname(this.at(file)), { recursive: true });
    fs.writeFileSync(this.at(file), contents);
  }

  read(file: string): string {
    return fs.readFileSync(this.at(file), 'utf8');
  }

  mkdir(dir: string): void {
    fs.mkdirSync(this.at(dir), { recursive: true });
  }

  /**
   * A stub program at `file` ("/sbin/shutdown", "/usr/bin/systemctl"): it appends "NAME [arg]
   * [arg]..." to the call log, then exits as told.
   */
  stub(file: string, opts: StubOptions = {}): void {
    const log = JSON.stringify(this.log);
    const script = [
      '#!/bin/sh',
      'n=$(basename "$0")',
      'line="$n"',
      'for a in "$@"; do line="$line [$a]"; done',
      `printf '%s\\n' "$line" >> ${log}`,
      opts.stdin ? `printf '%s stdin %s\\n' "$n" "$(base64 -w0)" >> ${log}` : '',
      opts.killed ? 'kill -KILL $$' : `exit ${opts.exit ?? 0}`,
      '',
    ].join('\n');
    this.write(file, script);
    fs.chmodSync(this.at(file), 0o755);
  }

  /** The calls recorded so far, one line each. */
  calls(): string[] {
    try {
      return fs.readFileSync(this.log, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  clearCalls(): void {
    fs.rmSync(this.log, { force: true });
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
