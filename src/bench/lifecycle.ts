// `paene bench lifecycle`: a whole container cycle, paene against runc, crun
// and bubblewrap, on the same root filesystem with the same namespaces.
//
//   paene (API)   in one Node process: rt.create + rt.start + rt.execCapture
//                 ['/bin/true'] + rt.destroy (what a library user or a daemon pays)
//   paene (CLI)   four calls of the installed command (dist/native/paene, the
//                 native front door): create, start, exec -- /bin/true,
//                 destroy (what a shell user pays: Node starts three times;
//                 exec runs natively from the context's exec plan)
//   runc run      config.json generated here, process /bin/true, runc deletes
//                 the container when it exits (create+start+wait+delete)
//   crun run      the same bundle
//   bwrap         --unshare-pid/ipc/uts/cgroup (+ its own mount ns), the same
//                 rootfs read-only, /proc, /dev, /tmp: no cgroups at all
//
// Runs alternate: in run i, the engines go in an order rotated by i, so no
// engine always runs first (warm caches) or last.
// The exec part: /bin/true in a running paene context (API, the installed
// command, and the Node CLI alone) against `runc exec` / `crun exec` into a
// running container.
// The many part (--many N): N contexts created and started in one CLI call,
// `paene list` with N against none, and destroy of the N in one call, as
// contexts per second (the goal: 100/s each on a small machine, list ≤ 2×).

import { packageRoot } from '../kernel/package.js';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openImageStore, openRuntime, storeImageSource } from '../runtime/open.js';
import { keepRootOffEgress } from '../runtime/network.js';
import type { Runtime } from '../runtime/runtime.js';
import { Cleanup, type MachineFacts, machineFacts, median, round, run } from './common.js';
import { type OciRuntime, PEER_PREFIX, cleanupPeers, ociArgs, ociProgram, peerVersion, which, writeBundle } from './peers.js';
import { DEFAULT_IMAGE } from '../image/store.js';

export interface LifecycleOptions {
  dir: string;
  keepDir?: boolean;
  runs: number;
  /** contexts for the many-per-call part; 0 skips it */
  many?: number;
  log?: (s: string) => void;
  progress?: (done: number, total: number, detail: string) => void;
}

export interface EngineResult {
  engine: string;
  what: string;
  /** ms of each successful run */
  samples: number[];
  medianMs: number;
  /** median of this engine / median of paene (API); > 1 means paene is faster */
  ratioToPaeneApi?: number;
  error?: string;
  /** paene API only: median ms of each step */
  steps?: Record<string, number>;
}

export interface LifecycleResult {
  benchmark: 'lifecycle';
  machine: MachineFacts;
  versions: Record<string, string>;
  runs: number;
  nodeStartupMs: number;
  cycle: EngineResult[];
  exec: EngineResult[];
  /** paene API median / peer median, for each peer that ran */
  ratios: Record<string, number>;
  many?: ManyResult;
  cleanup: { errors: string[] };
}

/** N contexts through the CLI, many per call. */
export interface ManyResult {
  contexts: number;
  /** wall seconds of `paene create NAME%d --count N` */
  createS: number;
  /** wall seconds of `paene start --all` */
  startS: number;
  /** contexts per second of create + start together (two calls) */
  createStartPerS: number;
  /** wall seconds of `paene create NAME%d --count N --start` (one call), in a second round */
  createStartOneCallS: number;
  createStartOneCallPerS: number;
  /** wall seconds of `paene destroy --all` */
  destroyS: number;
  destroyPerS: number;
  /** median ms of `paene list` with no context and with the N running */
  listEmptyMs: number;
  listFullMs: number;
  listRatio: number;
  /** median CPU ms (user + system) of `paene list` with none and with the N running: steadier than wall time on a shared machine */
  listEmptyCpuMs: number;
  listFullCpuMs: number;
  listCpuRatio: number;
  error?: string;
}

interface Engine {
  engine: string;
  what: string;
  /** one timed cycle; throws with the engine's own error */
  cycle: (i: number) => Promise<number>;
  steps?: Record<string, number[]>;
}

function firstLines(s: string, n = 3): string {
  return s.trim().split('\n').slice(0, n).join(' | ');
}

