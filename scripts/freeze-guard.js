#!/usr/bin/env node
// Safety net for the freeze tests: keeps this machine's own filesystems thawed. The freeze
// tests start it (test/helpers/freeze-guard.ts); run it by hand around anything else that
// sends fs-freeze:
//
//   node scripts/freeze-guard.js --report guard.json &     # stop it with SIGTERM or SIGINT
//
// Every --interval seconds (0.2) it issues FITHAW on each filesystem of this machine mounted
// from a block device other than a loop device (/ and friends; each device once). FITHAW on a
// filesystem that is not frozen fails with EINVAL and does nothing; one that WAS frozen (a test
// froze the machine itself) is thawed at once and recorded. On exit (a signal, or after
// --max-seconds) it writes {"guarded": [...], "thawed": [{"mountpoint", "at"}]} to --report
// and exits 1 if it ever had to thaw, else 0. Once watching, it says so on stderr
// ("freeze-guard: guarding ..."), which is what a caller waits for.
//
// It is a process of its own because a test process can block behind a frozen filesystem.
// Nothing it does after start-up waits on one: the mount points are opened O_RDONLY at start
// (an open for reading never waits on a frozen filesystem), and FITHAW goes through the addon,
// which runs it on a thread of its own. It needs the addon built (`npm ci`), not the TypeScript.
//
// --mounts-file PATH is for its own test: read the mount table from PATH (the format of
// /proc/self/mounts) instead, so a fixture can point it at loop mounts the test made.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { parseArgs } = require('util');

const USAGE = `usage: node scripts/freeze-guard.js [--report FILE] [--interval SECONDS] [--max-seconds SECONDS]
  --report FILE          write {"guarded", "thawed"} here on exit
  --interval SECONDS     time between two FITHAW rounds (default 0.2)
  --max-seconds SECONDS  stop by itself after this long (default 900)
  --mounts-file PATH     mount table to read instead of /proc/self/mounts (tests)
Exits 1 if it had to thaw anything, 0 if not, 2 on a usage error.
`;

function usageError(message) {
  process.stderr.write(`freeze-guard: ${message}\n${USAGE}`);
  process.exit(2);
}

function seconds(name, text, min) {
  const n = Number(text);
  if (text === undefined || text === '' || !Number.isFinite(n) || n < min)
    usageError(`--${name}: expected a number of seconds >= ${min}, got ${JSON.stringify(text)}`);
  return n;
}

/** Mounts of block devices (/dev/...) but loop devices, in mount table order. */
function blockDeviceMounts(table) {
  const out = [];
  for (const line of table.split('\n')) {
    const [source, mountpoint] = line.trim().split(/[ \t]+/);
    if (!mountpoint || !source.startsWith('/dev/') || source.startsWith('/dev/loop')) continue;
    out.push({
      source,
      mountpoint: mountpoint.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))),
    });
  }
  return out;
}

function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        report: { type: 'string' },
        interval: { type: 'string', default: '0.2' },
        'max-seconds': { type: 'string', default: '900' },
        'mounts-file': { type: 'string', default: '/proc/self/mounts' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    usageError(e.message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const interval = seconds('interval', values.interval, 0.01);
  const maxSeconds = seconds('max-seconds', values['max-seconds'], 0);
  // The addon's thaw runs FITHAW on a thread started for the call, never on the event loop.
  const { thaw } = require('node-gyp-build')(path.join(__dirname, '..'));

  // Each device once, at its first mount point that opens as a directory (a container's
  // bind-mounted /etc/hosts does not), held open for the whole run and thawed through
  // /proc/self/fd/N: the guard keeps watching the filesystem it found, even if something is
  // later mounted over its mount point.
  const guarded = [];
  const failed = new Map(); // source -> why its last mount point could not be opened
  for (const { source, mountpoint } of blockDeviceMounts(fs.readFileSync(values['mounts-file'], 'utf8'))) {
    if (guarded.some((g) => g.source === source)) continue;
    try {
      const fd = fs.openSync(mountpoint, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      guarded.push({ source, mountpoint, handle: `/proc/self/fd/${fd}`, inFlight: undefined, warned: new Set() });
      failed.delete(source);
    } catch (e) {
      failed.set(source, `${mountpoint} (${e.code})`);
    }
  }
  for (const [source, why] of failed) process.stderr.write(`freeze-guard: ${source} not guarded: cannot open ${why}\n`);

  const thawed = [];
  const round = () => {
    for (const g of guarded) {
      if (g.inFlight) continue; // a FITHAW still running: one at a time per filesystem
      g.inFlight = thaw(g.handle)
        .then(
          () => {
            thawed.push({ mountpoint: g.mountpoint, at: Date.now() / 1000 });
            process.stderr.write(`freeze-guard: ${g.mountpoint} was frozen; thawed it\n`);
          },
          (e) => {
            if (e.errno === os.constants.errno.EINVAL || g.warned.has(e.errno)) return; // EINVAL: not frozen
            g.warned.add(e.errno);
            process.stderr.write(`freeze-guard: FITHAW ${g.mountpoint}: ${e.message}\n`);
          },
        )
        .finally(() => (g.inFlight = undefined));
    }
  };

  round();
  const timer = setInterval(round, interval * 1000);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    clearTimeout(deadline);
    round(); // a last look, for a freeze made just before the stop
    const settled = Promise.all(guarded.map((g) => g.inFlight));
    await Promise.race([settled, new Promise((r) => setTimeout(r, 5_000).unref())]);
    try {
      if (values.report)
        fs.writeFileSync(values.report, JSON.stringify({ guarded: guarded.map((g) => g.mountpoint), thawed }) + '\n');
    } catch (e) {
      process.stderr.write(`freeze-guard: cannot write the report: ${e.message}\n`);
      process.exit(1);
    }
    process.exit(thawed.length > 0 ? 1 : 0);
  };
  // setTimeout takes at most 2^31-1 ms; longer than that (24.8 days) is "until stopped".
  const deadline = setTimeout(stop, Math.min(maxSeconds * 1000, 2 ** 31 - 1));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stderr.write(
    `freeze-guard: guarding ${guarded.map((g) => g.mountpoint).join(', ') || 'nothing'} (every ${interval} s)\n`,
  );
}

main();
