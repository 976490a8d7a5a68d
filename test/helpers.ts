// Shared test helpers. Real-kernel tests need root on Linux; when they cannot
// run they skip on a developer's machine but FAIL under CI=true, so CI never
// passes by skipping the tests that matter.

import { type SpawnSyncOptionsWithStringEncoding, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe } from 'vitest';
import { keepRootOffEgress } from '../src/runtime/network.js';
import type { Runtime } from '../src/runtime/runtime.js';
import { RUN_ENV, vmStatus, WAIT_MS, waitVm } from './v2/vm.js';

export const isCI = process.env.CI === 'true';

export function realKernelUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root';
  return undefined;
}

/** describe() for tests that need root and a real kernel. */
export function describeReal(name: string, fn: () => void): void {
  const why = realKernelUnavailable();
  if (why === undefined) {
    describe(name, fn);
  } else if (isCI) {
    describe(name, () => {
      throw new Error(`real-kernel tests cannot run under CI=true: ${why}`);
    });
  } else {
    describe.skip(`${name} (skipped: ${why})`, fn);
  }
}

/**
 * describeReal() for a file that measures CPU or I/O (shares, latency, throttled rates, holds): it
 * never runs beside the v2 VM, which boots when the run starts and emulates its CPU beside the other
 * files (test/v2/vm.ts). Its first hook waits until the VM has ended; vitest.config.ts's sequencer
 * runs the files that call this after the others, so that wait is usually nil.
 */
export function describeMeasuring(name: string, fn: () => void): void {
  describeReal(name, () => {
    beforeAll(async () => {
      const dir = process.env[RUN_ENV];
      if (!dir || vmStatus(dir)) return;
      const t0 = Date.now();
      console.log(`${name}: waiting for the v2 VM to end (it would load the CPU this file measures)`);
      await waitVm(dir);
      console.log(`${name}: waited ${((Date.now() - t0) / 1000).toFixed(0)} s for the v2 VM`);
    }, WAIT_MS + 10_000);
    fn();
  });
}

/** A private state root for one test file; its cgroups get their own `paene-<hash>` parent. */
export function tempRoot(tag: string, o: { egress?: boolean } = {}): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `paene-test-${tag}-`));
  // Egress is a new root's default: a test root keeps the 127.x pool (no paene-egress link, no nft table on the
  // machine) unless the test asks for egress, and then it runs paene in a network namespace it made.
  if (o.egress !== true) keepRootOffEgress(root);
  return root;
}

/** What every real-kernel test file does last: destroy its contexts, stop its monitor, remove its root. */
export async function disposeRuntime(rt: Runtime | undefined, root: string | undefined): Promise<void> {
  try {
    for (const n of rt?.store.names() ?? []) await rt?.destroy(n, { force: true });
  } finally {
    await rt?.shutdownMonitor();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  }
}

/** The `paene` command as a user runs it: the native front door, which hands every verb it does not do itself to the Node CLI. */
export const PAENE = path.resolve('dist/native/paene');

export interface CliRun {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The one CLI runner: `paene --root ROOT ARGS`, waited for (options: spawnSync's, e.g. input, env, timeout). */
/**
 * A harness bound (ms) stretched by the machine's load (the 1-minute load per CPU, 1x to 4x): a call that
 * is slow because the machine is busy is not a verdict on paene (issue 22). A hung call still ends.
 */
export function harnessMs(ms: number): number {
  const perCpu = os.loadavg()[0]! / Math.max(1, os.availableParallelism());
  return Math.round(ms * Math.min(4, Math.max(1, perCpu)));
}

export function runCli(root: string, args: string[], options: SpawnSyncOptionsWithStringEncoding | Record<string, unknown> = {}): CliRun {
  const r = spawnSync(PAENE, ['--root', root, ...args], { encoding: 'utf8', timeout: harnessMs(120_000), ...options });
  // a call killed (at its generous bound, or from outside) says so in its stderr, not as a bare null exit code
  const killed = r.signal ? `\n[paene ${args.join(' ')}: killed by ${r.signal}${r.error ? ` (${r.error.message})` : ''}]` : '';
  return { args, code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + killed };
}

/** The same as a process of its own, for racing CLIs: resolves with its exit code and stderr. */
export function runCliAsync(root: string, args: string[]): Promise<{ args: string[]; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(PAENE, ['--root', root, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code, signal) =>
      resolve({ args, code, stderr: signal ? `${stderr}\n[paene ${args.join(' ')}: killed by ${signal}]` : stderr }),
    );
  });
}
