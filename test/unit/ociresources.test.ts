// OCI linux.resources → cgroup v1 and v2 files, and the device rules as v1
// writes and as the v2 BPF program, run in paene's eBPF interpreter.
import { describe, expect, it } from 'vitest';
import { runEbpf } from '../ebpf-run.js';
import {
  BPF_DEVCG_ACC,
  BPF_DEVCG_DEV,
  DEV_CTX,
  cpuWeightOfShares,
  deviceCgroupWrites,
  deviceProgram,
  deviceRules,
  ioThrottleWrites,
  ioWeightOfBlkio,
  resourceWrites,
  resourceWritesV1,
  resourceWritesV2,
  swapMaxV2,
  type DeviceRule,
} from '../../src/oci/resources.js';
import type { OciResources } from '../../src/oci/spec.js';

const v2 = (r: OciResources) => resourceWritesV2(r).writes.map((w) => `${w.file}=${w.value}${w.optional ? '?' : ''}`);

describe('OCI resources → cgroup v1', () => {
  it('pids -1 is max, swappiness range checked, blockIO throttles, cpuset apart', () => {
    expect(resourceWritesV1({ pids: { limit: -1 } }).writes).toEqual([{ controller: 'pids', file: 'pids.max', value: 'max' }]);
    expect(() => resourceWritesV1({ memory: { swappiness: 101 } })).toThrow(/swappiness/);
    expect(resourceWritesV1({ blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1000 }] } }).writes).toEqual([
      { controller: 'blkio', file: 'blkio.throttle.read_bps_device', value: '8:0 1000' },
    ]);
    expect(resourceWritesV1({ cpu: { cpus: '0' } }).cpuset).toEqual({ cpus: '0', mems: undefined });
    expect(() => resourceWritesV1({ unified: { 'memory.high': '1' } })).toThrow(/unified/);
    expect(() => resourceWritesV1({ cpu: { idle: 1 } })).toThrow(/idle/);
  });
  const v1 = (r: OciResources, currentMemoryLimit?: number) =>
    resourceWritesV1(r, { currentMemoryLimit }).writes.map((w) => `${w.file}=${w.value}${w.optional ? '?' : ''}`);
  it("Docker's and the kubelet's zeros are 'not set': nothing is written for them", () => {
    // what `docker run` sends for a container with no limits, and `docker update --cpus 0.5`
    const docker: OciResources = {
      memory: { limit: 0, reservation: 0, swap: 0, kernel: 0, kernelTCP: 0 },
      cpu: { shares: 0, quota: 0, period: 0, realtimeRuntime: 0, realtimePeriod: 0, cpus: '', mems: '' },
      blockIO: { weight: 0, leafWeight: 0, weightDevice: [{ major: 8, minor: 0, weight: 0 }] },
    };
    expect(v1(docker)).toEqual([]);
    expect(resourceWritesV1(docker).cpuset).toBeUndefined();
    expect(v1({ ...docker, cpu: { ...docker.cpu, quota: 50000, period: 100000 } })).toEqual([
      'cpu.cfs_period_us=100000',
      'cpu.cfs_quota_us=50000',
    ]);
    expect(v2(docker as OciResources)).toEqual([]);
  });
  it('memory and memsw are written in the order the kernel accepts: raising memsw first, lowering the limit first', () => {
    // containerd's UpdateContainerResources: limit and swap both 128Mi, from 64Mi
    expect(v1({ memory: { limit: 128 << 20, swap: 128 << 20 } }, 64 << 20)).toEqual([
      `memory.memsw.limit_in_bytes=${128 << 20}`,
      `memory.limit_in_bytes=${128 << 20}`,
    ]);
    expect(v1({ memory: { limit: 32 << 20, swap: 32 << 20 } }, 64 << 20)).toEqual([
      `memory.limit_in_bytes=${32 << 20}`,
      `memory.memsw.limit_in_bytes=${32 << 20}`,
    ]);
    // unlimited memory with swap unset: memsw unlimited too, first (where the kernel has it)
    expect(v1({ memory: { limit: -1 } }, 64 << 20)).toEqual(['memory.memsw.limit_in_bytes=-1?', 'memory.limit_in_bytes=-1']);
    expect(v1({ memory: { limit: 64 << 20 } })).toEqual([`memory.limit_in_bytes=${64 << 20}`]);
  });
});

