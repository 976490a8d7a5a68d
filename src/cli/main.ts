// paene's command line: a thin layer over the runtime. One file per group of verbs.

import fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { resolveRoot } from '../kernel/layout.js';
import { PaeneError, errnoOf } from '../model/errors.js';
import { EXIT } from './exit.js';

const PAENE_VERSION = '0.1.0';

// `paene ps --all | head`: when the reader goes away, stop quietly like any Unix tool.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const program = new Command();
program
  .name('paene')
  .description(
    'Linux-VServer-style contexts on one kernel: each with its own processes, IPC, hostname and mount view, ' +
      'a split root without dangerous capabilities, a copy-on-write root shared with its siblings, and token-bucket limits.',
  )
  .version(PAENE_VERSION, '-V, --version')
  .option('--root <dir>', 'state root (default: $PAENE_ROOT or /var/lib/paene)')
  .enablePositionalOptions()
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');

/**
 * The verb groups, each loaded only when its verb runs: a call evaluates the
 * code of its own verb, not the image store, the checks and the benchmarks.
 * Help and unknown verbs load them all.
 */
const GROUPS: { verbs: string[]; register: () => Promise<void> }[] = [
  {
    verbs: ['create', 'start', 'exec', 'enter', 'stop', 'destroy', 'list', 'ls', 'status', 'ps'],
    register: async () => (await import('./context.js')).registerContextCommands(program),
  },
  {
    verbs: ['image'],
    register: async () => {
      const [{ registerImageCommands }, { rootOf }, { Layout }, { StateStore }] = await Promise.all([
        import('./image.js'),
        import('./common.js'),
        import('../kernel/layout.js'),
        import('../runtime/state.js'),
      ]);
      /** Contexts whose config names an image: `image ls` shows them, `image rm` refuses while there are any. */
      const contextsUsing = (image: string): string[] => {
        const store = new StateStore(new Layout(rootOf(program)));
        return store.names().filter((n) => store.readConfig(n).image === image);
      };
      registerImageCommands(program, () => rootOf(program), contextsUsing);
    },
  },
  { verbs: ['profile'], register: async () => (await import('./profile.js')).registerProfileCommands(program) },
  { verbs: ['cp'], register: async () => (await import('./copy.js')).registerCopyCommands(program) },
  { verbs: ['volume'], register: async () => (await import('./volume.js')).registerVolumeCommands(program) },
  { verbs: ['du', 'commit'], register: async () => (await import('./disk.js')).registerDiskCommands(program) },
  { verbs: ['net'], register: async () => (await import('./net.js')).registerNetCommands(program) },
  { verbs: ['limit', 'stats'], register: async () => (await import('./limits.js')).registerLimitCommands(program) },
  { verbs: ['caps', 'hostname', 'config'], register: async () => (await import('./caps.js')).registerCapsCommands(program) },
  { verbs: ['check'], register: async () => (await import('./check.js')).registerCheckCommands(program) },
  { verbs: ['bench'], register: async () => (await import('./bench.js')).registerBenchCommands(program) },
  { verbs: ['logs', 'autostart'], register: async () => (await import('./services.js')).registerServiceCommands(program) },
  { verbs: ['serve'], register: async () => (await import('./serve.js')).registerServeCommand(program) },
  { verbs: ['demo'], register: async () => (await import('./demo.js')).registerDemoCommand(program) },
];

/** The verb of this call: the first word after the global options (undefined for help, version, nothing). */
function verbOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--root') i++;
    else if (!a.startsWith('-')) return a;
    else if (!a.startsWith('--root=')) return undefined;
  }
  return undefined;
}

/** The state root this call names (--root DIR, --root=DIR, $PAENE_ROOT or the default), before commander parses. */
function rootArg(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--root' && i + 1 < argv.length) return resolveRoot(argv[i + 1]);
    if (a.startsWith('--root=')) return resolveRoot(a.slice('--root='.length));
    if (!a.startsWith('-')) break;
  }
  return resolveRoot();
}

/** A state root that exists but is no directory (`PAENE_ROOT=/etc/passwd`) is a usage error, said in one line. */
function checkRoot(root: string): void {
  const st = fs.statSync(root, { throwIfNoEntry: false });
  if (st !== undefined && !st.isDirectory())
    throw new PaeneError('invalid-argument', `the state root ${root} is not a directory (set by --root or $PAENE_ROOT)`);
}

/**
 * A system error that reached the top: one line naming the path and what
 * went wrong, and its exit code: a non-root user who cannot read root's state
 * gets "not root" (7); a path that is no directory is a usage error (2).
 */
function systemError(e: unknown): { message: string; exit: number } | undefined {
  const code = errnoOf(e);
  if (code === undefined || !(e instanceof Error)) return undefined;
  const p = (e as NodeJS.ErrnoException).path;
  const where = p ? ` ${p}` : '';
  if (code === 'EACCES' || code === 'EPERM') {
    const notRoot = process.getuid?.() !== 0;
    return {
      message: `permission denied on${where}${notRoot ? ': the state root belongs to root; run paene as root (e.g. with sudo)' : ''}`,
      exit: notRoot ? EXIT['not-root'] : EXIT.internal,
    };
  }
  if (code === 'ENOTDIR') return { message: `not a directory:${where} (is the state root a directory?)`, exit: EXIT['invalid-argument'] };
  return undefined;
}

/** Runs one command line: loads the group of its verb (all of them for help), parses, maps errors to exit codes. */
async function main(): Promise<void> {
  try {
    const args = process.argv.slice(2);
    checkRoot(rootArg(args));
    const verb = verbOf(args);
    const own = GROUPS.find((g) => verb !== undefined && g.verbs.includes(verb));
    if (own) await own.register();
    else if (!(verb === undefined && (args.includes('-V') || args.includes('--version')))) for (const g of GROUPS) await g.register();
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof PaeneError) {
      process.stderr.write(`paene: ${e.message}\n`);
      process.exitCode = EXIT[e.code];
    } else if (e instanceof CommanderError) {
      // commander printed the message already; help and version are successes, usage errors are 2
      process.exitCode = e.exitCode === 0 ? 0 : 2;
    } else if (systemError(e)) {
      const { message, exit } = systemError(e) as { message: string; exit: number };
      process.stderr.write(`paene: ${message}\n`);
      process.exitCode = exit;
    } else {
      process.stderr.write(`paene: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    }
  }
}

void main();
