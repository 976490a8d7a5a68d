// Egress as data (src/net/model.ts, src/net/bridgeplan.ts): the --egress
// flag, the egress pool setting, the pool's ruleset and a private context's
// closed egress in the private ruleset. The kernel side is test/net/egress.test.ts.

import { describe, expect, it } from 'vitest';
import { DEFAULT_BRIDGE, egressRuleset, egressTableOf, nftRuleset, PORT_GROUP, planPrivateNet } from '../../src/net/bridgeplan.js';
import {
  addressPool,
  defaultNetSettings,
  describeNet,
  egressOf,
  egressPoolCandidates,
  egressPoolChange,
  inEgressPool,
  netSpecFrom,
  validateNetSettings,
  validateNetSpec,
} from '../../src/net/model.js';

describe('--egress', () => {
  it('is nat unless none is asked for, for shared and private only', () => {
    expect(egressOf(netSpecFrom({}))).toBe('nat');
    expect(netSpecFrom({ egress: 'none' }).egress).toBe('none');
    expect(netSpecFrom({ mode: 'private', egress: 'nat' }).egress).toBe('nat');
    expect(() => netSpecFrom({ egress: 'open' })).toThrow(/unknown egress 'open': use nat or none/);
    expect(() => netSpecFrom({ mode: 'none', egress: 'none' })).toThrow(/--egress is for shared and private/);
    expect(validateNetSpec({ mode: 'shared', addresses: ['10.77.0.2'], publish: [], egress: 'none' }, 'x').egress).toBe('none');
    expect(describeNet({ mode: 'shared', addresses: ['10.77.0.2'], publish: [], egress: 'none' })).toBe('shared 10.77.0.2 egress none');
  });
});

describe('egress by default (auto)', () => {
  it("is a new root's default; a net.json without the field keeps the 127.x pool", () => {
    const d = defaultNetSettings();
    expect(d.egressAuto).toBe(true);
    expect(defaultNetSettings('abcdef12').egressAuto).toBe(true);
    // written before egress was the default (or by --egress-pool none): no field, no auto
    expect(validateNetSettings({ published: [] }, d, 'net.json').egressAuto).toBeUndefined();
    expect(validateNetSettings({ egressAuto: false }, d, 'net.json').egressAuto).toBeUndefined();
    expect(validateNetSettings({ egressAuto: true, egressPool4: '10.77.0.0/16' }, d, 'net.json')).toMatchObject({
      egressAuto: true,
      egressPool4: '10.77.0.0/16',
    });
    expect(() => validateNetSettings({ egressAuto: 'yes' }, d, 'net.json')).toThrow(/egressAuto must be true or false/);
  });
  it('--egress-pool auto|none|CIDR', () => {
    expect(egressPoolChange('auto')).toEqual({ egressAuto: true });
    expect(egressPoolChange('NONE')).toEqual({ egressPool4: undefined, egressAuto: false });
    expect(egressPoolChange('10.77.0.0/24')).toEqual({ egressPool4: '10.77.0.0/24', egressAuto: false });
    for (const bad of ['', 'off', '10.77.0.0', '10.77.0.0/24; rm', 'fd00::/64'])
      expect(() => egressPoolChange(bad)).toThrow(/use auto, none or an IPv4 CIDR/);
  });
  it('picks from private /16s below the private subnets (10.88 on), none on 127/8, no two alike', () => {
    const c = egressPoolCandidates();
    expect(c[0]).toBe('10.77.0.0/16');
    expect(new Set(c).size).toBe(c.length);
    for (const x of c) {
      expect(x).toMatch(/^10\.(\d+)\.0\.0\/16$/);
      expect(Number(x.split('.')[1])).toBeLessThan(88);
      expect(() => validateNetSettings({ egressPool4: x }, defaultNetSettings(), 'x')).not.toThrow();
    }
  });
});

describe('the egress pool', () => {
  const base = defaultNetSettings();
  it('gives new shared contexts their address; refused on 127.0.0.0/8', () => {
    const s = validateNetSettings({ egressPool4: '10.77.0.0/24' }, base, 'net.json');
    expect(addressPool('shared', s)).toMatchObject({ cidr: '10.77.0.0/24' });
    expect(addressPool('shared', base)).toMatchObject({ cidr: '127.77.0.0/16' });
    expect(inEgressPool(s, '10.77.0.9')).toBe(true);
    expect(inEgressPool(s, '127.77.0.9')).toBe(false);
    expect(() => validateNetSettings({ egressPool4: '127.9.0.0/16' }, base, 'net.json')).toThrow(/never routes off the host/);
    expect(() => validateNetSettings({ egressPool4: '10.77.0.1/24' }, base, 'net.json')).toThrow(/host bits are set/);
  });

  it('has a table of its own: masquerade out, closed addresses refused (TCP reset first)', () => {
    expect(egressTableOf('10.77.0.0/24')).toBe('paene_eg_10_77_0_0_24');
    const t = egressRuleset('10.77.0.0/24', ['10.77.0.5']);
    expect(t).toContain('table inet paene_eg_10_77_0_0_24 {');
    expect(t).toContain('set closed { type ipv4_addr; elements = { 10.77.0.5 }; }');
    expect(t.indexOf('reject with tcp reset')).toBeLessThan(t.indexOf('reject with icmpx'));
    expect(t).toContain('ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 oifname != "lo" masquerade');
    expect(egressRuleset('10.77.0.0/24', [])).toContain('set closed { type ipv4_addr; }');
    // into a private network (any root's port, by its device group) only by a published port (DNAT)
    expect(t).toContain(`ip saddr 10.77.0.0/24 oifgroup ${PORT_GROUP} ct status & dnat == 0 meta l4proto tcp reject with tcp reset`);
    expect(() => egressRuleset('10.77.0.0/24', ['10.78.0.5'])).toThrow(/not in the egress pool/);
  });

  it("a private context's --egress none: its new connections never leave the private network, answers still do", () => {
    const open = planPrivateNet(DEFAULT_BRIDGE, { name: 'a', xid: 2, address4: '10.88.0.2', publish: [] });
    const closed = planPrivateNet(DEFAULT_BRIDGE, { name: 'b', xid: 3, address4: '10.88.0.3', publish: [], egress: 'none' });
    const t = nftRuleset(DEFAULT_BRIDGE, [open, closed]);
    expect(t).toContain('ct state established,related accept');
    expect(t).toContain('iifname "pn*" oifname != "pn*" ip saddr { 10.88.0.3 } meta l4proto tcp reject with tcp reset');
    expect(nftRuleset(DEFAULT_BRIDGE, [open])).not.toContain('reject');
  });
});
