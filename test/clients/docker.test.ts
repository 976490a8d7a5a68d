// Docker 20.10 (Debian's docker.io) drives paene-runc, with runc as the witness:
// a PRIVATE dockerd (own data-root, exec-root, pidfile, socket, config file and
// its own containerd) inside a network namespace this test made, so its bridge,
// iptables rules and docker-proxy live only there. Every case runs with
// `--runtime runc` and `--runtime paene`; a case that passes with runc must pass
// with paene-runc. The image is a busybox rootfs imported with `docker import`.
// The daemons join only the namespace's network (nsenter --net): `ip netns exec`
// would also remount /sys and hide /sys/fs/cgroup from them. Cases named
// "extra:" go beyond the list the suite was asked for. PAENE_CLIENTS_TRACE=DIR
// (all three files) logs every runtime call and keeps each config.json in DIR.

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeReal, tempRoot } from '../helpers.js';
import {
  alive,
  deleteNetns,
  eq,
  fail,
  inNetns,
  Matrix,
  makeBusyboxRootfs,
  makeNetns,
  match,
  matrixCase,
  ok,
  pidsInCgroupTree,
  pidsMentioning,
  type Res,
  type Rt,
  readCg,
  removeCgroupTree,
  rootfsTar,
  runtimePath,
  sh,
  shq,
  shSync,
  sleep,
  stopPid,
  TRACE_DIR,
  underPty,
  unmountUnder,
  until,
  WWW_TEXT,
} from './common.js';

const IMG = 'paene.test/busybox:1';
const DOCKER = '/usr/bin/docker'; // Debian's client (/usr/local/bin may hold another)
const CASE_TIMEOUT = 300_000;

function have(p: string): boolean {
  return shSync(['sh', '-c', `command -v ${p}`]).code === 0;
}

