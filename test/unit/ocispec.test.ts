import { describe, expect, it } from 'vitest';
import {
  MOUNT_HOW,
  MS,
  capsMask,
  cgroupPathOf,
  createTokens,
  encodeTokens,
  parseMountOptions,
  translateConfig,
  type OciConfig,
} from '../../src/oci/spec.js';
import { parseSignal } from '../../src/oci/cli.js';

function base(): OciConfig {
  return {
    ociVersion: '1.0.2',
    root: { path: 'rootfs', readonly: true },
    process: {
      cwd: '/',
      args: ['sh'],
      env: ['PATH=/bin'],
      user: { uid: 1000, gid: 1000, additionalGids: [5, 6] },
      capabilities: { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], ambient: [], inheritable: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }],
      noNewPrivileges: true,
      oomScoreAdj: 100,
    },
    hostname: 'box',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/data', type: 'bind', source: 'data', options: ['rbind', 'ro', 'rprivate'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro'] },
    ],
    linux: {
      namespaces: [{ type: 'mount' }, { type: 'pid' }, { type: 'uts' }, { type: 'ipc' }, { type: 'network', path: '/var/run/netns/cni-1' }],
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/sys'],
      sysctl: { 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '4096' },
      resources: { memory: { limit: 1 << 26 }, cpu: { shares: 512, quota: 20000, period: 100000 }, pids: { limit: 64 } },
      cgroupsPath: '/kubepods/pod1/c1',
    },
  };
}

const tr = (c: OciConfig, cgroup: 'v1' | 'v2' = 'v1') => translateConfig(c, { id: 'c1', bundle: '/b', cgroup });

describe('config.json → paene plan', () => {
  it('maps root, process, mounts, namespaces, resources', () => {
    const p = tr(base());
    expect(p.rootfs).toBe('/b/rootfs');
    expect(p.rootReadonly).toBe(true);
    expect(p.process).toMatchObject({ uid: 1000, gid: 1000, groups: [5, 6], noNewPrivileges: true, oomScoreAdj: 100 });
    expect(p.process.caps.bounding).toBe((1n << 5n) | (1n << 0n));
    expect(p.process.rlimits).toEqual([{ resource: 7, soft: 1024n, hard: 4096n }]);
    expect(p.namespaces).toContainEqual({ type: 'network', path: '/var/run/netns/cni-1' });
    const data = p.mounts.find((m) => m.destination === '/data');
    expect(data).toMatchObject({ source: '/b/data', type: 'bind', flags: MS.BIND | MS.REC | MS.RDONLY, propagation: MS.PRIVATE | MS.REC });
    expect(p.cgroupMounts).toEqual([{ destination: '/sys/fs/cgroup', readonly: true }]);
    expect(p.cgroup.path).toBe('/kubepods/pod1/c1');
    expect(p.cgroup.writes).toContainEqual({ controller: 'memory', file: 'memory.limit_in_bytes', value: String(1 << 26) });
    expect(p.cgroup.writes).toContainEqual({ controller: 'cpu', file: 'cpu.cfs_quota_us', value: '20000' });
    expect(p.cgroup.writes).toContainEqual({ controller: 'pids', file: 'pids.max', value: '64' });
    expect(p.devices.map((d) => d.path)).toContain('/dev/null');
    expect(p.sysctl).toEqual([
      ['net.ipv4.ip_forward', '1'],
      ['kernel.shmmax', '4096'],
    ]);
  });

  it('refuses, naming the field, what paene cannot honour', () => {
    const cases: [(c: OciConfig) => void, RegExp][] = [
      [(c) => (c.process!.apparmorProfile = 'x'), /process.apparmorProfile: 'x' asked for, but AppArmor is not enabled on this host/],
      [(c) => (c.process!.selinuxLabel = 'x'), /process.selinuxLabel/],
      [(c) => (c.linux!.mountLabel = 'x'), /linux.mountLabel/],
      [(c) => (c.linux!.intelRdt = {}), /linux.intelRdt/],
      [(c) => (c.linux!.resources = { hugepageLimits: [{}] }), /hugepageLimits/],
      [(c) => (c.linux!.resources = { network: { classID: 1 } }), /resources.network/],
      [(c) => c.linux!.namespaces!.push({ type: 'bogus' }), /unknown namespace 'bogus'/],
      [(c) => (c.linux!.sysctl = { 'kernel.panic': '1' }), /linux.sysctl.kernel.panic/],
      [
        (c) => ((c.linux!.sysctl = { 'net.ipv4.ip_forward': '1' }), (c.linux!.namespaces = [{ type: 'mount' }, { type: 'uts' }])),
        /net.ipv4.ip_forward/,
      ],
      [(c) => (c.mounts![0].destination = 'proc'), /must be absolute/],
      [(c) => (c.mounts![1].options = ['idmap']), /idmap/],
      [(c) => (c.process!.capabilities!.bounding = ['CAP_NOT_A_CAP']), /CAP_NOT_A_CAP/],
      [(c) => (c.process!.rlimits = [{ type: 'RLIMIT_BOGUS', soft: 1, hard: 1 }]), /RLIMIT_BOGUS/],
      [(c) => (c.process!.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 1 }]), /soft 10 exceeds hard 1/],
      [(c) => (c.hooks = { createContainer: [{ path: '/bin/true', timeout: 5 }] }), /hooks.createContainer\[0\].timeout/],
      [(c) => (c.hooks = { startContainer: [{ path: 'true' }] }), /hooks.startContainer\[0\].path/],
      [(c) => (c.annotations = { 'paene.io/unknown': '1' }), /paene.io\/unknown/],
      [(c) => (c.linux!.cgroupsPath = 'system.slice:cri:c1'), /systemd/],
      [(c) => (c.linux!.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]), /without a user namespace/],
      [(c) => (c.linux!.seccomp = { defaultAction: 'SCMP_ACT_NOTIFY' }), /SCMP_ACT_NOTIFY/],
      [(c) => (c.ociVersion = '0.9'), /ociVersion/],
    ];
    for (const [change, re] of cases) {
      const c = base();
      change(c);
      expect(() => tr(c), String(re)).toThrow(re);
    }
  });

  it('reads paene.io/ annotations into paene features', () => {
    const c = base();
    c.annotations = { 'paene.io/cpu-burst-us': '50000', 'io.kubernetes.cri.container-type': 'container' };
    const p = tr(c);
    expect(p.paene.cpuBurstUs).toBe(50000);
    expect(p.cgroup.writes).toContainEqual({ controller: 'cpu', file: 'cpu.cfs_burst_us', value: '50000' });
    expect(p.annotations['io.kubernetes.cri.container-type']).toBe('container');
  });

  it('compiles a seccomp profile into the process', () => {
    const c = base();
    c.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }] };
    expect(tr(c).process.seccomp?.length).toBeGreaterThan(0);
  });
});

