// A Debian 12 guest boots its own init (sysvinit) in a context: `--init
// guest` makes /sbin/init pid 1, its rc scripts run (their console output is
// in the context's log), and `paene stop` asks it to shut down the way
// sysvinit expects (ctrlaltdel: shutdown -r now, the K scripts, then its
// reboot(2), which ends only the context). The guest is debootstrap's
// minbase with sysvinit-core, made once by scripts/debian-guest.sh (setup.sh
// --peers runs it).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openImageStore, openRuntime } from '../../src/runtime/open.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { describeReal, disposeRuntime, tempRoot } from '../helpers.js';

const GUEST_TAR = '/var/cache/paene-test/deb12-sysvinit.tar';

function logText(root: string, name: string): string {
  try {
    // sysvinit writes its console lines as \r...\r\n (a terminal's); the log keeps the bytes, the checks look past them
    return fs.readFileSync(path.join(root, 'contexts', name, 'log', 'main.log'), 'utf8').replace(/\r/g, '');
  } catch {
    return '';
  }
}

async function waitLog(root: string, name: string, re: RegExp, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (re.test(logText(root, name))) return;
    await sleep(100);
  }
  throw new Error(`log of ${name} never matched ${re}:\n${logText(root, name).slice(-2000)}`);
}

describeReal('a Debian 12 guest boots its own init', () => {
  let root: string;
  let rt: Runtime;

  beforeAll(async () => {
    if (!fs.existsSync(GUEST_TAR)) {
      const r = spawnSync('bash', ['scripts/debian-guest.sh', GUEST_TAR], { stdio: 'inherit', timeout: 900_000 });
      if (r.status !== 0) throw new Error('scripts/debian-guest.sh could not make the Debian guest');
    }
    root = tempRoot('deb');
    rt = openRuntime(root);
    await openImageStore(root).importTar(fs.createReadStream(GUEST_TAR), 'deb12');
  }, 1_000_000);

  afterAll(() => disposeRuntime(rt, root));

  it('sysvinit boots to its runlevel, its rc scripts run, and stop shuts it down cleanly within the timeout', async () => {
    await rt.create({ name: 'deb-guest', image: 'deb12', init: { kind: 'guest', path: '/sbin/init' } });
    expect(rt.config('deb-guest').init).toEqual({ kind: 'guest', path: '/sbin/init', flavor: 'sysvinit' });
    await rt.start('deb-guest');
    await waitLog(root, 'deb-guest', /console F INIT: version \S+ booting$/m);
    await waitLog(root, 'deb-guest', /INIT: Entering runlevel: 2$/m);
    await waitLog(root, 'deb-guest', /concurrent boot in runlevel 2\.$/m); // /etc/init.d/rc ran the runlevel's scripts
    const run = await rt.execCapture('deb-guest', ['sh', '-c', 'test -p /run/initctl && echo initctl; cat /proc/1/comm'], {
      timeoutMs: 30_000,
    });
    expect(run.stdout).toBe('initctl\ninit\n');
    const t0 = Date.now();
    await rt.stop('deb-guest', { timeoutMs: 60_000 });
    const took = Date.now() - t0;
    expect(rt.status('deb-guest').state).toBe('stopped');
    // the reboot runlevel's scripts ran to their end (Debian's /etc/init.d/reboot says this), before the timeout
    expect(logText(root, 'deb-guest')).toMatch(/Will now restart\.$/m);
    expect(took).toBeLessThan(60_000);
  }, 300_000);
});
