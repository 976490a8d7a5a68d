// The image store: content-addressed file objects shared by hard links across
// every image (vserver's unification, "vhashify"), one tree per image.
//
//   IMAGES/lock                          writer lock (pid inside)
//   IMAGES/objects/ab/<sha256>.<mode>.<uid>.<gid>.<mtime>
//                                        one inode per content+metadata
//   IMAGES/trees/NAME/rootfs/            the image's root; regular files are
//                                        hard links to objects; the overlay lowerdir
//   IMAGES/trees/NAME/manifest.json
//   IMAGES/staging/<pid>-XXXX/           an import in progress (renamed into trees/)
//
// Nothing writes into a published tree: guests write to their overlay upper
// layer. objects/, trees/ and staging/ are 0700 so host users cannot reach an
// image's setuid binaries through the store.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { PaeneError, errnoOf } from '../model/errors.js';
import { fsyncDir, writeJsonAtomic } from '../kernel/atomic.js';
import { type ImageConfig, type ImageRunConfig, hostPlatform, parsePlatform } from './ociplan.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, forceRemoveTree } from './importer.js';
import {
  type ArchiveFormat,
  type ImageUnpackOptions,
  type ImageUnpackResult,
  type LayerRecord,
  unpackImage,
  unpackImageFile,
  unpackLayoutDir,
} from './oci.js';
import { acquireStoreLock, acquireStoreLockSync, type StoreLock } from './lock.js';
import { type ExportFormat, type StoredImageConfig, exportImage } from './ociexport.js';

export type { StoredImageConfig } from './ociexport.js';
import { packTree, writeTreeTar } from './walk.js';

export interface ImageInfo {
  name: string;
  rootfs: string;
  files: number;
  logicalBytes: number;
  diskBytes: number;
  created: string;
  source: string;
  /** what it was imported from: a flat tar, or an OCI / docker image (with its config) */
  format: ArchiveFormat;
  config?: StoredImageConfig;
  /** set by an import: what the store grew by (its new objects, directories and symlinks), not the image's share */
  addedBytes?: number;
}

export interface ImportOptions {
  /** os/arch[/variant] to pick from a multi-platform index (default: the host's) */
  platform?: string;
  /** the image to take from an archive that holds several (a tag or OCI ref name) */
  tag?: string;
  maxFiles?: number;
  maxBytes?: number;
  allowDevices?: boolean;
  onProgress?: (bytes: number, files: number) => void;
  onWarning?: (msg: string) => void;
  source?: string;
}

export interface SharedFile {
  path: string; // one path of it, inside the first image that has it
  bytes: number;
  links: number; // names in all trees that are this inode
  images: string[];
}

export interface StoreUsage {
  images: number;
  objects: number;
  orphanObjects: number; // not used by any image (left by a crash; removed by gc)
  logicalBytes: number; // file data as if every image had private copies
  uniqueBytes: number; // file data actually stored (each object once)
  physicalBytes: number; // st_blocks of every distinct inode in the store
  sharingRatio: number; // logicalBytes / uniqueBytes
  perImage: Array<{ name: string; files: number; logicalBytes: number; diskBytes: number; exclusiveBytes: number }>;
  mostShared: SharedFile[];
}

interface Manifest {
  format: 1;
  name: string;
  created: string;
  source: string;
  files: number;
  regularFiles: number;
  logicalBytes: number;
  archive?: ArchiveFormat; // absent: a flat tar
  image?: StoredImageConfig;
}

const NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export function validateImageName(name: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name))
    throw new PaeneError(
      'invalid-argument',
      `invalid image name ${JSON.stringify(name)}: use 1-63 characters a-z 0-9 _ . -, starting with a letter or digit`,
    );
  return name;
}

export const DEFAULT_IMAGE = 'base';

export class ImageStore {
  readonly dir: string;
  constructor(imagesDir: string) {
    this.dir = path.resolve(imagesDir);
  }

  get objectsDir(): string {
    return path.join(this.dir, 'objects');
  }
  get treesDir(): string {
    return path.join(this.dir, 'trees');
  }
  get stagingDir(): string {
    return path.join(this.dir, 'staging');
  }
  private get lockFile(): string {
    return path.join(this.dir, 'lock');
  }
  private treeDir(name: string): string {
    return path.join(this.treesDir, name);
  }

  /** The rootfs path of an image, without computing its usage (cheap, for the runtime). */
  rootfsOf(name: string): string {
    validateImageName(name);
    if (!this.has(name)) this.notFound(name);
    return path.join(this.treeDir(name), 'rootfs');
  }

