// Writing an image as an archive other tools read: an OCI image layout tar
// (skopeo's oci-archive:, umoci after untar), a docker-archive (docker load,
// skopeo docker-archive:), or the flat root-filesystem tar.
//
// The tree becomes one uncompressed layer (the store keeps the merged tree,
// not the layers it came from). Its digest must be in the manifest before
// the layer is written, so the layer is packed into a temporary file first,
// hashed on the way; the image config (Env, Cmd …) is written back as it
// was imported.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import tar from 'tar-stream';
import { type ImageConfig, MT, hostPlatform, imageConfigJson } from './ociplan.js';
import { PaeneError } from '../model/errors.js';
import { packEntry, packTree, writePacked, writeTreeTar } from './walk.js';
import type { ImageRunConfig, Platform } from './ociplan.js';
import type { LayerRecord } from './oci.js';

export type ExportFormat = 'oci' | 'docker' | 'tar';
export const EXPORT_FORMATS: ExportFormat[] = ['oci', 'docker', 'tar'];

export interface ExportSource {
  name: string;
  rootfs: string;
  created: string;
  config?: StoredImageConfig;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Pack the tree into file as a tar; its sha256 and size. */
async function packLayer(rootfs: string, file: string): Promise<{ hex: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  await writePacked(
    fs.createWriteStream(file, { mode: 0o600 }),
    async (pack) => {
      await packTree(rootfs, pack);
    },
    tap,
  );
  return { hex: hash.digest('hex'), size };
}

function addBuffer(pack: tar.Pack, name: string, body: Buffer, mtime: Date): Promise<void> {
  return new Promise((resolve, reject) =>
    pack.entry({ name, size: body.length, mode: 0o644, mtime }, body, (err) => (err ? reject(err) : resolve())),
  );
}

function addDir(pack: tar.Pack, name: string, mtime: Date): Promise<void> {
  return packEntry(pack, { name, type: 'directory', mode: 0o755, mtime });
}

interface Packed {
  name: string;
  mtime: Date;
  layerFile: string;
  layer: { hex: string; size: number };
  platform: ImageConfig['platform'];
  configBuf: Buffer;
  configHex: string;
}

/** An OCI image layout: oci-layout first (an importer tells the kind by the first entry), index, blobs. */
async function writeOci(pack: tar.Pack, p: Packed): Promise<void> {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.manifest,
      config: { mediaType: MT.config, digest: `sha256:${p.configHex}`, size: p.configBuf.length },
      layers: [{ mediaType: MT.layerTar, digest: `sha256:${p.layer.hex}`, size: p.layer.size }],
    }),
  );
  const manifestHex = sha256(manifest);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.index,
      manifests: [
        {
          mediaType: MT.manifest,
          digest: `sha256:${manifestHex}`,
          size: manifest.length,
          platform: p.platform,
          // umoci and skopeo name an image of a layout by ref.name
          annotations: { 'org.opencontainers.image.ref.name': 'latest', 'io.containerd.image.name': `${p.name}:latest` },
        },
      ],
    }),
  );
  await addBuffer(pack, 'oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'), p.mtime);
  await addBuffer(pack, 'index.json', index, p.mtime);
  await addDir(pack, 'blobs/', p.mtime);
  await addDir(pack, 'blobs/sha256/', p.mtime);
  await addBuffer(pack, `blobs/sha256/${manifestHex}`, manifest, p.mtime);
  await addBuffer(pack, `blobs/sha256/${p.configHex}`, p.configBuf, p.mtime);
  await packEntry(pack, { name: `blobs/sha256/${p.layer.hex}`, size: p.layer.size, mode: 0o644, mtime: p.mtime }, p.layerFile);
}

/** A docker-archive as `docker save` wrote it before 25: manifest.json, <config>.json, <layer>/layer.tar. */
async function writeDocker(pack: tar.Pack, p: Packed): Promise<void> {
  const manifest = Buffer.from(
    JSON.stringify([{ Config: `${p.configHex}.json`, RepoTags: [`${p.name}:latest`], Layers: [`${p.layer.hex}/layer.tar`] }]),
  );
  await addBuffer(pack, 'manifest.json', manifest, p.mtime);
  await addBuffer(pack, `${p.configHex}.json`, p.configBuf, p.mtime);
  await addDir(pack, `${p.layer.hex}/`, p.mtime);
  await packEntry(pack, { name: `${p.layer.hex}/layer.tar`, size: p.layer.size, mode: 0o644, mtime: p.mtime }, p.layerFile);
  await addBuffer(pack, 'repositories', Buffer.from(JSON.stringify({ [p.name]: { latest: p.layer.hex } })), p.mtime);
}

/** Write the image to out in the format asked for. */
export async function exportImage(src: ExportSource, format: ExportFormat, out: NodeJS.WritableStream): Promise<void> {
  if (format === 'tar') return writeTreeTar(src.rootfs, out);
  if (!EXPORT_FORMATS.includes(format))
    throw new PaeneError('invalid-argument', `unknown export format ${JSON.stringify(format)}: use ${EXPORT_FORMATS.join(', ')}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-export-'));
  try {
    const layerFile = path.join(tmp, 'layer.tar');
    const layer = await packLayer(src.rootfs, layerFile);
    const cfg: ImageConfig = {
      platform: src.config?.platform ?? hostPlatform(process.arch),
      run: src.config?.run ?? {
        env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        entrypoint: [],
        cmd: [],
        exposedPorts: [],
        labels: {},
      },
      diffIds: [`sha256:${layer.hex}`], // the layer is stored uncompressed: its digest is its diff_id
      created: src.created,
      ...(src.config?.author ? { author: src.config.author } : {}),
    };
    const configBuf = Buffer.from(JSON.stringify(imageConfigJson(cfg)));
    const p: Packed = {
      name: src.name,
      mtime: new Date(src.created),
      layerFile,
      layer,
      platform: cfg.platform,
      configBuf,
      configHex: sha256(configBuf),
    };
    await writePacked(out, (pack) => (format === 'oci' ? writeOci(pack, p) : writeDocker(pack, p)));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** What the store keeps of an image's config (store.ts writes it; an export writes it back out). */
/** An imported image's config as kept with its tree (manifest.json's `image`). */
export interface StoredImageConfig {
  platform: Platform;
  run: ImageRunConfig;
  diffIds: string[];
  layers: LayerRecord[];
  created?: string;
  author?: string;
}
