// paene's command line: a thin layer over the runtime. One file per group of verbs.

import { Command, CommanderError } from 'commander';
import { type ErrorCode, PaeneError } from '../core/errors.js';
import { registerContextCommands } from './context.js';
import { registerImageCommands } from './image.js';
import { registerDemoCommand } from './demo.js';
import { registerCheckCommands } from './check.js';
import { registerBenchCommands } from './bench.js';
import { registerLimitCommands } from './limits.js';
import { registerCapsCommands } from './caps.js';
import { registerDiskCommands } from './disk.js';
import { registerNetCommands } from './net.js';
import { Layout } from '../runtime/layout.js';
import { StateStore } from '../runtime/state.js';
import { rootOf } from './common.js';

const PAENE_VERSION = '0.1.0';

/** Exit codes by error kind, so scripts can tell them apart (documented in the README). */
const EXIT: Record<ErrorCode, number> = {
  'invalid-argument': 2,
  'not-found': 3,
  exists: 4,
  'wrong-state': 5,
  busy: 6,
  'not-root': 7,
  unsupported: 8,
  'hostile-archive': 9,
  'limit-exceeded': 9,
  internal: 1,
};

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

registerContextCommands(program);
/** Contexts whose config names an image: `image ls` shows them, `image rm` refuses while there are any. */
const contextsUsing = (image: string): string[] => {
  const store = new StateStore(new Layout(rootOf(program)));
  return store.names().filter((n) => store.readConfig(n).image === image);
};
registerImageCommands(program, () => rootOf(program), contextsUsing);
registerDiskCommands(program);
registerNetCommands(program);
registerLimitCommands(program);
registerCapsCommands(program);
registerCheckCommands(program);
registerBenchCommands(program);
registerDemoCommand(program);

try {
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
