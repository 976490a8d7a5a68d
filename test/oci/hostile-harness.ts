// The harness of test/oci/hostile.test.ts: hostile bundles run against runc
// (the witness) and paene-runc, each judged from the host.
//
// Every case gets, per runtime, its own directory (bundle, /out bound into the
// container, copies of the image it spoils), its own container id and cgroup
// below /paene-hostile-test-<pid>. Runtime calls are bounded (45 s); every
// container process is bounded too (sleep/timeout limits) and `delete --force`
// ends it; host-side helpers are ended by their pid.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type Verdict = 'blocked' | 'escaped';
export interface Outcome {
  verdict: Verdict;
  detail: string;
}
export const blocked = (detail: string): Outcome => ({ verdict: 'blocked', detail });
export const escaped = (detail: string): Outcome => ({ verdict: 'escaped', detail });

export type RuntimeName = 'runc' | 'paene-runc';
export interface RuntimeDef {
  name: RuntimeName;
  bin: string;
  short: string;
  /** the runtime's own programs on the host: a guest must never reach one of them for writing */
  hostBins: string[];
}

export interface CallResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** the first line of stderr: the runtime's error, for the details */
  msg: string;
}

/** Capability names by bit (linux/capability.h). */
export const CAP_BY_BIT = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** Every capability this host's bounding set still has (a host may have dropped some). */
export function hostCaps(): string[] {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  const mask = BigInt('0x' + (m?.[1] ?? '0'));
  return CAP_BY_BIT.filter((_, i) => ((mask >> BigInt(i)) & 1n) === 1n);
}

export function capSets(names: string[], o: { inheritable?: boolean; ambient?: boolean } = {}): Record<string, string[]> {
  const c: Record<string, string[]> = { bounding: names, effective: names, permitted: names };
  if (o.inheritable) c.inheritable = names;
  if (o.ambient) c.ambient = names;
  return c;
}

export const MASKED = [
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];
export const READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface MountLine {
  id: number;
  parent: number;
  root: string;
  mountPoint: string;
  options: string[];
  fsType: string;
  source: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountinfo(text: string): MountLine[] {
  const out: MountLine[] = [];
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    const g = post.split(' ');
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      root: unescape(f[3]),
      mountPoint: unescape(f[4]),
      options: f[5].split(','),
      fsType: g[0],
      source: g[1],
    });
  }
  return out;
}

export function readMountinfo(pid: number | 'self'): MountLine[] {
  try {
    return parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
  } catch {
    return [];
  }
}

/** "major:minor" of a stat st_dev (the kernel's new_encode_dev layout). */
export function devString(d: bigint): string {
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export interface BinInfo {
  path: string;
  dev: string;
  ino: string;
  sha: string;
}

export function binInfo(p: string): BinInfo {
  const st = fs.statSync(p, { bigint: true });
  return {
    path: p,
    dev: devString(st.dev),
    ino: String(st.ino),
    sha: crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'),
  };
}

export interface SeenExe {
  dev: string;
  ino: number;
  ro: boolean;
  direct?: string;
  reopen: string;
  argv0: string;
  pid?: number;
}

/**
 * The CVE-2019-5736 judgement: a guest (or the container's own process) that holds the runtime's
 * host binary on a writable mount can overwrite it once the runtime stops running it. runc 1.1
 * shows the same inode too, but through a read-only bind mount: reaching it is not a hole;
 * reaching it where a write can land (a writable mount, or a reopen for writing that worked) is.
 */
export function judgeExe(before: BinInfo[], after: BinInfo[], seen: SeenExe[] | undefined, what: string): Outcome {
  for (const [i, b] of before.entries()) {
    const a = after[i];
    if (a && a.ino === b.ino && a.dev === b.dev && a.sha !== b.sha) return escaped(`${path.basename(b.path)} changed on the host (sha256)`);
  }
  if (!seen) return escaped(`no report from ${what}`);
  let ro = 0;
  for (const s of seen) {
    const b = before.find((x) => x.dev === s.dev && x.ino === String(s.ino));
    if (!b) continue;
    if (!s.ro || s.reopen === 'ok' || s.direct === 'ok') {
      return escaped(
        `${what} held host ${path.basename(b.path)} (${s.dev}:${s.ino}) writable: mount ${s.ro ? 'ro' : 'rw'}, reopen O_WRONLY ${s.reopen}`,
      );
    }
    ro++;
  }
  return blocked(
    `${seen.length} exe(s) seen by ${what}${ro ? `, the host binary only through a read-only mount (${ro})` : ', none a host runtime binary'}`,
  );
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(cond: () => boolean, ms = 30_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(25);
  }
  return cond();
}

export function readJson(file: string): any {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8').trim().split('\n')[0]);
  } catch {
    return undefined;
  }
}

