import { describe, expect, it } from 'vitest';
import {
  bridgeMacOf,
  cidrContains,
  formatIPv4,
  hostRange4,
  DEFAULT_BRIDGE,
  gateway4Of,
  IFNAME_MAX,
  nftRemoveTables,
  nftRuleset,
  parsePublish,
  parseSubnet4,
  planPrivateNet,
  validatePlan,
} from '../../src/net/bridgeplan.js';
import { isPaeneError } from '../../src/model/errors.js';
import { XID_MAX, XID_MIN } from '../../src/context/config.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isPaeneError(e) ? e.code : 'not a PaeneError';
  }
  return undefined;
}

const plan = (xid: number, address4: string, publish = [] as ReturnType<typeof parsePublish>[]) =>
  planPrivateNet(DEFAULT_BRIDGE, { name: `c${xid}`, xid, address4, publish });

describe('private network plan', () => {
  it('names the host end pn<xid>, within IFNAMSIZ, unique per xid', () => {
    const names = new Set<string>();
    for (const xid of [XID_MIN, 7, 300, 9999, XID_MAX]) {
      const p = plan(xid, '10.88.0.2');
      expect(p.hostIf.length).toBeLessThanOrEqual(IFNAME_MAX);
      expect(p.hostIf).toBe(`pn${xid}`);
      expect(p.guestIf).toBe('eth0');
      names.add(p.hostIf);
    }
    expect(names.size).toBe(5);
    expect(code(() => plan(1, '10.88.0.2'))).toBe('invalid-argument');
    expect(code(() => plan(XID_MAX + 1, '10.88.0.2'))).toBe('invalid-argument');
  });

  it('derives a locally administered unicast MAC, unique per xid and distinct from the bridge', () => {
    const macs = new Set<string>();
    for (let xid = XID_MIN; xid <= XID_MAX; xid++) {
      const mac = plan(xid, '10.88.0.2').mac;
      macs.add(mac);
    }
    expect(macs.size).toBe(XID_MAX - XID_MIN + 1);
    for (const mac of [plan(7, '10.88.0.2').mac, bridgeMacOf('paene0')]) {
      expect(mac).toMatch(/^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      const first = parseInt(mac.slice(0, 2), 16);
      expect(first & 2).toBe(2); // locally administered
      expect(first & 1).toBe(0); // unicast
    }
    expect(plan(300, '10.88.0.2').mac).toBe('02:50:00:00:01:2c');
    expect(macs.has(bridgeMacOf('paene0'))).toBe(false);
    expect(bridgeMacOf('paene0')).toBe(bridgeMacOf('paene0'));
  });

  it('takes the gateway and prefix from the subnet', () => {
    const p = plan(7, '10.88.3.4');
    expect(p).toMatchObject({ bridge: 'paene0', gateway4: '10.88.0.1', prefix: 16, address4: '10.88.3.4' });
    expect(gateway4Of({ bridge: 'br1', subnet4: '192.168.7.0/24' })).toBe('192.168.7.1');
  });

  it('refuses addresses outside the subnet, the network, broadcast and gateway addresses', () => {
    for (const a of ['10.89.0.2', '10.88.0.0', '10.88.255.255', '10.88.0.1', '10.88.0', '10.88.0.02', '10.88.0.256', '']) {
      expect(
        code(() => plan(7, a)),
        a,
      ).toBe('invalid-argument');
    }
  });

  it('refuses bad subnets and bridge names', () => {
    for (const subnet4 of [
      '10.88.0.0',
      '10.88.0.0/7',
      '10.88.0.0/31',
      '10.88.0.0/32',
      '10.88.0.1/16',
      '300.1.0.0/16',
      'x/16',
      '10.88.0.0/16/1',
      '::/64',
    ]) {
      expect(
        code(() => planPrivateNet({ bridge: 'paene0', subnet4 }, { name: 'a', xid: 7, address4: '10.88.0.2', publish: [] })),
        subnet4,
      ).toBe('invalid-argument');
    }
    expect(() => parseSubnet4('10.88.1.0/16')).toThrow(/did you mean 10\.88\.0\.0\/16/);
    for (const bridge of ['', 'a'.repeat(16), 'br 0', 'br/0', 'br"0', '-br', 'pn7']) {
      expect(
        code(() => nftRuleset({ bridge, subnet4: '10.88.0.0/16' }, [])),
        bridge,
      ).toBe('invalid-argument');
    }
    expect(parseSubnet4('192.168.7.0/24')).toMatchObject({ prefix: 24 });
    expect(parseSubnet4('10.0.0.0/8').prefix).toBe(8);
    expect(parseSubnet4('10.0.0.4/30').prefix).toBe(30);
  });
});

describe('--publish', () => {
  it('parses HOSTPORT:PORT with an optional protocol', () => {
    expect(parsePublish('8080:80')).toEqual({ hostPort: 8080, port: 80, proto: 'tcp' });
    expect(parsePublish('8080:80/tcp')).toEqual({ hostPort: 8080, port: 80, proto: 'tcp' });
    expect(parsePublish('5353:53/udp')).toEqual({ hostPort: 5353, port: 53, proto: 'udp' });
    expect(parsePublish('65535:1/UDP')).toEqual({ hostPort: 65535, port: 1, proto: 'udp' });
  });
  it('refuses malformed input with a clear message', () => {
    for (const s of [
      '',
      '80',
      ':80',
      '80:',
      '0:80',
      '80:0',
      '65536:80',
      '80:65536',
      '80:80/sctp',
      '80:80/',
      'a:b',
      '-1:80',
      '08080:80',
      '1.5:80',
      '1:2:3',
      '80 :80',
      '80:80/tcp/udp',
    ]) {
      expect(
        code(() => parsePublish(s)),
        s,
      ).toBe('invalid-argument');
      expect(() => parsePublish(s)).toThrow(/invalid --publish/);
    }
  });
  it('refuses a host port published twice by one context, and across contexts', () => {
    expect(code(() => plan(7, '10.88.0.2', [parsePublish('80:80'), parsePublish('80:81')]))).toBe('invalid-argument');
    // the same number for tcp and udp is two different ports
    expect(plan(7, '10.88.0.2', [parsePublish('80:80'), parsePublish('80:80/udp')]).publish).toHaveLength(2);
    const a = plan(7, '10.88.0.2', [parsePublish('80:80')]);
    const b = plan(8, '10.88.0.3', [parsePublish('80:8080')]);
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [a, b]))).toBe('exists');
  });
});

