// `paene bench cp`: `paene cp` of one big random file into a context and back
// out, against the workaround it replaces (`tar | paene exec NAME -- tar` in,
// the reverse out), side by side in one run. In run i the two methods of a
// way go in an order that alternates with i, so neither always meets a warm
// page cache. Every copy's bytes are checked (sha256sum in the guest, cmp on
// the host) outside the timed part; a copy that fails or differs is a failure
// in the result, and its time is not counted.
//
// The commands are the ones issue 24's throughput was first measured with
// (the test this bench replaced), so the figures stay comparable. A copy in
// runs natively in the front door (dist/native/paene), so the bench calls the
// installed command, as a shell user does.

import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../kernel/package.js';
import { PaeneError } from '../model/errors.js';
import { formatTable } from '../model/table.js';
import { openRuntime } from '../runtime/open.js';
import { keepRootOffEgress } from '../runtime/network.js';
import { Cleanup, type MachineFacts, formatMachine, machineFacts, median, round, run } from './common.js';

export type Way = 'in' | 'out';
export type Method = 'cp' | 'tar';

export interface CopyBenchOptions {
  /** scratch directory (state root, the file, the copies out), removed at the end */
  dir: string;
  sizeMiB: number;
  runs: number;
  log?: (s: string) => void;
  /** the paene command (default: the native front door, dist/native/paene) */
  cli?: string;
}

export interface MethodResult {
  /** the shell pipeline timed (paths as in the run) */
  command: string;
  /** wall seconds of each copy whose bytes arrived unchanged */
  seconds: number[];
  bestMBps: number;
  medianMBps: number;
}

export interface WayResult {
  cp: MethodResult;
  tar: MethodResult;
  /** cp MB/s / tar MB/s of the best runs; > 1: paene cp is faster */
  ratioBest: number;
  /** the same of the medians */
  ratioMedian: number;
  /** copies of this way (both methods) whose bytes were checked equal, of all made */
  verified: number;
  copies: number;
}

export interface CopyBenchResult {
  benchmark: 'cp';
  machine: MachineFacts;
  sizeMiB: number;
  bytes: number;
  runs: number;
  ways: Record<Way, WayResult>;
  /** copies that failed or brought other bytes: each a sentence */
  failures: string[];
  cleanup: { errors: string[] };
}

/** A word for the shell: single-quoted. */
const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

const MB = 1e6;

/** Room the run needs on the workdir's file system: the file, its copy in the guest, its copy out, and a margin. */
function checkRoom(dir: string, bytes: number): void {
  let probe = dir;
  while (!fs.existsSync(probe)) probe = path.dirname(probe);
  const s = fs.statfsSync(probe);
  const free = s.bavail * s.bsize;
  const need = 3 * bytes + 256 * 2 ** 20;
  if (free < need)
    throw new PaeneError(
      'invalid-argument',
      `the bench needs ${(need / 2 ** 30).toFixed(1)} GiB free under ${probe} (the file, its copy in a context and its copy out); ${(free / 2 ** 30).toFixed(1)} GiB are free: a smaller --size or another --workdir`,
    );
}

