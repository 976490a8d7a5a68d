// Tables and plots for the benchmark results (pure: results in, text out).

import { formatTable } from '../model/table.js';
import { formatMachine } from './common.js';
import type { EngineResult, LifecycleResult, ManyResult } from './lifecycle.js';
import type { OverheadResult } from './overhead.js';
import type { PackingResult, VariantResult } from './packing.js';
import { linePlot } from './svg.js';

const kib = (b: number) => (Number.isFinite(b) ? `${(b / 1024).toFixed(0)} KiB` : '-');
const mib = (b: number) => (Number.isFinite(b) ? `${(b / 2 ** 20).toFixed(1)} MiB` : '-');
const ms = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x.toFixed(1) : '-');

export function packingTable(r: PackingResult): string {
  const rows: { k: string; v: (x: VariantResult) => string }[] = [
    { k: 'contexts packed', v: (x) => String(x.packed) },
    { k: 'stopped because', v: (x) => x.stopReason },
    { k: 'start ms, median / p99', v: (x) => `${ms(x.startMs.median)} / ${ms(x.startMs.p99)}` },
    { k: 'create ms, median / p99', v: (x) => `${ms(x.createMs.median)} / ${ms(x.createMs.p99)}` },
    { k: 'image copy ms, median / p99', v: (x) => (x.copyMs ? `${ms(x.copyMs.median)} / ${ms(x.copyMs.p99)}` : '-') },
    { k: 'ready (all steps + HTTP) ms, median / p99', v: (x) => `${ms(x.readyMs.median)} / ${ms(x.readyMs.p99)}` },
    { k: 'MemAvailable per context (before-after)/n', v: (x) => kib(x.memory.marginalAvailablePerContext) },
    { k: 'MemAvailable per context (slope)', v: (x) => kib(x.memory.slopeAvailablePerContext) },
    { k: 'MemFree per context (incl. page cache)', v: (x) => kib(x.memory.marginalFreePerContext) },
    { k: 'Slab per context', v: (x) => kib(x.memory.marginalSlabPerContext) },
    {
      k: 'MemAvailable per context, first segment',
      v: (x) => `${kib(x.memory.firstSegment.perContext)} (${x.memory.firstSegment.from}-${x.memory.firstSegment.to})`,
    },
    {
      k: 'MemAvailable per context, last segment',
      v: (x) => `${kib(x.memory.lastSegment.perContext)} (${x.memory.lastSegment.from}-${x.memory.lastSegment.to})`,
    },
    {
      k: 'growth (last / first segment)',
      v: (x) => x.memory.growth.toFixed(2) + (x.memory.growthNoisy ? ` (${x.memory.growthNoisy})` : ''),
    },
    ...(['KernelStack', 'PageTables', 'Percpu', 'SUnreclaim', 'SReclaimable', 'AnonPages', 'Shmem'] as const).map((f) => ({
      k: `  of which ${f}`,
      v: (x: VariantResult) => kib(x.memory.kernel.meminfo[f]),
    })),
    {
      k: '  top slab caches per context',
      v: (x) =>
        x.memory.kernel.slabs
          .slice(0, 6)
          .map((c) => `${c.cache} ${kib(c.perContext)}`)
          .join(', '),
    },
    { k: '  processes (median RSS / PSS)', v: (x) => x.memory.processes.map((p) => `${p.comm} ${kib(p.rss)}/${kib(p.pss)}`).join(', ') },
    { k: 'memory per context (cgroup or PSS), median', v: (x) => kib(x.memory.cgroupMedianPerContext) },
    { k: 'create ms median, first / last segment', v: (x) => `${ms(x.createFirstLast.first)} / ${ms(x.createFirstLast.last)}` },
    { k: 'start ms median, first / last segment', v: (x) => `${ms(x.startFirstLast.first)} / ${ms(x.startFirstLast.last)}` },
    {
      k: 'final sweep: answered, p50 / p99 ms',
      v: (x) => `${x.finalSweep.answered}/${x.finalSweep.of}, ${ms(x.finalSweep.p50)} / ${ms(x.finalSweep.p99)}`,
    },
    { k: 'destroys per second (teardown)', v: (x) => (Number.isFinite(x.destroyPerSecond) ? x.destroyPerSecond.toFixed(1) : '-') },
    {
      k: 'not back after teardown: MemAvailable, slab',
      v: (x) =>
        `${mib(x.afterCleanup.memAvailableLost)} (${(x.afterCleanup.shareOfTotal * 100).toFixed(2)}% of MemTotal), ${mib(x.afterCleanup.slabLost)}`,
    },
    { k: 'private disk per context, median', v: (x) => kib(x.disk.privateMedianPerContext) },
    { k: 'image size', v: (x) => mib(x.disk.imageBytes) },
    { k: 'HTTP checks (full sweeps)', v: (x) => `${x.httpChecks} (${x.fullChecks})` },
    { k: 'wall time s', v: (x) => x.wallSeconds.toFixed(1) },
  ];
  const table = formatTable(
    rows.map((row) => ({ k: row.k, vals: r.variants.map(row.v) })),
    [
      { header: 'packing', get: (x: { k: string; vals: string[] }) => x.k },
      ...r.variants.map((v, i) => ({ header: v.variant, get: (x: { k: string; vals: string[] }) => x.vals[i] })),
    ],
  );
  return [formatMachine(r.machine), `check policy: ${r.checkPolicy}`, `root switch: ${r.rootSwitch}`, '', table].join('\n');
}

