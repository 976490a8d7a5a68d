// `paene check escape`: the split-root escape suite and the admin suite
// against a real context, as a table with a summary.

import type { Command } from 'commander';
import type { AttemptResult } from '../check/escape-judge.js';
import { runEscapeCheck } from '../check/escape-run.js';
import { EXIT_CHECK_FAILED, rootOf, runtimeOf } from './common.js';
import { formatTable, printJson } from './format.js';

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function registerEscapeCheck(check: Command): void {
  check
    .command('escape')
    .description(
      'Try to break out of a secure context as guest root (mount, mknod, modules, clock, other ' +
        "contexts' and host processes, user namespaces, file capabilities, setuid, shocker, ...) " +
        'and check that guest root can still administer its guest (chown, setuid, port 80, ptrace, ' +
        'chroot, fifo, renice, replacing shared files). Every attempt is harmless if it succeeded. ' +
        'Exits 1 if anything escaped, an attempt was inconclusive, the host changed, or an admin ' +
        'operation failed. "not provable here" marks attempts this kernel cannot judge (e.g. ENOSYS).',
    )
    .option('--context <name>', 'use this running context instead of a temporary secure one (its files are touched)')
    .option('--json', 'print the results and the summary as JSON')
    .option('-v, --verbose', 'also print the wall each attempt meets and the host checks')
    .action(async (o: { context?: string; json?: boolean; verbose?: boolean }, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const log = (s: string) => process.stderr.write(`paene: ${s}\n`);
      const report = await runEscapeCheck(rt, { root: rootOf(cmd), context: o.context, log: o.json ? undefined : log });
      await rt.shutdownMonitor().catch(() => undefined);
      const s = report.summary;
      if (o.json) printJson(report);
      else {
        const cols = [
          { header: 'SUITE', get: (r: AttemptResult) => r.suite },
          { header: 'ATTEMPT', get: (r: AttemptResult) => clip(r.attempt, 60) },
          { header: 'EXPECTED', get: (r: AttemptResult) => clip(r.expected, 28) },
          { header: 'OBSERVED', get: (r: AttemptResult) => clip(r.observed, o.verbose ? 400 : 90) },
          { header: 'VERDICT', get: (r: AttemptResult) => r.verdict + (r.hostChanged ? ' HOST CHANGED' : '') },
          ...(o.verbose
            ? [
                { header: 'WALL', get: (r: AttemptResult) => r.wall ?? '' },
                { header: 'HOST', get: (r: AttemptResult) => r.host ?? '' },
              ]
            : []),
        ];
        console.log(`context ${report.context} (profile ${report.profile}${report.temporary ? ', temporary' : ''}), peer ${report.peer}`);
        console.log(formatTable(report.results, cols));
        console.log(
          `\nescape attempts: ${s.attempts}, blocked: ${s.blocked}, ESCAPED: ${s.escaped}, not provable here: ${s.notProvable}, inconclusive: ${s.inconclusive}\n` +
            `admin operations: ${s.adminOperations}, failed: ${s.adminFailed}; host changed: ${s.hostChanged}\n` +
            (s.ok ? 'result: the split root held' : 'result: FAILED'),
        );
      }
      if (!s.ok) process.exitCode = EXIT_CHECK_FAILED;
    });
}
