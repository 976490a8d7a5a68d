// The three benchmarks in tiny configurations: outputs well formed, cleanup
// complete (no contexts, no cgroups, no peer containers, no processes, no
// scratch directory). No assertion on speed.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { linePlot, niceTicks } from '../../src/bench/svg.js';
import { runLifecycle } from '../../src/bench/lifecycle.js';
import { networkTable, runNetworkBench } from '../../src/bench/network.js';
import { runOverhead } from '../../src/bench/overhead.js';
import { runPacking } from '../../src/bench/packing.js';
import { PEER_CGROUP_PARENT, PEER_PREFIX, listPeerContainers, peerCgroupDirs } from '../../src/bench/peers.js';
import { lifecycleTable, overheadTable, packingLatencyPlot, packingPlot, packingTable } from '../../src/bench/report.js';
import { median, percentile } from '../../src/bench/common.js';
import { detectCgroupHost } from '../../src/cgroups/cgroups.js';
import { Layout } from '../../src/kernel/layout.js';
import { describeReal, runCli, tempRoot } from '../helpers.js';

/** Every host pid whose command line mentions `needle` (our scratch dir is unique). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The benchmark's state root is DIR/state: its cgroup parent must be gone from every hierarchy. */
function cgroupParentDirs(stateRoot: string): string[] {
  const host = detectCgroupHost();
  const parent = new Layout(stateRoot).cgroupParent;
  const mounts = new Set([...host.v1.values(), ...(host.unified ? [host.unified.mount] : [])]);
  return [...mounts].map((m) => path.join(m, parent)).filter((d) => fs.existsSync(d));
}

function expectClean(dir: string) {
  expect(fs.existsSync(dir), `scratch dir ${dir} removed`).toBe(false);
  expect(cgroupParentDirs(path.join(dir, 'state'))).toEqual([]);
  expect(pidsMentioning(dir)).toEqual([]);
}

it('statistics and plot helpers', () => {
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 2, 3])).toBe(2.5);
  expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).toBe(10);
  expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50)).toBe(5);
  expect(niceTicks(950)).toEqual([0, 200, 400, 600, 800, 1000]);
  const svg = linePlot({
    title: 'a < b',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      {
        label: 's',
        color: '#000',
        points: [
          { x: 0, y: 0 },
          { x: 5, y: 2 },
        ],
      },
    ],
  });
  expect(svg.startsWith('<svg')).toBe(true);
  expect(svg).toContain('a &lt; b');
  expect(svg.trim().endsWith('</svg>')).toBe(true);
});

