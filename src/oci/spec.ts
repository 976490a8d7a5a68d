// An OCI bundle's config.json (runtime-spec 1.x) translated into paene's plan
// for one container: what paene-oci (src/native/paene-oci.c) carries out and
// what the runtime writes into the cgroups. Pure: no I/O, tested without root.
//
// A field paene cannot honour is refused with a PaeneError that names it;
// nothing is silently ignored (docs/oci.md lists the mapping and refusals).

import path from 'node:path';
import { PaeneError } from '../model/errors.js';
import type { OciConfig, OciHook, OciHooks, OciIdMap, OciLinux, OciProcess, PlanDevice } from './config.js';

export type {
  OciCaps,
  OciConfig,
  OciDevice,
  OciDeviceRule,
  OciHook,
  OciHooks,
  OciIdMap,
  OciLinux,
  OciMount,
  OciProcess,
  OciResources,
  OciRlimit,
  OciThrottle,
  PlanDevice,
} from './config.js';
import { CAP_NAMES, validateCcaps } from '../model/caps.js';
import { UTSNAME_PATHS } from '../context/config.js';
import { parseByteRate } from '../model/units.js';
import type { CgroupVersion, CgroupWrite } from '../cgroups/map.js';
import { deviceCgroupWrites, deviceProgram, deviceRules, resourceWrites } from './resources.js';
import { compileOciSeccomp } from '../seccomp/oci-profile.js';
import { OCI_PLAN } from '../proto/oci-plan.js';
import { TokenError, encodeMessage, type Entry } from '../proto/tokens.js';

// ------------------------------------------------------------ config.json

// ------------------------------------------------------------ the plan

export interface PlanMount {
  source: string;
  destination: string;
  type: string;
  /** mount(2) flags, MS_BIND/MS_REC included for binds; the rest applied by a remount */
  flags: number;
  /** propagation flags applied after the mount (MS_SHARED, MS_SLAVE, ... with MS_REC) */
  propagation: number;
  data: string;
  /** how paene-oci reaches and fills the destination (MOUNT_HOW bits) */
  how?: number;
}

/**
 * How paene-oci reaches a mount's destination (the image's symlinks are
 * resolved inside the root, and checked) and fills it:
 * NO_SYMLINK: through no symlink, onto a directory (proc and sysfs: runc's
 * rule since CVE-2019-19921, so a /proc symlink cannot move them);
 * MAY_COVER: the mount may land on a guarded tree's top (the proc mount on /proc);
 * COPY_UP: a tmpfs starts with a copy of what the image has there (`tmpcopyup`).
 */
export const MOUNT_HOW = { NO_SYMLINK: 1, MAY_COVER: 2, COPY_UP: 4 } as const;

/**
 * Trees no mount of the config may land in, as the image resolves the
 * destination (CVE-2019-16884, CVE-2019-19921, CVE-2023-27561): a bind over
 * /proc or under it would replace what the runtime and the kernel's
 * interfaces trust; only the files lxcfs emulates, as runc allows.
 */
export const GUARDED_TREES: readonly string[] = ['/proc'];
export const GUARD_ALLOWED: readonly string[] = [
  '/proc/cpuinfo',
  '/proc/diskstats',
  '/proc/meminfo',
  '/proc/stat',
  '/proc/swaps',
  '/proc/uptime',
  '/proc/loadavg',
  '/proc/slabinfo',
  '/proc/net/dev',
  '/proc/sys/kernel/ns_last_pid',
];

/** The five capability sets as masks. */
export interface PlanCaps {
  bounding: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
}
export interface PlanProcess {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  groups: number[];
  umask?: number;
  caps: PlanCaps;
  rlimits: { resource: number; soft: bigint; hard: bigint }[];
  noNewPrivileges: boolean;
  terminal: boolean;
  consoleSize?: { rows: number; cols: number };
  oomScoreAdj?: number;
  /** the AppArmor profile the process execs into (process.apparmorProfile, where the host runs AppArmor) */
  apparmorProfile?: string;
  /** the compiled filter, loaded last before exec */
  seccomp?: Buffer;
}
export type NsType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';
export const NS_TYPES: readonly NsType[] = ['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time'];
/** /proc/PID/ns/<file> of each namespace type */
export const NS_FILE: Readonly<Record<NsType, string>> = {
  pid: 'pid',
  network: 'net',
  mount: 'mnt',
  ipc: 'ipc',
  uts: 'uts',
  user: 'user',
  cgroup: 'cgroup',
  time: 'time',
};

