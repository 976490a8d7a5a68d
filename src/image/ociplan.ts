// OCI image planning, pure: what the JSON documents of an image archive mean
// (index, manifest, docker manifest.json, image config), which manifest of a
// multi-platform index to take, what a layer entry's name means (whiteout,
// opaque marker), what the merge of a stack of layers is (a model the real
// importer is tested against), and how an image's config becomes the default
// process of a context. No I/O here.

import { PaeneError } from '../model/errors.js';

const fail = (msg: string): never => {
  throw new PaeneError('hostile-archive', msg);
};

// ------------------------------------------------------------ descriptors

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string; // sha256:<64 hex>
  size: number;
  platform?: Platform;
  urls?: string[];
  /** the image's name in a layout (org.opencontainers.image.ref.name, io.containerd.image.name) */
  ref?: string[];
}

export const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const DIGEST_RE = /^sha256:([0-9a-f]{64})$/;

/** The hex of a sha256 digest; other algorithms are refused (the store hashes with sha256). */
export function digestHex(digest: unknown, where: string): string {
  const m = typeof digest === 'string' ? DIGEST_RE.exec(digest) : null;
  if (!m) fail(`${where}: digest ${JSON.stringify(digest)} is not sha256:<64 hex digits>`);
  return m![1];
}

function obj(x: unknown, where: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) fail(`${where}: expected a JSON object`);
  return x as Record<string, unknown>;
}

function str(x: unknown, where: string): string {
  if (typeof x !== 'string') fail(`${where}: expected a string`);
  return x as string;
}

function optStr(x: unknown, where: string): string | undefined {
  return x === undefined || x === null ? undefined : str(x, where);
}

function strList(x: unknown, where: string): string[] {
  if (x === undefined || x === null) return [];
  if (!Array.isArray(x) || x.some((v) => typeof v !== 'string')) fail(`${where}: expected a list of strings`);
  return x as string[];
}

function platformOf(x: unknown, where: string): Platform | undefined {
  if (x === undefined || x === null) return undefined;
  const o = obj(x, where);
  const p: Platform = { os: str(o.os, `${where}.os`), architecture: str(o.architecture, `${where}.architecture`) };
  const v = optStr(o.variant, `${where}.variant`);
  if (v) p.variant = v;
  return p;
}

export function parseDescriptor(x: unknown, where: string): Descriptor {
  const o = obj(x, where);
  const size = o.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`${where}: size must be a whole number ≥ 0`);
  digestHex(o.digest, where);
  const d: Descriptor = { mediaType: str(o.mediaType ?? '', `${where}.mediaType`), digest: o.digest as string, size: size as number };
  const p = platformOf(o.platform, `${where}.platform`);
  if (p) d.platform = p;
  const urls = strList(o.urls, `${where}.urls`);
  if (urls.length) d.urls = urls;
  const ann = o.annotations === undefined || o.annotations === null ? {} : obj(o.annotations, `${where}.annotations`);
  const ref = [ann['org.opencontainers.image.ref.name'], ann['io.containerd.image.name']].filter((r): r is string => typeof r === 'string');
  if (ref.length) d.ref = ref;
  return d;
}

/** index.json of a layout, or a nested image index. */
export function parseIndex(x: unknown, where = 'index.json'): Descriptor[] {
  const o = obj(x, where);
  if (o.schemaVersion !== 2) fail(`${where}: schemaVersion must be 2`);
  if (!Array.isArray(o.manifests)) fail(`${where}: no manifests list`);
  return (o.manifests as unknown[]).map((m, i) => parseDescriptor(m, `${where}: manifests[${i}]`));
}

export interface ImageManifest {
  config: Descriptor;
  layers: Descriptor[];
}

export function parseManifest(x: unknown, where: string): ImageManifest {
  const o = obj(x, where);
  if (o.schemaVersion !== 2) fail(`${where}: schemaVersion must be 2`);
  if (o.mediaType !== undefined && o.mediaType !== MT.manifest && o.mediaType !== MT.dockerManifest)
    fail(`${where}: not an image manifest (mediaType ${JSON.stringify(o.mediaType)})`);
  if (!Array.isArray(o.layers)) fail(`${where}: no layers list`);
  const layers = (o.layers as unknown[]).map((l, i) => parseDescriptor(l, `${where}: layers[${i}]`));
  for (const [i, l] of layers.entries()) {
    if (l.urls) fail(`${where}: layers[${i}] is a foreign layer (fetched from ${l.urls[0]}); paene reads only what the archive holds`);
    layerCompression(l.mediaType, `${where}: layers[${i}]`);
  }
  return { config: parseDescriptor(o.config, `${where}: config`), layers };
}

