// Import speed of a layered image archive: an OCI layout tar of about
// 100 MB in three gzip layers (a base, a layer that replaces and whites out
// part of it, a small top), imported from its file into a fresh store and
// again into the same store (every file already stored: only hashing, no new
// objects), and from a pipe (the archive spooled into staging first).
// Beside it, umoci unpack of the same layout (a peer that applies OCI
// layers too) where umoci is installed.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import type tar from 'tar-stream';
import { ImageStore } from '../image/store.js';
import { forceRemoveTree } from '../image/importer.js';
import { packEntry, writePacked } from '../image/walk.js';
import { type MachineFacts, machineFacts, median, round } from './common.js';

export interface ImportBenchResult {
  machine: MachineFacts;
  archiveBytes: number;
  unpackedBytes: number;
  files: number;
  layers: number;
  runs: number;
  rows: Array<{ what: string; seconds: number; archiveMBps: number; unpackedMBps: number }>;
  /** peak RSS of a `paene image import` process, for archives of different sizes: it must not grow with them */
  memory: Array<{ archiveMB: number; peakRssMB: number }>;
}

/**
 * Peak RSS of the CLI importing file into a fresh store: a preloaded
 * script writes the process's maxRSS at exit.
 */
function cliPeakRss(dir: string, file: string, cli: string): number {
  const preload = path.join(dir, 'rss.cjs');
  const out = path.join(dir, 'rss.out');
  fs.writeFileSync(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, String(process.resourceUsage().maxRSS)));\n`,
  );
  const root = path.join(dir, 'rss-root');
  const r = spawnSync(process.execPath, ['--require', preload, cli, '--root', root, 'image', 'import', file, '--name', 'rss'], {
    encoding: 'utf8',
  });
  forceRemoveTree(root);
  if (r.status !== 0) throw new Error(`paene image import: ${r.stderr}`);
  return Number(fs.readFileSync(out, 'utf8')) / 1024;
}

/**
 * Deterministic file data that gzip shrinks to about 3/4, like a system
 * image's mix of binaries and text: 64-byte blocks, most of them random,
 * the rest a repeated phrase.
 */
function fileData(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = (seed * 2654435761 + 0x9e3779b9) >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
  const phrase = Buffer.from('static const char *usage = "usage: prog [options] file...\\n";\n');
  for (let off = 0; off < size; off += 64) {
    const end = Math.min(size, off + 64);
    if (next() % 4 === 0) phrase.copy(b, off, 0, end - off);
    else
      for (let i = off; i < end; i += 4)
        if (i + 4 <= end) b.writeUInt32LE(next(), i);
        else b.fill(next() & 0xff, i, end);
  }
  return b;
}

interface LayerSpec {
  files: Array<{ name: string; seed: number; size: number }>;
  whiteouts: string[];
}

const fileSha = async (file: string): Promise<string> => {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
};

/** One layer: its tar (hashed for the diff_id), then gzip'd into the blob. */
async function writeLayer(spec: LayerSpec, file: string): Promise<{ digest: string; size: number; diffId: string }> {
  const mtime = new Date(1_700_000_000_000);
  const dirs = new Set<string>();
  const add = (pack: tar.Pack, name: string, body: Buffer): Promise<void> =>
    new Promise((res, rej) => pack.entry({ name, mode: 0o644, mtime, size: body.length }, body, (e) => (e ? rej(e) : res())));
  const plain = `${file}.plain`;
  await writePacked(fs.createWriteStream(plain), async (pack) => {
    for (const f of spec.files) {
      const d = path.posix.dirname(f.name);
      if (!dirs.has(d)) {
        dirs.add(d);
        await packEntry(pack, { name: d + '/', type: 'directory', mode: 0o755, mtime });
      }
      await add(pack, f.name, fileData(f.seed, f.size));
    }
    for (const w of spec.whiteouts) await add(pack, w, Buffer.alloc(0));
  });
  const diffId = await fileSha(plain);
  await pipeline(fs.createReadStream(plain), zlib.createGzip({ level: 6 }), fs.createWriteStream(file));
  fs.rmSync(plain);
  return { digest: await fileSha(file), size: fs.statSync(file).size, diffId };
}

/** Build the archive: ~100 MB of file data in 3 gzip layers, as an OCI layout tar and directory. */
export async function buildBenchArchive(
  dir: string,
  scale = 1,
): Promise<{ tarFile: string; layoutDir: string; unpackedBytes: number; files: number }> {
  const n = Math.max(4, Math.round(560 * scale));
  const base: LayerSpec = { files: [], whiteouts: [] };
  for (let i = 0; i < n; i++) base.files.push({ name: `usr/lib/d${i % 20}/f${i}`, seed: i, size: 64 * 1024 + ((i * 7919) % (256 * 1024)) });
  const mid: LayerSpec = { files: [], whiteouts: [] };
  for (let i = 0; i < n / 4; i++) mid.files.push({ name: `usr/lib/d${i % 20}/f${i}`, seed: i + 100_000, size: 128 * 1024 });
  for (let i = n / 4; i < n / 2; i += 4) mid.whiteouts.push(`usr/lib/d${i % 20}/.wh.f${i}`);
  const top: LayerSpec = {
    files: [
      { name: 'app/bin/app', seed: 7, size: 2 * 1024 * 1024 },
      { name: 'app/etc/conf', seed: 8, size: 4096 },
    ],
    whiteouts: [],
  };
  const layoutDir = path.join(dir, 'layout');
  const blobs = path.join(layoutDir, 'blobs/sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const layers = [];
  let unpackedBytes = 0;
  let files = 0;
  for (const [i, spec] of [base, mid, top].entries()) {
    const tmp = path.join(dir, `layer${i}.tar.gz`);
    const l = await writeLayer(spec, tmp);
    fs.renameSync(tmp, path.join(blobs, l.digest.slice(7)));
    layers.push(l);
    for (const f of spec.files) unpackedBytes += f.size;
    files += spec.files.length;
  }
  const put = (o: unknown): { digest: string; size: number } => {
    const b = Buffer.from(JSON.stringify(o));
    const hex = createHash('sha256').update(b).digest('hex');
    fs.writeFileSync(path.join(blobs, hex), b);
    return { digest: `sha256:${hex}`, size: b.length };
  };
  const config = put({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/app/bin/app'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  });
  const manifest = put({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
  });
  fs.writeFileSync(path.join(layoutDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(
    path.join(layoutDir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }),
  );
  const tarFile = path.join(dir, 'image.oci.tar');
  const r = spawnSync('tar', ['-cf', tarFile, '-C', layoutDir, 'oci-layout', 'index.json', 'blobs']);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr.toString()}`);
  return { tarFile, layoutDir, unpackedBytes, files };
}

