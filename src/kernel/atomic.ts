// Crash-safe file writes: a reader sees the old file or the new one, never a
// torn one. Write a temporary sibling, fsync it, rename over, fsync the dir.

import fs from 'node:fs';
import path from 'node:path';

/**
 * `durable: false` keeps the atomic rename but skips both fsyncs: for files
 * that describe running processes (a context's state.json), which a power
 * loss makes stale anyway, and which every start writes.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644, durable = true): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeFileSync(fd, data);
    if (durable) fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  if (durable) fsyncDir(dir);
}

export function writeJsonAtomic(file: string, value: unknown, durable = true): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', 0o644, durable);
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
