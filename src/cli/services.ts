// Guest-service verbs (docs/services.md): `logs` reads a context's
// main-process log, `autostart` starts the contexts a host's boot starts, and
// `autostart install` writes the boot file that calls it.

import type { Command } from 'commander';
import { DEFAULT_ROOT } from '../kernel/layout.js';
import { nativePath } from '../kernel/package.js';
import { type AutostartResult, autostartPlan, runAutostart } from '../model/autostart.js';
import { PaeneError } from '../model/errors.js';
import { eachBounded } from '../model/names.js';
import {
  autostartCandidates,
  type BootSystem,
  hostBootSystem,
  installBootFile,
  runningNames,
  stopForShutdown,
} from '../runtime/autostart.js';
import { LOG_STREAMS, followLog, formatLogLine, logLineJson, logOptions, readLog } from '../runtime/logs.js';
import type { ContextStatus } from '../runtime/runtime.js';
import { rootOf, runtimeOf } from './common.js';
import { EXIT } from './exit.js';
import { printJson } from './format.js';
import { jobsOf, report } from './many.js';

interface LogsFlags {
  follow?: boolean;
  tail?: string;
  since?: string;
  timestamps?: boolean;
  stream?: string;
  json?: boolean;
}

/** Writes to stdout in batches of up to 64 KiB, waiting for the reader when it is behind. */
class Out {
  private parts: Buffer[] = [];
  private size = 0;
  constructor(private readonly signal: AbortSignal) {}
  async add(b: Buffer, now: boolean): Promise<void> {
    this.parts.push(b);
    this.size += b.length;
    if (now || this.size >= 64 * 1024) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.size === 0) return;
    const chunk = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    if (process.stdout.write(chunk) || this.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        process.stdout.off('drain', done);
        this.signal.removeEventListener('abort', done);
        resolve();
      };
      process.stdout.once('drain', done);
      this.signal.addEventListener('abort', done, { once: true });
    });
  }
}