export interface PlanCgroup {
  /** absolute path under each hierarchy's root, e.g. /paene-runc/ID */
  path: string;
  /** what the writes are for: v1 hierarchies, or a pure v2 host's one directory */
  version: CgroupVersion;
  writes: CgroupWrite[];
  cpuset?: { cpus?: string; mems?: string };
  /** v2: linux.resources.unified, written as given */
  unified: [file: string, value: string][];
  /** v2: the device rules as a BPF_CGROUP_DEVICE program (v1 has them in `writes`) */
  devices?: Buffer;
}

export interface OciPlan {
  rootfs: string;
  rootReadonly: boolean;
  rootPropagation: number;
  namespaces: { type: NsType; path: string }[];
  uidMap?: string;
  gidMap?: string;
  mounts: PlanMount[];
  /** cgroup mounts: bound from the container's own cgroup directories at start */
  cgroupMounts: { destination: string; readonly: boolean }[];
  devices: PlanDevice[];
  symlinks: [target: string, link: string][];
  masked: string[];
  readonlyPaths: string[];
  sysctl: [string, string][];
  hostname?: string;
  domainname?: string;
  process: PlanProcess;
  cgroup: PlanCgroup;
  hooks: Required<Pick<OciHooks, 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop'>>;
  annotations: Record<string, string>;
  /** paths bound read-write again inside the read-only ones (the SET_UTSNAME ccap) */
  writablePaths: string[];
  /** paene's own features read from paene.io/ annotations */
  paene: PaeneAnnotations;
}

/** What the paene.io/ annotations ask for (docs/oci.md). */
export interface PaeneAnnotations {
  cpuBurstUs?: number;
  ccaps?: string[];
  /** the buffered-write throttle: io.max on the devices behind the container's root (pure cgroup v2) */
  io?: { writeBps?: number; readBps?: number };
}

export const PAENE_ANNOTATIONS = ['paene.io/cpu-burst-us', 'paene.io/ccaps', 'paene.io/io-write-bps', 'paene.io/io-read-bps'] as const;
/** ping's groups with the RAW_ICMP ccap: every group of the container's network namespace */
export const PING_GROUP_RANGE = '0 2147483647';

function refuse(field: string, why: string): never {
  throw new PaeneError('invalid-argument', `config.json: ${field}: ${why}`);
}

/** A parser's error about an annotation's value, named by the annotation. */
function annotationValue<T>(where: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    return refuse(where, (e as Error).message);
  }
}

// mount(2) flags
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

/** option → [set, clear] flags; the options runc knows, as mount(8) spells them */
const MOUNT_FLAGS: Readonly<Record<string, [number, number]>> = {
  ro: [MS.RDONLY, 0],
  rw: [0, MS.RDONLY],
  nosuid: [MS.NOSUID, 0],
  suid: [0, MS.NOSUID],
  nodev: [MS.NODEV, 0],
  dev: [0, MS.NODEV],
  noexec: [MS.NOEXEC, 0],
  exec: [0, MS.NOEXEC],
  sync: [MS.SYNCHRONOUS, 0],
  async: [0, MS.SYNCHRONOUS],
  dirsync: [MS.DIRSYNC, 0],
  mand: [MS.MANDLOCK, 0],
  nomand: [0, MS.MANDLOCK],
  noatime: [MS.NOATIME, 0],
  atime: [0, MS.NOATIME],
  nodiratime: [MS.NODIRATIME, 0],
  diratime: [0, MS.NODIRATIME],
  relatime: [MS.RELATIME, 0],
  norelatime: [0, MS.RELATIME],
  strictatime: [MS.STRICTATIME, 0],
  nostrictatime: [0, MS.STRICTATIME],
  lazytime: [MS.LAZYTIME, 0],
  nolazytime: [0, MS.LAZYTIME],
  nosymfollow: [MS.NOSYMFOLLOW, 0],
  symfollow: [0, MS.NOSYMFOLLOW],
  remount: [MS.REMOUNT, 0],
  defaults: [0, 0],
  bind: [MS.BIND, 0],
  rbind: [MS.BIND | MS.REC, 0],
};
const PROPAGATION: Readonly<Record<string, number>> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** Mount options → flags, propagation and the data string (options the filesystem itself takes). */
export function parseMountOptions(
  options: readonly string[],
  where: string,
): { flags: number; propagation: number; data: string; copyUp: boolean } {
  let flags = 0;
  let propagation = 0;
  let copyUp = false;
  const data: string[] = [];
  for (const o of options) {
    if (o === 'tmpcopyup') {
      copyUp = true; // runc's and crun's extension, which Podman adds to every tmpfs
      continue;
    }
    const f = MOUNT_FLAGS[o];
    if (f) {
      flags = (flags | f[0]) & ~f[1];
      continue;
    }
    const p = PROPAGATION[o];
    if (p !== undefined) {
      propagation |= p;
      continue;
    }
    if (o.startsWith('idmap') || o.startsWith('ridmap') || o.startsWith('x-')) {
      refuse(`${where}.options`, `'${o}' is not supported by paene-runc`);
    }
    if (o.includes(',')) refuse(`${where}.options`, `'${o}' contains a comma`);
    data.push(o);
  }
  return { flags, propagation, data: data.join(','), copyUp };
}

