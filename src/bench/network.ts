// `paene bench network`: what each network model costs, against the bare
// host, in one run. The same static client and server (paene-bench tcp-rr,
// tcp-stream, http against busybox httpd) run:
//   host     both on the host's loopback
//   shared   both in one shared context, on its own 127.0.0.1 (which its BPF
//            programs rewrite to its address: the hooks are on the path)
//   none     both in one context with a namespace of its own, on its lo
//   private  the server in a private context, the client on the far side of
//            its veth and bridge (in the bench's own host-side namespace)
// Each repetition runs every metric on every side, the side that goes first
// rotating; medians and ratios to the host are reported (> 1 would be faster
// than the host). Then the memory one more idle context of each model costs.
// Everything runs in a scratch state root and a network namespace the bench
// makes, and is removed at the end.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { NetMode } from '../net/model.js';
import { nativePath } from '../kernel/helper.js';
import { sampleUsage } from '../runtime/limits.js';
import { openImageStore, openRuntime, storeImageSource } from '../runtime/open.js';
import { parseValue } from './overhead.js';
import { Cleanup, type MachineFacts, machineFacts, median, meminfo, round, run, sleep } from './common.js';
import { DEFAULT_IMAGE } from '../image/store.js';

export type NetSide = 'host' | 'shared' | 'none' | 'private';
export const NET_SIDES: readonly NetSide[] = ['host', 'shared', 'none', 'private'];

export interface NetworkOptions {
  dir: string;
  reps: number;
  /** multiplies the iteration counts (tests use less) */
  scale?: number;
  /** contexts per model for the memory figure */
  memoryContexts?: number;
  log?: (s: string) => void;
  progress?: (done: number, total: number, detail: string) => void;
}

export interface NetMetric {
  name: 'tcp-rr' | 'tcp-stream' | 'http';
  what: string;
  unit: string;
  /** per side: the value of every repetition, the median, and median / host median */
  sides: Record<NetSide, { runs: number[]; median: number; ratio: number }>;
}

export interface NetMemory {
  mode: NetMode;
  contexts: number;
  /** median memory cgroup charge of an idle context (KiB) */
  cgroupKiB: number;
  /** host Slab per context (KiB): namespaces, devices, BPF programs */
  slabKiB: number;
  /** MemAvailable lost per context (KiB): everything, and the noisiest (page cache moves it) */
  memAvailableKiB: number;
}

export interface NetworkResult {
  benchmark: 'network';
  machine: MachineFacts;
  reps: number;
  scale: number;
  metrics: NetMetric[];
  memory: NetMemory[];
  /** the paper's claim, checked: shared within 2% of the host on every metric */
  sharedVsHost: { worstRatio: number; goal: number; met: boolean };
  cleanup: { errors: string[] };
}

const PORT = { rr: 18601, stream: 18602, http: 18603 };
const HOST_ADDR = '127.78.0.3';

