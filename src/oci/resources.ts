// OCI linux.resources (and the device rules) → what paene-runc writes into
// the container's cgroups, for cgroup v1 and for a pure cgroup v2 host. The
// v2 conversions are runc's and crun's (libcontainer/cgroups/utils.go), so a
// config means the same under every runtime. Pure: the runtime writes what
// this returns (docs/oci.md, "Resources on cgroup v2").

import { PaeneError } from '../model/errors.js';
import type { BlockDevice, CgroupVersion, CgroupWrite } from '../cgroups/map.js';
import { Asm, R0, R1, R2, R3, R4, R5 } from '../bpf/ebpf.js';
import type { OciDeviceRule, OciResources, OciThrottle, PlanDevice } from './config.js';

function refuse(field: string, why: string): never {
  throw new PaeneError('invalid-argument', `config.json: ${field}: ${why}`);
}

function whole(v: number | undefined, where: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) refuse(where, `${v} is not a whole number`);
  return v;
}

export interface ResourceWrites {
  /** files of the controllers paene manages (v1: `controller` names the hierarchy) */
  writes: CgroupWrite[];
  /** cpuset.cpus / cpuset.mems (a hierarchy of its own on v1, the container's directory on v2) */
  cpuset?: { cpus?: string; mems?: string };
  /** v2 only: linux.resources.unified, file → value in the container's directory */
  unified: [file: string, value: string][];
}

export interface ResourceOptions {
  /**
   * `update` without a memory limit: the limit in effect, so a new swap value
   * can become v2's memory.swap.max (which counts swap alone)
   */
  memoryLimit?: number;
}

/** v1 cpu.shares (2 … 262144) → v2 cpu.weight (1 … 10000): runc's and crun's linear map, 1024 → 39. */
export function cpuWeightOfShares(shares: number): number {
  return 1 + Math.trunc(((shares - 2) * 9999) / 262142);
}

/** v1 blkio.weight (10 … 1000) → v2 io.weight (1 … 10000), as runc's fallback when BFQ is absent. */
export function ioWeightOfBlkio(weight: number): number {
  return 1 + Math.trunc(((weight - 10) * 9999) / 990);
}

/**
 * OCI's swap is memory + swap (v1 memsw); v2's memory.swap.max counts swap
 * alone. runc's rules: -1 is unlimited, 0 unset; otherwise a memory limit is
 * needed and swap ≥ limit. Returns the value to write, or undefined (unset).
 */
export function swapMaxV2(swap: number | undefined, limit: number | undefined): string | undefined {
  if (swap === undefined || swap === 0) return limit === -1 ? 'max' : undefined; // runc: unlimited memory, swap unset → both unlimited
  if (swap === -1) return 'max';
  if (limit === undefined || limit === 0 || limit === -1)
    refuse('linux.resources.memory.swap', 'a swap limit on cgroup v2 needs a memory limit (memory.swap.max = swap − limit)');
  if (limit < 0) refuse('linux.resources.memory.limit', `${limit} is not a limit`);
  if (swap < limit) refuse('linux.resources.memory.swap', `${swap} is below the memory limit ${limit} (swap counts memory + swap)`);
  return String(swap - limit);
}

/** OCI resources → the cgroup writes of the given version; throws, naming the field, for what that version cannot honour. */
export function resourceWrites(r: OciResources, version: CgroupVersion, o: ResourceOptions & V1UpdateOptions = {}): ResourceWrites {
  const out = version === 'v1' ? resourceWritesV1(r, o) : resourceWritesV2(r, o);
  if (r.hugepageLimits && r.hugepageLimits.length > 0)
    refuse('linux.resources.hugepageLimits', 'the hugetlb controller is not supported by paene-runc');
  if (r.network !== undefined) refuse('linux.resources.network', 'net_cls/net_prio are not supported by paene-runc');
  if (r.rdma !== undefined) refuse('linux.resources.rdma', 'the rdma controller is not supported by paene-runc');
  return out;
}

// "" is "not set" (Docker sends it for every container)
const cpusetOf = (c: NonNullable<OciResources['cpu']>) =>
  c.cpus || c.mems ? { cpus: c.cpus || undefined, mems: c.mems || undefined } : undefined;
