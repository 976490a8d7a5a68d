// A context's main process on the real kernel (docs/services.md): run at
// start by its pid 1 with no exec, its output in the host-side log, its exit
// recorded, restarted as the policy says, and still running when the
// monitor that forked it is killed. An imported image's Cmd is the default
// main process; its service answers on the context's address.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { openImageStore } from '../../src/runtime/open.js';
import type { ContextStatus, Runtime } from '../../src/runtime/runtime.js';
import { describeReal, PAENE, runCli } from '../helpers.js';
import { mainLog, useRuntime, waitMainLog } from '../fixture.js';
import { dockerTar } from '../image/ocihelp.js';
import { collect, streamOf } from '../image/tarhelp.js';

type Main = NonNullable<ContextStatus['main']>;

/** Polls the context's main-process status until `ok` holds (generous: a loaded machine is slow, never wrong). */
async function waitMain(rt: Runtime, name: string, ok: (m: Main) => boolean, ms = 20_000): Promise<Main> {
  const end = Date.now() + ms;
  let last: Main | undefined;
  while (Date.now() < end) {
    last = rt.status(name).main;
    if (last && ok(last)) return last;
    await sleep(50);
  }
  throw new Error(`main process of ${name} never got there; last: ${JSON.stringify(last)}`);
}

function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => s.write('GET / HTTP/1.0\r\n\r\n'));
    let data = '';
    s.setTimeout(10_000, () => s.destroy(new Error('timeout')));
    s.on('data', (d) => (data += d.toString()));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

/**
 * GET / of a context's service: from the host on its own address (the shared model), else (a kernel
 * without the shared model's walls gives contexts --net none) from inside, with nc.
 */
