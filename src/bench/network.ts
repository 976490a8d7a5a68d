// `paene bench network`: what each network model costs, against the bare
// host, in one run. The same static client and server (paene-bench tcp-crr,
// tcp-rr, tcp-stream, http against busybox httpd) run:
//   host     both on the host's loopback
//   shared   both in one shared context, on its own 127.0.0.1 (which its BPF
//            programs rewrite to its address: the hooks are on the path)
//   none     both in one context with a namespace of its own, on its lo
//   private  the server in a private context, the client on the far side of
//            its veth and bridge (in the bench's own host-side namespace)
// Each repetition runs every metric on every side, the side that goes first
// rotating; medians and ratios to the host, paired per repetition (measure),
// are reported (> 1 would be faster than the host). As in the outbound rows:
// every client and server on one CPU, each run to a server port of its own
// (tcp-crr, tcp-rr, tcp-stream), and the host's and private's clients in the
// cgroups of a `--net host` context, so every side is scheduled as a
// context's process is. Then the memory one more idle context of each model
// costs.
// Everything runs in a scratch state root and a network namespace the bench
// makes, and is removed at the end.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { NetMode } from '../net/model.js';
import { PaeneError } from '../model/errors.js';
import { nativePath } from '../kernel/helper.js';
import { detectCgroupHost } from '../cgroups/cgroups.js';
import { sampleUsage } from '../runtime/limits.js';
import { openImageStore, openRuntime, storeImageSource } from '../runtime/open.js';
import { parseValue } from './overhead.js';
import { Cleanup, type MachineFacts, machineFacts, median, meminfo, round, run, sleep } from './common.js';
import { DEFAULT_IMAGE } from '../image/store.js';
import { BEYOND, WORLD_POOL, World } from '../check/world.js';

export type NetSide = 'host' | 'shared' | 'none' | 'private';
export const NET_SIDES: readonly NetSide[] = ['host', 'shared', 'none', 'private'];

export interface NetworkOptions {
  dir: string;
  reps: number;
  /** multiplies the iteration counts (tests use less) */
  scale?: number;
  /** contexts per model for the memory figure */
  memoryContexts?: number;
  /** only the outbound rows (no loopback rows, no memory figure) */
  outboundOnly?: boolean;
  /**
   * The CPU the outbound clients and servers are bound to (undefined: the
   * last this process may use; null: none, the scheduler places them).
   */
  cpu?: number | null;
  log?: (s: string) => void;
  progress?: (done: number, total: number, detail: string) => void;
}

/**
 * The outbound clients: `host` H's own stack, from a process in the cgroups
 * of a `--net host` context (so it is scheduled as a context's process is:
 * only the network differs); `bare` the same from the bench's own cgroup
 * (a root-cgroup process is favoured by the scheduler on a loaded machine,
 * so that row is shown, not the goals' base); `shared` and `private` from
 * those contexts (paene exec); `peer` a bare veth + bridge + masquerade
 * namespace the bench makes in H (what Docker's default network costs),
 * from the same cgroups as `host`.
 */
export type OutSide = 'host' | 'bare' | 'shared' | 'private' | 'peer';
export const OUT_SIDES: readonly OutSide[] = ['host', 'bare', 'shared', 'private', 'peer'];

export interface OutMetric {
  name: NetMetric['name'];
  what: string;
  unit: string;
  sides: Record<OutSide, { runs: number[]; median: number; ratio: number }>;
}

export interface OutboundResult {
  /** per client side (OutSide): H's own stack, a shared context in H's egress pool, a private context on H's bridge, the peer */
  metrics: OutMetric[];
  /**
   * issue 25's goals, outbound throughput and request latency: the worst
   * ratio to the host of each model over GOAL_METRICS (the connection rate,
   * tcp-crr, is reported beside them in `metrics`, not judged)
   */
  goals: { side: 'shared' | 'private'; worstRatio: number; goal: number; met: boolean; metrics: NetMetric['name'][] }[];
  /** paene links and nft tables left in the world's host namespace after its contexts were destroyed */
  leftovers: string[];
  /** the CPU every client and server ran on (null: placed by the scheduler) */
  cpu: number | null;
}

