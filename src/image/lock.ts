// One writer at a time in an image store: a lock file created with O_EXCL
// that holds the writer's pid. A lock whose pid is gone (crash, reboot) is
// stale and taken over. Readers never lock: trees are published by rename.

import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { PaeneError, errnoOf } from '../core/errors.js';

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) === 'EPERM';
  }
}

function tryLock(file: string): boolean {
  try {
    const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
    try {
      fs.writeSync(fd, `${process.pid}\n`);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (e) {
    if (errnoOf(e) !== 'EEXIST') throw e;
  }
  let holder = NaN;
  try {
    holder = parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return false; // released meanwhile; retry
    throw e;
  }
  // An empty file is a writer between create and write: treat as live.
  if (Number.isNaN(holder)) {
    const age = Date.now() - fs.statSync(file, { throwIfNoEntry: false })!.mtimeMs;
    if (age < 5000) return false;
  } else if (holder === process.pid || pidAlive(holder)) {
    return false;
  }
  // Stale: remove only if it is still the file we judged (rename is atomic).
  const grave = `${file}.stale.${process.pid}`;
  try {
    fs.renameSync(file, grave);
    fs.rmSync(grave, { force: true });
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
  return false;
}

export interface StoreLock {
  release(): void;
}

/** Take the store's writer lock, waiting up to timeoutMs for another writer. */
export async function acquireStoreLock(file: string, timeoutMs = 300_000): Promise<StoreLock> {
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    if (tryLock(file)) break;
    if (Date.now() > deadline) {
      let holder = '?';
      try {
        holder = fs.readFileSync(file, 'utf8').trim();
      } catch {
        /* gone */
      }
      throw new PaeneError('busy', `the image store is locked by another paene (pid ${holder}, lock ${file})`);
    }
    await sleep(delay);
    delay = Math.min(500, delay * 2);
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        const pid = parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
        if (pid === process.pid) fs.rmSync(file, { force: true });
      } catch {
        /* already gone */
      }
    },
  };
}

/** Synchronous variant for short operations (remove): fails fast with 'busy'. */
export function acquireStoreLockSync(file: string, timeoutMs = 10_000): StoreLock {
  const deadline = Date.now() + timeoutMs;
  const shared = new Int32Array(new SharedArrayBuffer(4));
  while (!tryLock(file)) {
    if (Date.now() > deadline) throw new PaeneError('busy', `the image store is locked by another paene (lock ${file})`);
    Atomics.wait(shared, 0, 0, 50);
  }
  return {
    release() {
      try {
        const pid = parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
        if (pid === process.pid) fs.rmSync(file, { force: true });
      } catch {
        /* already gone */
      }
    },
  };
}