const CALL_TIMEOUT = 45_000;

export class Harness {
  readonly cgParent = `paene-hostile-test-${process.pid}`;
  readonly token = `hostile-token-${crypto.randomBytes(12).toString('hex')}`;
  /** rootfs every case may use read-only: the base image with /probe, /out and /host added */
  base = '';
  probe = '';
  secretDir = '';
  handle = { hex: '', type: '' };
  preloadDir = '';
  /** host processes this suite started (watchers, listeners): ended by pid */
  readonly hostChildren = new Map<number, ChildProcess>();
  /** undo steps a case registered (host sysctls it might have changed) */
  readonly restores: (() => void)[] = [];
  private n = 0;

  constructor(
    readonly root: string,
    readonly runtimes: RuntimeDef[],
  ) {}

  stateOf(rt: RuntimeDef): string {
    return path.join(this.root, 'state-' + rt.short);
  }

  async setup(imageRootfs: string, probeSource: string): Promise<void> {
    fs.mkdirSync(this.root, { recursive: true });
    this.probe = path.join(this.root, 'probe');
    const cc = spawnSync('cc', ['-O2', '-static', '-o', this.probe, probeSource], { encoding: 'utf8', timeout: 120_000 });
    if (cc.status !== 0) throw new Error(`cannot compile ${probeSource}: ${cc.stderr}`);
    this.secretDir = path.join(this.root, 'host-secret');
    fs.mkdirSync(this.secretDir, { mode: 0o700 });
    fs.writeFileSync(path.join(this.secretDir, 'secret'), this.token + '\n', { mode: 0o600 });
    const h = readJson(this.hostProbe(['mkhandle', path.join(this.secretDir, 'secret')]));
    if (h?.ok === 'ok') this.handle = { hex: h.hex, type: String(h.type) };
    this.base = path.join(this.root, 'base');
    this.copyTree(imageRootfs, this.base);
    fs.copyFileSync(this.probe, path.join(this.base, 'probe'));
    fs.chmodSync(path.join(this.base, 'probe'), 0o755);
    for (const d of ['out', 'host']) fs.mkdirSync(path.join(this.base, d), { recursive: true });
    // a library that says where it was loaded: the host copy must never be (see the LD_PRELOAD case)
    this.preloadDir = path.join(this.root, 'preload');
    fs.mkdirSync(this.preloadDir);
    const src = path.join(this.preloadDir, 'evil.c');
    fs.writeFileSync(
      src,
      [
        '#define _GNU_SOURCE',
        '#include <fcntl.h>',
        '#include <stdio.h>',
        '#include <string.h>',
        '#include <unistd.h>',
        '__attribute__((constructor)) static void hostile_preload(void) {',
        `  int fd = open("${this.preloadDir}/log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);`,
        '  if (fd < 0) return;',
        '  char exe[512] = "", ns[64] = "", line[700];',
        '  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1); if (n > 0) exe[n] = 0;',
        '  n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1); if (n > 0) ns[n] = 0;',
        '  int k = snprintf(line, sizeof line, "%s %s\\n", ns, exe);',
        '  if (write(fd, line, (size_t)k) < 0) {}',
        '  close(fd);',
        '}',
      ].join('\n'),
    );
    const so = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', path.join(this.preloadDir, 'evil.so'), src], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (so.status !== 0) throw new Error(`cannot compile the preload library: ${so.stderr}`);
  }

  copyTree(from: string, to: string): void {
    const r = spawnSync('cp', ['-a', from, to], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`cp -a ${from} ${to}: ${r.stderr}`);
  }

  /** Runs the probe on the host, synchronously; the path of its JSON. */
  hostProbe(args: string[]): string {
    const out = path.join(this.root, `host-probe-${++this.n}.json`);
    spawnSync(this.probe, ['-o', out, ...args], { timeout: 30_000, stdio: 'ignore' });
    return out;
  }

  /** A host helper that outlives this call (a watcher, a listener): tracked, ended by its pid. */
  startHost(args: string[]): ChildProcess {
    const c = spawn(this.probe, args, { stdio: 'ignore' });
    if (c.pid) this.hostChildren.set(c.pid, c);
    c.on('exit', () => c.pid && this.hostChildren.delete(c.pid));
    return c;
  }

  ctx(caseIndex: number, slug: string, rt: RuntimeDef): Ctx {
    return new Ctx(this, rt, caseIndex, slug);
  }