/** The whole-disk block device that holds / (e.g. /dev/vda, 254:0). */
function rootBlockDevice(): { node: string; majMin: string } {
  const dev = fs.statSync('/').dev;
  let majMin = `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
  const sys = fs.realpathSync(`/sys/dev/block/${majMin}`);
  // a partition's parent directory is its disk
  if (fs.existsSync(path.join(sys, 'partition'))) majMin = fs.readFileSync(path.join(path.dirname(sys), 'dev'), 'utf8').trim();
  const name = /DEVNAME=(\S+)/.exec(fs.readFileSync(`/sys/dev/block/${majMin}/uevent`, 'utf8'))?.[1];
  if (!name) throw new Error(`no device node for ${majMin}`);
  return { node: `/dev/${name}`, majMin };
}

describeReal('docker 20.10 drives paene-runc (runc as the witness)', () => {
  const m = new Matrix('docker 20.10');
  const ns = `paene-dk-${process.pid}`;
  const cgParent = `/paene-dk-${process.pid}`;
  let dir = '';
  let sock = '';
  let containerd: ChildProcess | undefined;
  let dockerd: ChildProcess | undefined;
  let runDockerExisted = true;
  // docker's name for the runtime under test; runc is built in ("runc" cannot be redefined)
  const rtName = (rt: Rt) => (rt === 'paene' ? 'paene' : TRACE_DIR ? 'runctrace' : 'runc');

  const dk = (args: string[], opts: { timeout?: number; input?: string } = {}) =>
    sh([DOCKER, '-H', `unix://${sock}`, ...args], {
      timeout: opts.timeout ?? 120_000,
      input: opts.input,
      env: { DOCKER_CONFIG: path.join(dir, 'cli') },
    });
  const dkCmd = (args: string[]) => shq([DOCKER, '-H', `unix://${sock}`, ...args]);

  const run = (rt: Rt, args: string[], cmd: string[], timeout?: number) =>
    dk(['run', '--pull', 'never', '--runtime', rtName(rt), ...args, IMG, ...cmd], { timeout });
  async function detached(rt: Rt, name: string, args: string[], cmd: string[]): Promise<void> {
    await dk(['rm', '-f', name]);
    ok(await run(rt, ['-d', '--name', name, ...args], cmd), `docker run -d ${args.join(' ')}`);
  }
  const inspect = async (name: string, fmt: string) => ok(await dk(['inspect', '-f', fmt, name]), `docker inspect ${fmt}`).stdout.trim();
  const pidOf = async (name: string) => {
    const p = Number(await inspect(name, '{{.State.Pid}}'));
    if (!(p > 0)) fail(`${name} has no pid`);
    return p;
  };
  const removeAll = async (...names: string[]) => {
    await dk(['rm', '-f', ...names], { timeout: 120_000 });
  };

  // a case's runc and paene-runc halves run side by side, except where they share something: here the
  // published host port (one port in the daemons' one network namespace)
  const oneAfterTheOther = new Set(['-p 127.0.0.1:18080:80 (busybox httpd)']);
  const kase = (name: string, fn: (rt: Rt, cname: string) => Promise<void>) =>
    matrixCase(m, it, name, fn, (c) => removeAll(c), CASE_TIMEOUT, oneAfterTheOther.has(name) ? 'one after the other' : 'side by side');

  beforeAll(async () => {
    if (!have('dockerd') || !fs.existsSync(DOCKER)) {
      const r = shSync(['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'docker.io'], 600_000);
      if (r.code !== 0) throw new Error(`apt-get install docker.io failed: ${r.stderr}`);
    }
    runDockerExisted = fs.existsSync('/run/docker');
    dir = tempRoot('docker');
    sock = path.join(dir, 'docker.sock');
    makeNetns(ns);
    // containerd of our own: dockerd would otherwise use a system containerd whose socket exists
    fs.writeFileSync(
      path.join(dir, 'containerd.toml'),
      [
        'version = 2',
        `root = "${dir}/containerd/root"`,
        `state = "${dir}/containerd/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${dir}/containerd.sock"`,
        '[ttrpc]',
        `  address = "${dir}/containerd.sock.ttrpc"`,
      ].join('\n'),
    );
    const runtimes: Record<string, { path: string }> = { paene: { path: runtimePath('paene') } };
    if (TRACE_DIR) runtimes.runctrace = { path: runtimePath('runc') };
    fs.writeFileSync(
      path.join(dir, 'daemon.json'),
      JSON.stringify(
        {
          runtimes,
          'default-runtime': 'runc',
          'cgroup-parent': cgParent,
          'exec-opts': ['native.cgroupdriver=cgroupfs'],
          'storage-driver': 'overlay2',
          'deprecated-key-path': path.join(dir, 'key.json'), // not /etc/docker/key.json
          'log-driver': 'json-file',
          iptables: true,
          ip6tables: false,
        },
        null,
        1,
      ),
    );
    const log = fs.openSync(path.join(dir, 'daemons.log'), 'a');
    const [cprog, ...cargs] = inNetns(ns, ['containerd', '--config', path.join(dir, 'containerd.toml')]) as [string, ...string[]];
    containerd = spawn(cprog, cargs, {
      stdio: ['ignore', log, log],
      env: { ...process.env, PATH: '/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    for (let i = 0; i < 200 && !fs.existsSync(path.join(dir, 'containerd.sock')); i++) await sleep(100);
    const [dprog, ...dargs] = inNetns(ns, [
      'dockerd',
      '--containerd',
      path.join(dir, 'containerd.sock'),
      '--data-root',
      path.join(dir, 'data'),
      '--exec-root',
      path.join(dir, 'exec'),
      '--pidfile',
      path.join(dir, 'docker.pid'),
      '-H',
      `unix://${sock}`,
      '--config-file',
      path.join(dir, 'daemon.json'),
    ]) as [string, ...string[]];
    dockerd = spawn(dprog, dargs, {
      stdio: ['ignore', log, log],
      env: { ...process.env, PATH: '/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    let info: Res | undefined;
    for (let i = 0; i < 120; i++) {
      info = await dk(['info', '--format', '{{json .Runtimes}}'], { timeout: 10_000 });
      if (info.code === 0) break;
      if (!alive(dockerd.pid!)) break;
      await sleep(500);
    }
    if (info?.code !== 0)
      throw new Error(`dockerd did not come up: ${info?.stderr}\n${fs.readFileSync(path.join(dir, 'daemons.log'), 'utf8').slice(-3000)}`);
    expect(info.stdout).toContain('paene');
    const rootfs = makeBusyboxRootfs(path.join(dir, 'rootfs'));
    const tar = rootfsTar(rootfs, path.join(dir, 'rootfs.tar'));
    ok(
      await dk([
        'import',
        '--change',
        'CMD ["/bin/sh"]',
        '--change',
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        tar,
        IMG,
      ]),
      'docker import',
    );
    fs.rmSync(rootfs, { recursive: true, force: true });
  }, 900_000);

  afterAll(async () => {
    try {
      if (dir && dockerd?.pid && alive(dockerd.pid)) {
        const ids = (await dk(['ps', '-aq'], { timeout: 30_000 })).stdout.split('\n').filter(Boolean);
        if (ids.length) await dk(['rm', '-f', ...ids], { timeout: 120_000 });
      }
    } finally {
      await stopPid(dockerd?.pid, 30_000);
      await stopPid(containerd?.pid, 30_000);
      if (dir) {
        // shims, docker-proxy, container processes: ours are the ones naming our temp dir
        for (const p of pidsMentioning(dir)) await stopPid(p, 5_000);
        unmountUnder(dir);
      }
      // anything still in our cgroups was started there by our client
      for (const p of pidsInCgroupTree(cgParent)) await stopPid(p, 5_000);
      const left = removeCgroupTree(cgParent);
      if (left.length) console.warn(`[docker] cgroups left: ${left.join(' ')}`);
      deleteNetns(ns);
      if (!runDockerExisted) {
        // dockerd makes /run/docker/plugins whatever its exec-root
        for (const d of ['/run/docker/plugins', '/run/docker']) {
          try {
            fs.rmdirSync(d);
          } catch {
            /* not empty or absent */
          }
        }
      }
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      console.log('\n' + m.table() + '\n');
    }
  }, 180_000);

  kase('run: output and exit code', async (rt, c) => {
    const r = await run(rt, ['--rm', '--name', c], ['sh', '-c', 'echo hello from $(cat /proc/1/comm); echo to-stderr >&2; exit 3']);
    eq(r.code, 3, `exit code (stderr: ${r.stderr.trim()})`);
    eq(r.stdout, 'hello from sh\n', 'stdout');
    match(r.stderr, /to-stderr/, 'stderr');
  });

  kase('run -it (terminal)', async (rt, c) => {
    const r = await underPty(
      dkCmd(['run', '--pull', 'never', '--runtime', rtName(rt), '--rm', '-it', '--name', c, IMG, 'sh', '-c', 'tty; echo $((6*7)); exit 5']),
      { env: { DOCKER_CONFIG: path.join(dir, 'cli') } },
    );
    eq(r.code, 5, `exit code (${r.stdout.trim()} ${r.stderr.trim()})`);
    match(r.stdout, /\/dev\/pts\/\d+/, 'tty');
    match(r.stdout, /42/, 'output');
  });

  kase('run -d', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    eq(await inspect(c, '{{.State.Status}} {{.State.Running}}'), 'running true', 'state');
    const pid = await pidOf(c);
    eq(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'sleep', 'the init process');
    match(
      ok(await dk(['ps', '--filter', `name=${c}`, '--format', '{{.Names}} {{.Status}}']), 'docker ps').stdout,
      new RegExp(`${c} Up`),
      'docker ps',
    );
  });

  kase('top (runtime ps)', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    match(ok(await dk(['top', c]), 'docker top').stdout, /sleep 1000/, 'docker top');
  });

  kase('exec', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const r = await dk(['exec', c, 'sh', '-c', 'echo in; cat /proc/1/comm; echo err >&2; exit 4']);
    eq(r.code, 4, `exit code (stderr: ${r.stderr.trim()})`);
    eq(r.stdout, 'in\nsleep\n', 'stdout');
    eq(r.stderr, 'err\n', 'stderr');
    const u = ok(
      await dk(['exec', '-u', '1000:1000', '-w', '/tmp', '-e', 'FOO=bar', c, 'sh', '-c', 'echo $(id -u):$(id -g) $PWD $FOO']),
      'docker exec -u',
    );
    eq(u.stdout, '1000:1000 /tmp bar\n', 'exec -u -w -e');
  });

  kase('exec -i (stdin)', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const r = ok(await dk(['exec', '-i', c, 'sh', '-c', 'cat; echo done'], { input: 'line one\nline two\n' }), 'docker exec -i');
    eq(r.stdout, 'line one\nline two\ndone\n', 'stdout');
  });

  kase('exec -it (terminal)', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const r = await underPty(dkCmd(['exec', '-it', c, 'sh', '-c', 'tty; echo $((6*7)); exit 6']), {
      env: { DOCKER_CONFIG: path.join(dir, 'cli') },
    });
    eq(r.code, 6, `exit code (${r.stdout.trim()} ${r.stderr.trim()})`);
    match(r.stdout, /\/dev\/pts\/\d+/, 'tty');
    match(r.stdout, /42/, 'output');
  });

  kase('logs', async (rt, c) => {
    await detached(rt, c, [], ['sh', '-c', 'echo out-line; echo err-line >&2; exec sleep 1000']);
    await until(
      async () => {
        const r = ok(await dk(['logs', c]), 'docker logs');
        return r.stdout === 'out-line\n' && r.stderr === 'err-line\n'
          ? true
          : fail(`stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}`);
      },
      'docker logs',
      30_000,
    );
  });

  kase('stop (SIGTERM reaches the init)', async (rt, c) => {
    await detached(rt, c, [], ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done']);
    ok(await dk(['stop', '-t', '30', c], { timeout: 120_000 }), 'docker stop');
    eq(await inspect(c, '{{.State.Status}} {{.State.ExitCode}}'), 'exited 0', 'state after stop');
  });

  kase('kill (-s USR1, then SIGKILL)', async (rt, c) => {
    await detached(rt, c, [], ['sh', '-c', 'trap "echo got-usr1" USR1; while :; do sleep 1; done']);
    ok(await dk(['kill', '-s', 'USR1', c]), 'docker kill -s USR1');
    await until(async () => /got-usr1/.test((await dk(['logs', c])).stdout), 'USR1 handled', 30_000);
    ok(await dk(['kill', c]), 'docker kill');
    await until(async () => (await inspect(c, '{{.State.Status}}')) === 'exited', 'exited', 30_000);
    eq(await inspect(c, '{{.State.ExitCode}}'), '137', 'exit code');
  });

  kase('restart', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const pid1 = await pidOf(c);
    const started1 = await inspect(c, '{{.State.StartedAt}}');
    ok(await dk(['restart', '-t', '1', c], { timeout: 120_000 }), 'docker restart');
    eq(await inspect(c, '{{.State.Status}}'), 'running', 'state after restart');
    const pid2 = await pidOf(c);
    if (pid2 === pid1 || (await inspect(c, '{{.State.StartedAt}}')) === started1) fail('not restarted: same pid / start time');
    eq(ok(await dk(['exec', c, 'cat', '/proc/1/comm']), 'exec after restart').stdout, 'sleep\n', 'exec after restart');
  });

  kase('pause / unpause', async (rt, c) => {
    // a counter the init advances 5 times a second, read from the host: it stands still while paused. Each value
    // is written beside and renamed over the last: a pause between `>`'s truncation and its write left an empty file
    await detached(
      rt,
      c,
      [],
      ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.2; done'],
    );
    const pid = await pidOf(c);
    const count = () => {
      try {
        return Number(fs.readFileSync(`/proc/${pid}/root/tmp/count`, 'utf8').trim() || 'NaN');
      } catch {
        return NaN;
      }
    };
    await until(async () => count() > 0, 'the counter runs', 30_000);
    ok(await dk(['pause', c]), 'docker pause');
    eq(await inspect(c, '{{.State.Status}} {{.State.Paused}}'), 'paused true', 'state after pause');
    const a = count();
    await sleep(1500);
    const b = count();
    if (!(a > 0) || a !== b) fail(`paused, yet the counter went on from ${a} to ${b}`);
    ok(await dk(['unpause', c]), 'docker unpause');
    eq(await inspect(c, '{{.State.Status}} {{.State.Paused}}'), 'running false', 'state after unpause');
    await until(async () => count() > b, 'the counter runs again after unpause', 30_000);
    eq(ok(await dk(['exec', c, 'echo', 'alive']), 'exec after unpause').stdout, 'alive\n', 'exec after unpause');
  });

  kase('limits: --memory 64m --cpus 0.5 --pids-limit 32', async (rt, c) => {
    await detached(rt, c, ['--memory', '64m', '--cpus', '0.5', '--pids-limit', '32'], ['sleep', '1000']);
    const pid = await pidOf(c);
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(64 << 20), 'memory.limit_in_bytes');
    eq(readCg(pid, 'cpu', 'cpu.cfs_quota_us'), '50000', 'cpu.cfs_quota_us');
    eq(readCg(pid, 'cpu', 'cpu.cfs_period_us'), '100000', 'cpu.cfs_period_us');
    eq(readCg(pid, 'pids', 'pids.max'), '32', 'pids.max');
    match(readCg(pid, 'memory', 'memory.limit_in_bytes'), /^\d+$/, 'memory cgroup');
    if (!readCg(pid, 'pids', 'cgroup.procs').split('\n').includes(String(pid))) fail('the init is not in its pids cgroup');
  });

  kase('update --cpus 0.5', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const pid = await pidOf(c);
    ok(await dk(['update', '--cpus', '0.5', c]), 'docker update --cpus');
    eq(readCg(pid, 'cpu', 'cpu.cfs_quota_us'), '50000', 'cpu.cfs_quota_us');
    eq(readCg(pid, 'cpu', 'cpu.cfs_period_us'), '100000', 'cpu.cfs_period_us');
  });

  kase('update --memory 128m', async (rt, c) => {
    await detached(rt, c, ['--memory', '64m'], ['sleep', '1000']);
    const pid = await pidOf(c);
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(64 << 20), 'memory.limit_in_bytes before');
    ok(await dk(['update', '--memory', '128m', c]), 'docker update --memory');
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(128 << 20), 'memory.limit_in_bytes after');
    eq(await inspect(c, '{{.HostConfig.Memory}}'), String(128 << 20), 'HostConfig.Memory');
  });

  kase('stats --no-stream', async (rt, c) => {
    await detached(rt, c, ['--memory', '64m'], ['sleep', '1000']);
    const r = ok(await dk(['stats', '--no-stream', '--format', '{{.Name}}|{{.MemUsage}}|{{.PIDs}}', c]), 'docker stats');
    match(r.stdout.trim(), new RegExp(`^${c}\\|[\\d.]+[KMG]?i?B / 64MiB\\|1$`), 'docker stats line');
  });

  kase('-p 127.0.0.1:18080:80 (busybox httpd)', async (rt, c) => {
    await detached(rt, c, ['-p', '127.0.0.1:18080:80'], ['httpd', '-f', '-p', '80', '-h', '/var/www']);
    const body = await until(
      async () => {
        // GNU wget (busybox-static 1.35's -T writes through NULL: Debian builds it without FEATURE_WGET_TIMEOUT)
        const r = await sh(['ip', 'netns', 'exec', ns, 'wget', '-T', '5', '-t', '1', '-qO-', 'http://127.0.0.1:18080/'], {
          timeout: 20_000,
        });
        return r.code === 0 ? r.stdout : fail(`wget: ${r.stderr.trim()}`);
      },
      'http through the published port',
      30_000,
      500,
    );
    eq(body.trim(), WWW_TEXT, 'page');
  });

  kase('--read-only', async (rt, c) => {
    const r = ok(
      await run(rt, ['--rm', '--name', c, '--read-only'], ['sh', '-c', 'touch /x 2>&1 || echo denied; touch /dev/shm/x && echo shm-ok']),
      'docker run --read-only',
    );
    match(r.stdout, /Read-only file system/, 'write to /');
    match(r.stdout, /denied\nshm-ok/, 'write to / denied, /dev/shm writable');
  });

  kase('--tmpfs /run', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--read-only', '--tmpfs', '/run'],
        ['sh', '-c', 'echo x > /run/f && cat /run/f && grep " /run " /proc/mounts'],
      ),
      'docker run --tmpfs',
    );
    match(r.stdout, /^x\ntmpfs \/run tmpfs rw/, '/run is a writable tmpfs');
  });

  kase('--user 1000:1000', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--user', '1000:1000'],
        [
          'sh',
          '-c',
          'echo $(id -u):$(id -g); touch /home/user/f && echo home-ok; touch /root/f 2>/dev/null || echo root-denied; grep CapEff /proc/self/status',
        ],
      ),
      'docker run --user',
    );
    eq(r.stdout, '1000:1000\nhome-ok\nroot-denied\nCapEff:\t0000000000000000\n', 'output');
  });

  kase('--cap-drop ALL --cap-add NET_BIND_SERVICE', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--cap-drop', 'ALL', '--cap-add', 'NET_BIND_SERVICE'],
        ['sh', '-c', 'grep -E "^Cap(Prm|Eff|Bnd)" /proc/self/status; chown 1000 /tmp 2>/dev/null || echo chown-denied'],
      ),
      'docker run --cap-drop',
    );
    eq(r.stdout, 'CapPrm:\t0000000000000400\nCapEff:\t0000000000000400\nCapBnd:\t0000000000000400\nchown-denied\n', 'capabilities');
  });
  // ---- beyond the brief's list: what else `docker run` commonly puts in config.json ----

  kase('extra: --init (docker-init as pid 1)', async (rt, c) => {
    const r = ok(await run(rt, ['--rm', '--name', c, '--init'], ['sh', '-c', 'cat /proc/1/comm; echo $$']), 'docker run --init');
    match(r.stdout, /^docker-init\n\d+\n$/, 'pid 1 is docker-init');
  });

  kase('extra: -v bind mounts (rw and :ro)', async (rt, c) => {
    const host = fs.mkdtempSync(path.join(dir, 'vol-'));
    fs.writeFileSync(path.join(host, 'in'), 'from-host\n');
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '-v', `${host}:/data`, '-v', `${host}:/ro:ro`],
        ['sh', '-c', 'cat /data/in; echo from-ctr > /data/out; touch /ro/x 2>&1 || echo ro-denied'],
      ),
      'docker run -v',
    );
    match(r.stdout, /^from-host\n.*Read-only file system\nro-denied\n$/s, 'output');
    eq(fs.readFileSync(path.join(host, 'out'), 'utf8'), 'from-ctr\n', 'written through the bind mount');
  });

  kase('extra: --network none / --network host', async (rt, c) => {
    const none = ok(
      await run(rt, ['--rm', '--name', c, '--network', 'none'], ['sh', '-c', 'ls /sys/class/net']),
      'docker run --network none',
    );
    eq(none.stdout, 'lo\n', 'interfaces with --network none');
    const host = ok(
      await run(rt, ['--rm', '--name', c, '--network', 'host'], ['sh', '-c', 'ls /sys/class/net']),
      'docker run --network host',
    );
    match(host.stdout, /docker0/, 'the daemon netns interfaces with --network host');
  });

  kase('extra: -e -w --hostname', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '-e', 'FOO=bar baz', '-w', '/tmp/work', '--hostname', 'paene-host'],
        ['sh', '-c', 'echo "$FOO|$PWD|$(hostname)"'],
      ),
      'docker run -e -w --hostname',
    );
    eq(r.stdout, 'bar baz|/tmp/work|paene-host\n', 'env, cwd, hostname');
  });

  // --privileged asks for every capability, and this machine's root lacks CAP_SYS_RESOURCE: runc fails too
  m.dropped.set('extra: --privileged', "every capability is asked for; this machine's root lacks CAP_SYS_RESOURCE, so runc fails too");

  kase('extra: --device /dev/null:/dev/mynull', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--device', '/dev/null:/dev/mynull'],
        ['sh', '-c', 'ls -l /dev/mynull; echo x > /dev/mynull && echo wrote'],
      ),
      'docker run --device',
    );
    match(r.stdout, /^crw-rw-rw-\s+1 root\s+root\s+1,\s+3 .*\/dev\/mynull\nwrote\n$/, 'the device node');
  });

  kase('extra: --ulimit nofile=1024:2048', async (rt, c) => {
    const r = ok(
      await run(rt, ['--rm', '--name', c, '--ulimit', 'nofile=1024:2048'], ['sh', '-c', 'ulimit -Sn; ulimit -Hn']),
      'docker run --ulimit',
    );
    eq(r.stdout, '1024\n2048\n', 'RLIMIT_NOFILE');
  });

  kase('extra: --sysctl net.ipv4.ip_forward=1', async (rt, c) => {
    const r = ok(
      await run(rt, ['--rm', '--name', c, '--sysctl', 'net.ipv4.ip_forward=1'], ['cat', '/proc/sys/net/ipv4/ip_forward']),
      'docker run --sysctl',
    );
    eq(r.stdout, '1\n', 'ip_forward');
  });

  kase('extra: --security-opt no-new-privileges, seccomp default / unconfined', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--security-opt', 'no-new-privileges'],
        ['sh', '-c', 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status'],
      ),
      'docker run no-new-privileges',
    );
    eq(r.stdout, 'NoNewPrivs:\t1\nSeccomp:\t2\n', 'no_new_privs and the default seccomp filter');
    const u = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--security-opt', 'seccomp=unconfined'],
        ['sh', '-c', 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status'],
      ),
      'docker run seccomp=unconfined',
    );
    eq(u.stdout, 'NoNewPrivs:\t0\nSeccomp:\t0\n', 'unconfined');
  });

  kase('extra: the default seccomp profile denies unshare -U', async (rt, c) => {
    // busybox unshare -U: the default profile denies it without CAP_SYS_ADMIN
    const r = await run(rt, ['--rm', '--name', c], ['sh', '-c', 'unshare -U true 2>&1; echo rc=$?']);
    ok(r, 'docker run');
    match(r.stdout, /rc=[1-9]/, 'unshare -U denied');
  });

  kase('extra: --shm-size 16m, --tmpfs /scratch:size=8m,mode=1770', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--shm-size', '16m', '--tmpfs', '/scratch:size=8m,mode=1770'],
        ['sh', '-c', 'grep -E " /dev/shm | /scratch " /proc/mounts; stat -c %a /scratch'],
      ),
      'docker run --shm-size',
    );
    match(r.stdout, /shm \/dev\/shm tmpfs [^ ]*size=16384k/, '/dev/shm size');
    match(r.stdout, /tmpfs \/scratch tmpfs [^ ]*size=8192k/, '/scratch size');
    match(r.stdout, /\n1770\n$/, '/scratch mode');
  });

  kase('extra: --pid host / --ipc host', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--pid', 'host', '--ipc', 'host'],
        ['sh', '-c', 'readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc'],
      ),
      'docker run --pid host',
    );
    eq(r.stdout, `${fs.readlinkSync('/proc/self/ns/pid')}\n${fs.readlinkSync('/proc/self/ns/ipc')}\n`, 'the host pid and ipc namespaces');
  });

  kase('extra: --group-add, --oom-score-adj, --cpuset-cpus, --cpu-shares', async (rt, c) => {
    await detached(
      rt,
      c,
      ['--group-add', '1234', '--oom-score-adj', '500', '--cpuset-cpus', '0', '--cpu-shares', '512'],
      ['sleep', '1000'],
    );
    const pid = await pidOf(c);
    match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /\nGroups:\s+(\d+\s+)*1234\s/, 'supplementary group');
    eq(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim(), '500', 'oom_score_adj');
    eq(readCg(pid, 'cpuset', 'cpuset.cpus'), '0', 'cpuset.cpus');
    eq(readCg(pid, 'cpu', 'cpu.shares'), '512', 'cpu.shares');
  });

  kase('extra: --device-write-bps (the block device under /)', async (rt, c) => {
    const { node, majMin } = rootBlockDevice();
    await detached(rt, c, ['--device-write-bps', `${node}:1mb`], ['sleep', '1000']);
    const pid = await pidOf(c);
    eq(readCg(pid, 'blkio', 'blkio.throttle.write_bps_device'), `${majMin} 1048576`, 'blkio.throttle.write_bps_device');
  });

  kase('extra: --restart on-failure:2', async (rt, c) => {
    await detached(rt, c, ['--restart', 'on-failure:2'], ['sh', '-c', 'sleep 1; exit 1']);
    await until(
      async () => (await inspect(c, '{{.RestartCount}} {{.State.Status}}')) === '2 exited',
      'restarted twice, then exited',
      90_000,
      500,
    );
  });

  kase('extra: --health-cmd (exec every second)', async (rt, c) => {
    await detached(
      rt,
      c,
      ['--health-cmd', 'test -f /tmp/ok', '--health-interval', '1s', '--health-retries', '1'],
      ['sh', '-c', 'touch /tmp/ok; exec sleep 1000'],
    );
    await until(async () => (await inspect(c, '{{.State.Health.Status}}')) === 'healthy', 'healthy', 60_000, 500);
  });

  kase('extra: docker wait / attach', async (rt, c) => {
    await detached(rt, c, [], ['sh', '-c', 'sleep 2; echo done; exit 9']);
    const w = ok(await dk(['wait', c], { timeout: 60_000 }), 'docker wait');
    eq(w.stdout.trim(), '9', 'docker wait');
    const a = await dk(['start', '-a', c], { timeout: 60_000 });
    eq(a.code, 9, `docker start -a exit code (${a.stderr.trim()})`);
    eq(a.stdout, 'done\n', 'docker start -a output');
  });
  kase('extra: a custom seccomp profile (mkdir → EPERM; chmod denied only for mode 0777)', async (rt, c) => {
    const profile = path.join(dir, `seccomp-no-mkdir-${rt}.json`); // one per half: the halves run side by side
    fs.writeFileSync(
      profile,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [
          { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
          { names: ['chmod', 'fchmodat'], action: 'SCMP_ACT_ERRNO', args: [{ index: 1, value: 511, op: 'SCMP_CMP_EQ' }] },
        ],
      }),
    );
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--security-opt', `seccomp=${profile}`],
        ['sh', '-c', 'mkdir /tmp/d 2>&1; touch /tmp/f; chmod 777 /tmp/f 2>&1; chmod 644 /tmp/f && echo chmod-644-ok'],
      ),
      'docker run --security-opt seccomp=PROFILE',
    );
    match(r.stdout, /mkdir: can't create directory '\/tmp\/d': Operation not permitted\n/, 'mkdir denied with EPERM');
    match(r.stdout, /chmod: \/tmp\/f: .*\nchmod-644-ok\n$/, 'chmod 0777 denied by its argument, 0644 allowed');
  });

  kase('extra: --network/--ipc/--pid container:X (a sidecar joins a running container)', async (rt, c) => {
    await detached(rt, c, ['--ipc', 'shareable'], ['sh', '-c', 'echo main > /dev/shm/note; exec sleep 1000']);
    const pid = await pidOf(c);
    const side = `${c}-side`;
    try {
      await detached(rt, side, ['--network', `container:${c}`, '--ipc', `container:${c}`, '--pid', `container:${c}`], ['sleep', '1000']);
      const spid = await pidOf(side);
      for (const n of ['net', 'ipc', 'pid'])
        eq(fs.readlinkSync(`/proc/${spid}/ns/${n}`), fs.readlinkSync(`/proc/${pid}/ns/${n}`), `the ${n} namespace`);
      const r = ok(await dk(['exec', side, 'sh', '-c', 'cat /dev/shm/note; cat /proc/1/cmdline | tr "\\0" " "']), 'exec in the sidecar');
      eq(r.stdout, 'main\nsleep 1000 ', 'the sidecar sees the main container');
    } finally {
      await removeAll(side);
    }
  });

  kase('extra: --cgroupns private (the container sees its own cgroups at /)', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--cgroupns', 'private', '--memory', '64m'],
        ['sh', '-c', 'grep :memory: /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes'],
      ),
      'docker run --cgroupns private',
    );
    match(r.stdout, /^\d+:memory:\/\n67108864\n$/, 'own memory cgroup at the root, its limit');
  });

  kase('extra: --device-cgroup-rule, --memory-reservation', async (rt, c) => {
    await detached(rt, c, ['--device-cgroup-rule', 'c 1:9 rwm', '--memory-reservation', '32m'], ['sleep', '1000']);
    const pid = await pidOf(c);
    match(readCg(pid, 'devices', 'devices.list'), /^c 1:9 rwm$/m, 'devices.list');
    eq(readCg(pid, 'memory', 'memory.soft_limit_in_bytes'), String(32 << 20), 'memory.soft_limit_in_bytes');
  });
  kase('extra: mount targets missing from the image (--tmpfs /not/there, -v through the /var/run → /run symlink)', async (rt, c) => {
    const host = fs.mkdtempSync(path.join(dir, 'vol-'));
    fs.writeFileSync(path.join(host, 'f'), 'through-symlink\n');
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--tmpfs', '/not/there', '-v', `${host}:/var/run/app`],
        ['sh', '-c', 'grep -E " /not/there | /run/app " /proc/mounts | cut -d" " -f2; cat /run/app/f'],
      ),
      'docker run',
    );
    eq(r.stdout, '/not/there\n/run/app\nthrough-symlink\n', 'mount points made inside the root, the symlink resolved in it');
  });

  kase('extra: 8 concurrent docker exec', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const rs = await Promise.all(
      [...Array(8).keys()].map((i) => dk(['exec', c, 'sh', '-c', `echo exec-${i}; exit ${i}`], { timeout: 180_000 })),
    );
    rs.forEach((r, i) => {
      eq(`${r.code} ${r.stdout.trim()}`, `${i} exec-${i}`, `exec ${i} (stderr: ${r.stderr.trim()})`);
    });
  });

  kase('extra: 4 containers started at once', async (rt, c) => {
    const names = [0, 1, 2, 3].map((i) => `${c}-${i}`);
    try {
      const rs = await Promise.all(names.map((n) => run(rt, ['--rm', '--name', n], ['sh', '-c', `echo ${n}`], 180_000)));
      rs.forEach((r, i) => {
        eq(`${r.code} ${r.stdout.trim()}`, `0 ${names[i]}`, `container ${i} (stderr: ${r.stderr.trim()})`);
      });
    } finally {
      await removeAll(...names);
    }
  });
  kase('extra: run -it: /dev/console is the terminal', async (rt, c) => {
    const r = await underPty(
      dkCmd([
        'run',
        '--pull',
        'never',
        '--runtime',
        rtName(rt),
        '--rm',
        '-it',
        '--name',
        c,
        IMG,
        'sh',
        '-c',
        'ls -l /dev/console | cut -c1-10',
      ]),
      { env: { DOCKER_CONFIG: path.join(dir, 'cli') } },
    );
    eq(r.code, 0, `exit code (${r.stdout.trim()} ${r.stderr.trim()})`);
    match(r.stdout, /crw--w----|crw-------|crw-rw-rw-/, '/dev/console a character device');
  });
  kase('extra: HOME from the image /etc/passwd (docker sends none; runc sets it)', async (rt, c) => {
    const r = ok(await run(rt, ['--rm', '--name', c], ['sh', '-c', 'echo "HOME=$HOME"']), 'docker run');
    const u = ok(await run(rt, ['--rm', '--name', c, '--user', '1000'], ['sh', '-c', 'echo "HOME=$HOME"']), 'docker run --user 1000');
    eq([r.stdout, u.stdout], ['HOME=/root\n', 'HOME=/home/user\n'], 'HOME of root and of uid 1000');
  });
});
