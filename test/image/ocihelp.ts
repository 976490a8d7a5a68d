// Build layered image archives for tests: OCI image layouts (tar or
// directory, with a multi-platform index) and docker-archives, layers
// plain, gzip or zstd. Everything is made here from tar-stream output, so
// a test knows exactly what each layer holds.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { type Ent, makeTar } from './tarhelp.js';

export type Compression = 'none' | 'gzip' | 'zstd';

export interface TestLayer {
  entries: Ent[];
  raw?: Buffer; // the layer's tar bytes as they are (for hostile headers tar-stream will not write)
  compression?: Compression;
}

export interface TestImage {
  layers: TestLayer[];
  platform?: { os: string; architecture: string; variant?: string };
  config?: Record<string, unknown>; // the config's `config` object (Env, Cmd …)
  ref?: string; // org.opencontainers.image.ref.name in the index
}

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export interface Blob {
  data: Buffer;
  digest: string;
  mediaType: string;
}

function compress(tarBuf: Buffer, c: Compression): Buffer {
  if (c === 'gzip') return zlib.gzipSync(tarBuf);
  if (c === 'zstd') {
    const r = spawnSync('zstd', ['-q', '-c', '-'], { input: tarBuf, maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`zstd: ${r.stderr.toString()}`);
    return r.stdout;
  }
  return tarBuf;
}

const LAYER_MT: Record<Compression, string> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

export interface BuiltImage {
  blobs: Blob[];
  manifest: Blob;
  config: Blob;
  layers: Array<Blob & { diffId: string; tar: Buffer }>;
}

export async function buildImage(img: TestImage): Promise<BuiltImage> {
  const layers: BuiltImage['layers'] = [];
  for (const l of img.layers) {
    const t = l.raw ?? (await makeTar(l.entries));
    const data = compress(t, l.compression ?? 'none');
    layers.push({ data, digest: `sha256:${sha(data)}`, mediaType: LAYER_MT[l.compression ?? 'none'], diffId: `sha256:${sha(t)}`, tar: t });
  }
  const platform = img.platform ?? { os: 'linux', architecture: hostArch() };
  const configJson = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: img.config ?? {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const config: Blob = { data: configJson, digest: `sha256:${sha(configJson)}`, mediaType: 'application/vnd.oci.image.config.v1+json' };
  const manifestJson = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: config.mediaType, digest: config.digest, size: config.data.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
    }),
  );
  const manifest: Blob = {
    data: manifestJson,
    digest: `sha256:${sha(manifestJson)}`,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
  };
  return { blobs: [...layers, config, manifest], manifest, config, layers };
}

export function hostArch(): string {
  return { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' }[process.arch as string] ?? process.arch;
}

/** The files of an OCI image layout holding these images (one index entry each). */
export async function ociFiles(images: TestImage[]): Promise<Array<{ name: string; data: Buffer }>> {
  const built = await Promise.all(images.map(buildImage));
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: built.map((b, i) => ({
      mediaType: b.manifest.mediaType,
      digest: b.manifest.digest,
      size: b.manifest.data.length,
      ...(images.length > 1 || images[i].platform ? { platform: images[i].platform ?? { os: 'linux', architecture: hostArch() } } : {}),
      ...(images[i].ref ? { annotations: { 'org.opencontainers.image.ref.name': images[i].ref } } : {}),
    })),
  };
  const files = new Map<string, Buffer>();
  files.set('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  files.set('index.json', Buffer.from(JSON.stringify(index)));
  for (const b of built) for (const blob of b.blobs) files.set(`blobs/sha256/${blob.digest.slice(7)}`, blob.data);
  return [...files].map(([name, data]) => ({ name, data }));
}

export async function ociTar(images: TestImage[], edit?: (files: Array<{ name: string; data: Buffer }>) => void): Promise<Buffer> {
  const files = await ociFiles(images);
  edit?.(files);
  return makeTar(
    [
      ...['blobs/', 'blobs/sha256/'].map((name) => ({ name, type: 'directory' as const })),
      ...files.map((f) => ({ name: f.name, body: f.data })),
    ].sort((a, b) => (a.name === 'oci-layout' ? -1 : b.name === 'oci-layout' ? 1 : 0)),
  );
}

export async function ociDir(dir: string, images: TestImage[]): Promise<void> {
  for (const f of await ociFiles(images)) {
    fs.mkdirSync(path.dirname(path.join(dir, f.name)), { recursive: true });
    fs.writeFileSync(path.join(dir, f.name), f.data);
  }
}

/** A legacy docker-archive (`docker save` before 25): <id>/layer.tar, <config>.json, manifest.json. */
export async function dockerTar(img: TestImage, opts: { linkDuplicate?: boolean } = {}): Promise<Buffer> {
  const b = await buildImage(img);
  const ents: Ent[] = [];
  const layerNames: string[] = [];
  const firstOf = new Map<string, string>();
  for (const [i, l] of b.layers.entries()) {
    const id = sha(Buffer.from(`layer${i}${l.diffId}`));
    const name = `${id}/layer.tar`;
    layerNames.push(name);
    ents.push({ name: `${id}/`, type: 'directory' });
    const prev = firstOf.get(l.diffId);
    if (prev && opts.linkDuplicate) ents.push({ name, type: 'symlink', linkname: `../${prev}` });
    else ents.push({ name, body: l.data });
    firstOf.set(l.diffId, name);
  }
  const cfgName = `${b.config.digest.slice(7)}.json`;
  ents.push({ name: cfgName, body: b.config.data });
  ents.push({ name: 'manifest.json', body: JSON.stringify([{ Config: cfgName, RepoTags: ['test:latest'], Layers: layerNames }]) });
  return makeTar(ents);
}