  /** Mount points below DIR in the host's namespace, deepest first. */
  mountsBelow(dir: string): string[] {
    return readMountinfo('self')
      .map((m) => m.mountPoint)
      .filter((p) => p === dir || p.startsWith(dir + '/'))
      .sort((a, b) => b.length - a.length);
  }

  cgroupDirs(id?: string): string[] {
    const out: string[] = [];
    for (const h of [...fs.readdirSync('/sys/fs/cgroup'), '.']) {
      const d = path.join('/sys/fs/cgroup', h, this.cgParent, ...(id ? [id] : []));
      if (fs.existsSync(d)) out.push(d);
    }
    return out;
  }

  /** After every case, also a failed one: containers, host helpers, mounts, cgroups, sysctls, files. */
  async cleanup(dirs: string[]): Promise<void> {
    for (const [pid, c] of this.hostChildren) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      if (c.exitCode === null && c.signalCode === null) await new Promise((r) => c.once('exit', r)).catch(() => undefined);
      this.hostChildren.delete(pid);
    }
    for (const rt of this.runtimes) {
      const state = this.stateOf(rt);
      for (const id of fs.existsSync(state) ? fs.readdirSync(state) : []) {
        spawnSync(rt.bin, ['--root', state, 'delete', '--force', id], { timeout: CALL_TIMEOUT, stdio: 'ignore' });
        // a runtime that cannot delete its own container: end what is left in its cgroup by pid
        for (const d of this.cgroupDirs(id)) {
          for (const pid of readProcs(d)) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone */
            }
          }
        }
        if (fs.existsSync(path.join(state, id))) fs.rmSync(path.join(state, id), { recursive: true, force: true });
      }
    }
    for (const p of this.mountsBelow(this.root)) spawnSync('umount', ['-l', p], { timeout: 30_000, stdio: 'ignore' });
    for (const d of this.cgroupDirs()) {
      for (const child of fs.readdirSync(d, { withFileTypes: true })) {
        if (!child.isDirectory()) continue;
        await rmdirRetry(path.join(d, child.name));
      }
    }
    while (this.restores.length) {
      try {
        this.restores.pop()?.();
      } catch {
        /* best effort; reported by the case */
      }
    }
    for (const d of dirs) this.removeDir(d);
  }

  /** rm -rf, but never through a mount point (a bind of a host directory left behind). */
  removeDir(d: string): void {
    if (!fs.existsSync(d)) return;
    if (this.mountsBelow(d).length > 0) {
      console.warn(`hostile: leaving ${d}: mounts remain below it`);
      return;
    }
    fs.rmSync(d, { recursive: true, force: true });
  }

  async finish(): Promise<void> {
    await this.cleanup([]);
    for (const d of this.cgroupDirs()) await rmdirRetry(d);
    this.removeDir(this.root);
  }
}

function readProcs(dir: string): number[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function rmdirRetry(d: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      fs.rmdirSync(d);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') return;
      await sleep(50);
    }
  }
}

/** One case against one runtime. */
export class Ctx {
  readonly id: string;
  readonly dir: string;
  readonly out: string;
  private calls = 0;

  constructor(
    readonly h: Harness,
    readonly rt: RuntimeDef,
    readonly index: number,
    slug: string,
  ) {
    this.id = `h${index}-${rt.short}`;
    this.dir = path.join(h.root, `${String(index).padStart(2, '0')}-${slug}-${rt.short}`);
    this.out = path.join(this.dir, 'out');
    fs.mkdirSync(this.out, { recursive: true });
    fs.chmodSync(this.out, 0o777);
  }

  get state(): string {
    return this.h.stateOf(this.rt);
  }
  get logFile(): string {
    return path.join(this.dir, 'runtime-log.json');
  }
  get cgroupsPath(): string {
    return `/${this.h.cgParent}/${this.id}`;
  }

  /** A copy of the base image this case may spoil (symlinks, scripts, planted files). */
  hostileRootfs(modify: (root: string) => void = () => undefined): string {
    const r = path.join(this.dir, 'rootfs');
    this.h.copyTree(this.h.base, r);
    modify(r);
    return r;
  }

