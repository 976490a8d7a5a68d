// Named volumes (docs/volumes.md): a directory under the state root that
// outlives contexts, bound into each context whose config names it.
//
//   ROOT/volumes/NAME/data          what the contexts see
//   ROOT/volumes/NAME/volume.json   its name and creation time (written atomically)
//
// Made and removed under the lock of the context list, which create holds
// too: a create naming a volume and its removal never both succeed, and two
// CLIs never both create (or both remove) one.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../model/errors.js';
import { type MountSpec, validateVolumeName, volumeUsers } from '../model/mounts.js';
import { writeFileAtomic } from '../kernel/atomic.js';
import type { Layout } from '../kernel/layout.js';

/** What the volume functions need of a runtime (Runtime has all of it). */
export interface VolumeHost {
  readonly layout: Layout;
  readonly store: { readAllConfigs(): readonly { name: string; mounts?: readonly MountSpec[] }[] };
  withListLock<T>(fn: () => Promise<T>): Promise<T>;
}

export interface VolumeInfo {
  name: string;
  created: string;
  /** its data directory on the host */
  path: string;
  /** the contexts whose config mounts it */
  usedBy: string[];
  /** why its volume.json could not be read (the volume is still listed, inspected and removable) */
  problem?: string;
}

export function volumesDir(layout: Layout): string {
  return path.join(layout.root, 'volumes');
}

export function volumeDataDir(layout: Layout, name: string): string {
  return path.join(volumesDir(layout), name, 'data');
}

/** True when no volume of that name exists (its data directory is what counts). */
export function volumeMissing(layout: Layout, name: string): boolean {
  try {
    return !fs.lstatSync(volumeDataDir(layout, name)).isDirectory();
  } catch {
    return true;
  }
}

function metaFile(layout: Layout, name: string): string {
  return path.join(volumesDir(layout), name, 'volume.json');
}

function readInfo(host: VolumeHost, name: string, configs = host.store.readAllConfigs()): VolumeInfo | undefined {
  let created = '';
  let problem: string | undefined;
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile(host.layout, name), 'utf8')) as { created?: unknown } | null;
    if (typeof meta?.created === 'string') created = meta.created;
    else problem = 'its volume.json has no creation time';
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') {
      // no volume.json: a volume only if its data directory is there (a crash, or a hand-made one)
      if (volumeMissing(host.layout, name)) return undefined;
      problem = 'its volume.json is missing';
    } else if (e instanceof SyntaxError) problem = `its volume.json is not JSON (${e.message})`;
    else throw e; // EACCES and the like: the CLI's own sentence (run as root)
  }
  // One damaged volume.json does not hide the others, nor stop its volume's removal: it is said, not thrown.
  return {
    name,
    created,
    path: volumeDataDir(host.layout, name),
    usedBy: volumeUsers(name, configs),
    ...(problem ? { problem } : {}),
  };
}

export async function createVolume(host: VolumeHost, name: string, now = new Date()): Promise<VolumeInfo> {
  validateVolumeName(name);
  return host.withListLock(async () => {
    const dir = volumesDir(host.layout);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const final = path.join(dir, name);
    if (fs.existsSync(final)) throw new PaeneError('exists', `a volume named '${name}' already exists`);
    // published whole: a crash leaves either nothing or a complete volume
    const tmp = path.join(dir, `.${name}.creating.${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    try {
      fs.mkdirSync(path.join(tmp, 'data'), { recursive: true, mode: 0o755 });
      writeFileAtomic(path.join(tmp, 'volume.json'), `${JSON.stringify({ name, created: now.toISOString() })}\n`);
      fs.renameSync(tmp, final);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (errnoOf(e) === 'EEXIST' || errnoOf(e) === 'ENOTEMPTY') throw new PaeneError('exists', `a volume named '${name}' already exists`);
      throw e;
    }
    return { name, created: now.toISOString(), path: volumeDataDir(host.layout, name), usedBy: [] };
  });
}

export function listVolumes(host: VolumeHost): VolumeInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync(volumesDir(host.layout)).filter((n) => !n.startsWith('.'));
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
  const configs = host.store.readAllConfigs();
  return names.sort().flatMap((n) => readInfo(host, n, configs) ?? []);
}

export function inspectVolume(host: VolumeHost, name: string): VolumeInfo {
  validateVolumeName(name);
  const v = readInfo(host, name);
  if (!v) throw new PaeneError('not-found', `no volume named '${name}'`);
  return v;
}

/** Removes a volume and its data; refused while any context's config mounts it (naming them). */
export async function removeVolume(host: VolumeHost, name: string): Promise<void> {
  validateVolumeName(name);
  await host.withListLock(async () => {
    const v = readInfo(host, name);
    if (!v) throw new PaeneError('not-found', `no volume named '${name}'`);
    if (v.usedBy.length > 0)
      throw new PaeneError(
        'busy',
        `volume '${name}' is mounted by context${v.usedBy.length > 1 ? 's' : ''} ${v.usedBy.join(', ')}: destroy ${v.usedBy.length > 1 ? 'them' : 'it'} (or drop the mount) first`,
      );
    // out of sight first (a crash mid-removal leaves a dot-directory, not half a volume)
    const aside = path.join(volumesDir(host.layout), `.${name}.removing.${process.pid}`);
    fs.renameSync(path.join(volumesDir(host.layout), name), aside);
    fs.rmSync(aside, { recursive: true, force: true });
  });
}
