// The freeze tests' fixture: three ext4 images loop-mounted in a temp dir (one mount point with a
// space in its name), a mount table listing only them, and freeze-guard watching. Nothing here
// freezes this machine's own filesystems, and nothing waits on a blocked writer without a thaw
// path: withThawGuard() thaws in `finally` and, should the test hang, from a timer with
// util-linux fsfreeze (another process).
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { freeze, parseMountTable, thaw } from '../../lib';
import { mountExt4Image, tmpDir, withNonUtf8Ext4 } from './agent';
import { startFreezeGuard, type RunningGuard } from './freeze-guard';
import { command, root } from './harness';

export const needs = [root, command('mkfs.ext4'), command('fsfreeze')];
export const ready = () => needs.every((r) => r() === undefined);

export interface LoopMounts {
  dir: string;
  /** The three mount points, in mount table order; c's has a space in its name. */
  a: string;
  b: string;
  c: string;
  mounts: string[];
  /** /dev/loopN of each mount point. */
  loop: Record<string, string>;
  /** A mount table listing the three loop mounts as /dev/loopN. */
  table: string;
  guard: RunningGuard;
}

/** A mount table line's escaping of a space. */
export const escapeMountPoint = (p: string) => p.replace(/ /g, '\\040');

/** Mounts the three images into `ctx` (freeze-guard watching before the first freeze). */
export async function mountLoops(ctx: LoopMounts, prefix: string): Promise<void> {
  ctx.dir = tmpDir(prefix);
  ctx.guard = await startFreezeGuard({ report: path.join(ctx.dir, 'guard.json'), maxSeconds: 600 });
  ctx.mounts = [];
  ctx.loop = {};
  for (const name of ['a', 'b', 'with space']) {
    const mnt = path.join(ctx.dir, name);
    mountExt4Image(mnt);
    ctx.mounts.push(mnt);
  }
  [ctx.a, ctx.b, ctx.c] = ctx.mounts;
  const mine = parseMountTable(fs.readFileSync('/proc/self/mounts', 'utf8')).filter((m) =>
    ctx.mounts.includes(m.mountpoint),
  );
  for (const m of mine) ctx.loop[m.mountpoint] = m.source;
  assert.is(mine.length, 3, 'all three loop mounts are in /proc/self/mounts');
  ctx.table = path.join(ctx.dir, 'mounts');
  fs.writeFileSync(
    ctx.table,
    ctx.mounts.map((m) => `${ctx.loop[m]} ${escapeMountPoint(m)} ext4 rw,relatime 0 0\n`).join(''),
  );
  assert.is(ctx.guard.proc.exitCode, null, 'freeze-guard is running');
}

/** Thaws, unmounts (the loop devices detach: autoclear) and removes everything mountLoops made. */
export async function unmountLoops(ctx: LoopMounts): Promise<void> {
  if (!ctx.dir) return;
  for (const m of [...ctx.mounts].reverse()) {
    await thaw(m).catch(() => {});
    try {
      execFileSync('umount', [m]);
    } catch {
      execFileSync('umount', ['-l', m]);
    }
  }
  await ctx.guard?.stop().catch(() => {});
  fs.rmSync(ctx.dir, { recursive: true, force: true });
}

/**
 * Runs fn with a thaw path: `finally` thaws every mount through the library API, and if fn is
 * still running after `ms` a timer thaws them with fsfreeze --unfreeze (a separate process).
 */
export async function withThawGuard<T>(ctx: LoopMounts, fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const timer = setTimeout(() => {
    process.stderr.write('freeze test: guard timer fired, thawing with fsfreeze\n');
    for (const m of ctx.mounts) spawn('fsfreeze', ['--unfreeze', m], { stdio: 'ignore' });
  }, ms);
  try {
    return await fn();
  } finally {
    clearTimeout(timer);
    for (const m of [...ctx.mounts].reverse()) await thaw(m).catch(() => {});
  }
}

export interface NonUtf8Mount {
  /** The mount point's name: DIR/m and the byte 0xff, not UTF-8. */
  bytes: Buffer;
  /** An ASCII symlink to it: the test reaches the filesystem through it (isFrozen, thaw, umount). */
  alias: string;
  /** Its /dev/loopN. */
  loop: string;
  /** Writes a mount table of these lines (strings and bytes) to DIR/FILE; its path. */
  table(file: string, lines: (string | Buffer)[]): string;
}

/**
 * A fourth ext4 image mounted at a mount point whose name is not UTF-8 (DIR/m\xff) for the time
 * fn takes, then unmounted. fn runs inside withThawGuard(), and that mount point has a thaw
 * path of its own: thawed in `finally`, and from a timer (fsfreeze --unfreeze on the alias) if
 * fn hangs. No table lists it unless fn writes one. Everything it made is removed after.
 */
export async function withNonUtf8Mount(
  ctx: LoopMounts,
  fn: (m: NonUtf8Mount) => Promise<void>,
  ms = 20_000,
): Promise<void> {
  await withNonUtf8Ext4(ctx.dir, 'm', async ({ bytes, alias }) => {
    const name = bytes.toString('latin1'); // no space, tab or backslash: the table has it as it is
    const mine = fs
      .readFileSync('/proc/self/mounts', 'latin1')
      .split('\n')
      .filter((l) => l.split(' ')[1] === name);
    assert.is(mine.length, 1, 'the mount point named by its bytes is in /proc/self/mounts');
    const table = (file: string, lines: (string | Buffer)[]) => {
      file = path.join(ctx.dir, file);
      fs.writeFileSync(file, Buffer.concat(lines.map((l) => Buffer.concat([Buffer.from(l), Buffer.from('\n')]))));
      return file;
    };
    await withThawGuard(
      ctx,
      async () => {
        const timer = setTimeout(() => spawn('fsfreeze', ['--unfreeze', alias], { stdio: 'ignore' }), ms);
        try {
          await fn({ bytes, alias, loop: mine[0].split(' ')[0], table });
        } finally {
          clearTimeout(timer);
          await thaw(alias).catch(() => {});
        }
      },
      ms,
    );
  });
}

/** True when the filesystem at m is frozen. Probes with FIFREEZE: EBUSY = frozen; else it froze it, so thaw. */
export async function isFrozen(m: string): Promise<boolean> {
  try {
    await freeze(m);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EBUSY') return true;
    throw e;
  }
  await thaw(m);
  return false;
}

/** The base names of the mounts that are frozen now. */
export async function frozenSet(ctx: LoopMounts): Promise<string[]> {
  const out: string[] = [];
  for (const m of ctx.mounts) if (await isFrozen(m)) out.push(path.basename(m));
  return out;
}

let writes = 0;
/** A child process writing and fsync-ing 16 KiB to a new file under dir. */
export function writer(dir: string): { proc: ChildProcess; exited: Promise<number | null>; file: string } {
  const file = path.join(dir, `w${++writes}`);
  const proc = spawn('dd', ['if=/dev/zero', `of=${file}`, 'bs=4096', 'count=4', 'conv=fsync', 'status=none'], {
    stdio: 'ignore',
  });
  return { proc, exited: new Promise((r) => proc.once('exit', (code) => r(code))), file };
}