  has(name: string): boolean {
    if (!NAME_RE.test(name)) return false;
    return fs.existsSync(path.join(this.treeDir(name), 'manifest.json'));
  }

  private notFound(name: string): never {
    const known = this.names();
    throw new PaeneError(
      'not-found',
      `no image ${JSON.stringify(name)}; known images: ${known.length ? known.join(', ') : '(none; build one with `paene image build`)'}`,
    );
  }

  private names(): string[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.treesDir);
    } catch (e) {
      // none yet is an empty store; a store it cannot read (not root, not a directory) is an error, never "no images"
      if (errnoOf(e) === 'ENOENT') return [];
      throw e;
    }
    return entries.filter((n) => this.has(n)).sort();
  }

  private manifest(name: string): Manifest {
    return JSON.parse(fs.readFileSync(path.join(this.treeDir(name), 'manifest.json'), 'utf8')) as Manifest;
  }

  get(name: string): ImageInfo {
    validateImageName(name);
    if (!this.has(name)) this.notFound(name);
    const m = this.manifest(name);
    const rootfs = path.join(this.treeDir(name), 'rootfs');
    return {
      name,
      rootfs,
      files: m.files,
      logicalBytes: m.logicalBytes,
      diskBytes: amortizedBytes(rootfs),
      created: m.created,
      source: m.source,
      format: m.archive ?? 'tar',
      ...(m.image ? { config: m.image } : {}),
    };
  }

  /** How the image says to run it (undefined for a flat tar); cheap, for the runtime. */
  runConfigOf(name: string): ImageRunConfig | undefined {
    validateImageName(name);
    if (!this.has(name)) this.notFound(name);
    return this.manifest(name).image?.run;
  }

  /**
   * A small text file of an image's tree (e.g. etc/passwd to resolve a user
   * name), or undefined: never through a symlink, never over 1 MiB.
   */
  readTreeFile(name: string, rel: string): string | undefined {
    let cur = this.rootfsOf(name);
    const parts = rel.split('/');
    for (const [i, p] of parts.entries()) {
      cur = path.join(cur, p);
      const st = fs.lstatSync(cur, { throwIfNoEntry: false });
      if (st === undefined || (i < parts.length - 1 ? !st.isDirectory() : !st.isFile() || st.size > 1024 * 1024)) return undefined;
    }
    return fs.readFileSync(cur, 'utf8');
  }

  list(): ImageInfo[] {
    return this.names().map((n) => this.get(n));
  }

  private ensureDirs(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const d of [this.objectsDir, this.treesDir, this.stagingDir]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  /** Under the lock: clear imports a crashed writer left behind, then collect their objects. */
  private recover(): void {
    // We hold the lock, so any staging dir is an abandoned import or removal.
    let stale = 0;
    for (const n of fs.readdirSync(this.stagingDir)) {
      forceRemoveTree(path.join(this.stagingDir, n));
      stale++;
    }
    if (stale > 0) this.gcLocked();
  }

  /**
   * Import an archive stream: a flat root-filesystem tar, an OCI image
   * layout tar or a docker-archive (plain, gzip or zstd), told by content.
   */
  async importTar(input: NodeJS.ReadableStream, name: string, opts: ImportOptions = {}): Promise<ImageInfo> {
    return this.importWith(name, opts, (uo) => unpackImage(input, uo));
  }

  /** Import an archive file: as importTar, but an uncompressed image archive is read in place (src/image/tarindex.ts). */
  async importFile(file: string, name: string, opts: ImportOptions = {}): Promise<ImageInfo> {
    return this.importWith(name, { ...opts, source: opts.source ?? `file:${path.resolve(file)}` }, (uo) => unpackImageFile(file, uo));
  }

  /** Import an OCI image layout directory (what `skopeo copy … oci:DIR` writes). */
  async importLayout(dir: string, name: string, opts: ImportOptions = {}): Promise<ImageInfo> {
    return this.importWith(name, { ...opts, source: opts.source ?? `oci:${path.resolve(dir)}` }, (uo) => unpackLayoutDir(dir, uo));
  }

  private async importWith(
    name: string,
    opts: ImportOptions,
    unpack: (o: ImageUnpackOptions) => Promise<ImageUnpackResult>,
  ): Promise<ImageInfo> {
    validateImageName(name);
    if (this.has(name)) this.exists(name);
    const maxFiles = opts.maxFiles ?? DEFAULT_MAX_FILES;
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!(Number.isInteger(maxFiles) && maxFiles > 0)) throw new PaeneError('invalid-argument', `invalid max files ${maxFiles}`);
    if (!(Number.isFinite(maxBytes) && maxBytes >= 0)) throw new PaeneError('invalid-argument', `invalid max bytes ${maxBytes}`);
    const platform = opts.platform === undefined ? hostPlatform(process.arch) : parsePlatform(opts.platform);
    this.ensureDirs();
    const lock: StoreLock = await acquireStoreLock(this.lockFile);
    let added = 0;
    try {
      this.recover();
      if (this.has(name)) this.exists(name);
      const staging = fs.mkdtempSync(path.join(this.stagingDir, `${process.pid}-`));
      const rootfs = path.join(staging, 'rootfs');
      const tmpDir = path.join(staging, 'tmp');
      fs.mkdirSync(rootfs, { mode: 0o700 });
      fs.mkdirSync(tmpDir, { mode: 0o700 });
      const newObjects: string[] = [];
      try {
        const res = await unpack({
          rootfs,
          tmpDir,
          spoolDir: path.join(staging, 'archive'),
          objectsDir: this.objectsDir,
          newObjects,
          maxFiles,
          maxBytes,
          allowDevices: opts.allowDevices ?? false,
          onProgress: opts.onProgress,
          onWarning: opts.onWarning,
          platform,
          platformExplicit: opts.platform !== undefined,
          ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
        });
        fs.rmSync(tmpDir, { recursive: true, force: true });
        const manifest: Manifest = {
          format: 1,
          name,
          created: new Date().toISOString(),
          source: opts.source ?? 'tar',
          files: res.entries,
          regularFiles: res.regularFiles,
          logicalBytes: res.logicalBytes,
          ...(res.format !== 'tar' ? { archive: res.format } : {}),
          ...(res.config ? { image: storedConfig(res.config, res.layers ?? []) } : {}),
        };
        writeJsonAtomic(path.join(staging, 'manifest.json'), manifest);
        // One syncfs for the whole import instead of an fsync per object.
        spawnSync('sync', ['-f', staging], { stdio: 'ignore' });
        if (this.has(name)) this.exists(name);
        fs.renameSync(staging, this.treeDir(name));
        fsyncDir(this.treesDir);
        added = grownBytes(path.join(this.treeDir(name), 'rootfs'), newObjects);
      } catch (e) {
        forceRemoveTree(staging);
        // Objects first, then the fan-out dirs this import created (if empty now).
        for (const obj of newObjects.filter((o) => !o.endsWith('/'))) {
          const st = fs.lstatSync(obj, { throwIfNoEntry: false });
          if (st !== undefined && st.nlink <= 1) fs.rmSync(obj, { force: true });
        }
        for (const dir of newObjects.filter((o) => o.endsWith('/'))) {
          try {
            fs.rmdirSync(dir);
          } catch {
            /* not empty: shared with an object that stays */
          }
        }
        throw e;
      }
    } finally {
      lock.release();
    }
    return { ...this.get(name), addedBytes: added };
  }

  /** Refuses a new image of a name the store has (exit 4), for callers that check before costly work. */
  refuseExisting(name: string): never {
    this.exists(name);
  }

  private exists(name: string): never {
    throw new PaeneError('exists', `image ${JSON.stringify(name)} already exists (remove it first with \`paene image rm ${name}\`)`);
  }

  async exportTar(name: string, out: NodeJS.WritableStream): Promise<void> {
    const rootfs = this.rootfsOf(name);
    await writeTreeTar(rootfs, out);
  }

  /** Write the image as an OCI layout tar, a docker-archive or a flat tar (src/image/ociexport.ts). */
  async exportArchive(name: string, format: ExportFormat, out: NodeJS.WritableStream): Promise<void> {
    const rootfs = this.rootfsOf(name);
    const m = this.manifest(name);
    await exportImage({ name, rootfs, created: m.created, ...(m.image ? { config: m.image } : {}) }, format, out);
  }

  /** Import a directory tree (e.g. a context's merged root for `paene commit`); stays on its filesystem. */
  async importDirectory(dir: string, name: string, opts: ImportOptions = {}): Promise<ImageInfo> {
    validateImageName(name);
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory()) throw new PaeneError('not-found', `${dir} is not a directory`);
    if (this.has(name)) this.exists(name);
    return this.importPacked(
      name,
      async (pack) => {
        await packTree(dir, pack, { oneFileSystem: true, onWarning: opts.onWarning });
        pack.finalize();
      },
      { ...opts, source: opts.source ?? `dir:${path.resolve(dir)}` },
      `reading ${dir}`,
    );
  }

  /**
   * Imports a tar that `produce` writes while the import reads it (no
   * temporary copy). A failure of the producer (an unreadable source file)
   * is reported as the cause, since it explains the import's failure too.
   */
  async importPacked(name: string, produce: (pack: tar.Pack) => Promise<void>, opts: ImportOptions, what: string): Promise<ImageInfo> {
    const pack = tar.pack();
    let packErr: unknown;
    let importFailed = false;
    const packing = produce(pack).catch((e: unknown) => {
      if (!importFailed) packErr = e;
      pack.destroy(e as Error);
    });
    try {
      const info = await this.importTar(pack as unknown as NodeJS.ReadableStream, name, opts);
      await packing;
      return info;
    } catch (e) {
      importFailed = packErr === undefined;
      pack.destroy();
      await packing;
      if (packErr !== undefined) throw new PaeneError('internal', `${what}: ${(packErr as Error).message}`, { cause: packErr });
      throw e;
    }
  }

  remove(name: string, usedBy: string[]): void {
    validateImageName(name);
    if (usedBy.length > 0)
      throw new PaeneError(
        'busy',
        `image ${name} is used by context${usedBy.length > 1 ? 's' : ''} ${usedBy.join(', ')}; destroy ${usedBy.length > 1 ? 'them' : 'it'} first`,
      );
    if (!this.has(name)) this.notFound(name);
    this.ensureDirs();
    const lock = acquireStoreLockSync(this.lockFile);
    try {
      if (!this.has(name)) this.notFound(name);
      // Unpublish atomically, then delete at leisure.
      const grave = path.join(this.stagingDir, `rm-${process.pid}-${Date.now()}`);
      fs.renameSync(this.treeDir(name), grave);
      fsyncDir(this.treesDir);
      forceRemoveTree(grave);
      this.gcLocked();
    } finally {
      lock.release();
    }
  }

  /** Remove objects no image uses. Returns how many were removed. */
  gc(): number {
    this.ensureDirs();
    const lock = acquireStoreLockSync(this.lockFile);
    try {
      return this.gcLocked();
    } finally {
      lock.release();
    }
  }

  private gcLocked(): number {
    let removed = 0;
    for (const { path: p, st } of this.objects()) {
      if (st.nlink <= 1) {
        fs.rmSync(p, { force: true });
        removed++;
      }
    }
    // Every fan-out dir that is empty now, also one a killed import made before it stored an object there
    // (the lock is held: no writer is between a mkdir and its link).
    for (const f of fs.existsSync(this.objectsDir) ? fs.readdirSync(this.objectsDir) : []) {
      try {
        fs.rmdirSync(path.join(this.objectsDir, f)); // only succeeds when the fan-out dir is empty
      } catch {
        /* still holds objects */
      }
    }
    return removed;
  }

  private *objects(): Generator<{ path: string; st: fs.Stats }> {
    let fans: string[];
    try {
      fans = fs.readdirSync(this.objectsDir);
    } catch {
      return;
    }
    for (const f of fans) {
      const d = path.join(this.objectsDir, f);
      let names: string[];
      try {
        names = fs.readdirSync(d);
      } catch {
        continue;
      }
      for (const n of names) {
        const p = path.join(d, n);
        const st = fs.lstatSync(p, { throwIfNoEntry: false });
        if (st?.isFile()) yield { path: p, st };
      }
    }
  }

  du(top = 10): StoreUsage {
    interface Ino {
      bytes: number;
      blocks: number;
      nlink: number;
      links: number;
      images: Set<string>;
      path: string;
    }
    const inodes = new Map<string, Ino>();
    const images = this.names();
    const perImage: StoreUsage['perImage'] = [];
    let logicalBytes = 0;
    let treePhysical = 0;
    const imageInodes = new Map<string, Map<string, number>>();
    for (const name of images) {
      const rootfs = path.join(this.treeDir(name), 'rootfs');
      const mine = new Map<string, number>();
      let files = 0;
      let logical = 0;
      walkTree(rootfs, (rel, st) => {
        files++;
        if (!st.isFile()) {
          treePhysical += st.blocks * 512;
          return;
        }
        logical += st.size;
        const id = `${st.dev}:${st.ino}`;
        mine.set(id, (mine.get(id) ?? 0) + 1);
        let i = inodes.get(id);
        if (i === undefined) {
          i = { bytes: st.size, blocks: st.blocks * 512, nlink: st.nlink, links: 0, images: new Set(), path: `${name}:/${rel}` };
          inodes.set(id, i);
        }
        i.links++;
        i.images.add(name);
      });
      logicalBytes += logical;
      imageInodes.set(name, mine);
      perImage.push({ name, files: files - 1, logicalBytes: logical, diskBytes: 0, exclusiveBytes: 0 });
    }
    for (const p of perImage) {
      let disk = 0;
      let excl = 0;
      for (const [id, n] of imageInodes.get(p.name)!) {
        const i = inodes.get(id)!;
        disk += (i.blocks * n) / i.links;
        if (i.images.size === 1) excl += i.blocks;
      }
      p.diskBytes = Math.round(disk);
      p.exclusiveBytes = excl;
    }
    let objects = 0;
    let orphanObjects = 0;
    let uniqueBytes = 0;
    let objectPhysical = 0;
    const counted = new Set<string>();
    for (const { st } of this.objects()) {
      objects++;
      if (st.nlink <= 1) orphanObjects++;
      const id = `${st.dev}:${st.ino}`;
      counted.add(id);
      uniqueBytes += st.size;
      objectPhysical += st.blocks * 512;
    }
    // Private copies made when an inode hit the link limit are not objects.
    for (const [id, i] of inodes) {
      if (counted.has(id)) continue;
      uniqueBytes += i.bytes;
      objectPhysical += i.blocks;
    }
    const mostShared = [...inodes.values()]
      .filter((i) => i.links > 1)
      .sort((a, b) => b.bytes * (b.links - 1) - a.bytes * (a.links - 1))
      .slice(0, top)
      .map((i) => ({ path: i.path, bytes: i.bytes, links: i.links, images: [...i.images].sort() }));
    return {
      images: images.length,
      objects,
      orphanObjects,
      logicalBytes,
      uniqueBytes,
      physicalBytes: objectPhysical + treePhysical,
      sharingRatio: uniqueBytes > 0 ? logicalBytes / uniqueBytes : 1,
      perImage,
      mostShared,
    };
  }
}

