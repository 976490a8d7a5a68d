// Inter-process locks on plain files, the one implementation behind the
// context locks (runtime/lock.ts) and the image store's writer lock
// (image/lock.ts). Node has no flock(2), so: create the file with O_EXCL and
// write our pid and start time into it. A holder that has died (crash, kill
// -9) is recognised by that identity and its lock is taken over; an empty
// file (a holder that died between create and write) is stale once it is
// older than EMPTY_STALE_MS.

import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import { PaeneError, errnoOf } from '../model/errors.js';
import { isAlive, readStat } from './procfs.js';

/** How long an empty lock file counts as a holder still writing its identity. */
export const EMPTY_STALE_MS = 5000;

let identity: { pid: number; text: string } | undefined;
/** This process's pid and start time (read once: /proc/PID/stat of a threaded Node process is not cheap). */
export function lockIdentity(): string {
  if (identity?.pid !== process.pid) identity = { pid: process.pid, text: `${process.pid} ${readStat(process.pid)?.starttime ?? 0}\n` };
  return identity.text;
}

function holderAlive(content: string): boolean {
  const [pid, start] = content.trim().split(/\s+/).map(Number);
  if (!pid) return false;
  // A file written by an older paene holds only the pid: alive if that pid is.
  return start === undefined || Number.isNaN(start) ? isAlive(pid) : isAlive(pid, start);
}

/** One attempt; a stale lock is moved away (and the caller tries again). */
export function tryAcquire(file: string, me: string): boolean {
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      fs.writeSync(fd, me);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (e) {
    if (errnoOf(e) !== 'EEXIST') throw e;
  }
  let content: string;
  let age: number;
  try {
    content = fs.readFileSync(file, 'utf8');
    age = Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return false; // released meanwhile: retry
  }
  if (content === '' ? age < EMPTY_STALE_MS : holderAlive(content)) return false;
  // Stale. Move it aside atomically, and only discard it if it is still the stale one.
  const aside = `${file}.stale.${process.pid}`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return false;
  }
  if (fs.readFileSync(aside, 'utf8') !== content) {
    try {
      fs.linkSync(aside, file); // someone's fresh lock: put it back
    } catch {
      /* a third party holds it now */
    }
  }
  fs.rmSync(aside, { force: true });
  return false;
}

export interface FileLock {
  release(): void;
}

function released(file: string, me: string): FileLock {
  let done = false;
  return {
    release() {
      if (done) return;
      done = true;
      try {
        if (fs.readFileSync(file, 'utf8') === me) fs.rmSync(file);
      } catch {
        /* already gone */
      }
    },
  };
}

/** The holder's pid as written in the file, for messages. */
export function holderOf(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split(/\s+/)[0] || '?';
  } catch {
    return '?';
  }
}

/** Waits for the lock up to `timeoutMs`; then throws 'busy' with `busy(holderPid)` as the message. */
export async function acquireFileLock(file: string, timeoutMs: number, busy: (holder: string) => string): Promise<FileLock> {
  const me = lockIdentity();
  const deadline = Date.now() + timeoutMs;
  let wait = 5;
  while (!tryAcquire(file, me)) {
    if (Date.now() > deadline) throw new PaeneError('busy', busy(holderOf(file)));
    await sleep(wait);
    wait = Math.min(wait * 2, 100);
  }
  return released(file, me);
}

/** The same, blocking (for short synchronous operations). */
export function acquireFileLockSync(file: string, timeoutMs: number, busy: (holder: string) => string): FileLock {
  const me = lockIdentity();
  const deadline = Date.now() + timeoutMs;
  const shared = new Int32Array(new SharedArrayBuffer(4));
  while (!tryAcquire(file, me)) {
    if (Date.now() > deadline) throw new PaeneError('busy', busy(holderOf(file)));
    Atomics.wait(shared, 0, 0, 50);
  }
  return released(file, me);
}