describe('OCI resources → cgroup v2 (runc and crun conversions)', () => {
  it('shares → cpu.weight: 2 → 1, 1024 → 39, 262144 → 10000', () => {
    expect(cpuWeightOfShares(2)).toBe(1);
    expect(cpuWeightOfShares(1024)).toBe(39);
    expect(cpuWeightOfShares(262144)).toBe(10000);
  });
  it('blkio weight → io.weight: 10 → 1, 500 → 4950, 1000 → 10000', () => {
    expect(ioWeightOfBlkio(10)).toBe(1);
    expect(ioWeightOfBlkio(500)).toBe(4950);
    expect(ioWeightOfBlkio(1000)).toBe(10000);
  });
  it('memory: limit, reservation, swap counted apart from memory', () => {
    expect(v2({ memory: { limit: 100, reservation: 50, swap: 300 } })).toEqual(['memory.max=100', 'memory.low=50', 'memory.swap.max=200']);
    expect(v2({ memory: { limit: -1 } })).toEqual(['memory.max=max', 'memory.swap.max=max']);
    expect(v2({ memory: { limit: 100, swap: -1 } })).toEqual(['memory.max=100', 'memory.swap.max=max']);
    expect(swapMaxV2(undefined, 100)).toBeUndefined();
    expect(() => swapMaxV2(300, undefined)).toThrow(/needs a memory limit/);
    expect(() => swapMaxV2(50, 100)).toThrow(/below the memory limit/);
    // update: swap alone, the limit read from the cgroup
    expect(resourceWritesV2({ memory: { swap: 300 } }, { memoryLimit: 100 }).writes).toEqual([
      { controller: 'memory', file: 'memory.swap.max', value: '200' },
    ]);
    // kernel memory is charged to memory.max on v2: accepted, nothing of its own written
    expect(v2({ memory: { kernel: 1 << 20, kernelTCP: 1 << 20 } })).toEqual([]);
  });
  it('what v2 has no file for is refused, naming the field', () => {
    expect(() => v2({ memory: { swappiness: 10 } })).toThrow(/memory.swappiness: cgroup v2 has no/);
    expect(() => v2({ memory: { disableOOMKiller: true } })).toThrow(/disableOOMKiller/);
    expect(() => v2({ cpu: { realtimeRuntime: 1000 } })).toThrow(/realtime/);
    expect(() => v2({ blockIO: { leafWeight: 100 } })).toThrow(/leaf/);
    expect(() => v2({ cpu: { idle: 2 } })).toThrow(/idle/);
    expect(() => resourceWrites({ hugepageLimits: [{}] }, 'v2')).toThrow(/hugetlb/);
  });
  it('cpu: weight, cpu.max as runc writes it, burst around it, idle', () => {
    expect(v2({ cpu: { shares: 1024, quota: 50000, period: 100000 } })).toEqual(['cpu.weight=39', 'cpu.max=50000 100000']);
    expect(v2({ cpu: { quota: -1 } })).toEqual(['cpu.max=max']);
    expect(v2({ cpu: { quota: 20000 } })).toEqual(['cpu.max=20000']);
    expect(v2({ cpu: { period: 50000 } })).toEqual(['cpu.max=max 50000']);
    expect(v2({ cpu: { quota: 20000, period: 100000, burst: 10000 } })).toEqual([
      'cpu.max.burst=0?',
      'cpu.max=20000 100000',
      'cpu.max.burst=10000',
    ]);
    expect(v2({ cpu: { shares: 0, idle: 1 } })).toEqual(['cpu.idle=1']);
    expect(resourceWritesV2({ cpu: { cpus: '0-1', mems: '0' } }).cpuset).toEqual({ cpus: '0-1', mems: '0' });
  });
  it('pids and block I/O: io.max one key per line, weights for BFQ and iocost', () => {
    expect(v2({ pids: { limit: 0 } })).toEqual(['pids.max=max']);
    expect(v2({ pids: { limit: 32 } })).toEqual(['pids.max=32']);
    expect(
      v2({
        blockIO: {
          weight: 500,
          weightDevice: [{ major: 8, minor: 0, weight: 100 }],
          throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1000 }],
          throttleWriteIOPSDevice: [{ major: 8, minor: 16, rate: 0 }],
        },
      }),
    ).toEqual([
      'io.bfq.weight=500?',
      'io.weight=default 4950',
      'io.bfq.weight=8:0 100?',
      'io.weight=8:0 910',
      'io.max=8:0 rbps=1000',
      'io.max=8:16 wiops=max',
    ]);
  });
  it('the buffered-write throttle: io.max on each device behind the root', () => {
    expect(
      ioThrottleWrites(
        [
          { major: 8, minor: 0 },
          { major: 253, minor: 1 },
        ],
        { writeBps: 1000 },
      ),
    ).toEqual([
      { controller: 'io', file: 'io.max', value: '8:0 wbps=1000' },
      { controller: 'io', file: 'io.max', value: '253:1 wbps=1000' },
    ]);
    expect(ioThrottleWrites([{ major: 8, minor: 0 }], { writeBps: 1000, readBps: 2000 })[0].value).toBe('8:0 wbps=1000 rbps=2000');
    expect(ioThrottleWrites([{ major: 8, minor: 0 }], {})).toEqual([]);
  });
  it('unified: controller files as given; paths and cgroup.* core files refused', () => {
    expect(resourceWritesV2({ unified: { 'memory.high': '1000000', 'io.latency': '8:0 target=10' } }).unified).toEqual([
      ['memory.high', '1000000'],
      ['io.latency', '8:0 target=10'],
    ]);
    expect(() => resourceWritesV2({ unified: { '../x.max': '1' } })).toThrow(/unified/);
    expect(() => resourceWritesV2({ unified: { 'cgroup.procs': '1' } })).toThrow(/unified/);
  });
});

