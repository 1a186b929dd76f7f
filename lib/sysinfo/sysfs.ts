// Small reads of sysfs attributes and directory listings in the kernel's own order, shared by
// the CPU, memory block and block device modules.
import { promises as fs, type Dir } from 'fs';
import { errorAbout } from '../errors';

/** An attribute that read as empty where a value was expected. */
export class EmptyAttributeError extends Error {
  constructor(readonly path: string) {
    super(`${path}: unexpected EOF`);
    this.name = 'EmptyAttributeError';
  }
}

/**
 * Up to `size` bytes from the start of the attribute at path (one pread, as a C reader does):
 * throws a SystemError (syscall open or pread) or EmptyAttributeError when nothing is there.
 */
export async function readAttribute(path: string, size: number): Promise<Buffer> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, 'r');
  } catch (e) {
    throw errorAbout(e, 'open', path);
  }
  try {
    const buf = Buffer.alloc(size);
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, 0, size, 0));
    } catch (e) {
      throw errorAbout(e, 'pread', path);
    }
    if (n === 0) throw new EmptyAttributeError(path);
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

/** The attribute's text up to its first NUL (a C string), or undefined when it cannot be read. */
export async function readAttributeText(path: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path, 'utf8')).split('\0')[0];
  } catch {
    return undefined;
  }
}

/** A directory entry as readdir(3) gives it: its name and d_type. */
export interface RawEntry {
  name: string;
  isDirectory: boolean;
  isSymbolicLink: boolean;
}

/**
 * The entries of a directory in the order readdir(3) returns them (the kernel's, not sorted:
 * C programs that list sysfs see them so, and their answers keep that order), "." and ".."
 * left out. Rejects with a SystemError (syscall opendir or readdir).
 */
export async function readdirRaw(path: string): Promise<RawEntry[]> {
  let dir: Dir;
  try {
    dir = await fs.opendir(path, { bufferSize: 128 });
  } catch (e) {
    throw errorAbout(e, 'opendir', path);
  }
  const out: RawEntry[] = [];
  try {
    for await (const d of dir) {
      out.push({ name: d.name, isDirectory: d.isDirectory(), isSymbolicLink: d.isSymbolicLink() });
    }
  } catch (e) {
    throw errorAbout(e, 'readdir', path);
  }
  return out;
}

/** fn over items with at most `limit` calls in flight, results in the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
