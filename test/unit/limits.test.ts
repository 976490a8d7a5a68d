import { describe, expect, it } from 'vitest';
import {
  LOW_LATENCY_SLICE_NS,
  type CgroupWrite,
  cgroupWrites,
  effectiveShare,
  freshWrites,
  ipcSysctls,
  ownControllers,
  schedOf,
} from '../../src/cgroups/map.js';
import { LIMIT_FLAGS, parseLimitFlags, parseSem } from '../../src/model/limitflags.js';
import { DEFAULT_LIMITS, type ResourceLimits, describeLimits, limitWarnings, mergeLimits, validateLimits } from '../../src/model/limits.js';

const MiB = 2 ** 20;
const dev = [{ major: 254, minor: 0 }];
const lines = (w: CgroupWrite[]) => w.map((x) => `${x.controller}/${x.file}=${x.value}${x.optional ? '?' : ''}`);

describe('defaults', () => {
  it('contain a fork bomb and give every context the same CPU weight, without a cap', () => {
    expect(DEFAULT_LIMITS).toEqual({ nproc: 1024, cpuShare: 1024 });
    expect(DEFAULT_LIMITS.cpu).toBeUndefined();
    expect(validateLimits(undefined)).toEqual(DEFAULT_LIMITS);
  });
  it('default writes for v1 and v2', () => {
    expect(lines(cgroupWrites(DEFAULT_LIMITS, 'v1', []))).toEqual([
      'cpu/cpu.cfs_burst_us=0?',
      'cpu/cpu.cfs_quota_us=-1?',
      'cpu/cpu.idle=0?',
      'cpu/cpu.shares=1024',
      'pids/pids.max=1024',
      'memory/memory.memsw.limit_in_bytes=-1?',
      'memory/memory.limit_in_bytes=-1?',
    ]);
    expect(lines(cgroupWrites(DEFAULT_LIMITS, 'v2', []))).toEqual([
      'cpu/cpu.max.burst=0?',
      'cpu/cpu.max=max 100000?',
      'cpu/cpu.idle=0?',
      'cpu/cpu.weight=100',
      'pids/pids.max=1024',
      'memory/memory.max=max?',
      'memory/memory.swap.max=max?',
    ]);
  });
  it('a new group skips the CPU bandwidth it already has (each such write walks every CPU group), but not a cap', () => {
    expect(lines(freshWrites(cgroupWrites(DEFAULT_LIMITS, 'v1', [])))).toEqual([
      'cpu/cpu.shares=1024',
      'pids/pids.max=1024',
      'memory/memory.memsw.limit_in_bytes=-1?',
      'memory/memory.limit_in_bytes=-1?',
    ]);
    expect(lines(freshWrites(cgroupWrites(DEFAULT_LIMITS, 'v2', [])))).toEqual([
      'cpu/cpu.weight=100',
      'pids/pids.max=1024',
      'memory/memory.max=max?',
      'memory/memory.swap.max=max?',
    ]);
    const capped = mergeLimits(DEFAULT_LIMITS, { cpu: { mode: 'hard', fillRate: 25, interval: 100, tokensMax: 25, tokensMin: 25 } });
    expect(lines(freshWrites(cgroupWrites(capped, 'v1', []))).filter((l) => l.startsWith('cpu/cpu.cfs'))).toEqual([
      'cpu/cpu.cfs_period_us=100000',
      'cpu/cpu.cfs_quota_us=25000',
    ]);
    expect(lines(freshWrites(cgroupWrites(capped, 'v2', []))).filter((l) => l.startsWith('cpu/cpu.max'))).toEqual([
      'cpu/cpu.max=25000 100000',
    ]);
  });
});