export type Compression = 'none' | 'gzip' | 'zstd';

/** What a layer's media type says about its compression (the bytes' magic is checked too). */
export function layerCompression(mediaType: string, where: string): Compression {
  const t = mediaType.replace('.nondistributable', '');
  if (t === MT.layerTar || t === 'application/vnd.docker.image.rootfs.diff.tar') return 'none';
  if (t === MT.layerGzip || t === MT.dockerLayer) return 'gzip';
  if (t === MT.layerZstd) return 'zstd';
  if (t === '') return 'none';
  return fail(`${where}: unsupported layer media type ${JSON.stringify(mediaType)}`);
}

/** One entry of a docker-archive's manifest.json (`docker save`, `podman save`, skopeo docker-archive:). */
export interface DockerImage {
  config: string; // path inside the archive
  layers: string[];
  repoTags: string[];
}

/** The image of a docker-archive to import: the only one, or the one with the tag asked for. */
export function selectDockerImage(images: DockerImage[], tag: string | undefined): DockerImage {
  if (tag !== undefined) {
    const hit = images.find((m) => m.repoTags.some((t) => tagMatches(t, tag)));
    if (hit) return hit;
    throw new PaeneError(
      'not-found',
      `manifest.json: no image tagged ${JSON.stringify(tag)}; the archive has ${
        images
          .flatMap((m) => m.repoTags)
          .map((t) => JSON.stringify(t))
          .join(', ') || 'untagged images only'
      }`,
    );
  }
  if (images.length > 1)
    throw new PaeneError(
      'invalid-argument',
      `the archive holds ${images.length} images (${images.map((m) => m.repoTags.join(' ') || m.config).join('; ')}); choose one with --tag`,
    );
  return images[0];
}

export function parseDockerManifest(x: unknown): DockerImage[] {
  if (!Array.isArray(x) || x.length === 0) fail('manifest.json: expected a non-empty list of images');
  return (x as unknown[]).map((e, i) => {
    const o = obj(e, `manifest.json[${i}]`);
    return {
      config: str(o.Config, `manifest.json[${i}].Config`),
      layers: strList(o.Layers, `manifest.json[${i}].Layers`),
      repoTags: strList(o.RepoTags, `manifest.json[${i}].RepoTags`),
    };
  });
}

// ------------------------------------------------------------ image config

/** What an image says about how to run it (the OCI image config's `config` object). */
export interface ImageRunConfig {
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir?: string;
  user?: string;
  exposedPorts: string[];
  labels: Record<string, string>;
  stopSignal?: string;
}

export interface ImageConfig {
  platform: Platform;
  run: ImageRunConfig;
  diffIds: string[]; // sha256:<hex> of each uncompressed layer
  created?: string;
  author?: string;
}

export function parseImageConfig(x: unknown, where = 'image config'): ImageConfig {
  const o = obj(x, where);
  const c = o.config === undefined || o.config === null ? {} : obj(o.config, `${where}.config`);
  const rootfs = obj(o.rootfs, `${where}.rootfs`);
  if (rootfs.type !== 'layers') fail(`${where}.rootfs.type must be "layers"`);
  const diffIds = strList(rootfs.diff_ids, `${where}.rootfs.diff_ids`);
  diffIds.forEach((d, i) => digestHex(d, `${where}.rootfs.diff_ids[${i}]`));
  const env = strList(c.Env, `${where}.config.Env`);
  for (const e of env) if (!/^[^=\0]+=/.test(e) || e.includes('\0')) fail(`${where}.config.Env: ${JSON.stringify(e)} is not KEY=VALUE`);
  const labelsIn = c.Labels === undefined || c.Labels === null ? {} : obj(c.Labels, `${where}.config.Labels`);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(labelsIn)) labels[k] = str(v, `${where}.config.Labels.${k}`);
  const ports = c.ExposedPorts === undefined || c.ExposedPorts === null ? {} : obj(c.ExposedPorts, `${where}.config.ExposedPorts`);
  const run: ImageRunConfig = {
    env,
    entrypoint: strList(c.Entrypoint, `${where}.config.Entrypoint`),
    cmd: strList(c.Cmd, `${where}.config.Cmd`),
    exposedPorts: Object.keys(ports).sort(),
    labels,
  };
  const wd = optStr(c.WorkingDir, `${where}.config.WorkingDir`);
  if (wd) run.workingDir = wd;
  const user = optStr(c.User, `${where}.config.User`);
  if (user) run.user = user;
  const sig = optStr(c.StopSignal, `${where}.config.StopSignal`);
  if (sig) run.stopSignal = sig;
  const platform: Platform = { os: str(o.os ?? 'linux', `${where}.os`), architecture: str(o.architecture ?? '', `${where}.architecture`) };
  const variant = optStr(o.variant, `${where}.variant`);
  if (variant) platform.variant = variant;
  const cfg: ImageConfig = { platform, run, diffIds };
  const created = optStr(o.created, `${where}.created`);
  if (created) cfg.created = created;
  const author = optStr(o.author, `${where}.author`);
  if (author) cfg.author = author;
  return cfg;
}

