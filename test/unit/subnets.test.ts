// Subnet and name choice (src/model/subnets.ts): pure, no host. The host's
// networks and the other roots' claims are handed in as data.

import { describe, expect, it } from 'vitest';
import {
  ANY_PORT_RE,
  type HostNet,
  chooseNetNames,
  chooseSubnet,
  hostOverlap,
  netNamesOf,
  overlaps,
  range4,
  subnetCandidates,
  subnetRefusal,
} from '../../src/model/subnets.js';
import { DEFAULT_BRIDGE, hostIfOf, nftRuleset, planPrivateNet } from '../../src/net/bridgeplan.js';

const podman: HostNet = { cidr: '10.88.0.1/16', what: 'address 10.88.0.1/16 on cni-podman0', dev: 'cni-podman0' };

describe('IPv4 ranges', () => {
  it('reads networks and bare addresses, and tells overlap', () => {
    expect(range4('10.88.0.0/16')).toEqual({ first: 10 * 2 ** 24 + 88 * 2 ** 16, last: 10 * 2 ** 24 + 88 * 2 ** 16 + 65535 });
    expect(range4('10.88.3.7/16')).toEqual(range4('10.88.0.0/16')); // an interface address's network
    expect(range4('192.0.2.7')).toEqual({ first: 3221225991, last: 3221225991 });
    for (const bad of ['10.88.0.0/33', '300.1.1.1/8', 'fd00::/8', 'default', '']) expect(range4(bad)).toBeUndefined();
    expect(overlaps('10.88.0.0/16', '10.88.0.1/16')).toBe(true);
    expect(overlaps('10.88.0.0/16', '10.0.0.0/8')).toBe(true);
    expect(overlaps('10.88.0.0/16', '10.89.0.0/16')).toBe(false);
    expect(overlaps('10.88.0.0/16', 'default')).toBe(false);
  });
});

describe('subnet choice', () => {
  it("skips Podman's 10.88.0.0/16 and another root's subnet, naming why", () => {
    const claimed = new Map([['10.89.0.0/16', 'state root /srv/b']]);
    const c = chooseSubnet(subnetCandidates(), claimed, [podman]);
    expect(c).toEqual({
      cidr: '10.90.0.0/16',
      skipped: ['10.88.0.0/16 (address 10.88.0.1/16 on cni-podman0)', '10.89.0.0/16 (10.89.0.0/16 of state root /srv/b)'],
    });
  });

  it("takes the default when nothing overlaps; the root's own bridge does not count against it", () => {
    const own: HostNet = { cidr: '10.88.0.0/16', what: 'route 10.88.0.0/16 dev paene0', dev: 'paene0' };
    expect(chooseSubnet(subnetCandidates(), new Map(), [own], new Set(['paene0']))?.cidr).toBe('10.88.0.0/16');
    expect(chooseSubnet(subnetCandidates(), new Map(), [own])?.cidr).toBe('10.89.0.0/16');
  });

  it('a wide host route (10.0.0.0/8) moves the choice to 172.16', () => {
    const wide: HostNet = { cidr: '10.0.0.0/8', what: 'route 10.0.0.0/8 dev wg0', dev: 'wg0' };
    expect(chooseSubnet(subnetCandidates(), new Map(), [wide])?.cidr).toBe('172.16.0.0/16');
    expect(chooseSubnet(['10.88.0.0/16'], new Map(), [wide])).toBeUndefined();
  });

  it('a subnet given explicitly is refused with the overlap named', () => {
    expect(subnetRefusal('10.88.0.0/16', new Map(), [podman])).toBe(
      "subnet 10.88.0.0/16 overlaps the host's address 10.88.0.1/16 on cni-podman0",
    );
    expect(subnetRefusal('10.88.128.0/17', new Map([['10.88.0.0/16', 'state root /srv/a']]), [])).toBe(
      'subnet 10.88.128.0/17 overlaps 10.88.0.0/16, the private subnet of state root /srv/a',
    );
    expect(subnetRefusal('10.77.0.0/16', new Map([['10.88.0.0/16', 'x']]), [podman])).toBeUndefined();
    expect(hostOverlap('10.88.0.0/16', [podman], new Set(['cni-podman0']))).toBeUndefined();
  });
});

describe('name sets', () => {
  it('set 0 keeps the old names; others never match each other', () => {
    expect(netNamesOf(0)).toEqual({ bridge: 'paene0', table: 'paene', portPrefix: 'pn' });
    expect(netNamesOf(12)).toEqual({ bridge: 'paene12', table: 'paene12', portPrefix: 'p12n' });
    // one root's "unknown port" wildcard never covers another root's ports
    const ports = [0, 1, 12, 123].map((n) => `${netNamesOf(n).portPrefix}7`);
    for (const n of [0, 1, 12, 123]) {
      const prefix = netNamesOf(n).portPrefix;
      expect(ports.filter((p) => p.startsWith(prefix))).toEqual([`${prefix}7`]);
    }
    for (const p of ports) expect(ANY_PORT_RE.test(p)).toBe(true);
    expect(ANY_PORT_RE.test('paene0')).toBe(false);
  });

  it('the lowest set whose bridge, table and prefix are all free', () => {
    expect(chooseNetNames(new Set())?.index).toBe(0);
    expect(chooseNetNames(new Set(['paene0']))?.index).toBe(1);
    expect(chooseNetNames(new Set(['table paene', 'prefix p1n']))?.index).toBe(2);
    expect(chooseNetNames(new Set(['paene0']), 1)).toBeUndefined();
  });

  it("a root's plan and ruleset use its own table and veth prefix", () => {
    const cfg = { bridge: 'paene3', subnet4: '10.91.0.0/16', table: 'paene3', portPrefix: 'p3n' };
    const plan = planPrivateNet(cfg, { name: 'db', xid: 4, address4: '10.91.0.2', publish: [] });
    expect(plan.hostIf).toBe('p3n4');
    const text = nftRuleset(cfg, [plan]);
    expect(text).toContain('table inet paene3 {');
    expect(text).toContain('table netdev paene3 {');
    expect(text).toContain('chain port_p3n4 {');
    expect(text).toContain('oifname != "p3n*" ip saddr 10.91.0.0/16 masquerade');
    expect(text).not.toMatch(/table (inet|netdev|bridge) paene\b[^3]/);
    // the default keeps today's names
    expect(hostIfOf(4)).toBe('pn4');
    expect(nftRuleset(DEFAULT_BRIDGE, [])).toContain('oifname != "pn*" ip saddr 10.88.0.0/16 masquerade');
    expect(() => planPrivateNet({ ...cfg, portPrefix: 'x;' }, { name: 'db', xid: 4, address4: '10.91.0.2', publish: [] })).toThrow(
      /invalid veth prefix/,
    );
  });
});
