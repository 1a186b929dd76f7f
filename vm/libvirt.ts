// libvirt for `npm run test:vm`: Debian's libvirtd and virtlogd, started by the test in a mount
// namespace of their own, where private directories stand in for /etc/libvirt, /run/libvirt,
// /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt, /etc/passwd and /etc/group. So the
// machine's own configuration is never read or written (the daemons' config, qemu.conf with
// user/group root and no security driver, the libvirt-qemu user libvirt insists on), and
// nothing is left behind but the capabilities cache under the test's cache dir. virsh reaches
// the daemon through its socket in the private run dir. A transient domain (virsh create)
// boots the test image by direct kernel boot under TCG, with a channel for each port.
//
// Every process is stopped by its pid on every way out: the domain destroyed, its QEMU killed
// if libvirt did not, then libvirtd and virtlogd.
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { Image } from './guest';

/** The mount points the daemons see privately, and the private dir's name for each. */
const PRIVATE: [string, string][] = [
  ['/etc/libvirt', 'etc'],
  ['/run/libvirt', 'run'],
  ['/var/lib/libvirt', 'lib'],
  ['/var/cache/libvirt', 'cache'],
  ['/var/log/libvirt', 'log'],
];

const LIBVIRTD_CONF = `# ember-ga test:vm: the socket for root only, no polkit (there is no D-Bus here)
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`;
// No cgroups, no per-domain mount namespace, no ownership xattrs: none of them is needed for a
// guest run as root, and the machines this runs on may lack what they need.
const QEMU_CONF = `# ember-ga test:vm
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
remember_owner = 0
`;
const VIRTLOGD_CONF = `log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
`;

export interface DomainSpec {
  name: string;
  image: Image;
  disk: string;
  /** The kernel command line. */
  cmdline: string;
  /** The unix socket of the org.guest-agent.0 channel (libvirt picks the qemu-ga channel's). */
  phoenixSocket: string;
  consoleLog: string;
  memMiB?: number;
  vcpus?: number;
}

export interface VirshResult {
  code: number | null;
  out: string;
  err: string;
}

const esc = (s: string) =>
  s.replace(/[&<>'"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', "'": '&apos;', '"': '&quot;' })[c]!);

/**
 * The domain: TCG, direct kernel boot, the disk (discards reach the image), both channels, the
 * console to a file, ACPI (power-off, suspend to RAM); no graphics.
 */