/** The image config JSON an export writes (the inverse of parseImageConfig for what paene keeps). */
export function imageConfigJson(cfg: ImageConfig): Record<string, unknown> {
  const r = cfg.run;
  const c: Record<string, unknown> = {};
  if (r.user) c.User = r.user;
  if (r.exposedPorts.length) c.ExposedPorts = Object.fromEntries(r.exposedPorts.map((p) => [p, {}]));
  if (r.env.length) c.Env = r.env;
  if (r.entrypoint.length) c.Entrypoint = r.entrypoint;
  if (r.cmd.length) c.Cmd = r.cmd;
  if (r.workingDir) c.WorkingDir = r.workingDir;
  if (Object.keys(r.labels).length) c.Labels = r.labels;
  if (r.stopSignal) c.StopSignal = r.stopSignal;
  return {
    ...(cfg.created ? { created: cfg.created } : {}),
    ...(cfg.author ? { author: cfg.author } : {}),
    architecture: cfg.platform.architecture,
    os: cfg.platform.os,
    ...(cfg.platform.variant ? { variant: cfg.platform.variant } : {}),
    config: c,
    rootfs: { type: 'layers', diff_ids: cfg.diffIds },
  };
}

// ------------------------------------------------------------ platforms

const NODE_ARCH: Record<string, Platform> = {
  x64: { os: 'linux', architecture: 'amd64' },
  arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
  ia32: { os: 'linux', architecture: '386' },
  ppc64: { os: 'linux', architecture: 'ppc64le' },
  s390x: { os: 'linux', architecture: 's390x' },
  riscv64: { os: 'linux', architecture: 'riscv64' },
};

/** The OCI platform of a host, from Node's `process.arch`. */
export function hostPlatform(nodeArch: string): Platform {
  return NODE_ARCH[nodeArch] ?? { os: 'linux', architecture: nodeArch };
}

/** `os/arch[/variant]`, e.g. linux/arm64/v8. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p)))
    throw new PaeneError(
      'invalid-argument',
      `invalid platform ${JSON.stringify(s)}: use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`,
    );
  return parts[2] ? { os: parts[0], architecture: parts[1], variant: parts[2] } : { os: parts[0], architecture: parts[1] };
}

export function showPlatform(p: Platform | undefined): string {
  return p ? `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}` : '(no platform)';
}

/** arm64's variant defaults to v8 (containerd's normalisation); others compare as given. */
function variantOf(p: Platform): string | undefined {
  return p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);
}

export function platformMatches(have: Platform, want: Platform, variantExplicit: boolean): boolean {
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  if (!variantExplicit) return true;
  return variantOf(have) === variantOf(want);
}

/**
 * The manifest of an index to import: the only one if the index has one
 * (whatever its platform, unless a platform was asked for), else the first
 * whose platform matches. Attestation manifests (platform unknown/unknown)
 * never match.
 */
export function selectManifest(manifests: Descriptor[], want: Platform, explicit: boolean, where = 'index.json', tag?: string): Descriptor {
  let images = manifests.filter((m) => m.platform?.os !== 'unknown');
  if (images.length === 0) fail(`${where}: lists no image manifest`);
  if (tag !== undefined) {
    const named = images.filter((m) => m.ref?.some((r) => tagMatches(r, tag)));
    if (named.length === 0)
      throw new PaeneError(
        'not-found',
        `${where}: no image named ${JSON.stringify(tag)}; the archive has ${[...new Set(images.flatMap((m) => m.ref ?? []))].map((r) => JSON.stringify(r)).join(', ') || 'no named images'}`,
      );
    images = named;
  }
  if (images.length === 1 && (!explicit || images[0].platform === undefined)) return images[0];
  // An image that names no platform fits any, unless one was asked for.
  const hits = images.filter((m) =>
    m.platform === undefined ? !explicit : platformMatches(m.platform, want, explicit && want.variant !== undefined),
  );
  if (hits.length === 0)
    throw new PaeneError(
      'not-found',
      `${where}: no image for platform ${showPlatform(want)}; the archive has ${images.map((m) => showPlatform(m.platform)).join(', ')} (choose one with --platform)`,
    );
  // Several images that differ in name, not platform: which one is the user's to say.
  const names = [...new Set(hits.map((m) => (m.ref ?? []).join(' ') || '(unnamed)'))];
  if (names.length > 1)
    throw new PaeneError(
      'invalid-argument',
      `${where}: holds ${hits.length} images for ${showPlatform(want)} (${names.join('; ')}); choose one with --tag`,
    );
  return hits[0];
}