function walkTree(root: string, fn: (rel: string, st: fs.Stats) => void): void {
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) return;
    fn(rel, st);
    if (st.isDirectory()) for (const n of fs.readdirSync(abs)) visit(rel === '' ? n : `${rel}/${n}`);
  };
  visit('');
}

/**
 * An image's share of the disk: each regular file's blocks divided among all
 * trees that link to it (st_nlink minus the object's own name), plus its own
 * directories and symlinks. Summed over all images this is the store's size.
 */
function amortizedBytes(rootfs: string): number {
  let total = 0;
  walkTree(rootfs, (_rel, st) => {
    if (!st.isFile()) {
      total += st.blocks * 512;
      return;
    }
    // Each name of the inode carries its share, so k names here get k shares.
    total += (st.blocks * 512) / Math.max(1, st.nlink - 1);
  });
  return Math.round(total);
}

/**
 * What an import added to the disk: the blocks of the objects it created
 * (each once, however many names link to it) and of the new tree's own
 * directories, symlinks and files that are not shared objects. `commit` says
 * this, not the image's amortized share (issue 24: 103.1MiB said, 7.7MiB grown).
 */
function grownBytes(rootfs: string, newObjects: string[]): number {
  const fresh = new Set<string>();
  for (const o of newObjects) {
    if (o.endsWith('/')) continue;
    const st = fs.lstatSync(o, { throwIfNoEntry: false });
    if (st) fresh.add(`${st.dev}:${st.ino}`);
  }
  const seen = new Set<string>();
  let total = fs.lstatSync(rootfs).blocks * 512;
  walkTree(rootfs, (_rel, st) => {
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    if (!st.isFile() || st.nlink === 1 || fresh.has(id)) total += st.blocks * 512;
  });
  return total;
}

function storedConfig(c: ImageConfig, layers: LayerRecord[]): StoredImageConfig {
  return {
    platform: c.platform,
    run: c.run,
    diffIds: c.diffIds,
    layers,
    ...(c.created ? { created: c.created } : {}),
    ...(c.author ? { author: c.author } : {}),
  };
}