/** Runs a program and returns its wall time; throws with its own error. `label` names it in the error. */
async function timed(file: string, args: string[], label = path.basename(file), timeoutMs = 60_000): Promise<number> {
  const t = performance.now();
  const r = await run(file, args, { timeoutMs });
  const dt = performance.now() - t;
  if (r.code !== 0) throw new Error(`${label} exited ${r.code}: ${firstLines(r.stderr || r.stdout)}`);
  return dt;
}

/**
 * Starts a detached container. Its process inherits the runtime's stdio, so
 * the runtime gets /dev/null (and its stderr a file): pipes would stay open
 * as long as the container runs.
 */
async function runDetached(file: string, args: string[], label: string): Promise<void> {
  const errFile = path.join(os.tmpdir(), `paene-bench-detach-${process.pid}.err`);
  const fd = fs.openSync(errFile, 'w+');
  try {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', fd] });
    const code = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c ?? 1);
      });
    });
    if (code !== 0) throw new Error(`${label} exited ${code}: ${firstLines(fs.readFileSync(errFile, 'utf8'))}`);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(errFile, { force: true });
  }
}

export async function runLifecycle(o: LifecycleOptions): Promise<LifecycleResult> {
  const log = o.log ?? (() => undefined);
  const cleanup = new Cleanup(log);
  fs.mkdirSync(o.dir, { recursive: true });
  const stateRoot = path.join(o.dir, 'state');
  keepRootOffEgress(stateRoot); // the shared model's own cost, and nothing added to the host's network
  const rt: Runtime = openRuntime(stateRoot);
  const node = process.execPath;
  const cli = path.join(packageRoot(), 'bin', 'paene.js');
  // The installed command (what `npm link` puts on PATH): the native front door, Node behind it for most verbs.
  const paene = path.join(packageRoot(), 'dist', 'native', 'paene');
  const tag = `${PEER_PREFIX}${process.pid}`;
  cleanup.add('remove the scratch directory', () => {
    if (!o.keepDir) fs.rmSync(o.dir, { recursive: true, force: true });
  });
  cleanup.add('stop the monitor', () => rt.shutdownMonitor());
  cleanup.add('destroy the contexts', async () => {
    for (const n of rt.store.names()) await rt.destroy(n, { force: true });
  });
  cleanup.add('delete the peer containers', () => cleanupPeers(o.dir));

  const versions: Record<string, string> = {};
  for (const p of ['runc', 'crun', 'bwrap', 'paene-runc']) versions[p] = await peerVersion(p);
  let cycleResults: EngineResult[] = [];
  let execResults: EngineResult[] = [];
  let nodeStartupMs = NaN;
  let many: ManyResult | undefined;
  let cleanupErrors: string[] = [];
  try {
    const rootfs = await storeImageSource(openImageStore(stateRoot)).rootfsOf(DEFAULT_IMAGE);
    // Node's own start-up, which every CLI call pays
    const nodeT: number[] = [];
    for (let i = 0; i < Math.max(3, o.runs); i++) nodeT.push(await timed(node, ['-e', '0']));
    nodeStartupMs = round(median(nodeT));

    const apiSteps: Record<string, number[]> = { create: [], start: [], exec: [], destroy: [] };
    const engines: Engine[] = [
      {
        engine: 'paene (API)',
        what: 'create + start + exec /bin/true + destroy, library calls in one Node process',
        steps: apiSteps,
        cycle: async (i) => {
          const name = `lc-api-${i}`;
          const t0 = performance.now();
          await rt.create({ name, image: DEFAULT_IMAGE });
          const t1 = performance.now();
          await rt.start(name);
          const t2 = performance.now();
          const r = await rt.execCapture(name, ['/bin/true'], { timeoutMs: 30_000 });
          if (r.code !== 0) throw new Error(`exec /bin/true exited ${r.code}: ${r.stderr}`);
          const t3 = performance.now();
          await rt.destroy(name);
          const t4 = performance.now();
          apiSteps.create.push(t1 - t0);
          apiSteps.start.push(t2 - t1);
          apiSteps.exec.push(t3 - t2);
          apiSteps.destroy.push(t4 - t3);
          return t4 - t0;
        },
      },
      {
        engine: 'paene (CLI)',
        what: 'paene create, start, exec -- /bin/true, destroy: four calls of the installed command',
        cycle: async (i) => {
          const name = `lc-cli-${i}`;
          const g = ['--root', stateRoot];
          let t = 0;
          t += await timed(paene, [...g, 'create', name], 'paene create');
          t += await timed(paene, [...g, 'start', name], 'paene start');
          t += await timed(paene, [...g, 'exec', name, '--', '/bin/true'], 'paene exec');
          t += await timed(paene, [...g, 'destroy', name], 'paene destroy');
          return t;
        },
      },
    ];
    const ociRuns: { oci: OciRuntime; engine: string; what: string; extra: string[] }[] = [
      {
        oci: 'runc',
        engine: 'runc run',
        what: 'runc run of a generated bundle, process /bin/true (create + start + wait + delete)',
        extra: [],
      },
      { oci: 'paene-runc', engine: 'paene-runc run', what: "paene-runc run of the same bundle (paene's OCI command line)", extra: [] },
      { oci: 'crun', engine: 'crun run', what: 'crun run of the same bundle', extra: [] },
      {
        oci: 'crun',
        engine: 'crun run (no cgroups)',
        what: 'crun --cgroup-manager=disabled run: the same bundle without any cgroup (not like for like; shown because crun refuses hybrid cgroups)',
        extra: ['--cgroup-manager=disabled'],
      },
    ];
    for (const x of ociRuns) {
      const prog = ociProgram(x.oci);
      engines.push({
        engine: x.engine,
        what: x.what,
        cycle: async (i) => {
          if (!prog) throw new Error(`${x.oci} is not installed (apt-get install ${x.oci})`);
          const id = `${tag}-${x.oci}${x.extra.length ? '-nocg' : ''}-${i}`;
          const bundle = path.join(o.dir, 'bundles', id);
          writeBundle(bundle, rootfs, ['/bin/true'], id);
          return timed(prog, [...x.extra, ...ociArgs(o.dir, x.oci, 'run', '-b', bundle, id)], x.engine);
        },
      });
    }
    const bwrap = which('bwrap');
    engines.push({
      engine: 'bwrap',
      what: 'bubblewrap with pid/ipc/uts/cgroup/mount namespaces and the same rootfs read-only; no cgroups',
      cycle: async () => {
        if (!bwrap) throw new Error('bwrap is not installed (apt-get install bubblewrap)');
        return timed(
          bwrap,
          [
            '--unshare-pid',
            '--unshare-ipc',
            '--unshare-uts',
            '--unshare-cgroup',
            '--ro-bind',
            rootfs,
            '/',
            '--proc',
            '/proc',
            '--dev',
            '/dev',
            '--tmpfs',
            '/tmp',
            '/bin/true',
          ],
          'bwrap',
        );
      },
    });

    const samples = new Map<string, number[]>(engines.map((e) => [e.engine, []]));
    const errors = new Map<string, string>();
    const total = o.runs * engines.length;
    let done = 0;
    for (let i = 0; i < o.runs; i++) {
      for (let k = 0; k < engines.length; k++) {
        const e = engines[(i + k) % engines.length];
        done++;
        if (errors.has(e.engine)) continue; // a peer that failed once is reported, not retried
        try {
          samples.get(e.engine)?.push(await e.cycle(i));
        } catch (err) {
          errors.set(e.engine, err instanceof Error ? err.message : String(err));
          log(`  ${e.engine} failed: ${errors.get(e.engine)}`);
          await cleanupPeers(o.dir).catch(() => undefined);
        }
        o.progress?.(done, total, e.engine);
      }
    }
    cycleResults = engines.map((e) => {
      const xs = samples.get(e.engine) ?? [];
      const r: EngineResult = { engine: e.engine, what: e.what, samples: xs.map((x) => round(x)), medianMs: round(median(xs)) };
      if (errors.has(e.engine)) r.error = errors.get(e.engine);
      if (e.steps) r.steps = Object.fromEntries(Object.entries(e.steps).map(([k, v]) => [k, round(median(v))]));
      return r;
    });

    // ---- exec into a running container
    const ctx = 'lc-exec';
    await rt.create({ name: ctx, image: DEFAULT_IMAGE });
    await rt.start(ctx);
    const execEngines: Engine[] = [
      {
        engine: 'paene exec (API)',
        what: 'rt.execCapture(ctx, ["/bin/true"]) in one Node process',
        cycle: async () => {
          const t = performance.now();
          const r = await rt.execCapture(ctx, ['/bin/true'], { timeoutMs: 30_000 });
          if (r.code !== 0) throw new Error(`exec exited ${r.code}: ${r.stderr}`);
          return performance.now() - t;
        },
      },
      {
        engine: 'paene exec (CLI)',
        what: 'paene exec ctx -- /bin/true: the installed command, natively from the exec plan',
        cycle: () => timed(paene, ['--root', stateRoot, 'exec', ctx, '--', '/bin/true'], 'paene exec'),
      },
      {
        engine: 'paene exec (Node CLI)',
        what: 'node bin/paene.js exec ctx -- /bin/true: the same verb through Node',
        cycle: () => timed(node, [cli, '--root', stateRoot, 'exec', ctx, '--', '/bin/true'], 'paene exec (Node)'),
      },
    ];
    const ociExecs: { oci: OciRuntime; engine: string; extra: string[] }[] = [
      { oci: 'runc', engine: 'runc exec', extra: [] },
      { oci: 'paene-runc', engine: 'paene-runc exec', extra: [] },
      { oci: 'crun', engine: 'crun exec', extra: [] },
      { oci: 'crun', engine: 'crun exec (no cgroups)', extra: ['--cgroup-manager=disabled'] },
    ];
    for (const x of ociExecs) {
      const prog = ociProgram(x.oci);
      const id = `${tag}-${x.oci}${x.extra.length ? '-nocg' : ''}-exec`;
      let started: string | undefined;
      if (!prog) started = `${x.oci} is not installed`;
      else {
        const bundle = path.join(o.dir, 'bundles', id);
        writeBundle(bundle, rootfs, ['/bin/sleep', '100000'], id);
        try {
          await runDetached(prog, [...x.extra, ...ociArgs(o.dir, x.oci, 'run', '--detach', '-b', bundle, id)], `${x.oci} run --detach`);
        } catch (err) {
          started = err instanceof Error ? err.message : String(err);
        }
      }
      const failed = started;
      execEngines.push({
        engine: x.engine,
        what: `${x.oci} ${x.extra.join(' ')} exec into a running container (its process: sleep)`.replace(/\s+/g, ' '),
        cycle: async () => {
          if (failed !== undefined || !prog) throw new Error(failed ?? `${x.oci} is not installed`);
          return timed(prog, [...x.extra, ...ociArgs(o.dir, x.oci, 'exec', id, '/bin/true')], x.engine);
        },
      });
    }
    const execSamples = new Map<string, number[]>(execEngines.map((e) => [e.engine, []]));
    const execErrors = new Map<string, string>();
    for (let i = 0; i < o.runs; i++) {
      for (let k = 0; k < execEngines.length; k++) {
        const e = execEngines[(i + k) % execEngines.length];
        if (execErrors.has(e.engine)) continue;
        try {
          execSamples.get(e.engine)?.push(await e.cycle(i));
        } catch (err) {
          execErrors.set(e.engine, err instanceof Error ? err.message : String(err));
        }
      }
    }
    execResults = execEngines.map((e) => {
      const xs = execSamples.get(e.engine) ?? [];
      const r: EngineResult = { engine: e.engine, what: e.what, samples: xs.map((x) => round(x)), medianMs: round(median(xs)) };
      if (execErrors.has(e.engine)) r.error = execErrors.get(e.engine);
      return r;
    });
    if (o.many) {
      await rt.destroy(ctx, { force: true });
      many = await runMany(paene, path.join(o.dir, 'many'), o.many, o.runs);
    }
  } finally {
    cleanupErrors = await cleanup.run();
  }
  const ratioTo = (list: EngineResult[]) => {
    const base = list[0]?.medianMs;
    for (const r of list) if (Number.isFinite(r.medianMs) && base) r.ratioToPaeneApi = round(r.medianMs / base, 2);
  };
  ratioTo(cycleResults);
  ratioTo(execResults);
  const ratios: Record<string, number> = {};
  const api = cycleResults[0]?.medianMs;
  const cliMs = cycleResults[1]?.medianMs;
  for (const r of cycleResults.slice(2)) {
    if (Number.isFinite(r.medianMs)) {
      ratios[`paene API / ${r.engine}`] = round(api / r.medianMs, 2);
      ratios[`paene CLI / ${r.engine}`] = round(cliMs / r.medianMs, 2);
    }
  }
  // paene's OCI command line against runc's, like for like (same bundle, both a Node-free caller)
  const med = (list: EngineResult[], name: string) => list.find((x) => x.engine === name)?.medianMs ?? NaN;
  if (Number.isFinite(med(cycleResults, 'paene-runc run') / med(cycleResults, 'runc run'))) {
    ratios['paene-runc run / runc run'] = round(med(cycleResults, 'paene-runc run') / med(cycleResults, 'runc run'), 2);
  }
  if (Number.isFinite(med(execResults, 'paene-runc exec') / med(execResults, 'runc exec'))) {
    ratios['paene-runc exec / runc exec'] = round(med(execResults, 'paene-runc exec') / med(execResults, 'runc exec'), 2);
  }
  for (const r of execResults.slice(3)) {
    if (Number.isFinite(r.medianMs)) {
      ratios[`paene exec API / ${r.engine}`] = round(execResults[0].medianMs / r.medianMs, 2);
      ratios[`paene exec CLI / ${r.engine}`] = round(execResults[1].medianMs / r.medianMs, 2);
      ratios[`paene exec Node CLI / ${r.engine}`] = round(execResults[2].medianMs / r.medianMs, 2);
    }
  }
  return {
    benchmark: 'lifecycle',
    machine: machineFacts(),
    versions,
    runs: o.runs,
    nodeStartupMs,
    cycle: cycleResults,
    exec: execResults,
    ratios,
    many,
    cleanup: { errors: cleanupErrors },
  };
}

