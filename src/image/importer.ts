// Unpack one tar stream into a staging tree, treating every byte as hostile.
//
// Rules (docs/images.md has the long form):
// - every name is normalized (no NUL, no absolute path, no '..', length
//   limits) and created relative to the staging root;
// - no symlink is ever followed: each parent component is a directory this
//   import created or verified with lstat, and the final component is made
//   with calls that refuse an existing name (open O_EXCL, link, symlink, mkdir);
// - regular file data is hashed while it is written to a temporary object
//   file, which then becomes (or is replaced by) the store's object for that
//   content+metadata, and the tree gets a hard link to it;
// - hard links must point at an entry already unpacked;
// - devices are skipped with a warning unless allowDevices;
// - limits on entries and bytes are checked before any data is read.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import tar from 'tar-stream';
import { PaeneError, errnoOf, isPaeneError } from '../model/errors.js';
import { classifyLayerName } from './ociplan.js';
import { normalizeEntryName, showName, PATH_MAX } from './entryname.js';

export const DEFAULT_MAX_FILES = 1_000_000;
export const DEFAULT_MAX_BYTES = 64 * 1024 ** 3;
/** Files up to this size are hashed in memory before anything is written (see writeObject). */
const SMALL_FILE = 1024 * 1024;

export interface UnpackOptions {
  rootfs: string; // staging root of the tree (exists, empty)
  tmpDir: string; // where object files are written while hashed
  objectsDir: string; // the store's objects/
  newObjects: string[]; // objects (and then fan-out dirs) this import added, for cleanup on failure
  maxFiles: number;
  maxBytes: number;
  allowDevices: boolean;
  onProgress?: (bytes: number, files: number) => void;
  onWarning?: (msg: string) => void;
}

export interface UnpackResult {
  entries: number; // names in the tree, without its root
  regularFiles: number;
  logicalBytes: number; // file data bytes read from the archive
}

interface Meta {
  mode: number; // permission bits incl. setuid/setgid/sticky
  uid: number;
  gid: number;
  mtime: number; // whole seconds
}

export type TarHeader = Partial<tar.Header> & { pax?: Record<string, string> | null };
type EntryStream = AsyncIterable<unknown> & { resume(): unknown };

type Kind = 'file' | 'dir' | 'symlink' | 'fifo' | 'device';

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Object file name: content hash plus the metadata that lives on the inode. */
export function objectKey(sha256: string, m: Meta): string {
  return `${sha256}.${m.mode.toString(8)}.${m.uid}.${m.gid}.${m.mtime}`;
}

export function objectPath(objectsDir: string, key: string): string {
  return path.join(objectsDir, key.slice(0, 2), key);
}

/**
 * Builds one tree from one tar (a flat root filesystem) or from a stack of
 * layer tars applied in order (beginLayer before each): then `.wh.NAME`
 * deletes NAME and `.wh..wh..opq` hides a directory's contents, both only
 * for what lower layers made (image/ociplan.ts has the rules as a model).
 */
export class Unpacker {
  private readonly seen = new Map<string, Kind>();
  /** Names made by the layer being applied, and their parents; undefined for a flat tar (no whiteouts). */
  private layerNames: Set<string> | undefined;
  private readonly dirMeta = new Map<string, Meta>();
  private readonly verified = new Set<string>(['']);
  private entries = 0;
  private bytes = 0;
  private tmpCounter = 0;
  private warnedOwners = false;
  private warnedXattrs = false;
  lastEntry = '';
  aborted = false;
  get entryCount(): number {
    return this.entries;
  }

  constructor(private readonly o: UnpackOptions) {}

  /** Start applying the next layer of a stack: from now on `.wh.` names are whiteouts. */
  beginLayer(): void {
    this.layerNames = new Set();
  }

  get layered(): boolean {
    return this.layerNames !== undefined;
  }

  private abs(rel: string): string {
    return rel === '' ? this.o.rootfs : path.join(this.o.rootfs, rel);
  }

  warn(msg: string): void {
    this.o.onWarning?.(msg);
  }

