// The per-root scratch tmpfs and the one empty directory: what lets a context
// live with no filesystem of its own beyond its overlay, its /proc and its
// devpts. Each superblock registers a shrinker, and every memory cgroup keeps
// state for every shrinker on the host, so a tmpfs per /dev, /dev/shm, /tmp
// and masked path made each context's cost grow with the number of contexts.
//
//   ROOT/scratch          a tmpfs (one per state root), nosuid,nodev,noexec
//   ROOT/scratch/NAME/    dev/, shm/, tmp/: bound into the context at start
//                         (with the flags the helper gives each bind),
//                         emptied at every start and removed at stop
//   ROOT/scratch/.empty   an empty directory bound read-only over masked paths
//                         (in the tmpfs, so a guest learns nothing of the host's disk)

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PaeneError } from '../model/errors.js';
import { SCRATCH_DIRS, SCRATCH_SIZE } from '../context/config.js';
import type { Layout } from './layout.js';

const TMPFS_MAGIC = 0x01021994;

function isTmpfsMount(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === TMPFS_MAGIC && fs.statSync(dir).dev !== fs.statSync(path.dirname(dir)).dev;
  } catch {
    return false;
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new PaeneError('internal', `${cmd} ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

/**
 * Runs fn while no other paene of this root mounts or unmounts the scratch
 * tmpfs (the runtime's file lock): two starts that both found it missing
 * would otherwise stack two tmpfs, and the first one's directories would
 * vanish under the second before its helper bound them.
 */
export type ScratchLock = <T>(fn: () => Promise<T>) => Promise<T>;

/** Mounts the root's scratch tmpfs if it is not mounted, and makes the empty directory (under the scratch lock). */
function ensureScratch(layout: Layout): void {
  const dir = layout.scratchDir;
  if (!isTmpfsMount(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
    run('mount', ['-t', 'tmpfs', '-o', `nosuid,nodev,noexec,mode=0711,size=${SCRATCH_SIZE}`, 'paene-scratch', dir]);
  }
  const empty = layout.emptyDir;
  if (!fs.existsSync(empty)) fs.mkdirSync(empty, { mode: 0o555 });
}

/** An open directory of the mounted scratch tmpfs (so an unmount fails busy), or undefined where none is mounted. */
function holdScratch(layout: Layout): number | undefined {
  const dir = layout.scratchDir;
  if (!isTmpfsMount(dir)) return undefined;
  let held: number;
  try {
    held = fs.openSync(dir, 'r');
  } catch (e) {
    // Unmounted and removed by the last destroy between the check and the open.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  // Unmounted between the check and the open: the hold is on the directory beneath.
  if (fs.fstatSync(held).dev !== fs.statSync(path.dirname(dir)).dev) return held;
  fs.closeSync(held);
  return undefined;
}

/**
 * A hold on the scratch tmpfs if it is mounted and made (its empty
 * directory is there); else undefined. The start that mounts it makes the
 * empty directory under the lock, after the mount is already visible: a
 * start that sees the mount before that takes the lock too, and so waits.
 */
function holdReady(layout: Layout): number | undefined {
  const held = holdScratch(layout);
  if (held !== undefined && !fs.existsSync(layout.emptyDir)) {
    fs.closeSync(held);
    return undefined;
  }
  return held;
}

/**
 * A context's fresh dev/, shm/ and tmp/ (what an earlier run left is gone),
 * and a hold on the scratch tmpfs until the helper has bound them: a
 * directory of the mount kept open makes the last destroy's unmount of it
 * fail (busy) instead of pulling it from under this start. The mount is
 * made under the lock; a start that finds it mounted only takes the hold
 * (nobody stacks another over a held mount: the mounter looks under the lock).
 */
export async function prepareScratch(layout: Layout, name: string, lock: ScratchLock): Promise<{ dir: string; release: () => void }> {
  const fd =
    holdReady(layout) ??
    (await lock(async () => {
      ensureScratch(layout);
      const held = holdScratch(layout);
      if (held === undefined) throw new PaeneError('internal', `the scratch tmpfs ${layout.scratchDir} is not mounted after mounting it`);
      return held;
    }));
  try {
    if (fs.readdirSync(layout.emptyDir).length > 0)
      throw new PaeneError('internal', `${layout.emptyDir} must stay empty: it is bound over every context's masked paths`);
    const mine = layout.scratchOf(name);
    fs.rmSync(mine, { recursive: true, force: true });
    fs.mkdirSync(mine, { mode: 0o755 });
    for (const d of SCRATCH_DIRS) {
      const p = path.join(mine, d.name);
      fs.mkdirSync(p);
      fs.chmodSync(p, d.mode); // mkdir obeys the umask, and sticky bits need chmod
    }
    return { dir: mine, release: () => fs.closeSync(fd) };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Removes a stopped context's scratch (its /tmp and /dev/shm are gone with it, as a tmpfs's would be). */
export function removeScratch(layout: Layout, name: string): void {
  if (isTmpfsMount(layout.scratchDir)) fs.rmSync(layout.scratchOf(name), { recursive: true, force: true });
}

/** Unmounts the scratch tmpfs once no context is left (contexts that still run keep their binds), under the scratch lock. */
export async function releaseScratch(layout: Layout, lock: ScratchLock): Promise<void> {
  const dir = layout.scratchDir;
  await lock(async () => {
    // Busy: a start holds it (prepareScratch) and is about to bind from it; it stays for that context.
    if (isTmpfsMount(dir) && spawnSync('umount', [dir], { encoding: 'utf8' }).status !== 0) return;
    try {
      fs.rmdirSync(dir); // not recursive: after the unmount the directory beneath is empty
    } catch {
      /* gone already */
    }
  });
}
