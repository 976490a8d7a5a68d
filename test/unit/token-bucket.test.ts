import { describe, expect, it } from 'vitest';
import {
  CfsBandwidth,
  IoBucket,
  TokenBucket,
  VSERVER_TBF_DEFAULTS,
  bursts,
  fromPercent,
  hog,
  ociSharesToWeight,
  periodic,
  predictShare,
  rateOf,
  shareWeightOf,
  simulateCfs,
  simulateTbf,
  toCfs,
  toShares,
  validateBucket,
  type TokenBucketParams,
} from '../../src/model/tokenBucket.js';

const tenSeconds = { durationMs: 10_000 };

describe('vserver TBF model', () => {
  it('--cpu 25% gives a hog 25% of one CPU over 10 s', () => {
    const p = fromPercent(25);
    expect(p).toEqual({ fillRate: 25, interval: 100, tokensMax: 50, tokensMin: 25, mode: 'hard' });
    const r = simulateTbf(p, hog(), { ...tenSeconds, start: 'empty' });
    // an empty bucket gets its first refill at 100 ms
    expect(r.share).toBeCloseTo(0.2475, 6);
    expect(r.series[0]).toBeCloseTo(0.225, 6);
    for (const w of r.series.slice(1)) expect(w).toBeCloseTo(0.25, 6);
    // a full bucket at the start gives its extra 25 ms once
    expect(simulateTbf(p, hog(), tenSeconds).share).toBeCloseTo(0.2525, 6);
    expect(r.throttledMs).toBeGreaterThan(7000);
  });

  it('fill_rate/interval = 7/32 gives 21.9%', () => {
    const p: TokenBucketParams = { fillRate: 7, interval: 32, tokensMax: 500, tokensMin: 62, mode: 'hard' };
    expect(rateOf(p)).toBeCloseTo(0.21875, 5);
    expect(simulateTbf(p, hog(), { durationMs: 60_000, start: 'empty' }).share).toBeCloseTo(0.219, 2);
  });

  it('vserver defaults: 25% with a 500 ms bucket', () => {
    const r = simulateTbf(VSERVER_TBF_DEFAULTS, hog(), { durationMs: 20_000, start: 'empty' });
    expect(r.share).toBeCloseTo(0.25, 2);
    // the first second of a full bucket: 500 ms bucket + 250 ms refill
    const f = simulateTbf(VSERVER_TBF_DEFAULTS, hog(), { durationMs: 1000 });
    expect(f.share).toBeGreaterThan(0.7);
  });

  it('a 40 ms burst within the bucket is not throttled', () => {
    const r = simulateTbf(fromPercent(25), bursts([{ atMs: 0, workMs: 40 }]), { durationMs: 1000 });
    expect(r.jobs).toEqual([{ arrivedMs: 0, workMs: 40, doneMs: 40, latencyMs: 40 }]);
    expect(r.throttledMs).toBe(0);
    // busy 40 ms every 1 s: 4% and never held
    const p = simulateTbf(fromPercent(25), periodic(40, 1000), tenSeconds);
    expect(p.share).toBeCloseTo(0.04, 5);
    expect(p.jobs.every((j) => j.latencyMs === 40)).toBe(true);
  });

  it('a burst bigger than the bucket waits for refills', () => {
    const r = simulateTbf(fromPercent(25), bursts([{ atMs: 0, workMs: 200 }]), { durationMs: 2000 });
    const j = r.jobs[0];
    expect(j).toBeDefined();
    // 50 ms from the bucket, 150 ms more at 25%: ~600 ms more wall time
    expect(j!.latencyMs).toBeGreaterThan(550);
    expect(j!.latencyMs).toBeLessThan(700);
  });

  it('an emptied bucket is held until tokensMin', () => {
    const b = new TokenBucket({ fillRate: 1, interval: 4, tokensMax: 100, tokensMin: 20, mode: 'hard' }, 0);
    const got: number[] = [];
    for (let t = 0; t < 200; t++) got.push(b.step(1, 1));
    // refills at 4, 8, … ms: the 20th (at 80 ms) reaches tokensMin
    expect(got.slice(0, 80).every((g) => g === 0)).toBe(true);
    expect(got[80]).toBe(1);
    const runs = got.reduce((s, g) => s + g, 0);
    expect(runs).toBeGreaterThan(30);
    expect(runs).toBeLessThan(60);
  });

  it('share mode never holds a lone context', () => {
    const r = simulateTbf({ ...fromPercent(25), mode: 'share' }, hog(), tenSeconds);
    expect(r.share).toBe(1);
    expect(shareWeightOf(fromPercent(25))).toBe(256);
  });

  it('uses several CPUs when the load has threads', () => {
    const r = simulateTbf(fromPercent(150), hog(4), { ...tenSeconds, start: 'empty' });
    expect(r.share).toBeCloseTo(1.5 * 0.99, 6);
  });

  it('validates parameters', () => {
    expect(() => validateBucket({ fillRate: 0, interval: 4, tokensMax: 10, tokensMin: 1, mode: 'hard' })).toThrow(
      /cpu.fillRate: must be a positive/,
    );
    expect(() => validateBucket({ fillRate: 1, interval: 4, tokensMax: 10, tokensMin: 20, mode: 'hard' })).toThrow(
      /tokensMin \(20\) must not exceed tokensMax/,
    );
    expect(() => validateBucket({ fillRate: 1, interval: 4, tokensMax: 10, tokensMin: 1, mode: 'prio' })).toThrow(/mode/);
    expect(() => validateBucket({ fillRate: 1, interval: 4, tokensMax: 10, tokensMin: 1, mode: 'hard', x: 1 })).toThrow(
      /unknown field 'x'/,
    );
    expect(() => fromPercent(0)).toThrow(/CPU percentage/);
  });
});