  private fail(rel: string, msg: string, code: 'hostile-archive' | 'limit-exceeded' = 'hostile-archive'): never {
    throw new PaeneError(code, `entry ${showName(rel)}: ${msg}`);
  }

  private meta(h: TarHeader, rel: string): Meta {
    const pax = h.pax ?? {};
    const num = (paxKey: string, v: number | undefined, field: string, max: number): number => {
      let n = v;
      if (pax[paxKey] !== undefined) n = Number(pax[paxKey]);
      if (n === undefined || !Number.isFinite(n) || n < 0 || n > max) this.fail(rel, `invalid ${field} field`);
      return Math.floor(n);
    };
    const mode = num('', h.mode, 'mode', Number.MAX_SAFE_INTEGER) & 0o7777;
    let uid = num('uid', h.uid, 'uid', 0xfffffffe);
    let gid = num('gid', h.gid, 'gid', 0xfffffffe);
    const mt = h.mtime instanceof Date ? h.mtime.getTime() / 1000 : NaN;
    const mtime = num('mtime', Number.isFinite(mt) ? mt : undefined, 'mtime', 2 ** 40);
    if (!asRoot) {
      // Unprivileged: the inode gets our ids, so the key must say so too.
      if (!this.warnedOwners && (uid !== process.getuid!() || gid !== process.getgid!())) {
        this.warnedOwners = true;
        this.warn('not running as root: file owners from the archive are not kept');
      }
      uid = process.getuid!();
      gid = process.getgid!();
    }
    if (!this.warnedXattrs && Object.keys(pax).some((k) => k.startsWith('SCHILY.xattr.') || k.startsWith('LIBARCHIVE.xattr.'))) {
      this.warnedXattrs = true;
      this.warn('the archive carries extended attributes (e.g. file capabilities); they are not kept');
    }
    return { mode, uid, gid, mtime };
  }

