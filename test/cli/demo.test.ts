// The README's first command: `paene demo` runs on the defaults, shows each
// isolation and a service that answers with no exec, and leaves nothing.

import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeReal, runCli, tempRoot } from '../helpers.js';

describeReal('paene demo', () => {
  let root: string;
  beforeAll(() => {
    root = tempRoot('demo');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('shows the seven steps, the service answering and back after kill -9, and removes what it made', () => {
    const r = runCli(root, ['demo'], { timeout: 240_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (let i = 1; i <= 7; i++) expect(r.stdout).toContain(`[${i}/7]`);
    expect(r.stdout).toMatch(/GET \/ right after start: hello from demo-gamma's main process/);
    expect(r.stdout).toMatch(/back as pid \d+ \(restarts: 1\)/);
    expect(r.stdout).toMatch(/response:200/);
    expect(r.stdout).toContain('done: every process, cgroup and private layer the demo made is gone.');
    expect(fs.readdirSync(`${root}/contexts`).filter((n) => !n.startsWith('.'))).toEqual([]);
  }, 300_000);
});