/** Absolute, normalized, no '..' left: a path inside the container. */
export function containerPath(p: string, where: string): string {
  if (typeof p !== 'string' || p === '') refuse(where, 'must be a non-empty path');
  if (!p.startsWith('/')) refuse(where, `'${p}' must be absolute`);
  const n = path.posix.normalize(p);
  if (n.split('/').includes('..')) refuse(where, `'${p}' leaves the root`);
  if (n.includes('\0')) refuse(where, 'contains a NUL byte');
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

const CAP_BITS: ReadonlyMap<string, number> = new Map(CAP_NAMES.map((n, i) => ['CAP_' + n, i]));

export function capsMask(names: readonly string[] | undefined, where: string): bigint {
  let m = 0n;
  for (const n of names ?? []) {
    const bit = CAP_BITS.get(n);
    if (bit === undefined)
      refuse(where, `unknown capability '${n}' (paene knows CAP_${CAP_NAMES[0]} … CAP_${CAP_NAMES[CAP_NAMES.length - 1]})`);
    m |= 1n << BigInt(bit);
  }
  return m;
}

export const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

const U64_MAX = (1n << 64n) - 1n;
function rlimitValue(v: number, where: string): bigint {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) refuse(where, `${v} is not a limit (0 … 2^64-1)`);
  const b = BigInt(v);
  return b >= U64_MAX ? U64_MAX : b;
}

/** The devices every container gets (runtime-spec "Default Devices"), as runc makes them. */
export const DEFAULT_DEVICES: readonly PlanDevice[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9, mode: 0o666, uid: 0, gid: 0 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0, mode: 0o666, uid: 0, gid: 0 },
];
const DEFAULT_SYMLINKS: readonly [string, string][] = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
  ['pts/ptmx', '/dev/ptmx'],
];
/** cgroupsPath → an absolute path under each hierarchy; a missing one goes under /paene-runc. */
export function cgroupPathOf(cgroupsPath: string | undefined, id: string): string {
  if (cgroupsPath === undefined || cgroupsPath === '') return `/paene-runc/${id}`;
  if (cgroupsPath.includes(':'))
    refuse(
      'linux.cgroupsPath',
      `'${cgroupsPath}' is a systemd slice:prefix:name path; paene-runc manages cgroupfs paths (do not pass --systemd-cgroup paths)`,
    );
  const abs = cgroupsPath.startsWith('/') ? cgroupsPath : `/paene-runc/${cgroupsPath}`;
  const n = path.posix.normalize(abs);
  if (n.split('/').includes('..') || n === '/') refuse('linux.cgroupsPath', `'${cgroupsPath}' is not a cgroup below the root`);
  return n.endsWith('/') ? n.slice(0, -1) : n;
}

function idMap(maps: OciIdMap[] | undefined, where: string): string | undefined {
  if (!maps || maps.length === 0) return undefined;
  if (maps.length > 340) refuse(where, 'too many ranges');
  return maps
    .map((m, i) => {
      for (const k of ['containerID', 'hostID', 'size'] as const) {
        if (!Number.isInteger(m[k]) || m[k] < 0) refuse(`${where}[${i}].${k}`, 'must be a whole number');
      }
      return `${m.containerID} ${m.hostID} ${m.size}\n`;
    })
    .join('');
}

