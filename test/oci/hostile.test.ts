// Hostile bundles on the real kernel: each case is run against runc (the
// witness: on this machine it blocks every case kept here) and against
// bin/paene-runc, and judged from the host (its files, its mount tables, the
// probe's JSON, exit statuses), never from the runtime's word alone.
//
// A case's verdict is `blocked` or `escaped`; both runtimes must block. The
// table of verdicts is printed at the end. The guest's hands are
// test/oci/hostile-probe.c (static, compiled in beforeAll); the harness is
// test/oci/hostile-harness.ts.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_IMAGE } from '../../src/image/store.js';
import { openImageStore, storeImageSource } from '../../src/runtime/open.js';
import { seedBaseImage } from '../fixture.js';
import { describeReal, tempRoot } from '../helpers.js';
import {
  Harness,
  MASKED,
  binInfo,
  READONLY,
  blocked,
  capSets,
  escaped,
  hostCaps,
  judgeExe,
  readJson,
  readMountinfo,
  sleep,
  waitFor,
  type BinInfo,
  type Ctx,
  type Outcome,
  type RuntimeDef,
  type RuntimeName,
  type SeenExe,
} from './hostile-harness.js';

const which = (p: string) => spawnSync('sh', ['-c', `command -v ${p}`], { encoding: 'utf8' }).stdout.trim();
const realpath = (p: string) => {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
};

const RUNC_BIN = which('runc') || 'runc';
const NATIVE = path.resolve('dist/native');
const RUNTIMES: RuntimeDef[] = [
  { name: 'runc', bin: RUNC_BIN, short: 'r', hostBins: [realpath(RUNC_BIN)] },
  {
    name: 'paene-runc',
    bin: path.resolve('bin/paene-runc'),
    short: 'p',
    // paene-oci, paene-helper, paene-init and every other native program of the build, the front
    // door (bin/paene-runc) and the node that runs it
    hostBins: [
      ...new Set(
        [
          ...(fs.existsSync(NATIVE) ? fs.readdirSync(NATIVE).map((n) => path.join(NATIVE, n)) : []),
          realpath(path.resolve('bin/paene-runc')),
          realpath(process.execPath),
        ].filter((p) => fs.existsSync(p) && fs.statSync(p).isFile()),
      ),
    ],
  },
];

interface HostileCase {
  name: string;
  slug: string;
  run(c: Ctx): Promise<Outcome>;
}

