// The base image: a minimal guest root assembled from the host's own
// programs and their shared-library closure, following the recipe in
// rootfs/manifest. Streamed as a tar straight into the store (no temporary
// copy), so it works offline on any Linux host with the listed programs.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../kernel/package.js';
import tar from 'tar-stream';
import { PaeneError } from '../model/errors.js';
import { elfInterpreter } from './elf.js';
import { DEFAULT_IMAGE, type ImageInfo, type ImageStore } from './store.js';
import { packEntry } from './walk.js';

/** rootfs/ at the project root, from src/, dist/ or the bundled CLI alike. */
export const RECIPE_DIR = path.join(packageRoot(), 'rootfs') + path.sep;

const SEARCH_PATH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
// Fixed times for what the host does not provide, so rebuilds share objects.
const EPOCH = new Date('2024-01-01T00:00:00Z');

type Node =
  | { kind: 'file'; host: string; mode: number; mtime: Date }
  | { kind: 'symlink'; target: string; mtime: Date }
  | { kind: 'dir'; mode: number };

export interface Recipe {
  bins: Array<{ name: string; optional: boolean }>;
  busybox?: string;
  applets: string[];
  dirs: Array<{ path: string; mode: number }>;
}

export function parseRecipe(text: string): Recipe {
  const r: Recipe = { bins: [], applets: [], dirs: [] };
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const [op, ...args] = line.split(/\s+/);
    const bad = (): never => {
      throw new PaeneError('invalid-argument', `rootfs/manifest line ${i + 1}: cannot parse ${JSON.stringify(raw)}`);
    };
    if ((op === 'bin' || op === 'bin?') && args.length === 1) r.bins.push({ name: args[0], optional: op === 'bin?' });
    else if (op === 'busybox' && args.length === 1) r.busybox = args[0];
    else if (op === 'applet' && args.length === 1) r.applets.push(args[0]);
    else if (op === 'dir' && args.length === 2 && /^[0-7]{3,4}$/.test(args[1])) r.dirs.push({ path: args[0], mode: parseInt(args[1], 8) });
    else bad();
  });
  return r;
}

/** Collects guest paths (absolute, canonical w.r.t. the host's usr-merge symlinks). */
class Tree {
  readonly nodes = new Map<string, Node>();

  private addDirs(guestDir: string): void {
    let cur = '';
    for (const c of guestDir.split('/').filter(Boolean)) {
      cur += '/' + c;
      if (!this.nodes.has(cur)) this.nodes.set(cur, { kind: 'dir', mode: 0o755 });
    }
  }

  dir(p: string, mode: number): void {
    this.addDirs(path.dirname(p));
    this.nodes.set(p, { kind: 'dir', mode });
  }

  symlink(p: string, target: string, mtime = EPOCH): void {
    this.addDirs(path.dirname(p));
    this.nodes.set(p, { kind: 'symlink', target, mtime });
  }

  /** Add a host path at the same place, following symlink chains as symlinks. */
  addHost(hostPath: string, depth = 0): string {
    if (depth > 40) throw new PaeneError('internal', `symlink loop at ${hostPath}`);
    // /lib/x → /usr/lib/x where /lib is a symlink: a tar cannot write through it.
    const dir = fs.realpathSync(path.dirname(hostPath));
    const guest = path.join(dir, path.basename(hostPath));
    if (this.nodes.has(guest)) return guest;
    const st = fs.lstatSync(guest);
    this.addDirs(dir);
    if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(guest);
      this.nodes.set(guest, { kind: 'symlink', target, mtime: st.mtime });
      this.addHost(path.isAbsolute(target) ? target : path.join(dir, target), depth + 1);
    } else if (st.isFile()) {
      this.nodes.set(guest, { kind: 'file', host: guest, mode: st.mode & 0o7777, mtime: st.mtime });
    } else {
      throw new PaeneError('internal', `${hostPath} is not a regular file or symlink`);
    }
    return guest;
  }
}

function findProgram(name: string): string | undefined {
  for (const d of SEARCH_PATH) {
    const p = path.join(d, name);
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (st?.isFile() && st.mode & 0o111) return p;
  }
  return undefined;
}

/**
 * Shared libraries (and the loader) a dynamic ELF needs; [] for a static one. Asks the loader the program
 * names (elfInterpreter) to trace them, as ldd does, without ldd's shell script around each call.
 */
export function libraryClosure(file: string): string[] {
  const loader = elfInterpreter(file);
  if (loader === undefined) return [];
  const r = spawnSync(loader, [file], { encoding: 'utf8', env: { ...process.env, LD_TRACE_LOADED_OBJECTS: '1' } });
  if (r.error) throw new PaeneError('unsupported', `cannot run ${loader} to find the libraries of ${file}: ${r.error.message}`);
  if (r.status !== 0) throw new PaeneError('internal', `${loader} could not list the libraries of ${file}: ${r.stderr.trim()}`);
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.push(m[1]);
    else if (/=>\s*not found/.test(line)) throw new PaeneError('unsupported', `${file} needs a library the host lacks: ${line.trim()}`);
  }
  return libs;
}

