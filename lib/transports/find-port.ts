// Where the virtio-serial ports are: found by name under /sys/class/virtio-ports (minimal images
// without udev have only /dev/vportNpM), at udev's /dev/virtio-ports/NAME symlink when it exists.
import * as fs from 'fs';
import * as path from 'path';
import type { ProtocolName } from '../protocols/protocol';

/** The port phoenix hosts open. */
export const PORT_NAME = 'org.guest-agent.0';
/** The port qemu-ga's hosts (libvirt, Proxmox, OpenStack) open. */
export const QGA_PORT_NAME = 'org.qemu.guest_agent.0';
export const DEFAULT_PORT = `/dev/virtio-ports/${PORT_NAME}`;
export const SYS_PORTS_DIR = '/sys/class/virtio-ports';

/** The ports the agent serves when none is given, and the protocol each one's hosts speak. */
export const KNOWN_PORTS: Readonly<Record<string, ProtocolName>> = {
  [PORT_NAME]: 'phoenix',
  [QGA_PORT_NAME]: 'qemu-ga',
};

export interface FoundPort {
  /** The name the host gave the port (sysfs `name`). */
  name: string;
  /** Its sysfs entry, which is also its device node's name: vportNpM. */
  entry: string;
  /** The device to open: udev's symlink when there is one, else the node itself. */
  path: string;
}

/** The name of every port under `sysDir` that has one, by entry (vportNpM), in entry order. */
export function portNames(sysDir = SYS_PORTS_DIR): Map<string, string> {
  const out = new Map<string, string>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(sysDir).sort();
  } catch {
    return out; // no virtio-serial devices at all
  }
  for (const entry of entries) {
    try {
      const name = fs.readFileSync(path.join(sysDir, entry, 'name'), 'utf8').trim();
      if (name) out.set(entry, name);
    } catch {
      // a port with no name (yet: the host names a hot-plugged port just after adding it)
    }
  }
  return out;
}

/** The ports named one of `names`, the first entry of each name. */
export function findPorts(names: readonly string[], sysDir = SYS_PORTS_DIR, devDir = '/dev'): FoundPort[] {
  const found: FoundPort[] = [];
  for (const [entry, name] of portNames(sysDir)) {
    if (!names.includes(name) || found.some((p) => p.name === name)) continue;
    const link = path.join(devDir, 'virtio-ports', name);
    found.push({ name, entry, path: fs.existsSync(link) ? link : path.join(devDir, entry) });
  }
  return found;
}

/**
 * The name of the port at `portPath`: its own file name when that is a known port's (udev's
 * symlink), else the name sysfs gives the device node it leads to; undefined when neither says.
 */
export function portNameOf(portPath: string, sysDir = SYS_PORTS_DIR): string | undefined {
  const base = path.basename(portPath);
  if (base in KNOWN_PORTS) return base;
  let node = base;
  try {
    node = path.basename(fs.realpathSync(portPath));
  } catch {
    // not there (yet): the name in the path is all there is
  }
  return portNames(sysDir).get(node);
}

/** The one phoenix port: the udev symlink when it exists, else the port named org.guest-agent.0 under sysfs. */
export function findPort(sysDir = SYS_PORTS_DIR, devDir = '/dev', defaultPath = DEFAULT_PORT): string {
  if (fs.existsSync(defaultPath)) return defaultPath;
  const [port] = findPorts([PORT_NAME], sysDir, devDir);
  if (port) return path.join(devDir, port.entry);
  throw new Error(
    `virtio-serial port ${PORT_NAME} not found (no ${defaultPath}, none named so under ${sysDir}); use -p PATH`,
  );
}