const pidsMax = (l: number) => (l <= 0 ? 'max' : String(l));
const THROTTLES: [keyof NonNullable<OciResources['blockIO']>, v1: string, v2: string][] = [
  ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device', 'rbps'],
  ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device', 'wbps'],
  ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device', 'riops'],
  ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device', 'wiops'],
];

/**
 * `update` on v1: the memory limit in effect, so a limit and its memsw can be
 * written in the order the kernel accepts (memsw ≥ limit at every step).
 */
export interface V1UpdateOptions {
  currentMemoryLimit?: number;
}

/**
 * OCI resources → cgroup v1 writes (the hierarchy in `controller`). A 0 is
 * "not set" where runc reads it so (Docker and the kubelet send 0 for what
 * they leave alone): shares, period, quota, the realtime pair, memory limit,
 * reservation, swap, kernelTCP, the block-I/O weights.
 */
export function resourceWritesV1(r: OciResources, o: V1UpdateOptions = {}): ResourceWrites {
  const w: CgroupWrite[] = [];
  const put = (controller: string, file: string, value: number | string | undefined) => {
    if (value !== undefined) w.push({ controller, file, value: String(value) });
  };
  const set = (v: number | undefined) => (v === 0 ? undefined : v);
  const m = r.memory ?? {};
  // memory.kernel: Linux 6.1 removed the separate v1 kernel-memory limit; kernel memory is charged to
  // memory.limit_in_bytes, so the limit holds within the container's memory limit (docs/oci.md)
  whole(m.kernel, 'linux.resources.memory.kernel');
  put('memory', 'memory.kmem.tcp.limit_in_bytes', set(whole(m.kernelTCP, 'linux.resources.memory.kernelTCP')));
  const limit = set(whole(m.limit, 'linux.resources.memory.limit'));
  let swap = set(whole(m.swap, 'linux.resources.memory.swap'));
  // runc: an unlimited memory with swap unset makes memsw unlimited too
  if (limit === -1 && swap === undefined) swap = -1;
  const memsw = (v: number) =>
    w.push({
      controller: 'memory',
      file: 'memory.memsw.limit_in_bytes',
      value: String(v),
      ...(m.swap === undefined ? { optional: true } : {}),
    });
  // memsw ≥ limit at every step: raising, memsw goes first; lowering, the limit does
  const current = o.currentMemoryLimit;
  if (limit !== undefined && swap !== undefined && (swap === -1 || (current !== undefined && current < swap))) {
    memsw(swap);
    put('memory', 'memory.limit_in_bytes', limit);
  } else {
    put('memory', 'memory.limit_in_bytes', limit);
    if (swap !== undefined) memsw(swap);
  }
  put('memory', 'memory.soft_limit_in_bytes', set(whole(m.reservation, 'linux.resources.memory.reservation')));
  if (m.swappiness !== undefined && m.swappiness !== -1) {
    if (m.swappiness < 0 || m.swappiness > 100) refuse('linux.resources.memory.swappiness', `${m.swappiness} is not 0 … 100`);
    put('memory', 'memory.swappiness', m.swappiness);
  }
  if (m.disableOOMKiller) put('memory', 'memory.oom_control', 1);
  const c = r.cpu ?? {};
  put('cpu', 'cpu.shares', set(whole(c.shares, 'linux.resources.cpu.shares')));
  put('cpu', 'cpu.cfs_period_us', set(whole(c.period, 'linux.resources.cpu.period')));
  put('cpu', 'cpu.cfs_quota_us', set(whole(c.quota, 'linux.resources.cpu.quota')));
  put('cpu', 'cpu.cfs_burst_us', whole(c.burst, 'linux.resources.cpu.burst'));
  put('cpu', 'cpu.rt_period_us', set(whole(c.realtimePeriod, 'linux.resources.cpu.realtimePeriod')));
  put('cpu', 'cpu.rt_runtime_us', set(whole(c.realtimeRuntime, 'linux.resources.cpu.realtimeRuntime')));
  if (c.idle !== undefined && c.idle !== 0)
    refuse('linux.resources.cpu.idle', 'SCHED_IDLE cgroups need cgroup v2 cpu.idle; not on cgroup v1');
  if (r.pids?.limit !== undefined) put('pids', 'pids.max', pidsMax(r.pids.limit));
  const b = r.blockIO ?? {};
  put('blkio', 'blkio.weight', set(whole(b.weight, 'linux.resources.blockIO.weight')));
  put('blkio', 'blkio.leaf_weight', set(whole(b.leafWeight, 'linux.resources.blockIO.leafWeight')));
  for (const d of b.weightDevice ?? []) {
    if (d.weight) put('blkio', 'blkio.weight_device', `${d.major}:${d.minor} ${d.weight}`);
    if (d.leafWeight) put('blkio', 'blkio.leaf_weight_device', `${d.major}:${d.minor} ${d.leafWeight}`);
  }
  for (const [k, file] of THROTTLES) {
    for (const t of (b[k] as OciThrottle[] | undefined) ?? []) put('blkio', file, `${t.major}:${t.minor} ${t.rate}`);
  }
  if (r.unified && Object.keys(r.unified).length > 0)
    refuse('linux.resources.unified', 'raw cgroup v2 files are not supported on this cgroup v1 host');
  return { writes: w, cpuset: cpusetOf(c), unified: [] };
}

