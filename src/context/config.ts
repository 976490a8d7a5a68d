// A context's configuration: what `create` writes and `start` carries out.
// Pure: validation of user input and of config files read back from disk.

import { type CapSpec, DEFAULT_CAP_SPEC, validateCapSpec, validateCcaps } from '../model/caps.js';
import { PaeneError } from '../model/errors.js';
import { XID_MAX, XID_MIN, parseXid, validateName } from '../model/names.js';
import { DEFAULT_LIMITS, type ResourceLimits, validateLimits } from '../model/limits.js';
import { type MountSpec, validateMounts } from '../model/mounts.js';
import { DEFAULT_NET_MODE, type NetSpec, hostModeRefusal, validateNetSpec } from '../net/model.js';
import {
  type Autostart,
  type InitSpec,
  type LogSpec,
  type MainSpec,
  type RestartPolicy,
  validateAutostart,
  validateInit,
  validateLog,
  validateMain,
  validateRestart,
} from '../model/service.js';

export { NAME_RE, XID_MAX, XID_MIN, parseXid, validateName } from '../model/names.js';

export const CONFIG_VERSION = 1;
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface ContextConfig {
  version: number;
  name: string;
  xid: number;
  image: string;
  hostname: string;
  created: string;
  caps: CapSpec;
  ccaps: string[];
  limits: ResourceLimits;
  /** space and inode limit of the private layer (vserver's vdlimit); none: it shares the host filesystem */
  disk?: DiskLimit;
  /** its network: model and owned addresses (docs/network.md) */
  net: NetSpec;
  /** the main process run at start (docs/services.md); absent: the image's Entrypoint + Cmd if it has one; 'none': nothing */
  main?: MainSpec | 'none';
  /** what happens when the main process exits (absent: no restart) */
  restart?: RestartPolicy;
  /** the main process's log on the host (absent: the default size) */
  log?: LogSpec;
  /** started by `paene autostart` */
  autostart?: Autostart;
  /** pid 1 (absent: paene's init) */
  init?: InitSpec;
  /** bind mounts and volumes made at start (docs/volumes.md); absent: none */
  mounts?: MountSpec[];
}

export interface DiskLimit {
  bytes: number;
  inodes?: number;
}

export function validateHostname(h: string): string {
  if (h.length > 64 || !HOSTNAME_RE.test(h)) {
    throw new PaeneError('invalid-argument', `invalid hostname '${h}': letters, digits, '-' and dots, at most 64 characters`);
  }
  return h;
}

/** Lowest xid in the static range not used by any existing context. */
export function allocateXid(used: Iterable<number>): number {
  const taken = new Set(used);
  for (let x = XID_MIN; x <= XID_MAX; x++) if (!taken.has(x)) return x;
  throw new PaeneError('exists', `no free xid left in ${XID_MIN}-${XID_MAX}`);
}

export interface NewContext {
  name: string;
  xid: number;
  image: string;
  hostname?: string;
  caps?: CapSpec;
  ccaps?: string[];
  limits?: ResourceLimits;
  disk?: DiskLimit;
  net?: NetSpec;
  main?: MainSpec | 'none';
  restart?: RestartPolicy;
  log?: LogSpec;
  autostart?: Autostart;
  init?: InitSpec;
  mounts?: MountSpec[];
  now?: Date;
}

export function newConfig(c: NewContext): ContextConfig {
  return {
    version: CONFIG_VERSION,
    name: validateName(c.name),
    xid: parseXid(c.xid),
    image: c.image,
    hostname: validateHostname(c.hostname ?? c.name),
    created: (c.now ?? new Date()).toISOString(),
    caps: c.caps ?? DEFAULT_CAP_SPEC,
    ccaps: c.ccaps ?? [],
    limits: c.limits ?? DEFAULT_LIMITS,
    ...(c.disk ? { disk: validateDisk(c.disk, 'disk limit') } : {}),
    net: checkNetAgainstCaps(
      validateNetSpec(c.net ?? { mode: DEFAULT_NET_MODE, addresses: [], publish: [] }, 'network'),
      c.caps ?? DEFAULT_CAP_SPEC,
    ),
    ...serviceFields(c, 'create'),
    ...(c.mounts?.length ? { mounts: validateMounts(c.mounts, 'create') } : {}),
  };
}

