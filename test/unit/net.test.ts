import { describe, expect, it } from 'vitest';
import { PaeneError } from '../../src/model/errors.js';
import {
  addressPool,
  ipv4Number,
  canonicalIp,
  defaultNetSettings,
  describeNet,
  hostModeRefusal,
  netSpecFrom,
  parseNetMode,
  reservedAddressOf,
  validateNetSettings,
  validateNetSpec,
} from '../../src/net/model.js';
import { newConfig, validateConfig } from '../../src/context/config.js';

describe('network spec', () => {
  it('defaults to shared with the address left to the pool', () => {
    expect(netSpecFrom({})).toEqual({ mode: 'shared', addresses: [], publish: [] });
  });

  it('parses modes case-insensitively and names the known ones on a typo', () => {
    expect(parseNetMode('Private')).toBe('private');
    expect(() => parseNetMode('bridge')).toThrow(/shared, private, none, host/);
  });

  it('canonicalises addresses and refuses non-addresses', () => {
    expect(canonicalIp(' 127.77.0.2 ')).toBe('127.77.0.2');
    expect(canonicalIp('FD00:0:0::0002')).toBe('fd00::2');
    expect(canonicalIp('::ffff:7f00:1')).toBe('::ffff:127.0.0.1');
    expect(() => canonicalIp('127.1')).toThrow(PaeneError);
    expect(() => canonicalIp('fe80::1%eth0')).toThrow(/invalid IP address/);
    expect(() => canonicalIp('host.example')).toThrow(/invalid IP address/);
  });

  it('writes IPv6 as RFC 5952 (longest zero run, first on a tie)', () => {
    expect(canonicalIp('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(canonicalIp('1:0:0:2:0:0:3:4')).toBe('1::2:0:0:3:4');
    expect(canonicalIp('::')).toBe('::');
    expect(canonicalIp('1:2:3:4:5:6:7:8')).toBe('1:2:3:4:5:6:7:8');
  });

  it('checks addresses and ports against the mode', () => {
    expect(netSpecFrom({ mode: 'shared', ips: ['127.77.0.5', 'fd00::5', '127.77.0.5'] }).addresses).toEqual(['127.77.0.5', 'fd00::5']);
    expect(() => netSpecFrom({ mode: 'none', ips: ['127.77.0.5'] })).toThrow(/owns no address/);
    expect(() => netSpecFrom({ mode: 'shared', publish: ['8080:80'] })).toThrow(/--publish needs --net private/);
    expect(() => netSpecFrom({ mode: 'private', ips: ['fd00::1'] })).toThrow(/one IPv4 address/);
    expect(() => netSpecFrom({ mode: 'private', publish: ['8080:80', '8080:81'] })).toThrow(/published twice/);
    expect(netSpecFrom({ mode: 'private', publish: ['8080:80', '8080:80/udp'] }).publish).toHaveLength(2);
    const many = Array.from({ length: 17 }, (_x, i) => `127.77.1.${i + 1}`);
    expect(() => netSpecFrom({ mode: 'shared', ips: many })).toThrow(/at most 16 IPv4/);
  });

  it('refuses --net host unless the profile is privileged, at create and for configs read back', () => {
    expect(hostModeRefusal('privileged')).toBeUndefined();
    expect(hostModeRefusal('secure')).toMatch(/needs --caps privileged/);
    const base = { name: 'w', xid: 5, image: 'base' };
    expect(() => newConfig({ ...base, net: netSpecFrom({ mode: 'host' }) })).toThrow(/privileged/);
    const c = newConfig({ ...base, caps: { profile: 'privileged', add: [], drop: [] }, net: netSpecFrom({ mode: 'host' }) });
    expect(c.net.mode).toBe('host');
  });

  it('reads configs written before network contexts as shared with no address yet', () => {
    const old = {
      version: 1,
      name: 'w',
      xid: 5,
      image: 'base',
      hostname: 'w',
      created: 'x',
      caps: { profile: 'secure', add: [], drop: [] },
      ccaps: [],
      limits: newConfig({ name: 'w', xid: 5, image: 'base' }).limits,
    };
    expect(validateConfig(old, 'config.json').net).toEqual({ mode: 'shared', addresses: [], publish: [] });
    expect(() => validateConfig({ ...old, net: { mode: 'jail' } }, 'config.json')).toThrow(/unknown network mode/);
    expect(() => validateNetSpec({ mode: 'shared', addresses: 'x' }, 'w')).toThrow(/must be a list/);
  });

  it('describes each model in one line', () => {
    expect(describeNet({ mode: 'shared', addresses: ['127.77.0.2'], publish: [] })).toBe('shared 127.77.0.2');
    expect(describeNet({ mode: 'private', addresses: ['10.88.0.2'], publish: [{ hostPort: 8080, port: 80, proto: 'tcp' }] })).toBe(
      'private 10.88.0.2 publish 8080:80/tcp',
    );
    expect(describeNet({ mode: 'host', addresses: [], publish: [] })).toMatch(/no wall/);
  });
});

describe('network settings and pools', () => {
  it('gives the default root 127.77.0.0/16 and other roots a /16 of their own', () => {
    expect(defaultNetSettings().sharedPool4).toBe('127.77.0.0/16');
    const a = defaultNetSettings('0a1b2c3d').sharedPool4;
    const b = defaultNetSettings('ffee0011').sharedPool4;
    for (const p of [a, b]) expect(p).toMatch(/^127\.(1\d\d|2[0-4]\d)\.0\.0\/16$/);
    expect(a).not.toBe(b);
  });

  it("takes a context's address from its mode's pool, keeping the first one back for the host and the gateway", () => {
    const s = defaultNetSettings();
    expect(reservedAddressOf(s.sharedPool4)).toBe('127.77.0.1');
    const shared = addressPool('shared', s);
    expect(shared?.cidr).toBe('127.77.0.0/16');
    expect(shared?.skip.has(shared.first)).toBe(true); // 127.77.0.1
    expect(addressPool('private', s)?.cidr).toBe('10.88.0.0/16');
    expect(addressPool('none', s)).toBeUndefined();
    expect(ipv4Number('127.77.0.2')).toBe(((127 * 256 + 77) * 256 + 0) * 256 + 2);
    expect(ipv4Number('::1')).toBeUndefined();
  });

  it('validates a settings file with clear errors', () => {
    const d = defaultNetSettings();
    expect(validateNetSettings({ published: ['192.0.2.7'] }, d, 'net.json').published).toEqual(['192.0.2.7']);
    expect(() => validateNetSettings({ pool: 'x' }, d, 'net.json')).toThrow(/unknown field 'pool'/);
    expect(() => validateNetSettings({ sharedPool4: '127.0.0.0/33' }, d, 'net.json')).toThrow(/prefix/);
    expect(() => validateNetSettings({ bridge: { bridge: 'pn5', subnet4: '10.1.0.0/16' } }, d, 'net.json')).toThrow(/veth/);
  });
});