/** A file name linux.resources.unified may name: CONTROLLER.FILE, no path. */
const UNIFIED_FILE = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;

/**
 * OCI resources → cgroup v2 writes, in the container's one directory. What
 * v2 has no file for is refused (swappiness, the OOM-killer switch, realtime
 * CPU time, leaf weights); the kernel-memory limits are accepted because v2
 * charges kernel and TCP memory to memory.max.
 */
export function resourceWritesV2(r: OciResources, o: ResourceOptions = {}): ResourceWrites {
  const w: CgroupWrite[] = [];
  const put = (controller: string, file: string, value: string, optional = false) =>
    w.push({ controller, file, value, ...(optional ? { optional } : {}) });
  const m = r.memory ?? {};
  whole(m.kernel, 'linux.resources.memory.kernel');
  whole(m.kernelTCP, 'linux.resources.memory.kernelTCP');
  // 0 is "not set" (Docker and the kubelet send it), as in runc
  const limit = whole(m.limit, 'linux.resources.memory.limit') || undefined;
  if (limit !== undefined) put('memory', 'memory.max', limit === -1 ? 'max' : String(limit));
  const low = whole(m.reservation, 'linux.resources.memory.reservation') || undefined;
  if (low !== undefined) put('memory', 'memory.low', low === -1 ? 'max' : String(low));
  const swap = swapMaxV2(whole(m.swap, 'linux.resources.memory.swap'), limit ?? o.memoryLimit);
  if (swap !== undefined) put('memory', 'memory.swap.max', swap);
  if (m.swappiness !== undefined) refuse('linux.resources.memory.swappiness', 'cgroup v2 has no per-cgroup swappiness');
  if (m.disableOOMKiller) refuse('linux.resources.memory.disableOOMKiller', 'cgroup v2 cannot turn the OOM killer off for a cgroup');

  const c = r.cpu ?? {};
  const shares = whole(c.shares, 'linux.resources.cpu.shares');
  if (shares !== undefined && shares !== 0) put('cpu', 'cpu.weight', String(cpuWeightOfShares(shares)));
  const quota = whole(c.quota, 'linux.resources.cpu.quota');
  const period = whole(c.period, 'linux.resources.cpu.period');
  const burst = whole(c.burst, 'linux.resources.cpu.burst');
  // burst ≤ quota is checked on every write of either: burst to 0 first, the quota, then the burst (core/cgroupmap)
  if (burst !== undefined) put('cpu', 'cpu.max.burst', '0', true);
  if ((quota !== undefined && quota !== 0) || (period !== undefined && period !== 0)) {
    // runc's cpu.max: "max" unless a positive quota; the period only when given
    const q = quota !== undefined && quota > 0 ? String(quota) : 'max';
    put('cpu', 'cpu.max', period !== undefined && period !== 0 ? `${q} ${period}` : q);
  }
  if (burst !== undefined) put('cpu', 'cpu.max.burst', String(burst));
  if ((c.realtimeRuntime ?? 0) !== 0 || (c.realtimePeriod ?? 0) !== 0) {
    refuse('linux.resources.cpu.realtimeRuntime', 'cgroup v2 has no realtime CPU time per cgroup');
  }
  if (c.idle !== undefined) {
    if (c.idle !== 0 && c.idle !== 1) refuse('linux.resources.cpu.idle', `${c.idle} is not 0 or 1`);
    put('cpu', 'cpu.idle', String(c.idle));
  }
  if (r.pids?.limit !== undefined) put('pids', 'pids.max', pidsMax(r.pids.limit));

  const b = r.blockIO ?? {};
  // BFQ's own weight where a device uses BFQ (same 10 … 1000 range); io.weight (iocost) for the others
  const weight = whole(b.weight, 'linux.resources.blockIO.weight');
  if (weight !== undefined && weight !== 0) {
    put('io', 'io.bfq.weight', String(weight), true);
    put('io', 'io.weight', `default ${ioWeightOfBlkio(weight)}`);
  }
  if (b.leafWeight !== undefined && b.leafWeight !== 0) refuse('linux.resources.blockIO.leafWeight', 'cgroup v2 has no leaf weights');
  (b.weightDevice ?? []).forEach((d, i) => {
    if (d.leafWeight !== undefined && d.leafWeight !== 0)
      refuse(`linux.resources.blockIO.weightDevice[${i}].leafWeight`, 'cgroup v2 has no leaf weights');
    if (!d.weight) return; // 0: not set
    put('io', 'io.bfq.weight', `${d.major}:${d.minor} ${d.weight}`, true);
    put('io', 'io.weight', `${d.major}:${d.minor} ${ioWeightOfBlkio(d.weight)}`);
  });
  // io.max takes one key per line and keeps the device's other keys; 0 means no limit (v1's "0" too)
  for (const [k, , key] of THROTTLES) {
    for (const t of (b[k] as OciThrottle[] | undefined) ?? [])
      put('io', 'io.max', `${t.major}:${t.minor} ${key}=${t.rate === 0 ? 'max' : t.rate}`);
  }

  const unified: [string, string][] = [];
  for (const [file, value] of Object.entries(r.unified ?? {})) {
    if (!UNIFIED_FILE.test(file) || file.startsWith('cgroup.'))
      refuse(`linux.resources.unified.${file}`, "not a controller file of the container's cgroup (CONTROLLER.FILE)");
    if (typeof value !== 'string') refuse(`linux.resources.unified.${file}`, 'the value must be a string');
    unified.push([file, value]);
  }
  return { writes: w, cpuset: cpusetOf(c), unified };
}

