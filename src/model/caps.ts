// Split root: which Linux capabilities guest root keeps, as names, sets and
// the 64-bit masks the kernel reads and prints. Pure; the kernel adapter
// applies the result (bounding, permitted, effective, inheritable, ambient).

import { PaeneError } from './errors.js';

export type CapProfile = 'secure' | 'strict' | 'privileged';
export const CAP_PROFILES: readonly CapProfile[] = ['secure', 'strict', 'privileged'];

/** Names are normalised: upper case, no CAP_ prefix (e.g. "NET_RAW"). */
export interface CapSpec {
  profile: CapProfile;
  add: string[];
  drop: string[];
}
export const DEFAULT_CAP_SPEC: CapSpec = { profile: 'secure', add: [], drop: [] };

/** Index = the kernel's capability number (linux/capability.h, 0..CAP_LAST_CAP=40). */
export const CAP_NAMES: readonly string[] = [
  'CHOWN', // 0
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL', // 5
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', // 10
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER', // 15
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT', // 20
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME', // 25
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL', // 30
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM', // 35
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE', // 40
];
export const CAP_LAST_CAP = CAP_NAMES.length - 1;

const CAP_NUMBER: ReadonlyMap<string, number> = new Map(CAP_NAMES.map((n, i) => [n, i]));

export function capNumber(name: string): number {
  const n = CAP_NUMBER.get(parseCapName(name));
  if (n === undefined) throw new PaeneError('internal', `capability table out of sync for ${name}`);
  return n;
}

/**
 * vserver's secure default for guest root. AUDIT_WRITE stays (login, sudo and
 * sshd write audit records and fail closed without it; writing a record does
 * not reconfigure audit). Everything else is removed, see REMOVED_REASONS.
 */
const SECURE: readonly string[] = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_TTY_CONFIG',
  'LEASE',
  'SETFCAP',
  'AUDIT_WRITE',
];
/** strict = secure minus the three that help an attacker already inside most. */
const STRICT_ALSO_REMOVES: readonly string[] = ['SYS_PTRACE', 'SYS_CHROOT', 'SETFCAP'];

export const PROFILE_CAPS: Readonly<Record<CapProfile, readonly string[]>> = {
  secure: SECURE,
  strict: SECURE.filter((c) => !STRICT_ALSO_REMOVES.includes(c)),
  privileged: CAP_NAMES,
};

/**
 * Why each capability is not in the secure profile (docs/security.md and
 * `paene caps` print these). Capabilities newer than vserver are removed when
 * they reach outside the guest; AUDIT_READ is removed too because the audit
 * log is not namespaced: reading it shows every context's and the host's events.
 */
export const REMOVED_REASONS: Readonly<Record<string, string>> = {
  SETPCAP:
    'adds any bounding-set capability to the inheritable set and changes securebits; paene fixes the sets at start and nothing in a guest needs it',
  LINUX_IMMUTABLE: 'could clear the immutable flag that protects unified (shared) files of every context',
  NET_BROADCAST: "broadcast/multicast on the host's network, which contexts share",
  NET_ADMIN: "would reconfigure the host's interfaces, routes and firewall (contexts share the host network)",
  NET_RAW: 'raw and packet sockets can spoof and sniff host traffic; ping is offered by the RAW_ICMP context capability',
  IPC_LOCK: "mlock without limit pins host memory outside the memory controller's reclaim",
  IPC_OWNER: 'bypasses SysV IPC permission checks (kept out even though IPC is per-context)',
  SYS_MODULE: 'loads kernel code: full host compromise',
  SYS_RAWIO: 'iopl/ioperm, /dev/mem, raw SCSI commands: direct hardware access',
  SYS_PACCT: 'process accounting is host-wide',
  SYS_ADMIN: 'mount, swapon, sethostname, quotactl, namespaces and dozens more: the "new root"; too broad to hand out',
  SYS_BOOT: 'reboot and kexec the whole machine',
  SYS_NICE: 'negative nice and real-time scheduling starve other contexts; lowering its own priority needs no capability',
  SYS_RESOURCE: "raises hard rlimits and bypasses quotas and reserved disk space, defeating paene's limits",
  SYS_TIME: 'the clock is host-wide',
  MKNOD: 'device nodes give raw access to host disks and memory',
  AUDIT_CONTROL: 'reconfigures the host-wide audit subsystem',
  MAC_OVERRIDE: "bypasses the host's LSM (AppArmor/SELinux/Smack) policy",
  MAC_ADMIN: "changes the host's LSM policy",
  SYSLOG: "reads and clears the host's kernel log, which leaks kernel addresses (defeats KASLR)",
  WAKE_ALARM: 'sets alarms that wake the whole machine from suspend',
  BLOCK_SUSPEND: 'keeps the whole machine from suspending',
  AUDIT_READ: "the audit log is not namespaced: it shows every context's and the host's events",
  PERFMON: 'perf monitoring observes the host and other contexts (side channels, kernel addresses)',
  BPF: 'loads BPF programs and maps into the shared kernel',
  CHECKPOINT_RESTORE: "sets PIDs of new processes and reads other processes' state for CRIU; not confined to the guest",
};
/** Why strict also removes these (they stay in secure because admin tools use them). */
export const STRICT_REASONS: Readonly<Record<string, string>> = {
  SYS_PTRACE: "debugging and /proc/PID/mem access to the guest's own processes; handy for attackers who got in",
  SYS_CHROOT:
    'chroot inside the guest; a step in classic break-out attempts (harmless in a mount ns whose root has no host mount beneath, but not needed by most services)',
  SETFCAP: 'sets file capabilities; bounded by the bounding set, but not needed by most guests',
};