const COLORS: Record<string, string> = { shared: '#1f6fb4', limited: '#2a9d4b', 'private-copy': '#d2562a' };

/** Memory used (relative to the start of each variant) against contexts, both variants. */
export function packingPlot(r: PackingResult): string {
  const series = r.variants.flatMap((v) => {
    const base = v.samples[0];
    return [
      {
        label: `${v.variant}: MemTotal − MemAvailable`,
        color: COLORS[v.variant] ?? '#333',
        points: v.samples.map((s) => ({ x: s.contexts, y: (base.memAvailable - s.memAvailable) / 2 ** 20 })),
      },
      {
        label: `${v.variant}: MemTotal − MemFree (incl. page cache)`,
        color: COLORS[v.variant] ?? '#333',
        dashed: true,
        points: v.samples.map((s) => ({ x: s.contexts, y: (base.memFree - s.memFree) / 2 ** 20 })),
      },
    ];
  });
  const m = r.machine;
  return linePlot({
    title: 'paene phone-booth packing: memory used vs live contexts',
    subtitle: `${m.cores} cores, ${(m.memTotalBytes / 2 ** 30).toFixed(0)} GiB, ${m.kernel}, ${m.date.slice(0, 10)}`,
    xLabel: 'contexts running (each answering HTTP)',
    yLabel: 'memory used since the first context (MiB)',
    series,
  });
}

/** HTTP answer latency (p50 and p99 of each full sweep) against contexts: where Denali saw a cliff. */
export function packingLatencyPlot(r: PackingResult): string {
  const series = r.variants.flatMap((v) => {
    const pts = v.samples.filter((s) => s.http !== undefined);
    return [
      { label: `${v.variant}: p50`, color: COLORS[v.variant] ?? '#333', points: pts.map((s) => ({ x: s.contexts, y: s.http?.p50 ?? 0 })) },
      {
        label: `${v.variant}: p99`,
        color: COLORS[v.variant] ?? '#333',
        dashed: true,
        points: pts.map((s) => ({ x: s.contexts, y: s.http?.p99 ?? 0 })),
      },
    ];
  });
  const m = r.machine;
  return linePlot({
    title: 'paene phone-booth packing: HTTP answer latency vs live contexts',
    subtitle: `full sweeps (every server asked, 32 at a time); ${m.cores} cores, ${m.kernel}, ${m.date.slice(0, 10)}`,
    xLabel: 'contexts running (each answering HTTP)',
    yLabel: 'answer latency (ms)',
    series,
  });
}