describe('mapping to CFS', () => {
  it('--cpu 25%: 25 ms per 100 ms, burst 25 ms', () => {
    expect(toCfs(fromPercent(25))).toEqual({ periodUs: 100_000, quotaUs: 25_000, burstUs: 25_000, clamped: [] });
  });

  it('quota/period is the fill rate', () => {
    for (const p of [
      fromPercent(10),
      fromPercent(33.3),
      fromPercent(200),
      VSERVER_TBF_DEFAULTS,
      { fillRate: 7, interval: 32, tokensMax: 64, tokensMin: 7, mode: 'hard' as const },
    ]) {
      const c = toCfs(p);
      expect(c.quotaUs / c.periodUs).toBeCloseTo(rateOf(p), 3);
      expect(c.periodUs).toBeGreaterThanOrEqual(1000);
      expect(c.periodUs).toBeLessThanOrEqual(1_000_000);
      expect(c.quotaUs).toBeGreaterThanOrEqual(1000);
      expect(c.burstUs).toBeLessThanOrEqual(c.quotaUs);
    }
  });

  it('vserver defaults: the period grows so the 500 ms bucket fits', () => {
    expect(toCfs(VSERVER_TBF_DEFAULTS)).toEqual({ periodUs: 1_000_000, quotaUs: 250_000, burstUs: 250_000, clamped: [] });
  });

  it('tokensMin sets the quota (the run after a hold)', () => {
    const c = toCfs({ fillRate: 1, interval: 4, tokensMax: 80, tokensMin: 40, mode: 'hard' });
    expect(c).toEqual({ periodUs: 160_000, quotaUs: 40_000, burstUs: 40_000, clamped: [] });
  });

  it('clamps what the kernel cannot do, and says so', () => {
    const deep = toCfs({ fillRate: 10, interval: 100, tokensMax: 1000, tokensMin: 10, mode: 'hard' });
    expect(deep).toMatchObject({ periodUs: 1_000_000, quotaUs: 100_000, burstUs: 100_000 });
    expect(deep.clamped[0]).toMatch(/bucket 1000 ms limited to 200 ms/);
    const tiny = toCfs({ fillRate: 1, interval: 5000, tokensMax: 1, tokensMin: 1, mode: 'hard' });
    expect(tiny).toMatchObject({ periodUs: 1_000_000, quotaUs: 1000 });
    expect(tiny.clamped.join(' ')).toMatch(/rate 0.02% raised to 0.1%/);
    const shallow = toCfs({ fillRate: 50, interval: 100, tokensMax: 10, tokensMin: 10, mode: 'hard' });
    expect(shallow).toMatchObject({ periodUs: 100_000, quotaUs: 50_000, burstUs: 0 });
    expect(shallow.clamped[0]).toMatch(/raised to one quota/);
  });

  it('TBF and its CFS mapping agree within 3 points on long runs', () => {
    const loads = [hog(), periodic(40, 1000), periodic(300, 1000), periodic(80, 200), hog(2)];
    const buckets: TokenBucketParams[] = [
      fromPercent(25),
      fromPercent(10),
      fromPercent(50),
      VSERVER_TBF_DEFAULTS,
      { fillRate: 7, interval: 32, tokensMax: 100, tokensMin: 20, mode: 'hard' },
      fromPercent(150),
    ];
    for (const b of buckets) {
      const cfs = toCfs(b);
      for (const d of loads) {
        for (const start of ['full', 'empty'] as const) {
          const tbf = simulateTbf(b, d, { durationMs: 10_000, start });
          const k = simulateCfs(cfs, d, { durationMs: 10_000, start });
          expect(Math.abs(tbf.share - k.share) * 100, `${JSON.stringify(b)} ${start}`).toBeLessThan(3);
        }
      }
    }
  });

  it('CFS with and without burst: a 40 ms job', () => {
    const withBurst = simulateCfs({ periodUs: 100_000, quotaUs: 25_000, burstUs: 25_000 }, bursts([{ atMs: 0, workMs: 40 }]), {
      durationMs: 500,
    });
    expect(withBurst.jobs[0]?.latencyMs).toBe(40);
    const noBurst = simulateCfs({ periodUs: 100_000, quotaUs: 25_000, burstUs: 0 }, bursts([{ atMs: 0, workMs: 40 }]), { durationMs: 500 });
    expect(noBurst.jobs[0]?.latencyMs).toBe(115);
    const unlimited = new CfsBandwidth({ periodUs: 100_000, quotaUs: -1, burstUs: 0 });
    expect(unlimited.step(1, 1)).toBe(1);
  });
});

