// Where each file of an uncompressed image archive tar lies in it, by
// reading only its headers: an OCI layout or docker-archive tar given as a
// file is then read in place (blob by blob, in the order the manifest says)
// instead of being copied into the staging directory first.
//
// The headers are hostile input like any: checksums are verified, names go
// through normalizeEntryName, sizes must fit the file, and PAX records and
// GNU long names are honoured (with a size cap). What a blob holds is not
// trusted from here: every blob is still checked against its digest.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError } from '../model/errors.js';
import { normalizeEntryName, showName } from './entryname.js';
import { paxRecords, TAR_META_MAX, tarNumber, tarString } from './tarfields.js';

export interface TarMember {
  start: number; // offset of its data in the archive
  size: number;
}

export interface TarIndex {
  members: Map<string, TarMember>; // regular files by normalized name
  aliases: Map<string, string>; // symlinks and hard links between them
}

function bad(msg: string): never {
  throw new PaeneError('hostile-archive', `corrupt image archive: ${msg}`);
}

/** A field's failure, placed: the header at OFF. */
const at =
  (off: number) =>
  (msg: string): never =>
    bad(`${msg} in the header at ${off}`);

/**
 * What a link between an archive's files names: docker save links a layer
 * it saved already (<id>/layer.tar -> ../<other>/layer.tar). A symlink out
 * of the archive names nothing.
 */
export function aliasTarget(type: 'symlink' | 'link' | 'other', rel: string, link: string | undefined | null): string | undefined {
  if (!link) return undefined;
  if (type === 'link') return normalizeEntryName(link, `entry ${showName(rel)}: hard link target`);
  if (type !== 'symlink') return undefined;
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), link));
  return link.startsWith('/') || target.startsWith('..') ? undefined : target;
}

/** Index the members of the tar at file (uncompressed), up to maxEntries. */
export function indexTar(file: string, maxEntries: number): TarIndex {
  const fd = fs.openSync(file, 'r');
  try {
    const total = fs.fstatSync(fd).size;
    const read = (off: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      if (fs.readSync(fd, b, 0, len, off) !== len) bad(`truncated at ${off}`);
      return b;
    };
    const idx: TarIndex = { members: new Map(), aliases: new Map() };
    let off = 0;
    let entries = 0;
    let pax: Record<string, string> = {};
    let longName: string | undefined;
    let longLink: string | undefined;
    for (;;) {
      // Every writer ends a tar with zero blocks: an archive without them was cut short.
      if (off + 512 > total) bad(`truncated: the archive ends at ${total} bytes without its end-of-archive blocks`);
      const h = read(off, 512);
      if (h.every((x) => x === 0)) break;
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
      if (tarNumber(h.subarray(148, 156), 'checksum', at(off)) !== sum) bad(`bad header checksum at ${off}`);
      const type = String.fromCharCode(h[156] || 0x30);
      let size = tarNumber(h.subarray(124, 136), 'size', at(off));
      if (pax.size !== undefined && (type === '0' || type === '7')) size = Number(pax.size);
      if (type === '5' || type === '2' || type === '1') size = 0; // as tar-stream reads them
      if (!Number.isSafeInteger(size) || size < 0 || off + 512 + size > total)
        bad(`an entry at ${off} claims ${size} bytes past the end of the archive`);
      const dataAt = off + 512;
      const next = dataAt + Math.ceil(size / 512) * 512;
      if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
        if (size > TAR_META_MAX) bad(`metadata entry at ${off} is larger than ${TAR_META_MAX} bytes`);
        const data = read(dataAt, size);
        if (type === 'x') pax = paxRecords(data, at(off));
        else if (type === 'L') longName = tarString(data);
        else if (type === 'K') longLink = tarString(data);
        off = next;
        continue;
      }
      if (++entries > maxEntries)
        throw new PaeneError('limit-exceeded', `the image archive has more than ${maxEntries} entries (--max-files)`);
      const prefix = h.subarray(257, 262).toString('latin1') === 'ustar' ? tarString(h.subarray(345, 500)) : '';
      const plain = tarString(h.subarray(0, 100));
      const raw = pax.path ?? longName ?? (prefix ? `${prefix}/${plain}` : plain);
      const link = pax.linkpath ?? longLink ?? tarString(h.subarray(157, 257));
      pax = {};
      longName = undefined;
      longLink = undefined;
      const rel = normalizeEntryName(raw);
      if (type === '0' || type === '7') {
        idx.members.set(rel, { start: dataAt, size });
        idx.aliases.delete(rel);
      } else {
        const target = aliasTarget(type === '2' ? 'symlink' : type === '1' ? 'link' : 'other', rel, link);
        if (target !== undefined) idx.aliases.set(rel, target);
      }
      off = next;
    }
    return idx;
  } finally {
    fs.closeSync(fd);
  }
}
