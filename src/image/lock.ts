// One writer at a time in an image store. Readers never lock: trees are
// published by rename. The file lock itself is kernel/filelock.ts.

import { type FileLock, acquireFileLock, acquireFileLockSync } from '../kernel/filelock.js';

export type StoreLock = FileLock;

/** Take the store's writer lock, waiting up to timeoutMs for another writer. */
export function acquireStoreLock(file: string, timeoutMs = 300_000): Promise<StoreLock> {
  return acquireFileLock(file, timeoutMs, (pid) => `the image store is locked by another paene (pid ${pid}, lock ${file})`);
}

/** Synchronous variant for short operations (remove): fails fast with 'busy'. */
export function acquireStoreLockSync(file: string, timeoutMs = 10_000): StoreLock {
  return acquireFileLockSync(file, timeoutMs, (pid) => `the image store is locked by another paene (pid ${pid}, lock ${file})`);
}