const SUPPORTED_HOOKS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

export interface TranslateOptions {
  id: string;
  bundle: string;
  /** which cgroup files the resources become: v1 (and hybrid) hierarchies or a pure v2 host's */
  cgroup: CgroupVersion;
  /** whether the host runs AppArmor (/sys/module/apparmor/parameters/enabled is Y) */
  apparmor?: boolean;
}

/** config.json → the plan; throws a PaeneError naming the first field paene cannot honour. */
export function translateConfig(cfg: OciConfig, o: TranslateOptions): OciPlan {
  if (typeof cfg !== 'object' || cfg === null) refuse('(top)', 'not a JSON object');
  if (typeof cfg.ociVersion !== 'string' || !/^1\./.test(cfg.ociVersion))
    refuse('ociVersion', `'${cfg.ociVersion}' is not a 1.x runtime-spec version`);
  if (!cfg.root?.path) refuse('root.path', 'missing');
  const root = cfg.root as { path: string; readonly?: boolean };
  const rootfs = path.resolve(o.bundle, root.path);
  const linux: OciLinux = cfg.linux ?? {};
  if (!cfg.linux) refuse('linux', 'missing: paene-runc runs Linux containers only');
  for (const k of ['intelRdt', 'personality', 'memoryPolicy', 'netDevices', 'timeOffsets'] as const) {
    if (linux[k] !== undefined) refuse(`linux.${k}`, 'not supported by paene-runc');
  }
  if (linux.mountLabel) refuse('linux.mountLabel', 'SELinux labels are not supported by paene-runc');

  // namespaces
  const namespaces: { type: NsType; path: string }[] = [];
  const seen = new Set<string>();
  (linux.namespaces ?? []).forEach((n, i) => {
    if (!(NS_TYPES as readonly string[]).includes(n.type)) refuse(`linux.namespaces[${i}].type`, `unknown namespace '${n.type}'`);
    if (seen.has(n.type)) refuse(`linux.namespaces[${i}]`, `namespace '${n.type}' given twice`);
    seen.add(n.type);
    if (n.path !== undefined && n.path !== '' && !n.path.startsWith('/')) refuse(`linux.namespaces[${i}].path`, 'must be absolute');
    namespaces.push({ type: n.type as NsType, path: n.path ?? '' });
  });
  const hasUserNs = seen.has('user');
  if (!hasUserNs && (linux.uidMappings?.length || linux.gidMappings?.length)) refuse('linux.uidMappings', 'given without a user namespace');
  if (cfg.hostname !== undefined && cfg.hostname !== '' && !seen.has('uts')) refuse('hostname', 'set without a uts namespace');
  if (cfg.domainname !== undefined && cfg.domainname !== '' && !seen.has('uts')) refuse('domainname', 'set without a uts namespace');

  // mounts
  const mounts: PlanMount[] = [];
  const cgroupMounts: OciPlan['cgroupMounts'] = [];
  (cfg.mounts ?? []).forEach((m, i) => {
    const where = `mounts[${i}]`;
    const destination = containerPath(m.destination, `${where}.destination`);
    if (m.uidMappings || m.gidMappings) refuse(where, 'idmapped mounts are not supported by paene-runc');
    const opts = parseMountOptions(m.options ?? [], where);
    let type = m.type ?? '';
    if ((opts.flags & MS.BIND) !== 0) type = 'bind';
    if (type === 'bind' && (opts.flags & MS.BIND) === 0) opts.flags |= MS.BIND;
    if (type === 'cgroup' || type === 'cgroup2') {
      cgroupMounts.push({ destination, readonly: (opts.flags & MS.RDONLY) !== 0 });
      return;
    }
    if (type === '') refuse(`${where}.type`, 'missing (and no bind option)');
    let source = m.source ?? type;
    if (type === 'bind') {
      if (!m.source) refuse(`${where}.source`, 'a bind mount needs a source');
      source = path.resolve(o.bundle, m.source);
    }
    if ((opts.flags & MS.REMOUNT) !== 0) refuse(`${where}.options`, "'remount' is not a mount paene-runc can make");
    let how = 0;
    if (type === 'proc' || type === 'sysfs') how |= MOUNT_HOW.NO_SYMLINK;
    if (type === 'proc' && destination === '/proc') how |= MOUNT_HOW.MAY_COVER;
    if (opts.copyUp) {
      if (type !== 'tmpfs') refuse(`${where}.options`, "'tmpcopyup' is for tmpfs mounts");
      how |= MOUNT_HOW.COPY_UP;
    }
    mounts.push({ source, destination, type, flags: opts.flags, propagation: opts.propagation, data: opts.data, how });
  });

  // devices
  const devices: PlanDevice[] = [...DEFAULT_DEVICES];
  (linux.devices ?? []).forEach((d, i) => {
    const where = `linux.devices[${i}]`;
    const p = containerPath(d.path, `${where}.path`);
    const type = d.type === 'u' ? 'c' : d.type;
    if (type !== 'c' && type !== 'b' && type !== 'p') refuse(`${where}.type`, `'${d.type}' is not c, b, u or p`);
    if (type !== 'p' && (!Number.isInteger(d.major) || !Number.isInteger(d.minor))) refuse(where, 'major and minor are required');
    const dev: PlanDevice = {
      path: p,
      type,
      major: d.major ?? 0,
      minor: d.minor ?? 0,
      mode: d.fileMode ?? 0o666,
      uid: d.uid ?? 0,
      gid: d.gid ?? 0,
    };
    const at = devices.findIndex((x) => x.path === p);
    if (at >= 0) devices[at] = dev;
    else devices.push(dev);
  });

  // process
  const pr = cfg.process;
  if (!pr) refuse('process', 'missing');
  const proc = pr as OciProcess;
  // as runc: the profile is applied on exec where the host runs AppArmor; elsewhere the container cannot start
  // (runc fails its init with "write /proc/self/attr/exec: invalid argument"; this says why, at create)
  if (proc.apparmorProfile && !o.apparmor)
    refuse('process.apparmorProfile', `'${proc.apparmorProfile}' asked for, but AppArmor is not enabled on this host`);
  if (proc.selinuxLabel) refuse('process.selinuxLabel', 'SELinux is not supported by paene-runc');
  for (const k of ['scheduler', 'ioPriority', 'execCPUAffinity', 'commandLine'] as const) {
    if (proc[k] !== undefined) refuse(`process.${k}`, 'not supported by paene-runc');
  }
  const process = translateProcess(proc, 'process');
  if (proc.apparmorProfile) process.apparmorProfile = proc.apparmorProfile;
  if (linux.seccomp !== undefined) process.seccomp = compileOciSeccomp(linux.seccomp);

  // sysctl
  const sysctl: [string, string][] = [];
  for (const [k, v] of Object.entries(linux.sysctl ?? {})) {
    if (!/^[a-zA-Z0-9_.\-/]+$/.test(k) || k.includes('..')) refuse(`linux.sysctl.${k}`, 'not a sysctl name');
    if (!isNamespacedSysctl(k, seen))
      refuse(`linux.sysctl.${k}`, "not in a namespace the container has its own of (it would change the host's)");
    sysctl.push([k, String(v)]);
  }

  // hooks
  const hooks = cfg.hooks ?? {};
  for (const k of Object.keys(hooks)) {
    if (!SUPPORTED_HOOKS.includes(k) && (hooks[k as keyof OciHooks]?.length ?? 0) > 0) {
      refuse(`hooks.${k}`, 'not a hook of runtime-spec 1.x');
    }
  }
  const checkHooks = (list: OciHook[] | undefined, where: string, inContainer = false) =>
    (list ?? []).map((h, i) => {
      if (!h.path || !h.path.startsWith('/')) refuse(`${where}[${i}].path`, 'must be absolute');
      if (h.timeout !== undefined && (!Number.isInteger(h.timeout) || h.timeout <= 0))
        refuse(`${where}[${i}].timeout`, 'must be a positive whole number');
      // a hook inside the container is a process there like an exec; paene-runc cannot time it out cleanly
      if (inContainer && h.timeout !== undefined) refuse(`${where}[${i}].timeout`, 'not supported for hooks that run inside the container');
      return h;
    });

  // resources
  const res = linux.resources ?? {};
  const { writes, cpuset, unified } = resourceWrites(res, o.cgroup);
  const cgPath = cgroupPathOf(linux.cgroupsPath, o.id);
  const annotations = cfg.annotations ?? {};
  const paene: PaeneAnnotations = {};
  const writablePaths: string[] = [];
  for (const [k, v] of Object.entries(annotations)) {
    if (!k.startsWith('paene.io/')) continue;
    const where = `annotations.${k}`;
    if (k === 'paene.io/cpu-burst-us') {
      if (!/^\d+$/.test(v)) refuse(where, `'${v}' is not a whole number of microseconds`);
      paene.cpuBurstUs = Number(v);
      writes.push({ controller: 'cpu', file: o.cgroup === 'v1' ? 'cpu.cfs_burst_us' : 'cpu.max.burst', value: v });
    } else if (k === 'paene.io/ccaps') {
      paene.ccaps = annotationValue(where, () =>
        validateCcaps(
          v
            .split(',')
            .map((c) => c.trim())
            .filter(Boolean),
        ),
      );
      if (paene.ccaps.includes('SET_UTSNAME')) {
        if (!seen.has('uts')) refuse(where, "SET_UTSNAME needs a uts namespace of its own (it makes the container's own names writable)");
        writablePaths.push(...UTSNAME_PATHS);
      }
      if (paene.ccaps.includes('RAW_ICMP')) {
        // net.ipv4.ping_group_range is per network namespace: only one the container owns
        if (!seen.has('network')) refuse(where, "RAW_ICMP needs a network namespace (net.ipv4.ping_group_range would change the host's)");
        if (!sysctl.some(([name]) => name === 'net.ipv4.ping_group_range')) sysctl.push(['net.ipv4.ping_group_range', PING_GROUP_RANGE]);
      }
    } else if (k === 'paene.io/io-write-bps' || k === 'paene.io/io-read-bps') {
      if (o.cgroup !== 'v2') {
        refuse(
          where,
          'needs a pure cgroup v2 host, where io.max with the memory controller limits buffered writes; on cgroup v1 use linux.resources.blockIO (direct I/O only)',
        );
      }
      const rate = annotationValue(where, () => parseByteRate(v));
      paene.io = { ...paene.io, [k === 'paene.io/io-write-bps' ? 'writeBps' : 'readBps']: rate };
    } else refuse(where, `unknown paene.io/ annotation (known: ${PAENE_ANNOTATIONS.join(', ')})`);
  }
  const rules = deviceRules(res.devices, devices);
  if (o.cgroup === 'v1') writes.unshift(...deviceCgroupWrites(rules));

  const rp = linux.rootfsPropagation;
  let rootPropagation = 0;
  if (rp) {
    const f = PROPAGATION[rp];
    if (f === undefined) refuse('linux.rootfsPropagation', `'${rp}' is not one of ${Object.keys(PROPAGATION).join(', ')}`);
    rootPropagation = f as number;
  }

  return {
    rootfs,
    rootReadonly: root.readonly === true,
    rootPropagation,
    namespaces,
    uidMap: idMap(linux.uidMappings, 'linux.uidMappings'),
    gidMap: idMap(linux.gidMappings, 'linux.gidMappings'),
    mounts,
    cgroupMounts,
    devices,
    symlinks: [...DEFAULT_SYMLINKS],
    masked: (linux.maskedPaths ?? []).map((p, i) => containerPath(p, `linux.maskedPaths[${i}]`)),
    readonlyPaths: (linux.readonlyPaths ?? []).map((p, i) => containerPath(p, `linux.readonlyPaths[${i}]`)),
    sysctl,
    hostname: cfg.hostname || undefined,
    domainname: cfg.domainname || undefined,
    process,
    cgroup: { path: cgPath, version: o.cgroup, writes, cpuset, unified, devices: o.cgroup === 'v2' ? deviceProgram(rules) : undefined },
    hooks: {
      createRuntime: [...checkHooks(hooks.prestart, 'hooks.prestart'), ...checkHooks(hooks.createRuntime, 'hooks.createRuntime')],
      createContainer: checkHooks(hooks.createContainer, 'hooks.createContainer', true),
      startContainer: checkHooks(hooks.startContainer, 'hooks.startContainer', true),
      poststart: checkHooks(hooks.poststart, 'hooks.poststart'),
      poststop: checkHooks(hooks.poststop, 'hooks.poststop'),
    },
    annotations,
    writablePaths,
    paene,
  };
}

