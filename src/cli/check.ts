// `paene check`: the user-facing experiment suites, run against real contexts.

import type { Command } from 'commander';
import { registerEscapeCheck } from './check-escape.js';
import { registerIsolationCheck } from './check-isolation.js';
import { registerNetworkCheck } from './check-network.js';

export function registerCheckCommands(program: Command): void {
  const check = program
    .command('check')
    .description('Run experiments against real contexts: escape attempts (split root), network walls and resource isolation');
  registerEscapeCheck(check);
  registerIsolationCheck(check);
  registerNetworkCheck(check);
}