describe('flags → limits → cgroup writes', () => {
  const flags = {
    '--cpu': '25%',
    ioWrite: '10MiB/s',
    'io-read': '50MiB/s',
    'io-read-ops': '500/s',
    'io-burst': '32MiB',
    nproc: '64',
    memory: '64M',
    'memory-swap': '128M',
    image: 'debian', // not a limit flag: ignored
  };
  const limits = mergeLimits(DEFAULT_LIMITS, parseLimitFlags(flags));

  it('parses every kind of flag', () => {
    expect(limits).toEqual({
      nproc: 64,
      cpuShare: 1024,
      memory: 64 * MiB,
      memorySwap: 128 * MiB,
      cpu: { fillRate: 25, interval: 100, tokensMax: 50, tokensMin: 25, mode: 'hard' },
      io: { writeBps: 10 * MiB, readBps: 50 * MiB, readIops: 500, burst: 32 * MiB },
    });
  });

  it('v1 writes, in an order the kernel accepts', () => {
    expect(lines(cgroupWrites(limits, 'v1', dev))).toEqual([
      'cpu/cpu.cfs_burst_us=0?',
      'cpu/cpu.cfs_quota_us=-1?',
      'cpu/cpu.cfs_period_us=100000',
      'cpu/cpu.cfs_quota_us=25000',
      'cpu/cpu.cfs_burst_us=25000?',
      'cpu/cpu.idle=0?',
      'cpu/cpu.shares=1024',
      'pids/pids.max=64',
      'memory/memory.memsw.limit_in_bytes=-1?',
      'memory/memory.limit_in_bytes=67108864',
      'memory/memory.memsw.limit_in_bytes=134217728?',
      'blkio/blkio.throttle.read_bps_device=254:0 52428800',
      'blkio/blkio.throttle.write_bps_device=254:0 10485760',
      'blkio/blkio.throttle.read_iops_device=254:0 500',
      'blkio/blkio.throttle.write_iops_device=254:0 0?',
    ]);
  });

  it('v2 writes', () => {
    expect(lines(cgroupWrites(limits, 'v2', [...dev, { major: 8, minor: 16 }]))).toEqual([
      'cpu/cpu.max.burst=0?',
      'cpu/cpu.max=25000 100000',
      'cpu/cpu.max.burst=25000?',
      'cpu/cpu.idle=0?',
      'cpu/cpu.weight=100',
      'pids/pids.max=64',
      'memory/memory.max=67108864',
      'memory/memory.swap.max=67108864?',
      'io/io.max=254:0 rbps=52428800 wbps=10485760 riops=500 wiops=max',
      'io/io.max=8:16 rbps=52428800 wbps=10485760 riops=500 wiops=max',
    ]);
  });

  it('removing limits writes the unlimited values', () => {
    const off = mergeLimits(
      limits,
      parseLimitFlags({ cpu: 'unlimited', nproc: 'max', memory: 'none', memorySwap: 'none', ioWrite: 'unlimited' }),
    );
    expect(off.cpu).toBeUndefined();
    expect(off.nproc).toBeUndefined();
    expect(off.io).toEqual({ readBps: 50 * MiB, readIops: 500, burst: 32 * MiB });
    const v1 = lines(cgroupWrites(off, 'v1', dev));
    expect(v1).toContain('cpu/cpu.cfs_quota_us=-1?');
    expect(v1).not.toContain('cpu/cpu.cfs_period_us=100000');
    expect(v1).toContain('pids/pids.max=max?');
    expect(v1).toContain('memory/memory.limit_in_bytes=-1?');
    expect(v1).toContain('blkio/blkio.throttle.write_bps_device=254:0 0?');
    const v2 = lines(cgroupWrites(off, 'v2', dev));
    expect(v2).toContain('cpu/cpu.max=max 100000?');
    expect(v2).toContain('memory/memory.max=max?');
    expect(v2).toContain('io/io.max=254:0 rbps=52428800 wbps=max riops=500 wiops=max');
    // a write that only resets an unset limit may be skipped where the controller is missing
    expect(lines(cgroupWrites({}, 'v2', dev))).toContain('io/io.max=254:0 rbps=max wbps=max riops=max wiops=max?');
    expect(
      cgroupWrites(limits, 'v1', dev)
        .filter((x) => x.optional)
        .map((x) => x.file),
    ).toEqual([
      'cpu.cfs_burst_us',
      'cpu.cfs_quota_us',
      'cpu.cfs_burst_us',
      'cpu.idle',
      'memory.memsw.limit_in_bytes',
      'memory.memsw.limit_in_bytes',
      'blkio.throttle.write_iops_device',
    ]);
  });

  it('share mode and --cpu-share', () => {
    const s = mergeLimits({}, parseLimitFlags({ cpuShare: '256' }));
    expect(s).toEqual({ cpuShare: 256 });
    expect(lines(cgroupWrites(s, 'v1', []))).toContain('cpu/cpu.shares=256');
    expect(lines(cgroupWrites(s, 'v2', []))).toContain('cpu/cpu.weight=25');
    const m = mergeLimits({}, parseLimitFlags({ cpu: '50%', cpuMode: 'share' }));
    expect(effectiveShare(m)).toBe(512);
    const w = lines(cgroupWrites(m, 'v2', []));
    expect(w).toContain('cpu/cpu.max=max 100000?');
    expect(w).toContain('cpu/cpu.weight=50');
  });

  it('token-bucket flags', () => {
    const t = mergeLimits(
      {},
      parseLimitFlags({ 'cpu-fill-rate': '7', 'cpu-interval': '32ms', 'cpu-tokens-max': '100', 'cpu-tokens-min': '20' }),
    );
    expect(t.cpu).toEqual({ fillRate: 7, interval: 32, tokensMax: 100, tokensMin: 20, mode: 'hard' });
    // only the rate: a bucket sized as --cpu would
    const r = mergeLimits({}, parseLimitFlags({ 'cpu-fill-rate': '1', 'cpu-interval': '4' }));
    expect(r.cpu).toEqual({ fillRate: 1, interval: 4, tokensMax: 50, tokensMin: 25, mode: 'hard' });
    // a live change of one field keeps the rest
    const deeper = mergeLimits(t, parseLimitFlags({ 'cpu-tokens-max': '200' }));
    expect(deeper.cpu?.tokensMax).toBe(200);
    expect(deeper.cpu?.fillRate).toBe(7);
    // --cpu then overrides
    expect(mergeLimits({}, parseLimitFlags({ cpu: '25%', 'cpu-tokens-max': '80' })).cpu?.tokensMax).toBe(80);
  });

  it("ipc flags → sysctls in the context's IPC namespace", () => {
    const l = mergeLimits(
      {},
      parseLimitFlags({ shmMax: '32M', shmAll: '64M', shmIds: '128', msgMax: '16K', msgIds: '32', sem: '250 32000 32 128' }),
    );
    expect(ipcSysctls(l)).toEqual({
      'kernel.shmmax': '33554432',
      'kernel.shmall': '16384', // pages of 4 KiB
      'kernel.shmmni': '128',
      'kernel.msgmnb': '16384',
      'kernel.msgmni': '32',
      'kernel.sem': '250 32000 32 128',
    });
    expect(ipcSysctls({ ipc: { shmAll: 4097 } })['kernel.shmall']).toBe('2');
    expect(ipcSysctls({ ipc: { shmAll: 65536 } }, 65536)['kernel.shmall']).toBe('1');
    expect(ipcSysctls(DEFAULT_LIMITS)).toEqual({});
  });
});

