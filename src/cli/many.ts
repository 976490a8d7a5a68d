// Verbs over many contexts: `paene start web1 web2`, `paene stop 'web*'`,
// `paene destroy --all`. One process runs them with bounded parallelism and
// reports each: a line per context (failures on stderr), or with --json an
// array of {name, ok, result | error}. The exit code is 0 only if all
// succeeded; otherwise the failures' code when they share one, else 1.
// A single plain name behaves (and prints) exactly as a one-context verb.

import os from 'node:os';
import type { Command } from 'commander';
import { PaeneError } from '../model/errors.js';
import { eachBounded, isPattern, selectNames } from '../model/names.js';
import { naturalSort } from '../model/natural.js';
import type { Runtime } from '../runtime/runtime.js';
import { EXIT } from './exit.js';
import { printJson } from './format.js';

/** Adds --all and --jobs to a verb that takes names. */
export function addManyOptions(cmd: Command): Command {
  return cmd.option('-a, --all', 'every context of this root').option('-j, --jobs <n>', 'contexts worked on at once (default: 2 × CPUs)');
}

export interface ManyOptions {
  all?: boolean;
  jobs?: string;
  json?: boolean;
}

export function jobsOf(o: ManyOptions): number {
  if (o.jobs === undefined) return 2 * Math.max(1, os.availableParallelism());
  const n = Number(o.jobs);
  if (!Number.isInteger(n) || n < 1 || n > 1024)
    throw new PaeneError('invalid-argument', `--jobs must be a whole number from 1 to 1024, got '${o.jobs}'`);
  return n;
}

/** The names the arguments select, and whether the call is a many-context one (array output). */
export function namesOf(rt: Runtime, args: string[], o: ManyOptions): { names: string[]; many: boolean } {
  const selected = selectNames(args, o.all === true, () => rt.store.names());
  // --all and patterns list in natural order (db1 db10 db11 db100 as 1, 10, 11, 100); named ones as given
  const names = o.all === true || args.some(isPattern) ? naturalSort(selected) : selected;
  return { names, many: o.all === true || args.length !== 1 || isPattern(args[0] as string) };
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error };

/**
 * Prints the outcomes and sets the exit code. `text` is the line of one
 * success; `json` its JSON value. A one-context call throws its error (main
 * prints it) so its output is what it always was.
 */
export function report<T>(
  names: string[],
  many: boolean,
  outcomes: Outcome<T>[],
  o: { json?: boolean },
  text: (name: string, v: T) => string | undefined,
  json: (name: string, v: T) => unknown = (_n, v) => v,
): void {
  if (!many) {
    const r = outcomes[0] as Outcome<T>;
    if (!r.ok) throw r.error;
    if (o.json) printJson(json(names[0] as string, r.value));
    else {
      const line = text(names[0] as string, r.value);
      if (line !== undefined) console.log(line);
    }
    return;
  }
  if (o.json) {
    printJson(
      outcomes.map((r, i) => {
        const name = names[i] as string;
        return r.ok ? { name, ok: true, result: json(name, r.value) ?? null } : { name, ok: false, error: errorJson(r.error) };
      }),
    );
  } else {
    const lines: string[] = [];
    outcomes.forEach((r, i) => {
      if (r.ok) {
        const line = text(names[i] as string, r.value);
        if (line !== undefined) lines.push(line);
      } else process.stderr.write(`paene: ${names[i]}: ${r.error.message}\n`);
    });
    if (lines.length) process.stdout.write(lines.join('\n') + '\n');
  }
  const failed = outcomes.flatMap((r) => (r.ok ? [] : [r.error]));
  if (failed.length > 0) {
    const codes = new Set(failed.map((e) => (e instanceof PaeneError ? EXIT[e.code] : 1)));
    process.exitCode = codes.size === 1 ? ([...codes][0] as number) : 1;
    if (!o.json) process.stderr.write(`paene: ${failed.length} of ${outcomes.length} failed\n`);
  }
}

function errorJson(e: Error): { code: string; message: string } {
  return { code: e instanceof PaeneError ? e.code : 'internal', message: e.message };
}

/** Runs `fn` on each selected context with bounded parallelism and reports. */
export async function runMany<T>(
  rt: Runtime,
  args: string[],
  o: ManyOptions,
  fn: (name: string) => Promise<T>,
  text: (name: string, v: T) => string | undefined,
  json?: (name: string, v: T) => unknown,
): Promise<void> {
  const { names, many } = namesOf(rt, args, o);
  const outcomes = await eachBounded(names, jobsOf(o), fn);
  report(names, many, outcomes, o, text, json);
}
