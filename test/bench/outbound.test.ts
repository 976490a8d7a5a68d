// The outbound bench's fair host side: its client joins the cgroups of a
// `--net host` context, found from that context's init through
// /proc/PID/cgroup. Here: a process moved into a scratch cgroup is found
// there, and a shell that writes itself into the files found is then in the
// same cgroups as that process.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { cgroupProcsFiles } from '../../src/bench/network.js';
import { detectCgroupHost } from '../../src/cgroups/cgroups.js';
import { describeReal } from '../helpers.js';

describeReal('bench network: the host client joins the cgroups of a process', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGKILL');
      await gone;
    }
    if (dir && fs.existsSync(dir)) fs.rmdirSync(dir);
    child = undefined;
    dir = undefined;
  });

  it('finds the scratch cgroup a process was moved into, and a shell joining the files shares its cgroups', async () => {
    const host = detectCgroupHost();
    const mount = host.v1.get('cpu') ?? host.unified?.mount;
    if (!mount) throw new Error('no cpu hierarchy and no cgroup2 mount');
    dir = path.join(mount, `paene-test-join-${process.pid}`);
    fs.mkdirSync(dir);
    child = spawn('sleep', ['60'], { stdio: 'ignore' });
    const pid = child.pid as number;
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
    const files = cgroupProcsFiles(pid);
    expect(files).toContain(path.join(dir, 'cgroup.procs'));
    for (const f of files) expect(fs.existsSync(f), f).toBe(true);
    // the bench's prelude: write $$ into every file, then exec the client (here: print its own cgroups)
    const joined = spawnSync('sh', ['-c', `${files.map((f) => `echo $$ > '${f}' && `).join('')}exec cat /proc/self/cgroup`], {
      encoding: 'utf8',
    });
    expect(joined.status, joined.stderr).toBe(0);
    const mine = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    expect(joined.stdout).toBe(mine);
  });
});