  /** Make sure every parent of rel is a real directory inside the staging root. */
  private ensureParents(rel: string): void {
    const parts = rel.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur === '' ? parts[i] : `${cur}/${parts[i]}`;
      if (this.verified.has(cur)) continue;
      const p = this.abs(cur);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (st === undefined) {
        // Implicit parent, as GNU tar makes it: root-owned 0755.
        fs.mkdirSync(p, { mode: 0o700 });
        this.dirMeta.set(cur, {
          mode: 0o755,
          uid: asRoot ? 0 : process.getuid!(),
          gid: asRoot ? 0 : process.getgid!(),
          mtime: Math.floor(Date.now() / 1000),
        });
        this.seen.set(cur, 'dir');
      } else if (!st.isDirectory()) {
        this.fail(rel, `parent ${showName(cur)} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}; refusing to write through it`);
      }
      this.verified.add(cur);
    }
  }

  /** Duplicate entries: the last one wins, like GNU tar. */
  private removeExisting(rel: string, keepDir: boolean): 'dir-kept' | 'gone' {
    const p = this.abs(rel);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) return 'gone';
    if (st.isDirectory()) {
      if (keepDir) return 'dir-kept';
      forceRemoveTree(p);
      const prefix = rel + '/';
      for (const k of [...this.seen.keys()]) if (k === rel || k.startsWith(prefix)) this.seen.delete(k);
      for (const k of [...this.dirMeta.keys()]) if (k === rel || k.startsWith(prefix)) this.dirMeta.delete(k);
      for (const k of [...this.verified]) if (k === rel || k.startsWith(prefix)) this.verified.delete(k);
      return 'gone';
    }
    fs.unlinkSync(p);
    this.seen.delete(rel);
    return 'gone';
  }

  private async drain(stream: EntryStream): Promise<void> {
    for await (const _ of stream) void _;
  }

  private progress(): void {
    this.o.onProgress?.(this.bytes, this.entries);
  }

  async entry(h: TarHeader, stream: EntryStream): Promise<void> {
    let rel: string;
    try {
      rel = normalizeEntryName(h.name ?? '');
    } catch (e) {
      stream.resume();
      throw e;
    }
    this.lastEntry = rel;
    this.entries++;
    if (this.entries > this.o.maxFiles)
      this.fail(rel, `the archive has more than ${this.o.maxFiles} entries (--max-files)`, 'limit-exceeded');
    if (h.pax && Object.keys(h.pax).some((k) => k.startsWith('GNU.sparse.'))) this.fail(rel, 'sparse files are not supported');

    const type = h.type;
    try {
      if (this.layerNames !== undefined && (await this.layerMarker(rel, stream))) {
        this.progress();
        return;
      }
      if (this.layerNames !== undefined) this.markInLayer(rel);
      switch (type) {
        case 'file':
        case 'contiguous-file':
          await this.file(h, rel, stream);
          break;
        case 'directory':
          // tar-stream never ends a directory's stream when the header declares
          // a size (it skips no data for directories): do not wait for it.
          stream.resume();
          this.dir(h, rel);
          break;
        case 'symlink':
          await this.drain(stream);
          this.symlink(h, rel);
          break;
        case 'link':
          await this.drain(stream);
          this.hardlink(h, rel);
          break;
        case 'fifo':
          await this.drain(stream);
          this.special(h, rel, 'p');
          break;
        case 'character-device':
        case 'block-device':
          await this.drain(stream);
          if (!this.o.allowDevices) {
            this.warn(`skipped device node ${showName(rel)} (use --allow-devices to keep it)`);
            break;
          }
          this.special(h, rel, type === 'character-device' ? 'c' : 'b');
          break;
        default:
          this.fail(
            rel,
            `unsupported entry type${type ? ` '${type}'` : ' (GNU sparse, volume label or multi-volume entries are not supported)'}`,
          );
      }
    } catch (e) {
      if (isPaeneError(e)) throw e;
      const errno = errnoOf(e);
      const code = errno === 'ENAMETOOLONG' || errno === 'ELOOP' || errno === 'ENOTDIR' ? 'hostile-archive' : 'internal';
      throw new PaeneError(code, `entry ${showName(rel)}: ${(e as Error).message}`, { cause: e });
    }
    this.progress();
  }

  /**
   * This layer has rel, so it has rel's parents too: a whiteout or opaque
   * marker of the same layer must not hide them (image/ociplan.ts mergeLayers).
   */
  private markInLayer(rel: string): void {
    const mine = this.layerNames!;
    for (let p = rel; p !== '' && !mine.has(p); p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') mine.add(p);
  }

  /** A whiteout or opaque marker of a layer: applied, and true; false for any other entry. */
  private async layerMarker(rel: string, stream: EntryStream): Promise<boolean> {
    const n = classifyLayerName(rel);
    if (n.kind === 'entry') return false;
    await this.drain(stream);
    const mine = this.layerNames!;
    if (n.kind === 'whiteout') {
      // Only lower layers' names are hidden: a name this layer made stays, and so
      // does what it put under the name (whichever comes first in the layer).
      if (!mine.has(n.target)) {
        if (this.existingParents(n.target, rel)) this.removeExisting(n.target, false);
      } else if (this.seen.get(n.target) === 'dir') this.hideLower(n.target);
      return true;
    }
    this.ensureParents(n.dir === '' ? OPAQUE_PROBE : `${n.dir}/${OPAQUE_PROBE}`);
    if (n.dir !== '') this.markInLayer(n.dir);
    this.hideLower(n.dir);
    return true;
  }

  /** Remove what lower layers put under dir, keeping what this layer did. */
  private hideLower(dir: string): void {
    const mine = this.layerNames!;
    for (const name of fs.readdirSync(this.abs(dir))) {
      const child = dir === '' ? name : `${dir}/${name}`;
      if (!mine.has(child)) this.removeExisting(child, false);
      else if (this.seen.get(child) === 'dir') this.hideLower(child);
    }
  }

  /**
   * True if every parent of rel is a directory already in the tree (so rel
   * may exist); false if one is missing. A parent that is a symlink or a
   * file is hostile: a whiteout must not reach through it.
   */
  private existingParents(rel: string, entry: string): boolean {
    const parts = rel.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur === '' ? parts[i] : `${cur}/${parts[i]}`;
      if (this.verified.has(cur)) continue;
      const st = fs.lstatSync(this.abs(cur), { throwIfNoEntry: false });
      if (st === undefined) return false;
      if (!st.isDirectory())
        this.fail(entry, `whiteout through ${showName(cur)}, which is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}; refusing`);
      this.verified.add(cur);
    }
    return true;
  }

  private dir(h: TarHeader, rel: string): void {
    const m = this.meta(h, rel);
    if (rel === '') {
      this.dirMeta.set('', m);
      return;
    }
    this.ensureParents(rel);
    if (this.removeExisting(rel, true) === 'gone') fs.mkdirSync(this.abs(rel), { mode: 0o700 });
    this.dirMeta.set(rel, m);
    this.verified.add(rel);
    this.seen.set(rel, 'dir');
  }

  private async file(h: TarHeader, rel: string, stream: EntryStream): Promise<void> {
    if (rel === '') this.fail(rel, 'the archive root must be a directory');
    const size = h.size ?? 0;
    if (this.bytes + size > this.o.maxBytes)
      this.fail(rel, `the archive holds more than ${this.o.maxBytes} bytes of file data (--max-bytes)`, 'limit-exceeded');
    const m = this.meta(h, rel);
    this.ensureParents(rel);
    const obj = await this.writeObject(stream, m, rel);
    this.removeExisting(rel, false);
    this.linkInto(obj, rel, m);
    this.seen.set(rel, 'file');
  }

  private linkInto(src: string, rel: string, m: Meta | undefined): void {
    try {
      fs.linkSync(src, this.abs(rel));
    } catch (e) {
      if (errnoOf(e) !== 'EMLINK' || m === undefined) throw e;
      // The inode hit the filesystem's link limit: give this path a private copy.
      fs.copyFileSync(src, this.abs(rel), fs.constants.COPYFILE_EXCL);
      if (asRoot) fs.lchownSync(this.abs(rel), m.uid, m.gid);
      fs.chmodSync(this.abs(rel), m.mode);
      fs.utimesSync(this.abs(rel), m.mtime, m.mtime);
    }
  }

  /**
   * Hash a file's data into the store. A small file is held in memory until
   * its hash is known, so a file the store already has costs no write at
   * all (a re-import, a layer shared with another image); a larger one is
   * streamed to a temporary file. Memory stays bounded by SMALL_FILE.
   */
  private async writeObject(stream: EntryStream, m: Meta, rel: string): Promise<string> {
    const tmp = path.join(this.o.tmpDir, `o${this.tmpCounter++}`);
    const C = fs.constants;
    const hash = createHash('sha256');
    let fh: fsp.FileHandle | undefined;
    let held: Buffer[] = [];
    let heldLen = 0;
    let ok = false;
    const writeAll = async (f: fsp.FileHandle, buf: Buffer): Promise<void> => {
      let off = 0;
      while (off < buf.length) off += (await f.write(buf, off, buf.length - off)).bytesWritten;
    };
    const spill = async (): Promise<fsp.FileHandle> => {
      const f = await fsp.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      fh = f;
      if (heldLen > 0) await writeAll(f, held.length === 1 ? held[0] : Buffer.concat(held));
      held = [];
      heldLen = 0;
      return f;
    };
    try {
      for await (const chunk of stream) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        hash.update(buf);
        this.bytes += buf.length;
        if (this.bytes > this.o.maxBytes)
          this.fail(rel, `the archive holds more than ${this.o.maxBytes} bytes of file data (--max-bytes)`, 'limit-exceeded');
        if (fh === undefined && heldLen + buf.length <= SMALL_FILE) {
          held.push(buf);
          heldLen += buf.length;
        } else await writeAll(fh ?? (await spill()), buf);
        this.progress();
      }
      const key = objectKey(hash.digest('hex'), m);
      const obj = objectPath(this.o.objectsDir, key);
      if (fs.lstatSync(obj, { throwIfNoEntry: false }) !== undefined) {
        if (fh !== undefined) {
          await (fh as fsp.FileHandle).close();
          ok = true;
          fs.unlinkSync(tmp);
        }
        ok = true;
        return obj;
      }
      const f = fh ?? (await spill());
      // chown before chmod: chown clears setuid/setgid bits.
      if (asRoot) await f.chown(m.uid, m.gid);
      await f.chmod(m.mode);
      await f.utimes(m.mtime, m.mtime);
      await f.close();
      ok = true;
      // No await from here to the rename: a failed import's cleanup cannot miss it.
      if (this.aborted) throw new PaeneError('internal', 'import aborted');
      const fan = path.dirname(obj);
      if (fs.mkdirSync(fan, { recursive: true, mode: 0o700 }) !== undefined) this.o.newObjects.push(fan + '/');
      fs.renameSync(tmp, obj);
      this.o.newObjects.push(obj);
      return obj;
    } finally {
      if (!ok) {
        if (fh !== undefined) await (fh as fsp.FileHandle).close().catch(() => undefined);
        fs.rmSync(tmp, { force: true });
      }
    }
  }

  private symlink(h: TarHeader, rel: string): void {
    if (rel === '') this.fail(rel, 'the archive root must be a directory');
    const target = h.linkname ?? '';
    if (target === '') this.fail(rel, 'symlink with an empty target');
    if (target.includes('\0')) this.fail(rel, 'symlink target contains a NUL byte');
    if (Buffer.byteLength(target) > PATH_MAX) this.fail(rel, `symlink target is longer than ${PATH_MAX} bytes`);
    const m = this.meta(h, rel);
    this.ensureParents(rel);
    this.removeExisting(rel, false);
    // The target is stored verbatim and never resolved: it only means
    // something inside the guest's root.
    fs.symlinkSync(target, this.abs(rel));
    if (asRoot) fs.lchownSync(this.abs(rel), m.uid, m.gid);
    fs.lutimesSync(this.abs(rel), m.mtime, m.mtime);
    this.seen.set(rel, 'symlink');
  }

  private hardlink(h: TarHeader, rel: string): void {
    if (rel === '') this.fail(rel, 'the archive root must be a directory');
    const target = normalizeEntryName(h.linkname ?? '', `entry ${showName(rel)}: hard link target`);
    if (target === rel) this.fail(rel, 'hard link to itself');
    this.ensureParents(rel);
    this.removeExisting(rel, false);
    const kind = this.seen.get(target);
    if (kind === undefined) this.fail(rel, `hard link to ${showName(target)}, which is not an earlier entry of the archive`);
    if (kind === 'dir') this.fail(rel, `hard link to directory ${showName(target)}`);
    // link(2) does not follow a symlink target, and every parent of target
    // is a directory this import verified.
    this.linkInto(this.abs(target), rel, undefined);
    this.seen.set(rel, kind);
  }

  private special(h: TarHeader, rel: string, kind: 'p' | 'c' | 'b'): void {
    if (rel === '') this.fail(rel, 'the archive root must be a directory');
    const m = this.meta(h, rel);
    this.ensureParents(rel);
    this.removeExisting(rel, false);
    const args = ['-m', (m.mode & 0o777).toString(8), this.abs(rel), kind];
    if (kind !== 'p') {
      const major = h.devmajor ?? 0;
      const minor = h.devminor ?? 0;
      if (!Number.isInteger(major) || !Number.isInteger(minor) || major < 0 || minor < 0 || major > 0xfff || minor > 0xfffff)
        this.fail(rel, 'invalid device numbers');
      args.push(String(major), String(minor));
    }
    // Node has no mknod(2); mknod(1) makes the node at exactly this path
    // (it fails on an existing name, it does not follow one).
    const r = spawnSync('mknod', args, { encoding: 'utf8' });
    if (r.status !== 0)
      this.fail(rel, `cannot create ${kind === 'p' ? 'fifo' : 'device node'}: ${(r.stderr || r.error?.message || '').trim()}`);
    if (asRoot) fs.lchownSync(this.abs(rel), m.uid, m.gid);
    fs.chmodSync(this.abs(rel), m.mode);
    fs.lutimesSync(this.abs(rel), m.mtime, m.mtime);
    this.seen.set(rel, kind === 'p' ? 'fifo' : 'device');
  }

  /** Directory metadata last: creating children changes a directory's mtime. */
  finish(): UnpackResult {
    const dirs = [...this.dirMeta.keys()].sort((a, b) => b.split('/').length - a.split('/').length);
    if (!this.dirMeta.has('')) dirs.push('');
    for (const rel of dirs) {
      const m = this.dirMeta.get(rel) ?? {
        mode: 0o755,
        uid: asRoot ? 0 : process.getuid!(),
        gid: asRoot ? 0 : process.getgid!(),
        mtime: Math.floor(Date.now() / 1000),
      };
      const p = this.abs(rel);
      if (asRoot) fs.lchownSync(p, m.uid, m.gid);
      // Unprivileged, keep the owner's rwx so the tree can still be removed.
      fs.chmodSync(p, asRoot ? m.mode : m.mode | 0o700);
      fs.utimesSync(p, m.mtime, m.mtime);
    }
    // Names in the finished tree (duplicates once, implicit parents included).
    const regularFiles = [...this.seen.values()].filter((k) => k === 'file').length;
    return { entries: this.seen.size, regularFiles, logicalBytes: this.bytes };
  }
}

