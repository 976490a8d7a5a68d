// Several state roots on one host (issue 25): addresses, subnets, bridges,
// veths and nft tables are host resources, claimed in the host-wide registry
// (src/net/registry.ts), so no two roots hand out the same one, a root's
// destroy removes only its own, and an address a context of another root
// owns is refused by name. A subnet that overlaps a network already on the
// host (Podman's cni-podman0 holds 10.88.0.1/16) is skipped, or refused when
// given. Every bridge, veth and nft table lives in a network namespace this
// file makes; on the host's own stack only 127.0.0.0/8 addresses are claimed.

import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openRuntime } from '../../src/runtime/open.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { describeReal, disposeRuntime, runCliAsync, tempRoot } from '../helpers.js';

const sh = (args: string[]) => spawnSync(args[0] as string, args.slice(1), { encoding: 'utf8' });
const inNs = (ns: string, args: string[]) => sh(['ip', 'netns', 'exec', ns, ...args]);
const get = (ns: string, url: string) => inNs(ns, ['curl', '-s', '--max-time', '3', url]).stdout.trim();
/** busybox httpd in a context, answering `text` on `port` */
const serve = (rt: Runtime, name: string, port: number, text: string) =>
  rt.execCapture(name, ['/bin/sh', '-c', `mkdir -p /tmp/www && echo ${text} > /tmp/www/index.html && httpd -p ${port} -h /tmp/www`]);

