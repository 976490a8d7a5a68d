// Image archives from the OCI world, read into one tree of the store:
// an OCI image layout (a directory, or a tar of one: oci-layout, index.json,
// blobs/sha256/…) or a docker-archive (`docker save`: manifest.json plus
// layer tars), plain, gzip or zstd; a flat root-filesystem tar still works.
// The kind is told by content: the first entry's name.
//
// An archive tar's files are spooled into the staging directory first (its
// blobs may come in any order, and layers must be applied in order); that
// costs disk, never memory. Every blob is checked against its descriptor
// (sha256 and size) and every layer's uncompressed stream against the
// config's diff_ids; a mismatch aborts the import and the store's cleanup
// removes all of it. The layers go through the same hostile-safe Unpacker as
// a flat tar, with the OCI whiteout rules on top.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { PaeneError, isPaeneError } from '../model/errors.js';
import {
  type Descriptor,
  type ImageConfig,
  type Platform,
  MT,
  digestHex,
  layerCompression,
  parseDockerManifest,
  parseImageConfig,
  parseIndex,
  parseManifest,
  platformMatches,
  selectDockerImage,
  selectManifest,
  showPlatform,
} from './ociplan.js';
import { normalizeEntryName, showName } from './entryname.js';
import { type TarIndex, aliasTarget, indexTar } from './tarindex.js';
import {
  type Decompressed,
  type UnpackOptions,
  type UnpackResult,
  Unpacker,
  decompressed,
  drainedOrClosed,
  extractInto,
} from './importer.js';

export type ArchiveFormat = 'tar' | 'oci' | 'docker';

export interface LayerRecord {
  digest: string; // of the blob as stored in the archive
  size: number;
  diffId: string; // of the uncompressed tar
  compression: 'none' | 'gzip' | 'zstd';
}

export interface ImageUnpackResult extends UnpackResult {
  format: ArchiveFormat;
  config?: ImageConfig;
  layers?: LayerRecord[];
}

export interface ImageUnpackOptions extends UnpackOptions {
  spoolDir: string; // in the staging dir: an archive tar's files while it is read
  platform: Platform;
  platformExplicit: boolean;
  tag?: string; // which named image of an archive holding several
}

const JSON_MAX = 4 * 1024 * 1024; // index, manifests, configs: small documents
const PEEK_MAX = 1024 * 1024;

// ------------------------------------------------------------ telling the kind

/**
 * The name of a tar's first entry other than its root directory, from its
 * raw bytes (PAX `path`, GNU long names and global headers honoured); 'more' while buf is too short;
 * undefined when the bytes are not a tar we can read this way.
 */
export function firstEntryName(buf: Buffer): string | 'more' | undefined {
  let off = 0;
  let longName: string | undefined;
  for (;;) {
    if (buf.length < off + 512) return 'more';
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) return '';
    const sizeField = h.subarray(124, 136);
    if (sizeField[0] & 0x80) return undefined; // base-256: not a metadata header
    const size = parseInt(sizeField.toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    if (!Number.isFinite(size)) return undefined;
    const type = String.fromCharCode(h[156]);
    const cstr = (b: Buffer): string => {
      const z = b.indexOf(0);
      return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
    };
    if (type === 'x' || type === 'g' || type === 'L') {
      const end = off + 512 + Math.ceil(size / 512) * 512;
      if (buf.length < end) return end > PEEK_MAX ? undefined : 'more';
      const data = buf.subarray(off + 512, off + 512 + size);
      if (type === 'L') longName = cstr(data);
      if (type === 'x') {
        const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
        if (m) longName = m[1];
      }
      off = end;
      continue;
    }
    const plain = cstr(h.subarray(0, 100));
    const prefix = h.subarray(257, 262).toString('latin1') === 'ustar' ? cstr(h.subarray(345, 500)) : '';
    const name = longName ?? (prefix ? `${prefix}/${plain}` : plain);
    // `tar -C layout .` starts with the root itself: look past it.
    if (type === '5' && /^(\.\/?)*$/.test(name)) {
      off += 512;
      longName = undefined;
      continue;
    }
    return name;
  }
}

