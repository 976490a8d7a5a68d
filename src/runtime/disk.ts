// What a context keeps on disk: its private bytes against the image it
// shares (`paene du`), and turning its merged root into a new image
// (`paene commit`), which shares every file the context did not change.

import { startIoThrottle, stopIoThrottle, throttlerOf } from './iothrottle.js';
import fs from 'node:fs';
import { PaeneError } from '../model/errors.js';
import type { DiskLimit } from '../context/config.js';
import { type DiskUsage, diskUsage, isMountPoint, mountDiskImage, unmountDiskImage } from '../kernel/diskimage.js';
import type { ImageInfo, ImageStore } from '../image/store.js';
import { treeUsage } from '../image/walk.js';
import type { Runtime } from './runtime.js';

export interface ContextDiskUse {
  name: string;
  image: string;
  /** bytes on disk of the context's private (upper) layer, each inode once */
  privateBytes: number;
  privateInodes: number;
  /** file data of the image it shares, as if it were a private copy */
  sharedBytes: number;
  limit?: DiskLimit;
  /** the context's own filesystem, when it has a disk limit */
  filesystem?: DiskUsage;
}

export async function contextDiskUse(rt: Runtime, store: ImageStore, name: string): Promise<ContextDiskUse> {
  const config = rt.config(name);
  const layer = rt.layout.layerDir(name);
  const measure = (): Pick<ContextDiskUse, 'privateBytes' | 'privateInodes' | 'filesystem'> => {
    const u = treeUsage(rt.layout.upperDir(name));
    return { privateBytes: u.diskBytes, privateInodes: u.inodes, filesystem: config.disk ? diskUsage(layer) : undefined };
  };
  let m: ReturnType<typeof measure>;
  if (config.disk && !isMountPoint(layer)) {
    // A stopped disk-limited context: look inside its filesystem read-only, under its lock.
    m = await rt.withContextLock(name, async () => {
      mountDiskImage(rt.layout.diskImage(name), layer, true);
      try {
        return measure();
      } finally {
        unmountDiskImage(layer);
      }
    });
  } else {
    m = measure();
  }
  const sharedBytes = store.has(config.image) ? store.get(config.image).logicalBytes : 0;
  return { name, image: config.image, ...m, sharedBytes, limit: config.disk };
}

/**
 * Makes the context's merged root a new image. A stopped context is started
 * for the copy (its merged root exists only in its mount namespace) and
 * stopped again; a running one is frozen during the copy so the image is a
 * consistent snapshot. /proc, /dev, /sys and /tmp are other filesystems and
 * are left out (their directories stay).
 */
export async function commitContext(rt: Runtime, store: ImageStore, name: string, image: string): Promise<ImageInfo> {
  if (store.has(image)) throw new PaeneError('exists', `an image named '${image}' already exists`);
  const wasRunning = rt.status(name).state === 'running';
  if (!wasRunning) await rt.start(name);
  const cg = rt.cgroupOf(name);
  try {
    const pid = rt.status(name).pid;
    if (pid === undefined || !fs.existsSync(`/proc/${pid}/root`))
      throw new PaeneError('wrong-state', `context '${name}' stopped during commit`);
    // The I/O throttler also freezes and thaws this context: it is stopped for the copy, so nothing thaws it midway.
    const throttled = throttlerOf(rt, name) !== undefined;
    if (throttled) await stopIoThrottle(rt, name);
    try {
      if (!(await cg.freeze())) {
        throw new PaeneError(
          'busy',
          `context '${name}' did not freeze within 1 s (a process in uninterruptible sleep?); nothing was committed, try again`,
        );
      }
      return await store.importDirectory(`/proc/${pid}/root`, image, { source: `commit:${name}` });
    } finally {
      cg.thaw();
      if (throttled) await startIoThrottle(rt, name);
    }
  } finally {
    if (!wasRunning) await rt.stop(name);
  }
}
