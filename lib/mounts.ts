// The kernel's mount tables as text: /proc/self/mounts (fstab's format) and
// /proc/PID/mountinfo (proc(5)). Parsing only; what to make of the mounts is each user's.

/** A line of /proc/self/mounts. */
export interface MountEntry {
  source: string;
  mountpoint: string;
  fstype: string;
  options: string;
}

/** A line of /proc/PID/mountinfo. */
export interface Mount {
  /** "major:minor" of the filesystem's device. */
  dev: string;
  /** Path inside the filesystem that is mounted ("/" unless a bind mount of a subtree). */
  root: string;
  mountpoint: string;
  fstype: string;
  source: string;
}

/** Undoes the kernel's octal escapes in a mount table field (`\040` space, `\011` tab, `\012` newline, `\134` backslash). */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mounts text; blank and malformed lines (fewer than three fields) are skipped. */
export function parseMountTable(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/[ \t]+/);
    if (f.length < 3 || f[0] === '') continue;
    out.push({
      source: unescapeMountField(f[0]),
      mountpoint: unescapeMountField(f[1]),
      fstype: f[2],
      options: f[3] ?? '',
    });
  }
  return out;
}

/** Parses /proc/PID/mountinfo text; malformed lines are skipped. */
export function parseMountInfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || sep + 2 >= f.length) continue;
    out.push({
      dev: f[2],
      root: unescapeMountField(f[3]),
      mountpoint: unescapeMountField(f[4]),
      fstype: f[sep + 1],
      source: unescapeMountField(f[sep + 2]),
    });
  }
  return out;
}
