// Where the virtio-serial port is: -p, else the udev symlink, else a search by port name under
// /sys/class/virtio-ports (minimal images without udev have only /dev/vportNpM).
import * as fs from 'fs';
import * as path from 'path';

export const PORT_NAME = 'org.guest-agent.0';
export const DEFAULT_PORT = `/dev/virtio-ports/${PORT_NAME}`;

export function findPort(sysDir = '/sys/class/virtio-ports', devDir = '/dev', defaultPath = DEFAULT_PORT): string {
  if (fs.existsSync(defaultPath)) return defaultPath;
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(sysDir).sort();
  } catch {
    // no virtio-serial devices at all
  }
  for (const entry of entries) {
    try {
      if (fs.readFileSync(path.join(sysDir, entry, 'name'), 'utf8').trim() === PORT_NAME) {
        return path.join(devDir, entry);
      }
    } catch {
      // a port with no name
    }
  }
  throw new Error(
    `virtio-serial port ${PORT_NAME} not found (no ${defaultPath}, none named so under ${sysDir}); use -p PATH`,
  );
}
