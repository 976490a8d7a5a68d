// Lifecycle verbs: create, start, exec, enter, stop, destroy, list, status, ps.

import os from 'node:os';
import { type Command, Option } from 'commander';
import { type CapSpec, makeCapSpec, parseCcap, validateCcaps } from '../model/caps.js';
import { DEFAULT_LIMITS, limitWarnings, mergeLimits } from '../model/limits.js';
import { LIMIT_FLAGS, parseLimitFlags } from '../model/limitflags.js';
import { parseCount, parseSize } from '../model/units.js';
import { PaeneError } from '../model/errors.js';
import { type ContextConfig, parseXid, XID_MAX, XID_MIN } from '../context/config.js';
import { DEFAULT_IMAGE } from '../image/store.js';
import type { ContextStatus, ProcessInfo } from '../runtime/runtime.js';
import { DEFAULT_OCI_ROOT, ociSummaries } from '../oci/runtime.js';
import { rootOf, runtimeOf } from './common.js';
import { readEnvFiles, userSpec } from './execopts.js';
import { resolveRoot } from '../kernel/layout.js';
import { DEFAULT_ROOT } from '../proto/names.js';
import { naturalCompare } from '../model/natural.js';
import { formatTable, printJson } from './format.js';
import { addNetOptions, netCell, netSpecOf } from './net.js';
import { type ManyOptions, type Outcome, addManyOptions, jobsOf, namesOf, report, runMany } from './many.js';
import { eachBounded, expandTemplate } from '../model/names.js';
import { parseMountArg } from '../model/mounts.js';
import { applySettings, envOf, splitCommand } from '../model/profile.js';
import { ProfileStore } from '../runtime/profiles.js';
import { type MainSpec, describeMain, parseInit, parseRestart, validateMain, LOG_BYTES_MIN } from '../model/service.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** Adds every resource-limit flag (--cpu, --io-write, --nproc, --memory, ...) to a command. */
export function addLimitOptions(cmd: Command): Command {
  for (const f of LIMIT_FLAGS) cmd.option(`--${f.flag} <${f.arg.replace(/"/g, '')}>`, f.help);
  return cmd;
}

/** The --caps/--cap-add/--cap-drop options as a capability spec (model/caps.ts validates); privileged warns. */
function capSpecFrom(o: { caps?: string; capAdd?: string[]; capDrop?: string[] }): CapSpec {
  const spec = makeCapSpec(o.caps ?? 'secure', o.capAdd ?? [], o.capDrop ?? []);
  if (spec.profile === 'privileged')
    process.stderr.write('paene: warning: the privileged profile gives guest root every capability; it can escape the context\n');
  return spec;
}

function diskFrom(o: Record<string, unknown>): { bytes: number; inodes?: number } | undefined {
  if (o.disk === undefined) {
    if (o.inodes !== undefined)
      throw new PaeneError('invalid-argument', "--inodes needs --disk (the limits live on the context's own filesystem)");
    return undefined;
  }
  const bytes = parseSize(o.disk as string, '--disk');
  return o.inodes === undefined ? { bytes } : { bytes, inodes: parseCount(o.inodes as string, '--inodes', 16) };
}

export { splitCommand } from '../model/profile.js';

/** The words after `--` on the command line (create's main process), if any. */
function commandAfterDashes(cmd: Command): string[] | undefined {
  const raw = (cmd.parent as (Command & { rawArgs?: string[] }) | null)?.rawArgs ?? process.argv;
  const at = raw.indexOf('create');
  const dd = raw.indexOf('--', at < 0 ? 0 : at);
  return dd < 0 ? undefined : raw.slice(dd + 1);
}

/** create's main-process options as a config's `main` (undefined: the image's default). */
function mainFrom(o: Record<string, unknown>, tail: string[] | undefined): MainSpec | 'none' | undefined {
  if (o.cmd === false) {
    if (tail?.length) throw new PaeneError('invalid-argument', '--no-cmd and a command after -- contradict each other');
    return 'none';
  }
  if (typeof o.cmd === 'string' && tail?.length)
    throw new PaeneError('invalid-argument', 'give the command with --cmd or after --, not both');
  const argv = typeof o.cmd === 'string' ? splitCommand(o.cmd) : tail?.length ? tail : undefined;
  const env = envOf((o.env as string[] | undefined) ?? []);
  const spec: MainSpec = {
    ...(argv ? { argv } : {}),
    ...(Object.keys(env).length ? { env } : {}),
    ...(o.workdir !== undefined ? { cwd: o.workdir as string } : {}),
    ...(o.user !== undefined ? { user: o.user as string } : {}),
  };
  return Object.keys(spec).length ? validateMain(spec, 'create') : undefined;
}

