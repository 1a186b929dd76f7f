// Address parsing and mask notation (lib/net/addr.ts): no privileges needed.
import * as assert from 'uvu/assert';
import { NetInputError, checkIfname, maskText, parseCidr, parseIp } from '../../../lib/net/addr';
import { suite } from '../../helpers/harness';

const test = suite('net-addr');

test('IPv4 masks are dotted', () => {
  assert.is(maskText(4, 0), '0.0.0.0');
  assert.is(maskText(4, 8), '255.0.0.0');
  assert.is(maskText(4, 17), '255.255.128.0');
  assert.is(maskText(4, 24), '255.255.255.0');
  assert.is(maskText(4, 31), '255.255.255.254');
  assert.is(maskText(4, 32), '255.255.255.255');
});

test('IPv6 masks in IPv6 notation, "::" only for two or more zero groups', () => {
  assert.is(maskText(6, 0), '::');
  assert.is(maskText(6, 1), '8000::');
  assert.is(maskText(6, 56), 'ffff:ffff:ffff:ff00::');
  assert.is(maskText(6, 64), 'ffff:ffff:ffff:ffff::');
  assert.is(maskText(6, 112), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:0');
  assert.is(maskText(6, 127), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe');
  assert.is(maskText(6, 128), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
});

test('CIDR parsing: a bare address is a host prefix', () => {
  assert.equal(parseCidr('192.0.2.1/24'), { family: 4, address: '192.0.2.1', length: 24 });
  assert.equal(parseCidr('2001:db8::1/64'), { family: 6, address: '2001:db8::1', length: 64 });
  assert.equal(parseCidr('192.0.2.1'), { family: 4, address: '192.0.2.1', length: 32 });
  assert.equal(parseCidr('2001:db8::1'), { family: 6, address: '2001:db8::1', length: 128 });
  assert.equal(parseCidr('0.0.0.0/0'), { family: 4, address: '0.0.0.0', length: 0 });
});

test('a prefix length with a leading zero is refused: ip would read "024" as octal (/20)', () => {
  for (const [bad, len] of [
    ['192.0.2.1/024', '024'],
    ['192.0.2.0/00', '00'],
    ['198.51.100.0/08', '08'],
    ['2001:db8::1/064', '064'],
    ['2001:db8::/0128', '0128'],
  ]) {
    assert.throws(
      () => parseCidr(bad),
      (e: unknown) =>
        e instanceof NetInputError &&
        e.message === `prefix length "${len}" has a leading zero (ip would read it as octal)`,
      bad,
    );
  }
  assert.equal(parseCidr('192.0.2.0/0'), { family: 4, address: '192.0.2.0', length: 0 }, 'a lone 0 is fine');
  assert.equal(parseCidr('2001:db8::/10'), { family: 6, address: '2001:db8::', length: 10 });
});

test('malformed addresses, prefixes and names throw NetInputError', () => {
  for (const bad of [
    '',
    'abc',
    '192.0.2.300/24',
    '192.0.2.1/33',
    '192.0.2.1/',
    '192.0.2.1/-1',
    '192.0.2.1/2x',
    '2001:db8::1/129',
    '2001:db8::g/64',
    'fe80::1%eth0/64',
    '192.0.2.1/24/1',
    ' 192.0.2.1/24',
  ]) {
    assert.throws(
      () => parseCidr(bad),
      (e: unknown) => e instanceof NetInputError,
      bad,
    );
  }
  for (const bad of ['', '192.0.2.1/24', 'x', '2001:db8:::1']) {
    assert.throws(
      () => parseIp(bad),
      (e: unknown) => e instanceof NetInputError,
      bad,
    );
  }
  for (const bad of ['', 'a/b', 'has space', 'sixteen-chars-xx', 'a:1', '.', '..']) {
    assert.throws(
      () => checkIfname(bad),
      (e: unknown) => e instanceof NetInputError,
      bad,
    );
  }
  assert.is(checkIfname('veth0'), 'veth0');
});

test.run();
