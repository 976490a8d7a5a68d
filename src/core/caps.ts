// STUB — to be replaced by the full capability module (issue #3). API is fixed.
import { PaeneError } from './errors.js';

export type CapProfile = 'secure' | 'strict' | 'privileged';
/** Names are normalised: upper case, no CAP_ prefix (e.g. "NET_RAW"). */
export interface CapSpec {
  profile: CapProfile;
  add: string[];
  drop: string[];
}
export const DEFAULT_CAP_SPEC: CapSpec = { profile: 'secure', add: [], drop: [] };

const SECURE = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_TTY_CONFIG', 'LEASE', 'SETFCAP', 'AUDIT_WRITE'];
const ALL = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'];

export function parseCapName(s: string): string {
  const n = s.toUpperCase().replace(/^CAP_/, '');
  if (!ALL.includes(n)) throw new PaeneError('invalid-argument', `unknown capability '${s}'`);
  return n;
}
export function capSet(spec: CapSpec): Set<string> {
  const base = spec.profile === 'privileged' ? ALL : SECURE;
  const s = new Set(base);
  for (const a of spec.add) s.add(a);
  for (const d of spec.drop) s.delete(d);
  return s;
}
export function capMask(spec: CapSpec): bigint {
  let m = 0n;
  for (const c of capSet(spec)) m |= 1n << BigInt(ALL.indexOf(c));
  return m;
}
export function validateCapSpec(x: unknown): CapSpec {
  return (x as CapSpec) ?? DEFAULT_CAP_SPEC;
}