/** Sysctls the kernel keeps per namespace (runc's list): ipc ones need an ipc namespace, net.* a network one. */
export function isNamespacedSysctl(k: string, ns: ReadonlySet<string>): boolean {
  const ipc = [
    'kernel.msgmax',
    'kernel.msgmnb',
    'kernel.msgmni',
    'kernel.sem',
    'kernel.shmall',
    'kernel.shmmax',
    'kernel.shmmni',
    'kernel.shm_rmid_forced',
  ];
  if (ipc.includes(k) || k.startsWith('fs.mqueue.')) return ns.has('ipc');
  if (k.startsWith('net.')) return ns.has('network');
  if (k === 'kernel.hostname' || k === 'kernel.domainname') return ns.has('uts');
  return false;
}

/** process (of config.json or of `exec --process`) → the plan's process. */
export function translateProcess(p: OciProcess, where: string): PlanProcess {
  if (!p.args || p.args.length === 0) refuse(`${where}.args`, 'missing or empty');
  if (typeof p.cwd !== 'string' || !p.cwd.startsWith('/')) refuse(`${where}.cwd`, `'${p.cwd}' must be an absolute path`);
  const u = p.user ?? { uid: 0, gid: 0 };
  if (u.username) refuse(`${where}.user.username`, 'is for Windows; give uid and gid');
  for (const k of ['uid', 'gid'] as const) {
    if (!Number.isInteger(u[k]) || u[k] < 0) refuse(`${where}.user.${k}`, 'must be a whole number');
  }
  const c = p.capabilities ?? {};
  const caps: PlanCaps = {
    bounding: capsMask(c.bounding, `${where}.capabilities.bounding`),
    effective: capsMask(c.effective, `${where}.capabilities.effective`),
    permitted: capsMask(c.permitted, `${where}.capabilities.permitted`),
    inheritable: capsMask(c.inheritable, `${where}.capabilities.inheritable`),
    ambient: capsMask(c.ambient, `${where}.capabilities.ambient`),
  };
  const rl = new Set<string>();
  const rlimits = (p.rlimits ?? []).map((r, i) => {
    const res = RLIMITS[r.type];
    if (res === undefined) refuse(`${where}.rlimits[${i}].type`, `unknown rlimit '${r.type}'`);
    if (rl.has(r.type)) refuse(`${where}.rlimits[${i}]`, `${r.type} given twice`);
    rl.add(r.type);
    const soft = rlimitValue(r.soft, `${where}.rlimits[${i}].soft`);
    const hard = rlimitValue(r.hard, `${where}.rlimits[${i}].hard`);
    if (soft > hard) refuse(`${where}.rlimits[${i}]`, `soft ${soft} exceeds hard ${hard}`);
    return { resource: res as number, soft, hard };
  });
  if (p.oomScoreAdj !== undefined && (!Number.isInteger(p.oomScoreAdj) || p.oomScoreAdj < -1000 || p.oomScoreAdj > 1000)) {
    refuse(`${where}.oomScoreAdj`, `${p.oomScoreAdj} is not -1000 … 1000`);
  }
  const env = p.env ?? [];
  env.forEach((e, i) => {
    if (typeof e !== 'string' || !e.includes('=')) refuse(`${where}.env[${i}]`, `'${e}' is not NAME=VALUE`);
  });
  return {
    args: p.args as string[],
    env,
    cwd: p.cwd,
    uid: u.uid,
    gid: u.gid,
    groups: u.additionalGids ?? [],
    umask: u.umask,
    caps,
    rlimits,
    noNewPrivileges: p.noNewPrivileges === true,
    terminal: p.terminal === true,
    consoleSize: p.consoleSize ? { rows: p.consoleSize.height, cols: p.consoleSize.width } : undefined,
    oomScoreAdj: p.oomScoreAdj,
  };
}