/** CPU milliseconds of this process's reaped children (/proc/self/stat cutime + cstime, in clock ticks of 10 ms). */
function reapedChildrenCpuMs(): number {
  const t = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * 10; // fields 16, 17
}

/**
 * The many-per-call part, in a state root of its own (its base image built
 * first, untimed): list with none, create N and start them (two calls), list
 * with N, destroy all (one call), then create and start N in one call.
 * Whatever fails is reported in `error`; the root is destroyed whatever
 * happens.
 */
async function runMany(paene: string, dir: string, n: number, runs: number): Promise<ManyResult> {
  keepRootOffEgress(path.join(dir, 'state'));
  const g = ['--root', path.join(dir, 'state')];
  const list = async () => {
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < Math.max(5, runs); i++) {
      const c0 = reapedChildrenCpuMs();
      wall.push(await timed(paene, [...g, 'list'], 'paene list'));
      cpu.push(reapedChildrenCpuMs() - c0);
    }
    return { wall: median(wall), cpu: median(cpu) };
  };
  const r: ManyResult = {
    contexts: n,
    createS: NaN,
    startS: NaN,
    createStartPerS: NaN,
    createStartOneCallS: NaN,
    createStartOneCallPerS: NaN,
    destroyS: NaN,
    destroyPerS: NaN,
    listEmptyMs: NaN,
    listFullMs: NaN,
    listRatio: NaN,
    listEmptyCpuMs: NaN,
    listFullCpuMs: NaN,
    listCpuRatio: NaN,
  };
  try {
    await timed(paene, [...g, 'image', 'build'], 'paene image build', 600_000); // the base image once, untimed
    const empty = await list();
    r.listEmptyMs = round(empty.wall);
    r.listEmptyCpuMs = round(empty.cpu);
    r.createS = round((await timed(paene, [...g, 'create', 'many%d', '--count', String(n)], 'paene create --count', 600_000)) / 1000, 3);
    r.startS = round((await timed(paene, [...g, 'start', '--all'], 'paene start --all', 600_000)) / 1000, 3);
    r.createStartPerS = round(n / (r.createS + r.startS), 1);
    const full = await list();
    r.listFullMs = round(full.wall);
    r.listRatio = round(r.listFullMs / r.listEmptyMs, 2);
    r.listFullCpuMs = round(full.cpu);
    r.listCpuRatio = round(r.listFullCpuMs / r.listEmptyCpuMs, 2);
    r.destroyS = round((await timed(paene, [...g, 'destroy', '--all'], 'paene destroy --all', 600_000)) / 1000, 3);
    r.destroyPerS = round(n / r.destroyS, 1);
    // The same set again, created and started by one call.
    r.createStartOneCallS = round(
      (await timed(paene, [...g, 'create', 'many%d', '--count', String(n), '--start'], 'paene create --count --start', 600_000)) / 1000,
      3,
    );
    r.createStartOneCallPerS = round(n / r.createStartOneCallS, 1);
  } catch (e) {
    r.error = e instanceof Error ? e.message : String(e);
  } finally {
    await run(paene, [...g, 'destroy', '--all', '--force'], { timeoutMs: 600_000 }).catch(() => undefined);
    const rt = openRuntime(path.join(dir, 'state'));
    await rt.shutdownMonitor();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return r;
}