/** Names that only an image archive starts with (a root filesystem starts with ./ or a top directory). */
export function isImageArchiveName(raw: string): boolean {
  const n = raw.replace(/^(\.\/)+/, '');
  return (
    ['oci-layout', 'index.json', 'manifest.json', 'repositories'].includes(n) ||
    /^blobs(\/|$)/.test(n) ||
    /^[0-9a-f]{64}(\/|\.json$|\.tar$|$)/.test(n)
  );
}

async function* chained(first: Buffer[], rest: AsyncIterator<unknown>): AsyncGenerator<Buffer> {
  for (const b of first) yield b;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value as Buffer;
  }
}

// ------------------------------------------------------------ the archive's files

interface ArchiveFile {
  path: string; // on disk
  start?: number; // where its data starts in path (a member of an indexed tar); 0 if absent
  size: number;
  sha256?: string; // known when spooled
}

/** The bytes of a (small) archive file. */
function readWhole(f: ArchiveFile): Buffer {
  if (f.start === undefined) return fs.readFileSync(f.path);
  const fd = fs.openSync(f.path, 'r');
  try {
    const b = Buffer.alloc(f.size);
    if (fs.readSync(fd, b, 0, f.size, f.start) !== f.size) throw new PaeneError('hostile-archive', `the archive ends inside ${f.path}`);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** A stream of an archive file's bytes. */
function readStream(f: ArchiveFile): Readable {
  if (f.size === 0) return Readable.from([]);
  const start = f.start ?? 0;
  return fs.createReadStream(f.path, { start, end: start + f.size - 1, highWaterMark: 1024 * 1024 });
}

/** Where an image archive's files are: a directory (an OCI layout on disk) or a spooled tar. */
interface ArchiveFiles {
  has(rel: string): boolean;
  file(rel: string): ArchiveFile | undefined;
}

class DirFiles implements ArchiveFiles {
  constructor(private readonly dir: string) {}
  has(rel: string): boolean {
    return this.file(rel) !== undefined;
  }
  /** Only regular files reached through real directories: a layout must not point the import at host files. */
  file(rel: string): ArchiveFile | undefined {
    let cur = this.dir;
    const parts = rel.split('/');
    for (const [i, p] of parts.entries()) {
      cur = path.join(cur, p);
      const st = fs.lstatSync(cur, { throwIfNoEntry: false });
      if (st === undefined) return undefined;
      if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile())
        throw new PaeneError(
          'hostile-archive',
          `${showName(rel)} in the layout is not a ${i < parts.length - 1 ? 'directory' : 'regular file'} (symlinks are not followed)`,
        );
      if (i === parts.length - 1) return { path: cur, size: st.size };
    }
    return undefined;
  }
}

/** An archive's files by name: spooled copies, or members of an indexed tar. */
class SpooledFiles implements ArchiveFiles {
  readonly files = new Map<string, ArchiveFile>();
  readonly aliases = new Map<string, string>(); // symlinks and hard links between the archive's files
  has(rel: string): boolean {
    return this.file(rel) !== undefined;
  }
  file(rel: string): ArchiveFile | undefined {
    let cur = rel;
    for (let i = 0; i < 8; i++) {
      const f = this.files.get(cur);
      if (f) return f;
      const a = this.aliases.get(cur);
      if (a === undefined) return undefined;
      cur = a;
    }
    return undefined;
  }
}

/** Spool the regular files of an image archive tar into dir, hashing each on the way. */
async function spoolArchive(input: Decompressed, dir: string, o: UnpackOptions): Promise<SpooledFiles> {
  const files = new SpooledFiles();
  const extract = tar.extract();
  let n = 0;
  let bytes = 0;
  const it = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      let rel: string;
      try {
        rel = normalizeEntryName(h.name);
      } catch (e) {
        entry.resume();
        throw e;
      }
      if (++n > o.maxFiles) throw new PaeneError('limit-exceeded', `the image archive has more than ${o.maxFiles} entries (--max-files)`);
      if (h.type === 'file' || h.type === 'contiguous-file') {
        if (bytes + (h.size ?? 0) > o.maxBytes)
          throw new PaeneError('limit-exceeded', `the image archive holds more than ${o.maxBytes} bytes (--max-bytes)`);
        const p = path.join(dir, `f${n}`);
        const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        const hash = createHash('sha256');
        let size = 0;
        try {
          for await (const chunk of entry) {
            const b = chunk as Buffer;
            hash.update(b);
            fs.writeSync(fd, b);
            size += b.length;
            bytes += b.length;
          }
        } finally {
          fs.closeSync(fd);
        }
        files.files.set(rel, { path: p, size, sha256: hash.digest('hex') });
        files.aliases.delete(rel);
        o.onProgress?.(bytes, n);
        continue;
      }
      entry.resume();
      const target = aliasTarget(h.type === 'symlink' || h.type === 'link' ? h.type : 'other', rel, h.linkname);
      if (target !== undefined) files.aliases.set(rel, target);
    }
  })();
  let fed: Promise<void> | undefined;
  try {
    fed = (async () => {
      for await (const chunk of input.data) {
        if (extract.destroyed) return;
        if (!extract.write(chunk as Buffer)) await drainedOrClosed(extract);
      }
      extract.end(undefined);
    })();
    await Promise.all([it, fed]);
  } catch (e) {
    extract.destroy();
    input.data.destroy();
    await Promise.allSettled([it, fed]);
    if (isPaeneError(e)) throw e;
    throw new PaeneError('hostile-archive', `corrupt or truncated image archive: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
  return files;
}

// ------------------------------------------------------------ reading an image

function readJson(files: ArchiveFiles, rel: string, what: string, desc?: Descriptor): unknown {
  const f = files.file(rel);
  if (!f) throw new PaeneError('hostile-archive', `the archive has no ${what} (${rel})`);
  if (f.size > JSON_MAX)
    throw new PaeneError('hostile-archive', `${what} (${rel}) is ${f.size} bytes; refusing a document over ${JSON_MAX}`);
  const buf = readWhole(f);
  if (desc) checkBlob(desc, buf.length, createHash('sha256').update(buf).digest('hex'), what);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new PaeneError('hostile-archive', `${what} (${rel}) is not valid JSON: ${(e as Error).message}`);
  }
}

function checkBlob(desc: Descriptor, size: number, sha256: string, what: string): void {
  if (size !== desc.size)
    throw new PaeneError(
      'hostile-archive',
      `${what} ${desc.digest}: size mismatch (descriptor says ${desc.size} bytes, the blob has ${size})`,
    );
  if (`sha256:${sha256}` !== desc.digest)
    throw new PaeneError('hostile-archive', `${what}: digest mismatch (descriptor says ${desc.digest}, the blob is sha256:${sha256})`);
}

const blobPath = (digest: string, where: string): string => `blobs/sha256/${digestHex(digest, where)}`;

async function* hashing(src: AsyncIterable<unknown>, hash: ReturnType<typeof createHash>, count: { n: number }): AsyncGenerator<Buffer> {
  for await (const c of src) {
    const b = c as Buffer;
    hash.update(b);
    count.n += b.length;
    yield b;
  }
}

interface LayerRef {
  rel: string; // inside the archive
  desc?: Descriptor; // OCI: digest and size of the blob
  diffId: string;
  mediaType?: string;
}

/** Apply one layer over the tree, checking its blob and its uncompressed digest. */
async function applyLayer(un: Unpacker, files: ArchiveFiles, ref: LayerRef, i: number): Promise<LayerRecord> {
  const what = `layer ${i + 1} (${ref.rel})`;
  const f = files.file(ref.rel);
  if (!f) throw new PaeneError('hostile-archive', `the archive has no ${what}`);
  // A spooled blob was hashed on the way in: a wrong one fails before it is applied.
  if (ref.desc && f.sha256 !== undefined) checkBlob(ref.desc, f.size, f.sha256, what);
  // Otherwise (a layout directory, an archive file read in place) its size is
  // checked now, and it is hashed while it is read, checked before the import is published.
  if (ref.desc && f.size !== ref.desc.size) checkBlob(ref.desc, f.size, '', what);
  const known = f.sha256 !== undefined;
  const blobHash = createHash('sha256');
  const blobCount = { n: 0 };
  const diffHash = createHash('sha256');
  const raw = readStream(f);
  const dec = await decompressed(known ? raw : hashing(raw, blobHash, blobCount));
  if (ref.mediaType !== undefined) {
    const said = layerCompression(ref.mediaType, what);
    if (said !== dec.compression) un.warn(`${what}: media type says ${said}, the bytes are ${dec.compression}; read as ${dec.compression}`);
  }
  un.beginLayer();
  try {
    await extractInto(un, dec, (c) => diffHash.update(c));
  } catch (e) {
    // say which layer: the same entry name may be in several
    if (isPaeneError(e)) throw new PaeneError(e.code, `${what}: ${e.message}`, { cause: e });
    throw e;
  }
  const blobSha = known ? f.sha256! : blobHash.digest('hex');
  const blobSize = known ? f.size : blobCount.n;
  if (ref.desc) checkBlob(ref.desc, blobSize, blobSha, what);
  const diff = `sha256:${diffHash.digest('hex')}`;
  if (diff !== ref.diffId)
    throw new PaeneError(
      'hostile-archive',
      `${what}: digest mismatch of the uncompressed layer (the config's diff_id is ${ref.diffId}, the layer is ${diff})`,
    );
  return { digest: ref.desc?.digest ?? `sha256:${blobSha}`, size: blobSize, diffId: diff, compression: dec.compression };
}

function resolveOci(files: ArchiveFiles, o: ImageUnpackOptions): { manifest: ReturnType<typeof parseManifest>; config: ImageConfig } {
  const layout = readJson(files, 'oci-layout', 'oci-layout file') as { imageLayoutVersion?: unknown } | null;
  if (typeof layout?.imageLayoutVersion !== 'string') throw new PaeneError('hostile-archive', 'oci-layout: no imageLayoutVersion');
  let descs = parseIndex(readJson(files, 'index.json', 'index.json'));
  let where = 'index.json';
  for (let depth = 0; ; depth++) {
    const d = selectManifest(descs, o.platform, o.platformExplicit, where, depth === 0 ? o.tag : undefined);
    if (d.mediaType !== MT.index && d.mediaType !== MT.dockerList) {
      const manifest = parseManifest(readJson(files, blobPath(d.digest, where), `manifest ${d.digest}`, d), `manifest ${d.digest}`);
      const config = parseImageConfig(readJson(files, blobPath(manifest.config.digest, 'config'), 'image config', manifest.config));
      return { manifest, config };
    }
    if (depth >= 4) throw new PaeneError('hostile-archive', `${where}: image indexes nested deeper than 4`);
    where = `index ${d.digest}`;
    descs = parseIndex(readJson(files, blobPath(d.digest, where), where, d), where);
  }
}

function checkPlatform(config: ImageConfig, o: ImageUnpackOptions): void {
  const have = config.platform;
  if (have.architecture === '' || platformMatches(have, o.platform, o.platformExplicit && o.platform.variant !== undefined)) return;
  if (o.platformExplicit) throw new PaeneError('not-found', `the image is for ${showPlatform(have)}, not ${showPlatform(o.platform)}`);
  o.onWarning?.(`the image is for ${showPlatform(have)}; this host is ${showPlatform(o.platform)} (its programs may not run here)`);
}

async function unpackLayered(files: ArchiveFiles, o: ImageUnpackOptions): Promise<ImageUnpackResult> {
  let format: ArchiveFormat;
  let config: ImageConfig;
  let refs: LayerRef[];
  if (files.has('index.json') && files.has('oci-layout')) {
    format = 'oci';
    const r = resolveOci(files, o);
    config = r.config;
    if (r.manifest.layers.length !== config.diffIds.length)
      throw new PaeneError(
        'hostile-archive',
        `the manifest lists ${r.manifest.layers.length} layers, the config ${config.diffIds.length} diff_ids`,
      );
    refs = r.manifest.layers.map((d, i) => ({
      rel: blobPath(d.digest, `layers[${i}]`),
      desc: d,
      diffId: config.diffIds[i],
      mediaType: d.mediaType,
    }));
  } else if (files.has('manifest.json')) {
    format = 'docker';
    const img = selectDockerImage(parseDockerManifest(readJson(files, 'manifest.json', 'manifest.json')), o.tag);
    const name = (p: string, what: string): string => normalizeEntryName(p, `manifest.json: ${what}`);
    const cfgRel = name(img.config, 'Config');
    const hex = /^(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(cfgRel)?.[1];
    const cfgFile = files.file(cfgRel);
    const cfgDesc = hex && cfgFile ? { mediaType: MT.config, digest: `sha256:${hex}`, size: cfgFile.size } : undefined;
    config = parseImageConfig(readJson(files, cfgRel, 'image config', cfgDesc));
    if (img.layers.length !== config.diffIds.length)
      throw new PaeneError(
        'hostile-archive',
        `manifest.json lists ${img.layers.length} layers, the config ${config.diffIds.length} diff_ids`,
      );
    refs = img.layers.map((l, i) => {
      const rel = name(l, `Layers[${i}]`);
      const f = files.file(rel);
      const blobHex = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(rel)?.[1];
      // A layer stored as a blob is named by its digest: hold it to that too.
      const desc = blobHex && f ? { mediaType: '', digest: `sha256:${blobHex}`, size: f.size } : undefined;
      return { rel, desc, diffId: config.diffIds[i] };
    });
  } else {
    throw new PaeneError(
      'hostile-archive',
      'not an image archive: neither an OCI layout (oci-layout + index.json) nor a docker-archive (manifest.json)',
    );
  }
  checkPlatform(config, o);
  const un = new Unpacker(o);
  const layers: LayerRecord[] = [];
  for (const [i, ref] of refs.entries()) layers.push(await applyLayer(un, files, ref, i));
  if (layers.length === 0) un.beginLayer(); // an image of no layers is an empty root
  return { ...un.finish(), format, config, layers };
}

/** Import an OCI image layout directory. */
export async function unpackLayoutDir(dir: string, o: ImageUnpackOptions): Promise<ImageUnpackResult> {
  const files = new DirFiles(path.resolve(dir));
  if (!files.has('oci-layout') && !files.has('manifest.json'))
    throw new PaeneError('invalid-argument', `${dir} is a directory but not an OCI image layout (no oci-layout file)`);
  return unpackLayered(files, o);
}

/** Import an archive stream: a flat root filesystem, or an OCI layout / docker-archive tar. */
export async function unpackImage(input: NodeJS.ReadableStream, o: ImageUnpackOptions): Promise<ImageUnpackResult> {
  const dec = await decompressed(input);
  const it = (dec.data as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let first: string | 'more' | undefined = 'more';
  let len = 0;
  while (first === 'more' && len < PEEK_MAX) {
    let r: IteratorResult<unknown>;
    try {
      r = await it.next();
    } catch (e) {
      const msg = (e as Error)?.message ?? String(e);
      throw new PaeneError(
        'hostile-archive',
        `corrupt or truncated archive at its first header: ${dec.compression === 'none' ? '' : `${dec.compression}: `}${msg}`,
        { cause: e },
      );
    }
    if (r.done) break;
    head.push(r.value as Buffer);
    len += (r.value as Buffer).length;
    first = firstEntryName(Buffer.concat(head));
  }
  const data = Readable.from(chained(head, it), { objectMode: false });
  const rest: Decompressed = { data, compression: dec.compression };
  if (typeof first === 'string' && first !== 'more' && isImageArchiveName(first)) {
    fs.mkdirSync(o.spoolDir, { mode: 0o700 });
    const files = await spoolArchive(rest, o.spoolDir, o);
    try {
      return await unpackLayered(files, o);
    } finally {
      fs.rmSync(o.spoolDir, { recursive: true, force: true });
    }
  }
  const un = new Unpacker(o);
  await extractInto(un, rest, undefined, (h) => refuseAmbiguous(h.name ?? '', h.type));
  return { ...un.finish(), format: 'tar' };
}

/**
 * A streamed tar read as a root filesystem that turns out to hold a top-level
 * manifest.json, index.json or oci-layout file: an image archive whose members
 * come in another order (the formats leave names and order free), or a root
 * filesystem that looks like one. Either way it is refused, never imported as
 * a root holding those files (issue 24). A file is told by its whole index first
 * (unpackImageFile), so this is left to archives read from a pipe or compressed.
 */
function refuseAmbiguous(raw: string, type: string | null | undefined): void {
  if (type !== 'file' && type !== 'contiguous-file' && type !== undefined && type !== null) return;
  const n = raw.replace(/^(\.\/)+/, '');
  if (n === 'manifest.json' || n === 'index.json' || n === 'oci-layout')
    throw new PaeneError(
      'hostile-archive',
      `ambiguous archive: it has a top-level ${n} after other entries, so it may be an image archive (docker save, OCI layout) rather than a root filesystem; ` +
        'paene will not guess: import it as an uncompressed file (read by its index), or repack it with the image files first',
    );
}

/** Whether an uncompressed tar file is an image archive by its whole index: a top-level manifest.json or index.json anywhere. */
function indexedImage(file: string, maxFiles: number): TarIndex | undefined {
  let idx: TarIndex;
  try {
    idx = indexTar(file, maxFiles);
  } catch {
    return undefined; // the streaming import says what is wrong with it
  }
  return idx.members.has('manifest.json') || idx.members.has('index.json') ? idx : undefined;
}

/**
 * Import an archive file. An uncompressed OCI layout or docker-archive tar is
 * read in place through an index of its headers (no copy into staging);
 * anything else goes through unpackImage as a stream.
 */
export async function unpackImageFile(file: string, o: ImageUnpackOptions): Promise<ImageUnpackResult> {
  const head = Buffer.alloc(PEEK_MAX);
  const fd = fs.openSync(file, 'r');
  let n: number;
  try {
    n = fs.readSync(fd, head, 0, PEEK_MAX, 0);
  } finally {
    fs.closeSync(fd);
  }
  const h = head.subarray(0, n);
  const compressed = (h[0] === 0x1f && h[1] === 0x8b) || (h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd);
  const first = compressed ? undefined : firstEntryName(h);
  const byName = typeof first === 'string' && first !== 'more' && isImageArchiveName(first);
  // Not told by its first entry: an image archive may still name its members freely (l0/layer.tar, cfg.json).
  const found = !byName && !compressed ? indexedImage(file, o.maxFiles) : undefined;
  if (!byName && found === undefined) return unpackImage(fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), o);
  const idx = found ?? indexTar(file, o.maxFiles);
  const files = new SpooledFiles();
  for (const [rel, m] of idx.members) files.files.set(rel, { path: file, start: m.start, size: m.size });
  for (const [rel, t] of idx.aliases) files.aliases.set(rel, t);
  return unpackLayered(files, o);
}
