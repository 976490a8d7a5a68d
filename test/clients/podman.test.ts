// Podman 4.3 (Debian's, with conmon) drives paene-runc, with runc as the witness:
// every podman call has its own --root, --runroot, --tmpdir, --volumepath,
// --network-config-dir, cgroupfs, file events and its own containers.conf /
// storage.conf / registries.conf, so nothing is shared with a podman of the
// host. Containers run with --network none, or join a network namespace this
// test made (the httpd case). Every case runs with `--runtime /usr/sbin/runc`
// and `--runtime paene-runc`; a case that passes with runc must pass with
// paene-runc. The image is a busybox rootfs imported with `podman import`.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { describeReal, tempRoot } from '../helpers.js';
import {
  cmdlineOf,
  deleteNetns,
  eq,
  fail,
  hardLimit,
  Matrix,
  makeBusyboxRootfs,
  makeNetns,
  match,
  matrixCase,
  ok,
  pidsInCgroupTree,
  pidsMentioning,
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
  underPty,
  unmountUnder,
  until,
  WWW_TEXT,
} from './common.js';

const IMG = 'localhost/paene.test/busybox:1';
const CASE_TIMEOUT = 300_000;

/** 'PID COMM (parent PPID COMM) in CGROUP: the start of its command line' */
function describePid(pid: number): string {
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const comm = (p: number | string) => read(`/proc/${p}/comm`).trim();
  const ppid = /\nPPid:\s+(\d+)/.exec(read(`/proc/${pid}/status`))?.[1] ?? '?';
  const cg =
    read(`/proc/${pid}/cgroup`)
      .split('\n')
      .find((l) => /:pids:/.test(l))
      ?.split(':')[2] ?? '?';
  return `${pid} ${comm(pid)} (parent ${ppid} ${comm(ppid)}) in ${cg}: ${cmdlineOf(pid).slice(0, 90)}…`;
}

