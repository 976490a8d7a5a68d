// `paene bench packing|overhead|lifecycle|network|net-stress|image-import|cp`: the paper's measurements on this machine.
// Every benchmark runs in its own scratch state root (--workdir), never among
// the user's contexts, and removes everything it started, also on Ctrl-C.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { PaeneError } from '../model/errors.js';
import { parseSize } from '../model/units.js';
import { requireRoot } from '../kernel/features.js';
import { writeJson } from '../bench/common.js';
import { type Variant, runPacking } from '../bench/packing.js';
import { runLifecycle } from '../bench/lifecycle.js';
import { runOverhead } from '../bench/overhead.js';
import { importTable, runImportBench } from '../bench/imageimport.js';
import { networkTable, runNetworkBench } from '../bench/network.js';
import { netStressTable, runNetStress } from '../bench/netstress.js';
import { copyTable, runCopyBench } from '../bench/copy.js';
import { lifecycleTable, overheadTable, packingLatencyPlot, packingPlot, packingTable } from '../bench/report.js';
import { ProgressBar } from './format.js';

function count(name: string, min = 1) {
  return (v: string): number => {
    if (!/^\d+$/.test(v.trim()) || Number(v) < min)
      throw new PaeneError('invalid-argument', `${name} must be a whole number >= ${min}, got '${v}'`);
    return Number(v);
  };
}

/** `--cpu N|none`: 'none' stays a word here (commander turns a parser's null into ''); the action maps it to null. */
function cpuOption(v: string): number | 'none' {
  if (v.trim() === 'none') return 'none';
  if (!/^\d+$/.test(v.trim()) || !fs.existsSync(`/sys/devices/system/cpu/cpu${Number(v)}`))
    throw new PaeneError('invalid-argument', `--cpu must be a CPU of this machine or 'none', got '${v}'`);
  return Number(v);
}

function scale(v: string): number {
  const f = Number(v);
  if (!(f > 0) || f > 100) throw new PaeneError('invalid-argument', `--scale must be a number in (0, 100], got '${v}'`);
  return f;
}

function workdirOf(o: { workdir?: string }, what: string): string {
  return path.resolve(o.workdir ?? path.join(os.tmpdir(), `paene-bench-${what}-${process.pid}`));
}

function variantsOf(v: string): Variant[] {
  if (v === 'both') return ['shared', 'private-copy'];
  if (v === 'all') return ['shared', 'limited', 'private-copy'];
  if (v === 'shared' || v === 'limited' || v === 'private-copy') return [v];
  throw new PaeneError(
    'invalid-argument',
    `--variant must be shared, limited, private-copy, both (shared and private-copy) or all, got '${v}'`,
  );
}