/** rm -rf that also works unprivileged on trees with read-only directories. */
export function forceRemoveTree(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch (e) {
    if (errnoOf(e) !== 'EACCES' && errnoOf(e) !== 'EPERM') throw e;
    const fix = (d: string): void => {
      const st = fs.lstatSync(d, { throwIfNoEntry: false });
      if (!st?.isDirectory()) return;
      fs.chmodSync(d, 0o700);
      for (const n of fs.readdirSync(d)) fix(path.join(d, n));
    };
    fix(p);
    fs.rmSync(p, { recursive: true, force: true });
  }
}

const OPAQUE_PROBE = '.wh..wh..opq';

const MAGICS: Array<[number[], string]> = [
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a], 'xz'],
  [[0x42, 0x5a, 0x68], 'bzip2'],
];

async function* peeked(first: Buffer[], rest: AsyncIterator<unknown>): AsyncGenerator<Buffer> {
  for (const b of first) yield b;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as string);
  }
}

/** Wait until a writable that refused a write takes more, or is gone. */
export function drainedOrClosed(w: NodeJS.EventEmitter): Promise<void> {
  return new Promise<void>((res) => {
    const go = (): void => {
      w.off('drain', go);
      w.off('close', go);
      res();
    };
    w.on('drain', go);
    w.on('close', go);
  });
}

