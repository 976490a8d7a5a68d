// The v2 VM run (test/v2/v2host.test.ts) in the background. The VM emulates
// its CPU (qemu TCG) for minutes and its tests assert mechanisms, not times,
// so it need not wait for its turn: this file is the v2 project's
// globalSetup (vitest.config.ts), which boots it when the run starts, while
// the other files run one at a time beside it. The test file then only
// reads the outcome. Files that measure CPU or I/O wait for it to end first
// (describeMeasuring in test/helpers.ts): they never run beside the VM.
//
// The run's directory (PAENE_V2VM_RUN, inherited by the test workers) holds
// `out` (the VM's output) and, when it has ended, `status` (JSON: code,
// signal, seconds).

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const V2VM =
  process.env.PAENE_V2VM ??
  [path.resolve('../shared/v2vm/v2vm.sh'), '/work/shared/v2vm/v2vm.sh'].find((f) => fs.existsSync(f)) ??
  '/work/shared/v2vm/v2vm.sh';

/**
 * The files run there: the cgroup adapter, the monitor (its staging namespace on an older kernel, its
 * watcher) and a whole context life (namespaces, overlay, cgroups, crash recovery, destroy). About 3 minutes under emulation; the rest of the real-kernel tests ran
 * there by hand (docs/isolation.md), and are too slow emulated to run on every CI run.
 */
export const FILES = ['test/kernel/cgroups.test.ts', 'test/kernel/monitor.test.ts', 'test/runtime/lifecycle.test.ts'];

/** The environment variable that names a run in progress (or ended) for the workers. */
export const RUN_ENV = 'PAENE_V2VM_RUN';

/** The VM's own bound (v2vm.sh kills it then) and how long a waiter waits beyond that. */
export const VM_TIMEOUT_S = 840;
export const WAIT_MS = (VM_TIMEOUT_S + 60) * 1000;

export interface VmStatus {
  code: number | null;
  signal: string | null;
  seconds: number;
}

/** Why the VM cannot run here (then nothing starts and the test says so), or undefined. */
export function vmUnavailable(): string | undefined {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'not root on Linux';
  if (!fs.existsSync(V2VM)) return `no v2vm.sh at ${V2VM} (set PAENE_V2VM)`;
  return undefined;
}

/** Boots the VM with the files, in the background; returns the run's directory and the child. */
export function startVm(files: readonly string[] = FILES): { dir: string; child: ChildProcess } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-v2vm-'));
  const repo = path.resolve('.');
  // The guest sees this machine's / read-only and /tmp as its own tmpfs: the clone is shared writable
  // (it may live under /tmp), the state roots stay in the guest's /tmp.
  const cmd = `cd ${JSON.stringify(repo)} && NO_COLOR=1 npx vitest run ${files.join(' ')}`;
  const out = fs.openSync(path.join(dir, 'out'), 'w');
  const t0 = Date.now();
  const child = spawn('bash', [V2VM, repo, '--', 'bash', '-c', cmd], {
    // v2vm.sh's default vCPUs (this machine's two): with one, a loaded host starved the guest past
    // vitest's 60 s for a worker to start
    env: { ...process.env, V2VM_ENV: 'CI', V2VM_TIMEOUT: String(VM_TIMEOUT_S) },
    stdio: ['ignore', out, out],
    detached: true, // its own process group: an early end of the run stops the VM and its helpers together
  });
  fs.closeSync(out);
  child.on('exit', (code, signal) => {
    const st: VmStatus = { code, signal, seconds: Math.round((Date.now() - t0) / 1000) };
    fs.writeFileSync(path.join(dir, 'status.tmp'), JSON.stringify(st));
    fs.renameSync(path.join(dir, 'status.tmp'), path.join(dir, 'status'));
  });
  return { dir, child };
}

/** The VM's status once it has ended (undefined while it runs). */
export function vmStatus(dir: string): VmStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'status'), 'utf8')) as VmStatus;
  } catch {
    return undefined;
  }
}

/** The files of a VM run's output that passed (vitest's line for a whole file, NO_COLOR). */
export function passedFiles(out: string): string[] {
  return [...out.matchAll(/^ ✓ \|\w+\| (\S+\.test\.ts) /gm)].map((m) => m[1] as string);
}

/**
 * Whether a failed VM run failed only in vitest's harness: a worker that did not start in its
 * fixed 60 s (an emulated CPU on a loaded host), no test failed. Not a verdict on paene: the files
 * that did not run are run again, once.
 */
export function harnessOnly(out: string): boolean {
  return /\[vitest-pool(?:-runner)?\]: (?:Failed to start|Timeout)/.test(out) && !/^ (?:FAIL|×) /m.test(out) && !/\d+ failed/.test(out);
}

/** Waits (polling, bounded) until the VM of the run in dir has ended. */
export async function waitVm(dir: string, timeoutMs = WAIT_MS): Promise<VmStatus> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const st = vmStatus(dir);
    if (st) return st;
    if (Date.now() > end) throw new Error(`v2vm: still running after ${timeoutMs / 1000} s (its own bound is ${VM_TIMEOUT_S} s)`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** vitest globalSetup of the v2 project: boot the VM now; at the end of the run, stop it if it still runs. */
export default function setup(): (() => Promise<void>) | undefined {
  if (vmUnavailable()) return undefined;
  const { dir, child } = startVm();
  process.env[RUN_ENV] = dir;
  return async () => {
    if (!vmStatus(dir) && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM'); // the group we started: v2vm.sh, its timeout and qemu
      } catch {
        /* gone */
      }
      await waitVm(dir, 30_000).catch(() => undefined);
    }
    delete process.env[RUN_ENV];
    fs.rmSync(dir, { recursive: true, force: true });
  };
}