export interface NetMetric {
  name: 'tcp-crr' | 'tcp-rr' | 'tcp-stream' | 'http';
  what: string;
  unit: string;
  /** per side: the value of every repetition, the median, and the median of its per-repetition ratios to the host (measure) */
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
  /** out to a server beyond the host: host, a shared context with egress, a private context (issue 25) */
  outbound: OutboundResult;
  /** the CPU every loopback and outbound client and server ran on (null: placed by the scheduler) */
  cpu: number | null;
  /** the paper's claim, checked: shared within 2% of the host on every metric */
  sharedVsHost: { worstRatio: number; goal: number; met: boolean };
  cleanup: { errors: string[] };
}

/**
 * The loopback servers' ports: a range per tcp-serve metric, a port per run
 * (measure's slot), as OUT_PORT. busybox httpd stays on one port: its runs
 * make a few thousand connections a minute to it, well under the 28,000
 * ephemeral ports that TIME_WAIT can hold up for one destination.
 */
const LOOP_PORT: Record<NetMetric['name'], number> = { 'tcp-crr': 24000, 'tcp-rr': 25000, 'tcp-stream': 26000, http: 18603 };
const loopPort = (name: NetMetric['name'], slot: number): number => LOOP_PORT[name] + (name === 'http' ? 0 : slot);
/**
 * The outbound servers' first ports: each run gets a port of its own
 * (measure's slot), so no run finds the 4-tuples of an earlier one still in TIME_WAIT
 * and NAT's conntrack (connect() and the NAT then search ever longer for a
 * free source port: 12,000 conn/s fell to 300 after about 40,000 connections
 * to one port here, whichever side ran then).
 */
const OUT_PORT: Record<NetMetric['name'], number> = { 'tcp-crr': 20000, 'tcp-stream': 21000, http: 22000, 'tcp-rr': 23000 };
/**
 * What issue 25's outbound goals judge, "throughput and request latency":
 * one stream, a request on an open connection and an HTTP request with its
 * own connection. tcp-crr, a bare connect + 1 byte + close, is the
 * connection rate: reported beside them.
 */
const GOAL_METRICS: readonly NetMetric['name'][] = ['tcp-rr', 'tcp-stream', 'http'];
/** Ports per metric: one warm-up, then one per run (so reps x sides < 1000). */
const OUT_PORTS = 1000;
const HOST_ADDR = '127.78.0.3';
/** the outbound peer's bridge network in the world's H (beside the uplink's 172.31.251.0/30) */
const PEER_GATEWAY = '172.31.250.1';
const PEER_ADDR = '172.31.250.2';