export function parseCapName(s: string): string {
  const n = s.trim().toUpperCase().replace(/^CAP_/, '');
  if (!CAP_NUMBER.has(n)) {
    throw new PaeneError(
      'invalid-argument',
      `unknown capability '${s}': valid names (with or without CAP_, any case) are ${CAP_NAMES.join(', ')}`,
    );
  }
  return n;
}

export function parseCapProfile(s: string): CapProfile {
  const p = s.trim().toLowerCase();
  if (!(CAP_PROFILES as readonly string[]).includes(p)) {
    throw new PaeneError('invalid-argument', `unknown capability profile '${s}': use one of ${CAP_PROFILES.join(', ')}`);
  }
  return p as CapProfile;
}

/** Builds a spec from CLI values (--caps, --cap-add, --cap-drop). */
export function makeCapSpec(profile = 'secure', add: string[] = [], drop: string[] = []): CapSpec {
  return {
    profile: parseCapProfile(profile),
    add: dedupe(add.map(parseCapName)),
    drop: dedupe(drop.map(parseCapName)),
  };
}

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** Profile, plus add, minus drop (drop wins when a name is in both). */
export function capSet(spec: CapSpec): Set<string> {
  const s = new Set(PROFILE_CAPS[spec.profile]);
  for (const a of spec.add) s.add(parseCapName(a));
  for (const d of spec.drop) s.delete(parseCapName(d));
  return s;
}

/** Kernel bit order: bit n = capability n. */
export function capMask(spec: CapSpec): bigint {
  return namesToMask(capSet(spec));
}

export function namesToMask(names: Iterable<string>): bigint {
  let m = 0n;
  for (const c of names) m |= 1n << BigInt(capNumber(c));
  return m;
}

/** Names in kernel order; bits above CAP_LAST_CAP show as "CAP_<n>" (a newer kernel's capability). */
export function maskToNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < 64; i++) {
    if ((mask >> BigInt(i)) & 1n) out.push(i <= CAP_LAST_CAP ? (CAP_NAMES[i] as string) : `CAP_${i}`);
  }
  return out;
}

/** The 16 hex digits /proc/PID/status prints for CapBnd/CapEff/... */
export function formatCapHex(mask: bigint): string {
  return mask.toString(16).padStart(16, '0');
}

/** Decodes a /proc/PID/status value ("000001ffffffffff", or the whole "CapBnd:\t…" line). */
export function parseCapHex(hex: string): bigint {
  const v = hex
    .trim()
    .replace(/^Cap[A-Za-z]+:\s*/, '')
    .replace(/^0x/i, '');
  if (!/^[0-9a-fA-F]{1,16}$/.test(v)) throw new PaeneError('invalid-argument', `not a capability mask: '${hex}'`);
  return BigInt(`0x${v}`);
}

export type CapSetName = 'CapInh' | 'CapPrm' | 'CapEff' | 'CapBnd' | 'CapAmb';
export const CAP_SET_NAMES: readonly CapSetName[] = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'];

/** The five capability sets from the text of /proc/PID/status. */
export function parseProcStatusCaps(status: string): Record<CapSetName, bigint> {
  const out: Partial<Record<CapSetName, bigint>> = {};
  for (const line of status.split('\n')) {
    const m = /^(Cap(?:Inh|Prm|Eff|Bnd|Amb)):\s*([0-9a-fA-F]+)\s*$/.exec(line);
    if (m) out[m[1] as CapSetName] = parseCapHex(m[2] as string);
  }
  for (const k of CAP_SET_NAMES) {
    // Kernels before 4.3 have no CapAmb: an absent ambient set is empty.
    if (out[k] === undefined) {
      if (k === 'CapAmb') out[k] = 0n;
      else throw new PaeneError('invalid-argument', `/proc/PID/status has no ${k} line`);
    }
  }
  return out as Record<CapSetName, bigint>;
}

