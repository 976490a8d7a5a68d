// The packing benchmark's flatness figures (bench/packing.ts): a segment's
// marginal cost, and the noise flag when the host freed slab of its own
// within a segment (which makes that segment look cheaper than it was).

import { describe, expect, it } from 'vitest';
import { parseSlabFree } from '../../src/bench/kmem.js';
import { growthNoise, segmentCost, type MemorySample } from '../../src/bench/packing.js';

const KiB = 1024;
const MiB = 2 ** 20;
/** Samples every 100 contexts, each context costing `per(n)` of MemAvailable and `slab(n)` of slab. */
function run(n: number, per: (k: number) => number, slabStep: (k: number) => number): MemorySample[] {
  const out: MemorySample[] = [];
  let avail = 20 * 2 ** 30;
  let slab = 500 * MiB;
  for (let k = 0; k <= n; k += 100) {
    if (k > 0) {
      avail -= 100 * per(k);
      slab += slabStep(k);
    }
    out.push({ contexts: k, memAvailable: avail, memFree: avail, slab, cached: 0 });
  }
  return out;
}

describe('packing segments', () => {
  it('gives each segment its marginal cost and no noise on a settled host', () => {
    const s = run(
      3000,
      () => 320 * KiB,
      () => 100 * 220 * KiB,
    );
    const first = segmentCost(s, 0, 1000);
    const last = segmentCost(s, 2000, 3000);
    expect(first).toEqual({ from: 0, to: 1000, perContext: 320 * KiB, slabReleased: 0 });
    expect(last.perContext).toBe(320 * KiB);
    expect(growthNoise(first, last)).toBeUndefined();
  });

  it('flags a segment in which the slab fell: the host freed memory of before the run', () => {
    // the first 500 contexts look cheap because 55 MiB of old slab was freed meanwhile
    const s = run(
      3000,
      (k) => (k <= 500 ? 120 * KiB : 320 * KiB),
      (k) => (k <= 500 ? -11 * MiB : 100 * 220 * KiB),
    );
    const first = segmentCost(s, 0, 1000);
    const last = segmentCost(s, 2000, 3000);
    expect(first.slabReleased).toBe(55 * MiB);
    expect(last.slabReleased).toBe(0);
    expect(growthNoise(first, last)).toMatch(
      /^noisy: the host freed 55\.0 MiB of slab from before the run within the first segment \(0-1000\)/,
    );
  });

  it('flags a first segment that filled free slab objects the host held at the start', () => {
    const slabinfo = [
      'slabinfo - version: 2.1',
      '# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>',
      'kmalloc-192        60350 233709    192   21    1 : tunables    0    0    0 : slabdata  11129  11129      0',
      'dentry            175397 248115    192   21    1 : tunables    0    0    0 : slabdata  11815  11815      0',
      'kmalloc-1k         77328  77328   1024   16    4 : tunables    0    0    0 : slabdata   4833   4833      0',
    ].join('\n');
    const free = parseSlabFree(slabinfo);
    expect(free).toBe((233709 - 60350) * 192 + (248115 - 175397) * 192);
    const s = run(
      3000,
      () => 320 * KiB,
      () => 100 * 220 * KiB,
    );
    const first = segmentCost(s, 0, 1000);
    const last = segmentCost(s, 2000, 3000);
    expect(growthNoise(first, last, free)).toMatch(/^noisy: the host's slab caches held 45\.1 MiB of free objects at the start/);
    expect(growthNoise(first, last, 20 * MiB)).toBeUndefined(); // under a tenth of the first segment's 312.5 MiB
  });
});