// ------------------------------------------------------------ plan file

/** The process part of the plan (proto/oci-plan.ts), shared by create, exec and hooks. */
export function processTokens(p: PlanProcess): Entry[] {
  const t: Entry[] = [];
  for (const a of p.args) t.push(['arg', a]);
  for (const e of p.env) t.push(['env', e]);
  t.push(['cwd', p.cwd], ['user', String(p.uid), String(p.gid)]);
  for (const g of p.groups) t.push(['group', String(g)]);
  if (p.umask !== undefined) t.push(['umask', String(p.umask)]);
  const c = p.caps;
  t.push(['caps', ...[c.bounding, c.effective, c.permitted, c.inheritable, c.ambient].map((m) => '0x' + m.toString(16))]);
  for (const r of p.rlimits) t.push(['rlimit', String(r.resource), String(r.soft), String(r.hard)]);
  if (p.noNewPrivileges) t.push(['nnp']);
  if (p.terminal) t.push(['terminal']);
  if (p.consoleSize) t.push(['consolesize', String(p.consoleSize.rows), String(p.consoleSize.cols)]);
  if (p.oomScoreAdj !== undefined) t.push(['oom', String(p.oomScoreAdj)]);
  if (p.apparmorProfile) t.push(['apparmor', p.apparmorProfile]);
  if (p.seccomp) t.push(['seccomp', p.seccomp.toString('hex')]);
  // Docker and the kubelet send no HOME: it is the runtime's to find, as runc does
  if (!p.env.some((e) => e.startsWith('HOME='))) t.push(['home-from-passwd']);
  t.push(['execcheck']);
  return t;
}