export function registerBenchCommands(program: Command): void {
  const bench = program
    .command('bench')
    .description(
      'Benchmarks: phone-booth packing, overhead against the host, network models, lifecycle against runc and crun, paene cp against tar | exec',
    );

  bench
    .command('packing')
    .description(
      'Start contexts one after another, each running busybox httpd on its own loopback address, checking over HTTP that ' +
        'they all answer; stop at --max, at the memory floor, at the time budget or at the first failure. Reports start ' +
        'times, memory and private disk per context, for the shared image and for a private copy per context.',
    )
    .option('--max <n>', 'contexts to pack per variant', count('--max'), 10000)
    .option('--max-private <n>', 'contexts for the private-copy variant (default: --max)', count('--max-private'))
    .option('--min-free <size>', 'stop when MemAvailable falls below this', '2G')
    .option(
      '--variant <v>',
      'shared; limited (shared, each with a 64 MiB memory limit: a memory cgroup of its own); private-copy; both (shared and private-copy); all',
      'both',
    )
    .option('--time-limit <seconds>', 'time budget per variant', count('--time-limit'), 1800)
    .option('--full-check-up-to <n>', 'check every server after each start up to this many contexts', count('--full-check-up-to', 0), 100)
    .option('--check-every <k>', 'beyond that, check all servers every k starts (the newest after each start)', count('--check-every'), 25)
    .option('--sample-every <k>', 'sample memory every k contexts', count('--sample-every'), 10)
    .addOption(
      new Option(
        '--service <how>',
        "how each httpd runs: main (the context's main process: supervised by its init, restarted, logged by paene-log) or exec (started by an exec, as before services existed)",
      )
        .choices(['main', 'exec'])
        .default('main'),
    )
    .option('--workdir <dir>', 'scratch directory (state root and image copies), removed at the end')
    .option('--json <file>', 'write the results as JSON')
    .option('--plot <file.svg>', 'draw memory used against contexts (SVG)')
    .option('--latency-plot <file.svg>', 'draw HTTP answer latency (p50, p99 of each full sweep) against contexts (SVG)')
    .action(
      async (o: {
        max: number;
        maxPrivate?: number;
        minFree: string;
        variant: string;
        timeLimit: number;
        fullCheckUpTo: number;
        checkEvery: number;
        sampleEvery: number;
        service: 'main' | 'exec';
        workdir?: string;
        json?: string;
        plot?: string;
        latencyPlot?: string;
      }) => {
        requireRoot('the packing benchmark');
        const variants = variantsOf(o.variant);
        const minFreeBytes = parseSize(o.minFree, '--min-free');
        const dir = workdirOf(o, 'packing');
        const results = [];
        // one runPacking per variant, so --max-private can differ
        for (const v of variants) {
          const max = v === 'private-copy' ? (o.maxPrivate ?? o.max) : o.max;
          const bar = new ProgressBar(`packing ${v}`, max);
          const r = await runPacking({
            dir,
            variants: [v],
            max,
            minFreeBytes,
            timeBudgetMs: o.timeLimit * 1000,
            fullCheckUpTo: o.fullCheckUpTo,
            checkEvery: o.checkEvery,
            sampleEvery: o.sampleEvery,
            service: o.service,
            log: (s) => {
              bar.done();
              process.stderr.write(s + '\n');
            },
            progress: (_variant, n, _max, detail) => bar.update(n, detail),
          });
          bar.done();
          results.push(r);
        }
        const merged = {
          ...results[0],
          variants: results.flatMap((r) => r.variants),
          cleanup: { errors: results.flatMap((r) => r.cleanup.errors) },
        };
        merged.options.variants = variants;
        if (o.maxPrivate !== undefined) (merged.options as typeof merged.options & { maxPrivate?: number }).maxPrivate = o.maxPrivate;
        process.stdout.write(packingTable(merged) + '\n');
        if (merged.cleanup.errors.length) process.stderr.write(`cleanup problems:\n  ${merged.cleanup.errors.join('\n  ')}\n`);
        if (o.json) writeJson(o.json, merged);
        if (o.plot) {
          fs.mkdirSync(path.dirname(path.resolve(o.plot)), { recursive: true });
          fs.writeFileSync(o.plot, packingPlot(merged));
        }
        if (o.latencyPlot) {
          fs.mkdirSync(path.dirname(path.resolve(o.latencyPlot)), { recursive: true });
          fs.writeFileSync(o.latencyPlot, packingLatencyPlot(merged));
        }
      },
    );

  bench
    .command('lifecycle')
    .description(
      'Whole cycles on the same rootfs and namespaces: paene create+start+exec true+destroy (library API in one process, ' +
        'and the CLI, four processes) against runc run, crun run and bwrap, alternating; then exec into a running ' +
        'container against runc exec / crun exec; then N contexts many per CLI call (create+start, list, destroy). ' +
        'Medians, rates and ratios.',
    )
    .option('--runs <n>', 'runs per engine', count('--runs'), 20)
    .option('--many <n>', 'contexts for the many-per-call part (0: skip it)', count('--many', 0), 200)
    .option('--workdir <dir>', 'scratch directory (state roots, bundles), removed at the end')
    .option('--json <file>', 'write the results as JSON')
    .action(async (o: { runs: number; many: number; workdir?: string; json?: string }) => {
      requireRoot('the lifecycle benchmark');
      const bar = new ProgressBar('lifecycle');
      const r = await runLifecycle({
        dir: workdirOf(o, 'lifecycle'),
        runs: o.runs,
        many: o.many,
        log: (s) => {
          bar.done();
          process.stderr.write(s + '\n');
        },
        progress: (done, total, detail) => bar.update(done, `${done}/${total} ${detail}`),
      });
      bar.done();
      process.stdout.write(lifecycleTable(r) + '\n');
      if (r.cleanup.errors.length) process.stderr.write(`cleanup problems:\n  ${r.cleanup.errors.join('\n  ')}\n`);
      if (o.json) writeJson(o.json, r);
    });

  bench
    .command('overhead')
    .description(
      'Micro-benchmarks on the host and inside a context with the same static program: fork+exit, fork+exec, sh -c true, ' +
        'pipe context switch, 64 MiB page-cache re-read, 32 MiB mmap, loopback HTTP (client and server in two contexts vs ' +
        'both on the host). Medians and the ratio context/host.',
    )
    .option('--reps <n>', 'repetitions (each runs every benchmark once on each side)', count('--reps'), 10)
    .option('--scale <f>', 'multiply the iteration counts (e.g. 0.1 for a quick look)', scale, 1)
    .option('--workdir <dir>', 'scratch directory (state root, test files), removed at the end')
    .option('--json <file>', 'write the results as JSON')
    .action(async (o: { reps: number; scale: number; workdir?: string; json?: string }) => {
      requireRoot('the overhead benchmark');
      const bar = new ProgressBar('overhead');
      const r = await runOverhead({
        dir: workdirOf(o, 'overhead'),
        reps: o.reps,
        scale: o.scale,
        log: (s) => {
          bar.done();
          process.stderr.write(s + '\n');
        },
        progress: (done, total, detail) => bar.update(done, `${done}/${total} ${detail}`),
      });
      bar.done();
      process.stdout.write(overheadTable(r) + '\n');
      if (r.cleanup.errors.length) process.stderr.write(`cleanup problems:\n  ${r.cleanup.errors.join('\n  ')}\n`);
      if (o.json) writeJson(o.json, r);
    });

  bench
    .command('network')
    .description(
      'What each network model costs against the bare host, in one run: TCP connection rate (tcp-crr), request latency on ' +
        'an open connection (tcp-rr), TCP stream throughput and loopback HTTP on the host, in a shared context (its own 127.0.0.1, BPF hooks on the path), in a context with ' +
        "its own namespace (none) and across a private context's routed veth; then the memory per idle context of " +
        "each model. Medians and ratios to the host (the paper's claim: shared >= 0.98x). Then outbound: the same clients " +
        "from the host (in a --net host context's cgroups), the bare host, a shared context with an egress pool, a private " +
        'context and a bare veth + bridge + NAT peer, to servers beyond an uplink veth, in a world of two network ' +
        'namespaces the bench makes, every client and server on one CPU and each run to a server port of its own; ' +
        'ratios paired per repetition. Issue 25 judges outbound throughput and request latency (tcp-rr, tcp-stream, ' +
        'http: shared >= 0.95x, private >= 0.9x of the host); the connection rate is reported beside them.',
    )
    .option('--reps <n>', 'repetitions (each runs every metric once on every side, the first side rotating)', count('--reps'), 7)
    .option('--scale <f>', 'multiply the iteration counts (e.g. 0.1 for a quick look)', scale, 1)
    .option('--memory-contexts <n>', 'idle contexts per model for the memory figure', count('--memory-contexts'), 10)
    .option('--outbound-only', 'only the outbound rows (no loopback rows, no memory figure)')
    .option(
      '--cpu <n|none>',
      'the CPU every client and server (loopback and outbound rows) is bound to (default: the last one), or none: where the scheduler ' +
        'places them moves a rate by up to 20% on a small machine',
      cpuOption,
    )
    .option('--workdir <dir>', 'scratch directory (state root), removed at the end')
    .option('--json <file>', 'write the results as JSON')
    .action(
      async (o: {
        reps: number;
        scale: number;
        memoryContexts: number;
        outboundOnly?: boolean;
        cpu?: number | 'none';
        workdir?: string;
        json?: string;
      }) => {
        requireRoot('the network benchmark');
        const bar = new ProgressBar('network');
        const r = await runNetworkBench({
          dir: workdirOf(o, 'network'),
          reps: o.reps,
          scale: o.scale,
          memoryContexts: o.memoryContexts,
          outboundOnly: o.outboundOnly === true,
          cpu: o.cpu === 'none' ? null : o.cpu,
          log: (s) => {
            bar.done();
            process.stderr.write(s + '\n');
          },
          progress: (done, total, detail) => bar.update(done, `${done}/${total} ${detail}`),
        });
        bar.done();
        process.stdout.write(networkTable(r) + '\n');
        if (r.cleanup.errors.length) process.stderr.write(`cleanup problems:\n  ${r.cleanup.errors.join('\n  ')}\n`);
        if (o.json) writeJson(o.json, r);
      },
    );

  bench
    .command('net-stress')
    .description(
      'Several state roots on one host (issue 25): ROOTS x PER-ROOT contexts of each model (shared, private, each ' +
        'private one publishing a port) created and started, every root at once, in a world of two network namespaces ' +
        'the run makes. Prints duplicate addresses, subnets and names; servers and published ports answering before and ' +
        "after one root's destroy; links, nft tables, registry claims and namespaces left at the end.",
    )
    .option('--roots <n>', 'state roots', count('--roots'), 3)
    .option('--per-root <n>', 'contexts of each model per root', count('--per-root'), 50)
    .option(
      '--no-ipv6',
      "a diagnosis: the world's host without IPv6 (a host's IPv6 addresses count against a shared context's 16 refused host addresses)",
    )
    .option('--json <file>', 'write the results as JSON')
    .action(async (o: { roots: number; perRoot: number; ipv6: boolean; json?: string }) => {
      requireRoot('the net-stress run');
      const r = await runNetStress({ roots: o.roots, perRoot: o.perRoot, noIpv6: !o.ipv6, log: (s) => process.stderr.write(s + '\n') });
      process.stdout.write(netStressTable(r) + '\n');
      if (o.json) writeJson(o.json, r);
      const bad = Object.values(r.duplicates).some((n) => n > 0) || r.leftovers.length + r.failures.length + r.destroyedRootLeft.length > 0;
      const short = Object.values(r.answered).some(([a, b]) => a !== b);
      if (bad || short) process.exitCode = 1;
    });

  bench
    .command('image-import')
    .description(
      'Import speed of a layered image: an OCI layout tar of ~100 MB in three gzip layers (whiteouts included), into a ' +
        'fresh store and again with every file already stored; umoci unpack of the same layout beside it. MB/s.',
    )
    .option('--runs <n>', 'runs (each: fresh import, stored import, umoci)', count('--runs'), 3)
    .option('--scale <f>', 'multiply the archive size (e.g. 0.1 for a quick look)', scale, 1)
    .option('--workdir <dir>', 'scratch directory (archive, stores), removed at the end')
    .option('--json <file>', 'write the results as JSON')
    .action(async (o: { runs: number; scale: number; workdir?: string; json?: string }) => {
      // process.argv[1] is this CLI: the memory figure runs it as a child.
      const r = await runImportBench({
        dir: workdirOf(o, 'image-import'),
        runs: o.runs,
        scale: o.scale,
        log: (s) => process.stderr.write(s + '\n'),
        cli: process.argv[1],
      });
      process.stdout.write(importTable(r) + '\n');
      if (o.json) writeJson(o.json, r);
    });

  bench
    .command('cp')
    .description(
      "`paene cp` of one random file into a context and back out, against the workaround it replaces: the host's tar " +
        'piped into `paene exec NAME -- busybox tar -x` (in), and `paene exec NAME -- busybox tar -c` piped into the ' +
        "host's tar (out). Both ways carry the same bytes through one pipe; paene cp adds its walls (the guest's side " +
        "runs inside the context, the host's side refuses hostile names), so the question is what they cost. Each run " +
        'copies each way with both methods, which goes first alternating; every copy is checked (sha256sum in the ' +
        'context, cmp on the host) outside the timed part. MB/s, best and median, and the ratio cp/tar (> 1: paene cp ' +
        'is faster). Exit 1 if a copy failed or brought other bytes.',
    )
    .option('--size <MiB>', 'size of the file, MiB', count('--size'), 1024)
    .option('--runs <n>', 'runs (each: both methods, both ways)', count('--runs'), 3)
    .option('--workdir <dir>', 'scratch directory (state root, the file, the copies), removed at the end')
    .option('--json <file>', 'write the results as JSON')
    .action(async (o: { size: number; runs: number; workdir?: string; json?: string }) => {
      requireRoot('the cp benchmark');
      const r = await runCopyBench({
        dir: workdirOf(o, 'cp'),
        sizeMiB: o.size,
        runs: o.runs,
        log: (s) => process.stderr.write(s + '\n'),
      });
      process.stdout.write(copyTable(r) + '\n');
      if (r.cleanup.errors.length) process.stderr.write(`cleanup problems:\n  ${r.cleanup.errors.join('\n  ')}\n`);
      if (o.json) writeJson(o.json, r);
      if (r.failures.length) process.exitCode = 1;
    });
}
