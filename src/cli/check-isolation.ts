// Placeholder: filled in by the issue that owns these verbs.
import type { Command } from 'commander';

export function registerIsolationCheck(_program: Command): void {}