/**
 * paene.io/io-write-bps and io-read-bps (pure v2): io.max on the block
 * devices behind the container's root. With the memory controller in the
 * same directory the kernel charges buffered writeback to the container, so
 * io.max limits the `dd` that v1's throttles let through.
 */
export function ioThrottleWrites(devices: readonly BlockDevice[], rates: { writeBps?: number; readBps?: number }): CgroupWrite[] {
  const keys = [
    rates.writeBps === undefined ? '' : ` wbps=${rates.writeBps}`,
    rates.readBps === undefined ? '' : ` rbps=${rates.readBps}`,
  ].join('');
  return keys === '' ? [] : devices.map((d) => ({ controller: 'io', file: 'io.max', value: `${d.major}:${d.minor}${keys}` }));
}

// ------------------------------------------------------------ devices

/** One device-access rule: later rules override earlier ones (the v1 devices cgroup's order). */
export interface DeviceRule {
  allow: boolean;
  type: 'a' | 'c' | 'b';
  /** undefined: any */
  major?: number;
  minor?: number;
  access: string;
}

/** Rules always allowed beside the config's: the default devices and ptys, as runc. */
const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  ...(
    [
      [1, 3],
      [1, 5],
      [1, 7],
      [1, 8],
      [1, 9],
      [5, 0],
      [5, 1],
      [5, 2],
    ] as const
  ).map(([major, minor]): DeviceRule => ({ allow: true, type: 'c', major, minor, access: 'rwm' })),
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