export async function runNetworkBench(o: NetworkOptions): Promise<NetworkResult> {
  const log = o.log ?? (() => undefined);
  const scale = o.scale ?? 1;
  const cleanup = new Cleanup(log);
  fs.mkdirSync(o.dir, { recursive: true });
  const stateRoot = path.join(o.dir, 'state');
  const netns = `paene-bench-net-${process.pid}`;
  const rt = openRuntime(stateRoot);
  const tool = nativePath('paene-bench');
  const metrics: NetMetric[] = [];
  const memory: NetMemory[] = [];
  let errors: string[] = [];
  cleanup.add('remove the scratch directory', () => fs.rmSync(o.dir, { recursive: true, force: true }));
  cleanup.add('remove the bench network namespace', () => void spawnSync('ip', ['netns', 'delete', netns]));
  cleanup.add('stop the monitor', () => rt.shutdownMonitor());
  cleanup.add('destroy the contexts', async () => {
    for (const n of rt.store.names()) await rt.destroy(n, { force: true });
  });
  const hostProcs: { kill: () => void }[] = [];
  cleanup.add('stop the host servers', () => hostProcs.forEach((p) => p.kill()));
  try {
    const made = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`ip netns add ${netns}: ${made.stderr.trim()}`);
    // The bridge of the private context lives in the bench's namespace, never on the host's interfaces.
    rt.network.saveSettings({ hostNetns: `/run/netns/${netns}` });
    const rootfs = await storeImageSource(openImageStore(stateRoot)).rootfsOf(DEFAULT_IMAGE);
    const busybox = path.join(rootfs, 'bin/busybox');
    const www = path.join(o.dir, 'www');
    fs.mkdirSync(www, { recursive: true });
    fs.writeFileSync(path.join(www, 'index.html'), 'paene bench\n');
    const secs = String(Math.ceil(600 * Math.max(scale, 0.05)) + 60);

    // Servers: on the host, and one context per model.
    const hostSpawn = (args: string[]) => {
      const c = spawnDetached(args[0] as string, args.slice(1));
      hostProcs.push(c);
    };
    hostSpawn([tool, 'tcp-serve', HOST_ADDR, String(PORT.rr), secs]);
    hostSpawn([tool, 'tcp-serve', HOST_ADDR, String(PORT.stream), secs]);
    hostSpawn([busybox, 'httpd', '-f', '-p', `${HOST_ADDR}:${PORT.http}`, '-h', www]);
    const ctx: Record<Exclude<NetSide, 'host'>, string> = { shared: 'bn-shared', none: 'bn-none', private: 'bn-private' };
    for (const [mode, name] of Object.entries(ctx) as [Exclude<NetSide, 'host'>, string][]) {
      await rt.create({ name, image: DEFAULT_IMAGE, net: { mode, addresses: [], publish: [] } });
      await rt.start(name);
      const cp = await rt.execCapture(name, ['/bin/sh', '-c', 'cat > /usr/local/bin/paene-bench && chmod 755 /usr/local/bin/paene-bench'], {
        input: fs.readFileSync(tool),
      });
      if (cp.code !== 0) throw new Error(`cannot copy paene-bench into ${name}: ${cp.stderr}`);
      const bind = mode === 'private' ? '0.0.0.0' : '127.0.0.1';
      const up = await rt.execCapture(name, [
        '/bin/sh',
        '-c',
        `echo 'paene bench' > /www/index.html && busybox httpd -p ${bind}:${PORT.http} -h /www && ` +
          `(paene-bench tcp-serve ${bind} ${PORT.rr} ${secs} >/dev/null 2>&1 &) && (paene-bench tcp-serve ${bind} ${PORT.stream} ${secs} >/dev/null 2>&1 &)`,
      ]);
      if (up.code !== 0) throw new Error(`servers in ${name} did not start: ${up.stderr}`);
    }
    const privateAddr = rt.config(ctx.private).net.addresses[0] as string;

    const rrN = Math.max(50, Math.round(3000 * scale));
    const streamMiB = Math.max(16, Math.round(1024 * scale));
    const httpN = Math.max(20, Math.round(1000 * scale));
    const list: { name: NetMetric['name']; what: string; unit: string; args: (addr: string) => string[] }[] = [
      {
        name: 'tcp-rr',
        what: 'TCP connect + 1-byte request/answer + close, sequential',
        unit: 'conn/s',
        args: (a) => ['tcp-rr', a, String(PORT.rr), String(rrN)],
      },
      {
        name: 'tcp-stream',
        what: `one TCP connection, ${streamMiB} MiB in 64 KiB writes`,
        unit: 'MiB/s',
        args: (a) => ['tcp-stream', a, String(PORT.stream), String(streamMiB)],
      },
      {
        name: 'http',
        what: 'HTTP/1.0 GETs to busybox httpd, one connection each',
        unit: 'req/s',
        args: (a) => ['http', a, String(PORT.http), String(httpN)],
      },
    ];
    const client = async (side: NetSide, args: (addr: string) => string[], name: string): Promise<number> => {
      let r: { code: number; stdout: string; stderr: string };
      if (side === 'host') r = await run(tool, args(HOST_ADDR), { timeoutMs: 300_000 });
      else if (side === 'private')
        r = await run('nsenter', [`--net=/run/netns/${netns}`, '--', tool, ...args(privateAddr)], { timeoutMs: 300_000 });
      else r = await rt.execCapture(ctx[side], ['/usr/local/bin/paene-bench', ...args('127.0.0.1')], { timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`${side}: paene-bench ${name} failed: ${r.stderr.trim()}`);
      return parseValue(r.stdout, name);
    };
    // Servers come up asynchronously: one short call per side until it answers.
    for (const side of NET_SIDES) {
      for (let i = 0; ; i++) {
        try {
          await client(side, (a) => ['tcp-rr', a, String(PORT.rr), '1'], 'tcp-rr');
          await client(side, (a) => ['http', a, String(PORT.http), '1'], 'http');
          break;
        } catch (e) {
          if (i > 100) throw e;
          await sleep(50);
        }
      }
    }
    const runs = new Map<string, number[]>();
    const total = o.reps * list.length * NET_SIDES.length;
    let done = 0;
    for (let rep = 0; rep < o.reps; rep++) {
      for (const m of list) {
        for (let k = 0; k < NET_SIDES.length; k++) {
          const side = NET_SIDES[(k + rep) % NET_SIDES.length] as NetSide;
          const key = `${m.name}/${side}`;
          runs.set(key, [...(runs.get(key) ?? []), await client(side, m.args, m.name)]);
          o.progress?.(++done, total, `${m.name} ${side}`);
        }
      }
    }
    for (const m of list) {
      const host = median(runs.get(`${m.name}/host`) ?? []);
      const sides = Object.fromEntries(
        NET_SIDES.map((side) => {
          const v = runs.get(`${m.name}/${side}`) ?? [];
          const med = median(v);
          return [side, { runs: v.map((x) => round(x, 1)), median: round(med, 1), ratio: round(med / host, 3) }];
        }),
      ) as NetMetric['sides'];
      metrics.push({ name: m.name, what: m.what, unit: m.unit, sides });
    }
    for (const n of Object.values(ctx)) await rt.destroy(n, { force: true });

    // Memory: n more idle contexts of each model, MemAvailable and Slab before and after.
    const n = o.memoryContexts ?? 10;
    for (const mode of ['shared', 'none', 'private'] as NetMode[]) {
      await sleep(300);
      const before = meminfo();
      const names: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = `bn-mem-${mode}-${i}`;
        await rt.create({ name, image: DEFAULT_IMAGE, net: { mode, addresses: [], publish: [] } });
        await rt.start(name);
        names.push(name);
      }
      await sleep(300);
      const after = meminfo();
      memory.push({
        mode,
        contexts: n,
        cgroupKiB: round(median(names.map((x) => sampleUsage(rt, x).memoryBytes)) / 1024, 1),
        slabKiB: round(((after.Slab ?? 0) - (before.Slab ?? 0)) / 1024 / n, 1),
        memAvailableKiB: round(((before.MemAvailable ?? 0) - (after.MemAvailable ?? 0)) / 1024 / n, 1),
      });
      for (const name of names) await rt.destroy(name, { force: true });
    }
  } finally {
    errors = await cleanup.run();
  }
  const worst = Math.min(...metrics.map((m) => m.sides.shared.ratio));
  return {
    benchmark: 'network',
    machine: machineFacts(),
    reps: o.reps,
    scale,
    metrics,
    memory,
    sharedVsHost: { worstRatio: worst, goal: 0.98, met: worst >= 0.98 },
    cleanup: { errors },
  };
}