export function lifecycleTable(r: LifecycleResult): string {
  const rows = (list: EngineResult[]) =>
    formatTable(list, [
      { header: 'engine', get: (x) => x.engine },
      { header: 'median ms', get: (x) => (Number.isFinite(x.medianMs) ? x.medianMs.toFixed(1) : '-'), align: 'right' },
      { header: 'runs', get: (x) => x.samples.length, align: 'right' },
      { header: 'x paene API', get: (x) => (x.ratioToPaeneApi !== undefined ? x.ratioToPaeneApi.toFixed(2) : '-'), align: 'right' },
      {
        header: 'note',
        get: (x) =>
          x.error
            ? `FAILED: ${x.error}`
            : x.steps
              ? Object.entries(x.steps)
                  .map(([k, v]) => `${k} ${v.toFixed(1)}`)
                  .join(', ')
              : '',
      },
    ]);
  const ratios = Object.entries(r.ratios).map(([k, v]) => `  ${k}: ${v.toFixed(2)}`);
  return [
    formatMachine(r.machine),
    `peers: ${Object.entries(r.versions)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ')}`,
    `${r.runs} alternating runs per engine; node -e 0 takes ${r.nodeStartupMs.toFixed(1)} ms (paid by every CLI call)`,
    '',
    'create + start + /bin/true + delete',
    rows(r.cycle),
    '',
    'exec /bin/true into a running container',
    rows(r.exec),
    '',
    'ratios (paene / peer; < 1 means paene is faster):',
    ...ratios,
    ...(r.many ? ['', manyLines(r.many)] : []),
  ].join('\n');
}

function manyLines(m: ManyResult): string {
  const perS = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)}/s` : '-');
  return [
    `${m.contexts} contexts, many per CLI call (goals: create+start and destroy >= 100/s, list with them <= 2x list with none)`,
    formatTable(
      [
        {
          what: `create --count ${m.contexts}, then start --all`,
          value: `${(m.createS + m.startS).toFixed(2)} s (${m.createS.toFixed(2)} + ${m.startS.toFixed(2)})`,
          rate: perS(m.createStartPerS),
        },
        { what: 'destroy --all', value: `${m.destroyS.toFixed(2)} s`, rate: perS(m.destroyPerS) },
        {
          what: `create --count ${m.contexts} --start (one call)`,
          value: `${m.createStartOneCallS.toFixed(2)} s`,
          rate: perS(m.createStartOneCallPerS),
        },
        {
          what: `list: none / ${m.contexts} running, wall`,
          value: `${m.listEmptyMs.toFixed(1)} / ${m.listFullMs.toFixed(1)} ms`,
          rate: `${m.listRatio.toFixed(2)}x`,
        },
        {
          what: `list: none / ${m.contexts} running, CPU`,
          value: `${m.listEmptyCpuMs.toFixed(0)} / ${m.listFullCpuMs.toFixed(0)} ms`,
          rate: `${m.listCpuRatio.toFixed(2)}x`,
        },
      ],
      [
        { header: 'what', get: (x) => x.what },
        { header: 'took', get: (x) => x.value, align: 'right' },
        { header: 'rate', get: (x) => x.rate, align: 'right' },
      ],
    ),
    ...(m.error ? [`FAILED: ${m.error}`] : []),
  ].join('\n');
}

export function overheadTable(r: OverheadResult): string {
  const table = formatTable(r.results, [
    { header: 'benchmark', get: (x) => x.name },
    { header: 'host', get: (x) => x.hostMedian.toFixed(x.hostMedian < 10 ? 3 : 1), align: 'right' },
    { header: 'context', get: (x) => x.contextMedian.toFixed(x.contextMedian < 10 ? 3 : 1), align: 'right' },
    { header: 'unit', get: (x) => x.unit },
    { header: 'ctx/host', get: (x) => x.ratio.toFixed(3), align: 'right' },
    { header: 'what (iterations per run)', get: (x) => `${x.what} (${x.iterations})` },
  ]);
  return [
    formatMachine(r.machine),
    `medians of ${r.reps} repetitions; ctx/host is the ratio of time per operation (for http, of time per request): > 1 means slower in the context`,
    '',
    table,
  ].join('\n');
}