/** The guest-service fields of a config, each checked (absent ones stay absent). */
function serviceFields(o: Partial<Record<'main' | 'restart' | 'log' | 'autostart' | 'init', unknown>>, where: string) {
  const init = o.init === undefined ? undefined : validateInit(o.init, `${where}: init`);
  const main = o.main === undefined ? undefined : o.main === 'none' ? ('none' as const) : validateMain(o.main, `${where}: main`);
  if (init?.kind === 'guest' && main !== undefined && main !== 'none')
    throw new PaeneError('invalid-argument', `${where}: a guest init runs the guest's services itself: give it no main process (--cmd)`);
  return {
    ...(main !== undefined ? { main } : {}),
    ...(o.restart !== undefined ? { restart: validateRestart(o.restart, `${where}: restart`) } : {}),
    ...(o.log !== undefined ? { log: validateLog(o.log, `${where}: log`) } : {}),
    ...(o.autostart !== undefined ? { autostart: validateAutostart(o.autostart, `${where}: autostart`) } : {}),
    ...(init !== undefined && init.kind !== 'paene' ? { init } : {}),
  };
}

/** `--net host` is the one mode without a wall: only a privileged context may have it. */
export function checkNetAgainstCaps(net: NetSpec, caps: CapSpec): NetSpec {
  const why = net.mode === 'host' ? hostModeRefusal(caps.profile) : undefined;
  if (why) throw new PaeneError('invalid-argument', why);
  return net;
}

function validateDisk(x: unknown, where: string): DiskLimit {
  const o = x as Record<string, unknown> | null;
  const bytes = o?.bytes;
  const inodes = o?.inodes;
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new PaeneError('invalid-argument', `${where}: 'bytes' must be a positive whole number`);
  }
  if (inodes !== undefined && (typeof inodes !== 'number' || !Number.isSafeInteger(inodes) || inodes < 16)) {
    throw new PaeneError('invalid-argument', `${where}: 'inodes' must be a whole number of at least 16`);
  }
  return inodes === undefined ? { bytes } : { bytes, inodes };
}

/** Checks a config read back from disk; a hand-edited file gets a clear error. */
export function validateConfig(x: unknown, where: string): ContextConfig {
  const bad = (why: string) => new PaeneError('invalid-argument', `${where}: ${why}`);
  if (typeof x !== 'object' || x === null) throw bad('not a JSON object');
  const o = x as Record<string, unknown>;
  if (o.version !== CONFIG_VERSION) throw bad(`unsupported config version ${String(o.version)}`);
  for (const k of ['name', 'image', 'hostname', 'created'] as const) {
    if (typeof o[k] !== 'string') throw bad(`'${k}' must be a string`);
  }
  if (typeof o.xid !== 'number') throw bad(`'xid' must be a number`);
  return {
    version: CONFIG_VERSION,
    name: validateName(o.name as string),
    xid: parseXid(o.xid as number),
    image: o.image as string,
    hostname: validateHostname(o.hostname as string),
    created: o.created as string,
    caps: validateCapSpec(o.caps),
    ccaps: o.ccaps === undefined ? [] : validateCcaps(o.ccaps),
    limits: validateLimits(o.limits),
    ...(o.disk !== undefined ? { disk: validateDisk(o.disk, `${where}: disk`) } : {}),
    // Configs written before network contexts existed get the default mode; start assigns the address.
    net: validateNetSpec(o.net ?? { mode: DEFAULT_NET_MODE, addresses: [], publish: [] }, `${where}: net`),
    ...serviceFields(o, where),
    ...(o.mounts !== undefined ? { mounts: validateMounts(o.mounts, where) } : {}),
  };
}