describe('pieces', () => {
  it('mount options', () => {
    expect(parseMountOptions(['nosuid', 'noexec', 'mode=755', 'size=65536k'], 'm')).toEqual({
      flags: MS.NOSUID | MS.NOEXEC,
      propagation: 0,
      data: 'mode=755,size=65536k',
      copyUp: false,
    });
    expect(parseMountOptions(['ro', 'rw'], 'm').flags).toBe(0);
    // Podman adds tmpcopyup to every tmpfs: the tmpfs starts with what the image has there
    expect(parseMountOptions(['tmpcopyup', 'nodev'], 'm')).toEqual({ flags: MS.NODEV, propagation: 0, data: '', copyUp: true });
  });
  it('capabilities', () => {
    expect(capsMask(['CAP_SYS_ADMIN'], 'x')).toBe(1n << 21n);
  });
  it('cgroup paths: absolute kept, relative and missing under /paene-runc', () => {
    expect(cgroupPathOf('/a/b', 'id')).toBe('/a/b');
    expect(cgroupPathOf('rel/x', 'id')).toBe('/paene-runc/rel/x');
    expect(cgroupPathOf(undefined, 'id')).toBe('/paene-runc/id');
    expect(() => cgroupPathOf('/a/../..', 'id')).toThrow();
  });
  it('a pure v2 host: the same resources become v2 files, the device rules a BPF program', () => {
    const c = base();
    c.annotations = { 'paene.io/cpu-burst-us': '5000' };
    const p = tr(c, 'v2');
    expect(p.cgroup.version).toBe('v2');
    expect(p.cgroup.writes).toContainEqual({ controller: 'memory', file: 'memory.max', value: String(1 << 26) });
    expect(p.cgroup.writes).toContainEqual({ controller: 'cpu', file: 'cpu.max', value: '20000 100000' });
    expect(p.cgroup.writes).toContainEqual({ controller: 'cpu', file: 'cpu.max.burst', value: '5000' });
    expect(p.cgroup.writes.some((w) => w.controller === 'devices')).toBe(false);
    expect(p.cgroup.devices?.length).toBeGreaterThan(0);
    expect(tr(base(), 'v1').cgroup.devices).toBeUndefined();
  });
  it('paene.io/ annotations: ccaps, the buffered-write throttle, refusals by name', () => {
    const withAnn = (a: Record<string, string>) => ({ ...base(), annotations: a });
    const p = tr(withAnn({ 'paene.io/ccaps': 'set_utsname, RAW_ICMP' }));
    expect(p.paene.ccaps).toEqual(['SET_UTSNAME', 'RAW_ICMP']);
    expect(p.writablePaths).toEqual(['/proc/sys/kernel/hostname', '/proc/sys/kernel/domainname']);
    expect(p.sysctl).toContainEqual(['net.ipv4.ping_group_range', '0 2147483647']);
    const t = createTokens({ plan: p, fifo: '/f', cgroupProcs: [], cgroupBinds: [] }).map((e) => e[0]);
    // the writable holes come after the read-only paths they open
    expect(t.indexOf('rw')).toBeGreaterThan(t.indexOf('ro'));
    const noUts = withAnn({ 'paene.io/ccaps': 'SET_UTSNAME' });
    noUts.linux!.namespaces = [{ type: 'mount' }, { type: 'network' }];
    delete noUts.hostname;
    noUts.linux!.sysctl = {};
    expect(() => tr(noUts)).toThrow(/SET_UTSNAME needs a uts namespace/);
    const noNet = withAnn({ 'paene.io/ccaps': 'RAW_ICMP' });
    noNet.linux!.namespaces = [{ type: 'mount' }, { type: 'uts' }];
    noNet.linux!.sysctl = {};
    expect(() => tr(noNet)).toThrow(/RAW_ICMP needs a network namespace/);
    expect(() => tr(withAnn({ 'paene.io/ccaps': 'AUDIT_CONTROL' }))).toThrow(/annotations.paene.io\/ccaps: .*no safe mapping/);
    expect(() => tr(withAnn({ 'paene.io/ccaps': 'TELEPORT' }))).toThrow(/unknown context capability/);
    expect(tr(withAnn({ 'paene.io/io-write-bps': '10MiB/s', 'paene.io/io-read-bps': '1048576' }), 'v2').paene.io).toEqual({
      writeBps: 10 << 20,
      readBps: 1 << 20,
    });
    expect(() => tr(withAnn({ 'paene.io/io-write-bps': '10MiB/s' }), 'v1')).toThrow(/pure cgroup v2 host/);
    expect(() => tr(withAnn({ 'paene.io/io-write-bps': 'fast' }), 'v2')).toThrow(/io-write-bps/);
    expect(() => tr(withAnn({ 'paene.io/network': 'shared' }))).toThrow(
      /unknown paene.io\/ annotation \(known: paene.io\/cpu-burst-us, paene.io\/ccaps/,
    );
  });
  it('the plan file is NUL-separated tokens and refuses NUL inside a value', () => {
    const p = tr(base());
    const t = createTokens({ plan: p, fifo: '/s/exec.fifo', cgroupProcs: ['/sys/fs/cgroup/pids/x/cgroup.procs'], cgroupBinds: [] });
    expect(t[0]).toEqual(['ns', 'mount', '']);
    expect(t).toContainEqual(['nnp']);
    const buf = encodeTokens(t);
    // closed by "end N": paene-oci refuses a plan cut short or padded
    const read = buf.toString().split('\0');
    const flat = t.flat();
    expect(read.length).toBe(flat.length + 3);
    expect(read.slice(-3)).toEqual(['end', String(flat.length), '']);
    expect(() => encodeTokens([['arg', 'a\0b']])).toThrow(/NUL/);
  });
  it('mounts carry how they are reached: proc and sysfs reached through no symlink, only proc may cover /proc', () => {
    const c = base();
    c.mounts = [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/sys', type: 'sysfs', source: 'sysfs' },
      { destination: '/data', type: 'bind', source: '/srv', options: ['rbind'] },
    ];
    const p = tr(c);
    expect(p.mounts.map((m) => m.how)).toEqual([MOUNT_HOW.NO_SYMLINK | MOUNT_HOW.MAY_COVER, MOUNT_HOW.NO_SYMLINK, 0]);
    const t = createTokens({ plan: p, fifo: '/f', cgroupProcs: [], cgroupBinds: [], preserveFds: 2 });
    expect(t).toContainEqual(['guard', '/proc']);
    expect(t).toContainEqual(['guard-allow', '/proc/meminfo']);
    expect(t).toContainEqual(['preserve', '2']);
    expect(t).toContainEqual(['mount', '/srv', '/data', 'bind', String(MS.BIND | MS.REC), '0', '', '0']);
  });
  it('signals: numbers and names, with or without SIG', () => {
    expect(parseSignal('9')).toBe(9);
    expect(parseSignal('SIGKILL')).toBe(9);
    expect(parseSignal('term')).toBe(15);
    expect(parseSignal('RTMIN+2')).toBe(36);
    expect(() => parseSignal('NOPE')).toThrow(/unknown signal/);
  });
});
