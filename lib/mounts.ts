// The kernel's mount tables as text: /proc/self/mounts (fstab's format) and
// /proc/PID/mountinfo (proc(5)). Parsing only; what to make of the mounts is each user's.
//
// A mount point's name is bytes to the kernel, not always UTF-8. A table read as bytes (a
// Buffer) keeps them: the mount point of such a name is a Buffer (MountPath), which Node's fs
// and the freeze library take as a path, and its text is what qemu-ga's JSON writer makes of it.
import { byteName, qemuString, utf8Text } from './utf8';

/**
 * A path as Node's fs takes it: a string (the path is its UTF-8) or a Buffer of the path's
 * bytes (a mount point whose name is not UTF-8).
 */
export type MountPath = string | Buffer;

/** A line of /proc/self/mounts. */
export interface MountEntry {
  source: string;
  /** As text: when its bytes are not UTF-8, as mountPathText writes them, and `mountpointBytes` holds them. */
  mountpoint: string;
  /** The mount point's bytes, when they are not UTF-8 (only from a table given as a Buffer). */
  mountpointBytes?: Buffer;
  fstype: string;
  options: string;
}

/** A line of /proc/PID/mountinfo. */
export interface Mount {
  /** "major:minor" of the filesystem's device. */
  dev: string;
  /** Path inside the filesystem that is mounted ("/" unless a bind mount of a subtree). */
  root: string;
  /** As in MountEntry: text, and `mountpointBytes` when the name is not UTF-8. */
  mountpoint: string;
  /** The mount point's bytes, when they are not UTF-8 (only from a table given as a Buffer). */
  mountpointBytes?: Buffer;
  fstype: string;
  source: string;
}

/** The bytes of a path: what a coalesced call on it is keyed by (a string and a Buffer of the same bytes are one path). */
export function mountPathKey(p: MountPath): string {
  return (typeof p === 'string' ? Buffer.from(p, 'utf8') : p).toString('latin1');
}

/**
 * How answers and log lines name a mount path: a string as it is, bytes as UTF-8 or, when they
 * are not, as qemu-ga's JSON writer reads them (U+FFFD for each sequence it rejects: "m\xff" is
 * "m\uFFFD"), which is how qemu-ga names such a mount point in its answers.
 */
export function mountPathText(p: MountPath): string {
  return typeof p === 'string' ? p : (utf8Text(p) ?? qemuString(p));
}

/** The path to give fs calls and the freeze library for an entry (of either table): its bytes when they are not UTF-8. */
export function mountPathOf(m: Pick<MountEntry, 'mountpoint' | 'mountpointBytes'>): MountPath {
  return m.mountpointBytes ?? m.mountpoint;
}

/** A field of a table read as bytes (latin1: a character per byte) as text, and its bytes when they are not UTF-8. */
function fieldOf(raw: string, bytes: boolean): { text: string; bytes?: Buffer } {
  if (!bytes) return { text: raw };
  const n = byteName(raw);
  return n.bytes ? { text: qemuString(n.bytes), bytes: n.bytes } : { text: n.text };
}

/** Undoes the kernel's octal escapes in a mount table field (`\040` space, `\011` tab, `\012` newline, `\134` backslash). */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Parses /proc/self/mounts; blank and malformed lines (fewer than three fields) are skipped.
 * Given the table's bytes (a Buffer), a mount point whose name is not UTF-8 comes with
 * `mountpointBytes`; given text, names are that text's.
 */
export function parseMountTable(table: string | Buffer): MountEntry[] {
  const bytes = typeof table !== 'string';
  const out: MountEntry[] = [];
  for (const line of (bytes ? table.toString('latin1') : table).split('\n')) {
    const f = line.trim().split(/[ \t]+/);
    if (f.length < 3 || f[0] === '') continue;
    const mountpoint = fieldOf(unescapeMountField(f[1]), bytes);
    out.push({
      source: fieldOf(unescapeMountField(f[0]), bytes).text,
      mountpoint: mountpoint.text,
      ...(mountpoint.bytes && { mountpointBytes: mountpoint.bytes }),
      fstype: fieldOf(f[2], bytes).text,
      options: fieldOf(f[3] ?? '', bytes).text,
    });
  }
  return out;
}

/**
 * Parses /proc/PID/mountinfo; malformed lines are skipped. As parseMountTable: given the table's
 * bytes, a mount point whose name is not UTF-8 comes with `mountpointBytes`.
 */
export function parseMountInfo(info: string | Buffer): Mount[] {
  const bytes = typeof info !== 'string';
  const out: Mount[] = [];
  for (const line of (bytes ? info.toString('latin1') : info).split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || sep + 2 >= f.length) continue;
    const mountpoint = fieldOf(unescapeMountField(f[4]), bytes);
    out.push({
      dev: f[2],
      root: fieldOf(unescapeMountField(f[3]), bytes).text,
      mountpoint: mountpoint.text,
      ...(mountpoint.bytes && { mountpointBytes: mountpoint.bytes }),
      fstype: fieldOf(f[sep + 1], bytes).text,
      source: fieldOf(unescapeMountField(f[sep + 2]), bytes).text,
    });
  }
  return out;
}
