// `paene demo`: two contexts side by side, showing what isolates them.
// It builds the base image if needed and removes everything it made.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { nativePath } from '../kernel/helper.js';
import type { ContextStatus, Runtime } from '../runtime/runtime.js';
import { readLog } from '../runtime/logs.js';
import { runtimeOf } from './common.js';
import { DEFAULT_IMAGE } from '../image/store.js';

const NAMES = ['demo-alpha', 'demo-beta'] as const;
/** the third context: a service, its httpd the main process */
const SERVICE = 'demo-gamma';
const SERVICE_PORT = 8080;
const IPC_KEY = '0x5eed';

function indent(text: string, by = '    '): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => (by + l).trimEnd())
    .join('\n');
}

async function sh(rt: Runtime, name: string, script: string, input?: Buffer): Promise<string> {
  const r = await rt.execCapture(name, ['/bin/sh', '-c', script], { input, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`in ${name}: '${script}' failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export async function runDemo(rt: Runtime, log: (s: string) => void): Promise<void> {
  const step = (n: number, s: string) => log(`\n[${n}/7] ${s}`);
  log('paene demo: two contexts on one kernel');
  for (const n of [...NAMES, SERVICE]) {
    if (rt.store.exists(n)) {
      log(`  (removing '${n}' left by an earlier demo)`);
      await rt.destroy(n, { force: true });
    }
  }
  try {
    step(1, 'create and start two contexts (the base image is built on first use)');
    const t0 = performance.now();
    await rt.create({ name: NAMES[0], image: DEFAULT_IMAGE, hostname: 'alpha' });
    await rt.create({ name: NAMES[1], image: DEFAULT_IMAGE, hostname: 'beta' });
    const t1 = performance.now();
    for (const n of NAMES) await rt.start(n);
    const t2 = performance.now();
    log(`  created in ${(t1 - t0).toFixed(0)} ms, started in ${(t2 - t1).toFixed(0)} ms`);
    for (const n of NAMES) {
      const s = rt.status(n);
      log(`  ${n}: xid ${s.xid}, init is host pid ${s.pid}, cgroup ${s.cgroup}`);
    }

    step(2, 'process hiding: each context sees only its own processes; its init is pid 1');
    for (const n of NAMES) {
      await sh(rt, n, 'sleep 300 >/dev/null 2>&1 &');
      log(`  ps inside ${n}:`);
      log(indent(await sh(rt, n, 'ps -o pid,comm')));
    }
    const spectator = rt.psAll().filter((p) => p.context);
    log(
      `  the host sees both (paene ps --all, context rows): ${spectator.map((p) => `${p.context}:${p.innerPid}=host ${p.pid}`).join(', ')}`,
    );

    step(3, 'hostnames: each context has its own UTS namespace');
    for (const n of NAMES) log(`  hostname in ${n}: ${(await sh(rt, n, 'hostname')).trim()}`);
    log(`  hostname on the host: ${os.hostname()}`);

    step(4, `System V IPC: both contexts create shm, a semaphore set and a queue with the same key ${IPC_KEY}`);
    const tool = fs.readFileSync(nativePath('sysv-ipc'));
    for (const n of NAMES) {
      await sh(rt, n, 'cat > /tmp/sysv-ipc && chmod 755 /tmp/sysv-ipc', tool);
      log(`  ${n}: ${(await sh(rt, n, `/tmp/sysv-ipc create ${IPC_KEY} hello-from-${n}`)).trim()}`);
    }
    for (const n of NAMES) {
      log(`  ${n}: ${(await sh(rt, n, `/tmp/sysv-ipc read ${IPC_KEY}`)).trim()}`);
      const segs = (await sh(rt, n, 'ipcs -m')).split('\n').filter((l) => /^0x/.test(l));
      log(`  ${n}: ipcs -m lists ${segs.length} segment(s): ${segs.map((l) => l.split(/\s+/)[0]).join(' ')}`);
    }

    step(5, 'files: a copy-on-write root over one shared image');
    await sh(rt, NAMES[0], 'echo "written in alpha" > /etc/motd');
    log(`  alpha wrote /etc/motd: ${(await sh(rt, NAMES[0], 'cat /etc/motd')).trim()}`);
    log(
      `  beta reads /etc/motd: ${(await sh(rt, NAMES[1], 'cat /etc/motd 2>/dev/null || echo "(no such file: the write stayed in alpha)"')).trim()}`,
    );
    const upper = path.join(rt.layout.upperDir(NAMES[0]), 'etc/motd');
    log(`  on the host the write is in alpha's private layer: ${upper} (${fs.existsSync(upper) ? 'present' : 'missing'})`);
    const ino = async (n: string) => (await sh(rt, n, 'stat -c %i /bin/busybox 2>/dev/null || ls -i /bin/busybox')).trim().split(/\s+/)[0];
    log(`  unmodified /bin/busybox: inode ${await ino(NAMES[0])} in alpha, ${await ino(NAMES[1])} in beta (one file in the image store)`);

    step(6, "the host tree is out of reach: the context's mount namespace holds its own tree and nothing of the host's");
    log(
      indent(
        await sh(
          rt,
          NAMES[0],
          'echo "/ holds: $(ls / | tr "\\n" " ")"; echo "pid 1 is: $(tr "\\0" " " < /proc/1/cmdline)"; echo "processes visible: $(ls /proc | grep -c "^[0-9]")"',
        ),
      ),
    );

    step(7, `a service: ${SERVICE} runs busybox httpd as its main process, kept by its init, with no exec`);
    await rt.create({
      name: SERVICE,
      image: DEFAULT_IMAGE,
      main: {
        argv: [
          '/bin/sh',
          '-c',
          `echo "hello from ${SERVICE}'s main process" > /www/index.html && exec httpd -f -v -p ${SERVICE_PORT} -h /www`,
        ],
      },
      restart: { mode: 'always' },
    });
    await rt.start(SERVICE);
    const first = await waitMain(rt, (m) => m.state === 'running');
    log(`  main: ${first.argv.join(' ')} (restart ${first.restart}): ${first.state}, pid ${first.pid} inside`);
    log(`  GET / right after start: ${await fetchService(rt)}`);
    await sh(rt, SERVICE, `kill -9 ${first.pid}`);
    const back = await waitMain(rt, (m) => m.state === 'running' && (m.restarts ?? 0) >= 1);
    log(`  killed with kill -9 from inside; back as pid ${back.pid} (restarts: ${back.restarts}); GET /: ${await fetchService(rt)}`);
    const lines: string[] = [];
    for await (const l of readLog(rt.layout.logDir(SERVICE), { tail: 4 })) lines.push(`${l.stream}: ${l.content.toString('utf8')}`);
    log(`  its log on the host (paene logs ${SERVICE} --tail 4), written outside the context:`);
    log(indent(lines.join('\n')));
  } finally {
    log('\ncleaning up');
    for (const n of [...NAMES, SERVICE]) {
      if (rt.store.exists(n)) {
        await rt.destroy(n, { force: true });
        log(`  destroyed ${n}`);
      }
    }
    // The monitor leaves by itself once the root has no running context (other users' contexts keep it).
    await rt.shutdownMonitor();
  }
  log('\ndone: every process, cgroup and private layer the demo made is gone.');
}

type Main = NonNullable<ContextStatus['main']>;

async function waitMain(rt: Runtime, ok: (m: Main) => boolean): Promise<Main> {
  for (let i = 0; i < 300; i++) {
    const m = rt.status(SERVICE).main;
    if (m && ok(m)) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${SERVICE}'s main process did not come up: ${JSON.stringify(rt.status(SERVICE).main)}`);
}

/** GET / of the service: from the host on its own address (shared network), else from inside. */
async function fetchService(rt: Runtime): Promise<string> {
  const addr = rt.config(SERVICE).net.mode === 'shared' ? rt.config(SERVICE).net.addresses[0] : undefined;
  for (let i = 0; i < 100; i++) {
    const body = addr
      ? await httpGet(addr, SERVICE_PORT).catch(() => '')
      : (await rt.execCapture(SERVICE, ['wget', '-qO-', `http://127.0.0.1:${SERVICE_PORT}/`], { timeoutMs: 10_000 })).stdout;
    if (body.trim()) return `${body.trim()}${addr ? ` (from the host, http://${addr}:${SERVICE_PORT}/)` : ' (from inside)'}`;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${SERVICE}'s httpd did not answer`);
}

function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => s.write('GET / HTTP/1.0\r\n\r\n'));
    let data = '';
    s.setTimeout(5_000, () => s.destroy(new Error('timeout')));
    s.on('data', (d) => (data += d.toString()));
    s.on('end', () => resolve(data.split('\r\n\r\n')[1] ?? ''));
    s.on('error', reject);
  });
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'Start two contexts and show their separate processes, hostnames, IPC and files, then a third whose service (its main process) answers with no exec and comes back when killed; then remove them',
    )
    .action(async (_o: unknown, cmd: Command) => {
      await runDemo(runtimeOf(cmd), (s) => console.log(s));
    });
}
