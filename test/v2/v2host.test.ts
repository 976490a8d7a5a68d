// The real-kernel tests of the cgroup adapter and the context lifecycle, run
// again on a pure cgroup v2 host: Debian 12's stock kernel (6.1) booted
// under qemu with cgroup_no_v1=all by the workplace's v2vm.sh (PAENE_V2VM,
// by default beside the clone or at /work/shared/v2vm). This machine is
// hybrid, so without this step the v2 code paths (cgroup.subtree_control,
// the _pool group, cpu.max, the cgroup freezer, io.max) run only in unit
// tests here. Emulated CPUs: the files chosen assert mechanisms, not times.
// The VM boots when the run starts (test/v2/vm.ts, the v2 project's
// globalSetup) and runs beside the other files; this file, which the
// sequencer puts last, reads its outcome.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal, isCI } from '../helpers.js';
import { FILES, harnessOnly, passedFiles, RUN_ENV, startVm, V2VM, type VmStatus, vmUnavailable, WAIT_MS, waitVm } from './vm.js';

/** v2vm.sh's exit code when the VM itself failed (no qemu, no kernel package): not a result about paene. */
const VM_FAILED = 125;

/** A VM run's outcome: its status and output (a run this file started is removed after). */
async function outcome(dir: string, own: boolean): Promise<{ st: VmStatus; out: string }> {
  try {
    const st = await waitVm(dir);
    return { st, out: fs.readFileSync(path.join(dir, 'out'), 'utf8') };
  } finally {
    if (own) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function report(st: VmStatus, out: string): void {
  const summary = out.split('\n').filter((l) => /Test Files|Tests {2}|Errors|Duration/.test(l));
  console.log(`v2vm (${V2VM}): exit ${st.code ?? st.signal} after ${st.seconds} s\n${summary.join('\n')}`);
}

describeReal('on a pure cgroup v2 host (qemu, Linux 6.1)', () => {
  it(
    'the cgroup, monitor and lifecycle tests pass there',
    async () => {
      const why = vmUnavailable();
      if (why) {
        console.warn(`v2vm: NOT RUN: ${why}${isCI ? ' (CI)' : ''}`);
        return;
      }
      // started by the globalSetup; run without it (another config), it starts here
      const started = process.env[RUN_ENV];
      let { st, out } = await outcome(started ?? startVm().dir, started === undefined);
      report(st, out);
      if (st.code === VM_FAILED) {
        console.warn(`v2vm: NOT RUN: the VM did not boot${isCI ? ' (CI)' : ''}\n${out.slice(-1500)}`);
        return;
      }
      let passed = passedFiles(out);
      let ran = FILES;
      if (st.code !== 0 && harnessOnly(out)) {
        // vitest in the guest could not start a worker in time: the files that did not run, once more
        const rest = FILES.filter((f) => !passed.includes(f));
        ran = rest;
        console.warn(`v2vm: vitest's harness timed out in the guest (no test failed); running ${rest.join(' ')} again`);
        ({ st, out } = await outcome(startVm(rest).dir, true));
        report(st, out);
        passed = [...passed, ...passedFiles(out)];
      }
      expect(st.code, out.slice(-4000)).toBe(0);
      expect(out).toMatch(new RegExp(`Test Files\\s+${ran.length} passed \\(${ran.length}\\)`));
      expect(passed.sort()).toEqual([...FILES].sort());
    },
    2 * WAIT_MS + 60_000,
  );
});
