// Drive the `paene image` verbs in-process through commander, capturing stdout.

import { Command } from 'commander';
import { vi } from 'vitest';
import { registerImageCommands } from '../../src/cli/image.js';

/** A runner of `paene image …` on the state root that getRoot names; resolves to what it printed. */
export function imageCli(getRoot: () => string, usedBy: (image: string) => string[] = () => []): (...args: string[]) => Promise<string> {
  return async (...args) => {
    const p = new Command();
    p.exitOverride();
    registerImageCommands(p, getRoot, usedBy);
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      out += typeof c === 'string' ? c : Buffer.from(c).toString();
      return true;
    });
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await p.parseAsync(['node', 'paene', ...args]);
    } finally {
      spy.mockRestore();
      errSpy.mockRestore();
    }
    return out;
  };
}
