// Context locks: so two CLIs never work on the same context at once. The
// file lock itself (identity, stale-holder takeover) is kernel/filelock.ts.

import { acquireFileLock } from '../kernel/filelock.js';

export interface LockOptions {
  timeoutMs?: number;
  /** Words for the error: "another paene is working on <what>". */
  what: string;
}

export async function withLock<T>(file: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireFileLock(file, opts.timeoutMs ?? 30_000, (pid) => `another paene is working on ${opts.what} (pid ${pid}); try again when it is done`);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
