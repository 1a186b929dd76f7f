// The local time zone as glib 2.74 finds it, on fixture TZif files, TZ values and /etc layouts.
// (The integration test checks every zone of this machine against glib itself.)
import * as fs from 'fs';
import * as path from 'path';
import * as assert from 'uvu/assert';
import { localTimezone, parsePosixTz, parseTzif } from '../../../lib/sysinfo';
import { tmpDir } from '../../helpers/agent';
import { suite } from '../../helpers/harness';

const test = suite<{ dir: string }>('sysinfo-timezone', { dir: '' });
test.before((ctx) => {
  ctx.dir = tmpDir('ember-ga-tz-');
});
test.after((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

interface FixtureType {
  offset: number;
  isDst: boolean;
  abbrev: string;
}

/** A TZif file (RFC 8536): version 2 with both data blocks and a footer, or version 1. */
function tzif(types: FixtureType[], transitions: [number, number][], footer?: string): Buffer {
  const abbrs: number[] = [];
  const chars: Buffer[] = [];
  let at = 0;
  for (const t of types) {
    abbrs.push(at);
    chars.push(Buffer.from(t.abbrev + '\0', 'latin1'));
    at += t.abbrev.length + 1;
  }
  const block = (wide: boolean, version: string) => {
    const h = Buffer.alloc(44);
    h.write('TZif', 0, 'latin1');
    h.write(version, 4, 'latin1');
    h.writeUInt32BE(transitions.length, 32);
    h.writeUInt32BE(types.length, 36);
    h.writeUInt32BE(at, 40);
    const times = Buffer.alloc(transitions.length * (wide ? 8 : 4));
    transitions.forEach(([t], i) => (wide ? times.writeBigInt64BE(BigInt(t), i * 8) : times.writeInt32BE(t, i * 4)));
    const idx = Buffer.from(transitions.map(([, ty]) => ty));
    const info = Buffer.alloc(types.length * 6);
    types.forEach((t, i) => {
      info.writeInt32BE(t.offset, i * 6);
      info[i * 6 + 4] = t.isDst ? 1 : 0;
      info[i * 6 + 5] = abbrs[i];
    });
    return Buffer.concat([h, times, idx, info, ...chars]);
  };
  if (footer === undefined) return block(false, '\0');
  return Buffer.concat([block(false, '2'), block(true, '2'), Buffer.from(`\n${footer}\n`, 'latin1')]);
}

const LMT = { offset: 561, isDst: false, abbrev: 'LMT' };
const NST = { offset: 3600, isDst: false, abbrev: 'NST' };
const NDT = { offset: 7200, isDst: true, abbrev: 'NDT' };
const NORTH = tzif(
  [LMT, NST, NDT],
  [
    [1000, 1],
    [2000, 2],
    [3000, 1],
  ],
  'NST-1NDT,M3.5.0,M10.5.0/3',
);
const at = (iso: string) => Date.parse(iso) / 1000;

test('TZif: the type after the last transition at or before now; before any, the first standard one', () => {
  const zone = parseTzif(NORTH)!;
  assert.ok(zone);
  const dir = (now: number) => {
    let i = 0;
    while (i < zone.transitions.length && zone.transitions[i].time <= now) i++;
    return i;
  };
  assert.is(dir(999), 0);
  assert.is(zone.types[zone.transitions[dir(2000) - 1].type].abbrev, 'NDT');
});

test('TZif through localTimezone: explicit transitions, then the footer rule', async ({ dir }) => {
  fs.writeFileSync(path.join(dir, 'North'), NORTH);
  const tz = (now: number) => localTimezone({ tz: 'North', zoneinfoDir: dir, now });
  assert.equal(await tz(999), { zone: 'LMT', offset: 561 });
  assert.equal(await tz(1000), { zone: 'NST', offset: 3600 });
  assert.equal(await tz(2500), { zone: 'NDT', offset: 7200 });
  assert.equal(await tz(at('2026-01-15T00:00:00Z')), { zone: 'NST', offset: 3600 });
  // Last Sunday of March 2026 is the 29th: 02:00 local standard time is 01:00 UTC.
  assert.equal(await tz(at('2026-03-29T00:59:59Z')), { zone: 'NST', offset: 3600 });
  assert.equal(await tz(at('2026-03-29T01:00:00Z')), { zone: 'NDT', offset: 7200 });
  // Last Sunday of October 2026 is the 25th: 03:00 local daylight time is 01:00 UTC.
  assert.equal(await tz(at('2026-10-25T00:59:59Z')), { zone: 'NDT', offset: 7200 });
  assert.equal(await tz(at('2026-10-25T01:00:00Z')), { zone: 'NST', offset: 3600 });
});

test('TZif: version 1 keeps its last type; files glib cannot read are UTC', async ({ dir }) => {
  fs.writeFileSync(path.join(dir, 'V1'), tzif([LMT, NST], [[1000, 1]]));
  fs.writeFileSync(path.join(dir, 'BadFooter'), tzif([NST], [], 'not a rule'));
  fs.writeFileSync(path.join(dir, 'NotTzif'), 'hello');
  const now = at('2030-06-01T00:00:00Z');
  assert.equal(await localTimezone({ tz: 'V1', zoneinfoDir: dir, now }), { zone: 'NST', offset: 3600 });
  assert.equal(await localTimezone({ tz: ':V1', zoneinfoDir: dir, now }), { zone: 'NST', offset: 3600 });
  assert.equal(await localTimezone({ tz: path.join(dir, 'V1'), zoneinfoDir: '/nonexistent', now }), {
    zone: 'NST',
    offset: 3600,
  });
  for (const tz of ['BadFooter', 'NotTzif', 'Missing', ''])
    assert.equal(await localTimezone({ tz, zoneinfoDir: dir, now }), { zone: 'UTC', offset: 0 }, tz);
});

test('TZ: constant offsets answer with the text itself', async () => {
  const c = (tz: string) => localTimezone({ tz, now: 0 });
  assert.equal(await c('UTC'), { zone: 'UTC', offset: 0 });
  assert.equal(await c('Z'), { zone: 'Z', offset: 0 });
  assert.equal(await c('+05:30'), { zone: '+05:30', offset: 19800 });
  assert.equal(await c('-0800'), { zone: '-0800', offset: -28800 });
  assert.equal(await c('+2'), { zone: '+2', offset: 7200 });
});

test('TZ: POSIX rules (hours west), northern and southern, with glib quirks', async ({ dir }) => {
  const r = (tz: string, iso: string) => localTimezone({ tz, zoneinfoDir: dir, now: at(iso) });
  assert.equal(await r('EST5', '2026-07-01T00:00:00Z'), { zone: 'EST', offset: -18000 });
  assert.equal(await r('<+0530>-5:30', '2026-07-01T00:00:00Z'), { zone: '+0530', offset: 19800 });
  const cet = 'CET-1CEST,M3.5.0,M10.5.0/3';
  assert.equal(await r(cet, '2026-07-01T00:00:00Z'), { zone: 'CEST', offset: 7200 });
  assert.equal(await r(cet, '2026-12-01T00:00:00Z'), { zone: 'CET', offset: 3600 });
  const syd = 'AEST-10AEDT,M10.1.0,M4.1.0/3';
  assert.equal(await r(syd, '2026-01-15T00:00:00Z'), { zone: 'AEDT', offset: 39600 });
  assert.equal(await r(syd, '2026-07-01T00:00:00Z'), { zone: 'AEST', offset: 36000 });
  // The daylight offset defaults to an hour ahead; an explicit 0 counts as none given.
  assert.equal(await r('XXX3YYY,M3.2.0,M11.1.0', '2026-07-01T00:00:00Z'), { zone: 'YYY', offset: -7200 });
  // "Jn" skips Feb 29 but glib adds a day from J59 on: J60 is March 2.
  assert.equal(await r('XXX3YYY,J60,J300', '2026-03-02T04:59:59Z'), { zone: 'XXX', offset: -10800 });
  assert.equal(await r('XXX3YYY,J60,J300', '2026-03-02T05:00:00Z'), { zone: 'YYY', offset: -7200 });
  // Without dates a DST rule is no rule to glib: the name is looked up as a file, else UTC.
  assert.equal(await r('EST5EDT', '2026-07-01T00:00:00Z'), { zone: 'UTC', offset: 0 });
  fs.writeFileSync(path.join(dir, 'EST5EDT'), tzif([{ offset: -18000, isDst: false, abbrev: 'EST' }], []));
  assert.equal(await r('EST5EDT', '2026-07-01T00:00:00Z'), { zone: 'EST', offset: -18000 });
  assert.is(parsePosixTz('AB1'), undefined); // names have three letters or more
  assert.is(parsePosixTz('ABC1DEF,M3.2.0'), undefined);
  assert.is(parsePosixTz('ABC1DEF,M13.1.0,M1.1.0'), undefined);
});

test('TZ unset: /etc/localtime when it is a symlink to a file, or a file that /etc/timezone names', async ({ dir }) => {
  const root = path.join(dir, 'root');
  const zi = path.join(root, 'usr/share/zoneinfo');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(zi, 'Fix'), { recursive: true });
  fs.writeFileSync(path.join(zi, 'Fix/North'), NORTH);
  fs.symlinkSync('North', path.join(zi, 'Fix/Link'));
  const localtime = path.join(root, 'etc/localtime');
  const timezone = path.join(root, 'etc/timezone');
  const now = at('2026-07-01T00:00:00Z');
  const local = () => localTimezone({ tz: undefined, root, now });
  const NDT_NOW = { zone: 'NDT', offset: 7200 };
  const UTC = { zone: 'UTC', offset: 0 };

  assert.equal(await local(), UTC, 'no /etc/localtime');
  fs.symlinkSync('../usr/share/zoneinfo/Fix/North', localtime);
  assert.equal(await local(), NDT_NOW, 'a symlink to a zone file');
  fs.rmSync(localtime);
  fs.symlinkSync('../usr/share/zoneinfo/Fix/Link', localtime);
  assert.equal(await local(), UTC, 'a symlink to a symlink, no /etc/timezone');
  fs.writeFileSync(timezone, 'Fix/Link\n');
  assert.equal(await local(), NDT_NOW, 'a symlink to a symlink, /etc/timezone');
  fs.rmSync(localtime);
  fs.copyFileSync(path.join(zi, 'Fix/North'), localtime);
  assert.equal(await local(), NDT_NOW, 'a copy, /etc/timezone');
  fs.rmSync(timezone);
  assert.equal(await local(), UTC, 'a copy, no /etc/timezone');
  fs.rmSync(localtime);
  fs.symlinkSync('../usr/share/zoneinfo/Fix/Gone', localtime);
  assert.equal(await local(), UTC, 'a dangling symlink');
});

test.run();