export function domainXml(d: DomainSpec): string {
  return `<domain type='qemu'>
  <name>${esc(d.name)}</name>
  <memory unit='MiB'>${d.memMiB ?? 512}</memory>
  <vcpu>${d.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${esc(d.image.kernel)}</kernel>
    <initrd>${esc(d.image.initrd)}</initrd>
    <cmdline>${esc(d.cmdline)}</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='maximum'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled='yes'/>
    <suspend-to-disk enabled='no'/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' discard='unmap'/>
      <source file='${esc(d.disk)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <controller type='virtio-serial' index='0'/>
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='${esc(d.phoenixSocket)}'/>
      <target type='virtio' name='org.guest-agent.0'/>
    </channel>
    <serial type='file'>
      <source path='${esc(d.consoleLog)}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Every daemon set still running; stopped (SIGKILL) on any exit path of the host process. */
const live = new Set<Libvirt>();

export class Libvirt {
  readonly uri: string;
  private readonly proc: ChildProcess;
  private readonly created: string[];
  private readonly domains = new Set<string>();
  private exited = false;

  private constructor(
    readonly dir: string,
    proc: ChildProcess,
    created: string[],
  ) {
    this.proc = proc;
    this.created = created;
    this.uri = `qemu:///system?socket=${path.join(dir, 'run', 'libvirt-sock')}`;
    proc.once('exit', () => (this.exited = true));
    live.add(this);
  }

  /**
   * Starts virtlogd and libvirtd in their own mount namespace, their private dirs under `dir`
   * (the capabilities cache in `cacheDir`, kept between runs: probing QEMU takes ~10 s), and
   * waits until virsh gets an answer.
   */
  static async start(dir: string, cacheDir: string, timeoutMs: number): Promise<Libvirt> {
    for (const [, name] of PRIVATE) if (name !== 'cache') fs.mkdirSync(path.join(dir, name), { recursive: true });
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'etc', 'libvirtd.conf'), LIBVIRTD_CONF);
    fs.writeFileSync(path.join(dir, 'etc', 'qemu.conf'), QEMU_CONF);
    fs.writeFileSync(path.join(dir, 'etc', 'virtlogd.conf'), VIRTLOGD_CONF);
    // libvirt looks up the libvirt-qemu user and group (its built-in defaults) even when
    // qemu.conf says root: the namespace's passwd and group have them, the machine's stay as they are.
    const withLine = (file: string, name: string, line: string) => {
      const text = fs.readFileSync(file, 'utf8');
      return text.split('\n').some((l) => l.startsWith(`${name}:`)) ? text : `${text.replace(/\n?$/, '\n')}${line}\n`;
    };
    fs.writeFileSync(
      path.join(dir, 'passwd'),
      withLine('/etc/passwd', 'libvirt-qemu', 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin'),
    );
    fs.writeFileSync(path.join(dir, 'group'), withLine('/etc/group', 'libvirt-qemu', 'libvirt-qemu:x:64055:'));
    // Mount points that do not exist on this machine are made for the time of the run (empty:
    // nothing outside the namespace ever writes there) and removed after.
    const created: string[] = [];
    for (const [target] of PRIVATE) {
      if (fs.existsSync(target)) continue;
      fs.mkdirSync(target, { recursive: true });
      created.push(target);
    }
    const source = (name: string) => (name === 'cache' ? cacheDir : path.join(dir, name));
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      'set -e',
      ...PRIVATE.map(([target, name]) => `mount --bind ${q(source(name))} ${target}`),
      `mount --bind ${q(path.join(dir, 'passwd'))} /etc/passwd`,
      `mount --bind ${q(path.join(dir, 'group'))} /etc/group`,
      'virtlogd --daemon --pid-file /run/libvirt/virtlogd.pid',
      'exec libvirtd --pid-file /run/libvirt/libvirtd.pid',
    ].join('\n');
    const out = fs.openSync(path.join(dir, 'log', 'daemons.out'), 'a');
    // unshare execs sh, which execs libvirtd: the child's pid is libvirtd's.
    const proc = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    const lv = new Libvirt(dir, proc, created);
    proc.once('error', () => (lv.exited = true));
    try {
      const end = Date.now() + timeoutMs;
      for (;;) {
        if (lv.exited) throw new Error(`libvirtd exited:\n${lv.logTail()}`);
        if (fs.existsSync(path.join(dir, 'run', 'libvirt-sock'))) {
          const r = await lv.virsh(['version'], Math.max(1000, end - Date.now()));
          if (r.code === 0) return lv;
          if (Date.now() > end) throw new Error(`virsh version: ${r.err || r.out}`);
        }
        if (Date.now() > end) throw new Error(`libvirtd made no socket within ${timeoutMs} ms:\n${lv.logTail()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (e) {
      await lv.stop();
      throw e;
    }
  }

  /** virsh ARGS against this libvirtd; killed after `ms`. */
  virsh(args: string[], ms = 60_000): Promise<VirshResult> {
    return new Promise((resolve) => {
      // Not -q: it also silences what some commands answer ("Froze 1 filesystem(s)").
      const p = spawn('virsh', ['-c', this.uri, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      p.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const t = setTimeout(() => {
        err += `\n(virsh killed after ${ms} ms)`;
        p.kill('SIGKILL');
      }, ms);
      p.once('error', (e) => {
        clearTimeout(t);
        resolve({ code: -1, out, err: `cannot run virsh: ${e.message}` });
      });
      p.once('close', (code) => {
        clearTimeout(t);
        resolve({ code, out, err: err.trim() });
      });
    });
  }

  /** virsh ARGS that must succeed: its stdout. */
  async ok(args: string[], ms?: number): Promise<string> {
    const r = await this.virsh(args, ms);
    if (r.code !== 0) throw new Error(`virsh ${args.join(' ')}: exit ${r.code}: ${r.err || r.out}`);
    return r.out;
  }

  /** Creates and starts a transient domain. */
  async create(d: DomainSpec): Promise<void> {
    const xml = path.join(this.dir, `${d.name}.xml`);
    fs.writeFileSync(xml, domainXml(d));
    this.domains.add(d.name);
    await this.ok(['create', xml], 120_000);
  }

  /** QEMU's pid for a domain libvirt started (its pid file in the private run dir). */
  qemuPid(name: string): number | undefined {
    try {
      return Number(fs.readFileSync(path.join(this.dir, 'run', 'qemu', `${name}.pid`), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  }

  /** The last lines of libvirtd's and the domain QEMU's logs, for a failure report. */
  logTail(n = 2500): string {
    const read = (f: string) => {
      try {
        const t = fs.readFileSync(f, 'utf8');
        return t.length > n ? t.slice(-n) : t;
      } catch {
        return '';
      }
    };
    const parts = [
      ['daemons.out', path.join(this.dir, 'log', 'daemons.out')],
      ['libvirtd.log', path.join(this.dir, 'log', 'libvirtd.log')],
      ...[...this.domains].map((d) => [`qemu/${d}.log`, path.join(this.dir, 'log', 'qemu', `${d}.log`)]),
    ];
    return parts
      .map(([name, f]) => [name, read(f)])
      .filter(([, t]) => t)
      .map(([name, t]) => `--- ${name} ---\n${t}`)
      .join('\n');
  }

  private pidOf(file: string): number | undefined {
    try {
      return Number(fs.readFileSync(path.join(this.dir, 'run', file), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  }

  /** Destroys the domains, stops libvirtd and virtlogd, removes the mount points made for them. */
  async stop(): Promise<void> {
    if (!this.exited) for (const d of this.domains) await this.virsh(['destroy', d], 20_000);
    const qemus = [...this.domains].map((d) => this.qemuPid(d));
    const virtlogd = this.pidOf('virtlogd.pid');
    if (!this.exited) {
      this.proc.kill('SIGTERM');
      const end = Date.now() + 10_000;
      while (!this.exited && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    }
    this.killAll([...qemus, virtlogd]);
    live.delete(this);
  }

  /** SIGKILL to whatever is left (libvirtd, QEMU, virtlogd), and the mount points removed. */
  private killAll(pids: (number | undefined)[]): void {
    if (!this.exited) pids.push(this.proc.pid);
    for (const pid of pids) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const d of this.created.splice(0).reverse()) {
      try {
        fs.rmdirSync(d);
      } catch {
        // not empty after all, or gone: leave it
      }
    }
  }

  /** The synchronous last resort, for the host process's exit. */
  static killAllNow(): void {
    for (const lv of [...live]) {
      lv.killAll([...[...lv.domains].map((d) => lv.qemuPid(d)), lv.pidOf('virtlogd.pid')]);
      live.delete(lv);
    }
  }
}

process.on('exit', () => Libvirt.killAllNow());

/** Whether the host has what the libvirt checks need (build-image.sh installs it). */
export function libvirtMissing(): string | undefined {
  for (const c of ['libvirtd', 'virtlogd', 'virsh', 'unshare']) {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
    } catch {
      return `no ${c} on PATH`;
    }
  }
  return undefined;
}