export async function runNetworkBench(o: NetworkOptions): Promise<NetworkResult> {
  const log = o.log ?? (() => undefined);
  const scale = o.scale ?? 1;
  // refused before anything is made (the scratch directory included)
  if (o.reps * OUT_SIDES.length >= OUT_PORTS)
    throw new PaeneError('invalid-argument', `--reps must be below ${Math.ceil(OUT_PORTS / OUT_SIDES.length)}, got ${o.reps}`);
  const cleanup = new Cleanup(log);
  fs.mkdirSync(o.dir, { recursive: true });
  const stateRoot = path.join(o.dir, 'state');
  const netns = `paene-bench-net-${process.pid}`;
  const rt = openRuntime(stateRoot);
  const tool = nativePath('paene-bench');
  const metrics: NetMetric[] = [];
  const memory: NetMemory[] = [];
  let errors: string[] = [];
  let outbound: OutboundResult = { metrics: [], goals: [], leftovers: [], cpu: null };
  const cpu = o.cpu === undefined ? lastAllowedCpu() : o.cpu;
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
    rt.network.saveSettings({ hostNetns: `/run/netns/${netns}`, egressAuto: false }); // shared: the 127.x pool, nothing on the host
    const rootfs = await storeImageSource(openImageStore(stateRoot)).rootfsOf(DEFAULT_IMAGE);
    const busybox = path.join(rootfs, 'bin/busybox');
    const www = path.join(o.dir, 'www');
    fs.mkdirSync(www, { recursive: true });
    fs.writeFileSync(path.join(www, 'index.html'), 'paene bench\n');
    const secs = String(Math.ceil(600 * Math.max(scale, 0.05)) + 60);

    const pin = cpu === null ? [] : ['--cpu', String(cpu)];
    if (!o.outboundOnly) {
      // A port per run (slot 0 the warm-up): see LOOP_PORT.
      const slots = 1 + o.reps * NET_SIDES.length;
      const servers = (bench: string, bb: string, bind: string, dir: string): string[][] => [
        ...(['tcp-crr', 'tcp-rr', 'tcp-stream'] as const).map((m) => [
          bench,
          ...pin,
          'tcp-serve',
          bind,
          `${LOOP_PORT[m]}-${LOOP_PORT[m] + slots - 1}`,
          secs,
        ]),
        [bench, ...pin, 'exec', bb, 'httpd', '-f', '-p', `${bind}:${LOOP_PORT.http}`, '-h', dir],
      ];
      // Servers: on the host, and one context per model.
      for (const args of servers(tool, busybox, HOST_ADDR, www)) hostProcs.push(spawnDetached(args[0] as string, args.slice(1)));
      const ctx: Record<Exclude<NetSide, 'host'>, string> = { shared: 'bn-shared', none: 'bn-none', private: 'bn-private' };
      for (const [mode, name] of Object.entries(ctx) as [Exclude<NetSide, 'host'>, string][]) {
        await rt.create({ name, image: DEFAULT_IMAGE, net: { mode, addresses: [], publish: [] } });
        await rt.start(name);
        const cp = await rt.execCapture(
          name,
          ['/bin/sh', '-c', 'cat > /usr/local/bin/paene-bench && chmod 755 /usr/local/bin/paene-bench'],
          {
            input: fs.readFileSync(tool),
          },
        );
        if (cp.code !== 0) throw new Error(`cannot copy paene-bench into ${name}: ${cp.stderr}`);
        const bind = mode === 'private' ? '0.0.0.0' : '127.0.0.1';
        const quote = (a: string) => `'${a}'`;
        const up = await rt.execCapture(name, [
          '/bin/sh',
          '-c',
          `mkdir -p /www && echo 'paene bench' > /www/index.html && ` +
            servers('/usr/local/bin/paene-bench', '/bin/busybox', bind, '/www')
              .map((a) => `(${a.map(quote).join(' ')} >/dev/null 2>&1 &)`)
              .join(' && '),
        ]);
        if (up.code !== 0) throw new Error(`servers in ${name} did not start: ${up.stderr}`);
      }
      const privateAddr = rt.config(ctx.private).net.addresses[0] as string;
      // The host's and private's clients (a host process, the second in the bench's namespace) join the cgroups of
      // a --net host context: a root-cgroup process is favoured by the scheduler on a loaded machine (see runOutbound).
      const hostCtx = 'bn-host';
      await rt.create({
        name: hostCtx,
        image: DEFAULT_IMAGE,
        net: { mode: 'host', addresses: [], publish: [] },
        caps: { profile: 'privileged', add: [], drop: [] },
      });
      await rt.start(hostCtx);
      const hostCgroups = cgroupProcsFiles(rt.status(hostCtx).pid as number);
      const joined = (args: string[]) =>
        run('sh', ['-c', `${hostCgroups.map((f) => `echo $$ > '${f}' && `).join('')}exec "$@"`, 'sh', ...args], { timeoutMs: 300_000 });

      const list = metricList(scale);
      const client = async (
        side: NetSide,
        args: (addr: string, port: number) => string[],
        name: NetMetric['name'],
        slot: number,
      ): Promise<number> => {
        let r: { code: number; stdout: string; stderr: string };
        const port = loopPort(name, slot);
        if (side === 'host') r = await joined([tool, ...pin, ...args(HOST_ADDR, port)]);
        else if (side === 'private')
          r = await joined(['nsenter', `--net=/run/netns/${netns}`, '--', tool, ...pin, ...args(privateAddr, port)]);
        else
          r = await rt.execCapture(ctx[side], ['/usr/local/bin/paene-bench', ...pin, ...args('127.0.0.1', port)], { timeoutMs: 300_000 });
        if (r.code !== 0) throw new PaeneError('internal', `${side}: paene-bench ${name} failed: ${r.stderr.trim()}`);
        log(`${side} ${r.stdout.trim().replaceAll('\n', ', ')}`);
        return parseValue(r.stdout, name);
      };
      // Servers come up asynchronously: one short call per side and server until it answers.
      for (const side of NET_SIDES) {
        for (let i = 0; ; i++) {
          try {
            for (const m of ['tcp-crr', 'tcp-rr', 'tcp-stream', 'http'] as const)
              await client(side, (a, p) => [m, a, String(p), '1'], m, 0);
            break;
          } catch (e) {
            if (i > 100) throw e;
            await sleep(50);
          }
        }
      }
      metrics.push(...(await measure(NET_SIDES, list, o, (side, m, slot) => client(side, m.args, m.name, slot), '')));
      for (const n of [...Object.values(ctx), hostCtx]) await rt.destroy(n, { force: true });
    }
    o.log?.('outbound: a world of two namespaces, a shared context with egress and a private one ...');
    outbound = await runOutbound(o, busybox, www, cpu);
    if (outbound.leftovers.length > 0) errors.push(`left in the outbound world: ${outbound.leftovers.join(', ')}`);

    if (!o.outboundOnly) {
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
    }
  } finally {
    errors = [...errors, ...(await cleanup.run())];
  }
  const worst = metrics.length > 0 ? Math.min(...metrics.map((m) => m.sides.shared.ratio)) : Number.NaN;
  return {
    benchmark: 'network',
    machine: machineFacts(),
    reps: o.reps,
    scale,
    metrics,
    memory,
    outbound,
    cpu,
    sharedVsHost: { worstRatio: worst, goal: 0.98, met: worst >= 0.98 },
    cleanup: { errors },
  };
}

