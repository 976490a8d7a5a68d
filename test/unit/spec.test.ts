import { describe, expect, it } from 'vitest';
import {
  DEVICE_NODES,
  allocateXid,
  deviceAllowList,
  guestEnv,
  isPerContextSysctl,
  newConfig,
  parseXid,
  validateConfig,
  validateHostname,
  validateName,
} from '../../src/context/config.js';
import { Layout } from '../../src/kernel/layout.js';
import { cgroupHostFrom, parseMountinfo } from '../../src/cgroups/cgroups.js';
import { parseStat } from '../../src/kernel/procfs.js';

describe('context spec', () => {
  it('accepts valid names and rejects the rest', () => {
    for (const n of ['a', 'web1', 'db_2', 'x-y', '0', 'a'.repeat(63)]) expect(validateName(n)).toBe(n);
    for (const n of ['', 'A', '-a', '_a', 'a b', 'a/b', 'a.b', '..', 'a'.repeat(64), 'ü'])
      expect(() => validateName(n)).toThrow(/invalid context name/);
  });
  it('checks xids against the static range 2-49151', () => {
    expect(parseXid('2')).toBe(2);
    expect(parseXid(49151)).toBe(49151);
    for (const x of ['0', '1', '49152', '-3', '1.5', 'x', '']) expect(() => parseXid(x)).toThrow(/invalid xid/);
  });
  it('allocates the lowest free xid', () => {
    expect(allocateXid([])).toBe(2);
    expect(allocateXid([2, 3, 5])).toBe(4);
  });
  it('validates hostnames', () => {
    expect(validateHostname('web-1.example')).toBe('web-1.example');
    for (const h of ['', 'a b', '-a', 'a'.repeat(65), 'a..b']) expect(() => validateHostname(h)).toThrow(/invalid hostname/);
  });
  it('round-trips a config and rejects tampered ones', () => {
    const c = newConfig({ name: 'web', xid: 7, image: 'base', now: new Date(0) });
    expect(c.hostname).toBe('web');
    expect(validateConfig(JSON.parse(JSON.stringify(c)), 'f')).toEqual(c);
    expect(() => validateConfig({ ...c, version: 9 }, 'f')).toThrow(/unsupported config version/);
    expect(() => validateConfig({ ...c, name: '../x' }, 'f')).toThrow(/invalid context name/);
    expect(() => validateConfig(null, 'f')).toThrow(/not a JSON object/);
  });
  it('gives guests a clean environment', () => {
    const env = guestEnv(newConfig({ name: 'web', xid: 7, image: 'base' }));
    expect(env).toContain('PAENE_CONTEXT=web');
    expect(env.some((e) => e.startsWith('PATH=/usr/local/sbin'))).toBe(true);
  });
});

describe('layout', () => {
  it('names cgroups paene for the default root and paene-<hash> for others', () => {
    expect(new Layout('/var/lib/paene').cgroupParent).toBe('paene');
    const a = new Layout('/tmp/r1').cgroupParent;
    const b = new Layout('/tmp/r2').cgroupParent;
    expect(a).toMatch(/^paene-[0-9a-f]{8}$/);
    expect(a).not.toBe(b);
  });
});

describe('cgroup host detection', () => {
  const hybrid = [
    '30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
    '31 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
    '32 25 0:28 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
    '33 25 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
    '34 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  ].join('\n');
  it('recognises a hybrid host and keeps limits on v1', () => {
    const h = cgroupHostFrom(parseMountinfo(hybrid), () => ['hugetlb', 'memory']);
    expect(h.layout).toBe('hybrid');
    expect(h.v1.get('memory')).toBe('/sys/fs/cgroup/memory');
    expect(h.unified?.controllers).toEqual([]); // memory is bound to v1
  });
  it('recognises a pure v2 host', () => {
    const h = cgroupHostFrom(parseMountinfo('24 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw'), () => [
      'cpu',
      'io',
      'memory',
      'pids',
      'cpuset',
    ]);
    expect(h.layout).toBe('v2');
    expect(h.unified?.controllers).toEqual(['cpu', 'io', 'memory', 'pids']);
  });
  it('recognises a pure v1 host with co-mounted controllers', () => {
    const h = cgroupHostFrom(parseMountinfo('30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct'), () => []);
    expect(h.layout).toBe('v1');
    expect(h.v1.get('cpuacct')).toBe('/sys/fs/cgroup/cpu,cpuacct');
  });
});

describe('procfs', () => {
  it('parses /proc/PID/stat with spaces and parentheses in comm', () => {
    const line = '1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5555 1000 42 18446744073709551615';
    const st = parseStat(line);
    expect(st).toMatchObject({ pid: 1234, comm: 'a b) c)', state: 'S', ppid: 1, utime: 7, stime: 3, starttime: 5555, rssPages: 42 });
  });
});

import { missingFeatures } from '../../src/kernel/features.js';

describe('kernel feature check', () => {
  const full = 'nodev\tproc\nnodev\tcgroup\nnodev\tcgroup2\nnodev\toverlay\nnodev\tdevpts\n\text4\n';
  const probe = (fsText: string | undefined, missingNs: string[] = []) => ({
    exists: (p: string) => !missingNs.some((n) => p.endsWith(`/ns/${n}`)),
    read: () => fsText,
  });
  it('finds nothing missing on a complete kernel', () => {
    expect(missingFeatures(probe(full))).toEqual([]);
  });
  it('names each missing feature with its kernel option', () => {
    expect(missingFeatures(probe(full.replace('nodev\toverlay\n', ''), ['pid']))).toEqual([
      'pid namespaces (CONFIG_PID_NS)',
      'overlayfs (CONFIG_OVERLAY_FS; try `modprobe overlay`)',
    ]);
    expect(missingFeatures(probe(undefined))).toContain('/proc is not mounted');
  });
});

describe('the contract with the helper', () => {
  it('one device table for the nodes made and the devices cgroup allowed', () => {
    expect(DEVICE_NODES.map((d) => d.path)).toEqual(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty']);
    expect(deviceAllowList()).toEqual([
      'c 1:3 rwm',
      'c 1:5 rwm',
      'c 1:7 rwm',
      'c 1:8 rwm',
      'c 1:9 rwm',
      'c 5:0 rwm',
      'c 5:2 rwm',
      'c 136:* rwm',
    ]);
  });
  it('only uts and ipc sysctls are per context', () => {
    for (const k of [
      'kernel.shmmax',
      'kernel.shmall',
      'kernel.shmmni',
      'kernel.msgmnb',
      'kernel.msgmni',
      'kernel.sem',
      'kernel.hostname',
      'kernel.domainname',
    ]) {
      expect(isPerContextSysctl(k), k).toBe(true);
    }
    for (const k of ['kernel.panic', 'kernel.shm', 'net.ipv4.ip_forward', 'kernel.hostname.x', 'kernel.semx', 'vm.swappiness'])
      expect(isPerContextSysctl(k), k).toBe(false);
  });
});
