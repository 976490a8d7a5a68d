// Pure parts of the I/O limit plumbing: dev_t decoding, which mechanism a
// host gets, the throttler's rates and default burst, block-device lookup.

import { describe, expect, it } from 'vitest';
import type { CgroupHost } from '../../src/cgroups/cgroups.js';
import {
  blockDevicesFor,
  defaultBurst,
  ioMechanism,
  kernelThrottlesWriteback,
  splitDev,
  throttlerRates,
} from '../../src/runtime/iothrottle.js';

const hybrid: CgroupHost = {
  layout: 'hybrid',
  v1: new Map([['blkio', '/sys/fs/cgroup/blkio']]),
  unified: { mount: '/sys/fs/cgroup/unified', controllers: [] },
};
const v2: CgroupHost = { layout: 'v2', v1: new Map(), unified: { mount: '/sys/fs/cgroup', controllers: ['cpu', 'memory', 'pids', 'io'] } };
const v2NoMem: CgroupHost = { layout: 'v2', v1: new Map(), unified: { mount: '/sys/fs/cgroup', controllers: ['cpu', 'pids', 'io'] } };
const disk = [{ major: 254, minor: 0 }];

describe('I/O limit plumbing', () => {
  it('decodes dev_t like glibc', () => {
    expect(splitDev(0xfe00n)).toEqual({ major: 254, minor: 0 });
    expect(splitDev(0x0803n)).toEqual({ major: 8, minor: 3 });
    // major 259 (NVMe, blkext), minor 300: high bits of both
    const dev = ((259n & 0xfffn) << 8n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n);
    expect(splitDev(dev)).toEqual({ major: 259, minor: 300 });
  });

  it('picks the kernel on v2 with io + memory, the throttler for buffered writes elsewhere', () => {
    const w = { io: { writeBps: 10 << 20 } };
    expect(kernelThrottlesWriteback(v2)).toBe(true);
    expect(kernelThrottlesWriteback(v2NoMem)).toBe(false);
    expect(kernelThrottlesWriteback(hybrid)).toBe(false);
    expect(ioMechanism(v2, w, disk)).toBe('kernel io.max');
    expect(ioMechanism(hybrid, w, disk)).toBe('kernel blkio + paene-iothrottle');
    expect(ioMechanism(hybrid, { io: { readBps: 1 << 20 } }, disk)).toBe('kernel blkio');
    expect(ioMechanism(hybrid, w, [])).toBe('paene-iothrottle');
    expect(ioMechanism(hybrid, {}, disk)).toBe('none');
  });

  it('gives the throttler write rates (and reads only without a device), with a quarter second of burst by default', () => {
    expect(throttlerRates(v2, { io: { writeBps: 10 << 20 } }, disk)).toBeUndefined();
    expect(throttlerRates(hybrid, { io: { writeBps: 10 << 20 } }, disk)).toEqual({
      writeBps: 10 << 20,
      readBps: undefined,
      burst: (10 << 20) / 4,
    });
    expect(throttlerRates(hybrid, { io: { readBps: 1 << 20 } }, disk)).toBeUndefined();
    expect(throttlerRates(hybrid, { io: { readBps: 8 << 20 } }, [])).toEqual({ writeBps: undefined, readBps: 8 << 20, burst: 2 << 20 });
    expect(throttlerRates(hybrid, { io: { writeBps: 1 << 20, burst: 32 << 20 } }, disk)?.burst).toBe(32 << 20);
    expect(defaultBurst(100)).toBe(256 * 1024);
  });

  it.runIf(process.platform === 'linux')('finds the whole disk under a directory, none on tmpfs-like filesystems', () => {
    const root = blockDevicesFor('/');
    expect(root.length).toBeLessThanOrEqual(1);
    for (const d of root) expect(d.major).toBeGreaterThan(0);
    expect(blockDevicesFor('/proc')).toEqual([]);
    expect(blockDevicesFor('/dev/shm')).toEqual([]);
    expect(blockDevicesFor('/no/such/dir')).toEqual([]);
  });
});