/** stop's and restart's --timeout: seconds, 0 or more. */
function timeoutSeconds(v: string): number {
  const t = Number(v);
  if (!Number.isFinite(t) || t < 0) throw new PaeneError('invalid-argument', `--timeout must be a number of seconds, got '${v}'`);
  return t;
}

/** A signal by name (KILL, SIGKILL) or number. */
function parseSignal(v: string): NodeJS.Signals | number {
  if (/^\d{1,2}$/.test(v) && Number(v) >= 1 && Number(v) <= 64) return Number(v);
  const name = (v.toUpperCase().startsWith('SIG') ? v.toUpperCase() : `SIG${v.toUpperCase()}`) as NodeJS.Signals;
  if (!(name in os.constants.signals)) throw new PaeneError('invalid-argument', `--signal: unknown signal '${v}'`);
  return name;
}

const mainCell = (s: ContextStatus) => {
  const m = s.main;
  if (!m) return '-';
  if (!m.state) return 'not started';
  const how = m.state === 'exited' ? `exited ${m.code ?? 0}` : m.state === 'killed' ? `killed ${m.signal ?? ''}` : m.state;
  return m.restarts ? `${how} (${m.restarts}x)` : how;
};

const statusColumns = [
  { header: 'NAME', get: (s: ContextStatus) => s.name },
  { header: 'XID', get: (s: ContextStatus) => s.xid, align: 'right' as const },
  { header: 'STATE', get: (s: ContextStatus) => s.state },
  { header: 'PROCS', get: (s: ContextStatus) => s.processes, align: 'right' as const },
  { header: 'PID', get: (s: ContextStatus) => s.pid ?? '-', align: 'right' as const },
  { header: 'IMAGE', get: (s: ContextStatus) => s.image },
  { header: 'HOSTNAME', get: (s: ContextStatus) => s.hostname },
  { header: 'NET', get: (s: ContextStatus) => netCell(s.net) },
  { header: 'MAIN', get: mainCell },
];

/**
 * The create flags a profile may hold too (`paene profile create|edit`,
 * model/profile.ts): with `defaults` create's defaults, without them only
 * what is given (a profile holds what it was told).
 */
export function addSettingOptions(cmd: Command, defaults: boolean): Command {
  const d = <T>(v: T) => (defaults ? v : undefined);
  const caps = new Option('--caps <profile>', 'capability profile of guest root (not a `paene profile`: see --profile)').choices([
    'secure',
    'strict',
    'privileged',
  ]);
  return addLimitOptions(
    addNetOptions(
      cmd
        .option(
          '--image <image>',
          "image for its root filesystem (built on first use if it is the default); an imported image's Cmd, Env, WorkingDir and User are the defaults of exec",
          d(DEFAULT_IMAGE),
        )
        .addOption(defaults ? caps.default('secure') : caps)
        .option('--cap-add <cap>', 'keep this capability too (repeatable; e.g. NET_RAW)', collect, [])
        .option('--cap-drop <cap>', 'drop this capability too (repeatable)', collect, [])
        .option('--ccap <ccap>', 'grant a context capability (repeatable; see `paene caps --help`)', collect, [])
        .option(
          '--cmd <command>',
          "its main process, run at start and kept by its init (quoted as a shell would; or give it after --); default: the image's Entrypoint + Cmd",
        )
        .option('--no-cmd', 'no main process, even if the image has a Cmd: its init runs alone')
        .option('-e, --env <KEY=VALUE>', "the main process's environment, over the image's Env (repeatable)", collect, [])
        .option('-w, --workdir <dir>', "the main process's working directory (default: the image's WorkingDir, else /)")
        .option(
          '-u, --user <user>',
          "the main process's user: UID[:GID] or NAME[:GROUP] of the image's /etc/passwd (default: the image's User, else root)",
        )
        .option(
          '--restart <policy>',
          'when its main process ends: no, on-failure[:N] (at most N restarts), always, unless-stopped (with a growing delay)',
          d('no'),
        )
        .option('--log-size <size>', "rotate the main process's log at this size (e.g. 10M)", d('10M'))
        .option('--log-keep <n>', 'rotated log files kept', d('1'))
        .option('--autostart [order]', '`paene autostart` starts it (as the host boots); lower orders first (default 0)')
        .option(
          '--init <init>',
          "pid 1: paene (its small init, which runs the main process) or guest (the guest's /sbin/init boots it), or a path in the guest",
          d('paene'),
        )
        .option('--disk <size>', 'space limit of its private layer, e.g. 5G (its own sparse filesystem: overbooking is allowed)')
        .option('--inodes <n>', 'inode limit of its private layer (with --disk)')
        .option(
          '-v, --mount <SRC:DST[:ro]>',
          'bind SRC at DST in the context at each start (repeatable): SRC an absolute host path (no symlink in it) or a volume name (`paene volume create`); :ro read-only',
          collect,
          [],
        ),
      defaults,
    ),
  );
}

