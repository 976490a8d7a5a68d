// A context's bind mounts on the host side (docs/volumes.md): every source
// checked against what the host holds at its path, at create and again at
// start, and the one list the start request carries (startBinds). The
// helper (src/native/binds.c) resolves each target inside the guest's root.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../model/errors.js';
import { type BindMount, type MountSpec, isVolumeSource, sourceRefusal, validateSourcePath, validateTarget } from '../model/mounts.js';
import type { Layout } from '../kernel/layout.js';
import { packageRoot } from '../kernel/package.js';
import { REGISTRY_BASE } from '../net/registry.js';
import { volumeDataDir, volumeMissing } from './volumes.js';

const bad = (why: string) => new PaeneError('invalid-argument', why);

function realOrSelf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** The paene paths no guest may see (the state root holds every context's layer; the package, the helper run as root). */
export function guardedPaths(layout: Layout): { path: string; what: string }[] {
  return [
    { path: realOrSelf(layout.root), what: 'the paene state root' },
    { path: realOrSelf(packageRoot()), what: "paene's own files" },
    { path: path.dirname(REGISTRY_BASE), what: "paene's host-wide registry" },
  ];
}

/**
 * A host path a user asked to bind, checked: it exists, no component of it
 * is a symlink (the path named is the path bound: a symlink swapped later
 * cannot redirect it), and it is none of the host's or paene's own.
 */
export function checkHostSource(layout: Layout, source: string): { real: string; kind: 'file' | 'dir' } {
  const p = validateSourcePath(source);
  let cur = '';
  for (const c of p.split('/').filter(Boolean)) {
    cur += `/${c}`;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(cur);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR')
        throw new PaeneError('not-found', `mount source '${source}' does not exist${cur === p ? '' : ` (no ${cur})`}`);
      throw bad(`mount source '${source}': ${(e as Error).message}`);
    }
    if (st.isSymbolicLink()) {
      throw bad(
        `mount source '${source}' passes through a symlink at ${cur} (to ${realOrSelf(cur)}): symlinks are refused, give the real path`,
      );
    }
  }
  const real = fs.realpathSync(p);
  if (real !== p) throw bad(`mount source '${source}' resolves to ${real}: give the real path`);
  const why = sourceRefusal(real, guardedPaths(layout));
  if (why) throw bad(`mount source '${source}' is refused: ${why}`);
  const st = fs.statSync(real);
  if (!st.isDirectory() && !st.isFile())
    throw bad(`mount source '${source}' is neither a directory nor a regular file (a device, FIFO or socket is refused)`);
  return { real, kind: st.isDirectory() ? 'dir' : 'file' };
}

export function missingVolume(name: string, target: string): PaeneError {
  return new PaeneError('not-found', `volume '${name}' (to be mounted on ${target}) does not exist: 'paene volume create ${name}'`);
}

/** A volume's data directory, which must exist (a volume is made by `paene volume create`). */
function volumeSource(layout: Layout, name: string, target: string): string {
  if (volumeMissing(layout, name)) throw missingVolume(name, target);
  return volumeDataDir(layout, name);
}

/** One mount of a config as the helper gets it. */
export function resolveMount(layout: Layout, m: MountSpec): BindMount {
  if (isVolumeSource(m.source))
    return { source: volumeSource(layout, m.source, m.target), target: m.target, readonly: m.readonly, kind: 'dir' };
  const { real, kind } = checkHostSource(layout, m.source);
  return { source: real, target: m.target, readonly: m.readonly, kind };
}

/** Checks a config's mounts as create does (the same checks start repeats): throws the first refusal. */
export function checkMounts(layout: Layout, mounts: readonly MountSpec[] | undefined): void {
  for (const m of mounts ?? []) resolveMount(layout, m);
}

/**
 * THE list of binds a start makes: the context's own mounts (each source
 * checked again: the host may have changed since create), then `extra`, the
 * runtime's own binds (a generated file such as a resolv.conf under the
 * context's directory: trusted sources, so only their existence and kind
 * are checked, and their targets' syntax). Later binds stack on earlier ones.
 */
export function startBinds(layout: Layout, config: { mounts?: readonly MountSpec[] }, extra: readonly BindMount[] = []): BindMount[] {
  const own = (config.mounts ?? []).map((m) => resolveMount(layout, m));
  const runtime = extra.map((b): BindMount => {
    const target = validateTarget(b.target);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(b.source);
    } catch (e) {
      throw new PaeneError('internal', `the runtime's bind source ${b.source} is missing: ${(e as Error).message}`);
    }
    if (b.kind === 'file' ? !st.isFile() : !st.isDirectory())
      throw new PaeneError(
        'internal',
        `the runtime's bind source ${b.source} is not a ${b.kind === 'file' ? 'regular file' : 'directory'}`,
      );
    return { ...b, source: path.resolve(b.source), target };
  });
  return [...own, ...runtime];
}