export interface CreateTokensInput {
  plan: OciPlan;
  fifo: string;
  cgroupProcs: string[];
  /** host directory of each cgroup mount's hierarchy → where it goes in the container */
  cgroupBinds: PlanMount[];
  consoleSocket?: string;
  noPivot?: boolean;
  wait?: boolean;
  /** descriptors 3 … 3+N-1 of the caller that the process keeps (--preserve-fds, LISTEN_FDS) */
  preserveFds?: number;
}

export function createTokens(i: CreateTokensInput): Entry[] {
  const p = i.plan;
  const t: Entry[] = [];
  for (const n of p.namespaces) t.push(['ns', n.type, n.path]);
  if (p.uidMap) t.push(['uidmap', p.uidMap]);
  if (p.gidMap) t.push(['gidmap', p.gidMap]);
  for (const f of i.cgroupProcs) t.push(['cgroup', f]);
  t.push(['rootfs', p.rootfs], ['fifo', i.fifo]);
  if (p.rootPropagation) t.push(['rootprop', String(p.rootPropagation)]);
  if (i.noPivot) t.push(['nopivot']);
  if (p.rootReadonly) t.push(['rootro']);
  if (i.wait) t.push(['wait']);
  if (p.hostname) t.push(['hostname', p.hostname]);
  if (p.domainname) t.push(['domainname', p.domainname]);
  if (i.consoleSocket) t.push(['console', i.consoleSocket]);
  if (i.preserveFds) t.push(['preserve', String(i.preserveFds)]);
  for (const g of GUARDED_TREES) t.push(['guard', g]);
  for (const a of GUARD_ALLOWED) t.push(['guard-allow', a]);
  for (const m of [...p.mounts, ...i.cgroupBinds]) {
    t.push(['mount', m.source, m.destination, m.type, String(m.flags), String(m.propagation), m.data, String(m.how ?? 0)]);
  }
  for (const d of p.devices)
    t.push(['dev', d.path, d.type, String(d.major), String(d.minor), String(d.mode), String(d.uid), String(d.gid)]);
  for (const [target, link] of p.symlinks) t.push(['symlink', target, link]);
  for (const m of p.masked) t.push(['mask', m]);
  for (const r of p.readonlyPaths) t.push(['ro', r]);
  for (const w of p.writablePaths) t.push(['rw', w]);
  for (const [k, v] of p.sysctl) t.push(['sysctl', k, v]);
  t.push(...processTokens(p.process));
  t.push(['mkcwd']);
  if (p.process.terminal) t.push(['console-dev']);
  return t;
}

/** The plan as paene-oci reads it (proto/oci-plan.ts): every entry checked against the message, closed by `end N`. */
export function encodeTokens(t: readonly Entry[]): Buffer {
  try {
    return encodeMessage(OCI_PLAN, t);
  } catch (e) {
    if (e instanceof TokenError) throw new PaeneError('invalid-argument', `config.json: ${e.message}`);
    throw e;
  }
}
