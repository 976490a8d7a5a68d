// Shared pieces of the client end-to-end tests (docker, podman, CRI): each case
// runs once with runc (the witness) and once with paene-runc through the SAME
// client, the two side by side unless the case shares something between them;
// a case that passes with runc must pass with paene-runc.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { harnessMs } from '../helpers.js';

export const PAENE_RUNC = path.resolve('bin/paene-runc');
export type Rt = 'runc' | 'paene';
export const RUNTIMES: Rt[] = ['runc', 'paene'];

/** Debian's clients first: /usr/local/bin may hold another docker CLI. */
export const PATH = '/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Res {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOpts {
  timeout?: number;
  input?: string;
  /** stdin a pipe left open until the program exits (no input, and no end of input either) */
  holdStdin?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Runs a program to its end (bounded by timeout, then SIGKILL) without blocking the event loop. */
export function sh(argv: string[], opts: RunOpts = {}): Promise<Res> {
  return new Promise((resolve) => {
    const [prog, ...args] = argv as [string, ...string[]];
    const child = spawn(prog, args, {
      env: { ...process.env, PATH, ...opts.env },
      cwd: opts.cwd,
      stdio: [opts.input === undefined && !opts.holdStdin ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const bound = harnessMs(opts.timeout ?? 120_000);
    const timer = setTimeout(() => {
      stderr += `\n[timed out after ${bound} ms: ${argv.join(' ')}]`;
      child.kill('SIGKILL');
    }, bound);
    child.on('error', (e) => {
      stderr += String(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function shSync(argv: string[], timeout = 60_000): Res {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout, env: { ...process.env, PATH } });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

export class CaseError extends Error {}

export function fail(msg: string): never {
  throw new CaseError(msg);
}

function short(s: string, n = 600): string {
  const t = s.trim();
  return t.length > n ? t.slice(0, n) + '…' : t;
}

/** Throws (with the command, exit code and stderr) unless the command exited 0. */
export function ok(r: Res, what: string): Res {
  if (r.code !== 0) fail(`${what}: exit ${r.code ?? r.signal}: ${short(r.stderr || r.stdout)}`);
  return r;
}

export function eq<T>(got: T, want: T, what: string): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

export function match(got: string, re: RegExp, what: string): void {
  if (!re.test(got)) fail(`${what}: ${JSON.stringify(short(got, 300))} does not match ${re}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value or throws no more; the last failure is thrown after timeout. */
export async function until<T>(fn: () => Promise<T | undefined | false>, what: string, timeout = 30_000, every = 250): Promise<T> {
  const end = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      if (last instanceof Error) fail(`${what}: ${last.message}`);
      fail(`${what}: not reached in ${timeout} ms`);
    }
    await sleep(every);
  }
}

// ---------------------------------------------------------------------------------------------
// The case matrix: name → runc / paene outcome.

/** How a case's two halves run: together, or runc's first and then paene-runc's. */
export type CaseOrder = 'side by side' | 'one after the other';

export interface Outcome {
  ok: boolean;
  err?: string;
  ms: number;
}

export class Matrix {
  readonly rows = new Map<string, Partial<Record<Rt, Outcome>>>();
  readonly dropped = new Map<string, string>();
  constructor(readonly client: string) {}

  /**
   * Runs the case with runc and with paene-runc, side by side (the default: each half has its own
   * container names, and most of a half's time is spent waiting on the client and its daemon) or,
   * for a case whose halves share something (a port, a file, the whole cgroup tree), runc first,
   * then paene-runc. Records both; returns both outcomes.
   */
  async both(name: string, fn: (rt: Rt) => Promise<void>, order: CaseOrder = 'side by side'): Promise<Record<Rt, Outcome>> {
    const row: Partial<Record<Rt, Outcome>> = {};
    this.rows.set(name, row);
    const half = async (rt: Rt) => {
      const t0 = Date.now();
      try {
        await fn(rt);
        row[rt] = { ok: true, ms: Date.now() - t0 };
      } catch (e) {
        row[rt] = { ok: false, err: e instanceof Error ? e.message : String(e), ms: Date.now() - t0 };
      }
    };
    if (order === 'side by side') await Promise.all(RUNTIMES.map(half));
    else for (const rt of RUNTIMES) await half(rt);
    return row as Record<Rt, Outcome>;
  }

  /** The assertion of every case: when runc passes, paene-runc passes. */
  static verdict(name: string, o: Record<Rt, Outcome>): string | undefined {
    if (o.runc.ok && !o.paene.ok) return `${name}: passes with runc, fails with paene-runc: ${o.paene.err}`;
    return undefined;
  }

  table(): string {
    const w = Math.max(4, ...[...this.rows.keys()].map((k) => k.length));
    // each outcome with its wall time: where a client's run spends its minutes
    const cell = (o?: Outcome) => (o === undefined ? 'not run' : `${o.ok ? 'pass' : 'FAIL'} ${(o.ms / 1000).toFixed(1)}s`);
    const lines = [`${this.client}: case → runc / paene-runc`, `${'case'.padEnd(w)}  runc         paene`];
    for (const [k, r] of this.rows) lines.push(`${k.padEnd(w)}  ${cell(r.runc).padEnd(12)} ${cell(r.paene)}`);
    for (const [k, why] of this.dropped) lines.push(`${k.padEnd(w)}  dropped: ${why}`);
    const errs: string[] = [];
    for (const [k, r] of this.rows) for (const rt of RUNTIMES) if (r[rt] && !r[rt]!.ok) errs.push(`  [${rt}] ${k}: ${r[rt]!.err}`);
    if (errs.length) lines.push('failures:', ...errs);
    return lines.join('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// Images: a busybox rootfs made from the host's busybox-static.

export const WWW_TEXT = 'hello from the paene client tests';

/** A busybox root filesystem in DIR: /bin/busybox and its applets, passwd/group, /tmp, a page for httpd. */
export function makeBusyboxRootfs(dir: string): string {
  const bb = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
  if (!bb) throw new Error('busybox-static is not installed');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'root', 'var/www', 'home/user'])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync(bb, path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  const list = spawnSync(bb, ['--list-full'], { encoding: 'utf8' });
  for (const rel of list.stdout.split('\n').filter(Boolean)) {
    const p = path.join(dir, rel);
    if (rel === 'bin/busybox' || fs.existsSync(p)) continue;
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.symlinkSync('/bin/busybox', p);
  }
  fs.writeFileSync(
    path.join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  fs.writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n');
  fs.writeFileSync(path.join(dir, 'etc/hostname'), 'busybox\n');
  fs.writeFileSync(path.join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  fs.writeFileSync(path.join(dir, 'etc/resolv.conf'), '');
  fs.writeFileSync(path.join(dir, 'var/www/index.html'), WWW_TEXT + '\n');
  // as in Debian's images: /var/run is a symlink to /run (kubelet's secrets mount goes through it)
  fs.symlinkSync('/run', path.join(dir, 'var/run'));
  fs.mkdirSync(path.join(dir, 'tmp'), { mode: 0o1777 });
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.chownSync(path.join(dir, 'home/user'), 1000, 1000);
  return dir;
}

/** The rootfs as an uncompressed tar (what `docker import` / `podman import` take). */
export function rootfsTar(rootfs: string, out: string): string {
  const t = spawnSync('tar', ['--numeric-owner', '-C', rootfs, '-cf', out, '.']);
  if (t.status !== 0) throw new Error(`tar: ${t.stderr}`);
  return out;
}

/**
 * An OCI image layout tar (one layer: the rootfs) that `ctr images import` takes;
 * entrypoint/cmd become the image config's Entrypoint/Cmd.
 */
export function ociImageArchive(rootfs: string, dir: string, ref: string, cfg: { entrypoint?: string[]; cmd?: string[] }): string {
  const layout = path.join(dir, 'layout-' + crypto.randomBytes(4).toString('hex'));
  const blobs = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const blob = (b: Buffer) => {
    const h = crypto.createHash('sha256').update(b).digest('hex');
    fs.writeFileSync(path.join(blobs, h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const tar = spawnSync('tar', ['--numeric-owner', '-C', rootfs, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
  if (tar.status !== 0) throw new Error(`tar: ${tar.stderr}`);
  const diffId = 'sha256:' + crypto.createHash('sha256').update(tar.stdout).digest('hex');
  const layer = blob(zlib.gzipSync(tar.stdout));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {
          Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
          Entrypoint: cfg.entrypoint,
          Cmd: cfg.cmd ?? ['/bin/sh'],
        },
        rootfs: { type: 'layers', diff_ids: [diffId] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
      }),
    ),
  );
  fs.writeFileSync(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': ref } },
      ],
    }),
  );
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const out = path.join(dir, `image-${crypto.randomBytes(4).toString('hex')}.tar`);
  const t = spawnSync('tar', ['-C', layout, '-cf', out, '.']);
  if (t.status !== 0) throw new Error(`tar: ${t.stderr}`);
  fs.rmSync(layout, { recursive: true, force: true });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tracing: with PAENE_CLIENTS_TRACE=DIR, the runtimes the clients call are wrappers that log
// argv (and copy the bundle's config.json / the exec's process.json) into DIR before exec'ing
// the real binary. Off by default: the clients then call the runtimes directly.

export const TRACE_DIR = process.env.PAENE_CLIENTS_TRACE;

/** The path a client should be given for the runtime: the real binary, or its tracing wrapper. */
export function runtimePath(rt: Rt, realRunc = '/usr/sbin/runc'): string {
  const real = rt === 'paene' ? PAENE_RUNC : realRunc;
  if (!TRACE_DIR) return real;
  const bin = path.join(TRACE_DIR, 'bin', rt);
  fs.mkdirSync(bin, { recursive: true });
  const name = rt === 'paene' ? 'paene-runc' : 'runc';
  const w = path.join(bin, name);
  const log = path.join(TRACE_DIR, rt);
  fs.mkdirSync(log, { recursive: true });
  fs.writeFileSync(
    w,
    `#!/bin/sh
# tracing wrapper (test/clients/common.ts): logs argv and the bundle's config.json, then execs ${real}
n=$(date +%s%N)-$$
prev=
for a in "$@"; do
  case "$prev" in
    --bundle|-b) [ -f "$a/config.json" ] && cp "$a/config.json" '${log}/'"$n"-config.json ;;
    --process|-p) [ -f "$a" ] && cp "$a" '${log}/'"$n"-process.json ;;
  esac
  prev="$a"
done
echo "$n $*" >> '${log}/argv.log'
exec '${real}' "$@"
`,
    { mode: 0o755 },
  );
  return w;
}

// ---------------------------------------------------------------------------------------------
// Cleanup helpers: processes we started (found by our temp dir in their command line or the
// daemon's pid), mounts under our roots, cgroups under our parent.

/** Pids whose command line mentions needle (our private temp dir), never our own. */
export function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM a pid we started, wait, then SIGKILL it. */
export async function stopPid(pid: number | undefined, graceMs = 20_000): Promise<void> {
  if (!pid || !alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const end = Date.now() + graceMs;
  while (alive(pid) && Date.now() < end) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
  }
}

/** Unmounts everything mounted under root in the host's mount namespace, deepest first. */
export function unmountUnder(root: string): void {
  for (let pass = 0; pass < 3; pass++) {
    const mps = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m && (m === root || m.startsWith(root + '/')))
      .sort((a, b) => b.length - a.length);
    if (mps.length === 0) return;
    for (const m of mps) spawnSync('umount', ['-l', m]);
  }
}

/** Removes the cgroup directory tree /sys/fs/cgroup/<hierarchy>/<parent> (deepest first), every hierarchy. */
export function removeCgroupTree(parent: string): string[] {
  const left: string[] = [];
  const rm = (d: string) => {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) rm(path.join(d, e.name));
    for (let i = 0; i < 20; i++) {
      try {
        fs.rmdirSync(d);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        // a freezing/dying cgroup: give it a moment
        spawnSync('sleep', ['0.1']);
      }
    }
    left.push(d);
  };
  for (const h of [...fs.readdirSync('/sys/fs/cgroup'), '.']) {
    const d = path.join('/sys/fs/cgroup', h, parent.replace(/^\/+/, ''));
    if (parent.replace(/^\/+/, '') !== '' && fs.existsSync(d)) rm(d);
  }
  return left;
}

/** A network namespace of the test's own (`ip netns add`), loopback up. */
export function makeNetns(name: string): void {
  const r = shSync(['ip', 'netns', 'add', name]);
  if (r.code !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  shSync(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
}

export function deleteNetns(name: string): void {
  shSync(['ip', 'netns', 'delete', name]);
}

/** argv that runs argv inside the netns NAME, joining only its network namespace (not ip netns exec's
 *  new mount namespace and /sys, which would hide /sys/fs/cgroup from a daemon). */
export function inNetns(name: string, argv: string[]): string[] {
  return ['nsenter', `--net=/run/netns/${name}`, '--', ...argv];
}

/** The host path of a process's cgroup directory in hierarchy h (v1 name such as 'memory'). */
export function cgroupDirOf(pid: number, h: string): string {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  for (const l of lines) {
    const [, ctrls, p] = l.split(':');
    if (ctrls !== undefined && p !== undefined && ctrls.split(',').includes(h)) return path.join('/sys/fs/cgroup', h, p);
  }
  throw new CaseError(`pid ${pid} has no ${h} cgroup: ${lines.join(' | ')}`);
}

export function readCg(pid: number, h: string, file: string): string {
  const p = path.join(cgroupDirOf(pid, h), file);
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch (e) {
    fail(`read ${p}: ${(e as Error).message}`);
  }
}

/**
 * Declares one vitest case that runs fn with runc and with paene-runc (each with its own
 * container name; side by side unless order says otherwise), calls cleanup(name) before and
 * after each, records both outcomes in m and fails when runc passes and paene-runc does not.
 */
export function matrixCase(
  m: Matrix,
  itFn: (name: string, fn: () => Promise<void>, timeout: number) => void,
  name: string,
  fn: (rt: Rt, cname: string) => Promise<void>,
  cleanup: (cname: string) => Promise<unknown>,
  timeout = 300_000,
  order: CaseOrder = 'side by side',
): void {
  const slug = name
    .replace(/[^a-z0-9]+/gi, '-')
    .replace(/^-|-$/g, '')
    .toLowerCase();
  itFn(
    name,
    async () => {
      const o = await m.both(
        name,
        async (rt) => {
          const cname = `${rt}-${slug}`.slice(0, 60);
          await cleanup(cname);
          try {
            await fn(rt, cname);
          } finally {
            await cleanup(cname);
          }
        },
        order,
      );
      if (!o.runc.ok) console.warn(`[${m.client}] ${name}: fails with runc too (not counted against paene-runc): ${o.runc.err}`);
      const v = Matrix.verdict(name, o);
      if (v) throw new Error(v);
    },
    timeout,
  );
}

/** Quotes argv for sh -c. */
export function shq(argv: string[]): string {
  return argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
}

/** Runs a shell command line under a pty (script(1)), so a client's `-t` has a terminal. */
export function underPty(cmdline: string, opts: RunOpts = {}): Promise<Res> {
  // With no input, script(1)'s stdin stays open: at the end of an empty stdin it writes ^D to the pty, which
  // Podman forwards to conmon's attach socket; conmon exits without reading it, the unread byte resets the
  // socket, and Podman loses output already on its way (with runc too: docs/oci.md).
  return sh(['script', '-qefc', cmdline, '/dev/null'], { holdStdin: opts.input === undefined, ...opts });
}

/** This process's hard limit of an rlimit (/proc/self/limits row name), or undefined when unlimited. */
export function hardLimit(row: string): number | undefined {
  const l = fs
    .readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((x) => x.startsWith(row));
  const v = l?.slice(row.length).trim().split(/\s+/)[1];
  return v === undefined || v === 'unlimited' ? undefined : Number(v);
}

/** Pids of every process in the cgroup tree <parent> of any hierarchy (processes our clients started there). */
export function pidsInCgroupTree(parent: string): number[] {
  const rel = parent.replace(/^\/+/, '');
  const out = new Set<number>();
  if (!rel) return [];
  const walk = (d: string) => {
    try {
      for (const p of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) out.add(Number(p));
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {
      /* gone */
    }
  };
  for (const h of [...fs.readdirSync('/sys/fs/cgroup'), '.']) walk(path.join('/sys/fs/cgroup', h, rel));
  out.delete(process.pid);
  return [...out];
}

/** Command line of a pid, NULs as spaces ('' when gone). */
export function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}