/**
 * Whether an image name in an archive is the one asked for: the same, or the
 * same once a missing `:latest` and docker's default registry are added
 * (`nginx` is `docker.io/library/nginx:latest`; a layout's ref.name may be
 * just the tag, `latest`).
 */
export function tagMatches(have: string, want: string): boolean {
  const full = (t: string): string => {
    let n = /:[^/]+$/.test(t) ? t : `${t}:latest`;
    if (!n.includes('/')) n = `library/${n}`;
    if (!/^[^/]+[.:][^/]*\//.test(n) && !n.startsWith('localhost/')) n = `docker.io/${n}`;
    return n;
  };
  return have === want || full(have) === full(want);
}

// ------------------------------------------------------------ layer entry names

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

export type LayerName = { kind: 'entry' } | { kind: 'whiteout'; target: string } | { kind: 'opaque'; dir: string };

/**
 * What a (normalized) layer entry name means under the OCI layer rules.
 * `a/.wh.b` deletes a/b from the layers below; `a/.wh..wh..opq` hides all
 * of a's lower contents. Any other `.wh.` name is refused: it would either
 * point outside its directory or be a marker paene does not know.
 */
export function classifyLayerName(rel: string): LayerName {
  const slash = rel.lastIndexOf('/');
  const dir = slash < 0 ? '' : rel.slice(0, slash);
  const base = slash < 0 ? rel : rel.slice(slash + 1);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'entry' };
  if (base === OPAQUE_MARKER) return { kind: 'opaque', dir };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..')
    fail(`entry ${JSON.stringify(rel)}: whiteout of ${JSON.stringify(name)} would point outside its directory`);
  if (name.startsWith(WHITEOUT_PREFIX)) fail(`entry ${JSON.stringify(rel)}: unknown whiteout marker`);
  return { kind: 'whiteout', target: dir === '' ? name : `${dir}/${name}` };
}

// ------------------------------------------------------------ the merge, as a model

export interface ModelEntry {
  path: string; // normalized
  type: 'file' | 'dir' | 'symlink' | 'link' | 'fifo';
  body?: string; // file data
  target?: string; // symlink target, or hard link target path
  mode?: number;
}

export interface MergedEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo';
  body?: string;
  target?: string;
  mode?: number;
}

const isUnder = (p: string, dir: string): boolean => dir === '' || p === dir || p.startsWith(dir + '/');

/**
 * The tree a stack of layers unpacks to, by the OCI rules: later layers
 * win; a directory over a directory merges; anything else over a name
 * replaces it (and a directory's whole subtree); whiteouts and opaque
 * markers hide only what lower layers made (a whiteout of a directory this
 * layer puts names in hides the lower names in it); a hard link is the file
 * it names. The importer is tested file by file against this.
 */
export function mergeLayers(layers: ModelEntry[][]): Map<string, MergedEntry> {
  const tree = new Map<string, MergedEntry>([['', { type: 'dir' }]]);
  const removeSubtree = (p: string, keep: (q: string) => boolean): void => {
    for (const k of [...tree.keys()]) if (k !== '' && isUnder(k, p) && !keep(k)) tree.delete(k);
  };
  for (const layer of layers) {
    // names this layer has, with their parents: what its own markers never hide
    const mine = new Set<string>();
    const mark = (p: string): void => {
      for (let q = p; q !== ''; q = q.includes('/') ? q.slice(0, q.lastIndexOf('/')) : '') mine.add(q);
    };
    for (const e of layer) {
      const n = classifyLayerName(e.path);
      const hideLower = (dir: string): void => {
        for (const k of [...tree.keys()]) if (k !== dir && k !== '' && isUnder(k, dir) && !mine.has(k)) tree.delete(k);
      };
      if (n.kind === 'whiteout') {
        // a name of this layer (or with this layer's names under it) keeps them, loses the lower ones
        if (!mine.has(n.target)) removeSubtree(n.target, () => false);
        else hideLower(n.target);
        continue;
      }
      if (n.kind === 'opaque') {
        hideLower(n.dir);
        ensureModelParents(tree, n.dir + '/x', mark);
        if (n.dir !== '') mark(n.dir);
        continue;
      }
      ensureModelParents(tree, e.path, mark);
      const cur = tree.get(e.path);
      let next: MergedEntry;
      if (e.type === 'link') {
        const t = tree.get(e.target ?? '');
        if (!t || t.type === 'dir') throw new Error(`model: bad hard link ${e.path} -> ${e.target}`);
        next = { ...t };
      } else
        next = {
          type: e.type,
          ...(e.body !== undefined ? { body: e.body } : {}),
          ...(e.target !== undefined ? { target: e.target } : {}),
          ...(e.mode !== undefined ? { mode: e.mode } : {}),
        };
      if (!(cur?.type === 'dir' && next.type === 'dir')) removeSubtree(e.path, () => false);
      tree.set(e.path, next);
      mark(e.path);
    }
  }
  return tree;
}

