// Walking a tree on disk: as a tar stream (export, commit) and as disk usage.
// Never follows a symlink; regular files are emitted as plain files, so the
// archive does not depend on how the store happened to hard-link them.

import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

export interface PackOptions {
  /** Do not descend into directories on another filesystem (proc, dev mounts of a live context). */
  oneFileSystem?: boolean;
  onWarning?: (msg: string) => void;
}

function major(rdev: number): number {
  return Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn);
}
function minor(rdev: number): number {
  return Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & ~0xffn);
}

const USTAR_ID_MAX = 0o7777777; // 7 octal digits in a ustar header

/**
 * Add one entry to a tar-stream pack and wait until it is written; with
 * `file`, stream that file as the body (capped at header.size, so a file
 * that grows meanwhile cannot corrupt the archive). Rejects, never hangs,
 * when the pack is destroyed.
 */
export function packEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, file?: string): Promise<void> {
  // tar-stream silently clamps ids that do not fit ustar (user-namespaced
  // images use ids above 2^21): say them in PAX records, which import reads.
  if ((header.uid ?? 0) > USTAR_ID_MAX || (header.gid ?? 0) > USTAR_ID_MAX)
    header = { ...header, pax: { uid: String(header.uid ?? 0), gid: String(header.gid ?? 0) } };
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err?: Error | null): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve();
    };
    const entry = pack.entry(header, done);
    entry.on('error', () => undefined); // reported through done()
    if (file === undefined) {
      if (header.type === 'file' || header.type === undefined) entry.end(undefined);
      return;
    }
    const size = header.size ?? 0;
    if (size === 0) {
      entry.end(undefined);
      return;
    }
    pipeline(fs.createReadStream(file, { end: size - 1 }), entry as unknown as NodeJS.WritableStream).catch(done);
  });
}

/** Write the tree under root into pack as entries './', 'a/', 'a/b', … (does not finalize). */
export async function packTree(root: string, pack: tar.Pack, opts: PackOptions = {}): Promise<number> {
  // stat, not lstat: the root may be a magic link such as /proc/PID/root (a live context for commit)
  const rootSt = fs.statSync(root);
  let count = 0;
  const meta = (st: fs.Stats) => ({
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    mtime: new Date(Math.floor(st.mtimeMs / 1000) * 1000),
  });
  await packEntry(pack, { name: './', type: 'directory', ...meta(rootSt) });
  const walk = async (relDir: string): Promise<void> => {
    const absDir = relDir === '' ? root : path.join(root, relDir);
    const names = fs.readdirSync(absDir).sort();
    for (const n of names) {
      const rel = relDir === '' ? n : `${relDir}/${n}`;
      const abs = path.join(root, rel);
      const st = fs.lstatSync(abs, { throwIfNoEntry: false });
      if (st === undefined) continue; // vanished while walking a live tree
      count++;
      if (st.isDirectory()) {
        await packEntry(pack, { name: rel + '/', type: 'directory', ...meta(st) });
        if (opts.oneFileSystem && st.dev !== rootSt.dev) continue;
        await walk(rel);
      } else if (st.isFile()) {
        await packEntry(pack, { name: rel, type: 'file', size: st.size, ...meta(st) }, abs);
      } else if (st.isSymbolicLink()) {
        await packEntry(pack, { name: rel, type: 'symlink', linkname: fs.readlinkSync(abs), ...meta(st) });
      } else if (st.isFIFO()) {
        await packEntry(pack, { name: rel, type: 'fifo', ...meta(st) });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await packEntry(pack, {
          name: rel,
          type: st.isCharacterDevice() ? 'character-device' : 'block-device',
          devmajor: major(st.rdev),
          devminor: minor(st.rdev),
          ...meta(st),
        });
      } else {
        count--;
        opts.onWarning?.(`skipped socket ${rel}`);
      }
    }
  };
  await walk('');
  return count;
}

/** Stream the tree under root as a tar into out. */
export async function writeTreeTar(root: string, out: NodeJS.WritableStream, opts: PackOptions = {}): Promise<void> {
  await writePacked(out, async (pack) => {
    await packTree(root, pack, opts);
  });
}

/**
 * Write a tar that `produce` adds entries to, through `through` (e.g. a
 * hashing tap) into out; finalized when produce is done, destroyed (and the
 * error passed on) when it fails.
 */
export async function writePacked(
  out: NodeJS.WritableStream,
  produce: (pack: tar.Pack) => Promise<void>,
  through?: NodeJS.ReadWriteStream,
): Promise<void> {
  const pack = tar.pack();
  const src = pack as unknown as NodeJS.ReadableStream;
  const piping = through ? pipeline(src, through, out) : pipeline(src, out);
  try {
    await produce(pack);
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await piping.catch(() => undefined);
    throw e;
  }
  await piping;
}

export interface TreeUsage {
  entries: number; // every name in the tree (files, dirs, links …)
  regularFiles: number;
  logicalBytes: number; // sum of regular file sizes, per name
  diskBytes: number; // st_blocks of each distinct inode, once
  inodes: number; // distinct inodes
}

/** Disk usage of a tree, counting each inode once (e.g. a context's upper layer for `paene du`). */
export function treeUsage(root: string): TreeUsage {
  const u: TreeUsage = { entries: 0, regularFiles: 0, logicalBytes: 0, diskBytes: 0, inodes: 0 };
  const seen = new Set<string>();
  const visit = (abs: string, st: fs.Stats): void => {
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      u.inodes++;
      u.diskBytes += st.blocks * 512;
    }
    if (st.isFile()) {
      u.regularFiles++;
      u.logicalBytes += st.size;
    }
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(abs)) {
        const p = path.join(abs, n);
        const s = fs.lstatSync(p, { throwIfNoEntry: false });
        if (s === undefined) continue;
        u.entries++;
        visit(p, s);
      }
    }
  };
  const st = fs.lstatSync(root, { throwIfNoEntry: false });
  if (st !== undefined) visit(root, st);
  return u;
}
