// STUB — to be replaced by the full limits module (issue #4). API is fixed.

export interface ResourceLimits {
  nproc?: number;
  memory?: number;
  cpu?: { mode: 'hard' | 'share'; fillRate: number; interval: number; tokensMax: number; tokensMin: number };
}
export const DEFAULT_LIMITS: ResourceLimits = { nproc: 1024 };

export type CgroupVersion = 'v1' | 'v2';
export interface BlockDevice { major: number; minor: number }
/** One value to write into a context's cgroup. For v1, `controller` names the hierarchy. */
export interface CgroupWrite { controller: string; file: string; value: string }

export function validateLimits(x: unknown): ResourceLimits {
  return (x as ResourceLimits) ?? DEFAULT_LIMITS;
}
export function cgroupWrites(limits: ResourceLimits, version: CgroupVersion, _devices: BlockDevice[]): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  if (limits.nproc !== undefined) w.push({ controller: 'pids', file: 'pids.max', value: String(limits.nproc) });
  if (limits.memory !== undefined) w.push(version === 'v1' ? { controller: 'memory', file: 'memory.limit_in_bytes', value: String(limits.memory) } : { controller: 'memory', file: 'memory.max', value: String(limits.memory) });
  return w;
}
/** sysctls to set inside the context's own IPC namespace, e.g. { 'kernel.shmmax': '...' }. */
export function ipcSysctls(_limits: ResourceLimits): Record<string, string> {
  return {};
}
