// Disk limits, `du` and `commit` on the real kernel: a guest that fills its
// disk limit gets ENOSPC inside and nothing else is affected; a committed
// context becomes an image that shares what it did not change.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { isMountPoint } from '../../src/kernel/diskimage.js';
import { commitContext, contextDiskUse } from '../../src/runtime/disk.js';
import { openImageStore } from '../../src/runtime/open.js';
import { DEFAULT_IMAGE, type ImageStore } from '../../src/image/store.js';
import { throttlerOf } from '../../src/runtime/iothrottle.js';
import { describeReal, runCli } from '../helpers.js';
import { useRuntime } from '../fixture.js';

const MiB = 1024 * 1024;

describeReal('disk limits, du and commit', () => {
  let store: ImageStore;
  const sh = (name: string, script: string) => fx.rt.execCapture(name, ['/bin/sh', '-c', script], { timeoutMs: 60_000 });

  const fx = useRuntime('disk', async () => {
    store = openImageStore(fx.root);
    await fx.rt.create({ name: 'small', image: 'base', disk: { bytes: 32 * MiB, inodes: 256 } });
    await fx.rt.create({ name: 'free', image: 'base' });
    await fx.rt.start('small');
    await fx.rt.start('free');
  });

  it('mounts a disk-limited layer only while the context runs, and the image is sparse', () => {
    expect(isMountPoint(fx.rt.layout.layerDir('small'))).toBe(true);
    expect(isMountPoint(fx.rt.layout.layerDir('free'))).toBe(false);
    const st = fs.statSync(fx.rt.layout.diskImage('small'));
    expect(st.size).toBe(32 * MiB);
    expect(st.blocks * 512).toBeLessThan(16 * MiB); // overbooking: only what is written is allocated
  });

  it('stops a guest that fills its space with ENOSPC inside, and nothing else', async () => {
    const r = await sh('small', 'dd if=/dev/zero of=/root/fill bs=1M count=64 2>&1; echo "dd exit $?"');
    expect(r.stdout).toMatch(/No space left on device/);
    expect(r.stdout).not.toMatch(/dd exit 0/);
    const written = Number((await sh('small', 'stat -c %s /root/fill')).stdout.trim());
    expect(written).toBeGreaterThan(16 * MiB);
    expect(written).toBeLessThan(32 * MiB);
    // the other context and the host keep writing
    const other = await sh('free', 'dd if=/dev/zero of=/root/x bs=1M count=8 2>/dev/null && echo ok && rm /root/x');
    expect(other.stdout.trim()).toBe('ok');
    // the host lost at most what the guest may use: its writes went into its disk image, which stays at its
    // limit's size (allocated blocks included; 1 MiB for the host file system's extent blocks), whatever else
    // writes to the host's disk meanwhile
    const image = fs.statSync(fx.rt.layout.diskImage('small'));
    expect(image.size).toBe(32 * MiB);
    expect(image.blocks * 512).toBeGreaterThan(16 * MiB);
    expect(image.blocks * 512).toBeLessThanOrEqual(33 * MiB);
    const du = await contextDiskUse(fx.rt, store, 'small');
    expect(du.limit).toEqual({ bytes: 32 * MiB, inodes: 256 });
    expect(du.privateBytes).toBeGreaterThan(16 * MiB);
    expect(du.filesystem?.bytesUsed).toBeGreaterThan(16 * MiB);
    await sh('small', 'rm -f /root/fill');
  });

  it('stops a guest that runs out of inodes', async () => {
    const r = await sh('small', 'i=0; while [ $i -lt 400 ]; do touch /root/f$i 2>/dev/null || break; i=$((i+1)); done; echo $i');
    const made = Number(r.stdout.trim());
    expect(made).toBeGreaterThan(100);
    expect(made).toBeLessThan(256);
    const err = await sh('small', 'touch /root/one-more');
    expect(err.stderr).toMatch(/No space left on device/);
    const du = await contextDiskUse(fx.rt, store, 'small');
    expect(du.filesystem?.inodesUsed).toBe(du.filesystem?.inodesTotal);
    await sh('small', 'rm -f /root/f*');
  });

  it('unmounts the layer at stop and keeps its files for the next start; du reads it while stopped', async () => {
    await sh('small', 'echo kept > /root/kept');
    await fx.rt.stop('small');
    expect(isMountPoint(fx.rt.layout.layerDir('small'))).toBe(false);
    const du = await contextDiskUse(fx.rt, store, 'small');
    expect(du.privateInodes).toBeGreaterThan(0);
    expect(isMountPoint(fx.rt.layout.layerDir('small'))).toBe(false);
    await fx.rt.start('small');
    expect((await sh('small', 'cat /root/kept')).stdout).toBe('kept\n');
  });

  it('a layer still busy at stop (something holds a file in it) is waited for, and du and start mount it again', async () => {
    // The kernel lets go of a dead namespace's overlay a moment after its last process, longer when loaded: a
    // stop that detached the layer lazily left its loop device in use, and the next mount of the image (du's,
    // read-only) was refused, 'already mounted or mount point busy' (a CI run under load). Here a process of
    // the host holds a file of the layer open for 7 s: longer than a stop waits (5 s), so the stop detaches
    // lazily, and the mount that follows waits for the holder to go.
    const held = path.join(fx.rt.layout.layerDir('small'), 'upper', 'root', 'kept');
    expect(fs.existsSync(held)).toBe(true);
    const holder = spawn('sh', ['-c', `exec 3< '${held}'; sleep 7`], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300)); // the holder has its file open
      await fx.rt.stop('small');
      expect(isMountPoint(fx.rt.layout.layerDir('small'))).toBe(false);
      const du = await contextDiskUse(fx.rt, store, 'small');
      expect(du.privateInodes).toBeGreaterThan(0);
      await fx.rt.start('small');
      expect((await sh('small', 'cat /root/kept')).stdout).toBe('kept\n');
    } finally {
      if (holder.exitCode === null && holder.signalCode === null) holder.kill('SIGKILL');
    }
  }, 60_000);

  it('commits a context as an image that shares every unchanged file', async () => {
    await sh('free', 'echo committed > /etc/committed && mkdir -p /srv && echo page > /srv/index.html');
    const before = store.du();
    const info = await commitContext(fx.rt, store, 'free', 'derived');
    expect(info.name).toBe('derived');
    const after = store.du();
    // only the changed files are new in the store
    expect(after.uniqueBytes - before.uniqueBytes).toBeLessThan(64 * 1024);
    expect(info.files).toBeGreaterThan(10);
    await fx.rt.create({ name: 'child', image: 'derived' });
    await fx.rt.start('child');
    expect((await sh('child', 'cat /etc/committed /srv/index.html')).stdout).toBe('committed\npage\n');
    // the running context's /proc was not copied into the image
    expect(fs.readdirSync(path.join(store.get('derived').rootfs, 'proc'))).toEqual([]);
    expect(fx.rt.status('free').state).toBe('running');
  });

  it('commits a context held by its I/O throttler: the throttler is stopped for the copy and back afterwards', async () => {
    await fx.rt.create({ name: 'slow', image: DEFAULT_IMAGE, limits: { nproc: 64, cpuShare: 1024, io: { writeBps: 10 * MiB } } });
    await fx.rt.start('slow');
    const before = throttlerOf(fx.rt, 'slow');
    if (before === undefined) return; // a host where the kernel limits buffered writes itself (v2 io.max): no throttler to coordinate
    await sh('slow', 'echo kept > /etc/slow');
    const info = await commitContext(fx.rt, store, 'slow', 'slow-image');
    expect(info.name).toBe('slow-image');
    expect(fs.readFileSync(path.join(store.get('slow-image').rootfs, 'etc/slow'), 'utf8')).toBe('kept\n');
    const after = throttlerOf(fx.rt, 'slow');
    expect(after).toBeDefined();
    expect(after?.pid).not.toBe(before.pid); // restarted, not left behind or gone
    expect((await sh('slow', 'echo still-running')).stdout).toBe('still-running\n'); // thawed
    await fx.rt.destroy('slow');
  });

  it('refuses to remove an image a context uses, through the CLI', () => {
    const r = runCli(fx.root, ['image', 'rm', 'derived']);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/used by context child/);
  });

  it('destroy removes the disk image and leaves no mount', async () => {
    const layer = fx.rt.layout.layerDir('small');
    await fx.rt.destroy('small');
    expect(isMountPoint(layer)).toBe(false);
    expect(fs.existsSync(fx.rt.layout.contextDir('small'))).toBe(false);
  });
});