describeReal('benchmarks in tiny configurations', () => {
  let base: string;
  beforeAll(() => {
    base = tempRoot('bench');
  });
  afterAll(() => {
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('packing: 5 contexts per variant, every server checked, each KiB given an owner, everything removed', async () => {
    const dir = path.join(base, 'packing');
    const r = await runPacking({
      dir,
      variants: ['shared', 'limited', 'private-copy'],
      max: 5,
      minFreeBytes: 256 * 2 ** 20,
      timeBudgetMs: 120_000,
      fullCheckUpTo: 100,
      checkEvery: 25,
      sampleEvery: 1,
    });
    expect(r.benchmark).toBe('packing');
    expect(r.machine.cores).toBeGreaterThan(0);
    expect(r.variants.map((v) => v.variant)).toEqual(['shared', 'limited', 'private-copy']);
    for (const v of r.variants) {
      expect(v.packed, v.stopReason).toBe(5);
      expect(v.stopReason).toBe('reached --max 5');
      // after start k all k servers were checked (1+2+..+5), plus the final sweep
      expect(v.httpChecks).toBe(15 + 5);
      expect(v.samples.map((s) => s.contexts)).toEqual([0, 1, 2, 3, 4, 5]);
      for (const k of ['median', 'p99'] as const) {
        expect(Number.isFinite(v.startMs[k])).toBe(true);
        expect(Number.isFinite(v.readyMs[k])).toBe(true);
      }
      expect(v.memory.cgroupMedianPerContext).toBeGreaterThan(0);
      expect(v.disk.imageBytes).toBeGreaterThan(1 << 20);
      for (const k of [
        'marginalAvailablePerContext',
        'marginalSlabPerContext',
        'slopeAvailablePerContext',
        'cgroupMeanPerContext',
      ] as const)
        expect(typeof v.memory[k]).toBe('number');
      // the breakdown: meminfo fields and slab caches, and the processes of a context (its init and httpd)
      expect(Object.keys(v.memory.kernel.meminfo)).toContain('PageTables');
      expect(v.memory.kernel.slabs.length).toBeGreaterThan(0);
      expect(v.memory.processes.length).toBeGreaterThanOrEqual(2);
      for (const p of v.memory.processes) expect(p.rss).toBeGreaterThan(0);
      expect(v.memory.firstSegment.to).toBeGreaterThan(v.memory.firstSegment.from);
      expect(v.finalSweep).toMatchObject({ answered: 5, of: 5 });
      expect(v.destroyPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(v.afterCleanup.shareOfTotal)).toBe(true);
    }
    const [shared, , priv] = r.variants;
    expect(priv.copyMs).toBeDefined();
    // a private copy holds the whole image; the shared variant's private layer is tiny
    expect(priv.disk.privateMedianPerContext).toBeGreaterThan(shared.disk.imageBytes / 2);
    expect(shared.disk.privateMedianPerContext).toBeLessThan(shared.disk.imageBytes / 10);
    expect(r.cleanup.errors).toEqual([]);
    expect(packingTable(r)).toContain('contexts packed');
    const svg = packingPlot(r);
    expect(svg).toMatch(/^<svg[^]*<\/svg>\n$/);
    expect((svg.match(/<path /g) ?? []).length).toBe(6);
    // every full sweep's latency is in the samples, and plotted
    expect(shared.samples.filter((x) => x.http).length).toBe(5);
    expect((packingLatencyPlot(r).match(/<path /g) ?? []).length).toBe(6);
    expect(JSON.parse(JSON.stringify(r)).variants).toHaveLength(3);
    expectClean(dir);
  }, 300_000);

  it('overhead: one repetition at a small scale, every benchmark on both sides', async () => {
    const dir = path.join(base, 'overhead');
    const r = await runOverhead({ dir, reps: 1, scale: 0.05 });
    expect(r.results.map((x) => x.name)).toEqual(['fork-exit', 'fork-exec', 'sh-true', 'pipe-ctx', 'reread', 'mmap', 'http']);
    for (const x of r.results) {
      expect(x.host).toHaveLength(1);
      expect(x.context).toHaveLength(1);
      expect(x.hostMedian, x.name).toBeGreaterThan(0);
      expect(x.contextMedian, x.name).toBeGreaterThan(0);
      expect(Number.isFinite(x.ratio)).toBe(true);
    }
    expect(r.cleanup.errors).toEqual([]);
    expect(overheadTable(r)).toContain('ctx/host');
    expectClean(dir);
  }, 300_000);

  it('network: one repetition at a small scale, every metric on every side, outbound rows from host, bare, shared, private and the peer; nothing left', async () => {
    const dir = path.join(base, 'network');
    // more runs than the outbound servers have ports: refused before its scratch directory exists
    await expect(runNetworkBench({ dir, reps: 200 })).rejects.toThrow(/--reps must be below 200/);
    expect(fs.existsSync(dir)).toBe(false);
    const r = await runNetworkBench({ dir, reps: 1, scale: 0.02, memoryContexts: 1 });
    expect(r.metrics.map((m) => m.name)).toEqual(['tcp-crr', 'tcp-rr', 'tcp-stream', 'http']);
    expect(r.outbound.metrics.map((m) => m.name)).toEqual(['tcp-crr', 'tcp-rr', 'tcp-stream', 'http']);
    for (const m of [...r.metrics, ...r.outbound.metrics])
      for (const [side, v] of Object.entries(m.sides)) {
        expect(v.runs, `${m.name} ${side}`).toHaveLength(1);
        expect(v.median, `${m.name} ${side}`).toBeGreaterThan(0);
        expect(Number.isFinite(v.ratio), `${m.name} ${side}`).toBe(true);
      }
    expect(Object.keys(r.outbound.metrics[0]?.sides ?? {}).sort()).toEqual(['bare', 'host', 'peer', 'private', 'shared']);
    // the goals judge throughput and request latency; the connection rate is reported beside them
    expect(r.outbound.goals.map((g) => [g.side, g.goal, g.metrics])).toEqual([
      ['shared', 0.95, ['tcp-rr', 'tcp-stream', 'http']],
      ['private', 0.9, ['tcp-rr', 'tcp-stream', 'http']],
    ]);
    expect(networkTable(r)).toContain('outbound connection rate (tcp-crr, reported, not judged): bare');
    // clients and servers bound to one CPU of this machine (the default: the last one)
    expect(r.outbound.cpu).toBe(os.cpus().length - 1);
    expect(r.cpu).toBe(r.outbound.cpu);
    expect(networkTable(r)).toContain(`LOOPBACK (client and server on one side; clients and servers on CPU ${r.cpu})`);
    expect(networkTable(r)).toContain(`clients and servers on CPU ${r.outbound.cpu}`);
    expect(r.outbound.leftovers).toEqual([]);
    expect(r.cleanup.errors).toEqual([]);
    expect(networkTable(r)).toContain('OUTBOUND');
    expectClean(dir);
  }, 400_000);

  it('network through the CLI: --cpu none leaves placement to the scheduler (null in the JSON, said in the table); a bad --cpu is refused', () => {
    const json = path.join(base, 'network-cli.json');
    const args = ['bench', 'network', '--outbound-only', '--reps', '1', '--scale', '0.02', '--workdir', path.join(base, 'network-cli')];
    const bad = runCli(base, [...args, '--cpu', '4096']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("--cpu must be a CPU of this machine or 'none', got '4096'");
    const r = runCli(base, [...args, '--cpu', 'none', '--json', json], { timeout: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('OUTBOUND (to a server beyond the uplink veth, in a world of two namespaces; placed by the scheduler)');
    const out = JSON.parse(fs.readFileSync(json, 'utf8')) as { cpu: unknown; outbound: { cpu: unknown } };
    expect(out.cpu).toBeNull();
    expect(out.outbound.cpu).toBeNull();
    expectClean(path.join(base, 'network-cli'));
  }, 400_000);

  it('lifecycle: 2 runs per engine; runc runs, crun is either measured or its error reported; no peer left', async () => {
    const dir = path.join(base, 'lifecycle');
    const r = await runLifecycle({ dir, runs: 2, many: 5 });
    const by = (list: typeof r.cycle, name: string) => list.find((x) => x.engine === name);
    for (const name of ['paene (API)', 'paene (CLI)', 'runc run', 'paene-runc run']) {
      const e = by(r.cycle, name);
      expect(e?.error, name).toBeUndefined();
      expect(e?.samples, name).toHaveLength(2);
      expect(e?.medianMs, name).toBeGreaterThan(0);
    }
    expect(Object.keys(by(r.cycle, 'paene (API)')?.steps ?? {})).toEqual(['create', 'start', 'exec', 'destroy']);
    const crun = by(r.cycle, 'crun run');
    expect(crun).toBeDefined();
    if (crun?.error) expect(crun.samples).toHaveLength(0);
    else expect(crun?.samples).toHaveLength(2);
    for (const name of ['paene exec (API)', 'paene exec (CLI)', 'paene exec (Node CLI)', 'runc exec', 'paene-runc exec']) {
      const e = by(r.exec, name);
      expect(e?.error, name).toBeUndefined();
      expect(e?.samples, name).toHaveLength(2);
    }
    expect(r.ratios['paene API / runc run']).toBeGreaterThan(0);
    expect(r.many?.error).toBeUndefined();
    expect(r.many?.contexts).toBe(5);
    for (const k of [
      'createStartPerS',
      'createStartOneCallPerS',
      'destroyPerS',
      'listEmptyMs',
      'listFullMs',
      'listEmptyCpuMs',
      'listFullCpuMs',
    ] as const)
      expect(r.many?.[k], k).toBeGreaterThan(0);
    expect(lifecycleTable(r)).toContain('5 contexts, many per CLI call');
    expect(r.nodeStartupMs).toBeGreaterThan(0);
    expect(r.cleanup.errors).toEqual([]);
    expect(lifecycleTable(r)).toContain('runc run');
    expectClean(dir);
    expect(await listPeerContainers(dir, 'runc')).toEqual([]);
    expect(await listPeerContainers(dir, 'crun')).toEqual([]);
    expect(await listPeerContainers(dir, 'paene-runc')).toEqual([]);
    expect(r.ratios['paene-runc run / runc run']).toBeGreaterThan(0);
    expect(peerCgroupDirs(), `no ${PEER_CGROUP_PARENT} cgroups`).toEqual([]);
    // its peers' ids carry this process's pid (lifecycle.ts's tag): another file's bench beside it is not ours
    expect(pidsMentioning(`${PEER_PREFIX}${process.pid}`)).toEqual([]);
  }, 300_000);
});