/** Resolve the recipe against this host into a tree of guest paths. */
export function planBaseImage(recipeDir = RECIPE_DIR, onWarning?: (m: string) => void): Map<string, Node> {
  const manifestFile = path.join(recipeDir, 'manifest');
  if (!fs.existsSync(manifestFile)) throw new PaeneError('not-found', `no base image recipe at ${manifestFile}`);
  const recipe = parseRecipe(fs.readFileSync(manifestFile, 'utf8'));
  const t = new Tree();
  // The host's usr-merge symlinks (/bin → usr/bin …), so paths mean the same inside.
  for (const top of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const st = fs.lstatSync('/' + top, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) t.symlink('/' + top, fs.readlinkSync('/' + top), st.mtime);
  }
  const elfs: string[] = [];
  const missing: string[] = [];
  for (const b of recipe.bins) {
    const p = findProgram(b.name);
    if (p === undefined) {
      if (b.optional) onWarning?.(`base image: host has no ${b.name}; skipped`);
      else missing.push(b.name);
      continue;
    }
    elfs.push(fs.realpathSync(p));
    t.addHost(p);
  }
  if (missing.length > 0)
    throw new PaeneError(
      'unsupported',
      `the base image needs host programs that are missing: ${missing.join(', ')} (install coreutils, procps, util-linux, hostname)`,
    );
  let busybox: string | undefined;
  if (recipe.busybox !== undefined) {
    if (fs.existsSync(recipe.busybox)) {
      busybox = t.addHost(recipe.busybox);
      elfs.push(fs.realpathSync(recipe.busybox));
    } else {
      onWarning?.(`base image: ${recipe.busybox} not found (install busybox-static); no init, httpd, wget, nc, ping from busybox`);
    }
  }
  for (const elf of elfs) for (const lib of libraryClosure(elf)) t.addHost(lib);
  if (busybox !== undefined && recipe.applets.length > 0) {
    const r = spawnSync(busybox, ['--list-full'], { encoding: 'utf8' });
    const where = new Map<string, string>();
    for (const l of r.stdout.split('\n')) if (l.trim()) where.set(path.basename(l.trim()), l.trim());
    for (const a of recipe.applets) {
      const rel = where.get(a);
      if (rel === undefined) {
        onWarning?.(`base image: busybox has no applet ${a}`);
        continue;
      }
      const hostDir = fs.realpathSync(path.join('/', path.dirname(rel)));
      const guest = path.join(hostDir, a);
      if (!t.nodes.has(guest)) t.symlink(guest, busybox);
    }
  }
  for (const d of recipe.dirs) t.dir(d.path, d.mode);
  const skel = path.join(recipeDir, 'skel');
  const addSkel = (rel: string): void => {
    const abs = path.join(skel, rel);
    const st = fs.lstatSync(abs);
    if (st.isDirectory()) {
      if (rel !== '') t.dir('/' + rel, 0o755);
      for (const n of fs.readdirSync(abs).sort()) addSkel(rel === '' ? n : `${rel}/${n}`);
    } else if (st.isFile()) {
      t.nodes.set('/' + rel, { kind: 'file', host: abs, mode: st.mode & 0o755, mtime: EPOCH });
    }
  };
  if (fs.existsSync(skel)) addSkel('');
  return t.nodes;
}

/** Stream the planned tree as a tar (uid/gid 0 throughout). */
export async function packBaseImage(nodes: Map<string, Node>, pack: tar.Pack): Promise<void> {
  const names = [...nodes.keys()].sort();
  await packEntry(pack, { name: './', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: EPOCH });
  for (const p of names) {
    const n = nodes.get(p)!;
    const name = p.slice(1);
    const owner = { uid: 0, gid: 0 };
    if (n.kind === 'dir') await packEntry(pack, { name: name + '/', type: 'directory', mode: n.mode, mtime: EPOCH, ...owner });
    else if (n.kind === 'symlink')
      await packEntry(pack, { name, type: 'symlink', linkname: n.target, mode: 0o777, mtime: n.mtime, ...owner });
    else {
      const size = fs.statSync(n.host).size;
      await packEntry(pack, { name, type: 'file', size, mode: n.mode, mtime: n.mtime, ...owner }, n.host);
    }
  }
  pack.finalize();
}

export interface BuildOptions {
  name?: string;
  recipeDir?: string;
  onProgress?: (bytes: number, files: number) => void;
  onWarning?: (msg: string) => void;
}

export async function buildBaseImage(store: ImageStore, opts: BuildOptions = {}): Promise<ImageInfo> {
  const name = opts.name ?? DEFAULT_IMAGE;
  // Refused before the recipe's plan (the loader's traces of 66 programs) and the packing, not after them (issue 24).
  if (store.has(name)) store.refuseExisting(name);
  const nodes = planBaseImage(opts.recipeDir, opts.onWarning);
  return store.importPacked(
    name,
    (pack) => packBaseImage(nodes, pack),
    { onProgress: opts.onProgress, onWarning: opts.onWarning, source: `build:${opts.recipeDir ?? RECIPE_DIR}` },
    'building the base image',
  );
}

/** The default image, built from the recipe the first time something needs it. */
export async function ensureBaseImage(store: ImageStore, opts: BuildOptions = {}): Promise<ImageInfo> {
  const name = opts.name ?? DEFAULT_IMAGE;
  if (store.has(name)) return store.get(name);
  try {
    return await buildBaseImage(store, { ...opts, name });
  } catch (e) {
    // Another paene built it while we waited for the store lock.
    if (e instanceof PaeneError && e.code === 'exists' && store.has(name)) return store.get(name);
    throw e;
  }
}