/** What the secure profile removes, with reasons, in kernel order. */
export function removedCaps(spec: CapSpec): { name: string; reason: string }[] {
  const kept = capSet(spec);
  return CAP_NAMES.filter((n) => !kept.has(n)).map((name) => ({
    name,
    reason: REMOVED_REASONS[name] ?? STRICT_REASONS[name] ?? 'dropped by configuration',
  }));
}

/** For config files read from disk: strict, with the offending field in the message. */
export function validateCapSpec(x: unknown): CapSpec {
  if (x === undefined || x === null) return { ...DEFAULT_CAP_SPEC, add: [], drop: [] };
  if (typeof x !== 'object' || Array.isArray(x)) throw new PaeneError('invalid-argument', `caps: must be an object {profile, add, drop}`);
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['profile', 'add', 'drop'].includes(k))
      throw new PaeneError('invalid-argument', `caps: unknown field '${k}' (expected profile, add, drop)`);
  }
  if (typeof o.profile !== 'string') throw new PaeneError('invalid-argument', `caps.profile: must be one of ${CAP_PROFILES.join(', ')}`);
  const list = (k: 'add' | 'drop'): string[] => {
    const v = o[k];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((e) => typeof e === 'string')) {
      throw new PaeneError('invalid-argument', `caps.${k}: must be a list of capability names`);
    }
    return dedupe((v as string[]).map(parseCapName));
  };
  return { profile: parseCapProfile(o.profile), add: list('add'), drop: list('drop') };
}

// ---------------------------------------------------------------------------
// Context capabilities (vserver ccaps): per-guest permissions that are not
// Linux capabilities. paene offers only those it can map without handing
// guest root a dangerous capability.

export type CcapMapping =
  /** granted by the runtime at start, as described */
  | 'runtime'
  /** vserver had it; today's Linux offers no safe way: refused */
  | 'none';

export interface CcapInfo {
  name: string;
  offered: boolean;
  mapping: CcapMapping;
  /** what vserver meant */
  meaning: string;
  /** how paene provides it, or why it cannot */
  how: string;
  /** needs the context to have its own network namespace */
  needsNetns?: boolean;
}

export const CCAPS: readonly CcapInfo[] = [
  {
    name: 'SET_UTSNAME',
    offered: true,
    mapping: 'runtime',
    meaning: 'guest root may set its own hostname and domainname',
    how:
      'sethostname(2) needs CAP_SYS_ADMIN, which guest root lacks, so hostname(1) still fails. With this ccap the runtime ' +
      'binds /proc/sys/kernel/hostname and /proc/sys/kernel/domainname read-write over the otherwise read-only /proc/sys: ' +
      "a write there changes the writer's own UTS namespace only (the context's), never the host's. Without it, the host " +
      'sets the name with `paene hostname NAME H`, which works for every context.',
  },
  {
    name: 'RAW_ICMP',
    offered: true,
    mapping: 'runtime',
    needsNetns: true,
    meaning: 'ping without NET_RAW',
    how:
      "unprivileged ICMP sockets (SOCK_DGRAM, IPPROTO_ICMP) for the guest's groups via net.ipv4.ping_group_range. That sysctl " +
      'is per network namespace: contexts that share the host network would have to change it host-wide, so paene sets it ' +
      'only for a context with its own network namespace. In the shared host network, ping works only if the host already ' +
      'allows it (systemd sets ping_group_range to all groups by default).',
  },
  {
    name: 'AUDIT_CONTROL',
    offered: false,
    mapping: 'none',
    meaning: 'configure audit rules',
    how: "the audit subsystem is not namespaced; any control over it is control over the host's audit",
  },
  {
    name: 'SYSLOG',
    offered: false,
    mapping: 'none',
    meaning: 'read the kernel log',
    how: 'the kernel log ring is host-wide and leaks kernel addresses; /dev/kmsg stays hidden',
  },
  {
    name: 'SECURE_MOUNT',
    offered: false,
    mapping: 'none',
    meaning: 'mount selected filesystems inside the guest',
    how: 'mount(2) needs CAP_SYS_ADMIN in the initial user namespace (too broad); mounts are set up host-side at start',
  },
  {
    name: 'SECURE_REMOUNT',
    offered: false,
    mapping: 'none',
    meaning: 'remount existing mounts with other flags',
    how: 'same as SECURE_MOUNT; also would allow remounting /proc/sys read-write',
  },
  {
    name: 'QUOTA_CTL',
    offered: false,
    mapping: 'none',
    meaning: 'manage disk quota inside the guest',
    how: "quotactl needs CAP_SYS_ADMIN and is blocked by paene's seccomp filter; disk limits are set host-side",
  },
];