function ensureModelParents(tree: Map<string, MergedEntry>, p: string, mark: (p: string) => void): void {
  const parts = p.split('/');
  let cur = '';
  for (let i = 0; i < parts.length - 1; i++) {
    cur = cur === '' ? parts[i] : `${cur}/${parts[i]}`;
    if (!tree.has(cur)) {
      tree.set(cur, { type: 'dir' });
      mark(cur);
    }
  }
}

// ------------------------------------------------------------ the default process

export interface ProcessRequest {
  argv: string[]; // empty: the image's Entrypoint + Cmd
  env?: Record<string, string>;
  cwd?: string;
  user?: string; // as given on the command line, uid[:gid] or name[:group]
}

export interface ProcessPlan {
  argv: string[];
  env: Record<string, string>; // the image's Env, then the request's
  cwd: string;
  user?: string;
}

/**
 * The process an exec runs, with the image config as its default: no
 * command means Entrypoint + Cmd (as `docker run IMAGE` with no command);
 * the image's Env is the environment, the request's variables override
 * it; its WorkingDir and User apply unless the request names its own.
 */
export function planProcess(image: ImageRunConfig | undefined, req: ProcessRequest, imageName: string): ProcessPlan {
  let argv = req.argv;
  if (argv.length === 0) {
    argv = image ? [...image.entrypoint, ...image.cmd] : [];
    if (argv.length === 0)
      throw new PaeneError(
        'invalid-argument',
        `exec needs a command: image ${JSON.stringify(imageName)} has no Cmd or Entrypoint to run by default`,
      );
  }
  const env: Record<string, string> = {};
  for (const kv of image?.env ?? []) {
    const i = kv.indexOf('=');
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  Object.assign(env, req.env ?? {});
  // A relative WorkingDir is relative to the root, as docker reads it.
  const wd = image?.workingDir === undefined ? undefined : image.workingDir.startsWith('/') ? image.workingDir : `/${image.workingDir}`;
  const plan: ProcessPlan = { argv, env, cwd: req.cwd ?? wd ?? '/' };
  const user = req.user ?? image?.user;
  if (user !== undefined && user !== '') plan.user = user;
  return plan;
}

/**
 * uid[:gid] or name[:group] → ids, names looked up in the image's
 * /etc/passwd and /etc/group texts (as given; undefined if the image has none).
 */
export function resolveUser(spec: string, passwd: string | undefined, group: string | undefined): { uid: number; gid: number } {
  const [u, g] = spec.split(':', 2);
  const lookup = (text: string | undefined, name: string): string[] | undefined =>
    text
      ?.split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[0] === name && f.length >= 4);
  const num = (s: string): number | undefined => (/^\d+$/.test(s) && Number(s) <= 0xfffffffe ? Number(s) : undefined);
  let uid = num(u);
  let gid: number | undefined;
  if (uid === undefined) {
    const pw = lookup(passwd, u);
    if (!pw) throw new PaeneError('invalid-argument', `user ${JSON.stringify(u)} is not in the image's /etc/passwd`);
    uid = num(pw[2]);
    gid = num(pw[3]);
    if (uid === undefined) throw new PaeneError('invalid-argument', `user ${JSON.stringify(u)}: bad uid in the image's /etc/passwd`);
  } else {
    const pw = passwd
      ?.split('\n')
      .map((l) => l.split(':'))
      .find((f) => f.length >= 4 && f[2] === u);
    gid = pw ? num(pw[3]) : undefined;
  }
  if (g !== undefined && g !== '') {
    gid = num(g);
    if (gid === undefined) {
      const gr = lookup(group, g);
      gid = gr ? num(gr[2]) : undefined;
      if (gid === undefined) throw new PaeneError('invalid-argument', `group ${JSON.stringify(g)} is not in the image's /etc/group`);
    }
  }
  return { uid, gid: gid ?? uid };
}
