// Which init a guest brings (--init guest): its program found in the image's
// tree (symlinks followed inside the tree, never out of it) and classified
// (model/service.ts), so `stop` asks it to shut down the way it expects.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError } from '../model/errors.js';
import { classifyInit, type GuestInitFlavor } from '../model/service.js';

const HEAD_BYTES = 4 * 1024 * 1024;

/** Resolves `guestPath` inside the tree at `root` as the guest would see it; undefined if it is not a regular file there. */
export function resolveInTree(root: string, guestPath: string): string | undefined {
  let parts = guestPath.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  for (let hops = 0; parts.length > 0; ) {
    const next = parts.shift() as string;
    if (next === '..') {
      done.pop();
      continue;
    }
    const host = path.join(root, ...done, next);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(host);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) return undefined;
      const target = fs.readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      parts = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...parts];
      continue;
    }
    done.push(next);
    if (parts.length === 0) return st.isFile() ? `/${done.join('/')}` : undefined;
  }
  return undefined;
}

/** The flavor of the guest's init in the image tree at `root`, or a clear refusal. */
export function guestInitFlavor(root: string, guestPath: string, image: string): GuestInitFlavor {
  const resolved = resolveInTree(root, guestPath);
  if (!resolved) throw new PaeneError('invalid-argument', `--init guest: image '${image}' has no program at ${guestPath}`);
  const fd = fs.openSync(path.join(root, resolved), 'r');
  let head: string;
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    head = buf.subarray(0, fs.readSync(fd, buf, 0, HEAD_BYTES, 0)).toString('latin1');
  } finally {
    fs.closeSync(fd);
  }
  const c = classifyInit(resolved, head);
  if (typeof c === 'object') throw new PaeneError('invalid-argument', `--init guest: ${c.refused}`);
  return c;
}