describe('errors', () => {
  it('flag errors name the flag', () => {
    expect(() => parseLimitFlags({ cpu: 'lots' })).toThrow(/--cpu 'lots'/);
    expect(() => parseLimitFlags({ nproc: '0' })).toThrow(/--nproc/);
    expect(() => parseLimitFlags({ memory: '64 parsecs' })).toThrow(/--memory/);
    expect(() => parseLimitFlags({ ioWrite: '500/s' })).toThrow(/--io-write.*expected bytes/);
    expect(() => parseLimitFlags({ ioWrite: '0' })).toThrow(/a rate of 0 would stop all I\/O/);
    expect(() => parseLimitFlags({ cpuMode: 'turbo' })).toThrow(/--cpu-mode 'turbo'/);
    expect(() => parseLimitFlags({ cpu: 'unlimited', cpuFillRate: '1' })).toThrow(/cannot be combined/);
    expect(() => parseLimitFlags({ cpuShare: '1' })).toThrow(/--cpu-share/);
    expect(() => parseSem('250 32000 32')).toThrow(/four whole numbers/);
    expect(() => parseSem('0 1 1 1')).toThrow(/SEMMSL/);
  });
  it('merge errors', () => {
    expect(() => mergeLimits({}, parseLimitFlags({ 'cpu-tokens-max': '100' }))).toThrow(/--cpu-fill-rate and --cpu-interval/);
    expect(() => mergeLimits({}, parseLimitFlags({ memorySwap: '128M' }))).toThrow(/memorySwap needs limits.memory/);
    expect(() => mergeLimits({}, parseLimitFlags({ memory: '128M', memorySwap: '64M' }))).toThrow(/at least limits.memory/);
    expect(() => mergeLimits({}, parseLimitFlags({ cpu: '25%', cpuTokensMin: '100' }))).toThrow(/tokensMin \(100\) must not exceed/);
  });
  it('config from disk is checked strictly', () => {
    const ok: ResourceLimits = {
      nproc: 10,
      memory: 64 * MiB,
      cpu: { fillRate: 1, interval: 4, tokensMax: 10, tokensMin: 1, mode: 'hard' },
      io: { writeBps: 1 },
      ipc: { sem: [1, 2, 3, 4] },
    };
    expect(validateLimits(structuredClone(ok))).toEqual(ok);
    expect(() => validateLimits('1024')).toThrow(/limits: must be an object/);
    expect(() => validateLimits({ nproc: -1 })).toThrow(/limits.nproc: must be a whole number/);
    expect(() => validateLimits({ nproc: 1.5 })).toThrow(/limits.nproc/);
    expect(() => validateLimits({ procs: 5 })).toThrow(/unknown field 'procs'/);
    expect(() => validateLimits({ memory: 100 })).toThrow(/limits.memory: must be a whole number from 1048576/);
    expect(() => validateLimits({ cpu: { fillRate: 1 } })).toThrow(/limits.cpu.mode/);
    expect(() => validateLimits({ io: { writeBps: '10M' } })).toThrow(/limits.io.writeBps/);
    expect(() => validateLimits({ io: { speed: 1 } })).toThrow(/limits.io: unknown field 'speed'/);
    expect(() => validateLimits({ ipc: { sem: [1, 2, 3] } })).toThrow(/limits.ipc.sem/);
    expect(() => validateLimits({ cpuShare: 1 })).toThrow(/limits.cpuShare/);
  });
});

