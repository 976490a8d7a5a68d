// Per-context disk limits: the context's private layer lives on its own
// sparse ext4 image, loop-mounted while the context runs. The filesystem's
// size is the space limit and its inode count the inode limit (vserver's
// vdlimit); the image file is sparse, so the host disk can be overbooked and
// only what a guest writes is allocated. A full guest gets ENOSPC inside;
// the host's filesystem and other contexts are untouched.
//
// Used where the host filesystem has no project quotas (this ext4 root is
// mounted without prjquota); mkfs takes ~10 ms, the mount ~12 ms.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PaeneError } from '../model/errors.js';
import type { DiskLimit } from '../context/config.js';

/** The limit is the config's (context/config.ts owns its shape and validation). */
export type { DiskLimit } from '../context/config.js';

/** ext4 needs room for its own metadata; below this a filesystem is not useful. */
export const MIN_DISK_BYTES = 8 * 1024 * 1024;

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new PaeneError('unsupported', `cannot run ${cmd}: ${r.error.message} (install e2fsprogs / util-linux)`);
  if (r.status !== 0) throw new PaeneError('internal', `${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Runs `attempt` until it returns true or `ms` have passed, 50 ms apart (short, synchronous waits). */
function retryFor(ms: number, attempt: () => boolean): boolean {
  const deadline = Date.now() + ms;
  for (;;) {
    if (attempt()) return true;
    if (Date.now() > deadline) return false;
    Atomics.wait(pause, 0, 0, 50);
  }
}

/**
 * How long a stopped context's layer may stay busy: the mounts of its dead
 * mount namespace (the overlay over this layer) are let go by the kernel a
 * moment after its last process is reaped, longer on a loaded host.
 */
const RELEASE_WAIT_MS = 5000;

/** Creates the sparse image and its filesystem (small journal: integrity for the guest's data at 4 MiB). */
export function createDiskImage(file: string, limit: DiskLimit): void {
  if (limit.bytes < MIN_DISK_BYTES) {
    throw new PaeneError('invalid-argument', `--disk must be at least ${MIN_DISK_BYTES / 1024 / 1024} MiB`);
  }
  fs.writeFileSync(file, '');
  fs.truncateSync(file, limit.bytes);
  const args = ['-q', '-F', '-m', '0', '-J', 'size=4', '-E', 'nodiscard,lazy_itable_init=1'];
  if (limit.inodes !== undefined) args.push('-N', String(limit.inodes));
  try {
    run('mkfs.ext4', [...args, file]);
  } catch (e) {
    fs.rmSync(file, { force: true });
    throw e;
  }
}

export function isMountPoint(dir: string): boolean {
  // A layer image is a loop device of its own, so a mounted one has another st_dev than its parent: two
  // stats instead of reading the host's whole mount table in every start and stop.
  try {
    return fs.statSync(dir).dev !== fs.statSync(path.dirname(dir)).dev;
  } catch {
    return false;
  }
}

/** Loop-mounts the image (mount(8) sets the loop device to auto-clear on unmount). */
export function mountDiskImage(file: string, dir: string, readonly = false): void {
  if (isMountPoint(dir)) return;
  fs.mkdirSync(dir, { recursive: true });
  const args = ['-o', `loop,nosuid,nodev${readonly ? ',ro' : ''}`, file, dir];
  // A lazily unmounted earlier mount of this image still holds its loop device until its last user lets go:
  // mount(8) reuses that device and is refused (EBUSY) while it lives, so the mount waits for it, bounded.
  let last = '';
  const busy = () => /already mounted or mount point busy/.test(last);
  const mounted = retryFor(RELEASE_WAIT_MS, () => {
    const r = spawnSync('mount', args, { encoding: 'utf8' });
    if (r.error) throw new PaeneError('unsupported', `cannot run mount: ${r.error.message} (install util-linux)`);
    last = (r.stderr || r.stdout).trim();
    if (r.status === 0) return true;
    if (!busy()) throw new PaeneError('internal', `mount ${args.join(' ')} failed: ${last}`);
    return false;
  });
  if (!mounted) throw new PaeneError('busy', `mount ${args.join(' ')} failed for ${RELEASE_WAIT_MS / 1000} s: ${last}`);
}

/**
 * Unmounts if mounted. A layer still busy (the kernel letting go of the dead
 * namespace's overlay) is tried again for a few seconds, and only then
 * detached lazily, so a stop never hangs; a lazy detach leaves the image in
 * use until its last user goes, which the next mount waits for.
 */
export function unmountDiskImage(dir: string): void {
  if (!isMountPoint(dir)) return;
  const done = retryFor(RELEASE_WAIT_MS, () => spawnSync('umount', [dir], { encoding: 'utf8' }).status === 0 || !isMountPoint(dir));
  if (!done) run('umount', ['-l', dir]);
}

export interface DiskUsage {
  bytesUsed: number;
  bytesTotal: number;
  inodesUsed: number;
  inodesTotal: number;
}

export function diskUsage(dir: string): DiskUsage {
  const s = fs.statfsSync(dir);
  return {
    bytesUsed: (s.blocks - s.bfree) * s.bsize,
    bytesTotal: s.blocks * s.bsize,
    inodesUsed: s.files - s.ffree,
    inodesTotal: s.files,
  };
}
