// A Debian 12 guest boots its own init (sysvinit) in a context: `--init
// guest` makes /sbin/init pid 1, its rc scripts run (their console output is
// in the context's log), and `paene stop` asks it to shut down the way
// sysvinit expects (ctrlaltdel: shutdown -r now, the K scripts, then its
// reboot(2), which ends only the context). The guest is debootstrap's
// minbase with sysvinit-core, made once by scripts/debian-guest.sh (setup.sh
// --peers runs it).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { expect, it } from 'vitest';
import { openImageStore } from '../../src/runtime/open.js';
import { describeReal } from '../helpers.js';
import { mainLog, useRuntime, waitMainLog } from '../fixture.js';

const GUEST_TAR = '/var/cache/paene-test/deb12-sysvinit.tar';

describeReal('a Debian 12 guest boots its own init', () => {
  const fx = useRuntime(
    'deb',
    async () => {
      if (!fs.existsSync(GUEST_TAR)) {
        const r = spawnSync('bash', ['scripts/debian-guest.sh', GUEST_TAR], { stdio: 'inherit', timeout: 900_000 });
        if (r.status !== 0) throw new Error('scripts/debian-guest.sh could not make the Debian guest');
      }
      await openImageStore(fx.root).importTar(fs.createReadStream(GUEST_TAR), 'deb12');
    },
    { setup: 1_000_000 },
  );

  it('sysvinit boots to its runlevel, its rc scripts run, and stop shuts it down cleanly within the timeout', async () => {
    await fx.rt.create({ name: 'deb-guest', image: 'deb12', init: { kind: 'guest', path: '/sbin/init' } });
    expect(fx.rt.config('deb-guest').init).toEqual({ kind: 'guest', path: '/sbin/init', flavor: 'sysvinit' });
    await fx.rt.start('deb-guest');
    await waitMainLog(fx.root, 'deb-guest', /console F INIT: version \S+ booting$/m);
    await waitMainLog(fx.root, 'deb-guest', /INIT: Entering runlevel: 2$/m);
    await waitMainLog(fx.root, 'deb-guest', /concurrent boot in runlevel 2\.$/m); // /etc/init.d/rc ran the runlevel's scripts
    const run = await fx.rt.execCapture('deb-guest', ['sh', '-c', 'test -p /run/initctl && echo initctl; cat /proc/1/comm'], {
      timeoutMs: 30_000,
    });
    expect(run.stdout).toBe('initctl\ninit\n');
    const t0 = Date.now();
    await fx.rt.stop('deb-guest', { timeoutMs: 60_000 });
    const took = Date.now() - t0;
    expect(fx.rt.status('deb-guest').state).toBe('stopped');
    // the reboot runlevel's scripts ran to their end (Debian's /etc/init.d/reboot says this), before the timeout
    expect(mainLog(fx.root, 'deb-guest')).toMatch(/Will now restart\.$/m);
    expect(took).toBeLessThan(60_000);
  }, 300_000);
});
