// Set-up the file-transfer sections (files.ts, qemu-ga.ts) share: the random files they move and
// the agent's peak memory, read the same way in both so their figures stay comparable.
import * as crypto from 'crypto';
import * as fs from 'fs';

const MiB = 1024 * 1024;

/** Writes `bytes` of random data to `file`, 16 MiB at a time; returns their md5 (hex). */
export function makeRandomFile(file: string, bytes: number): string {
  const fd = fs.openSync(file, 'w');
  const hash = crypto.createHash('md5');
  try {
    for (let off = 0; off < bytes; off += 16 * MiB) {
      const b = crypto.randomBytes(Math.min(16 * MiB, bytes - off));
      hash.update(b);
      fs.writeSync(fd, b);
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** A process's peak resident memory (VmHWM), KiB; writing 5 to its clear_refs starts it afresh. */
export function vmHWMKiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}