describe('shares', () => {
  it('4:1 on one CPU splits 80/20', () => {
    const [a, b] = predictShare(
      [
        { weight: 1024, demand: 1 },
        { weight: 256, demand: 1 },
      ],
      1,
    );
    expect(a).toBeCloseTo(0.8, 5);
    expect(b).toBeCloseTo(0.2, 5);
    // the same through the v2 weights paene writes
    const wa = toShares(1024).weight;
    const wb = toShares(256).weight;
    const [a2] = predictShare(
      [
        { weight: wa, demand: 1 },
        { weight: wb, demand: 1 },
      ],
      1,
    );
    expect(a2).toBeCloseTo(0.8, 5);
  });

  it('is work-conserving', () => {
    expect(
      predictShare(
        [
          { weight: 1024, demand: 1 },
          { weight: 256, demand: 0 },
        ],
        1,
      ),
    ).toEqual([1, 0]);
    // a light context gets what it asks; the rest goes to the others by weight
    const r = predictShare(
      [
        { weight: 1024, demand: 0.1 },
        { weight: 1024, demand: 1 },
        { weight: 1024, demand: 1 },
      ],
      1,
    );
    expect(r[0]).toBeCloseTo(0.1, 5);
    expect(r[1]).toBeCloseTo(0.45, 5);
    // single-threaded hogs on 2 CPUs: each gets one CPU, weights do not matter
    expect(
      predictShare(
        [
          { weight: 4096, demand: 1 },
          { weight: 2, demand: 1 },
        ],
        2,
      ),
    ).toEqual([1, 1]);
    // caps bind before weights
    const c = predictShare(
      [
        { weight: 1024, demand: 1, cap: 0.25 },
        { weight: 256, demand: 1 },
      ],
      1,
    );
    expect(c[0]).toBeCloseTo(0.25, 5);
    expect(c[1]).toBeCloseTo(0.75, 5);
    // nine hogs and one light server with equal weights on 2 CPUs
    const nine = predictShare([{ weight: 1024, demand: 0.05 }, ...Array.from({ length: 9 }, () => ({ weight: 1024, demand: 1 }))], 2);
    expect(nine[0]).toBeCloseTo(0.05, 5);
    expect(nine.reduce((s, x) => s + x, 0)).toBeCloseTo(2, 5);
  });

  it('v1 shares and v2 weights', () => {
    expect(toShares(1024)).toEqual({ shares: 1024, weight: 100, clamped: [] });
    expect(toShares(256)).toEqual({ shares: 256, weight: 25, clamped: [] });
    expect(toShares(262_144)).toEqual({ shares: 262_144, weight: 10_000, clamped: ["cpu.weight lowered to 10000 (the kernel's maximum)"] });
    expect(toShares(2).weight).toBe(1);
    expect(toShares(1).shares).toBe(2);
    expect(() => toShares(0)).toThrow(/CPU share/);
    // the OCI formula, for comparison: 1024 → 39
    expect(ociSharesToWeight(1024)).toBe(39);
    expect(ociSharesToWeight(2)).toBe(1);
    expect(ociSharesToWeight(262_144)).toBe(10_000);
  });
});

describe('I/O bucket', () => {
  it('holds a writer in debt until the rate pays it off', () => {
    const b = new IoBucket(10 * 2 ** 20, 32 * 2 ** 20, 0);
    expect(b.charge(32 * 2 ** 20, 0)).toBe(false);
    expect(b.charge(10 * 2 ** 20, 0)).toBe(true);
    expect(b.msUntilClear(0)).toBeCloseTo(1000, 5);
    expect(b.mustHold(500)).toBe(true);
    expect(b.mustHold(1000)).toBe(false);
    // a sustained writer averages the rate
    const w = new IoBucket(10 * 2 ** 20, 0, 0);
    let written = 0;
    for (let t = 0; t < 10_000; t += 10) {
      if (!w.mustHold(t)) {
        w.charge(2 * 2 ** 20, t);
        written += 2 * 2 ** 20;
      }
    }
    expect(written / 10 / 2 ** 20).toBeGreaterThan(9.5);
    expect(written / 10 / 2 ** 20).toBeLessThan(10.5);
  });
});
