// paene's command line: a thin layer over the runtime. One file per group of verbs.

import { Command, CommanderError } from 'commander';
import { PaeneError } from '../model/errors.js';
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

/** Runs one command line: loads the group of its verb (all of them for help), parses, maps errors to exit codes. */
async function main(): Promise<void> {
  try {
    const args = process.argv.slice(2);
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
    } else {
      process.stderr.write(`paene: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    }
  }
}

void main();