interface MetricSpec {
  name: NetMetric['name'];
  what: string;
  unit: string;
  /** the client's arguments against a server at addr:port */
  args: (addr: string, port: number) => string[];
}

/** The four metrics at a scale: connection rate, request latency on an open connection, one stream, HTTP requests. */
function metricList(scale: number): MetricSpec[] {
  const crrN = Math.max(50, Math.round(3000 * scale));
  const rrN = Math.max(200, Math.round(20000 * scale));
  const streamMiB = Math.max(16, Math.round(1024 * scale));
  const httpN = Math.max(20, Math.round(1000 * scale));
  return [
    {
      name: 'tcp-crr',
      what: 'TCP connect + 1-byte request/answer + close, sequential',
      unit: 'conn/s',
      args: (a, p) => ['tcp-crr', a, String(p), String(crrN)],
    },
    {
      name: 'tcp-rr',
      what: `${rrN} 1-byte requests/answers on one open TCP connection`,
      unit: 'trans/s',
      args: (a, p) => ['tcp-rr', a, String(p), String(rrN)],
    },
    {
      name: 'tcp-stream',
      what: `one TCP connection, ${streamMiB} MiB in 64 KiB writes`,
      unit: 'MiB/s',
      args: (a, p) => ['tcp-stream', a, String(p), String(streamMiB)],
    },
    {
      name: 'http',
      what: 'HTTP/1.0 GETs to busybox httpd, one connection each',
      unit: 'req/s',
      args: (a, p) => ['http', a, String(p), String(httpN)],
    },
  ];
}

