// What every CLI verb shares: the state root option and opening the runtime.

import type { Command } from 'commander';
import { resolveRoot } from '../kernel/layout.js';
import { openRuntime } from '../runtime/open.js';
import type { Runtime } from '../runtime/runtime.js';

/** The state root from --root (global), PAENE_ROOT, or the default. */
export function rootOf(cmd: Command): string {
  const opts = cmd.optsWithGlobals() as { root?: string };
  return resolveRoot(opts.root);
}

export function runtimeOf(cmd: Command): Runtime {
  return openRuntime(rootOf(cmd));
}

/** Exit code of a check whose verdict failed (the run itself worked): not an internal error (1). */
export const EXIT_CHECK_FAILED = 10;