/** A stream of zstd-compressed bytes, decompressed (fzstd: pure JS, streaming, no native build). */
function zstdStream(src: Readable): Readable {
  const out = new Readable({ read: () => undefined });
  const dec = new Decompress((chunk, final) => {
    if (chunk.length) out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    if (final) out.push(null);
  });
  (async () => {
    let last: Buffer | undefined;
    for await (const c of src) {
      // fzstd needs to know which chunk is the last: hold one back.
      if (last) dec.push(last);
      last = c as Buffer;
      // Keep memory flat: wait while the consumer is behind.
      while (out.readableLength > 4 * 1024 * 1024 && !out.destroyed) await new Promise((r) => setTimeout(r, 1));
      if (out.destroyed) return;
    }
    dec.push(last ?? new Uint8Array(0), true);
  })().catch((e: unknown) => out.destroy(new Error(`zstd: ${(e as Error)?.message ?? String(e)}`)));
  return out;
}

export interface Decompressed {
  data: Readable; // the tar bytes
  compression: 'none' | 'gzip' | 'zstd';
}

/**
 * The tar inside an input stream: plain, gzip or zstd, told by the magic
 * bytes (never by a name or a media type, which may lie). xz and bzip2 are
 * refused with a hint.
 */
export async function decompressed(input: NodeJS.ReadableStream | AsyncIterable<unknown>): Promise<Decompressed> {
  const it = (input as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLen = 0;
  while (headLen < 6) {
    const r = await it.next();
    if (r.done) break;
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as string);
    head.push(b);
    headLen += b.length;
  }
  const h = Buffer.concat(head);
  if (h.length === 0) throw new PaeneError('hostile-archive', 'the archive is empty');
  for (const [magic, what] of MAGICS)
    if (magic.every((v, i) => h[i] === v))
      throw new PaeneError(
        'invalid-argument',
        `the archive is ${what}-compressed; only plain tar, gzip and zstd are read (decompress it first and pipe it in)`,
      );
  const src = Readable.from(peeked([h], it), { objectMode: false });
  if (h[0] === 0x1f && h[1] === 0x8b) {
    const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 }); // bigger chunks: fewer writes per file
    pipeline(src, gunzip, () => undefined);
    return { data: gunzip, compression: 'gzip' };
  }
  if (h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd) return { data: zstdStream(src), compression: 'zstd' };
  return { data: src, compression: 'none' };
}