/**
 * Paths of the guest's /proc and /sys hidden or made read-only at start,
 * after runc's defaults: kernel memory, timers and keys are masked; global
 * sysctls and bus/irq knobs are read-only (guest root would otherwise be
 * able to write them: their only protection is permission bits).
 */
export const MASKED_PATHS = [
  '/proc/kcore',
  '/proc/keys',
  '/proc/timer_list',
  '/proc/sched_debug',
  '/proc/latency_stats',
  '/proc/sysrq-trigger',
  '/proc/kallsyms',
  '/proc/acpi',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/kernel/debug',
  '/sys/kernel/security',
];
export const READONLY_PATHS = ['/proc/sys', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/asound'];

/** A character device node of the guest's minimal /dev. */
export interface DeviceNode {
  path: string;
  major: number;
  minor: number;
  mode: number;
}

/**
 * The guest's /dev: these nodes, its own devpts (ptmx is 5:2, the ptys
 * 136:*) and /dev/shm. One table for both walls: the helper makes exactly
 * these nodes, and the v1 devices cgroup allows exactly these (and nothing a
 * guest could mknod without CAP_MKNOD anyway).
 */
export const DEVICE_NODES: readonly DeviceNode[] = [
  { path: '/dev/null', major: 1, minor: 3, mode: 0o666 },
  { path: '/dev/zero', major: 1, minor: 5, mode: 0o666 },
  { path: '/dev/full', major: 1, minor: 7, mode: 0o666 },
  { path: '/dev/random', major: 1, minor: 8, mode: 0o666 },
  { path: '/dev/urandom', major: 1, minor: 9, mode: 0o666 },
  { path: '/dev/tty', major: 5, minor: 0, mode: 0o666 },
];

/** The devices cgroup's allow list: the nodes above, the pty master and the ptys. */
export function deviceAllowList(): string[] {
  return [...DEVICE_NODES.map((d) => `c ${d.major}:${d.minor} rwm`), 'c 5:2 rwm', 'c 136:* rwm'];
}

/**
 * A context's /dev, /dev/shm and /tmp: directories of the state root's one
 * scratch tmpfs (bound in at start), not a filesystem each. Its size caps
 * what all contexts together keep there; a context with a memory limit pays
 * for its files from that limit (tmpfs pages are charged to the writer).
 */
export const SCRATCH_SIZE = '50%';
export const SCRATCH_DIRS: readonly { name: string; mode: number }[] = [
  { name: 'dev', mode: 0o755 },
  { name: 'shm', mode: 0o1777 },
  { name: 'tmp', mode: 0o1777 },
];

/**
 * Sysctls that belong to a context's own namespaces (uts, ipc): the only
 * ones the runtime ever writes for it. Anything else is a knob of the host.
 */
export function isPerContextSysctl(key: string): boolean {
  return /^kernel\.(shm[a-z_]+|msg[a-z_]+|sem|hostname|domainname)$/.test(key);
}

/** The files SET_UTSNAME makes writable: the writer's own uts namespace's names (paene contexts and paene-runc). */
export const UTSNAME_PATHS: readonly string[] = ['/proc/sys/kernel/hostname', '/proc/sys/kernel/domainname'];

/** Holes in the read-only /proc/sys that a context's ccaps open (SET_UTSNAME: its own names). */
export function writablePaths(config: ContextConfig): string[] {
  return config.ccaps.includes('SET_UTSNAME') ? [...UTSNAME_PATHS] : [];
}

/** The environment a command starts with inside a context. */
export function guestEnv(config: ContextConfig, extra: Record<string, string> = {}): string[] {
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    HOSTNAME: config.hostname,
    PAENE_CONTEXT: config.name,
    ...extra,
  };
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