/**
 * The container's device rules in runc's order: deny all, the config's rules
 * (which usually end in a deny-all of their own), then the devices the
 * container has nodes for and the defaults, so they stay usable.
 */
export function deviceRules(rules: readonly OciDeviceRule[] | undefined, devices: readonly PlanDevice[]): DeviceRule[] {
  const out: DeviceRule[] = [{ allow: false, type: 'a', access: 'rwm' }];
  (rules ?? []).forEach((r, i) => {
    const where = `linux.resources.devices[${i}]`;
    const type = r.type ?? 'a';
    if (type !== 'a' && type !== 'c' && type !== 'b') refuse(`${where}.type`, `'${type}' is not a, c or b`);
    const access = r.access ?? 'rwm';
    if (!/^[rwm]{1,3}$/.test(access)) refuse(`${where}.access`, `'${access}' is not a subset of rwm`);
    const num = (v: number | null | undefined) => (v === undefined || v === null || v === -1 ? undefined : v);
    out.push(type === 'a' ? { allow: r.allow, type, access } : { allow: r.allow, type, major: num(r.major), minor: num(r.minor), access });
  });
  for (const d of devices) if (d.type !== 'p') out.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: 'rwm' });
  out.push(...DEFAULT_DEVICE_RULES);
  return out;
}

/** v1: one devices.allow / devices.deny write per rule. */
export function deviceCgroupWrites(rules: readonly DeviceRule[]): CgroupWrite[] {
  const num = (v: number | undefined) => (v === undefined ? '*' : String(v));
  return rules.map((r) => ({
    controller: 'devices',
    file: r.allow ? 'devices.allow' : 'devices.deny',
    value: r.type === 'a' ? `a *:* ${r.access}` : `${r.type} ${num(r.major)}:${num(r.minor)} ${r.access}`,
  }));
}

/** struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor; u32 each. */
export const DEV_CTX = { accessType: 0, major: 4, minor: 8, size: 12 } as const;
export const BPF_DEVCG_ACC = { m: 1, r: 2, w: 4 } as const;
export const BPF_DEVCG_DEV = { b: 1, c: 2 } as const;

/**
 * v2: the rules as a BPF_PROG_TYPE_CGROUP_DEVICE program (what runc's
 * devicefilter generates): the last rule that matches decides, nothing
 * matching is denied. A rule matches when the type and numbers match and it
 * grants every access asked for. Returns 1 (allow) or 0 (deny).
 */
export function deviceProgram(rules: readonly DeviceRule[]): Buffer {
  const a = new Asm();
  a.ldx(4, R2, R1, DEV_CTX.accessType)
    .mov32(R3, R2)
    .alu32('and', R2, { imm: 0xffff }) // r2 = type
    .alu32('rsh', R3, { imm: 16 }) // r3 = access asked
    .ldx(4, R4, R1, DEV_CTX.major)
    .ldx(4, R5, R1, DEV_CTX.minor);
  for (let i = rules.length - 1; i >= 0; i--) {
    const r = rules[i];
    const next = a.newLabel('rule');
    if (r.type !== 'a') a.jmp32('jne', R2, { imm: BPF_DEVCG_DEV[r.type] }, next);
    const grant = [...r.access].reduce((m, ch) => m | BPF_DEVCG_ACC[ch as 'r' | 'w' | 'm'], 0);
    if (grant !== 7) {
      // asked ⊆ granted
      a.mov32(R1, R3).alu32('and', R1, { imm: grant }).jmp32('jne', R1, R3, next);
    }
    if (r.type !== 'a' && r.major !== undefined) a.jmp32('jne', R4, { imm: r.major }, next);
    if (r.type !== 'a' && r.minor !== undefined) a.jmp32('jne', R5, { imm: r.minor }, next);
    a.ret(r.allow ? 1 : 0);
    a.label(next);
  }
  a.mov64(R0, { imm: 0 }).exit();
  return a.toBuffer();
}
