// Archive entry names are hostile input. Turn one into a safe relative path
// (components joined by '/', no '.', no '..', never absolute) or refuse it.

import { PaeneError } from '../model/errors.js';

export const NAME_MAX = 255; // bytes per component (ext4, xfs, btrfs, tmpfs)
export const PATH_MAX = 4095; // bytes of a path inside the guest

/**
 * Normalize an entry name. Returns '' for the archive's root ('.', './').
 * Throws 'hostile-archive' for NUL, absolute paths, '..', over-long names.
 */
export function normalizeEntryName(raw: string, what = 'entry'): string {
  const shown = JSON.stringify(raw.length > 200 ? raw.slice(0, 200) + '…' : raw);
  if (raw.includes('\0')) throw new PaeneError('hostile-archive', `${what} ${shown}: name contains a NUL byte`);
  if (raw.length === 0) throw new PaeneError('hostile-archive', `${what}: empty name`);
  if (raw.startsWith('/')) throw new PaeneError('hostile-archive', `${what} ${shown}: absolute path`);
  const parts: string[] = [];
  for (const c of raw.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new PaeneError('hostile-archive', `${what} ${shown}: '..' component`);
    if (Buffer.byteLength(c) > NAME_MAX)
      throw new PaeneError('hostile-archive', `${what} ${shown}: a name component is longer than ${NAME_MAX} bytes`);
    parts.push(c);
  }
  const rel = parts.join('/');
  if (Buffer.byteLength(rel) > PATH_MAX) throw new PaeneError('hostile-archive', `${what} ${shown}: path is longer than ${PATH_MAX} bytes`);
  return rel;
}

export function showName(rel: string): string {
  return JSON.stringify(rel === '' ? '.' : rel.length > 200 ? rel.slice(0, 200) + '…' : rel);
}