const CCAP_BY_NAME: ReadonlyMap<string, CcapInfo> = new Map(CCAPS.map((c) => [c.name, c]));

/** Normalises a ccap name (case-insensitive, optional CCAP_/VXC_ prefix); unknown → error listing the known ones. */
export function parseCcap(s: string): string {
  const n = s
    .trim()
    .toUpperCase()
    .replace(/^(CCAP_|VXC_)/, '');
  if (!CCAP_BY_NAME.has(n)) {
    throw new PaeneError('invalid-argument', `unknown context capability '${s}': known ones are ${CCAPS.map((c) => c.name).join(', ')}`);
  }
  return n;
}

export function ccapInfo(name: string): CcapInfo {
  return CCAP_BY_NAME.get(parseCcap(name)) as CcapInfo;
}

/** A list of ccaps from the CLI or a config file: known, offered, deduplicated. */
export function validateCcaps(x: unknown): string[] {
  if (x === undefined || x === null) return [];
  if (!Array.isArray(x) || !x.every((e) => typeof e === 'string')) {
    throw new PaeneError('invalid-argument', `ccaps: must be a list of context capability names`);
  }
  const out: string[] = [];
  for (const raw of x as string[]) {
    const info = ccapInfo(raw);
    if (!info.offered) {
      const offered = CCAPS.filter((c) => c.offered)
        .map((c) => c.name)
        .join(', ');
      throw new PaeneError(
        'invalid-argument',
        `context capability ${info.name} has no safe mapping on Linux: ${info.how} (offered: ${offered})`,
      );
    }
    if (!out.includes(info.name)) out.push(info.name);
  }
  return out;
}

/** A process's five capability sets by name, its seccomp mode and no_new_privs, decoded from /proc/PID/status. */
export interface DecodedCaps {
  sets: Record<CapSetName, { hex: string; names: string[] }>;
  seccomp: string;
  noNewPrivs: string;
}

/** The five sets and the seccomp mode from the text of /proc/PID/status. */
export function decodeStatus(status: string): DecodedCaps {
  const caps = parseProcStatusCaps(status);
  const line = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '?';
  const mode = line('Seccomp');
  const seccomp =
    mode === '2' ? `2 (filter, ${line('Seccomp_filters')} filter(s))` : mode === '1' ? '1 (strict)' : mode === '0' ? '0 (none)' : mode;
  const sets = {} as Record<CapSetName, { hex: string; names: string[] }>;
  for (const k of CAP_SET_NAMES) sets[k] = { hex: formatCapHex(caps[k]), names: maskToNames(caps[k]) };
  return { sets, seccomp, noNewPrivs: line('NoNewPrivs') };
}

/**
 * A change of a context's capability spec (paene config): a new profile,
 * capabilities to add and drop, or a reset of the earlier ones. The latest
 * word wins: a new add cancels an older drop of the same name and the other
 * way round.
 */
export function changeCapSpec(cur: CapSpec, change: { profile?: string; add: string[]; drop: string[]; reset: boolean }): CapSpec {
  const profile = change.profile !== undefined ? parseCapProfile(change.profile) : cur.profile;
  const adds = change.add.map(parseCapName);
  const drops = change.drop.map(parseCapName);
  const base = change.reset ? { add: [], drop: [] } : cur;
  const add = [...new Set([...base.add.filter((x) => !drops.includes(x)), ...adds])].filter((x) => !drops.includes(x));
  const drop = [...new Set([...base.drop.filter((x) => !adds.includes(x)), ...drops])];
  return { profile, add, drop };
}

/** The profiles table and the ccaps table, as data (for --json and docs). */
export function profilesReport() {
  return {
    profiles: CAP_PROFILES.map((p) => {
      const spec: CapSpec = { profile: p, add: [], drop: [] };
      return { profile: p, mask: formatCapHex(capMask(spec)), keeps: [...PROFILE_CAPS[p]], removes: removedCaps(spec) };
    }),
    ccaps: CCAPS.map((c) => ({ name: c.name, offered: c.offered, meaning: c.meaning, how: c.how, needsNetns: c.needsNetns ?? false })),
  };
}