export function registerContextCommands(program: Command): void {
  addSettingOptions(
    program
      .command('create')
      .description('Create a context: write its config and private layer. Nothing runs until `start`.')
      .argument(
        '<name...>',
        'context name: 1-63 of [a-z0-9_-], starting with a letter or digit; several make several contexts; with --count a template such as web%d',
      )
      .option('-n, --count <n>', 'create a numbered set: NAME is a template with %d (or %03d), filled with 1..n')
      .option('--xid <n>', `context id, ${XID_MIN}-${XID_MAX} (default: the lowest free one)`)
      .option('--hostname <host>', 'hostname inside the context (default: its name)')
      .option(
        '--profile <name>',
        'apply a profile of settings (`paene profile`; repeatable, a later one wins; the flags given here win over all)',
        collect,
        [],
      )
      .option('--start', 'start each context once it is created (one call for a whole set: create --count 1000 --start)')
      .option('-j, --jobs <n>', 'with --start: contexts started at once (default: 2 × CPUs)')
      .option('--json', 'print the new config as JSON (with --start: its status)'),
    true,
  )
    .addHelpText(
      'after',
      `\nDefault limits for a new context: ${JSON.stringify(DEFAULT_LIMITS)} (a finite nproc contains a fork bomb; its own CPU weight keeps it one share among many).`,
    )
    .action(async (args: string[], flags: Record<string, unknown>, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const tail = commandAfterDashes(cmd);
      // the profiles' settings under the flags given here (a command after -- is a given --cmd)
      const given = (key: string) => cmd.getOptionValueSource(key) === 'cli' || (key === 'cmd' && Boolean(tail?.length));
      const profiles = flags.profile as string[];
      const o = profiles.length ? applySettings(new ProfileStore(rt.layout.root).merged(profiles), flags, given) : flags;
      let names = tail?.length ? args.slice(0, args.length - tail.length) : args;
      if (names.length === 0) throw new PaeneError('invalid-argument', 'name the context before the -- of its command');
      if (o.count !== undefined) {
        if (names.length !== 1) throw new PaeneError('invalid-argument', '--count takes one name template (e.g. web%d)');
        names = expandTemplate(names[0] as string, parseCount(o.count as string, '--count', 1, XID_MAX - XID_MIN + 1)); // no more than there are xids
      }
      if (names.length > 1 && o.xid !== undefined)
        throw new PaeneError('invalid-argument', '--xid names one context; leave it out to give each the lowest free xid');
      const limits = mergeLimits(DEFAULT_LIMITS, parseLimitFlags(o as Record<string, string | undefined>));
      for (const w of limitWarnings(limits)) process.stderr.write(`paene: warning: ${w}\n`);
      const net = netSpecOf(o as { net?: string; ip?: string[]; publish?: string[] });
      if (names.length > 1 && net.addresses.length > 0)
        throw new PaeneError('invalid-argument', '--ip names addresses of one context; leave it out to give each one from the pool');
      const explicit = o.net !== undefined || (o.ip as string[]).length > 0;
      const unsupported = rt.network.sharedUnsupported(rt.cgroupHost.unified !== undefined);
      if (!explicit && unsupported)
        process.stderr.write(
          `paene: note: ${unsupported.split(';')[0]}; ${names.length > 1 ? 'these contexts get' : 'this context gets'} --net none (loopback only)\n`,
        );
      const spec = {
        image: o.image as string,
        xid: o.xid === undefined ? undefined : parseXid(o.xid as string),
        hostname: o.hostname as string | undefined,
        caps: capSpecFrom(o as { caps?: string; capAdd?: string[]; capDrop?: string[] }),
        ccaps: validateCcaps([...new Set((o.ccap as string[]).map(parseCcap))]),
        limits,
        disk: diskFrom(o),
        net: explicit || !unsupported ? net : undefined,
        main: mainFrom(o, tail),
        restart: parseRestart(o.restart as string),
        log: { maxBytes: parseSize(o.logSize as string, '--log-size'), keep: parseCount(o.logKeep as string, '--log-keep', 0) },
        ...(o.autostart !== undefined
          ? { autostart: { order: o.autostart === true ? 0 : parseCount(o.autostart as string, '--autostart', 0) } }
          : {}),
        init: parseInit(o.init as string),
        mounts: ((o.mount as string[] | undefined) ?? []).map(parseMountArg),
      };
      if (spec.log.maxBytes < LOG_BYTES_MIN) throw new PaeneError('invalid-argument', `--log-size must be at least ${LOG_BYTES_MIN} bytes`);
      const jobs = jobsOf(o as ManyOptions); // checked before anything is created
      const results = await rt.createEach(names.map((name) => ({ ...spec, name })));
      const many = names.length > 1 || o.count !== undefined;
      const created = results.map((r): Outcome<ContextConfig> => (r instanceof Error ? { ok: false, error: r } : { ok: true, value: r }));
      const createdText = (c: ContextConfig) => `created context '${c.name}' (xid ${c.xid}, image ${c.image}, net ${netCell(c.net)})`;
      if (!o.start) {
        report(names, many, created, o as { json?: boolean }, (_n, c) => createdText(c));
        return;
      }
      // Each one created is started; one that failed to be created reports that error.
      const started = await eachBounded(created, jobs, async (r) => {
        if (!r.ok) throw r.error;
        return { config: r.value, status: await rt.start(r.value.name) };
      });
      report(
        names,
        many,
        started,
        o as { json?: boolean },
        (_n, v) => `${createdText(v.config)}, started (init pid ${v.status.pid} on the host)`,
        (_n, v) => v.status,
      );
    });

  addManyOptions(
    program
      .command('start')
      .description('Start contexts: new pid/ipc/uts/mount namespaces, their cgroups, overlay root, and init as pid 1')
      .argument('[names...]', 'context names or patterns (web*)')
      .option('--json', 'print the status as JSON'),
  ).action(async (names: string[], o: ManyOptions, cmd: Command) => {
    const rt = runtimeOf(cmd);
    await runMany(
      rt,
      names,
      o,
      (n) => rt.start(n),
      (n, s) => `started context '${n}' (init pid ${s.pid} on the host)`,
    );
  });

  program
    .command('exec')
    .description('Run a command inside a running context, passing stdio and the exit code through')
    .argument('<name>')
    .argument('[command...]', "the command and its arguments (put them after --); none: the image's Entrypoint + Cmd")
    .option('-t, --tty', 'give the command a terminal of the context (interactive programs)')
    .option(
      '-u, --user <user[:group]>',
      "run as this user: UID[:GID], or NAME[:GROUP] from the context's own /etc/passwd and /etc/group (default: the image's User, else guest root)",
    )
    .option('-w, --cwd <dir>', "working directory inside the context (default: the image's WorkingDir, else /)")
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable; wins over --env-file)', collect, [])
    .option(
      '--env-file <file>',
      "read variables from a file: KEY=VALUE lines, # comments, a bare KEY takes the caller's value (repeatable)",
      collect,
      [],
    )
    .option('-d, --detach', 'start the command and return at once, printing its pid (its output is discarded)')
    .passThroughOptions()
    .action(
      async (
        name: string,
        command: string[],
        o: { tty?: boolean; user?: string; cwd?: string; env: string[]; envFile: string[]; detach?: boolean },
        cmd: Command,
      ) => {
        // passThroughOptions keeps the `--` separator: it is not part of the command
        if (command[0] === '--') command = command.slice(1);
        if (o.detach && o.tty)
          throw new PaeneError('invalid-argument', '--detach and --tty do not go together (a detached command has no terminal)');
        const opts = { user: o.user ? userSpec(o.user) : undefined, cwd: o.cwd, env: { ...readEnvFiles(o.envFile), ...envOf(o.env) } };
        const rt = runtimeOf(cmd);
        if (o.detach) {
          const r = await rt.execDetached(name, command, opts);
          console.log(`pid ${r.innerPid} in '${name}' (host pid ${r.pid})`);
          return;
        }
        process.exitCode = await rt.exec(name, command, { ...opts, tty: o.tty });
      },
    );

  program
    .command('enter')
    .description('Open an interactive shell inside a running context, on a terminal of its own')
    .argument('<name>')
    .option('--shell <path>', 'shell to run', '/bin/sh')
    .action(async (name: string, o: { shell: string }, cmd: Command) => {
      process.exitCode = await runtimeOf(cmd).exec(name, [o.shell, '-l'], { tty: process.stdin.isTTY === true });
    });

  addManyOptions(
    program
      .command('stop')
      .description('Stop contexts: SIGTERM to each init, then SIGKILL to every process left after the timeout')
      .argument('[names...]', 'context names or patterns (web*)')
      .option('-t, --timeout <seconds>', 'seconds to wait before SIGKILL', '10')
      .option('--json', 'print JSON'),
  ).action(async (names: string[], o: ManyOptions & { timeout: string }, cmd: Command) => {
    const t = timeoutSeconds(o.timeout);
    const rt = runtimeOf(cmd);
    await runMany(
      rt,
      names,
      o,
      (n) => rt.stop(n, { timeoutMs: t * 1000 }),
      (n, r) => (r.wasRunning ? `stopped context '${n}'` : `context '${n}' was not running (cleaned up what was left)`),
    );
  });

  addManyOptions(
    program
      .command('restart')
      .description('Stop and start contexts again: their main process (or guest init) starts afresh')
      .argument('[names...]', 'context names or patterns (web*)')
      .option('-t, --timeout <seconds>', 'seconds to wait before SIGKILL', '10')
      .option('--json', 'print the status as JSON'),
  ).action(async (names: string[], o: ManyOptions & { timeout: string }, cmd: Command) => {
    const t = timeoutSeconds(o.timeout);
    const rt = runtimeOf(cmd);
    await runMany(
      rt,
      names,
      o,
      (n) => rt.restart(n, { timeoutMs: t * 1000 }),
      (n, s) => `restarted context '${n}' (init pid ${s.pid} on the host)`,
    );
  });

  addManyOptions(
    program
      .command('kill')
      .description("Send a signal to contexts' main processes (their restart policy applies); with --init guest, to the guest's init")
      .argument('[names...]', 'context names or patterns (web*)')
      .option('-s, --signal <signal>', 'signal name or number (KILL, SIGTERM, 9)', 'TERM')
      .option('--json', 'print JSON'),
  ).action(async (names: string[], o: ManyOptions & { signal: string }, cmd: Command) => {
    const sig = parseSignal(o.signal);
    const rt = runtimeOf(cmd);
    await runMany(
      rt,
      names,
      o,
      async (n) => rt.kill(n, sig),
      (n, r) => `sent ${o.signal} to '${n}' (host pid ${r.pid})`,
    );
  });

  addManyOptions(
    program
      .command('destroy')
      .description('Remove contexts: stop each if it runs, then delete its cgroups, private layer and config')
      .argument('[names...]', 'context names or patterns (web*)')
      .option('-f, --force', 'kill at once instead of stopping gracefully, and remove even a broken context')
      .option('--json', 'print JSON'),
  ).action(async (names: string[], o: ManyOptions & { force?: boolean }, cmd: Command) => {
    const rt = runtimeOf(cmd);
    await runMany(
      rt,
      names,
      o,
      (n) => rt.destroy(n, { force: o.force }),
      (n) => `destroyed context '${n}'`,
      () => null,
    );
  });

  program
    .command('list')
    .alias('ls')
    .description('List contexts: name, xid, state, processes, init pid, image')
    .option('--json', 'print JSON')
    .option('--oci', "with --json: print { contexts, oci } with paene-runc's containers (the table always shows them)")
    .option(
      '--oci-root <dir>',
      `where paene-runc keeps its containers (its --root; default ${DEFAULT_OCI_ROOT} with the default state root, none with another)`,
    )
    .action((o: { json?: boolean; oci?: boolean; ociRoot?: string }, cmd: Command) => {
      const all = runtimeOf(cmd)
        .list()
        .sort((a, b) => naturalCompare(a.name, b.name));
      // paene-runc's global containers belong to the default root's listing, not to every test or tenant root's
      const ociRoot = o.ociRoot ?? (rootOf(cmd) === resolveRoot(DEFAULT_ROOT) ? DEFAULT_OCI_ROOT : undefined);
      const oci = ociRoot === undefined ? [] : ociSummaries(ociRoot);
      if (o.json) printJson(o.oci ? { contexts: all, oci } : all);
      else if (all.length === 0 && oci.length === 0) console.log('no contexts (create one with `paene create NAME`)');
      else {
        if (all.length) console.log(formatTable(all, statusColumns));
        if (oci.length) {
          console.log(`${all.length ? '\n' : ''}OCI containers (paene-runc, ${ociRoot}):`);
          console.log(
            formatTable(oci, [
              { header: 'ID', get: (c) => c.id },
              { header: 'STATUS', get: (c) => c.status },
              { header: 'PROCS', get: (c) => c.pids.length, align: 'right' as const },
              { header: 'PID', get: (c) => c.pid || '-', align: 'right' as const },
              { header: 'BUNDLE', get: (c) => c.bundle },
            ]),
          );
        }
      }
    });

  addManyOptions(
    program
      .command('status')
      .description("Show contexts' state: one context in detail, several as a table")
      .argument('[names...]', 'context names or patterns (web*)')
      .option('--json', 'print JSON (includes the host pid of its init)'),
  ).action(async (args: string[], o: ManyOptions, cmd: Command) => {
    const rt = runtimeOf(cmd);
    const { names, many } = namesOf(rt, args, o);
    const outcomes = names.map((n): Outcome<ContextStatus> => {
      try {
        return { ok: true, value: rt.status(n) };
      } catch (e) {
        return { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
      }
    });
    if (many && !o.json) {
      const ok = outcomes.flatMap((r) => (r.ok ? [r.value] : []));
      if (ok.length) console.log(formatTable(ok, statusColumns));
      report(names, true, outcomes, o, () => undefined);
      return;
    }
    report(
      names,
      many,
      outcomes,
      o,
      (_n, s) =>
        Object.entries(s)
          .filter(([, v]) => v !== undefined)
          .map(
            ([k, v]) =>
              `${k.padEnd(10)} ${
                k === 'net'
                  ? netCell(s.net)
                  : k === 'netGaps'
                    ? (v as string[]).join('; ')
                    : k === 'mounts'
                      ? (s.mounts ?? []).map((m) => `${m.source}:${m.target}${m.readonly ? ':ro' : ''}`).join(', ')
                      : k === 'main' && s.main
                        ? `${s.main.argv.join(' ')} (restart ${s.main.restart}): ${s.main.state ? describeMain({ ...s.main, state: s.main.state, restarts: s.main.restarts ?? 0, at: s.main.at ?? '' }) : 'not started'}`
                        : v
              }`,
          )
          .join('\n'),
      (n, s) => ({ ...s, config: rt.config(n) }),
    );
  });

  program
    .command('ps')
    .description("Show a context's processes with their pids inside it; --all shows every host process with its context")
    .argument('[name]')
    .option('-a, --all', "vserver's spectator view: every process on the host, with a context column (host = 0)")
    .option('--json', 'print JSON')
    .action((name: string | undefined, o: { all?: boolean; json?: boolean }, cmd: Command) => {
      const rt = runtimeOf(cmd);
      if (!o.all && !name) throw new PaeneError('invalid-argument', 'name a context, or use --all');
      const rows = o.all ? rt.psAll() : rt.ps(name as string);
      if (o.all) {
        // paene-runc's containers (default root): their processes are labelled oci:ID, xid 0
        const owner = new Map<number, string>();
        for (const c of ociSummaries()) for (const pid of c.pids) owner.set(pid, `oci:${c.id}`);
        for (const r of rows) if (!r.context && owner.has(r.pid)) r.context = owner.get(r.pid) as string;
      }
      if (o.json) {
        printJson(rows);
        return;
      }
      const cols = [
        ...(o.all
          ? [
              { header: 'XID', get: (p: ProcessInfo) => p.xid, align: 'right' as const },
              { header: 'CONTEXT', get: (p: ProcessInfo) => p.context || 'host' },
            ]
          : []),
        { header: 'PID', get: (p: ProcessInfo) => p.innerPid, align: 'right' as const },
        { header: 'HOSTPID', get: (p: ProcessInfo) => p.pid, align: 'right' as const },
        { header: 'STAT', get: (p: ProcessInfo) => p.state },
        { header: 'COMMAND', get: (p: ProcessInfo) => p.command.slice(0, 100) },
      ];
      console.log(formatTable(rows, cols));
    });
}