/**
 * Outbound: the same clients against servers beyond an uplink veth, in a
 * world the bench makes (src/check/world.ts: paene runs in a namespace H
 * with an egress pool; the servers are in U at BEYOND). From H's own stack
 * (the host), from a shared context in H's egress pool (its connect hooks,
 * the pool's NAT) and from a private context (its routed veth, its NAT). The
 * side that goes first rotates per repetition.
 */
async function runOutbound(o: NetworkOptions, busybox: string, www: string, cpu: number | null): Promise<OutboundResult> {
  const scale = o.scale ?? 1;
  const tool = nativePath('paene-bench');
  const world = World.make('bench-eg');
  const peer = new PeerNet(world);
  const metrics: OutMetric[] = [];
  let leftovers: string[] = [];
  try {
    const secs = String(Math.ceil(600 * Math.max(scale, 0.05)) + 60);
    const pin = cpu === null ? [] : ['--cpu', String(cpu)];
    // one port per run and a warm-up port (slot 0): see OUT_PORT
    const slots = 1 + o.reps * OUT_SIDES.length;
    const last = (name: NetMetric['name']) => OUT_PORT[name] + slots - 1;
    world.background(world.u, [tool, ...pin, 'tcp-serve', BEYOND, `${OUT_PORT['tcp-crr']}-${last('tcp-crr')}`, secs]);
    world.background(world.u, [tool, ...pin, 'tcp-serve', BEYOND, `${OUT_PORT['tcp-rr']}-${last('tcp-rr')}`, secs]);
    world.background(world.u, [tool, ...pin, 'tcp-serve', BEYOND, `${OUT_PORT['tcp-stream']}-${last('tcp-stream')}`, secs]);
    for (let i = 0; i < slots; i++)
      world.background(world.u, [tool, ...pin, 'exec', busybox, 'httpd', '-f', '-p', `${BEYOND}:${OUT_PORT.http + i}`, '-h', www]);
    world.must(['net', 'settings', '--egress-pool', WORLD_POOL]);
    const ctx = { shared: 'bo-shared', private: 'bo-private', host: 'bo-host' } as const;
    world.must(['create', ctx.shared, '--egress', 'nat']);
    world.must(['create', ctx.private, '--net', 'private', '--egress', 'nat']);
    // only its cgroups are used: the host's and the peer's clients join them
    world.must(['create', ctx.host, '--net', 'host', '--caps', 'privileged']);
    const bin = fs.readFileSync(tool);
    for (const name of [ctx.shared, ctx.private]) {
      world.must(['start', name]);
      world.must(['exec', name, '--', '/bin/sh', '-c', 'cat > /usr/local/bin/paene-bench && chmod 755 /usr/local/bin/paene-bench'], bin);
    }
    world.must(['start', ctx.host]);
    const hostCgroups = cgroupProcsFiles(initPidOf(world, ctx.host));
    peer.make();
    const inNs = (ns: string, args: string[], join: string[]) =>
      run(
        'sh',
        [
          '-c',
          `${join.map((f) => `echo $$ > '${f}' && `).join('')}exec "$@"`,
          'sh',
          'nsenter',
          `--net=/run/netns/${ns}`,
          '--',
          tool,
          ...args,
        ],
        {
          timeoutMs: 300_000,
        },
      );
    const client = async (side: OutSide, args: string[], name: string): Promise<number> => {
      const r =
        side === 'host'
          ? await inNs(world.h, args, hostCgroups)
          : side === 'bare'
            ? await inNs(world.h, args, [])
            : side === 'peer'
              ? await inNs(peer.ns, args, hostCgroups)
              : await world.paeneAsync(['exec', ctx[side], '--', '/usr/local/bin/paene-bench', ...args]).then((x) => ({
                  code: x.code ?? 1,
                  stdout: x.out,
                  stderr: x.out,
                }));
      if (r.code !== 0) throw new PaeneError('internal', `outbound ${side}: paene-bench ${name} failed: ${r.stderr.trim()}`);
      o.log?.(`outbound ${side} ${r.stdout.trim().replaceAll('\n', ', ')}`);
      return parseValue(r.stdout, name);
    };
    for (const side of OUT_SIDES) {
      for (let i = 0; ; i++) {
        try {
          await client(side, [...pin, 'tcp-crr', BEYOND, String(OUT_PORT['tcp-crr']), '1'], 'tcp-crr');
          await client(side, [...pin, 'tcp-rr', BEYOND, String(OUT_PORT['tcp-rr']), '1'], 'tcp-rr');
          await client(side, [...pin, 'http', BEYOND, String(OUT_PORT.http), '1'], 'http');
          break;
        } catch (e) {
          if (i > 100) throw e;
          await sleep(50);
        }
      }
    }
    const list = metricList(scale);
    const runs = await measure(
      OUT_SIDES,
      list,
      o,
      (side, x, slot) => client(side, [...pin, ...x.args(BEYOND, OUT_PORT[x.name] + slot)], x.name),
      'outbound ',
    );
    for (const m of runs) metrics.push({ ...m, what: `${m.what}, to ${BEYOND} beyond the uplink` });
  } finally {
    const left = peer.remove();
    leftovers = [...left, ...(await world.close())];
  }
  const goals = (
    [
      ['shared', 0.95],
      ['private', 0.9],
    ] as const
  ).map(([side, goal]) => {
    const judged = metrics.filter((m) => GOAL_METRICS.includes(m.name));
    const worst = Math.min(...judged.map((m) => m.sides[side].ratio));
    return { side, worstRatio: worst, goal, met: worst >= goal, metrics: judged.map((m) => m.name) };
  });
  return { metrics, goals, leftovers, cpu };
}