/** A host server the bench owns, ended by pid. */
function spawnDetached(program: string, args: string[]): { kill: () => void } {
  const c = spawn(program, args, { stdio: 'ignore' });
  return {
    kill: () => {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    },
  };
}

export function networkTable(r: NetworkResult): string {
  const lines: string[] = [];
  const pad = (s: string, n: number) => s.padEnd(n);
  lines.push(`${pad('METRIC', 12)}${pad('UNIT', 8)}${NET_SIDES.map((s) => pad(s.toUpperCase(), 18)).join('')}`);
  for (const m of r.metrics) {
    lines.push(
      `${pad(m.name, 12)}${pad(m.unit, 8)}${NET_SIDES.map((s) => pad(`${m.sides[s].median}${s === 'host' ? '' : ` (${m.sides[s].ratio.toFixed(2)}x)`}`, 18)).join('')}`,
    );
  }
  lines.push('');
  lines.push(`${pad('MODEL', 12)}${pad('CONTEXTS', 10)}${pad('CGROUP/CTX', 14)}${pad('SLAB/CTX', 14)}MEMAVAILABLE/CTX (noisy)`);
  for (const m of r.memory)
    lines.push(
      `${pad(m.mode, 12)}${pad(String(m.contexts), 10)}${pad(`${m.cgroupKiB} KiB`, 14)}${pad(`${m.slabKiB} KiB`, 14)}${m.memAvailableKiB} KiB`,
    );
  lines.push('');
  lines.push(
    `shared vs host: worst ratio ${r.sharedVsHost.worstRatio.toFixed(3)} (goal >= ${r.sharedVsHost.goal}): ${r.sharedVsHost.met ? 'met' : 'not met'}`,
  );
  return lines.join('\n');
}
