// The isolation suite on the real kernel: the seven experiments of issue 4,
// each bounded in time, each destroying its contexts. They measure CPU and
// disk: run this file under `flock /tmp/paene-heavy.lock` so no other
// measurement runs alongside.

import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ExperimentName, type ResultRow, runExperiment } from '../../src/check/isolation.js';
import { openRuntime } from '../../src/runtime/open.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { describeReal, tempRoot } from '../helpers.js';

describeReal('isolation suite on the real kernel', () => {
  let root: string;
  let rt: Runtime;

  beforeAll(() => {
    root = tempRoot('isolation');
    rt = openRuntime(root);
  });

  afterAll(async () => {
    for (const n of rt?.store.names() ?? []) await rt.destroy(n, { force: true }).catch(() => undefined);
    await rt?.shutdownMonitor();
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function run(which: ExperimentName): Promise<ResultRow[]> {
    const rows = await runExperiment(rt, which, { prefix: 'it' });
    for (const r of rows) console.log(`[${r.verdict}] ${r.experiment} | ${r.setting} | ${r.measured} | expected ${r.expected}`);
    // nothing of the experiment is left behind
    expect(rt.store.names().filter((n) => n.startsWith('it-'))).toEqual([]);
    return rows;
  }
  const failures = (rows: ResultRow[]) => rows.filter((r) => r.verdict === 'fail').map((r) => `${r.setting}: ${r.measured} (expected ${r.expected})`);

  it('1. a --cpu 25% hog gets 25% ± 2; the model agrees within 3 points; bursts within the bucket are not throttled', async () => {
    const rows = await run('cpu-cap');
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(failures(rows)).toEqual([]);
  }, 90_000);

  it('2. shares 1024:256 on one CPU split 80/20 ± 3', async () => {
    expect(failures(await run('shares'))).toEqual([]);
  }, 60_000);

  it('3. a UDP echo server next to nine CPU hogs keeps its p50 round trip under 1 ms', async () => {
    const rows = await run('nine-hogs');
    expect(rows.map((r) => r.verdict)).toEqual(['info', 'pass', 'pass']);
  }, 180_000);

  it('4. a fork bomb stops at --nproc 64, the host and another context still fork, stop ends it', async () => {
    expect(failures(await run('fork-bomb'))).toEqual([]);
  }, 90_000);

  it('5. a memory hog past --memory 64M is OOM-killed inside its context only', async () => {
    expect(failures(await run('memory-hog'))).toEqual([]);
  }, 60_000);

  it('6. a dd at --io-write 10MiB/s (buffered and direct) writes 10 MiB/s ± 10%; a neighbour keeps ≥ 80%', async () => {
    const rows = await run('disk-hog');
    expect(rows).toHaveLength(4);
    expect(failures(rows)).toEqual([]);
  }, 150_000);

  it('7. two contexts use the same SysV IPC keys; --shm-all fails only in its context; a live raise works', async () => {
    expect(failures(await run('ipc'))).toEqual([]);
  }, 60_000);
});