describe('descriptions', () => {
  it('one line per limit', () => {
    expect(describeLimits(DEFAULT_LIMITS)).toEqual([
      'cpu: no cap',
      'cpu share: 1024',
      'cpu latency: normal (default)',
      'processes: 1024',
      'fork back-off: 100 refused forks in 1 s hold it to 5% of one CPU for 2 s (default)',
      'memory: unlimited',
      'disk i/o: unlimited',
    ]);
    const l = mergeLimits(DEFAULT_LIMITS, parseLimitFlags({ cpu: '25%', memory: '64M', ioWrite: '10MiB/s', shmMax: '32M' }));
    const d = describeLimits(l);
    expect(d[0]).toBe('cpu: capped at 25% of one CPU (fill 25 per 100 ms, bucket 50 ms, min 25 ms)');
    expect(d).toContain('memory: 64MiB');
    expect(d).toContain('disk i/o: write 10MiB/s');
    expect(d).toContain('ipc: shmmax=33554432');
    expect(LIMIT_FLAGS.map((f) => f.flag)).toContain('io-write-ops');
  });
  it('warns about what the kernel cannot follow', () => {
    expect(limitWarnings({ cpu: { fillRate: 10, interval: 100, tokensMax: 1000, tokensMin: 10, mode: 'hard' } })[0]).toMatch(/bucket/);
    expect(limitWarnings(DEFAULT_LIMITS)).toEqual([]);
  });
});

describe('latency classes', () => {
  it('--cpu-latency parses, merges, removes and is checked when read back', () => {
    const l = mergeLimits(DEFAULT_LIMITS, parseLimitFlags({ 'cpu-latency': 'Batch' }));
    expect(l.cpuLatency).toBe('batch');
    expect(mergeLimits(l, { cpuLatency: null }).cpuLatency).toBeUndefined();
    expect(() => parseLimitFlags({ 'cpu-latency': 'fast' })).toThrow(
      /--cpu-latency: 'fast' is not a latency class; use low, normal, batch, idle/,
    );
    expect(() => validateLimits({ cpuLatency: 'rt' })).toThrow(/limits.cpuLatency/);
    expect(describeLimits(l)).toContain('cpu latency: batch');
  });
  it('idle enters cpu.idle after the weight (an idle group refuses a weight), on v1 and v2', () => {
    const idle = { ...DEFAULT_LIMITS, cpuLatency: 'idle' as const };
    for (const v of ['v1', 'v2'] as const) {
      const w = lines(cgroupWrites(idle, v, [])).filter((x) => x.startsWith('cpu/cpu.idle') || /shares|weight/.test(x));
      expect(w).toEqual(['cpu/cpu.idle=0?', v === 'v1' ? 'cpu/cpu.shares=1024' : 'cpu/cpu.weight=100', 'cpu/cpu.idle=1']);
    }
  });
  it("low gives a short EEVDF slice, batch SCHED_BATCH, the others the kernel's default", () => {
    expect(schedOf('low')).toEqual({ policy: 0, sliceNs: LOW_LATENCY_SLICE_NS });
    expect(schedOf('batch')).toEqual({ policy: 3, sliceNs: 0 });
    expect(schedOf('normal')).toEqual({ policy: 0, sliceNs: 0 });
    expect(schedOf(undefined)).toEqual({ policy: 0, sliceNs: 0 });
    expect(LOW_LATENCY_SLICE_NS).toBeGreaterThanOrEqual(100_000); // the kernel's smallest custom slice
  });
});

describe('which shareable cgroups a context needs of its own', () => {
  it('none by default: siblings share memory, blkio and devices', () => {
    expect(ownControllers(DEFAULT_LIMITS, 'v1')).toEqual([]);
    expect(ownControllers({ ...DEFAULT_LIMITS, nproc: 50, cpuShare: 2048 }, 'v2')).toEqual([]);
  });
  it('memory with a memory or swap limit', () => {
    expect(ownControllers({ memory: 64 * MiB }, 'v1')).toEqual(['memory']);
    expect(ownControllers({ memory: 64 * MiB, memorySwap: 128 * MiB }, 'v2')).toEqual(['memory']);
  });
  it('block I/O with an I/O limit; on v2 memory too (writeback is charged through the memory cgroup)', () => {
    expect(ownControllers({ io: { writeBps: 10 * MiB } }, 'v1')).toEqual(['blkio']);
    expect(ownControllers({ io: { readIops: 100 } }, 'v2')).toEqual(['memory', 'blkio']);
  });
});