export async function runCopyBench(o: CopyBenchOptions): Promise<CopyBenchResult> {
  const log = o.log ?? (() => undefined);
  const paene = o.cli ?? path.join(packageRoot(), 'dist', 'native', 'paene');
  if (!fs.existsSync(paene)) throw new PaeneError('internal', `the paene command is missing at ${paene}: run 'npm run build'`);
  const bytes = o.sizeMiB * 2 ** 20;
  checkRoom(o.dir, bytes);
  const cleanup = new Cleanup(log);
  fs.mkdirSync(o.dir, { recursive: true });
  const stateRoot = path.join(o.dir, 'state');
  keepRootOffEgress(stateRoot); // nothing added to the host's network
  const rt = openRuntime(stateRoot);
  cleanup.add('remove the scratch directory', () => fs.rmSync(o.dir, { recursive: true, force: true }));
  cleanup.add('stop the monitor', () => rt.shutdownMonitor());
  cleanup.add('destroy the context', async () => {
    for (const n of rt.store.names()) await rt.destroy(n, { force: true });
  });

  const srcDir = path.join(o.dir, 'src');
  const big = path.join(srcDir, 'big');
  const outDir = path.join(o.dir, 'out');
  const p = `${sh(paene)} --root ${sh(stateRoot)}`;
  const commands: Record<Way, Record<Method, string>> = {
    in: {
      cp: `${p} cp ${sh(big)} s:/`,
      tar: `tar -c -f - -C ${sh(srcDir)} big | ${p} exec s -- busybox tar -x -f - -C /`,
    },
    out: {
      cp: `${p} cp s:/big ${sh(outDir)}/`,
      tar: `${p} exec s -- busybox tar -c -f - -C / big | tar -x -f - -C ${sh(outDir)}`,
    },
  };
  const timeoutMs = 300_000 + o.sizeMiB * 500;
  const seconds: Record<Way, Record<Method, number[]>> = { in: { cp: [], tar: [] }, out: { cp: [], tar: [] } };
  const verified: Record<Way, number> = { in: 0, out: 0 };
  const failures: string[] = [];

  const must = async (what: string, file: string, args: string[], ms = 120_000): Promise<string> => {
    const r = await run(file, args, { timeoutMs: ms });
    if (r.code !== 0) throw new PaeneError('internal', `${what} failed (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`);
    return r.stdout;
  };
  const digest = (out: string): string => out.trim().split(/\s+/)[0] ?? '';
  /** Empties the place a copy lands: the guest's /big before a copy in, the host's out directory before a copy out. */
  const clear = async (way: Way): Promise<void> => {
    if (way === 'in') await must('removing /big in the context', paene, ['--root', stateRoot, 'exec', 's', '--', 'rm', '-f', '/big']);
    else {
      fs.rmSync(outDir, { recursive: true, force: true });
      fs.mkdirSync(outDir);
    }
  };
  let want = '';
  /** Whether the copy just made holds the file's bytes: sha256 in the guest, cmp on the host. */
  const same = async (way: Way): Promise<boolean> => {
    if (way === 'in') {
      const r = await run(paene, ['--root', stateRoot, 'exec', 's', '--', 'sha256sum', '/big'], { timeoutMs });
      return r.code === 0 && digest(r.stdout) === want;
    }
    return (await run('cmp', [big, path.join(outDir, 'big')], { timeoutMs })).code === 0;
  };
  /** One timed copy, after the last one's writes reached the disk; its seconds are kept if its bytes arrived. */
  const copy = async (i: number, way: Way, method: Method): Promise<number | undefined> => {
    await clear(way);
    await run('sync', []);
    const t0 = process.hrtime.bigint();
    const r = await run('bash', ['-o', 'pipefail', '-c', commands[way][method]], { timeoutMs });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (cleanup.interrupted) return undefined;
    if (r.code !== 0) {
      failures.push(`run ${i + 1}, ${way}, ${method}: exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
      return undefined;
    }
    if (!(await same(way))) {
      failures.push(`run ${i + 1}, ${way}, ${method}: the bytes that arrived are not the file's`);
      return undefined;
    }
    verified[way]++;
    seconds[way][method].push(s);
    return s;
  };

  let cleanupErrors: string[] = [];
  try {
    log(`making a context and a ${o.sizeMiB} MiB random file …`);
    await must('paene create', paene, ['--root', stateRoot, 'create', 's', '--net', 'none'], 300_000);
    await must('paene start', paene, ['--root', stateRoot, 'start', 's']);
    fs.mkdirSync(srcDir);
    await must('dd', 'dd', ['if=/dev/urandom', `of=${big}`, 'bs=1M', `count=${o.sizeMiB}`, 'status=none'], timeoutMs);
    want = digest(await must('sha256sum', 'sha256sum', [big], timeoutMs));
    for (let i = 0; i < o.runs && !cleanup.interrupted; i++) {
      const order: Method[] = i % 2 === 0 ? ['cp', 'tar'] : ['tar', 'cp'];
      const line: string[] = [];
      for (const way of ['in', 'out'] as const) {
        const t: Partial<Record<Method, number>> = {};
        for (const m of order) t[m] = await copy(i, way, m);
        const f = (x: number | undefined) => (x === undefined ? 'failed' : `${round(bytes / MB / x, 0)} MB/s`);
        line.push(`${way}: cp ${f(t.cp)}, tar ${f(t.tar)}`);
      }
      log(`run ${i + 1}/${o.runs} (${order.join(' first, then ')}): ${line.join('; ')}`);
    }
  } finally {
    cleanupErrors = await cleanup.run();
  }

  // NaN (null in the JSON) where no copy of a method arrived whole
  const best = (xs: number[]) => (xs.length ? Math.min(...xs) : NaN);
  const method = (way: Way, m: Method): MethodResult => {
    const xs = seconds[way][m];
    return {
      command: commands[way][m],
      seconds: xs.map((x) => round(x, 3)),
      bestMBps: round(bytes / MB / best(xs), 1),
      medianMBps: round(bytes / MB / median(xs), 1),
    };
  };
  const way = (w: Way): WayResult => {
    const s = seconds[w];
    return {
      cp: method(w, 'cp'),
      tar: method(w, 'tar'),
      ratioBest: round(best(s.tar) / best(s.cp), 3),
      ratioMedian: round(median(s.tar) / median(s.cp), 3),
      verified: verified[w],
      copies: 2 * o.runs,
    };
  };
  return {
    benchmark: 'cp',
    machine: machineFacts(),
    sizeMiB: o.sizeMiB,
    bytes,
    runs: o.runs,
    ways: { in: way('in'), out: way('out') },
    failures,
    cleanup: { errors: cleanupErrors },
  };
}

/** The table `paene bench cp` prints. */
export function copyTable(r: CopyBenchResult): string {
  const mbps = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  const ratio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');
  const rows = (['in', 'out'] as const).flatMap((w) => {
    const x = r.ways[w];
    const what: Record<Method, string> =
      w === 'in'
        ? { cp: 'paene cp FILE s:/', tar: 'tar -c | paene exec s -- busybox tar -x' }
        : { cp: 'paene cp s:/big DIR/', tar: 'paene exec s -- busybox tar -c | tar -x' };
    return (['cp', 'tar'] as const).map((m) => ({
      way: w,
      what: what[m],
      best: mbps(x[m].bestMBps),
      median: mbps(x[m].medianMBps),
      ratio: m === 'cp' ? `${ratio(x.ratioBest)} / ${ratio(x.ratioMedian)}` : '',
      verified: m === 'cp' ? `${x.verified}/${x.copies}` : '',
    }));
  });
  const table = formatTable(rows, [
    { header: 'way', get: (x) => x.way },
    { header: 'method', get: (x) => x.what },
    { header: 'best MB/s', get: (x) => x.best, align: 'right' },
    { header: 'median MB/s', get: (x) => x.median, align: 'right' },
    { header: 'cp/tar best / median', get: (x) => x.ratio, align: 'right' },
    { header: 'bytes checked', get: (x) => x.verified, align: 'right' },
  ]);
  return [
    `paene cp of a ${r.sizeMiB} MiB random file against tar | paene exec -- tar, ${r.runs} run(s) each way and method, the order alternating`,
    table,
    ...(r.failures.length ? ['failures:', ...r.failures.map((f) => `  ${f}`)] : []),
    formatMachine(r.machine),
  ].join('\n');
}
