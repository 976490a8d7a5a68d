// Placeholder: filled in by the issue that owns these verbs.
import type { Command } from 'commander';

export function registerCapsCommands(_program: Command): void {}