/** The highest CPU this process may run on (Cpus_allowed_list), where the outbound clients and servers are bound. */
function lastAllowedCpu(): number {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  const cpus = (m?.[1] ?? '0').split(',').map((r) => Number(r.split('-').at(-1)));
  return Math.max(...cpus.filter((c) => Number.isInteger(c)), 0);
}

/** The init pid of a running context of the world's root (`ls --json`). */
function initPidOf(world: World, name: string): number {
  const list = JSON.parse(world.must(['ls', '--json'])) as { name: string; pid?: number }[];
  const pid = list.find((c) => c.name === name)?.pid;
  if (!pid) throw new Error(`no init pid for ${name}`);
  return pid;
}

/** The cgroup.procs file of each hierarchy process `pid` is in (v1, hybrid, v2), so another process can join them all. */
export function cgroupProcsFiles(pid: number): string[] {
  const host = detectCgroupHost();
  const files: string[] = [];
  for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line);
    if (!m || m[2] === '/') continue;
    const ctrls = (m[1] as string).split(',');
    const mount = ctrls[0] === '' ? host.unified?.mount : ctrls.map((c) => host.v1.get(c)).find((x) => x !== undefined);
    if (mount) files.push(path.join(mount, m[2] as string, 'cgroup.procs'));
  }
  return [...new Set(files)];
}

/** A peer for the private model: a bare namespace on a bridge in H with a masquerade, as Docker's default network is. */
class PeerNet {
  readonly ns: string;
  private readonly bridge = 'paene-peerbr';
  private readonly veth = 'paene-peerh';
  private readonly table = 'paene_bench_peer';
  constructor(private readonly world: World) {
    this.ns = world.h.replace(/-h$/, '-p');
  }

