// Bind mounts and named volumes (docs/volumes.md): what a context's config
// says (`--mount SRC:DST[:ro]`), and the one shape the start request carries
// to the helper. Pure: syntax and policy on paths; what the host holds at a
// path is checked by runtime/mounts.ts.

import path from 'node:path';
import { PaeneError } from './errors.js';
import { validateName } from './names.js';

/** A mount as the config keeps it: SOURCE is an absolute host path, or a volume's name (no slash). */
export interface MountSpec {
  source: string;
  target: string;
  readonly: boolean;
}

/**
 * One bind the helper makes at start, resolved on the host: SOURCE a host
 * path (a volume's data directory, a checked host path, or a file the runtime
 * generated), TARGET a path in the guest's root. `kind` says what the mount
 * point is made as when the guest has none: an empty file or a directory.
 */
export interface BindMount {
  source: string;
  target: string;
  readonly: boolean;
  kind: 'file' | 'dir';
}

/** Guest paths a mount may not cover: the context's own /proc, /sys, /dev, /tmp are mounted by the runtime. */
export const TARGET_REFUSED = ['/proc', '/sys', '/dev', '/tmp'] as const;

/** Host paths a bind source may not be or lie under (the state root, the runtime's files come from the caller). */
export const SOURCE_REFUSED = ['/proc', '/sys', '/dev'] as const;

/** At most this many mounts a context (the helper's list bound is 64, with room for the runtime's own). */
export const MOUNTS_MAX = 32;

const bad = (why: string) => new PaeneError('invalid-argument', why);

export function isVolumeSource(source: string): boolean {
  return !source.includes('/');
}

/** True when `p` is `dir` or lies under it (both normalized absolute paths). */
export function isWithin(p: string, dir: string): boolean {
  return dir === '/' || p === dir || p.startsWith(`${dir}/`);
}

/** An absolute, normalized path with no `..`; `what` names it in the error. */
function checkAbsolute(p: string, what: string): string {
  if (p.length === 0) throw bad(`${what} is empty`);
  if (p.length > 4000) throw bad(`${what} is longer than 4000 characters`);
  if (/[\0\n]/.test(p)) throw bad(`${what} '${JSON.stringify(p)}' holds a NUL or a newline`);
  if (!p.startsWith('/')) throw bad(`${what} '${p}' is not an absolute path`);
  if (p.split('/').includes('..')) throw bad(`${what} '${p}' has a '..' component`);
  const norm = path.posix.normalize(p).replace(/(.)\/$/, '$1');
  return norm;
}

/** The guest path a mount lands on: absolute, no `..`, not `/`, not the runtime's own mounts. */
export function validateTarget(t: string): string {
  const norm = checkAbsolute(t, 'mount destination');
  if (norm === '/') throw bad(`mount destination '${t}' is the guest's root itself`);
  for (const r of TARGET_REFUSED)
    if (isWithin(norm, r)) throw bad(`mount destination '${t}' is in the guest's ${r}, which the runtime mounts itself`);
  return norm;
}

/** The syntax of a host source path (what it is on the host is runtime/mounts.ts's check). */
export function validateSourcePath(s: string): string {
  return checkAbsolute(s, 'mount source');
}

/**
 * Why a host path (already resolved: no symlink in it) may not be bound into
 * a context, or undefined. `guarded` are the paene paths that must stay out
 * of every guest (the state root, the runtime's own files): refused when the
 * source is one, lies under one, or holds one.
 */
export function sourceRefusal(real: string, guarded: readonly { path: string; what: string }[]): string | undefined {
  if (real === '/') return "the host's root directory";
  for (const r of SOURCE_REFUSED) if (isWithin(real, r)) return `the host's ${r}`;
  for (const g of guarded) {
    if (isWithin(real, g.path)) return `inside ${g.what} (${g.path})`;
    if (isWithin(g.path, real)) return `it holds ${g.what} (${g.path})`;
  }
  return undefined;
}

/** `SRC:DST[:ro|rw]` (SRC an absolute host path or a volume name), as create's --mount / -v takes it. */
export function parseMountArg(arg: string): MountSpec {
  const parts = arg.split(':');
  if (parts.length < 2 || parts.length > 3)
    throw bad(`--mount '${arg}': give SOURCE:DESTINATION or SOURCE:DESTINATION:ro (paths with ':' are not supported)`);
  const [source, target, mode] = parts as [string, string, string | undefined];
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw bad(`--mount '${arg}': the mode is 'ro' or 'rw', not '${mode}'`);
  return validateMount({ source, target, readonly: mode === 'ro' }, '--mount');
}

/** One mount of a config: a volume name or an absolute host path, onto a valid destination. */
export function validateMount(x: unknown, where: string): MountSpec {
  const o = x as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null) throw bad(`${where}: a mount must be an object`);
  if (typeof o.source !== 'string' || typeof o.target !== 'string' || typeof o.readonly !== 'boolean')
    throw bad(`${where}: a mount has 'source' and 'target' (strings) and 'readonly' (a boolean)`);
  const source = o.source.length > 0 && isVolumeSource(o.source) ? validateVolumeName(o.source) : validateSourcePath(o.source);
  return { source, target: validateTarget(o.target), readonly: o.readonly };
}

/** A config's mount list: each valid, at most MOUNTS_MAX, no destination twice. */
export function validateMounts(x: unknown, where: string): MountSpec[] {
  if (!Array.isArray(x)) throw bad(`${where}: 'mounts' must be a list`);
  if (x.length > MOUNTS_MAX) throw bad(`${where}: at most ${MOUNTS_MAX} mounts a context (${x.length} given)`);
  const out = x.map((m) => validateMount(m, where));
  const seen = new Set<string>();
  for (const m of out) {
    if (seen.has(m.target)) throw bad(`${where}: two mounts on '${m.target}'`);
    seen.add(m.target);
  }
  return out;
}

/** A volume's name: the rule of context names (so it is a plain directory name under ROOT/volumes). */
export function validateVolumeName(name: string): string {
  try {
    return validateName(name);
  } catch {
    throw bad(`invalid volume name '${name}': 1-63 of [a-z0-9_-], starting with a letter or digit`);
  }
}

/** The contexts whose mounts name a volume (what refuses its removal). */
export function volumeUsers(volume: string, configs: readonly { name: string; mounts?: readonly MountSpec[] }[]): string[] {
  return configs.filter((c) => c.mounts?.some((m) => m.source === volume)).map((c) => c.name);
}
