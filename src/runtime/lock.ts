// Context locks: so two CLIs never work on the same context at once. The
// file lock itself (identity, stale-holder takeover) is kernel/filelock.ts.
// Within one process (a many-context call, the API service) waiters on the
// same file queue here instead of polling the file against each other.

import { PaeneError } from '../model/errors.js';
import { acquireFileLock } from '../kernel/filelock.js';

export interface LockOptions {
  timeoutMs?: number;
  /** Words for the error: "another paene is working on <what>". */
  what: string;
}

/** The tail of each file's in-process queue: the next waiter starts when it settles. */
const queues = new Map<string, Promise<void>>();

export async function withLock<T>(file: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const busy = (pid: string) => `another paene is working on ${opts.what} (pid ${pid}); try again when it is done`;
  const before = queues.get(file) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  queues.set(file, mine);
  const deadline = Date.now() + timeoutMs;
  try {
    // The queue only spares polling; the file lock below is what excludes (also a waiter that gave up here).
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), timeoutMs)));
    const turn = await Promise.race([before.then(() => 'turn' as const), expired]);
    clearTimeout(timer);
    if (turn === 'expired') throw new PaeneError('busy', busy(String(process.pid)));
    const lock = await acquireFileLock(file, Math.max(0, deadline - Date.now()), busy);
    try {
      return await fn();
    } finally {
      lock.release();
    }
  } finally {
    if (queues.get(file) === mine) queues.delete(file);
    done();
  }
}
