// The real-kernel tests of the cgroup adapter and the context lifecycle, run
// again on a pure cgroup v2 host: Debian 12's stock kernel (6.1) booted
// under qemu with cgroup_no_v1=all by the workplace's v2vm.sh (PAENE_V2VM,
// by default beside the clone or at /work/shared/v2vm). This machine is
// hybrid, so without this step the v2 code paths (cgroup.subtree_control,
// the _pool group, cpu.max, the cgroup freezer, io.max) run only in unit
// tests here. Emulated CPUs: the files chosen assert mechanisms, not times.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal, isCI } from '../helpers.js';

const V2VM =
  process.env.PAENE_V2VM ??
  [path.resolve('../shared/v2vm/v2vm.sh'), '/work/shared/v2vm/v2vm.sh'].find((f) => fs.existsSync(f)) ??
  '/work/shared/v2vm/v2vm.sh';

/**
 * The files run there: the cgroup adapter, the monitor (its staging namespace on an older kernel, its
 * watcher) and a whole context life (namespaces, overlay, cgroups, crash recovery, destroy). About 3 minutes under emulation; the rest of the real-kernel tests ran
 * there by hand (docs/isolation.md), and are too slow emulated to run on every CI run.
 */
const FILES = ['test/kernel/cgroups.test.ts', 'test/kernel/monitor.test.ts', 'test/runtime/lifecycle.test.ts'];
/** v2vm.sh's exit code when the VM itself failed (no qemu, no kernel package): not a result about paene. */
const VM_FAILED = 125;

describeReal('on a pure cgroup v2 host (qemu, Linux 6.1)', () => {
  it('the cgroup, monitor and lifecycle tests pass there', () => {
    if (!fs.existsSync(V2VM)) {
      console.warn(`v2vm: NOT RUN: no v2vm.sh at ${V2VM} (set PAENE_V2VM)${isCI ? ' (CI)' : ''}`);
      return;
    }
    const repo = path.resolve('.');
    // The guest sees this machine's / read-only and /tmp as its own tmpfs: the clone is shared writable
    // (it may live under /tmp), the state roots stay in the guest's /tmp.
    const cmd = `cd ${JSON.stringify(repo)} && NO_COLOR=1 npx vitest run ${FILES.join(' ')}`;
    const t0 = Date.now();
    const r = spawnSync('bash', [V2VM, repo, '--', 'bash', '-c', cmd], {
      env: { ...process.env, V2VM_ENV: 'CI', V2VM_TIMEOUT: '840' },
      encoding: 'utf8',
      timeout: 900_000,
    });
    const out = (r.stdout ?? '') + (r.stderr ?? '');
    const summary = out.split('\n').filter((l) => /Test Files|Tests {2}|Duration/.test(l));
    console.log(`v2vm: exit ${r.status} after ${((Date.now() - t0) / 1000).toFixed(0)} s\n${summary.join('\n')}`);
    if (r.status === VM_FAILED) {
      console.warn(`v2vm: NOT RUN: the VM did not boot${isCI ? ' (CI)' : ''}\n${out.slice(-1500)}`);
      return;
    }
    expect(r.status, out.slice(-4000)).toBe(0);
    expect(out).toMatch(new RegExp(`Test Files\\s+${FILES.length} passed \\(${FILES.length}\\)`));
  }, 900_000);
});