/** Unpack a tar (gzip or zstd detected by its magic bytes) into o.rootfs. */
export async function unpackTar(input: NodeJS.ReadableStream, o: UnpackOptions): Promise<UnpackResult> {
  const un = new Unpacker(o);
  await extractInto(un, await decompressed(input));
  return un.finish();
}

/**
 * Feed one tar's entries to the unpacker, one at a time (the next header is
 * read only when the previous entry is on disk: memory stays flat). `onTar`
 * sees every byte of the tar stream (to hash a layer's diff id).
 */
export async function extractInto(
  un: Unpacker,
  input: Decompressed,
  onTar?: (chunk: Buffer) => void,
  onHeader?: (header: TarHeader) => void,
): Promise<void> {
  const { data, compression } = input;
  const gz = compression !== 'none';
  const startEntries = un.entryCount;
  const extract = tar.extract();
  await new Promise<void>((resolve, reject) => {
    let done = false;
    const fail = (e: unknown): void => {
      if (done) return;
      done = true;
      if (!isPaeneError(e)) {
        const where = un.entryCount === startEntries ? ' at its first header' : ` after entry ${showName(un.lastEntry)}`;
        const msg = (e as Error)?.message ?? String(e);
        e = new PaeneError(
          'hostile-archive',
          `corrupt or truncated archive${where}: ${gz && /incorrect header|invalid|unexpected end of file/i.test(msg) ? `${compression}: ` : ''}${msg}`,
          { cause: e },
        );
      }
      un.aborted = true;
      extract.destroy();
      data.destroy();
      // Let the entry being handled settle first, so nothing it would still
      // add to the store lands after the caller has cleaned up.
      void inflight.then(() => reject(e));
    };
    let inflight: Promise<void> = Promise.resolve();
    extract.on('entry', (header, stream, next) => {
      // Errors reach us through extract or the reader; do not let a late one go unhandled.
      stream.on('error', () => undefined);
      if (done) {
        stream.resume();
        return;
      }
      try {
        onHeader?.(header as TarHeader);
      } catch (e) {
        stream.resume();
        fail(e);
        return;
      }
      inflight = un.entry(header as TarHeader, stream).then(
        () => next(),
        (e) => {
          stream.resume();
          fail(e);
        },
      );
    });
    extract.on('error', fail);
    extract.on('finish', () => {
      // tar-stream finishes as soon as its input is consumed, which can be
      // before the handler of a last data-less entry is done: wait for it
      // (its failure still rejects through fail()).
      void inflight.then(() => {
        if (done) return;
        done = true;
        resolve();
      });
    });
    (async () => {
      for await (const chunk of data) {
        if (done) return;
        onTar?.(chunk as Buffer);
        if (!extract.write(chunk as Buffer)) await drainedOrClosed(extract);
      }
      if (!done) extract.end(undefined);
    })().catch(fail);
  });
  if (un.entryCount === startEntries && !un.layered) throw new PaeneError('hostile-archive', 'the archive has no entries');
}
