// `paene enter` on a real terminal: script(1) gives the CLI a pty, the shell
// inside gets a terminal of the context's own devpts, and typed-ahead input
// and the exit code survive.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';

describeReal('paene enter', () => {
  const fx = useRuntime('enter', async () => {
    await fx.rt.create({ name: 'en', image: 'base', hostname: 'enter-host' });
    await fx.rt.start('en');
  });

  it('gives an interactive shell on a pty of the context, passing input and the exit code', () => {
    const cli = `${process.execPath} ${path.resolve('bin/paene.js')} --root ${fx.root} enter en`;
    const r = spawnSync('script', ['-qec', cli, '/dev/null'], {
      input: 'hostname; ps -o pid,tty,comm; exit 3\n',
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.stdout).toContain('enter-host');
    // the shell and ps run on the context's own devpts, where they are the only processes
    expect(r.stdout).toMatch(/\d+\s+pts\/0\s+sh/);
    expect(r.stdout).toMatch(/\d+\s+pts\/0\s+ps/);
    expect(r.status).toBe(3);
  });
});