export async function runImportBench(opts: {
  dir: string;
  runs: number;
  scale: number;
  log: (s: string) => void;
  cli?: string;
}): Promise<ImportBenchResult> {
  fs.mkdirSync(opts.dir, { recursive: true });
  try {
    opts.log('building the archive …');
    const a = await buildBenchArchive(opts.dir, opts.scale);
    const archiveBytes = fs.statSync(a.tarFile).size;
    const times: Record<string, number[]> = { fresh: [], stored: [], piped: [], umoci: [] };
    const hasUmoci = spawnSync('umoci', ['--version'], { stdio: 'ignore' }).status === 0;
    for (let run = 0; run < opts.runs; run++) {
      const storeDir = path.join(opts.dir, `store${run}`);
      const store = new ImageStore(storeDir);
      spawnSync('sync');
      let t = process.hrtime.bigint();
      await store.importFile(a.tarFile, 'one');
      times.fresh.push(Number(process.hrtime.bigint() - t) / 1e9);
      t = process.hrtime.bigint();
      await store.importFile(a.tarFile, 'two');
      times.stored.push(Number(process.hrtime.bigint() - t) / 1e9);
      forceRemoveTree(storeDir);
      // As from a pipe (stdin): the archive is spooled into staging first.
      const piped = new ImageStore(storeDir);
      spawnSync('sync');
      t = process.hrtime.bigint();
      await piped.importTar(fs.createReadStream(a.tarFile, { highWaterMark: 1024 * 1024 }), 'one');
      times.piped.push(Number(process.hrtime.bigint() - t) / 1e9);
      forceRemoveTree(storeDir);
      if (hasUmoci) {
        const bundle = path.join(opts.dir, `bundle${run}`);
        spawnSync('sync');
        t = process.hrtime.bigint();
        const r = spawnSync('umoci', ['unpack', '--image', `${a.layoutDir}:latest`, bundle]);
        times.umoci.push(Number(process.hrtime.bigint() - t) / 1e9);
        if (r.status !== 0) throw new Error(`umoci unpack: ${r.stderr.toString()}`);
        forceRemoveTree(bundle);
      }
      opts.log(
        `run ${run + 1}/${opts.runs}: fresh ${times.fresh[run].toFixed(2)} s, stored ${times.stored[run].toFixed(2)} s, piped ${times.piped[run].toFixed(2)} s${hasUmoci ? `, umoci ${times.umoci[run].toFixed(2)} s` : ''}`,
      );
    }
    const row = (what: string, xs: number[]) => {
      const s = median(xs);
      return {
        what,
        seconds: round(s, 3),
        archiveMBps: round(archiveBytes / 1e6 / s, 1),
        unpackedMBps: round(a.unpackedBytes / 1e6 / s, 1),
      };
    };
    const rows = [
      row('paene import, fresh store', times.fresh),
      row('paene import, files already stored', times.stored),
      row('paene import from a pipe, fresh store', times.piped),
    ];
    if (hasUmoci) rows.push(row('umoci unpack (peer, layout dir)', times.umoci));
    const memory: ImportBenchResult['memory'] = [];
    if (opts.cli) {
      const quarterDir = path.join(opts.dir, 'quarter');
      fs.mkdirSync(quarterDir);
      const q = await buildBenchArchive(quarterDir, opts.scale / 4);
      for (const f of [q.tarFile, a.tarFile])
        memory.push({ archiveMB: round(fs.statSync(f).size / 1e6, 1), peakRssMB: round(cliPeakRss(opts.dir, f, opts.cli), 1) });
    }
    return {
      machine: machineFacts(),
      archiveBytes,
      unpackedBytes: a.unpackedBytes,
      files: a.files,
      layers: 3,
      runs: opts.runs,
      rows,
      memory,
    };
  } finally {
    forceRemoveTree(opts.dir);
  }
}

export function importTable(r: ImportBenchResult): string {
  const head = `archive ${round(r.archiveBytes / 1e6, 1)} MB (OCI layout tar, ${r.layers} gzip layers), ${round(r.unpackedBytes / 1e6, 1)} MB of file data in ${r.files} files; median of ${r.runs} runs`;
  const lines = r.rows.map(
    (x) =>
      `${x.what.padEnd(38)} ${x.seconds.toFixed(2).padStart(7)} s ${x.archiveMBps.toFixed(1).padStart(8)} MB/s archive ${x.unpackedMBps.toFixed(1).padStart(8)} MB/s unpacked`,
  );
  const fresh = r.rows[0].seconds;
  const peer = r.rows.find((x) => x.what.startsWith('umoci'));
  const mem = r.memory.map((m) => `peak RSS of paene image import, ${m.archiveMB} MB archive: ${m.peakRssMB} MB`);
  return [head, ...lines, ...(peer ? [`ratio paene fresh / umoci: ${round(fresh / peer.seconds, 2)}x the time`] : []), ...mem].join('\n');
}
