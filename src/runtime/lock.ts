// Inter-process locks on plain files, so two CLIs never work on the same
// context at once. Node has no flock(2), so: create the file with O_EXCL and
// write our pid and start time into it; a holder that has died (crash, kill
// -9) is detected by that identity and its lock is taken over.

import fs from 'node:fs';
import { PaeneError, errnoOf } from '../core/errors.js';
import { isAlive, readStat } from '../kernel/procfs.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function identity(): string {
  return `${process.pid} ${readStat(process.pid)?.starttime ?? 0}\n`;
}

function holderAlive(content: string): boolean {
  const [pid, start] = content.trim().split(/\s+/).map(Number);
  if (!pid) return false; // half-written: the writer died between create and write
  return isAlive(pid, start);
}

function tryAcquire(file: string, me: string): boolean {
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    fs.writeSync(fd, me);
    fs.closeSync(fd);
    return true;
  } catch (e) {
    if (errnoOf(e) !== 'EEXIST') throw e;
  }
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch {
    return false; // released meanwhile: retry
  }
  if (content === '' || holderAlive(content)) return false;
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

export interface LockOptions {
  timeoutMs?: number;
  /** Words for the error: "another paene is working on <what>". */
  what: string;
}

export async function withLock<T>(file: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const me = identity();
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let wait = 5;
  while (!tryAcquire(file, me)) {
    if (Date.now() > deadline) {
      let holder = '';
      try {
        holder = ` (pid ${fs.readFileSync(file, 'utf8').trim().split(/\s+/)[0]})`;
      } catch {
        /* gone */
      }
      throw new PaeneError('busy', `another paene is working on ${opts.what}${holder}; try again when it is done`);
    }
    await sleep(wait);
    wait = Math.min(wait * 2, 100);
  }
  try {
    return await fn();
  } finally {
    try {
      if (fs.readFileSync(file, 'utf8') === me) fs.rmSync(file);
    } catch {
      /* already gone */
    }
  }
}
