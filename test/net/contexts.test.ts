// Network contexts on the real kernel: the escape attempts and admin cases of
// src/check/network.ts in every model, live address changes, and nothing left
// behind. Only 127.0.0.0/8 on the host's stack; the gateway's link, its private subnet
// and NAT live in a network namespace this file creates (never the host's).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type NetRow, egressSuite, isolatedSuite, sharedSuite } from '../../src/check/network.js';
import { attachedSockAddr } from '../../src/kernel/bpf.js';
import { nativePath } from '../../src/kernel/helper.js';
import { openRuntime } from '../../src/runtime/open.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { describeReal, disposeRuntime, tempRoot } from '../helpers.js';

describeReal('network contexts on the real kernel', () => {
  let root: string;
  let rt: Runtime;
  const netns = `paene-t-net-${process.pid}`;

  beforeAll(() => {
    root = tempRoot('net');
    rt = openRuntime(root);
    const r = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add: ${r.stderr}`);
    // The gateway, ports and NAT of private contexts go into the test's own namespace.
    rt.network.saveSettings({ hostNetns: `/run/netns/${netns}` });
  });

  afterAll(async () => {
    try {
      await disposeRuntime(rt, undefined);
      expect(rt.network.leftovers()).toEqual([]);
    } finally {
      spawnSync('ip', ['netns', 'delete', netns]);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  const show = (rows: NetRow[]) => {
    for (const r of rows) console.log(`[${r.verdict}] ${r.mode} ${r.kind}: ${r.attempt} | ${r.observed}`);
  };
  const bad = (rows: NetRow[]) =>
    rows.filter((r) => r.verdict === 'ESCAPED' || r.verdict === 'FAILED').map((r) => `${r.attempt}: ${r.observed}`);

  /** Why this host cannot wall a shared context (an older kernel such as Debian 12's 6.1), or undefined. */
  const sharedMissing = () => rt.network.sharedUnsupported(rt.cgroupHost.unified !== undefined);

  it('shared where the kernel cannot wall it: start refuses and names the missing wall; create without --net falls back to none', async () => {
    const why = sharedMissing();
    if (!why) {
      expect(rt.network.sharedUnsupported(false)).toMatch(/unified cgroup hierarchy/); // what a host without cgroup2 is told
      return;
    }
    await rt.create({ name: 'tn-old', image: 'base', net: { mode: 'shared', addresses: [], publish: [] } });
    await expect(rt.start('tn-old')).rejects.toThrow(/--net shared needs/);
    await rt.destroy('tn-old');
    expect((await rt.create({ name: 'tn-old2', image: 'base' })).net.mode).toBe('none');
    await rt.destroy('tn-old2');
  }, 60_000);

  it('shared: at least 12 escape attempts fail, judged from outside; serving, neighbours and UDP round trips work', async (ctx) => {
    if (sharedMissing()) return ctx.skip(); // the refusal above is this kernel's answer
    const rows = await sharedSuite(rt, { prefix: 'tn' });
    show(rows);
    expect(bad(rows)).toEqual([]);
    expect(rows.filter((r) => r.kind === 'escape' && r.verdict === 'blocked').length).toBeGreaterThanOrEqual(12);
    expect(rows.filter((r) => r.kind === 'admin' && r.verdict === 'works').length).toBe(5);
    // getsockname inside a context: a connection to its own 127.0.0.1 shows 127.0.0.1 locally, as without the wall
    expect(rows.find((r) => r.attempt.startsWith('its own 127.0.0.1'))?.observed).toMatch(/^ok local=127\.0\.0\.1:/);
    expect(rt.store.names()).toEqual([]);
  }, 120_000);

  it('none: loopback only, nothing of the host reachable', async () => {
    const rows = await isolatedSuite(rt, 'none', { prefix: 'tn' });
    show(rows);
    expect(bad(rows)).toEqual([]);
    expect(rows.filter((r) => r.verdict === 'blocked').length).toBeGreaterThanOrEqual(5);
  }, 60_000);

  it('egress: the walls of a context with an egress pool, judged from outside in a world of its own (two namespaces); 0 escapes', async (ctx) => {
    if (sharedMissing()) return ctx.skip(); // shared contexts cannot start on this kernel
    const rows = await egressSuite({ prefix: 'tn' });
    show(rows);
    expect(bad(rows)).toEqual([]);
    expect(rows.filter((r) => r.verdict === 'not provable here').map((r) => r.attempt)).toEqual([]);
    expect(rows.find((r) => r.attempt.startsWith('egress reaches beyond the host'))?.verdict).toBe('works');
    // host loopback, pool face, uplink address, two neighbours, three spoofs, --egress none
    expect(rows.filter((r) => r.kind === 'escape' && r.verdict === 'blocked').length).toBe(9);
  }, 180_000);

  it('private: its own stack behind a routed port; the gateway answers, the host loopback does not', async () => {
    const rows = await isolatedSuite(rt, 'private', { prefix: 'tn' });
    show(rows);
    expect(bad(rows)).toEqual([]);
    expect(rows.some((r) => r.attempt.includes('gateway') && r.verdict === 'works')).toBe(true);
    // IP, ARP and MAC spoofing of a neighbour, judged from the host's side (the gateway's witness, the neighbour table)
    expect(rows.filter((r) => /spoofing/.test(r.attempt)).map((r) => r.verdict)).toEqual(['blocked', 'blocked', 'blocked']);
    expect(rt.network.leftovers()).toEqual([]);
  }, 60_000);

  it('addresses change live: net add makes a bind work at once, net rm refuses it again; the programs go with the context', async (ctx) => {
    if (sharedMissing()) return ctx.skip();
    await rt.create({ name: 'tn-live', image: 'base' });
    await rt.start('tn-live');
    const cg = rt.cgroupOf('tn-live').unifiedDir as string;
    expect(Object.values(attachedSockAddr(cg)).every((n) => n === 1)).toBe(true);
    const copy = await rt.execCapture('tn-live', ['/bin/sh', '-c', 'cat > /tmp/net-probe && chmod 755 /tmp/net-probe'], {
      input: fs.readFileSync(nativePath('net-probe')),
    });
    expect(copy.code).toBe(0);
    const pool = rt.network.settings().sharedPool4.split('.').slice(0, 2).join('.');
    const extra = `${pool}.9.9`;
    const bind = async () => (await rt.execCapture('tn-live', ['/tmp/net-probe', 'bind', extra, '18099'])).stdout.trim();
    expect(await bind()).toMatch(/^err EPERM/);
    await rt.changeAddress('tn-live', 'add', extra);
    expect(rt.status('tn-live').net.addresses).toContain(extra);
    expect(await bind()).toBe(`ok bound=${extra}:18099`);
    await rt.changeAddress('tn-live', 'rm', extra);
    expect(rt.status('tn-live').net.addresses).not.toContain(extra);
    expect(await bind()).toMatch(/^err EPERM/);
    await expect(rt.changeAddress('tn-live', 'rm', rt.status('tn-live').net.addresses[0] as string)).rejects.toThrow(/last address/);
    await rt.destroy('tn-live');
    expect(fs.existsSync(cg)).toBe(false);
  }, 60_000);
});