async function logs(name: string, o: LogsFlags, cmd: Command): Promise<void> {
  const rt = runtimeOf(cmd);
  rt.config(name); // an unknown context is an error, not an empty log
  const opts = logOptions(o);
  const dir = rt.layout.logDir(name);
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const out = new Out(ac.signal);
  try {
    const lines = o.follow ? followLog(dir, { ...opts, signal: ac.signal }) : readLog(dir, opts);
    for await (const line of lines) {
      const b = o.json ? Buffer.from(`${JSON.stringify(logLineJson(line))}\n`) : formatLogLine(line, o.timestamps === true);
      // following: each line at once; reading: in batches
      await out.add(b, o.follow === true);
      if (ac.signal.aborted) break;
    }
    await out.flush();
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

interface AutostartFlags {
  jobs?: string;
  dryRun?: boolean;
  json?: boolean;
}

async function autostart(o: AutostartFlags, cmd: Command): Promise<void> {
  const rt = runtimeOf(cmd);
  const jobs = jobsOf(o);
  const { candidates, broken } = autostartCandidates(rt);
  const plan = autostartPlan(candidates);
  if (o.dryRun) {
    if (o.json) return printJson({ ...plan, broken: broken.map((b) => ({ name: b.name, error: errorJson(b.error) })) });
    if (plan.groups.length === 0) console.log('nothing to start');
    for (const g of plan.groups)
      console.log(`${g.order === undefined ? 'then (restart policy)' : `order ${g.order}`}: ${g.names.join(' ')}`);
    for (const s of plan.skipped) console.log(`skip ${s.name}: ${s.reason}`);
    for (const b of broken) process.stderr.write(`paene: ${b.name}: ${b.error.message}\n`);
    return;
  }
  const onEach = (r: AutostartResult<ContextStatus>) => {
    if (o.json) return;
    if (r.outcome.ok) console.log(`started context '${r.name}'`);
    else process.stderr.write(`paene: ${r.name}: ${r.outcome.error.message}\n`);
  };
  for (const b of broken) onEach({ name: b.name, outcome: { ok: false, error: b.error } });
  const results = [
    ...broken.map((b): AutostartResult<ContextStatus> => ({ name: b.name, outcome: { ok: false, error: b.error } })),
    ...(await runAutostart(plan, jobs, (name) => rt.start(name), onEach)),
  ];
  const failed = results.flatMap((r) => (r.outcome.ok ? [] : [r.outcome.error]));
  if (o.json)
    printJson(
      results.map((r) => ({
        name: r.name,
        ...(r.order !== undefined ? { order: r.order } : {}),
        ...(plan.why[r.name] ? { why: plan.why[r.name] } : {}),
        ok: r.outcome.ok,
        ...(r.outcome.ok ? { result: r.outcome.value } : { error: errorJson(r.outcome.error) }),
      })),
    );
  else if (results.length === 0) console.log('nothing to start');
  if (failed.length > 0) {
    const codes = new Set(failed.map((e) => (e instanceof PaeneError ? EXIT[e.code] : 1)));
    process.exitCode = codes.size === 1 ? ([...codes][0] as number) : 1;
    if (!o.json) process.stderr.write(`paene: ${failed.length} of ${results.length} failed\n`);
  }
}

function errorJson(e: Error): { code: string; message: string } {
  return { code: e instanceof PaeneError ? e.code : 'internal', message: e.message };
}

/** `paene autostart stop`: every running context, stopped as a host shutdown stops them (not a user's stop). */
async function shutdown(o: { timeout: string; jobs?: string; json?: boolean }, cmd: Command): Promise<void> {
  const t = Number(o.timeout);
  if (!Number.isFinite(t) || t < 0) throw new PaeneError('invalid-argument', `--timeout must be a number of seconds, got '${o.timeout}'`);
  const rt = runtimeOf(cmd);
  const names = runningNames(rt);
  const outcomes = await eachBounded(names, jobsOf(o), (n) => stopForShutdown(rt, n, t * 1000));
  report(names, true, outcomes, o, (n, r) => (r.wasRunning ? `stopped context '${n}'` : undefined));
  if (names.length === 0 && !o.json) console.log('nothing runs');
}

function install(o: { systemd?: boolean; sysv?: boolean; dest?: string }, cmd: Command): void {
  if (o.systemd && o.sysv) throw new PaeneError('invalid-argument', 'choose --systemd or --sysv, not both');
  const system: BootSystem = o.systemd ? 'systemd' : o.sysv ? 'sysv' : hostBootSystem();
  const root = rootOf(cmd);
  const command = [nativePath('paene'), ...(root !== DEFAULT_ROOT ? ['--root', root] : [])];
  const { file, enable } = installBootFile({ system, command, dest: o.dest });
  console.log(`wrote ${file}`);
  console.log(`enable it at boot with: ${enable}`);
}

export function registerServiceCommands(program: Command): void {
  program
    .command('logs')
    .description("Print a context's main-process log (its stdout and stderr, or the guest console): see docs/services.md")
    .argument('<name>', 'the context')
    .option('-f, --follow', 'keep printing new lines as they are written (across rotations) until Ctrl-C')
    .option('-n, --tail <n>', 'only the last N lines (or all)')
    .option('--since <time>', 'only lines from this time: RFC 3339 (2026-12-07T02:40:00Z) or a duration before now (10m, 2h, 1h30m)')
    .option('-t, --timestamps', 'put the time each line was written before it')
    .option('--stream <streams>', `only these streams: ${LOG_STREAMS.join(', ')} (comma-separated)`)
    .option('--json', 'one JSON object a line: {time, stream, line}')
    .action((name: string, o: LogsFlags, cmd: Command) => logs(name, o, cmd));

  const auto = program
    .command('autostart')
    .description(
      'Start the contexts a host boot starts: those made with --autostart (by order, lowest first), then those whose ' +
        'restart policy is always, or unless-stopped and not stopped by a user. Each order group many at once. See docs/services.md',
    )
    .option('-j, --jobs <n>', 'contexts started at once (default: 2 × CPUs)')
    .option('--dry-run', 'print the plan: what would start, in which groups, and what is skipped')
    .option('--json', 'an array of {name, order, why, ok, result | error}')
    .action((o: AutostartFlags, cmd: Command) => autostart(o, cmd));
  auto
    .command('install')
    .description('Write the boot file that runs `paene autostart` at boot and `paene autostart stop` at shutdown (it is not enabled)')
    .option('--systemd', 'a systemd unit, paene-autostart.service (the default where systemd runs)')
    .option('--sysv', 'a sysv init script, paene-autostart (LSB header)')
    .option('--dest <dir>', 'write it here (default: /etc/systemd/system or /etc/init.d)')
    .action((o: { systemd?: boolean; sysv?: boolean; dest?: string }, cmd: Command) => install(o, cmd));
  auto
    .command('stop')
    .description(
      "Stop every running context as a host shutdown does: unlike `paene stop`, not a user's stop, so the " +
        '--restart unless-stopped ones come back at the next `paene autostart` (the boot files run this)',
    )
    .option('-t, --timeout <seconds>', 'seconds to wait before SIGKILL', '10')
    .option('-j, --jobs <n>', 'contexts stopped at once (default: 2 × CPUs)')
    .option('--json', 'an array of {name, ok, result | error}')
    .action((o: { timeout: string; jobs?: string; json?: boolean }, cmd: Command) => shutdown(o, cmd));
}
