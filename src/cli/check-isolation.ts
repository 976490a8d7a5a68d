// `paene check isolation`: the isolation experiments against real contexts,
// as a results table (and JSON). Measurements run under a lock shared with the
// benchmarks (/tmp/paene-heavy.lock) so they never measure each other.

import fs from 'node:fs';
import type { Command } from 'commander';
import { PaeneError } from '../model/errors.js';
import { EXPERIMENTS, type ExperimentName, type ResultRow, brokenGuarantees, runIsolationSuite } from '../check/isolation.js';
import { EXIT_CHECK_FAILED, runtimeOf } from './common.js';
import { formatTable } from './format.js';

export function registerIsolationCheck(check: Command): void {
  check
    .command('isolation')
    .description(
      'Run the isolation experiments (CPU cap and bucket, shares, nine hogs, fork bomb, memory hog, disk hog, IPC) and print the results',
    )
    .option('--json <file>', 'also write the results as JSON to FILE')
    .option('--quick', 'shorter measurement windows (5 s instead of 10 s)')
    .option('--only <names>', `comma-separated subset of: ${EXPERIMENTS.join(', ')}`)
    .action(async (o: { json?: string; quick?: boolean; only?: string }, cmd: Command) => {
      const only = o.only?.split(',').map((s) => s.trim()) as ExperimentName[] | undefined;
      for (const e of only ?? []) {
        if (!(EXPERIMENTS as readonly string[]).includes(e))
          throw new PaeneError('invalid-argument', `unknown experiment '${e}': use ${EXPERIMENTS.join(', ')}`);
      }
      const rt = runtimeOf(cmd);
      const started = new Date().toISOString();
      const rows = await runIsolationSuite(rt, { quick: o.quick, only, log: (s) => process.stderr.write(s + '\n') });
      console.log(
        formatTable(rows, [
          { header: 'EXPERIMENT', get: (r: ResultRow) => r.experiment },
          { header: 'SETTING', get: (r: ResultRow) => r.setting },
          { header: 'MEASURED', get: (r: ResultRow) => r.measured },
          { header: 'EXPECTED', get: (r: ResultRow) => r.expected },
          { header: 'VERDICT', get: (r: ResultRow) => r.verdict },
          {
            header: 'MECHANISM',
            get: (r: ResultRow) => (r.guarantee ? (r.guarantee.holds ? 'holds' : `BROKEN (${r.guarantee.expected})`) : ''),
          },
        ]),
      );
      const failed = rows.filter((r) => r.verdict === 'fail').length;
      const noisy = rows.filter((r) => r.verdict === 'noisy').length;
      const broken = brokenGuarantees(rows).length;
      if (o.json)
        fs.writeFileSync(
          o.json,
          JSON.stringify({ started, finished: new Date().toISOString(), quick: o.quick === true, rows }, null, 2) + '\n',
        );
      console.log(
        `\n${rows.filter((r) => r.verdict === 'pass').length} passed, ${failed} failed, ${noisy} noisy, ${rows.filter((r) => r.verdict === 'info').length} informational; mechanism guarantees: ${broken} broken`,
      );
      if (noisy > 0) console.log(`noisy: the host was busy with other work during ${noisy} missed measurement(s); rerun on a quiet host`);
      if (failed > 0 || broken > 0) process.exitCode = EXIT_CHECK_FAILED;
    });
}
