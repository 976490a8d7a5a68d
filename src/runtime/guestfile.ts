// A small text file as a running context sees it (its /etc/passwd, to resolve
// `exec -u NAME`): its private layer over its image, read from the host without
// following any symlink the guest made (a guest's /etc/passwd -> /etc/shadow
// of the host reads nothing), whiteouts honoured.

import fs from 'node:fs';
import path from 'node:path';

const MAX_BYTES = 1024 * 1024;

type Found = { text: string } | 'deleted' | 'absent';

/** `rel` in one layer: its text, 'deleted' (a whiteout, or something that is not a plain file in the way), or 'absent'. */
function inLayer(top: string, rel: string, whiteouts: boolean): Found {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return 'deleted';
  let cur = top;
  for (const [i, p] of parts.entries()) {
    cur = path.join(cur, p);
    const st = fs.lstatSync(cur, { throwIfNoEntry: false });
    if (st === undefined) return 'absent';
    if (whiteouts && st.isCharacterDevice() && st.rdev === 0) return 'deleted';
    const last = i === parts.length - 1;
    if (!last && !st.isDirectory()) return 'deleted';
    if (last && (!st.isFile() || st.size > MAX_BYTES)) return 'deleted';
  }
  let fd: number;
  try {
    fd = fs.openSync(cur, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return 'deleted'; // swapped for a symlink or a FIFO since the lstat
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return 'deleted';
    const buf = Buffer.alloc(MAX_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return n > MAX_BYTES ? 'deleted' : { text: buf.subarray(0, n).toString('utf8') };
  } finally {
    fs.closeSync(fd);
  }
}

/** The guest's `rel`: the private (upper) layer's copy, else the image's, else undefined. */
export function guestFile(upper: string, lower: string, rel: string): string | undefined {
  const u = inLayer(upper, rel, true);
  if (u === 'deleted') return undefined;
  if (u !== 'absent') return u.text;
  const l = inLayer(lower, rel, false);
  return typeof l === 'object' ? l.text : undefined;
}