describeReal('state roots share the host: one registry of network names', () => {
  const netns = `paene-t-roots-${process.pid}`;
  /** a second host-side namespace, where no other root has a subnet yet */
  const netns2 = `paene-t-roots2-${process.pid}`;
  const roots: { root: string; rt: Runtime }[] = [];
  const open = (tag: string, hostNetns: string | null = netns): Runtime => {
    const root = tempRoot(tag);
    const rt = openRuntime(root);
    if (hostNetns) rt.network.saveSettings({ hostNetns: `/run/netns/${hostNetns}` });
    roots.push({ root, rt });
    return rt;
  };

  beforeAll(() => {
    for (const ns of [netns, netns2]) {
      const r = sh(['ip', 'netns', 'add', ns]);
      if (r.status !== 0) throw new Error(`ip netns add: ${r.stderr}`);
      inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
    }
  });

  afterAll(async () => {
    const leaks: string[] = [];
    try {
      for (const { rt } of roots) for (const n of rt.store.names()) await rt.destroy(n, { force: true }).catch(() => undefined);
      for (const { rt, root } of roots) {
        try {
          leaks.push(...rt.network.leftovers().map((l) => `${root}: ${l}`));
          rt.network.releaseHostClaims();
        } finally {
          await disposeRuntime(rt, root);
        }
      }
    } finally {
      for (const ns of [netns, netns2]) sh(['ip', 'netns', 'delete', ns]);
    }
    expect(leaks).toEqual([]);
  });

  it("two roots' private contexts get their own subnets, bridges, veths and tables; one root's destroy leaves the other's running and published", async () => {
    const a = open('roots-a');
    const b = open('roots-b');
    await a.create({
      name: 'db',
      image: 'base',
      net: { mode: 'private', addresses: [], publish: [{ hostPort: 5433, port: 5432, proto: 'tcp' }] },
    });
    await a.start('db');
    // a server in A's context on 5432, published on the host side's 5433
    await serve(a, 'db', 5432, 'from-a');
    const sa = a.network.settings();
    const addrA = a.config('db').net.addresses[0] as string;
    const fetchA = () => get(netns, `http://${sa.bridge.subnet4.replace(/0\/\d+$/, '1')}:5433/`);
    expect(fetchA()).toBe('from-a');

    await b.create({ name: 'other', image: 'base', net: { mode: 'private', addresses: [], publish: [] } });
    await b.start('other');
    await serve(b, 'other', 80, 'from-b');
    const sb = b.network.settings();
    const addrB = b.config('other').net.addresses[0] as string;
    console.log(
      `A: ${sa.bridge.bridge} ${sa.bridge.subnet4} table ${sa.bridge.table} ${addrA}; B: ${sb.bridge.bridge} ${sb.bridge.subnet4} table ${sb.bridge.table} ${addrB}`,
    );
    expect(addrB).not.toBe(addrA);
    expect(sb.bridge.subnet4).not.toBe(sa.bridge.subnet4);
    expect(sb.bridge.bridge).not.toBe(sa.bridge.bridge);
    expect(sb.bridge.table).not.toBe(sa.bridge.table);
    expect(sb.bridge.portPrefix).not.toBe(sa.bridge.portPrefix);
    // both answer, A still serves its published port
    expect(get(netns, `http://${addrA}:5432/`)).toBe('from-a');
    expect(get(netns, `http://${addrB}:80/`)).toBe('from-b');
    expect(fetchA()).toBe('from-a');

    // a host port A publishes is refused to B, naming A's context
    await expect(
      b.create({
        name: 'clash',
        image: 'base',
        net: { mode: 'private', addresses: [], publish: [{ hostPort: 5433, port: 80, proto: 'tcp' }] },
      }),
    ).rejects.toThrow(new RegExp(`host port tcp 5433 is already published by context 'db' of state root ${a.layout.root}`));
    expect(b.store.names()).toEqual(['other']);

    // B's destroy removes B's bridge and table, never A's
    await b.destroy('other', { force: true });
    expect(b.network.leftovers()).toEqual([]);
    // and its host-wide claims (its last context is gone); A's stay
    expect(b.network.registry(`/run/netns/${netns}`).ownedBy(b.layout.root)).toEqual([]);
    expect(
      a.network
        .registry(`/run/netns/${netns}`)
        .ownedBy(a.layout.root)
        .map((c) => c.kind)
        .sort(),
    ).toEqual(['bridge', 'port', 'prefix', 'subnet', 'table']);
    const tables = inNs(netns, ['nft', 'list', 'tables']).stdout;
    expect(tables).toContain(`table inet ${sa.bridge.table}`);
    expect(inNs(netns, ['ip', 'link', 'show', sa.bridge.bridge]).status).toBe(0);
    expect(get(netns, `http://${addrA}:5432/`)).toBe('from-a');
    expect(fetchA()).toBe('from-a');
  }, 120_000);

  it('an address a context of another root owns is refused by name; a pool shared by two roots hands out distinct addresses', async () => {
    const a = open('roots-sa', null);
    const c = open('roots-sc', null);
    const web = await a.create({ name: 'web', image: 'base', net: { mode: 'shared', addresses: [], publish: [] } });
    const owned = web.net.addresses[0] as string;
    await expect(c.create({ name: 'thief', image: 'base', net: { mode: 'shared', addresses: [owned], publish: [] } })).rejects.toThrow(
      new RegExp(`address ${owned.replaceAll('.', '\\.')} is already owned by context 'web' of state root ${a.layout.root}`),
    );
    expect(c.store.names()).toEqual([]);
    // the same pool in C: its lowest free address is not A's
    c.network.saveSettings({ sharedPool4: a.network.settings().sharedPool4 });
    const next = await c.create({ name: 'neighbour', image: 'base', net: { mode: 'shared', addresses: [], publish: [] } });
    expect(next.net.addresses[0]).not.toBe(owned);
    // a live add of A's address is refused as well
    await expect(c.changeAddress('neighbour', 'add', owned)).rejects.toThrow(/of state root/);
    // gone from A: C may take it
    await a.destroy('web');
    await c.changeAddress('neighbour', 'add', owned);
    expect(c.config('neighbour').net.addresses).toContain(owned);
  }, 60_000);

  it("a subnet that overlaps the host's networks is skipped, and refused with the overlap named when given", async () => {
    // what Podman leaves on a host: cni-podman0 with 10.88.0.1/16 (here a bridge of the test's, in its namespace)
    const dummy = 'paene-tpod0';
    expect(inNs(netns2, ['ip', 'link', 'add', dummy, 'type', 'bridge']).stderr).toBe('');
    try {
      expect(inNs(netns2, ['ip', 'addr', 'add', '10.88.0.1/16', 'dev', dummy]).status).toBe(0);
      expect(inNs(netns2, ['ip', 'link', 'set', dummy, 'up']).status).toBe(0);
      const d = open('roots-d', netns2);
      const ctx = await d.create({ name: 'p', image: 'base', net: { mode: 'private', addresses: [], publish: [] } });
      const s = d.network.settings();
      expect(s.bridge.subnet4).not.toBe('10.88.0.0/16');
      expect(ctx.net.addresses[0]?.startsWith('10.88.')).toBe(false);
      await d.start('p');
      await serve(d, 'p', 80, 'from-d');
      expect(get(netns2, `http://${ctx.net.addresses[0]}:80/`)).toBe('from-d');
      const e = open('roots-e', netns2);
      expect(() => e.network.saveSettings({ bridge: { bridge: 'paene-te0', subnet4: '10.88.0.0/16' } })).toThrow(
        new RegExp(`overlaps the host's (route 10\\.88\\.0\\.0/16 dev|address 10\\.88\\.0\\.1/16 on) ${dummy}`),
      );
      expect(() => e.network.saveSettings({ bridge: { bridge: 'paene-te0', subnet4: s.bridge.subnet4 } })).toThrow(
        new RegExp(`private subnet of state root ${d.layout.root}`),
      );
      // D's last context gone: its lease is given back, and E may take the subnet
      await d.destroy('p', { force: true });
      e.network.saveSettings({ bridge: { bridge: 'paene-te0', subnet4: s.bridge.subnet4 } });
      expect(e.network.settings().bridge).toMatchObject({ bridge: 'paene-te0', subnet4: s.bridge.subnet4 });
    } finally {
      inNs(netns2, ['ip', 'link', 'del', dummy]);
    }
  }, 60_000);

  it('three roots creating at once, one pool and one namespace: no address, subnet or name handed out twice', async () => {
    const rts = ['roots-m1', 'roots-m2', 'roots-m3'].map((t) => open(t));
    for (const rt of rts) rt.network.saveSettings({ sharedPool4: '127.201.0.0/24' });
    // the roots at once (within a root, one create after the other: they would queue on its create lock anyway)
    const runs = (
      await Promise.all(
        rts.map(async (rt) => [
          await runCliAsync(rt.layout.root, ['create', 's%d', '--count', '40']),
          await runCliAsync(rt.layout.root, ['create', 'p%d', '--count', '5', '--net', 'private']),
        ]),
      )
    ).flat();
    const failed = runs.filter((r) => r.code !== 0).map((r) => `${r.args.join(' ')}: ${r.stderr.trim()}`);
    if (failed.length > 0) console.log(failed.join('\n'));
    expect(failed).toEqual([]);
    const shared = rts.flatMap((rt) =>
      rt
        .list()
        .filter((c) => c.net.mode === 'shared')
        .flatMap((c) => c.net.addresses),
    );
    expect(shared.length).toBe(120);
    expect(new Set(shared).size).toBe(120);
    const nets = rts.map((rt) => rt.network.settings().bridge);
    for (const k of ['bridge', 'subnet4', 'table', 'portPrefix'] as const) expect(new Set(nets.map((b) => b[k])).size).toBe(3);
    const priv = rts.flatMap((rt) =>
      rt
        .list()
        .filter((c) => c.net.mode === 'private')
        .flatMap((c) => c.net.addresses),
    );
    expect(new Set(priv).size).toBe(15);
    // one private context of each root at once: three gateways, each with its own port, all answering
    await Promise.all(rts.map((rt) => rt.start('p1')));
    for (const rt of rts) {
      await serve(rt, 'p1', 80, rt.layout.root.slice(-6));
      expect(get(netns, `http://${rt.config('p1').net.addresses[0]}:80/`)).toBe(rt.layout.root.slice(-6));
    }
    console.log(`three roots: ${nets.map((b) => `${b.bridge} ${b.subnet4} ${b.portPrefix}`).join('; ')}`);
  }, 180_000);
});
