// `ember-ga --install-unit` / `--uninstall-unit`: the systemd unit and udev rule of the package,
// installed with ExecStart naming this node and this package's cli.js by absolute path. A unit
// that runs `/usr/bin/env ember-ga` depends on systemd's PATH: a bin outside it restarts forever,
// and its journal lines are tagged "env".
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const UNIT = 'ember-ga.service';
const RULE = '60-ember-ga.rules';
const SHIPPED = path.resolve(__dirname, '..', '..', 'systemd');

export interface UnitOptions {
  /** The system to install into ('/' by default; another root for an image being built). */
  root?: string;
  /** Lines of progress. */
  log?: (line: string) => void;
}

/** The shipped unit with ExecStart pointing at this node and this cli.js. */
export function unitText(): string {
  const text = fs.readFileSync(path.join(SHIPPED, UNIT), 'utf8');
  const exec = `ExecStart=${quoteArg(process.execPath)} ${quoteArg(path.join(__dirname, 'cli.js'))}`;
  if (!/^ExecStart=.*$/m.test(text)) throw new Error(`${UNIT} has no ExecStart line`);
  return text.replace(/^ExecStart=.*$/m, exec);
}

/** A word of an ExecStart= line: quoted when it has a space or a quote (systemd.service(5)). */
function quoteArg(s: string): string {
  return /^[\w/.@+:=-]+$/.test(s) ? s : `"${s.replace(/(["\\])/g, '\\$1')}"`;
}

function systemctl(root: string, args: string[], log: (l: string) => void): void {
  const argv = root === '/' ? args : ['--root', root, ...args];
  const r = spawnSync('systemctl', argv, { encoding: 'utf8' });
  if (r.error) throw new Error(`systemctl ${argv.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`systemctl ${argv.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
  log(`systemctl ${argv.join(' ')}`);
}

function unitDir(root: string): string {
  return path.join(root, 'etc', 'systemd', 'system');
}

function ruleDir(root: string): string {
  return path.join(root, 'etc', 'udev', 'rules.d');
}

/** Writes the unit and the rule, enables the unit; on the running system also reloads and starts it when a port exists. */
export function installUnit(opts: UnitOptions = {}): void {
  const root = path.resolve(opts.root ?? '/');
  const log = opts.log ?? (() => {});
  fs.mkdirSync(unitDir(root), { recursive: true });
  fs.mkdirSync(ruleDir(root), { recursive: true });
  fs.writeFileSync(path.join(unitDir(root), UNIT), unitText());
  log(`wrote ${path.join(unitDir(root), UNIT)}`);
  fs.copyFileSync(path.join(SHIPPED, RULE), path.join(ruleDir(root), RULE));
  log(`wrote ${path.join(ruleDir(root), RULE)}`);
  if (root === '/') {
    systemctl(root, ['daemon-reload'], log);
    spawnSync('udevadm', ['control', '--reload'], { stdio: 'ignore' });
  }
  systemctl(root, ['enable', UNIT], log);
  const ports = ['org.guest-agent.0', 'org.qemu.guest_agent.0'].filter((p) =>
    fs.existsSync(path.join(root, 'dev', 'virtio-ports', p)),
  );
  if (root === '/' && ports.length > 0) systemctl(root, ['start', UNIT], log);
}

/** Stops and disables the unit and removes it and the rule (what installUnit wrote). */
export function uninstallUnit(opts: UnitOptions = {}): void {
  const root = path.resolve(opts.root ?? '/');
  const log = opts.log ?? (() => {});
  const unit = path.join(unitDir(root), UNIT);
  if (fs.existsSync(unit)) systemctl(root, root === '/' ? ['disable', '--now', UNIT] : ['disable', UNIT], log);
  for (const f of [unit, path.join(ruleDir(root), RULE)]) {
    if (fs.existsSync(f)) {
      fs.rmSync(f);
      log(`removed ${f}`);
    }
  }
  if (root === '/') {
    systemctl(root, ['daemon-reload'], log);
    spawnSync('udevadm', ['control', '--reload'], { stdio: 'ignore' });
  }
}