  make(): void {
    const h = this.world.h;
    const steps: string[][] = [
      ['ip', 'netns', 'add', this.ns],
      ['ip', '-n', h, 'link', 'add', this.bridge, 'type', 'bridge'],
      ['ip', '-n', h, 'addr', 'add', `${PEER_GATEWAY}/24`, 'dev', this.bridge],
      ['ip', '-n', h, 'link', 'set', this.bridge, 'up'],
      ['ip', '-n', h, 'link', 'add', this.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns],
      ['ip', '-n', h, 'link', 'set', this.veth, 'master', this.bridge, 'up'],
      ['ip', '-n', this.ns, 'link', 'set', 'lo', 'up'],
      ['ip', '-n', this.ns, 'addr', 'add', `${PEER_ADDR}/24`, 'dev', 'eth0'],
      ['ip', '-n', this.ns, 'link', 'set', 'eth0', 'up'],
      ['ip', '-n', this.ns, 'route', 'add', 'default', 'via', PEER_GATEWAY],
      ['ip', 'netns', 'exec', h, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'],
    ];
    for (const s of steps) {
      const r = spawnSync(s[0] as string, s.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${s.join(' ')}: ${r.stderr.trim()}`);
    }
    const rules = `table ip ${this.table} {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr ${PEER_GATEWAY}/24 oifname != "${this.bridge}" masquerade\n\t}\n}\n`;
    const r = this.world.run(h, ['nft', '-f', '-'], rules);
    if (r.code !== 0) throw new Error(`nft (peer): ${r.out}`);
  }

  /** Removes the namespace, the bridge and the table; what could not be removed is returned. */
  remove(): string[] {
    spawnSync('ip', ['netns', 'delete', this.ns]);
    this.world.run(this.world.h, ['ip', 'link', 'delete', this.bridge]);
    this.world.run(this.world.h, ['nft', 'delete', 'table', 'ip', this.table]);
    return fs.existsSync(`/run/netns/${this.ns}`) ? [`netns ${this.ns}`] : [];
  }
}

/**
 * Every metric on every side, `o.reps` times, the side that goes first
 * rotating per repetition; each side's median, and its ratio to the first
 * side (the host): the median over the repetitions of the side's run divided
 * by the host's run of the same repetition. A repetition's runs follow each
 * other within a second or two, while this shared machine's speed moves by
 * 30% from one repetition to the next (other guests of the hypervisor), so
 * the paired ratio holds where a ratio of medians would mix slow and fast
 * repetitions.
 */
async function measure<S extends string>(
  sides: readonly S[],
  list: MetricSpec[],
  o: NetworkOptions,
  /** slot: 1 + the run's index among the metric's runs (each run may use a server port of its own) */
  client: (side: S, m: MetricSpec, slot: number) => Promise<number>,
  tag: string,
): Promise<{ name: NetMetric['name']; what: string; unit: string; sides: Record<S, { runs: number[]; median: number; ratio: number }> }[]> {
  const runs = new Map<string, number[]>();
  const total = o.reps * list.length * sides.length;
  let done = 0;
  for (let rep = 0; rep < o.reps; rep++)
    for (const m of list)
      for (let k = 0; k < sides.length; k++) {
        const side = sides[(k + rep) % sides.length] as S;
        const key = `${m.name}/${side}`;
        runs.set(key, [...(runs.get(key) ?? []), await client(side, m, 1 + rep * sides.length + k)]);
        o.progress?.(++done, total, `${tag}${m.name} ${side}`);
      }
  return list.map((m) => {
    const host = runs.get(`${m.name}/${sides[0]}`) ?? [];
    const bySide = Object.fromEntries(
      sides.map((side) => {
        const v = runs.get(`${m.name}/${side}`) ?? [];
        const ratio = median(v.map((x, i) => x / (host[i] as number)));
        return [side, { runs: v.map((x) => round(x, 1)), median: round(median(v), 1), ratio: round(ratio, 3) }];
      }),
    ) as Record<S, { runs: number[]; median: number; ratio: number }>;
    return { name: m.name, what: m.what, unit: m.unit, sides: bySide };
  });
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
  const where = r.cpu === null ? 'placed by the scheduler' : `clients and servers on CPU ${r.cpu}`;
  if (r.metrics.length > 0) lines.push(`LOOPBACK (client and server on one side; ${where})`);
  if (r.metrics.length > 0) lines.push(`${pad('METRIC', 12)}${pad('UNIT', 10)}${NET_SIDES.map((s) => pad(s.toUpperCase(), 18)).join('')}`);
  for (const m of r.metrics) {
    lines.push(
      `${pad(m.name, 12)}${pad(m.unit, 10)}${NET_SIDES.map((s) => pad(`${m.sides[s].median}${s === 'host' ? '' : ` (${m.sides[s].ratio.toFixed(2)}x)`}`, 18)).join('')}`,
    );
  }
  if (r.memory.length > 0)
    lines.push('', `${pad('MODEL', 12)}${pad('CONTEXTS', 10)}${pad('CGROUP/CTX', 14)}${pad('SLAB/CTX', 14)}MEMAVAILABLE/CTX (noisy)`);
  for (const m of r.memory)
    lines.push(
      `${pad(m.mode, 12)}${pad(String(m.contexts), 10)}${pad(`${m.cgroupKiB} KiB`, 14)}${pad(`${m.slabKiB} KiB`, 14)}${m.memAvailableKiB} KiB`,
    );
  if (r.outbound.metrics.length > 0) {
    lines.push('');
    const where = r.outbound.cpu === null ? 'placed by the scheduler' : `clients and servers on CPU ${r.outbound.cpu}`;
    lines.push(`OUTBOUND (to a server beyond the uplink veth, in a world of two namespaces; ${where})`);
    lines.push(`${pad('METRIC', 12)}${pad('UNIT', 10)}${OUT_SIDES.map((s) => pad(s.toUpperCase(), 18)).join('')}`);
    for (const m of r.outbound.metrics)
      lines.push(
        `${pad(m.name, 12)}${pad(m.unit, 10)}${OUT_SIDES.map((s) => pad(`${m.sides[s].median}${s === 'host' ? '' : ` (${m.sides[s].ratio.toFixed(2)}x)`}`, 18)).join('')}`,
      );
    // the request rates as the time of one request (the median run's mean)
    for (const [name, unit, per] of [
      ['tcp-rr', 'us/trans', 1e6],
      ['http', 'ms/req', 1000],
    ] as const) {
      const m = r.outbound.metrics.find((x) => x.name === name);
      if (m)
        lines.push(
          `${pad(`${name} time`, 12)}${pad(unit, 10)}${OUT_SIDES.map((s) => pad((per / m.sides[s].median).toFixed(3), 18)).join('')}`,
        );
    }
    for (const g of r.outbound.goals)
      lines.push(
        `outbound ${g.side} vs host (${g.metrics.join(', ')}): worst ratio ${g.worstRatio.toFixed(3)} (goal >= ${g.goal}): ${g.met ? 'met' : 'not met'}`,
      );
    const crr = r.outbound.metrics.find((m) => m.name === 'tcp-crr');
    if (crr)
      lines.push(
        `outbound connection rate (tcp-crr, reported, not judged): ${OUT_SIDES.filter((s) => s !== 'host')
          .map((s) => `${s} ${crr.sides[s].ratio.toFixed(2)}x`)
          .join(', ')}`,
      );
  }
  if (r.metrics.length > 0)
    lines.push(
      '',
      `shared vs host: worst ratio ${r.sharedVsHost.worstRatio.toFixed(3)} (goal >= ${r.sharedVsHost.goal}): ${r.sharedVsHost.met ? 'met' : 'not met'}`,
    );
  return lines.join('\n');
}