const SECCOMP_NO_HANDLES = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64'],
  syscalls: [{ names: ['open_by_handle_at', 'name_to_handle_at'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
};
const ZERO_CAPS = '0000000000000000';

// ---------------------------------------------------------------- judgements shared by cases

/** The container's process is who the config says: uid 1000, no capabilities, NNP, the filter; or the runtime refused. */
function judgeConfined(c: Ctx, r: { code: number | null; msg: string; timedOut: boolean }, s: any, what = 'the process'): Outcome {
  if (c.sawToken()) return escaped(`${what} read the host secret`);
  if (r.timedOut) return escaped('the runtime hung (killed after 45 s)');
  if (!s) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : escaped(`${what} ran (exit 0) but gave no report`);
  const bad: string[] = [];
  if (s.uid !== 1000 || s.euid !== 1000) bad.push(`uid ${s.uid}/${s.euid}`);
  if (s.capEff !== ZERO_CAPS || s.capPrm !== ZERO_CAPS) bad.push(`CapEff ${s.capEff}`);
  if (s.nnp !== '1') bad.push(`NoNewPrivs ${s.nnp}`);
  if (s.seccomp !== '2') bad.push(`Seccomp ${s.seccomp}`);
  if (s.handle === 'ok') bad.push('open_by_handle_at worked');
  return bad.length ? escaped(`${what}: ${bad.join(', ')}`) : blocked(`${what}: uid 1000, CapEff 0, NNP 1, seccomp 2`);
}

/** CVE-2024-21626: the guest's fds, cwd and what it read. */
function judgeFds(c: Ctx, r: { code: number | null; msg: string }, s: any): Outcome {
  if (c.sawToken()) return escaped('the guest read the host secret');
  if (!s) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : blocked('the process did not run (no report)');
  const extra = (s.fds as { fd: number; target: string }[]).filter((f) => f.fd > 2);
  if (extra.length) return escaped(`the guest holds fd ${extra.map((f) => `${f.fd} -> ${f.target}`).join(', ')}`);
  if (typeof s.cwd !== 'string' || !s.cwd.startsWith('/')) return escaped(`the guest's cwd is outside its root: ${s.cwd}`);
  return blocked(`fds 0-2 only, cwd ${s.cwd}`);
}

/** A runtime that ran to the end or refused, without a crash, a hang or anything left behind. */
function judgeClean(c: Ctx, r: { code: number | null; msg: string; stderr: string; timedOut: boolean }): Outcome {
  if (r.timedOut) return escaped('the runtime hung (killed after 45 s)');
  const all = r.stderr + (fs.existsSync(c.logFile) ? fs.readFileSync(c.logFile, 'utf8') : '');
  if (/Maximum call stack|RangeError|^\s+at \S+ \(|goroutine \d+ \[/m.test(all)) return escaped(`crashed: ${r.msg}`);
  if (r.code === null) return escaped('the runtime was killed by a signal');
  const left = c.leftovers();
  if (left.length) return escaped(`left behind: ${left.join(', ')}`);
  if (r.code !== 0) return r.msg ? blocked(`refused: ${r.msg}`) : escaped('failed without a message');
  return c.readOut('s.json') ? blocked('ran and cleaned up') : escaped('exit 0 but the process never ran');
}

/** A config that must be refused, or be applied without touching the host's value of `file`. */
function judgeHostValue(r: { code: number | null; msg: string }, file: string, before: string): Outcome {
  const after = fs.readFileSync(file, 'utf8');
  if (after !== before) return escaped(`the host's ${file} changed: ${JSON.stringify(after.trim())}`);
  return r.code !== 0 ? blocked(`refused: ${r.msg}`) : blocked(`ran; the host's ${path.basename(file)} is unchanged`);
}

/** Starts the container detached with a pid file; the pid, or the refusal. */
async function runDetached(c: Ctx, b: string, extra: string[] = []): Promise<{ pid: number; r: Awaited<ReturnType<Ctx['call']>> }> {
  const r = await c.call(['run', '--detach', '--pid-file', c.pidFile(), ...extra, '--bundle', b, c.id]);
  return { pid: r.code === 0 ? c.pid() : 0, r };
}

// ---------------------------------------------------------------- CVE-2019-5736: the runtime's binary

/** The guest watches /proc/[0-9]* /exe (SIGSTOPping new pids) while the host runs `exec` N times. */
async function exeRace(
  c: Ctx,
  o: {
    ptrace: boolean;
    execArgs: string[];
    times: number;
    rootfs?: string;
    bins?: () => BinInfo[];
    patch?: (cfg: Record<string, any>) => void;
  },
): Promise<Outcome> {
  const caps = hostCaps().filter((x) => o.ptrace || x !== 'CAP_SYS_PTRACE');
  const b = c.bundle(
    ['/probe', 'exewatch', '/out', '90000', 'stop'],
    (cfg) => {
      cfg.process.capabilities = capSets(caps, { inheritable: true, ambient: true });
      o.patch?.(cfg);
    },
    { rootfs: o.rootfs },
  );
  const bins = o.bins ?? (() => c.runtimeBins());
  const before = bins();
  const { r } = await runDetached(c, b);
  if (r.code !== 0) return blocked(`refused: ${r.msg}`);
  if (!(await waitFor(() => fs.existsSync(c.outFile('ready'))))) return escaped('the guest watcher never started');
  let ok = 0;
  for (let i = 0; i < o.times; i++) if ((await c.call(['exec', c.id, ...o.execArgs])).code === 0) ok++;
  c.touchOut('stop');
  const w = await c.waitOut('exewatch.json');
  const v = judgeExe(before, bins(), w?.seen as SeenExe[] | undefined, 'the guest');
  return { ...v, detail: `${v.detail}; ${ok}/${o.times} execs exit 0` };
}

/** The host watches the container's own process (its init, then what `start` execs). */
async function initWatch(c: Ctx, rootfs: string, args: string[]): Promise<Outcome> {
  const caps = hostCaps();
  const b = c.bundle(args, (cfg) => (cfg.process.capabilities = capSets(caps, { inheritable: true, ambient: true })), { rootfs });
  const before = c.runtimeBins();
  const cr = await c.call(['create', '--pid-file', c.pidFile(), '--bundle', b, c.id]);
  if (cr.code !== 0) return blocked(`refused: ${cr.msg}`);
  const pid = c.pid();
  const ready = path.join(c.dir, 'hostwatch.ready');
  const out = path.join(c.dir, 'hostwatch.json');
  c.h.startHost(['-o', out, 'hostwatch', String(pid), '20000', ready]);
  await waitFor(() => fs.existsSync(ready));
  const sr = await c.call(['start', c.id]);
  await waitFor(() => readJson(out) !== undefined, 40_000);
  const v = judgeExe(before, c.runtimeBins(), readJson(out)?.seen, 'the container process');
  return { ...v, detail: `${v.detail}; start exit ${sr.code}` };
}

const evilImage = (r: string) => {
  fs.writeFileSync(path.join(r, 'usr/bin/evil'), '#!/proc/self/exe\n', { mode: 0o755 });
  fs.symlinkSync('/proc/self/exe', path.join(r, 'usr/bin/selfexe'));
};

// ---------------------------------------------------------------- CVE-2024-21626: the caller's fds

async function withSecretFd<T>(c: Ctx, f: (fd: number) => Promise<T>): Promise<T> {
  const fd = fs.openSync(c.h.secretDir, 'r');
  try {
    return await f(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const FD_SCRIPT = (read: string) => ['/bin/sh', '-c', `/probe -o /out/s.json status; /probe -o /out/r.json read ${read}`];

// ---------------------------------------------------------------- hostile images and configs

/** The mount for a symlinked destination: refused, or made inside the root (never at the host path). */
async function mountDestSymlink(
  c: Ctx,
  link: (root: string, hostTarget: string) => void,
  mount: Record<string, unknown>,
): Promise<Outcome> {
  const hostTarget = path.join(c.dir, 'host-target');
  fs.mkdirSync(hostTarget);
  fs.writeFileSync(path.join(hostTarget, 'host-file'), 'host');
  const rootfs = c.hostileRootfs((r) => link(r, hostTarget));
  // no tmpfs on /tmp: the in-root resolution of the symlink (below /tmp, as the host path is) stays the image's
  const b = c.bundle(
    ['/bin/sleep', '60'],
    (cfg) => {
      cfg.mounts = cfg.mounts.filter((m: { destination: string }) => m.destination !== '/tmp');
      cfg.mounts.push(mount);
    },
    { rootfs },
  );
  const { pid, r } = await runDetached(c, b);
  const hostMounts = readMountinfo('self').filter((m) => m.mountPoint === hostTarget || m.mountPoint.startsWith(hostTarget + '/'));
  const listing = fs.readdirSync(hostTarget).sort().join(',');
  if (hostMounts.length) return escaped(`a mount appeared at the host path ${hostTarget}`);
  if (listing !== 'host-file') return escaped(`the host directory changed: ${listing}`);
  if (r.code !== 0) return blocked(`refused: ${r.msg}`);
  const inside = readMountinfo(pid).filter((m) => m.mountPoint === hostTarget || m.mountPoint === '/evil');
  if (inside.length === 0) return escaped('the configured mount is nowhere inside the container: it was made outside its root');
  return blocked(`mounted inside the root at ${inside[0].mountPoint}`);
}

/** /proc must be procfs, mounted on the ordinary directory /proc, with nothing from the config inside it. */
async function procCase(c: Ctx, rootfs: string | undefined, patch: (cfg: Record<string, any>) => void): Promise<Outcome> {
  const fake = path.join(c.dir, 'fakeproc');
  fs.mkdirSync(path.join(fake, 'sys/kernel'), { recursive: true });
  fs.writeFileSync(path.join(fake, 'sys/kernel/hostname'), 'fake-hostname\n');
  const b = c.bundle(['/bin/sh', '-c', '/probe -o /out/h.json read /proc/sys/kernel/hostname; exec sleep 60'], (cfg) => patch(cfg), {
    rootfs,
  });
  const { pid, r } = await runDetached(c, b);
  if (r.code !== 0) return blocked(`refused: ${r.msg}`);
  await c.waitOut('h.json', 10_000);
  const h = c.readOut('h.json');
  if (h?.data?.includes('fake-hostname')) return escaped("the guest's /proc/sys/kernel/hostname is the config's fake file");
  const mounts = readMountinfo(pid);
  const atProc = mounts.filter((m) => m.mountPoint === '/proc').pop();
  if (!atProc || atProc.fsType !== 'proc') return escaped(`/proc is ${atProc ? atProc.fsType : 'not a mount point'}`);
  const procElsewhere = mounts.filter((m) => m.fsType === 'proc' && m.mountPoint !== '/proc' && !m.mountPoint.startsWith('/proc/'));
  if (procElsewhere.length) return escaped(`procfs mounted at ${procElsewhere.map((m) => m.mountPoint).join(', ')}`);
  const inside = mounts.filter((m) => m.mountPoint.startsWith('/proc/') && m.fsType !== 'proc' && !MASKED.includes(m.mountPoint));
  if (inside.length) return escaped(`a ${inside[0].fsType} mount inside /proc at ${inside[0].mountPoint}`);
  const st = fs.lstatSync(`/proc/${pid}/root/proc`);
  if (!st.isDirectory()) return escaped('/proc in the container is not a directory');
  return blocked('ran with procfs on /proc and nothing inside it from the config');
}

async function sysctlCase(c: Ctx, key: string, value: (cur: string) => string, ns: string[]): Promise<Outcome> {
  const file = '/proc/sys/' + key.replace(/\./g, '/');
  const before = fs.readFileSync(file, 'utf8');
  c.h.restores.push(() => {
    if (fs.readFileSync(file, 'utf8') !== before) fs.writeFileSync(file, before);
  });
  const b = c.bundle(['/bin/true'], (cfg) => {
    cfg.linux.namespaces = ns.map((type) => ({ type }));
    cfg.linux.sysctl = { [key]: value(before.trim()) };
  });
  const r = await c.call(['run', '--bundle', b, c.id]);
  return judgeHostValue(r, file, before);
}

/** The host's / bound rbind (read-only when `ro`) into a guest without CAP_SYS_ADMIN. */
async function hostRoot(c: Ctx, ro: boolean): Promise<Outcome> {
  const target = `/host${c.h.secretDir}`;
  const pwned = path.join(c.h.secretDir, `pwned-${c.id}`);
  const script = `/probe -o /out/m.json mountrw /host; /probe -o /out/c.json create ${target}/pwned-${c.id}; /probe -o /out/w.json openw ${target}/secret`;
  const caps = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETUID', 'CAP_SETGID'];
  const b = c.bundle(['/bin/sh', '-c', script], (cfg) => {
    cfg.process.capabilities = capSets(caps);
    cfg.mounts.push({ destination: '/host', type: 'bind', source: '/', options: ro ? ['rbind', 'ro'] : ['rbind'] });
  });
  const r = await c.call(['run', '--bundle', b, c.id]);
  const wrote = fs.existsSync(pwned);
  fs.rmSync(pwned, { force: true });
  if (wrote) return escaped(`created ${pwned} on the host`);
  const [m, cr, w] = ['m.json', 'c.json', 'w.json'].map((f) => c.readOut(f));
  if (!m || !cr || !w) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : escaped('no report');
  if (m.bind === 'ok' || m.plain === 'ok') return escaped('remounted /host read-write');
  if (cr.open === 'ok' || w.open === 'ok') return escaped('opened a host file for writing');
  return blocked(`remount ${m.bind}/${m.plain}, create ${cr.open}, open for writing ${w.open}`);
}

/** A setuid-root copy of the probe in the image, run by uid 1000 without capabilities. */
async function setuidCase(c: Ctx, nnp: boolean): Promise<Outcome> {
  const rootfs = c.hostileRootfs((r) => {
    fs.copyFileSync(path.join(r, 'probe'), path.join(r, 'suid'));
    fs.chownSync(path.join(r, 'suid'), 0, 0);
    fs.chmodSync(path.join(r, 'suid'), 0o4755);
  });
  const b = c.bundle(
    ['/suid', '-o', '/out/s.json', 'status'],
    (cfg) => {
      Object.assign(cfg.process, { user: { uid: 1000, gid: 1000 }, capabilities: capSets([]), noNewPrivileges: nnp });
    },
    { rootfs },
  );
  const r = await c.call(['run', '--bundle', b, c.id]);
  const s = c.readOut('s.json');
  if (!s) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : escaped('no report');
  if (s.euid !== 1000 || s.capEff !== ZERO_CAPS) return escaped(`euid ${s.euid}, CapEff ${s.capEff}`);
  return blocked(`euid 1000, NNP ${s.nnp}`);
}

// ---------------------------------------------------------------- the cases

const CASES: HostileCase[] = [
  {
    name: 'CVE-2019-5736: exec x20 while a root guest with every capability opens /proc/*/exe',
    slug: 'exe-exec',
    run: (c) => exeRace(c, { ptrace: true, execArgs: ['/bin/true'], times: 20 }),
  },
  {
    name: 'CVE-2019-5736: exec x20, guest without CAP_SYS_PTRACE',
    slug: 'exe-exec-noptrace',
    run: (c) => exeRace(c, { ptrace: false, execArgs: ['/bin/true'], times: 20 }),
  },
  {
    name: "CVE-2019-5736: a guest exec'd into the created container holds its init across start",
    slug: 'exe-created',
    async run(c) {
      const b = c.bundle(
        ['/bin/sleep', '60'],
        (cfg) => (cfg.process.capabilities = capSets(hostCaps(), { inheritable: true, ambient: true })),
      );
      const before = c.runtimeBins();
      const cr = await c.call(['create', '--pid-file', c.pidFile(), '--bundle', b, c.id]);
      if (cr.code !== 0) return blocked(`refused: ${cr.msg}`);
      const er = await c.call(['exec', '--detach', c.id, '/probe', 'exewatch', '/out', '90000', 'stop']);
      if (er.code !== 0) return blocked(`exec into the created container refused: ${er.msg}`);
      if (!(await waitFor(() => fs.existsSync(c.outFile('ready'))))) return escaped('the guest watcher never started');
      await sleep(200);
      const sr = await c.call(['start', c.id]);
      for (let i = 0; i < 3; i++) await c.call(['exec', c.id, '/bin/true']);
      c.touchOut('stop');
      const w = await c.waitOut('exewatch.json');
      const v = judgeExe(before, c.runtimeBins(), w?.seen, 'the guest');
      return { ...v, detail: `${v.detail}; start exit ${sr.code}` };
    },
  },
  {
    name: 'CVE-2019-5736: `exec ID /bin/evil`, a #!/proc/self/exe script, x5 under a watching guest',
    slug: 'exe-shebang-exec',
    run: (c) => exeRace(c, { ptrace: true, execArgs: ['/bin/evil'], times: 5, rootfs: c.hostileRootfs(evilImage) }),
  },
  {
    name: 'CVE-2019-5736: process.args = /bin/evil (#!/proc/self/exe), watched from the host',
    slug: 'exe-shebang-init',
    run: (c) => initWatch(c, c.hostileRootfs(evilImage), ['/bin/evil']),
  },
  {
    name: 'CVE-2019-5736: process.args[0] a symlink to /proc/self/exe, watched from the host',
    slug: 'exe-symlink-init',
    run: (c) => initWatch(c, c.hostileRootfs(evilImage), ['/bin/selfexe', 'hostile']),
  },
  {
    name: 'CVE-2019-5736: `exec ID /bin/selfexe` (symlink to /proc/self/exe) x5 under a watching guest',
    slug: 'exe-symlink-exec',
    run: (c) => exeRace(c, { ptrace: true, execArgs: ['/bin/selfexe'], times: 5, rootfs: c.hostileRootfs(evilImage) }),
  },
  {
    name: 'CVE-2024-21626: `run` by a caller holding fd 20 on a host directory',
    slug: 'fd-run',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const b = c.bundle(FD_SCRIPT('/proc/self/fd/20/secret'));
        const r = await c.call(['run', '--bundle', b, c.id], { extraFd: fd });
        return judgeFds(c, r, c.readOut('s.json'));
      }),
  },
  {
    name: "CVE-2024-21626: process.cwd /proc/self/fd/20 (the caller's fd)",
    slug: 'fd-cwd',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const b = c.bundle(FD_SCRIPT('secret'), (cfg) => (cfg.process.cwd = '/proc/self/fd/20'));
        const r = await c.call(['run', '--bundle', b, c.id], { extraFd: fd });
        return judgeFds(c, r, c.readOut('s.json'));
      }),
  },
  {
    name: 'CVE-2024-21626: process.cwd /proc/self/fd/20/..',
    slug: 'fd-cwd-dotdot',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const b = c.bundle(FD_SCRIPT('host-secret/secret'), (cfg) => (cfg.process.cwd = '/proc/self/fd/20/..'));
        const r = await c.call(['run', '--bundle', b, c.id], { extraFd: fd });
        return judgeFds(c, r, c.readOut('s.json'));
      }),
  },
  {
    name: 'CVE-2024-21626: `create` holding fd 20, `start` without',
    slug: 'fd-create',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const b = c.bundle(FD_SCRIPT('/proc/self/fd/20/secret'));
        const r = await c.call(['create', '--bundle', b, c.id], { extraFd: fd });
        if (r.code !== 0) return blocked(`refused: ${r.msg}`);
        const s = await c.call(['start', c.id]);
        await c.waitOut('r.json', 15_000);
        return judgeFds(c, s, c.readOut('s.json'));
      }),
  },
  {
    name: 'CVE-2024-21626: `exec` by a caller holding fd 20',
    slug: 'fd-exec',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const { r } = await runDetached(c, c.bundle(['/bin/sleep', '60']));
        if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
        const e = await c.call(['exec', c.id, ...FD_SCRIPT('/proc/self/fd/20/secret')], { extraFd: fd });
        return judgeFds(c, e, c.readOut('s.json'));
      }),
  },
  {
    name: 'CVE-2024-21626: `exec --cwd /proc/self/fd/20` by a caller holding fd 20',
    slug: 'fd-exec-cwd',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const { r } = await runDetached(c, c.bundle(['/bin/sleep', '60']));
        if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
        const e = await c.call(['exec', '--cwd', '/proc/self/fd/20', c.id, ...FD_SCRIPT('secret')], { extraFd: fd });
        return judgeFds(c, e, c.readOut('s.json'));
      }),
  },
  {
    name: 'CVE-2024-21626: the guest hid its /proc under a tmpfs, then `exec` by a caller holding fd 20',
    slug: 'fd-exec-noproc',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const script = '/probe -o /out/hide.json mount tmpfs /proc; exec sleep 60';
        const { r } = await runDetached(
          c,
          c.bundle(['/bin/sh', '-c', script], (cfg) => (cfg.process.capabilities = capSets(hostCaps()))),
        );
        if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
        const hide = await c.waitOut('hide.json', 10_000);
        if (hide?.mount !== 'ok') return escaped(`the guest could not hide /proc: ${hide?.mount}`);
        // the exec'd probe finds its fds with fcntl: a hidden /proc hides nothing from it
        const e = await c.call(['exec', c.id, '/probe', '-o', '/out/s.json', 'status'], { extraFd: fd });
        return judgeFds(c, e, c.readOut('s.json'));
      }),
  },
  {
    name: 'Big config: 500 tmpfs mounts, 300 devices; uid 1000, no caps, NNP, seccomp (no file handles)',
    slug: 'huge-mounts',
    async run(c) {
      const rootfs = c.hostileRootfs();
      const b = c.bundle(
        ['/probe', '-o', '/out/s.json', 'status', c.h.handle.hex, c.h.handle.type],
        (cfg) => {
          for (let i = 0; i < 500; i++) cfg.mounts.push({ destination: `/m${i}`, type: 'tmpfs', source: 'tmpfs', options: ['size=64k'] });
          cfg.linux.devices = Array.from({ length: 300 }, (_, i) => ({
            path: `/dev/h${i}`,
            type: 'c',
            major: 1,
            minor: 3,
            fileMode: 0o666,
            uid: 0,
            gid: 0,
          }));
          Object.assign(cfg.process, { user: { uid: 1000, gid: 1000 }, capabilities: capSets([]), noNewPrivileges: true });
          cfg.linux.seccomp = SECCOMP_NO_HANDLES;
        },
        { rootfs },
      );
      const r = await c.call(['run', '--bundle', b, c.id], { timeoutMs: 60_000 });
      return judgeConfined(c, r, c.readOut('s.json'));
    },
  },
  {
    name: 'Big config: 5000 env entries, 2000 args; uid 1000, no caps, NNP, seccomp',
    slug: 'huge-env',
    async run(c) {
      const args = [
        '/probe',
        '-o',
        '/out/s.json',
        'status',
        c.h.handle.hex,
        c.h.handle.type,
        ...Array.from({ length: 2000 }, (_, i) => `arg${i}`),
      ];
      const b = c.bundle(args, (cfg) => {
        cfg.process.env.push(...Array.from({ length: 5000 }, (_, i) => `HOSTILE_${i}=${'v'.repeat(20)}`));
        Object.assign(cfg.process, { user: { uid: 1000, gid: 1000 }, capabilities: capSets([]), noNewPrivileges: true });
        cfg.linux.seccomp = SECCOMP_NO_HANDLES;
      });
      const r = await c.call(['run', '--bundle', b, c.id], { timeoutMs: 60_000 });
      return judgeConfined(c, r, c.readOut('s.json'));
    },
  },
  {
    name: 'Big config: 500 mounts, 500 devices, 400 env, 200 args (past any fixed-size plan)',
    slug: 'huge-all',
    async run(c) {
      const rootfs = c.hostileRootfs();
      const args = [
        '/probe',
        '-o',
        '/out/s.json',
        'status',
        c.h.handle.hex,
        c.h.handle.type,
        ...Array.from({ length: 200 }, (_, i) => `arg${i}`),
      ];
      const b = c.bundle(
        args,
        (cfg) => {
          for (let i = 0; i < 500; i++) cfg.mounts.push({ destination: `/m${i}`, type: 'tmpfs', source: 'tmpfs', options: ['size=64k'] });
          cfg.linux.devices = Array.from({ length: 500 }, (_, i) => ({
            path: `/dev/h${i}`,
            type: 'c',
            major: 1,
            minor: 3,
            fileMode: 0o666,
            uid: 0,
            gid: 0,
          }));
          cfg.process.env.push(...Array.from({ length: 400 }, (_, i) => `HOSTILE_${i}=v`));
          Object.assign(cfg.process, { user: { uid: 1000, gid: 1000 }, capabilities: capSets([]), noNewPrivileges: true });
          cfg.linux.seccomp = SECCOMP_NO_HANDLES;
        },
        { rootfs },
      );
      const r = await c.call(['run', '--bundle', b, c.id], { timeoutMs: 60_000 });
      return judgeConfined(c, r, c.readOut('s.json'));
    },
  },
  {
    name: 'Hook: a startContainer hook (an image program) has no more than the process: uid, caps, NNP, seccomp',
    slug: 'hook-start',
    async run(c) {
      const b = c.bundle(['/probe', '-o', '/out/main.json', 'status'], (cfg) => {
        Object.assign(cfg.process, { user: { uid: 1000, gid: 1000 }, capabilities: capSets([]), noNewPrivileges: true });
        cfg.linux.seccomp = SECCOMP_NO_HANDLES;
        cfg.hooks = {
          startContainer: [{ path: '/probe', args: ['probe', '-o', '/out/hook.json', 'status', c.h.handle.hex, c.h.handle.type] }],
        };
      });
      const r = await c.call(['run', '--bundle', b, c.id]);
      const hook = c.readOut('hook.json');
      if (!hook) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : blocked('the hook did not run');
      return judgeConfined(c, r, hook, 'the hook');
    },
  },
  {
    name: 'Hook: createContainer path names a host program; the image has another at that path',
    slug: 'hook-create',
    async run(c) {
      const hookDir = path.join(c.dir, 'hooks');
      const hookPath = path.join(hookDir, 'cc-hook');
      fs.mkdirSync(hookDir);
      // before pivot_root (runc) the host's paths are there, after it /out is: write to whichever exists
      const writer = (who: string) =>
        `#!/bin/sh\nfor d in /out ${c.out}; do [ -d "$d" ] && echo ${who} > "$d/cc-${who}.txt"; done\nexit 0\n`;
      fs.writeFileSync(hookPath, writer('host'), { mode: 0o755 });
      const rootfs = c.hostileRootfs((r) => {
        fs.mkdirSync(path.join(r, hookDir), { recursive: true });
        fs.writeFileSync(path.join(r, hookPath), writer('image'), { mode: 0o755 });
      });
      const b = c.bundle(['/bin/true'], (cfg) => (cfg.hooks = { createContainer: [{ path: hookPath }] }), { rootfs });
      const r = await c.call(['run', '--bundle', b, c.id]);
      if (fs.existsSync(c.outFile('cc-image.txt'))) return escaped("the image's program at the hook's path ran");
      if (fs.existsSync(c.outFile('cc-host.txt'))) return blocked(`the host's program ran (exit ${r.code})`);
      return blocked(r.code !== 0 ? `refused: ${r.msg}` : 'no hook ran');
    },
  },
  {
    name: 'Console socket: `exec -d -t --console-socket P`, P only a guest listener inside the container',
    slug: 'console-guest',
    async run(c) {
      const sock = `/tmp/paene-hostile-${process.pid}-${c.id}.sock`;
      fs.rmSync(sock, { force: true });
      const { r } = await runDetached(
        c,
        c.bundle(['/probe', '-o', '/out/listen.json', 'listen', sock, '60000', '/out/ready', '/out/stop']),
      );
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      await waitFor(() => fs.existsSync(c.outFile('ready')));
      const e = await c.call(['exec', '--detach', '--tty', '--console-socket', sock, c.id, '/bin/sh', '-c', 'echo hi; sleep 1']);
      await sleep(1000);
      c.touchOut('stop');
      const l = await c.waitOut('listen.json', 10_000);
      if (l?.gotFd) return escaped(`the guest's listener received the pty master (${l.fdTarget})`);
      return blocked(`the guest got no fd; exec exit ${e.code}${e.code ? `: ${e.msg}` : ''}`);
    },
  },
  {
    name: 'Console socket: a host listener and a guest listener at the same path',
    slug: 'console-both',
    async run(c) {
      const sock = `/tmp/paene-hostile-${process.pid}-${c.id}.sock`;
      fs.rmSync(sock, { force: true });
      const { r } = await runDetached(
        c,
        c.bundle(['/probe', '-o', '/out/listen.json', 'listen', sock, '60000', '/out/ready', '/out/stop']),
      );
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      await waitFor(() => fs.existsSync(c.outFile('ready')));
      const hostOut = path.join(c.dir, 'host-listen.json');
      const hostReady = path.join(c.dir, 'host-listen.ready');
      c.h.startHost(['-o', hostOut, 'listen', sock, '60000', hostReady, path.join(c.dir, 'host-listen.stop')]);
      await waitFor(() => fs.existsSync(hostReady));
      const e = await c.call(['exec', '--detach', '--tty', '--console-socket', sock, c.id, '/bin/sh', '-c', 'echo hi-from-tty; sleep 1']);
      await sleep(1000);
      c.touchOut('stop');
      fs.writeFileSync(path.join(c.dir, 'host-listen.stop'), '');
      const l = await c.waitOut('listen.json', 10_000);
      await waitFor(() => readJson(hostOut) !== undefined, 10_000);
      const hl = readJson(hostOut);
      fs.rmSync(sock, { force: true });
      if (l?.gotFd) return escaped(`the guest's listener received the pty master (${l.fdTarget})`);
      if (e.code === 0 && !hl?.gotFd) return escaped('exec succeeded but the host listener got no pty master');
      return blocked(
        hl?.gotFd ? `the host listener got the master (${JSON.stringify(hl.ttyData ?? '').slice(0, 40)})` : `refused: ${e.msg}`,
      );
    },
  },
  {
    name: "Console socket: `create` (terminal) joining another container's mount namespace, whose guest listens at P",
    slug: 'console-joined-ns',
    async run(c) {
      const sock = `/tmp/paene-hostile-${process.pid}-${c.id}.sock`;
      fs.rmSync(sock, { force: true });
      const { pid, r } = await runDetached(
        c,
        c.bundle(['/probe', '-o', '/out/listen.json', 'listen', sock, '60000', '/out/ready', '/out/stop']),
      );
      if (r.code !== 0) return escaped(`the listening container did not start: ${r.msg}`);
      await waitFor(() => fs.existsSync(c.outFile('ready')));
      const b2 = c.bundle(
        ['/bin/sh', '-c', 'echo hi; sleep 1'],
        (cfg) => {
          cfg.process.terminal = true;
          cfg.linux.namespaces = [{ type: 'pid' }, { type: 'mount', path: `/proc/${pid}/ns/mnt` }];
          cfg.linux.cgroupsPath = `${c.cgroupsPath}-b`;
          delete cfg.hostname;
        },
        { rootfs: c.hostileRootfs(), name: 'bundle-b' },
      );
      const cr = await c.call(['create', '--console-socket', sock, '--bundle', b2, `${c.id}-b`]);
      await sleep(500);
      c.touchOut('stop');
      const l = await c.waitOut('listen.json', 10_000);
      if (l?.gotFd) return escaped(`the other container's guest received the pty master (${l.fdTarget})`);
      return blocked(`the guest got no fd; create exit ${cr.code}${cr.code ? `: ${cr.msg}` : ''}`);
    },
  },
  {
    name: 'Hostile JSON: an unknown key nested 20,000 levels deep',
    slug: 'json-deep',
    async run(c) {
      const cfg = JSON.stringify(c.config(['/probe', '-o', '/out/s.json', 'status']));
      const b = c.rawBundle(cfg.slice(0, -1) + ',"x-hostile":' + '['.repeat(20_000) + ']'.repeat(20_000) + '}');
      return judgeClean(c, await c.call(['run', '--bundle', b, c.id]));
    },
  },
  {
    name: 'Hostile JSON: annotations nested 20,000 levels deep',
    slug: 'json-deep-ann',
    async run(c) {
      const cfg = JSON.stringify(c.config(['/probe', '-o', '/out/s.json', 'status']));
      const b = c.rawBundle(cfg.slice(0, -1) + ',"annotations":{"hostile":' + '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000) + '}}');
      return judgeClean(c, await c.call(['run', '--bundle', b, c.id]));
    },
  },
  {
    name: 'Hostile JSON: a 100 MB config (a 50 MB string and 50 MB of whitespace)',
    slug: 'json-100mb',
    async run(c) {
      const cfg = JSON.stringify(c.config(['/probe', '-o', '/out/s.json', 'status']));
      const b = c.rawBundle([
        Buffer.from(cfg.slice(0, -1) + ',"x-hostile-pad":"'),
        Buffer.alloc(50 << 20, 'A'),
        Buffer.from('"'),
        Buffer.alloc(50 << 20, ' '),
        Buffer.from('}'),
      ]);
      return judgeClean(c, await c.call(['run', '--bundle', b, c.id], { timeoutMs: 60_000 }));
    },
  },
  {
    name: "readonlyPaths stay ro,nosuid,nodev,noexec (the process's mountinfo, read from the host)",
    slug: 'ro-flags',
    async run(c) {
      const { pid, r } = await runDetached(c, c.bundle(['/bin/sleep', '60']));
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      const mounts = readMountinfo(pid);
      const checked: string[] = [];
      for (const p of READONLY) {
        if (!fs.existsSync(`/proc/${pid}/root${p}`)) continue; // not on this kernel (sysrq-trigger)
        const m = mounts.filter((x) => x.mountPoint === p).pop();
        if (!m) return escaped(`${p} is not a mount of its own`);
        const miss = ['ro', 'nosuid', 'nodev', 'noexec'].filter((o) => !m.options.includes(o));
        if (miss.length) return escaped(`${p} is ${m.options.join(',')}: lacks ${miss.join(',')}`);
        checked.push(p);
      }
      return blocked(`${checked.join(' ')}: ro,nosuid,nodev,noexec`);
    },
  },
  {
    name: 'maskedPaths cannot be read by the root guest (/proc/keys, /proc/timer_list, /proc/acpi, /sys/firmware)',
    slug: 'masked',
    async run(c) {
      const script = '/probe -o /out/keys.json read /proc/keys; /probe -o /out/timer.json read /proc/timer_list; exec sleep 60';
      const caps = hostCaps().filter((x) => x !== 'CAP_SYS_ADMIN');
      const { pid, r } = await runDetached(
        c,
        c.bundle(['/bin/sh', '-c', script], (cfg) => (cfg.process.capabilities = capSets(caps))),
      );
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      for (const f of ['keys.json', 'timer.json']) {
        const j = await c.waitOut(f, 10_000);
        if (!j) return escaped(`no report for ${f}`);
        if (j.open === 'ok' && j.n > 0) return escaped(`${j.path} is readable: ${JSON.stringify(j.data).slice(0, 40)}`);
      }
      for (const d of ['/proc/acpi', '/sys/firmware']) {
        let entries: string[] = [];
        try {
          entries = fs.readdirSync(`/proc/${pid}/root${d}`);
        } catch {
          /* absent */
        }
        if (entries.length) return escaped(`${d} lists ${entries.slice(0, 3).join(',')}`);
      }
      return blocked('the masked files read empty, the masked directories are empty');
    },
  },
  {
    name: 'readonly /proc: a root guest (every cap but SYS_ADMIN) cannot open core_pattern, sysrq-trigger, drop_caches for writing',
    slug: 'proc-write',
    async run(c) {
      const script =
        ['/proc/sys/kernel/core_pattern', '/proc/sysrq-trigger', '/proc/sys/vm/drop_caches']
          .map((p, i) => `/probe -o /out/w${i}.json openw ${p}`)
          .join('; ') + '; /probe -o /out/m.json mountrw /proc/sys';
      const caps = hostCaps().filter((x) => x !== 'CAP_SYS_ADMIN');
      const r = await c.call([
        'run',
        '--bundle',
        c.bundle(['/bin/sh', '-c', script], (cfg) => (cfg.process.capabilities = capSets(caps))),
        c.id,
      ]);
      const res = [0, 1, 2].map((i) => c.readOut(`w${i}.json`));
      const m = c.readOut('m.json');
      if (res.some((x) => !x) || !m) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : escaped('no report');
      const open = res.filter((x) => x.open === 'ok');
      if (open.length) return escaped(`opened for writing: ${open.map((x) => x.path).join(', ')}`);
      if (m.bind === 'ok' || m.plain === 'ok') return escaped('remounted /proc/sys read-write');
      return blocked(res.map((x) => `${path.basename(x.path)} ${x.open}`).join(', '));
    },
  },
  {
    name: "CVE-2019-19921: the image's /proc is a symlink to /fakeproc",
    slug: 'proc-symlink',
    run: (c) =>
      procCase(
        c,
        c.hostileRootfs((r) => {
          fs.rmdirSync(path.join(r, 'proc'));
          fs.mkdirSync(path.join(r, 'fakeproc/sys/kernel'), { recursive: true });
          fs.writeFileSync(path.join(r, 'fakeproc/sys/kernel/hostname'), 'fake-hostname\n');
          fs.symlinkSync('/fakeproc', path.join(r, 'proc'));
        }),
        () => undefined,
      ),
  },
  {
    name: "CVE-2019-19921: the image's /proc is a symlink to /",
    slug: 'proc-symlink-root',
    run: (c) =>
      procCase(
        c,
        c.hostileRootfs((r) => {
          fs.rmdirSync(path.join(r, 'proc'));
          fs.symlinkSync('/', path.join(r, 'proc'));
        }),
        () => undefined,
      ),
  },
  {
    name: 'CVE-2019-16884: a bind mount of a host directory onto /proc/sys/kernel',
    slug: 'proc-submount',
    run: (c) =>
      procCase(c, c.hostileRootfs(), (cfg) =>
        cfg.mounts.push({
          destination: '/proc/sys/kernel',
          type: 'bind',
          source: path.join(c.dir, 'fakeproc/sys/kernel'),
          options: ['rbind'],
        }),
      ),
  },
  {
    name: 'CVE-2019-16884: a bind mount of a fake directory as /proc',
    slug: 'proc-bind',
    run: (c) =>
      procCase(
        c,
        c.hostileRootfs(),
        (cfg) => (cfg.mounts[0] = { destination: '/proc', type: 'bind', source: path.join(c.dir, 'fakeproc'), options: ['rbind'] }),
      ),
  },
  {
    name: 'CVE-2021-30465 (static): tmpfs on /evil, a relative symlink out of the root',
    slug: 'dest-symlink-rel',
    run: (c) =>
      mountDestSymlink(c, (r, t) => fs.symlinkSync('../'.repeat(12) + t.slice(1), path.join(r, 'evil')), {
        destination: '/evil',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['size=64k'],
      }),
  },
  {
    name: 'CVE-2021-30465 (static): a bind on /evil, an absolute symlink to the host path',
    slug: 'dest-symlink-abs',
    run: (c) => {
      const src = path.join(c.dir, 'bind-src');
      fs.mkdirSync(src);
      fs.writeFileSync(path.join(src, 'marker'), 'marker');
      return mountDestSymlink(
        c,
        (r, t) => {
          fs.mkdirSync(path.join(r, t), { recursive: true }); // where it leads inside the root exists
          fs.symlinkSync(t, path.join(r, 'evil'));
        },
        { destination: '/evil', type: 'bind', source: src, options: ['rbind'] },
      );
    },
  },
  {
    name: 'CVE-2021-30465 (static): tmpfs on /evil through a chain of two symlinks',
    slug: 'dest-symlink-chain',
    run: (c) =>
      mountDestSymlink(
        c,
        (r, t) => {
          fs.mkdirSync(path.join(r, 'a'));
          fs.mkdirSync(path.join(r, t), { recursive: true });
          fs.symlinkSync('../'.repeat(12) + t.slice(1), path.join(r, 'a/l2'));
          fs.symlinkSync('/a/l2', path.join(r, 'evil'));
        },
        { destination: '/evil', type: 'tmpfs', source: 'tmpfs', options: ['size=64k'] },
      ),
  },
  {
    name: 'maskedPaths / readonlyPaths that are symlinks out of the root in the image',
    slug: 'mask-symlink',
    async run(c) {
      const hostTarget = path.join(c.dir, 'host-target');
      fs.mkdirSync(hostTarget);
      fs.writeFileSync(path.join(hostTarget, 'host-file'), 'host');
      const rootfs = c.hostileRootfs((r) => {
        fs.symlinkSync(path.join(hostTarget, 'host-file'), path.join(r, 'etc/evil-mask'));
        fs.symlinkSync('../'.repeat(12) + hostTarget.slice(1), path.join(r, 'etc/evil-ro'));
      });
      const script = `/probe -o /out/w.json create /etc/evil-ro/new; exec sleep 60`;
      const b = c.bundle(
        ['/bin/sh', '-c', script],
        (cfg) => {
          cfg.linux.maskedPaths.push('/etc/evil-mask');
          cfg.linux.readonlyPaths.push('/etc/evil-ro');
          cfg.process.capabilities = capSets(['CAP_DAC_OVERRIDE', 'CAP_KILL']);
        },
        { rootfs },
      );
      const { r } = await runDetached(c, b);
      await c.waitOut('w.json', r.code === 0 ? 10_000 : 0);
      const hostMounts = readMountinfo('self').filter((m) => m.mountPoint.startsWith(hostTarget));
      const listing = fs.readdirSync(hostTarget).sort().join(',');
      const content = fs.readFileSync(path.join(hostTarget, 'host-file'), 'utf8');
      if (hostMounts.length) return escaped(`a mount appeared at ${hostMounts[0].mountPoint} on the host`);
      if (listing !== 'host-file' || content !== 'host') return escaped(`the host directory changed: ${listing}`);
      return blocked(r.code !== 0 ? `refused: ${r.msg}` : 'ran; the host directory and its file are untouched');
    },
  },
  {
    name: 'CVE-2022-29162: `exec --process` whose capabilities omit inheritable: CapInh 0',
    slug: 'caps-inh',
    async run(c) {
      const { r } = await runDetached(
        c,
        c.bundle(['/bin/sleep', '60'], (cfg) => (cfg.process.capabilities = capSets(['CAP_KILL', 'CAP_NET_BIND_SERVICE']))),
      );
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      const pf = path.join(c.dir, 'process.json');
      fs.writeFileSync(
        pf,
        JSON.stringify({
          cwd: '/',
          args: ['/probe', '-o', '/out/e.json', 'status'],
          env: ['PATH=/bin'],
          user: { uid: 0, gid: 0 },
          capabilities: capSets(['CAP_KILL', 'CAP_NET_BIND_SERVICE']),
        }),
      );
      const e = await c.call(['exec', '--process', pf, c.id]);
      const s = c.readOut('e.json');
      if (!s) return blocked(`refused: ${e.msg}`);
      if (s.capInh !== ZERO_CAPS || s.capAmb !== ZERO_CAPS) return escaped(`CapInh ${s.capInh} CapAmb ${s.capAmb}`);
      return blocked(`CapInh 0, CapEff ${s.capEff}`);
    },
  },
  {
    name: 'CVE-2022-29162: `exec --cap CAP_SYS_ADMIN`: CapInh stays 0',
    slug: 'caps-exec-cap',
    async run(c) {
      const { r } = await runDetached(c, c.bundle(['/bin/sleep', '60']));
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      const e = await c.call(['exec', '--cap', 'CAP_SYS_ADMIN', c.id, '/probe', '-o', '/out/e.json', 'status']);
      const s = c.readOut('e.json');
      if (!s) return blocked(`refused: ${e.msg}`);
      if (s.capInh !== ZERO_CAPS || s.capAmb !== ZERO_CAPS) return escaped(`CapInh ${s.capInh} CapAmb ${s.capAmb}`);
      return blocked(`CapInh 0, CapEff ${s.capEff}`);
    },
  },
  {
    name: 'linux.sysctl kernel.core_pattern (host-wide) is refused',
    slug: 'sysctl-core',
    run: (c) => sysctlCase(c, 'kernel.core_pattern', () => `core.hostile.${process.pid}`, ['pid', 'mount', 'uts', 'ipc']),
  },
  {
    name: 'linux.sysctl net.ipv4.ip_default_ttl without a network namespace is refused',
    slug: 'sysctl-net',
    run: (c) => sysctlCase(c, 'net.ipv4.ip_default_ttl', (cur) => (cur === '64' ? '65' : '64'), ['pid', 'mount', 'uts', 'ipc']),
  },
  {
    name: "A device node for the host's disk, devices cgroup deny-all: a root guest with every cap cannot read it",
    slug: 'dev-disk',
    async run(c) {
      const st = fs.statSync('/', { bigint: true });
      const [major, minor] = [
        Number(((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn)),
        Number((st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn)),
      ];
      const b = c.bundle(['/probe', '-o', '/out/d.json', 'read', '/dev/hostdisk'], (cfg) => {
        cfg.process.capabilities = capSets(hostCaps());
        cfg.linux.devices = [{ path: '/dev/hostdisk', type: 'b', major, minor, fileMode: 0o600, uid: 0, gid: 0 }];
      });
      const r = await c.call(['run', '--bundle', b, c.id]);
      const d = c.readOut('d.json');
      if (!d) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : escaped('no report');
      if (d.open === 'ok' && d.n > 0) return escaped(`read ${d.n} bytes of the host's disk ${major}:${minor}`);
      return blocked(`open ${d.open}${d.read ? `, read ${d.read}` : ''} (${major}:${minor})`);
    },
  },
  {
    name: 'A root guest with CAP_MKNOD makes its own node for the host disk and /dev/mem: the devices cgroup denies both',
    slug: 'dev-mknod',
    async run(c) {
      const st = fs.statSync('/', { bigint: true });
      const [major, minor] = [
        Number(((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn)),
        Number((st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn)),
      ];
      const script = `/probe -o /out/d.json mknodread /dev/hostdisk b ${major} ${minor}; /probe -o /out/m.json mknodread /dev/hostmem c 1 1`;
      const r = await c.call([
        'run',
        '--bundle',
        c.bundle(['/bin/sh', '-c', script], (cfg) => (cfg.process.capabilities = capSets(hostCaps()))),
        c.id,
      ]);
      const [d, m] = [c.readOut('d.json'), c.readOut('m.json')];
      if (!d || !m) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : escaped('no report');
      for (const x of [d, m]) if (x.open === 'ok') return escaped(`opened its own ${x.path}${x.n > 0 ? ` and read ${x.n} bytes` : ''}`);
      return blocked(`mknod ${d.mknod}/${m.mknod}, open ${d.open ?? '-'}/${m.open ?? '-'}`);
    },
  },
  {
    name: "The guest swaps its /dev/null for a symlink to /proc/sys/kernel/core_pattern, then `exec` with the host's /dev/null as stdin",
    slug: 'devnull-swap-exec',
    async run(c) {
      const file = '/proc/sys/kernel/core_pattern';
      const before = fs.readFileSync(file, 'utf8');
      c.h.restores.push(() => {
        if (fs.readFileSync(file, 'utf8') !== before) fs.writeFileSync(file, before);
      });
      const script = 'rm -f /dev/null && ln -s /proc/sys/kernel/core_pattern /dev/null && touch /out/swapped; exec sleep 60';
      const { r } = await runDetached(c, c.bundle(['/bin/sh', '-c', script]));
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      if (!(await waitFor(() => fs.existsSync(c.outFile('swapped')), 10_000))) return escaped('the guest could not swap its /dev/null');
      const e = await c.call(['exec', c.id, '/bin/sh', '-c', `/probe -o /out/s.json status; echo core.hostile.${process.pid} >&0`]);
      const after = fs.readFileSync(file, 'utf8');
      if (after !== before) return escaped(`the host's core_pattern became ${JSON.stringify(after.trim())}`);
      const s = c.readOut('s.json');
      const bad = (s?.fds ?? []).filter((f: { target: string }) => f.target.includes('core_pattern'));
      if (bad.length) return escaped(`the exec'd process has fd ${bad[0].fd} on core_pattern`);
      return blocked(
        s
          ? `exec ran; its stdio ${s.fds
              .slice(0, 3)
              .map((f: { target: string }) => f.target)
              .join(' ')}`
          : `refused: ${e.msg}`,
      );
    },
  },
  {
    name: "The host's / bound rbind,ro: a guest without CAP_SYS_ADMIN cannot remount it rw or write through it",
    slug: 'host-root-ro',
    run: (c) => hostRoot(c, true),
  },
  {
    name: '`exec --env LD_PRELOAD=...`: loaded in the container only (harmless, should just pass)',
    slug: 'ld-preload',
    async run(c) {
      const so = path.join(c.h.preloadDir, 'evil.so');
      const hostLog = path.join(c.h.preloadDir, 'log');
      fs.rmSync(hostLog, { force: true });
      const rootfs = c.hostileRootfs((r) => {
        fs.mkdirSync(path.join(r, c.h.preloadDir), { recursive: true });
        fs.chmodSync(path.join(r, c.h.preloadDir), 0o777);
        fs.copyFileSync(so, path.join(r, so));
      });
      // the library's path is the same on the host and in the image (below /tmp: no tmpfs there this time)
      const b = c.bundle(
        ['/bin/sleep', '60'],
        (cfg) => (cfg.mounts = cfg.mounts.filter((m: { destination: string }) => m.destination !== '/tmp')),
        { rootfs },
      );
      const { r } = await runDetached(c, b);
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      const e = await c.call(['exec', '--env', `LD_PRELOAD=${so}`, c.id, '/bin/true']);
      const host = fs.existsSync(hostLog) ? fs.readFileSync(hostLog, 'utf8') : '';
      const guest = fs.existsSync(path.join(rootfs, hostLog)) ? fs.readFileSync(path.join(rootfs, hostLog), 'utf8') : '';
      if (host) return escaped(`loaded by a host process: ${host.trim().split('\n')[0]}`);
      return blocked(`exec exit ${e.code}; loaded ${guest.trim().split('\n').filter(Boolean).length}x inside the container only`);
    },
  },
  {
    name: 'root.path a symlink to the image: runs there, nothing of the host shows or is left mounted',
    slug: 'rootfs-symlink',
    async run(c) {
      const real = c.hostileRootfs();
      const bundleDir = path.join(c.dir, 'bundle');
      fs.mkdirSync(bundleDir, { recursive: true });
      fs.symlinkSync(real, path.join(bundleDir, 'rootfs'));
      const b = c.bundle(['/probe', '-o', '/out/s.json', 'status'], (cfg) => (cfg.root = { path: 'rootfs', readonly: true }));
      const r = await c.call(['run', '--bundle', b, c.id]);
      const left = readMountinfo('self').filter((m) => m.mountPoint.startsWith(c.dir));
      if (left.length) return escaped(`mounts left on the host: ${left.map((m) => m.mountPoint).join(', ')}`);
      if (c.sawToken()) return escaped('the guest read the host secret');
      const s = c.readOut('s.json');
      return blocked(s ? 'ran in the image; nothing left mounted on the host' : `refused: ${r.msg}`);
    },
  },
  {
    name: 'A setuid-root program in the image under noNewPrivileges: no euid 0',
    slug: 'nnp-setuid',
    run: (c) => setuidCase(c, true),
  },
  {
    name: 'open_by_handle_at of a host file handle, root guest with every cap, the profile denies it',
    slug: 'handle-main',
    async run(c) {
      const b = c.bundle(['/probe', '-o', '/out/s.json', 'status', c.h.handle.hex, c.h.handle.type], (cfg) => {
        cfg.process.capabilities = capSets(hostCaps());
        cfg.linux.seccomp = SECCOMP_NO_HANDLES;
      });
      const r = await c.call(['run', '--bundle', b, c.id]);
      const s = c.readOut('s.json');
      if (c.sawToken()) return escaped('read the host secret through its handle');
      if (!s) return r.code !== 0 ? blocked(`refused: ${r.msg}`) : escaped('no report');
      if (s.handle === 'ok' || s.seccomp !== '2') return escaped(`open_by_handle_at ${s.handle}, Seccomp ${s.seccomp}`);
      return blocked(`open_by_handle_at ${s.handle}, Seccomp 2`);
    },
  },
  {
    name: "open_by_handle_at from an exec'd process: the container's profile holds there too",
    slug: 'handle-exec',
    async run(c) {
      const { r } = await runDetached(
        c,
        c.bundle(['/bin/sleep', '60'], (cfg) => {
          cfg.process.capabilities = capSets(hostCaps());
          cfg.linux.seccomp = SECCOMP_NO_HANDLES;
        }),
      );
      if (r.code !== 0) return escaped(`the container did not start: ${r.msg}`);
      const e = await c.call(['exec', c.id, '/probe', '-o', '/out/s.json', 'status', c.h.handle.hex, c.h.handle.type]);
      const s = c.readOut('s.json');
      if (c.sawToken()) return escaped('read the host secret through its handle');
      if (!s) return blocked(`refused: ${e.msg}`);
      if (s.handle === 'ok' || s.seccomp !== '2') return escaped(`open_by_handle_at ${s.handle}, Seccomp ${s.seccomp}`);
      return blocked(`open_by_handle_at ${s.handle}, Seccomp 2`);
    },
  },
  {
    name: 'A container id with ../ is refused; nothing is made outside the state root',
    slug: 'id-traversal',
    async run(c) {
      const id = `../../hostile-escape-${c.rt.short}`;
      const outside = path.resolve(c.state, id);
      const r = await c.call(['create', '--bundle', c.bundle(['/bin/true']), id]);
      const made = fs.existsSync(outside);
      if (r.code === 0) {
        await c.call(['delete', '--force', id]);
        return escaped(`created a container with id ${id}`);
      }
      if (made) {
        fs.rmSync(outside, { recursive: true, force: true });
        return escaped(`made ${outside}`);
      }
      return blocked(`refused: ${r.msg}`);
    },
  },
];

const PAENE_ONLY: HostileCase[] = [
  {
    // runc 1.1.5 is vulnerable here: it made its /dev symlinks (fd, stdin, stdout, stderr, ptmx) in the host directory
    name: "The image's /dev is a symlink to a host directory, no /dev tmpfs: nothing is made in the host directory",
    slug: 'dev-symlink',
    async run(c) {
      const hostDev = path.join(c.dir, 'host-dev');
      fs.mkdirSync(hostDev);
      fs.writeFileSync(path.join(hostDev, 'host-file'), 'host');
      const rootfs = c.hostileRootfs((r) => {
        fs.rmSync(path.join(r, 'dev'), { recursive: true, force: true });
        fs.symlinkSync(hostDev, path.join(r, 'dev'));
      });
      const b = c.bundle(
        ['/probe', '-o', '/out/s.json', 'status'],
        (cfg) => (cfg.mounts = cfg.mounts.filter((m: { destination: string }) => !m.destination.startsWith('/dev'))),
        { rootfs },
      );
      const r = await c.call(['run', '--bundle', b, c.id]);
      const listing = fs.readdirSync(hostDev).sort().join(',');
      const hostMounts = readMountinfo('self').filter((m) => m.mountPoint.startsWith(hostDev));
      if (listing !== 'host-file') return escaped(`the host directory got ${listing}`);
      if (hostMounts.length) return escaped(`a mount appeared at ${hostMounts[0].mountPoint} on the host`);
      return blocked(r.code !== 0 ? `refused: ${r.msg}` : `ran; the host directory is untouched`);
    },
  },
  {
    // runc 1.1.5 is vulnerable here: with this bundle it wrote the host's core_pattern
    name: "CVE-2025-31133: the image's /dev/null is a symlink to /proc/sys/kernel/core_pattern (no /dev tmpfs), maskedPaths",
    slug: 'devnull-symlink',
    async run(c) {
      const file = '/proc/sys/kernel/core_pattern';
      const before = fs.readFileSync(file, 'utf8');
      c.h.restores.push(() => {
        if (fs.readFileSync(file, 'utf8') !== before) fs.writeFileSync(file, before);
      });
      const rootfs = c.hostileRootfs((r) => {
        fs.rmSync(path.join(r, 'dev'), { recursive: true, force: true });
        fs.mkdirSync(path.join(r, 'dev'));
        fs.symlinkSync('/proc/sys/kernel/core_pattern', path.join(r, 'dev/null'));
      });
      const marker = `core.hostile.${process.pid}`;
      const script = `echo ${marker} > /dev/null; echo ${marker} > /proc/keys; /probe -o /out/k.json read /proc/keys; /probe -o /out/w.json openw /proc/keys`;
      const b = c.bundle(
        ['/bin/sh', '-c', script],
        (cfg) => {
          cfg.mounts = cfg.mounts.filter((m: { destination: string }) => !m.destination.startsWith('/dev'));
          cfg.process.capabilities = capSets(['CAP_KILL', 'CAP_DAC_OVERRIDE']);
        },
        { rootfs },
      );
      // the runtime's stdin is the host's /dev/null (as every call's): what a runtime "reopens" inside the container
      const r = await c.call(['run', '--bundle', b, c.id]);
      const after = fs.readFileSync(file, 'utf8');
      if (after !== before) return escaped(`the host's core_pattern became ${JSON.stringify(after.trim())}`);
      const k = c.readOut('k.json');
      if (k?.data?.includes('core')) return escaped(`the masked /proc/keys shows ${JSON.stringify(k.data)}`);
      return blocked(
        r.code !== 0 ? `refused: ${r.msg}` : `ran; core_pattern unchanged; /proc/keys ${k ? `read ${k.n} bytes` : 'no report'}`,
      );
    },
  },
];

/**
 * The judges themselves: runc with a deliberately unsafe config (or a host program bound in), where
 * each judgement must say `escaped`. A judge that cannot see these holes would pass anything.
 */
const CONTROLS: HostileCase[] = [
  {
    name: "a host program bound in read-write and exec'd: the exe judgement sees it",
    slug: 'ctl-exe',
    run: (c) => {
      const hostBin = path.join(c.dir, 'hostbin');
      fs.copyFileSync(c.h.probe, hostBin);
      fs.chmodSync(hostBin, 0o755);
      return exeRace(c, {
        ptrace: true,
        execArgs: ['/hostbin', 'status'],
        times: 3,
        bins: () => [binInfo(hostBin)],
        patch: (cfg) => cfg.mounts.push({ destination: '/hostbin', type: 'bind', source: hostBin, options: ['bind', 'rw'] }),
        rootfs: c.hostileRootfs((r) => fs.writeFileSync(path.join(r, 'hostbin'), '')),
      });
    },
  },
  {
    name: 'the host directory passed on on purpose as fd 3 (--preserve-fds 1): the fd judgement sees it',
    slug: 'ctl-fd',
    run: (c) =>
      withSecretFd(c, async (fd) => {
        const r = await c.call(['run', '--preserve-fds', '1', '--bundle', c.bundle(FD_SCRIPT('/proc/self/fd/3/secret')), c.id], {
          extraFd: fd,
          extraFdAt: 3,
        });
        return judgeFds(c, r, c.readOut('s.json'));
      }),
  },
  {
    name: 'a process left root with capabilities and no filter: the confinement judgement sees it',
    slug: 'ctl-confined',
    async run(c) {
      const r = await c.call([
        'run',
        '--bundle',
        c.bundle(
          ['/probe', '-o', '/out/s.json', 'status', c.h.handle.hex, c.h.handle.type],
          (cfg) => (cfg.process.capabilities = capSets(hostCaps())),
        ),
        c.id,
      ]);
      return judgeConfined(c, r, c.readOut('s.json'));
    },
  },
  {
    name: "the host's / bound rbind without ro: the write judgement sees it",
    slug: 'ctl-host-rw',
    run: (c) => hostRoot(c, false),
  },
  {
    name: 'the setuid-root program without noNewPrivileges: the euid judgement sees it',
    slug: 'ctl-setuid',
    run: (c) => setuidCase(c, false),
  },
];

// ---------------------------------------------------------------- the suite

type Row = { name: string } & Partial<Record<RuntimeName, Outcome>>;
const rows: Row[] = [];
const controlRows: { name: string; outcome: Outcome }[] = [];

function table(): string {
  const cell = (r: Row, n: RuntimeName) => r[n]?.verdict ?? (n === 'runc' && r.name.startsWith('[paene-only]') ? 'n/a' : '-');
  const lines = rows.flatMap((r, i) => [
    `${String(i + 1).padStart(2, '0')}  ${cell(r, 'runc').padEnd(8)} ${cell(r, 'paene-runc').padEnd(10)} ${r.name}`,
    ...(['runc', 'paene-runc'] as const).filter((n) => r[n]).map((n) => `${' '.repeat(25)}${n}: ${r[n]?.detail}`),
  ]);
  const esc = rows.filter((r) => r['paene-runc']?.verdict === 'escaped').map((r) => r.name);
  return [
    '',
    '==== hostile bundles: runc (the witness) vs paene-runc, judged from the host ====',
    ' #  runc     paene-runc case / detail',
    ...lines,
    `---- paene-runc escaped in ${esc.length} of ${rows.length} cases${esc.length ? ':' : ''}`,
    ...esc.map((n) => `  - ${n}`),
    '---- controls (runc, holes made on purpose; each must be judged escaped):',
    ...controlRows.map((r) => `  ${r.outcome.verdict.padEnd(8)} ${r.name}: ${r.outcome.detail}`),
    '',
  ].join('\n');
}

describeReal('paene-runc against hostile bundles (runc is the witness)', () => {
  let h: Harness;
  let caseDirs: string[] = [];

  beforeAll(async () => {
    const root = tempRoot('hostile');
    h = new Harness(root, RUNTIMES);
    // the run's base image (built once, copied in), not a build of its own
    await seedBaseImage(path.join(root, 'paene'));
    const image = await storeImageSource(openImageStore(path.join(root, 'paene'))).rootfsOf(DEFAULT_IMAGE);
    await h.setup(image, path.resolve('test/oci/hostile-probe.c'));
  }, 180_000);

  afterEach(async () => {
    await h.cleanup(caseDirs);
    caseDirs = [];
  }, 120_000);

  afterAll(async () => {
    console.log(table());
    await h?.finish();
  }, 120_000);

  const runOne = async (i: number, k: HostileCase, rt: RuntimeDef, label = k.name) => {
    const c = h.ctx(i, k.slug, rt);
    caseDirs.push(c.dir);
    let o: Outcome;
    try {
      o = await k.run(c);
    } catch (e) {
      o = { verdict: 'escaped', detail: `the case itself failed: ${(e as Error).message}` };
    }
    let row = rows.find((r) => r.name === label);
    if (!row) rows.push((row = { name: label }));
    row[rt.name] = o;
    return o;
  };

  // A case runs on runc and on paene-runc side by side: each has its own directory, bundle, container
  // id, state root and cgroup, and is judged from its own files. The cases that read or change something
  // of the host's that both would share run one after the other: a host sysctl or core_pattern (each half
  // restores what it found) and the preload library's one host log (each half empties it first).
  const ONE_AFTER_THE_OTHER = new Set(['sysctl-core', 'sysctl-net', 'devnull-swap-exec', 'ld-preload']);
  CASES.forEach((k, i) => {
    it(`${String(i + 1).padStart(2, '0')} ${k.name} [${RUNTIMES.map((rt) => rt.name).join(', ')}]`, async () => {
      const outcomes: Outcome[] = [];
      if (ONE_AFTER_THE_OTHER.has(k.slug)) for (const rt of RUNTIMES) outcomes.push(await runOne(i + 1, k, rt));
      else outcomes.push(...(await Promise.all(RUNTIMES.map((rt) => runOne(i + 1, k, rt)))));
      // each runtime's verdict on its own (a soft expect: both are said when both fail)
      RUNTIMES.forEach((rt, j) => expect.soft(outcomes[j]?.verdict, `${rt.name}: ${outcomes[j]?.detail}`).toBe('blocked'));
    }, 180_000);
  });

  describe('controls: each judgement says escaped for a hole made on purpose (runc)', () => {
    CONTROLS.forEach((k, j) => {
      const rt = RUNTIMES[0];
      it(`control ${j + 1}: ${k.name}`, async () => {
        const c = h.ctx(90 + j, k.slug, rt);
        caseDirs.push(c.dir);
        let o: Outcome;
        try {
          o = await k.run(c);
        } catch (e) {
          o = blocked(`the control itself failed: ${(e as Error).message}`);
        }
        controlRows.push({ name: k.name, outcome: o });
        expect(o.verdict, o.detail).toBe('escaped');
      }, 180_000);
    });
  });

  describe('paene-only: runc 1.1.5 is vulnerable here', () => {
    PAENE_ONLY.forEach((k, j) => {
      const i = CASES.length + j + 1;
      const rt = RUNTIMES.find((r) => r.name === 'paene-runc') as RuntimeDef;
      it(`${i} ${k.name} [paene-runc]`, async () => {
        const o = await runOne(i, k, rt, `[paene-only] ${k.name}`);
        expect(o.verdict, `paene-runc: ${o.detail}`).toBe('blocked');
      }, 180_000);
    });
  });
});