  config(args: string[], o: { rootfs?: string } = {}): Record<string, any> {
    return {
      ociVersion: '1.0.2',
      root: { path: o.rootfs ?? this.h.base, readonly: o.rootfs === undefined },
      process: {
        cwd: '/',
        args,
        env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
        user: { uid: 0, gid: 0 },
        capabilities: capSets(['CAP_KILL']),
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      },
      hostname: this.id,
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        {
          destination: '/dev/pts',
          type: 'devpts',
          source: 'devpts',
          options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
        },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
        { destination: '/out', type: 'bind', source: this.out, options: ['rbind', 'rw'] },
      ],
      linux: {
        namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }],
        cgroupsPath: this.cgroupsPath,
        resources: { devices: [{ allow: false, access: 'rwm' }], pids: { limit: 512 } },
        maskedPaths: [...MASKED],
        readonlyPaths: [...READONLY],
      },
    };
  }

  /** bundle DIR/bundle with config.json (the config, changed by `patch`); returns the bundle path. */
  bundle(args: string[], patch: (c: Record<string, any>) => void = () => undefined, o: { rootfs?: string; name?: string } = {}): string {
    const c = this.config(args, o);
    patch(c);
    return this.rawBundle(JSON.stringify(c, null, 1), o.name);
  }

  rawBundle(text: string | Buffer[], name = 'bundle'): string {
    const b = path.join(this.dir, name);
    fs.mkdirSync(b, { recursive: true });
    const file = path.join(b, 'config.json');
    if (typeof text === 'string') fs.writeFileSync(file, text);
    else {
      const fd = fs.openSync(file, 'w');
      for (const part of text) fs.writeSync(fd, part);
      fs.closeSync(fd);
    }
    return b;
  }

  /**
   * `RUNTIME --root STATE --log LOG --log-format json ARGS`, stdio in files (a container that
   * outlives the call keeps them; stdin is the host's /dev/null), bounded in time; `extraFd`: the
   * caller holds that fd as its fd 20 (or `extraFdAt`), not close-on-exec.
   */
  async call(args: string[], o: { extraFd?: number; extraFdAt?: number; timeoutMs?: number } = {}): Promise<CallResult> {
    const n = ++this.calls;
    const outFile = path.join(this.dir, `call-${n}.stdout`);
    const errFile = path.join(this.dir, `call-${n}.stderr`);
    const out = fs.openSync(outFile, 'w');
    const err = fs.openSync(errFile, 'w');
    const stdio: (number | 'ignore')[] = ['ignore', out, err];
    if (o.extraFd !== undefined) {
      while (stdio.length < (o.extraFdAt ?? 20)) stdio.push('ignore');
      stdio.push(o.extraFd);
    }
    const child = spawn(this.rt.bin, ['--root', this.state, '--log', this.logFile, '--log-format', 'json', ...args], { stdio });
    fs.closeSync(out);
    fs.closeSync(err);
    let timedOut = false;
    const done = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      child.once('exit', (code, signal) => resolve([code, signal]));
      child.once('error', () => resolve([null, null]));
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }, o.timeoutMs ?? CALL_TIMEOUT);
    const [code, signal] = await done;
    clearTimeout(timer);
    const stdout = fs.readFileSync(outFile, 'utf8');
    const stderr = fs.readFileSync(errFile, 'utf8');
    return { code, signal, timedOut, stdout, stderr, msg: stderr.trim().split('\n')[0]?.slice(0, 160) ?? '' };
  }

  outFile(name: string): string {
    return path.join(this.out, name);
  }
  readOut(name: string): any {
    return readJson(this.outFile(name));
  }
  async waitOut(name: string, ms = 30_000): Promise<any> {
    await waitFor(() => readJson(this.outFile(name)) !== undefined, ms);
    return this.readOut(name);
  }
  touchOut(name: string): void {
    fs.writeFileSync(this.outFile(name), '');
  }
  pidFile(): string {
    return path.join(this.dir, 'container.pid');
  }
  pid(): number {
    try {
      return Number(fs.readFileSync(this.pidFile(), 'utf8').trim()) || 0;
    } catch {
      return 0;
    }
  }

  /** Everything the guest could have written or printed: the host secret must not be in it. */
  sawToken(...more: string[]): boolean {
    const texts = [...more];
    for (const f of fs.readdirSync(this.out)) {
      try {
        texts.push(fs.readFileSync(path.join(this.out, f), 'utf8'));
      } catch {
        /* a socket or a directory */
      }
    }
    for (const f of fs.readdirSync(this.dir)) if (f.startsWith('call-')) texts.push(fs.readFileSync(path.join(this.dir, f), 'utf8'));
    return texts.some((t) => t.includes(this.h.token));
  }

  /** What a refused or finished container left: its state, its cgroup. */
  leftovers(): string[] {
    const left: string[] = [];
    if (fs.existsSync(path.join(this.state, this.id))) left.push(`state ${path.join(this.state, this.id)}`);
    for (const d of this.h.cgroupDirs(this.id)) left.push(`cgroup ${d}`);
    return left;
  }

  runtimeBins(): BinInfo[] {
    return this.rt.hostBins.map(binInfo);
  }
}