describe('device rules', () => {
  const C = BPF_DEVCG_DEV.c;
  const B = BPF_DEVCG_DEV.b;
  const ask = (prog: Buffer, type: number, major: number, minor: number, access: string): boolean => {
    const ctx = Buffer.alloc(DEV_CTX.size);
    const acc = [...access].reduce((m, ch) => m | BPF_DEVCG_ACC[ch as 'r' | 'w' | 'm'], 0);
    ctx.writeUInt32LE((acc << 16) | type, DEV_CTX.accessType);
    ctx.writeUInt32LE(major, DEV_CTX.major);
    ctx.writeUInt32LE(minor, DEV_CTX.minor);
    const r = runEbpf(prog, {
      ctx,
      ctxAccess: (off, size, kind) => {
        if (kind !== 'read' || size !== 4 || off % 4 !== 0) throw new Error(`bad ctx access ${kind} ${off}/${size}`);
      },
    });
    expect([0n, 1n]).toContain(r);
    return r === 1n;
  };

  it('v1: deny all, the config, its device nodes and the defaults, in runc order', () => {
    const rules = deviceRules([{ allow: false, access: 'rwm' }], []);
    const w = deviceCgroupWrites(rules);
    expect(w[0]).toEqual({ controller: 'devices', file: 'devices.deny', value: 'a *:* rwm' });
    expect(w[1]).toEqual({ controller: 'devices', file: 'devices.deny', value: 'a *:* rwm' });
    expect(w).toContainEqual({ controller: 'devices', file: 'devices.allow', value: 'c 136:* rwm' });
    expect(w.at(-1)?.file).toBe('devices.allow');
    expect(() => deviceRules([{ allow: true, type: 'x' }], [])).toThrow(/type/);
    expect(() => deviceRules([{ allow: true, access: 'rx' }], [])).toThrow(/access/);
  });

  it('v2: the program decides as the v1 rules would: last match wins, nothing matching is denied', () => {
    const rules = deviceRules(
      [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 10, minor: 200, access: 'rw' },
        { allow: true, type: 'b', major: 8, minor: -1, access: 'r' },
        { allow: false, type: 'b', major: 8, minor: 3, access: 'rwm' },
      ],
      [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, mode: 0o666, uid: 0, gid: 0 }],
    );
    const p = deviceProgram(rules);
    expect(ask(p, C, 1, 3, 'rwm')).toBe(true); // /dev/null, a default
    expect(ask(p, C, 136, 7, 'rw')).toBe(true); // a pty
    expect(ask(p, C, 10, 200, 'rw')).toBe(true); // tun, granted rw
    expect(ask(p, C, 10, 200, 'm')).toBe(false); // but not mknod
    expect(ask(p, C, 10, 229, 'rwm')).toBe(true); // a device node of the config
    expect(ask(p, B, 8, 0, 'r')).toBe(true); // any minor of major 8, read
    expect(ask(p, B, 8, 0, 'w')).toBe(false);
    expect(ask(p, B, 8, 3, 'r')).toBe(false); // the later deny wins
    expect(ask(p, C, 8, 0, 'r')).toBe(false); // type matters
    expect(ask(p, B, 7, 0, 'r')).toBe(false); // loop devices: nothing allows them
    expect(ask(p, C, 4, 1, 'rw')).toBe(false);
  });

  it('v2: an allow-all config allows everything; an empty rule list denies everything', () => {
    const all = deviceProgram(deviceRules([{ allow: true, access: 'rwm' }], []));
    expect(ask(all, B, 7, 0, 'rwm')).toBe(true);
    const none: DeviceRule[] = [];
    expect(ask(deviceProgram(none), C, 1, 3, 'r')).toBe(false);
  });
});
