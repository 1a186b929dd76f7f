// Logged-in users from the utmp file, parsed in TypeScript: the file is an array of fixed-size
// `struct utmp` records (glibc, <bits/utmp.h>). Where glibc keeps ut_session and ut_tv 32-bit
// (__WORDSIZE_TIME64_COMPAT32: x86_64, aarch64; and 32-bit targets) a record is 384 bytes, checked
// against the C library by the tests. Targets with 64-bit fields there are not supported.
//
//   offset  size  field
//        0     2  ut_type     short (2 bytes of padding follow)
//        4     4  ut_pid      pid_t
//        8    32  ut_line     device, "pts/0" (NUL-padded, not always NUL-terminated)
//       40     4  ut_id
//       44    32  ut_user
//       76   256  ut_host
//      332     4  ut_exit     {short e_termination, short e_exit}
//      336     4  ut_session  int32
//      340     8  ut_tv       {int32 tv_sec, int32 tv_usec}
//      348    16  ut_addr_v6
//      364    20  reserved
//
// Integers are in the machine's byte order (the file is written by this machine's libc).
import { promises as fs } from 'fs';
import { endianness } from 'os';

export const UTMP_RECORD_SIZE = 384;
export const DEFAULT_UTMP_PATH = '/var/run/utmp';

/** ut_type values. */
export const UtType = {
  EMPTY: 0,
  RUN_LVL: 1,
  BOOT_TIME: 2,
  NEW_TIME: 3,
  OLD_TIME: 4,
  INIT_PROCESS: 5,
  LOGIN_PROCESS: 6,
  USER_PROCESS: 7,
  DEAD_PROCESS: 8,
  ACCOUNTING: 9,
} as const;

/** Field offsets and sizes of struct utmp (see the table above). */
const F = {
  type: 0,
  pid: 4,
  line: [8, 32],
  id: [40, 4],
  user: [44, 32],
  host: [76, 256],
  session: 336,
  tvSec: 340,
  tvUsec: 344,
} as const;

export interface UtmpRecord {
  type: number;
  pid: number;
  line: string;
  id: string;
  user: string;
  host: string;
  session: number;
  /** ut_tv.tv_sec: seconds since the epoch. */
  time: number;
  usec: number;
}

/** A logged-in user as the sysinfo command answers it. */
export interface User {
  name: string;
  device: string;
  host: string;
  login_time: number;
}

const LE = endianness() === 'LE';
const readI16 = (b: Buffer, o: number) => (LE ? b.readInt16LE(o) : b.readInt16BE(o));
const readI32 = (b: Buffer, o: number) => (LE ? b.readInt32LE(o) : b.readInt32BE(o));
const readU32 = (b: Buffer, o: number) => (LE ? b.readUInt32LE(o) : b.readUInt32BE(o));

/** A fixed-size char field: up to the first NUL (or the whole field), decoded as UTF-8. */
function cstring(buf: Buffer, [offset, size]: readonly [number, number]): string {
  const field = buf.subarray(offset, offset + size);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? size : nul).toString('utf8');
}

/** Every whole record in a utmp file's contents (a trailing partial record is ignored). */
export function parseUtmp(data: Buffer): UtmpRecord[] {
  const out: UtmpRecord[] = [];
  for (let off = 0; off + UTMP_RECORD_SIZE <= data.length; off += UTMP_RECORD_SIZE) {
    const r = data.subarray(off, off + UTMP_RECORD_SIZE);
    out.push({
      type: readI16(r, F.type),
      pid: readI32(r, F.pid),
      line: cstring(r, F.line),
      id: cstring(r, F.id),
      user: cstring(r, F.user),
      host: cstring(r, F.host),
      session: readI32(r, F.session),
      time: readU32(r, F.tvSec), // unsigned, so times after 2038 stay positive
      usec: readI32(r, F.tvUsec),
    });
  }
  return out;
}

/** Encodes records (the inverse of parseUtmp; for fixtures and tools). */
export function encodeUtmp(records: Partial<UtmpRecord>[]): Buffer {
  const buf = Buffer.alloc(records.length * UTMP_RECORD_SIZE);
  records.forEach((rec, i) => {
    const r = buf.subarray(i * UTMP_RECORD_SIZE, (i + 1) * UTMP_RECORD_SIZE);
    const put = ([offset, size]: readonly [number, number], s = '') => {
      r.fill(0, offset, offset + size);
      Buffer.from(s, 'utf8').copy(r, offset, 0, size);
    };
    const i16 = (v: number, o: number) => (LE ? r.writeInt16LE(v, o) : r.writeInt16BE(v, o));
    const i32 = (v: number, o: number) => (LE ? r.writeInt32LE(v, o) : r.writeInt32BE(v, o));
    const u32 = (v: number, o: number) => (LE ? r.writeUInt32LE(v, o) : r.writeUInt32BE(v, o));
    i16(rec.type ?? UtType.EMPTY, F.type);
    i32(rec.pid ?? 0, F.pid);
    put(F.line, rec.line);
    put(F.id, rec.id);
    put(F.user, rec.user);
    put(F.host, rec.host);
    i32(rec.session ?? 0, F.session);
    u32(rec.time ?? 0, F.tvSec);
    i32(rec.usec ?? 0, F.tvUsec);
  });
  return buf;
}

/** The users the reference reports: USER_PROCESS records that have a remote host. */
export function remoteUsers(records: UtmpRecord[]): User[] {
  return records
    .filter((r) => r.type === UtType.USER_PROCESS && r.host !== '')
    .map((r) => ({ name: r.user, device: r.line, host: r.host, login_time: r.time }));
}

/**
 * Reads the utmp file at `path` and returns its remote users. A missing file means nobody is
 * logged in (systems without utmp, e.g. minimal images or systemd without utmp support): [].
 * Other failures (unreadable, a directory) throw, so the caller can log them.
 */
export async function readUsers(path = DEFAULT_UTMP_PATH): Promise<User[]> {
  let data: Buffer;
  try {
    data = await fs.readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return remoteUsers(parseUtmp(data));
}