describe('IPv4 pool', () => {
  it('hands out host addresses only: never network, broadcast or reserved', () => {
    const gw = gateway4Of(DEFAULT_BRIDGE);
    const r = hostRange4('10.88.0.0/16', [gw]);
    expect([formatIPv4(r.first), formatIPv4(r.last)]).toEqual(['10.88.0.1', '10.88.255.254']);
    expect([...r.skip].map(formatIPv4)).toEqual(['10.88.0.1']);
    // a /30 has two host addresses: the gateway and one guest
    const tiny = hostRange4('10.1.0.0/30', ['10.1.0.1']);
    expect(tiny.last - tiny.first + 1 - tiny.skip.size).toBe(1);
  });
  it('knows what a subnet contains', () => {
    expect(cidrContains('10.88.0.0/16', '10.88.255.254')).toBe(true);
    expect(cidrContains('10.88.0.0/16', '10.89.0.1')).toBe(false);
    expect(cidrContains('192.168.7.0/24', '192.168.7.0')).toBe(true);
    expect(code(() => cidrContains('10.88.0.0/16', '10.88.0'))).toBe('invalid-argument');
  });
});

describe('nftables ruleset', () => {
  const a = plan(7, '10.88.0.2', [parsePublish('18080:8080'), parsePublish('5353:53/udp')]);
  const b = plan(300, '10.88.0.3');
  const text = nftRuleset(DEFAULT_BRIDGE, [a, b]);

  it('replaces paene tables whole: a create-then-delete prefix in the same file', () => {
    expect(text.startsWith(nftRemoveTables())).toBe(true);
    // the bridge family's too: the bridged network's table (before the routed one) goes on a reload
    expect(nftRemoveTables()).toBe(
      'table inet paene\ndelete table inet paene\ntable netdev paene\ndelete table netdev paene\ntable bridge paene\ndelete table bridge paene\n',
    );
    expect(text.match(/^table inet paene \{$/gm)).toHaveLength(1);
    expect(text.match(/^table netdev paene \{$/gm)).toHaveLength(1);
    expect(text).not.toMatch(/^table bridge paene \{$/m);
  });

  it('masquerades the subnet leaving by other interfaces, localhost and hairpin connections', () => {
    expect(text).toContain('oifname != "pn*" ip saddr 10.88.0.0/16 masquerade');
    expect(text).toContain('oifname "pn*" ip saddr 127.0.0.0/8 masquerade');
    expect(text).toContain('oifname "pn*" ip saddr 10.88.0.0/16 ct status dnat masquerade');
  });

  it('DNATs every publish in prerouting and in output', () => {
    const tcp = 'fib daddr type local tcp dport 18080 dnat ip to 10.88.0.2:8080';
    const udp = 'fib daddr type local udp dport 5353 dnat ip to 10.88.0.2:53';
    for (const r of [tcp, udp]) expect(text.split(r).length - 1).toBe(2);
    const prerouting = text.slice(text.indexOf('chain prerouting'), text.indexOf('chain output'));
    const output = text.slice(text.indexOf('chain output'), text.indexOf('chain postrouting'));
    for (const chain of [prerouting, output]) for (const r of [tcp, udp]) expect(chain).toContain(r);
    expect(output).toContain('type nat hook output');
  });

  it('filters each port at its own ingress: its MAC, IPv4 from its address and not for 127/8, ARP with its own sender, nothing else', () => {
    const netdev = text.slice(text.indexOf('table netdev paene {'), text.indexOf('table inet paene {'));
    // no hook on the host's other packets: nothing of the ports' walls in the inet family
    expect(text.slice(text.indexOf('table inet paene {'))).not.toContain('hook prerouting priority raw');
    for (const p of [a, b]) {
      const chain = netdev.slice(netdev.indexOf(`chain port_${p.hostIf} {`)).split('\t}')[0] as string;
      expect(chain).toContain(`type filter hook ingress device "${p.hostIf}" priority filter; policy drop;`);
      const rules = chain
        .split('\n')
        .slice(2)
        .map((r) => r.trim())
        .filter((r) => r !== '');
      expect(rules).toEqual([
        `ether saddr != ${p.mac} drop`,
        `ether type ip ip saddr ${p.address4} ip daddr != 127.0.0.0/8 accept`,
        `ether type arp arp htype 1 arp ptype 0x0800 arp hlen 6 arp plen 4 arp saddr ether ${p.mac} arp saddr ip ${p.address4} accept`,
      ]);
    }
  });

  it('a port without a plan gets a chain that drops everything; a port cannot be both', () => {
    const t = nftRuleset(DEFAULT_BRIDGE, [a], ['pn300', 'pn9']);
    for (const port of ['pn300', 'pn9']) {
      const chain = t.slice(t.indexOf(`chain closed_${port} {`)).split('\t}')[0] as string;
      expect(
        chain
          .trim()
          .split('\n')
          .map((r) => r.trim()),
      ).toEqual([`chain closed_${port} {`, `type filter hook ingress device "${port}" priority filter; policy drop;`]);
    }
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [a], ['pn7']))).toBe('invalid-argument');
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [a], ['p1n9']))).toBe('invalid-argument');
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [a], ['pn9"; drop'] as string[]))).toBe('invalid-argument');
  });

  it('without plans: still the masquerade, no port chain', () => {
    const empty = nftRuleset(DEFAULT_BRIDGE, []);
    expect(empty).not.toContain('hook ingress');
    expect(empty).not.toContain('dnat ip to');
    expect(empty).toContain('oifname != "pn*" ip saddr 10.88.0.0/16 masquerade');
    // no empty base chain: each would cost its hook on every packet or new connection of the host
    for (const chain of ['chain prerouting', 'chain output', 'chain forward']) expect(empty).not.toContain(chain);
    expect(nftRuleset(DEFAULT_BRIDGE, [b])).not.toContain('type nat hook prerouting');
    expect(text).not.toContain('chain forward');
  });

  it('refuses plans that collide or belong to another bridge', () => {
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [a, plan(8, '10.88.0.2')]))).toBe('exists');
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [a, a]))).toBe('exists');
    const other = planPrivateNet({ bridge: 'br1', subnet4: '10.88.0.0/16' }, { name: 'x', xid: 9, address4: '10.88.0.9', publish: [] });
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [other]))).toBe('invalid-argument');
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [{ ...b, mac: '02:50:00:00:01:2c; drop' }]))).toBe('invalid-argument');
    expect(code(() => nftRuleset(DEFAULT_BRIDGE, [{ ...b, address4: '10.99.0.3' }]))).toBe('invalid-argument');
  });
});

describe('plan validation', () => {
  it('accepts what planPrivateNet makes and refuses tampered plans', () => {
    const p = plan(7, '10.88.0.2', [parsePublish('80:80')]);
    expect(validatePlan(DEFAULT_BRIDGE, p)).toBe(p);
    for (const bad of [
      { ...p, address4: '10.88.0.2\nroute add default via 1.2.3.4' },
      { ...p, gateway4: '10.88.0.9' },
      { ...p, prefix: 24 },
      { ...p, hostIf: 'eth0' },
      { ...p, mac: '02:50:00:00:00:07 ' },
      { ...p, guestIf: 'eth1' as 'eth0' },
      { ...p, bridge: 'br9' },
    ]) {
      expect(
        code(() => validatePlan(DEFAULT_BRIDGE, bad)),
        JSON.stringify(bad),
      ).toBe('invalid-argument');
    }
  });
});