async function serviceAnswer(rt: Runtime, name: string, port: number): Promise<string> {
  const net = rt.config(name).net;
  if (net.mode === 'shared' && net.addresses[0]) return httpGet(net.addresses[0], port).catch(() => '');
  const r = await rt.execCapture(name, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 ${port}`], { timeoutMs: 20_000 });
  return r.stdout;
}

describeReal('a context runs its guest services', () => {
  const fx = useRuntime('svc', undefined, { setup: 240_000 });

  it('runs the command at start with no exec; its stdout and stderr are in the log; an exit is recorded', async () => {
    await fx.rt.create({ name: 'svc-once', image: 'base', main: { argv: ['sh', '-c', 'echo out-line; echo err-line >&2; exit 3'] } });
    await fx.rt.start('svc-once');
    const m = await waitMain(fx.rt, 'svc-once', (x) => x.state === 'exited');
    expect(m.code).toBe(3);
    expect(m.restarts).toBe(0);
    const log = await waitMainLog(fx.root, 'svc-once', /err-line/);
    expect(log).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout F out-line$/m);
    expect(log).toMatch(/ stderr F err-line$/m);
    // the context runs on (its init), as a vserver does: exec still works
    expect((await fx.rt.execCapture('svc-once', ['echo', 'still-here'], { timeoutMs: 20_000 })).stdout).toBe('still-here\n');
    await fx.rt.stop('svc-once');
  }, 240_000);

  it('--restart always: a main process killed from inside comes back; the restarts are counted', async () => {
    await fx.rt.create({ name: 'svc-always', image: 'base', main: { argv: ['sleep', '1000'] }, restart: { mode: 'always' } });
    await fx.rt.start('svc-always');
    const first = await waitMain(fx.rt, 'svc-always', (x) => x.state === 'running');
    const r = await fx.rt.execCapture('svc-always', ['kill', '-9', String(first.pid)], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    const back = await waitMain(fx.rt, 'svc-always', (x) => x.state === 'running' && x.restarts === 1);
    expect(back.pid).not.toBe(first.pid);
    // paene kill signals the main process, not the init: the context stays up and the policy restarts it
    fx.rt.kill('svc-always', 'SIGKILL');
    await waitMain(fx.rt, 'svc-always', (x) => x.state === 'running' && x.restarts === 2);
    expect(fx.rt.status('svc-always').state).toBe('running');
    await fx.rt.stop('svc-always');
    const after = fx.rt.status('svc-always').main;
    expect(after?.state === 'killed' || after?.state === 'stopped').toBe(true);
  });

  it('--restart on-failure:3 gives up after 3 restarts and says so', async () => {
    await fx.rt.create({
      name: 'svc-fail',
      image: 'base',
      main: { argv: ['sh', '-c', 'echo try; exit 7'] },
      restart: { mode: 'on-failure', maxRestarts: 3 },
    });
    await fx.rt.start('svc-fail');
    const m = await waitMain(fx.rt, 'svc-fail', (x) => x.state === 'gave-up');
    expect(m.restarts).toBe(3);
    expect(m.code).toBe(7);
    expect(mainLog(fx.root, 'svc-fail').match(/stdout F try$/gm)?.length).toBe(4);
    await fx.rt.stop('svc-fail');
  });

  it('runs as the user named in the guest, and a command that cannot run is reported, not retried silently', async () => {
    await fx.rt.create({ name: 'svc-user', image: 'base', main: { argv: ['id', '-u'], user: 'nobody' } });
    await fx.rt.create({ name: 'svc-missing', image: 'base', main: { argv: ['no-such-program'] } });
    await fx.rt.start('svc-user');
    await fx.rt.start('svc-missing');
    await waitMainLog(fx.root, 'svc-user', /stdout F 65534$/m);
    const m = await waitMain(fx.rt, 'svc-missing', (x) => x.state === 'failed');
    expect(m.error).toBe('ENOENT');
    expect(m.code).toBe(127);
    await fx.rt.stop('svc-user');
    await fx.rt.stop('svc-missing');
  });

  it('killing the monitor stops no main process and loses no line written before', async () => {
    await fx.rt.create({
      name: 'svc-mon',
      image: 'base',
      main: { argv: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.1; done'] },
    });
    await fx.rt.start('svc-mon');
    const m = await waitMain(fx.rt, 'svc-mon', (x) => x.state === 'running');
    await waitMainLog(fx.root, 'svc-mon', /tick 3$/m);
    const monitor = Number(await fx.rt.monitor.request(['ping']));
    expect(monitor).toBeGreaterThan(1);
    process.kill(monitor, 'SIGKILL');
    const before = mainLog(fx.root, 'svc-mon').match(/tick (\d+)$/gm)?.length ?? 0;
    await waitMainLog(fx.root, 'svc-mon', new RegExp(`tick ${before + 5}$`, 'm'));
    const now = fx.rt.status('svc-mon').main;
    expect(now?.state).toBe('running');
    expect(now?.pid).toBe(m.pid);
    // every line, in order, none lost
    const ticks = (mainLog(fx.root, 'svc-mon').match(/tick (\d+)$/gm) ?? []).map((l) => Number(l.split(' ')[1]));
    expect(ticks).toEqual(ticks.map((_, i) => i + 1));
    await fx.rt.stop('svc-mon');
  });

  it("an image's Cmd is the main process: its httpd answers on the context's address right after start", async () => {
    const store = openImageStore(fx.root);
    const baseTar = await collect((out) => store.exportTar('base', out));
    const archive = await dockerTar({
      layers: [
        { entries: [], raw: baseTar, compression: 'gzip' },
        {
          compression: 'gzip',
          entries: [
            { name: 'www/', type: 'directory', mode: 0o755 },
            { name: 'www/index.html', body: 'served-by-main\n' },
          ],
        },
      ],
      config: { Cmd: ['httpd', '-f', '-v', '-p', '8080', '-h', '/www'], Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'] },
    });
    await store.importTar(streamOf(archive), 'svc-httpd-img');
    await fx.rt.create({ name: 'svc-web', image: 'svc-httpd-img', restart: { mode: 'always' } });
    await fx.rt.start('svc-web');
    await waitMain(fx.rt, 'svc-web', (x) => x.state === 'running');
    let body = '';
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      body = await serviceAnswer(fx.rt, 'svc-web', 8080);
      if (body.includes('served-by-main')) break;
      await sleep(100);
    }
    expect(body).toContain('served-by-main');
    // the CLI shows it, in the table and as JSON
    const st = runCli(fx.root, ['status', 'svc-web', '--json']);
    expect(st.code).toBe(0);
    const json = JSON.parse(st.stdout) as { main: Main };
    expect(json.main.argv).toEqual(['httpd', '-f', '-v', '-p', '8080', '-h', '/www']);
    expect(json.main.state).toBe('running');
    expect(fs.existsSync(PAENE)).toBe(true);
    await fx.rt.stop('svc-web');
  });

  it("--init guest: busybox init boots from the guest's inittab, its console is in the log, and stop shuts it down the way it expects", async () => {
    await fx.rt.create({ name: 'svc-guest', image: 'base', init: { kind: 'guest', path: '/sbin/init' } });
    expect(fx.rt.config('svc-guest').init).toEqual({ kind: 'guest', path: '/sbin/init', flavor: 'busybox' });
    // the guest's own boot configuration, in its private layer
    const upper = path.join(fx.root, 'contexts', 'svc-guest', 'layer', 'upper');
    fs.mkdirSync(path.join(upper, 'etc/init.d'), { recursive: true });
    fs.mkdirSync(path.join(upper, 'www'), { recursive: true });
    fs.writeFileSync(
      path.join(upper, 'etc/inittab'),
      '::sysinit:/etc/init.d/rcS\n::respawn:/usr/sbin/httpd -f -p 8081 -h /www\n::shutdown:/bin/sh -c "echo guest-shutdown-ran > /dev/console"\n',
    );
    fs.writeFileSync(
      path.join(upper, 'etc/init.d/rcS'),
      '#!/bin/sh\necho rcS-ran > /dev/console\ntouch /run/booted && echo run-is-writable\n',
      { mode: 0o755 },
    );
    fs.writeFileSync(path.join(upper, 'www/index.html'), 'guest-init-service\n');
    await fx.rt.start('svc-guest');
    await waitMainLog(fx.root, 'svc-guest', /console F rcS-ran$/m);
    await waitMainLog(fx.root, 'svc-guest', /console F run-is-writable$/m);
    let body = '';
    const end = Date.now() + 20_000;
    while (Date.now() < end && !body.includes('guest-init-service')) {
      body = await serviceAnswer(fx.rt, 'svc-guest', 8081);
      if (!body) await sleep(100);
    }
    expect(body).toContain('guest-init-service');
    expect(fx.rt.ps('svc-guest').find((p) => p.innerPid === 1)?.command).toBe('init');
    // its shutdown actions run, then its own poweroff ends the context (reboot(2) ends only its pid namespace)
    const t0 = Date.now();
    await fx.rt.stop('svc-guest', { timeoutMs: 30_000 });
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(mainLog(fx.root, 'svc-guest')).toMatch(/guest-shutdown-ran$/m);
    expect(mainLog(fx.root, 'svc-guest')).toMatch(/Requesting system poweroff$/m);
  });

  it('--init guest refuses what does not boot here, and a guest init takes no main process', async () => {
    await expect(fx.rt.create({ name: 'svc-noinit', image: 'base', init: { kind: 'guest', path: '/no/such/init' } })).rejects.toThrow(
      /has no program at \/no\/such\/init/,
    );
    await expect(fx.rt.create({ name: 'svc-shinit', image: 'base', init: { kind: 'guest', path: '/bin/dash' } })).rejects.toThrow(
      /not an init paene knows how to stop/,
    );
    await expect(
      fx.rt.create({ name: 'svc-both', image: 'base', init: { kind: 'guest', path: '/sbin/init' }, main: { argv: ['true'] } }),
    ).rejects.toThrow(/give it no main process/);
    expect(fx.rt.store.names().filter((n) => ['svc-noinit', 'svc-shinit', 'svc-both'].includes(n))).toEqual([]);
  });

  it('paene autostart starts the marked contexts in order groups, each service answering, and leaves a user-stopped unless-stopped one down', async () => {
    const svc = ['--cmd', 'httpd -f -p 8082 -h /etc'];
    for (const [args, n] of [
      [['--autostart', '1', '--count', '6', 'auto-a%d'], 6],
      [['--autostart', '2', '--count', '6', 'auto-b%d'], 6],
      [['--restart', 'unless-stopped', 'auto-u1'], 1],
      [['--restart', 'unless-stopped', 'auto-u2'], 1],
    ] as const) {
      const r = runCli(fx.root, ['create', ...args, ...svc]);
      expect(r.code, r.stderr).toBe(0);
      expect(n).toBeGreaterThan(0);
    }
    // auto-u2 ran once and a user stopped it: unless-stopped keeps it down at the next boot
    expect(runCli(fx.root, ['start', 'auto-u2']).code).toBe(0);
    expect(runCli(fx.root, ['stop', 'auto-u2']).code).toBe(0);
    const r = runCli(fx.root, ['autostart', '--json'], { timeout: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    const started = fx.rt
      .list()
      .filter((c) => c.name.startsWith('auto-') && c.state === 'running')
      .map((c) => c.name);
    expect(started.sort()).toEqual(
      [
        ...Array.from({ length: 6 }, (_, i) => `auto-a${i + 1}`),
        ...Array.from({ length: 6 }, (_, i) => `auto-b${i + 1}`),
        'auto-u1',
      ].sort(),
    );
    // each one's service answers on its own address, with no exec
    for (const name of started) {
      await waitMain(fx.rt, name, (m) => m.state === 'running');
      let body = '';
      for (let i = 0; i < 200 && !body.startsWith('HTTP/'); i++) {
        body = await serviceAnswer(fx.rt, name, 8082);
        if (!body.startsWith('HTTP/')) await sleep(50);
      }
      expect(body.split('\r\n')[0], name).toMatch(/^HTTP\/1\.[01] \d{3}/); // its httpd answered (404: /etc has no index.html)
    }
    // a group starts only after the one before it has: every b's start is after every a's
    const at = (n: string) => Date.parse(fx.rt.status(n).started ?? '');
    const lastA = Math.max(...started.filter((n) => n.startsWith('auto-a')).map(at));
    const firstB = Math.min(...started.filter((n) => n.startsWith('auto-b')).map(at));
    expect(firstB).toBeGreaterThanOrEqual(lastA);
    expect(runCli(fx.root, ['stop', 'auto-*']).code).toBe(0);
  }, 300_000);
});