describeReal('podman 4.3 drives paene-runc (runc as the witness)', () => {
  const m = new Matrix('podman 4.3');
  const ns = `paene-pd-${process.pid}`;
  const cgParent = `/paene-pd-${process.pid}`;
  let dir = '';
  let env: NodeJS.ProcessEnv = {};
  let globals: string[] = [];
  let nprocUlimit = '';

  const pm = (args: string[], opts: { timeout?: number; input?: string } = {}) =>
    sh(['podman', ...globals, ...args], { timeout: opts.timeout ?? 120_000, input: opts.input, env });
  // podman calls the runtime without --root (runc: /run/runc, paene-runc: /run/paene-runc, both shared with
  // the host) and passes no --runtime-flag to the cleanup it leaves to conmon: so each runtime is given as a
  // two-line script that execs it with a --root of ours (made in beforeAll)
  const rtBin = (rt: Rt) => path.join(dir, 'rt', rt, rt === 'paene' ? 'paene-runc' : 'runc');
  const pmRt = (rt: Rt, args: string[], opts: { timeout?: number; input?: string } = {}) => pm(['--runtime', rtBin(rt), ...args], opts);
  const pmCmd = (rt: Rt, args: string[]) => shq(['podman', ...globals, '--runtime', rtBin(rt), ...args]);

  const runArgs = (args: string[]) => [
    'run',
    '--pull',
    'never',
    '--cgroup-parent',
    cgParent,
    ...(args.some((a) => a.startsWith('--network')) ? [] : ['--network', 'none']),
    ...args,
  ];
  const run = (rt: Rt, args: string[], cmd: string[], timeout?: number) => pmRt(rt, [...runArgs(args), IMG, ...cmd], { timeout });
  async function detached(rt: Rt, name: string, args: string[], cmd: string[]): Promise<void> {
    ok(await run(rt, ['-d', '--name', name, ...args], cmd), `podman run -d ${args.join(' ')}`);
  }
  const inspect = async (rt: Rt, name: string, fmt: string) =>
    ok(await pmRt(rt, ['inspect', '-f', fmt, name]), `podman inspect ${fmt}`).stdout.trim();
  const pidOf = async (rt: Rt, name: string) => {
    const p = Number(await inspect(rt, name, '{{.State.Pid}}'));
    if (!(p > 0)) fail(`${name} has no pid`);
    return p;
  };
  // the runtime a container was made with is remembered by podman; rm -f runs it
  const removeAll = async (name: string) => {
    await pm(['rm', '-f', '-t', '0', name], { timeout: 120_000 });
  };
  // a case's runc and paene-runc halves run side by side, except where they share something: the port in
  // the test-made netns and our whole cgroup tree (the last case); and the two terminal cases stay as they
  // were when their lost output was traced to conmon (script(1) and conmon's attach socket, 200 runs each)
  const oneAfterTheOther = new Set([
    'httpd in a test-made netns (--network ns:PATH)',
    'run -it (terminal)',
    'extra: run -it: /dev/console is the terminal',
    'extra: no runtime process outlives its containers (our cgroups empty after --rm)',
  ]);
  const kase = (name: string, fn: (rt: Rt, cname: string) => Promise<void>) =>
    matrixCase(m, it, name, fn, (c) => removeAll(c), CASE_TIMEOUT, oneAfterTheOther.has(name) ? 'one after the other' : 'side by side');

  beforeAll(async () => {
    if (shSync(['sh', '-c', 'command -v podman && command -v conmon']).code !== 0) {
      const r = shSync(['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'podman', 'conmon'], 600_000);
      if (r.code !== 0) throw new Error(`apt-get install podman failed: ${r.stderr}`);
    }
    dir = tempRoot('podman');
    makeNetns(ns);
    for (const rt of ['runc', 'paene'] as Rt[]) {
      fs.mkdirSync(path.dirname(rtBin(rt)), { recursive: true });
      fs.writeFileSync(rtBin(rt), `#!/bin/sh\nexec ${shq([runtimePath(rt), '--root', path.join(dir, 'runtime-root', rt)])} "$@"\n`, {
        mode: 0o755,
      });
    }
    // podman asks for RLIMIT_NOFILE/NPROC above this sandbox's hard limits (it has no
    // CAP_SYS_RESOURCE): both runtimes then fail setrlimit, so ask for what the host grants
    const nofile = Math.min(hardLimit('Max open files') ?? 4096, 4096);
    const nproc = Math.min(hardLimit('Max processes') ?? 16384, 16384);
    nprocUlimit = `nproc=${nproc}:${nproc}`;
    fs.writeFileSync(
      path.join(dir, 'containers.conf'),
      [
        '[containers]',
        'log_driver = "k8s-file"',
        `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]`,
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = "${dir}/events.log"`,
        'lock_type = "file"',
        `tmp_dir = "${dir}/tmp"`,
        `volume_path = "${dir}/volumes"`,
        '[network]',
        `network_config_dir = "${dir}/net"`,
      ].join('\n') + '\n',
    );
    fs.writeFileSync(
      path.join(dir, 'storage.conf'),
      ['[storage]', 'driver = "overlay"', `graphroot = "${dir}/root"`, `runroot = "${dir}/run"`].join('\n') + '\n',
    );
    fs.writeFileSync(path.join(dir, 'registries.conf'), 'unqualified-search-registries = []\n');
    env = {
      CONTAINERS_CONF: path.join(dir, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: path.join(dir, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: path.join(dir, 'registries.conf'),
      XDG_RUNTIME_DIR: path.join(dir, 'xdg'),
      XDG_CONFIG_HOME: path.join(dir, 'xdg-config'),
      XDG_DATA_HOME: path.join(dir, 'xdg-data'),
    };
    globals = [
      '--root',
      path.join(dir, 'root'),
      '--runroot',
      path.join(dir, 'run'),
      '--tmpdir',
      path.join(dir, 'tmp'),
      '--volumepath',
      path.join(dir, 'volumes'),
      '--network-config-dir',
      path.join(dir, 'net'),
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'file',
      '--storage-driver',
      'overlay',
    ];
    const rootfs = makeBusyboxRootfs(path.join(dir, 'rootfs'));
    const tar = rootfsTar(rootfs, path.join(dir, 'rootfs.tar'));
    ok(
      await pm(
        [
          'import',
          '--change',
          'CMD ["/bin/sh"]',
          '--change',
          'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          tar,
          IMG,
        ],
        { timeout: 300_000 },
      ),
      'podman import',
    );
    fs.rmSync(rootfs, { recursive: true, force: true });
  }, 900_000);

  afterAll(async () => {
    try {
      if (dir) await pm(['rm', '-af', '-t', '0'], { timeout: 180_000 });
    } finally {
      if (dir) {
        // conmon and anything left of a container: ours are the ones naming our temp dir
        for (const p of pidsMentioning(dir)) await stopPid(p, 5_000);
        unmountUnder(dir);
      }
      // anything still in our cgroups was started there by our client
      for (const p of pidsInCgroupTree(cgParent)) await stopPid(p, 5_000);
      const left = removeCgroupTree(cgParent);
      if (left.length) console.warn(`[podman] cgroups left: ${left.join(' ')}`);
      deleteNetns(ns);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      console.log('\n' + m.table() + '\n');
    }
  }, 240_000);

  kase('run --rm: output and exit code', async (rt, c) => {
    const r = await run(rt, ['--rm', '--name', c], ['sh', '-c', 'echo hello from $(cat /proc/1/comm); echo to-stderr >&2; exit 3']);
    eq(r.code, 3, `exit code (stderr: ${r.stderr.trim()})`);
    eq(r.stdout, 'hello from sh\n', 'stdout');
    match(r.stderr, /to-stderr/, 'stderr');
  });

  kase('run -it (terminal)', async (rt, c) => {
    // a moment before the output: once in CI's second run (loaded) podman printed nothing of a process that
    // wrote at once and exited 5 (the exit code came through); not seen again in 3 loaded runs of the case
    const r = await underPty(
      pmCmd(rt, [...runArgs(['--rm', '-it', '--name', c]), IMG, 'sh', '-c', 'sleep 0.3; tty; echo $((6*7)); exit 5']),
      { env },
    );
    eq(r.code, 5, `exit code (${r.stdout.trim()} ${r.stderr.trim()})`);
    match(r.stdout, /\/dev\/pts\/\d+/, 'tty');
    match(r.stdout, /42/, 'output');
  });

  kase('run -d', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    eq(await inspect(rt, c, '{{.State.Status}} {{.State.Running}}'), 'running true', 'state');
    const pid = await pidOf(rt, c);
    eq(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'sleep', 'the init process');
    match(
      ok(await pmRt(rt, ['ps', '--filter', `name=${c}`, '--format', '{{.Names}} {{.Status}}']), 'podman ps').stdout,
      new RegExp(`${c} Up`),
      'podman ps',
    );
  });

  kase('exec', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const r = await pmRt(rt, ['exec', c, 'sh', '-c', 'echo in; cat /proc/1/comm; echo err >&2; exit 4']);
    eq(r.code, 4, `exit code (stderr: ${r.stderr.trim()})`);
    eq(r.stdout, 'in\nsleep\n', 'stdout');
    eq(r.stderr, 'err\n', 'stderr');
    const u = ok(
      await pmRt(rt, ['exec', '-u', '1000:1000', '-w', '/tmp', '-e', 'FOO=bar', c, 'sh', '-c', 'echo $(id -u):$(id -g) $PWD $FOO']),
      'podman exec -u',
    );
    eq(u.stdout, '1000:1000 /tmp bar\n', 'exec -u -w -e');
  });

  kase('exec -i (stdin)', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const r = ok(await pmRt(rt, ['exec', '-i', c, 'sh', '-c', 'cat; echo done'], { input: 'line one\nline two\n' }), 'podman exec -i');
    eq(r.stdout, 'line one\nline two\ndone\n', 'stdout');
  });

  kase('exec -t (terminal)', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const r = await underPty(pmCmd(rt, ['exec', '-it', c, 'sh', '-c', 'tty; echo $((6*7)); exit 6']), { env });
    eq(r.code, 6, `exit code (${r.stdout.trim()} ${r.stderr.trim()})`);
    match(r.stdout, /\/dev\/pts\/\d+/, 'tty');
    match(r.stdout, /42/, 'output');
  });

  kase('logs', async (rt, c) => {
    await detached(rt, c, [], ['sh', '-c', 'echo out-line; echo err-line >&2; exec sleep 1000']);
    await until(
      async () => {
        const r = ok(await pmRt(rt, ['logs', c]), 'podman logs');
        return r.stdout === 'out-line\n' && r.stderr === 'err-line\n'
          ? true
          : fail(`stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}`);
      },
      'podman logs',
      30_000,
    );
  });

  kase('stop (SIGTERM reaches the init)', async (rt, c) => {
    await detached(rt, c, [], ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done']);
    ok(await pmRt(rt, ['stop', '-t', '30', c], { timeout: 120_000 }), 'podman stop');
    eq(await inspect(rt, c, '{{.State.Status}} {{.State.ExitCode}}'), 'exited 0', 'state after stop');
  });

  kase('kill (-s USR1, then SIGKILL)', async (rt, c) => {
    await detached(rt, c, [], ['sh', '-c', 'trap "echo got-usr1" USR1; while :; do sleep 1; done']);
    ok(await pmRt(rt, ['kill', '-s', 'USR1', c]), 'podman kill -s USR1');
    await until(async () => /got-usr1/.test((await pmRt(rt, ['logs', c])).stdout), 'USR1 handled', 30_000);
    ok(await pmRt(rt, ['kill', c]), 'podman kill');
    await until(async () => (await inspect(rt, c, '{{.State.Status}}')) === 'exited', 'exited', 30_000);
    eq(await inspect(rt, c, '{{.State.ExitCode}}'), '137', 'exit code');
  });

  kase('restart', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const pid1 = await pidOf(rt, c);
    ok(await pmRt(rt, ['restart', '-t', '1', c], { timeout: 120_000 }), 'podman restart');
    eq(await inspect(rt, c, '{{.State.Status}}'), 'running', 'state after restart');
    if ((await pidOf(rt, c)) === pid1) fail('not restarted: same pid');
    eq(ok(await pmRt(rt, ['exec', c, 'cat', '/proc/1/comm']), 'exec after restart').stdout, 'sleep\n', 'exec after restart');
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
    const pid = await pidOf(rt, c);
    const count = () => {
      try {
        return Number(fs.readFileSync(`/proc/${pid}/root/tmp/count`, 'utf8').trim() || 'NaN');
      } catch {
        return NaN;
      }
    };
    await until(async () => count() > 0, 'the counter runs', 30_000);
    ok(await pmRt(rt, ['pause', c]), 'podman pause');
    eq(await inspect(rt, c, '{{.State.Status}} {{.State.Paused}}'), 'paused true', 'state after pause');
    const a = count();
    await sleep(1500);
    const b = count();
    if (!(a > 0) || a !== b) fail(`paused, yet the counter went on from ${a} to ${b}`);
    ok(await pmRt(rt, ['unpause', c]), 'podman unpause');
    eq(await inspect(rt, c, '{{.State.Status}} {{.State.Paused}}'), 'running false', 'state after unpause');
    await until(async () => count() > b, 'the counter runs again after unpause', 30_000);
    eq(ok(await pmRt(rt, ['exec', c, 'echo', 'alive']), 'exec after unpause').stdout, 'alive\n', 'exec after unpause');
  });

  kase('limits: --memory 64m --cpus 0.5 --pids-limit 32', async (rt, c) => {
    await detached(rt, c, ['--memory', '64m', '--cpus', '0.5', '--pids-limit', '32'], ['sleep', '1000']);
    const pid = await pidOf(rt, c);
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(64 << 20), 'memory.limit_in_bytes');
    eq(readCg(pid, 'cpu', 'cpu.cfs_quota_us'), '50000', 'cpu.cfs_quota_us');
    eq(readCg(pid, 'cpu', 'cpu.cfs_period_us'), '100000', 'cpu.cfs_period_us');
    eq(readCg(pid, 'pids', 'pids.max'), '32', 'pids.max');
  });

  kase('update --cpus 0.5', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    const pid = await pidOf(rt, c);
    ok(await pmRt(rt, ['update', '--cpus', '0.5', c]), 'podman update --cpus');
    eq(readCg(pid, 'cpu', 'cpu.cfs_quota_us'), '50000', 'cpu.cfs_quota_us');
    eq(readCg(pid, 'cpu', 'cpu.cfs_period_us'), '100000', 'cpu.cfs_period_us');
  });

  kase('update --memory 128m', async (rt, c) => {
    await detached(rt, c, ['--memory', '64m'], ['sleep', '1000']);
    const pid = await pidOf(rt, c);
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(64 << 20), 'memory.limit_in_bytes before');
    ok(await pmRt(rt, ['update', '--memory', '128m', c]), 'podman update --memory');
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(128 << 20), 'memory.limit_in_bytes after');
  });

  kase('stats --no-stream', async (rt, c) => {
    await detached(rt, c, ['--memory', '64m'], ['sleep', '1000']);
    const r = ok(await pmRt(rt, ['stats', '--no-stream', '--format', '{{.Name}}|{{.MemUsage}}|{{.PIDs}}', c]), 'podman stats');
    match(r.stdout.trim(), new RegExp(`^${c}\\|[\\d.]+[kKMG]?i?B / 67.11MB\\|1$`), 'podman stats line');
  });

  kase('httpd in a test-made netns (--network ns:PATH)', async (rt, c) => {
    await detached(rt, c, ['--network', `ns:/run/netns/${ns}`], ['httpd', '-f', '-p', '127.0.0.1:18080', '-h', '/var/www']);
    const body = await until(
      async () => {
        const r = await sh(['ip', 'netns', 'exec', ns, 'wget', '-T', '5', '-t', '1', '-qO-', 'http://127.0.0.1:18080/'], {
          timeout: 20_000,
        });
        return r.code === 0 ? r.stdout : fail(`wget: ${r.stderr.trim()}`);
      },
      'http in the netns',
      30_000,
      500,
    );
    eq(body.trim(), WWW_TEXT, 'page');
  });

  kase('--read-only', async (rt, c) => {
    const r = ok(
      await run(rt, ['--rm', '--name', c, '--read-only'], ['sh', '-c', 'touch /x 2>&1 || echo denied; touch /dev/shm/x && echo shm-ok']),
      'podman run --read-only',
    );
    match(r.stdout, /Read-only file system/, 'write to /');
    match(r.stdout, /denied\nshm-ok/, 'write to / denied, /dev/shm writable');
  });

  kase('--tmpfs /run', async (rt, c) => {
    const r = ok(
      await run(rt, ['--rm', '--name', c, '--tmpfs', '/run'], ['sh', '-c', 'echo x > /run/f && cat /run/f && grep " /run " /proc/mounts']),
      'podman run --tmpfs',
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
      'podman run --user',
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
      'podman run --cap-drop',
    );
    eq(r.stdout, 'CapPrm:\t0000000000000400\nCapEff:\t0000000000000400\nCapBnd:\t0000000000000400\nchown-denied\n', 'capabilities');
  });
  // ---- beyond the brief's list: what else `podman run` commonly puts in config.json ----

  kase('extra: --init (catatonit as pid 1)', async (rt, c) => {
    const r = ok(await run(rt, ['--rm', '--name', c, '--init'], ['sh', '-c', 'cat /proc/1/comm']), 'podman run --init');
    eq(r.stdout, 'podman-init\n', 'pid 1 (catatonit, bound in as /run/podman-init)');
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
      'podman run -v',
    );
    match(r.stdout, /^from-host\n.*Read-only file system\nro-denied\n$/s, 'output');
    eq(fs.readFileSync(path.join(host, 'out'), 'utf8'), 'from-ctr\n', 'written through the bind mount');
  });

  kase('extra: --uidmap/--gidmap (user namespace)', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--uidmap', '0:200000:65536', '--gidmap', '0:200000:65536'],
        ['sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/x && echo tmp-ok'],
      ),
      'podman run --uidmap',
    );
    match(r.stdout, /^\s*0\s+200000\s+65536\n\s*0\s+200000\s+65536\n0\ntmp-ok\n$/, 'maps, root inside, writable /tmp');
  });

  kase('extra: --cgroupns private (cgroup mount)', async (rt, c) => {
    const r = ok(
      await run(
        rt,
        ['--rm', '--name', c, '--cgroupns', 'private', '--memory', '64m'],
        ['sh', '-c', 'cat /proc/self/cgroup | grep memory; cat /sys/fs/cgroup/memory/memory.limit_in_bytes'],
      ),
      'podman run --cgroupns private',
    );
    match(r.stdout, /^\d+:memory:\/\n67108864\n$/, 'own memory cgroup at the root of the namespace, its limit');
  });

  kase('extra: --ulimit, --sysctl, no-new-privileges', async (rt, c) => {
    // a --ulimit replaces default_ulimits: nproc again within this machine's hard limit
    const r = ok(
      await run(
        rt,
        [
          '--rm',
          '--name',
          c,
          '--ulimit',
          'nofile=1024:2048',
          '--ulimit',
          nprocUlimit,
          '--sysctl',
          'net.ipv4.ip_forward=1',
          '--security-opt',
          'no-new-privileges',
        ],
        ['sh', '-c', 'ulimit -Sn; ulimit -Hn; cat /proc/sys/net/ipv4/ip_forward; grep NoNewPrivs /proc/self/status'],
      ),
      'podman run --ulimit --sysctl',
    );
    eq(r.stdout, '1024\n2048\n1\nNoNewPrivs:\t1\n', 'output');
  });

  kase('extra: --pid host, --group-add, --oom-score-adj', async (rt, c) => {
    await detached(rt, c, ['--pid', 'host', '--group-add', '1234', '--oom-score-adj', '500'], ['sleep', '1000']);
    const pid = await pidOf(rt, c);
    eq(fs.readlinkSync(`/proc/${pid}/ns/pid`), fs.readlinkSync('/proc/self/ns/pid'), 'the host pid namespace');
    match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /\nGroups:\s+(\d+\s+)*1234\s/, 'supplementary group');
    eq(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim(), '500', 'oom_score_adj');
  });

  kase('extra: exec -d, top, wait', async (rt, c) => {
    await detached(rt, c, [], ['sleep', '1000']);
    ok(await pmRt(rt, ['exec', '-d', c, 'sh', '-c', 'echo detached > /tmp/d']), 'podman exec -d');
    await until(async () => (await pmRt(rt, ['exec', c, 'cat', '/tmp/d'])).stdout === 'detached\n', 'the detached exec ran', 30_000);
    match(ok(await pmRt(rt, ['top', c]), 'podman top').stdout, /sleep 1000/, 'podman top');
    await detached(rt, `${c}-w`, [], ['sh', '-c', 'sleep 1; exit 9']);
    try {
      eq(ok(await pmRt(rt, ['wait', `${c}-w`], { timeout: 60_000 }), 'podman wait').stdout.trim(), '9', 'podman wait');
    } finally {
      await removeAll(`${c}-w`);
    }
  });
  kase('extra: run -it: /dev/console is the terminal', async (rt, c) => {
    // script(1)'s stdin is a FIFO held open read-write: it never ends, so script writes nothing to the pty.
    // At the end of an empty stdin script writes ^D; podman sends that byte to conmon's attach socket, conmon
    // exits without reading it, and a close with unread data resets the socket: podman's next read fails
    // with ECONNRESET before the output queued for it (AF_UNIX reports the error first). Exit 0 and no output,
    // with runc as with paene-runc (2026-12-07, 200 runs each: docs/oci.md); conmon's log had the bytes.
    const stdin = path.join(dir, `${c}.stdin`);
    fs.rmSync(stdin, { force: true });
    ok(shSync(['mkfifo', '-m', '0600', stdin]), 'mkfifo');
    const cmd = pmCmd(rt, [...runArgs(['--rm', '-it', '--name', c]), IMG, 'sh', '-c', 'ls -l /dev/console | cut -c1-10']);
    const r = await sh(['sh', '-c', `exec script -qefc ${shq([cmd])} /dev/null 0<>${shq([stdin])}`], { env });
    fs.rmSync(stdin, { force: true });
    eq(r.code, 0, `exit code (${r.stdout.trim()} ${r.stderr.trim()})`);
    match(r.stdout, /crw--w----|crw-------|crw-rw-rw-/, '/dev/console a character device');
  });

  kase('extra: HOME from the image /etc/passwd', async (rt, c) => {
    const r = ok(await run(rt, ['--rm', '--name', c], ['sh', '-c', 'echo "HOME=$HOME"']), 'podman run');
    const u = ok(await run(rt, ['--rm', '--name', c, '--user', '1000'], ['sh', '-c', 'echo "HOME=$HOME"']), 'podman run --user 1000');
    eq([r.stdout, u.stdout], ['HOME=/root\n', 'HOME=/home/user\n'], 'HOME of root and of uid 1000');
  });

  // last: nothing of a runtime outlives its containers. podman --rm leaves no conmon and no
  // container; what is left in our cgroups then belongs to a runtime (each half looks at its own)
  kase('extra: no runtime process outlives its containers (our cgroups empty after --rm)', async (rt, c) => {
    ok(await run(rt, ['--rm', '--name', c], ['true']), 'podman run --rm');
    // the other runtime's processes name its script (a conmon's -r) or its root (paene-runc's planner)
    const o: Rt = rt === 'runc' ? 'paene' : 'runc';
    const theirs = (p: number) => [path.dirname(rtBin(o)) + '/', path.join(dir, 'runtime-root', o)].some((s) => cmdlineOf(p).includes(s));
    const mine = () => pidsInCgroupTree(cgParent).filter((p) => !theirs(p));
    await until(
      async () => {
        const left = mine();
        return left.length === 0 ? true : fail(`processes left in ${cgParent}: ${left.map(describePid).join('; ')}`);
      },
      'our cgroups empty',
      20_000,
      500,
    );
  });
});
