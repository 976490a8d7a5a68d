// The CRI, as a kubelet drives it: crictl v1.26.1 (built offline from
// shared/cri-tools by build-crictl.sh, cached under /var/cache/paene-test) talks
// to a PRIVATE containerd 1.6 (own root, state, socket, config.toml) whose CRI
// plugin has two runtime handlers, `runc` and `paene` (the runc v2 shim with
// BinaryName = paene-runc). containerd, its shims, the pods (host network =
// containerd's) and crictl run in a network namespace this test made, so the
// CRI streaming server (exec/attach) listens on that namespace's loopback.
// Every case runs in a pod of handler runc, then of handler paene; a case that
// passes with runc must pass with paene-runc.

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
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
  ociImageArchive,
  ok,
  pidsInCgroupTree,
  pidsMentioning,
  type Res,
  type Rt,
  readCg,
  removeCgroupTree,
  runtimePath,
  sh,
  shq,
  shSync,
  sleep,
  stopPid,
  underPty,
  unmountUnder,
  until,
} from './common.js';

const IMG = 'paene.test/busybox:1';
const PAUSE = 'paene.test/pause:1';
const CRICTL = process.env.PAENE_CRICTL ?? '/var/cache/paene-test/crictl';
const CASE_TIMEOUT = 300_000;

interface Ctr {
  name: string;
  command: string[];
  attempt?: number;
  memory?: number;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  /** more of the CRI ContainerConfig (mounts, envs, working_dir …) */
  more?: Record<string, unknown>;
  /** more of its linux.security_context */
  security?: Record<string, unknown>;
  /** more of its linux.resources */
  resources?: Record<string, unknown>;
}

/** What a kubelet puts in hugepage_limits: a 0 limit for each size in /sys/kernel/mm/hugepages. */
function hugepageLimitsLikeKubelet(): { page_size: string; limit: number }[] {
  let sizes: string[] = [];
  try {
    sizes = fs.readdirSync('/sys/kernel/mm/hugepages');
  } catch {
    return [];
  }
  return sizes.flatMap((d) => {
    const kb = Number(/^hugepages-(\d+)kB$/.exec(d)?.[1]);
    if (!kb) return [];
    const page_size = kb >= 1 << 20 ? `${kb >> 20}GB` : kb >= 1 << 10 ? `${kb >> 10}MB` : `${kb}KB`;
    return [{ page_size, limit: 0 }];
  });
}

describeReal('CRI: crictl → containerd 1.6 → runc v2 shim → paene-runc (runc as the witness)', () => {
  const m = new Matrix('CRI (crictl 1.26 + containerd 1.6)');
  const ns = `paene-cri-${process.pid}`;
  const cgParent = `/paene-cri-${process.pid}`;
  let dir = '';
  let sock = '';
  let daemon: ChildProcess | undefined;
  let seq = 0;

  const crictlArgv = (args: string[]) => inNetns(ns, [CRICTL, '--config', path.join(dir, 'crictl.yaml'), ...args]);
  const cri = (args: string[], opts: { timeout?: number; input?: string } = {}) =>
    sh(crictlArgv(args), { timeout: opts.timeout ?? 120_000, input: opts.input });
  const ctr = (args: string[], timeout = 120_000) => sh(['ctr', '--address', sock, '--namespace', 'k8s.io', ...args], { timeout });

  function writeJson(name: string, v: unknown): string {
    const p = path.join(dir, 'specs', `${name}-${++seq}.json`);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, JSON.stringify(v, null, 1));
    return p;
  }

  interface Pod {
    id: string;
    config: string;
    logDir: string;
  }

  /** RunPodSandbox with handler rt, on the host network (= containerd's, our netns). */
  async function runPod(rt: Rt, name: string, nsOptions: Record<string, number> = {}): Promise<Pod> {
    const logDir = path.join(dir, 'logs', name);
    fs.mkdirSync(logDir, { recursive: true });
    const config = writeJson(`pod-${name}`, {
      metadata: { name, namespace: 'paene-test', uid: `${name}-${seq}`, attempt: 0 },
      log_directory: logDir,
      linux: { cgroup_parent: `${cgParent}/pod-${name}`, security_context: { namespace_options: { network: 2, ...nsOptions } } },
    });
    const r = ok(await cri(['runp', '--runtime', rt, config], { timeout: 180_000 }), `crictl runp --runtime ${rt}`);
    return { id: r.stdout.trim(), config, logDir };
  }

  /** CreateContainer + StartContainer in pod; returns the container id. */
  async function startCtr(pod: Pod, c: Ctr, start = true): Promise<string> {
    const config = writeJson(`ctr-${c.name}`, {
      metadata: { name: c.name, attempt: c.attempt ?? 0 },
      image: { image: IMG },
      command: c.command,
      log_path: `${c.name}-${c.attempt ?? 0}.log`,
      stdin: c.stdin ?? false,
      stdin_once: c.stdinOnce ?? false,
      tty: c.tty ?? false,
      linux: {
        resources: { ...(c.memory ? { memory_limit_in_bytes: c.memory } : {}), ...c.resources },
        security_context: { ...c.security },
      },
      ...c.more,
    });
    const id = ok(await cri(['create', '--no-pull', pod.id, config, pod.config], { timeout: 180_000 }), 'crictl create').stdout.trim();
    if (start) ok(await cri(['start', id], { timeout: 180_000 }), 'crictl start');
    return id;
  }

  async function inspectCtr(
    id: string,
  ): Promise<{ status: { state: string; exitCode?: number; reason?: string; message?: string }; info?: { pid?: number } }> {
    return JSON.parse(ok(await cri(['inspect', '-o', 'json', id]), 'crictl inspect').stdout);
  }
  const state = async (id: string) => (await inspectCtr(id)).status.state;
  const pidOf = async (id: string) => {
    const p = (await inspectCtr(id)).info?.pid;
    if (!p || !(p > 0)) fail(`container ${id} has no pid`);
    return p;
  };
  const waitState = (id: string, want: string, timeout = 60_000) =>
    until(
      async () => {
        const s = await state(id);
        return s === want ? s : fail(`state ${s}, want ${want}`);
      },
      `container state ${want}`,
      timeout,
    );

  /** ExecSync through `crictl exec -s`: its output (crictl adds newlines) and the command's exit code
   *  (crictl exits 1 and names it in its error). */
  async function execSync(id: string, cmd: string[]): Promise<{ out: string; exit: number; res: Res }> {
    const res = await cri(['exec', '-s', '--timeout', '60', id, ...cmd]);
    const out = res.stdout.replace(/\n+$/, '\n').replace(/^\n$/, '');
    if (res.code === 0) return { out, exit: 0, res };
    const m = /exited with (\d+)/.exec(res.stderr);
    if (!m) fail(`crictl exec -s ${cmd.join(' ')}: exit ${res.code}: ${res.stderr.trim()}`);
    return { out, exit: Number(m[1]), res };
  }
  const execOk = async (id: string, cmd: string[], what: string) => {
    const r = await execSync(id, cmd);
    if (r.exit !== 0) fail(`${what}: exit ${r.exit}: ${r.res.stderr.trim()}`);
    return r.out;
  };

  /** Removes the pod of this case (and its containers) whatever state it is in. */
  async function removePods(name: string): Promise<void> {
    const r = await cri(['pods', '-q', '--name', `^${name}$`]);
    for (const id of r.stdout.split('\n').filter(Boolean)) {
      await cri(['stopp', id], { timeout: 180_000 });
      await cri(['rmp', '-f', id], { timeout: 180_000 });
    }
  }

  // a case's runc and paene-runc halves run side by side (matrixCase): each has its own pod, cgroup parent,
  // log directory and runtime handler (its own shims), and no case publishes a port
  const kase = (name: string, fn: (rt: Rt, pod: string) => Promise<void>) =>
    matrixCase(m, it, name, fn, (p) => removePods(p), CASE_TIMEOUT);

  beforeAll(async () => {
    if (!fs.existsSync(CRICTL)) {
      // about 1–9 minutes on a 2-core machine, once: the binary is cached
      const b = shSync(['bash', path.resolve('test/clients/build-crictl.sh'), CRICTL], 900_000);
      if (b.code !== 0) throw new Error(`building crictl failed: ${b.stderr}`);
    }
    if (shSync(['sh', '-c', 'command -v containerd && command -v ctr && command -v containerd-shim-runc-v2']).code !== 0) {
      const r = shSync(['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'containerd'], 600_000);
      if (r.code !== 0) throw new Error(`apt-get install containerd failed: ${r.stderr}`);
    }
    dir = tempRoot('cri');
    sock = path.join(dir, 'containerd.sock');
    makeNetns(ns);
    fs.mkdirSync(path.join(dir, 'cni'), { recursive: true });
    const rt = (name: string, bin: string) => [
      `    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}]`,
      '      runtime_type = "io.containerd.runc.v2"',
      `      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}.options]`,
      `        BinaryName = "${bin}"`,
      // the runtime's state root: private, not the shim's default /run/containerd/runc
      `        Root = "${dir}/runtime-root/${name}"`,
      '        SystemdCgroup = false',
    ];
    fs.writeFileSync(
      path.join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        '[grpc]',
        `  address = "${sock}"`,
        '[ttrpc]',
        `  address = "${sock}.ttrpc"`,
        '[plugins."io.containerd.grpc.v1.cri"]',
        `  sandbox_image = "${PAUSE}"`,
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        '  enable_selinux = false',
        '  disable_apparmor = true',
        // the sandbox's oom_score_adj -998 needs CAP_SYS_RESOURCE, which this machine's root lacks:
        // clamp it to containerd's own (runc fails too without this)
        '  restrict_oom_score_adj = true',
        '  [plugins."io.containerd.grpc.v1.cri".containerd]',
        '    snapshotter = "overlayfs"',
        '    default_runtime_name = "runc"',
        ...rt('runc', runtimePath('runc')),
        ...rt('paene', runtimePath('paene')),
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        '    bin_dir = "/usr/lib/cni"',
        `    conf_dir = "${dir}/cni"`,
      ].join('\n') + '\n',
    );
    fs.writeFileSync(
      path.join(dir, 'crictl.yaml'),
      `runtime-endpoint: unix://${sock}\nimage-endpoint: unix://${sock}\ntimeout: 120\ndebug: false\npull-image-on-create: false\n`,
    );
    const log = fs.openSync(path.join(dir, 'containerd.log'), 'a');
    const [prog, ...args] = inNetns(ns, ['containerd', '--config', path.join(dir, 'config.toml')]) as [string, ...string[]];
    daemon = spawn(prog, args, {
      stdio: ['ignore', log, log],
      env: { ...process.env, PATH: '/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    let v: Res | undefined;
    for (let i = 0; i < 120; i++) {
      v = await cri(['version'], { timeout: 10_000 });
      if (v.code === 0) break;
      if (!alive(daemon.pid!)) break;
      await sleep(500);
    }
    if (v?.code !== 0)
      throw new Error(
        `containerd (CRI) did not come up: ${v?.stderr}\n${fs.readFileSync(path.join(dir, 'containerd.log'), 'utf8').slice(-3000)}`,
      );
    const rootfs = makeBusyboxRootfs(path.join(dir, 'rootfs'));
    ok(await ctr(['images', 'import', ociImageArchive(rootfs, dir, IMG, { cmd: ['/bin/sh'] })]), 'ctr images import busybox');
    // the pod's "pause" container: busybox sleeping forever
    ok(
      await ctr(['images', 'import', ociImageArchive(rootfs, dir, PAUSE, { entrypoint: ['/bin/sleep'], cmd: ['infinity'] })]),
      'ctr images import pause',
    );
    fs.rmSync(rootfs, { recursive: true, force: true });
    await until(
      async () => (await cri(['images', '-q'])).stdout.split('\n').filter(Boolean).length >= 2 || undefined,
      'CRI sees the imported images',
      60_000,
    );
  }, 1_200_000);

  afterAll(async () => {
    try {
      if (dir && daemon?.pid && alive(daemon.pid)) {
        for (const id of (await cri(['pods', '-q'], { timeout: 30_000 })).stdout.split('\n').filter(Boolean)) {
          await cri(['stopp', id], { timeout: 120_000 });
          await cri(['rmp', '-f', id], { timeout: 120_000 });
        }
      }
    } finally {
      await stopPid(daemon?.pid, 30_000);
      if (dir) {
        // shims and what is left of containers: ours are the ones naming our temp dir
        for (const p of pidsMentioning(dir)) await stopPid(p, 5_000);
        unmountUnder(dir);
      }
      // anything still in our cgroups was started there by our client
      for (const p of pidsInCgroupTree(cgParent)) await stopPid(p, 5_000);
      const left = removeCgroupTree(cgParent);
      if (left.length) console.warn(`[cri] cgroups left: ${left.join(' ')}`);
      deleteNetns(ns);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      console.log('\n' + m.table() + '\n');
    }
  }, 240_000);

  kase('RunPodSandbox + Create/StartContainer', async (rt, p) => {
    const pod = await runPod(rt, p);
    const ps = JSON.parse(ok(await cri(['inspectp', '-o', 'json', pod.id]), 'crictl inspectp').stdout);
    eq(ps.status.state, 'SANDBOX_READY', 'pod state');
    eq(ps.info?.runtimeHandler ?? ps.runtimeHandler ?? rt, rt, 'runtime handler');
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'] });
    eq(await state(id), 'CONTAINER_RUNNING', 'container state');
    eq(fs.readFileSync(`/proc/${await pidOf(id)}/comm`, 'utf8').trim(), 'sleep', 'the container process');
  });

  kase('ExecSync (crictl exec -s)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'] });
    // crictl prints the output only of a command that exits 0
    eq(await execOk(id, ['sh', '-c', 'echo in; cat /proc/1/comm'], 'exec -s'), 'in\nsleep\n', 'stdout');
    eq((await execSync(id, ['sh', '-c', 'exit 3'])).exit, 3, 'exit code');
    eq(await execOk(id, ['sh', '-c', 'echo $(id -u) $PWD'], 'exec -s id'), '0 /\n', 'user and cwd');
  });

  kase('Exec with stdin (crictl exec -i)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'] });
    const r = ok(await cri(['exec', '-i', id, 'sh', '-c', 'cat; echo done'], { input: 'line one\nline two\n' }), 'crictl exec -i');
    eq(r.stdout, 'line one\nline two\ndone\n', 'stdout');
  });

  kase('Exec with tty (crictl exec -it)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'] });
    const r = await underPty(shq(crictlArgv(['exec', '-it', id, 'sh', '-c', 'tty; echo $((6*7))'])));
    eq(r.code, 0, `exit code (${r.stdout.trim()} ${r.stderr.trim()})`);
    match(r.stdout, /\/dev\/pts\/\d+/, 'tty');
    match(r.stdout, /42/, 'output');
  });

  kase('Attach (stdin once)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, {
      name: 'main',
      command: ['sh', '-c', 'while read l; do echo "got $l"; done; echo bye'],
      stdin: true,
      stdinOnce: true,
    });
    const r = ok(await cri(['attach', '-i', id], { input: 'hello\n', timeout: 60_000 }), 'crictl attach -i');
    await waitState(id, 'CONTAINER_EXITED');
    // what attach printed, and in any case the log: the process read what attach sent
    const logs = ok(await cri(['logs', id]), 'crictl logs').stdout;
    match(r.stdout + logs, /got hello/, 'the process read what attach sent');
  });

  kase('logs', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sh', '-c', 'echo out-line; echo err-line >&2; exec sleep 1000'] });
    await until(
      async () => {
        const r = ok(await cri(['logs', id]), 'crictl logs');
        return /out-line/.test(r.stdout) && /err-line/.test(r.stderr)
          ? true
          : fail(`stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}`);
      },
      'crictl logs',
      30_000,
    );
    const file = fs.readFileSync(path.join(pod.logDir, 'main-0.log'), 'utf8');
    match(file, /stdout F out-line/, 'CRI log file');
  });

  kase('ContainerStats', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'], memory: 64 << 20 });
    const st = await until(
      async () => {
        const j = JSON.parse(ok(await cri(['stats', '-o', 'json', '--id', id]), 'crictl stats').stdout);
        const s = j.stats?.[0];
        return s && Number(s.memory?.workingSetBytes?.value) > 0 ? s : fail(`no memory stats: ${JSON.stringify(j)}`);
      },
      'ContainerStats',
      30_000,
    );
    eq(st.attributes.id, id, 'stats id');
    if (st.cpu?.usageCoreNanoSeconds?.value === undefined) fail(`no cpu stats: ${JSON.stringify(st)}`);
  });

  kase('UpdateContainerResources (memory 64Mi→128Mi→64Mi, cpu quota)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'], memory: 64 << 20 });
    const pid = await pidOf(id);
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(64 << 20), 'memory limit at start');
    ok(await cri(['update', '--memory', String(128 << 20), id]), 'crictl update --memory 128Mi');
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(128 << 20), 'memory limit after update up');
    ok(await cri(['update', '--memory', String(64 << 20), id]), 'crictl update --memory 64Mi');
    eq(readCg(pid, 'memory', 'memory.limit_in_bytes'), String(64 << 20), 'memory limit after update down');
    ok(await cri(['update', '--cpu-period', '100000', '--cpu-quota', '50000', id]), 'crictl update --cpu-quota');
    eq(readCg(pid, 'cpu', 'cpu.cfs_quota_us'), '50000', 'cpu.cfs_quota_us');
    eq(readCg(pid, 'cpu', 'cpu.cfs_period_us'), '100000', 'cpu.cfs_period_us');
  });

  kase('OOM → reason OOMKilled (32Mi limit)', async (rt, p) => {
    const pod = await runPod(rt, p);
    // a shell variable that grows until the 32Mi memory cgroup kills it (bounded by the limit)
    const id = await startCtr(pod, { name: 'hog', command: ['sh', '-c', 'x=a; while :; do x="$x$x"; done'], memory: 32 << 20 });
    await waitState(id, 'CONTAINER_EXITED', 120_000);
    const s = (await inspectCtr(id)).status;
    eq(s.reason, 'OOMKilled', `reason (exit code ${s.exitCode}, message ${s.message})`);
    eq(s.exitCode, 137, 'exit code');
  });

  kase('container restart (stop + a new attempt in the same pod)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id0 = await startCtr(pod, { name: 'main', command: ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'] });
    ok(await cri(['stop', '--timeout', '30', id0], { timeout: 120_000 }), 'crictl stop');
    await waitState(id0, 'CONTAINER_EXITED');
    eq((await inspectCtr(id0)).status.exitCode, 0, 'exit code after SIGTERM');
    const id1 = await startCtr(pod, { name: 'main', command: ['sleep', '1000'], attempt: 1 });
    eq(await state(id1), 'CONTAINER_RUNNING', 'the new attempt runs');
    eq(await execOk(id1, ['cat', '/proc/1/comm'], 'exec in the new attempt'), 'sleep\n', 'exec');
  });

  kase('a pod with two containers (shared ipc, /dev/shm)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const a = await startCtr(pod, { name: 'a', command: ['sleep', '1000'] });
    const b = await startCtr(pod, { name: 'b', command: ['sleep', '1000'] });
    eq([await state(a), await state(b)], ['CONTAINER_RUNNING', 'CONTAINER_RUNNING'], 'both run');
    await execOk(a, ['sh', '-c', 'echo from-a > /dev/shm/note'], 'write /dev/shm in a');
    eq(await execOk(b, ['cat', '/dev/shm/note'], 'read /dev/shm in b'), 'from-a\n', 'shared /dev/shm');
    const ipcA = fs.readlinkSync(`/proc/${await pidOf(a)}/ns/ipc`);
    const ipcB = fs.readlinkSync(`/proc/${await pidOf(b)}/ns/ipc`);
    eq(ipcA, ipcB, 'one ipc namespace');
    // host network (NODE): the pod has the host's uts namespace, and the sandbox's ipc one
    eq(fs.readlinkSync(`/proc/${await pidOf(a)}/ns/uts`), fs.readlinkSync(`/proc/${await pidOf(b)}/ns/uts`), 'one uts namespace');
  });

  kase('StopPodSandbox + RemovePodSandbox', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'] });
    const pid = await pidOf(id);
    ok(await cri(['stopp', pod.id], { timeout: 180_000 }), 'crictl stopp');
    eq(
      JSON.parse(ok(await cri(['inspectp', '-o', 'json', pod.id]), 'crictl inspectp').stdout).status.state,
      'SANDBOX_NOTREADY',
      'pod state after stopp',
    );
    eq(await state(id), 'CONTAINER_EXITED', 'container state after stopp');
    await until(async () => !alive(pid), 'the container process is gone', 30_000);
    ok(await cri(['rmp', pod.id], { timeout: 180_000 }), 'crictl rmp');
    eq((await cri(['pods', '-q', '--id', pod.id])).stdout.trim(), '', 'the pod is gone');
    eq((await cri(['ps', '-a', '-q', '--id', id])).stdout.trim(), '', 'its container is gone');
  });
  // ---- beyond the brief's list: what a kubelet also sends ----

  kase('extra: security context (user 1000, read-only root, caps, no_new_privs, RuntimeDefault seccomp)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, {
      name: 'main',
      command: ['sleep', '1000'],
      security: {
        run_as_user: { value: 1000 },
        run_as_group: { value: 1000 },
        supplemental_groups: [1234],
        readonly_rootfs: true,
        no_new_privs: true,
        capabilities: { drop_capabilities: ['ALL'], add_capabilities: ['NET_BIND_SERVICE'] },
        seccomp: { profile_type: 0 },
      },
    });
    const out = await execOk(
      id,
      [
        'sh',
        '-c',
        'id -u; id -g; touch /x 2>/dev/null || echo ro; grep -E "^(Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status',
      ],
      'exec',
    );
    match(
      out,
      /^1000\n1000\nro\nGroups:\s+(\d+\s+)*1234\s*\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000400\nNoNewPrivs:\t1\nSeccomp:\t2\n$/,
      'security context',
    );
  });

  kase('extra: kubelet-style mounts (/etc/hosts, /dev/termination-log, a read-only secret dir)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const host = fs.mkdtempSync(path.join(dir, 'kubelet-'));
    fs.writeFileSync(path.join(host, 'etc-hosts'), '127.0.0.1 localhost\n10.1.2.3 paene-test-pod\n');
    fs.writeFileSync(path.join(host, 'termination-log'), '');
    fs.mkdirSync(path.join(host, 'secret'));
    fs.writeFileSync(path.join(host, 'secret', 'token'), 'tok\n');
    const id = await startCtr(pod, {
      name: 'main',
      command: ['sleep', '1000'],
      more: {
        envs: [{ key: 'KUBERNETES_SERVICE_HOST', value: '10.0.0.1' }],
        working_dir: '/tmp',
        mounts: [
          { container_path: '/etc/hosts', host_path: path.join(host, 'etc-hosts') },
          { container_path: '/dev/termination-log', host_path: path.join(host, 'termination-log') },
          { container_path: '/var/run/secrets/kubernetes.io/serviceaccount', host_path: path.join(host, 'secret'), readonly: true },
        ],
      },
    });
    const out = await execOk(
      id,
      [
        'sh',
        '-c',
        'grep paene-test-pod /etc/hosts; echo bye > /dev/termination-log; cat /var/run/secrets/kubernetes.io/serviceaccount/token; touch /var/run/secrets/kubernetes.io/serviceaccount/x 2>/dev/null || echo ro; echo $KUBERNETES_SERVICE_HOST $PWD',
      ],
      'exec',
    );
    eq(out, '10.1.2.3 paene-test-pod\ntok\nro\n10.0.0.1 /tmp\n', 'mounts, env, cwd');
    eq(fs.readFileSync(path.join(host, 'termination-log'), 'utf8'), 'bye\n', 'termination log written through');
  });

  kase('extra: a pod sharing one pid namespace (namespace_options.pid = POD)', async (rt, p) => {
    const pod = await runPod(rt, p, { pid: 0 });
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'] });
    const out = await execOk(id, ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; ps -o comm | grep -c sleep'], 'exec');
    match(out, /^\/bin\/sleep infinity \n2\n$/, 'pid 1 is the sandbox, both sleeps seen');
  });

  kase('extra: resources as a kubelet sets them (cpu shares, quota, oom_score_adj, hugepage limits 0)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, {
      name: 'main',
      command: ['sleep', '1000'],
      memory: 64 << 20,
      // a kubelet also sends a 0 hugetlb limit for every huge page size the node has (containerd drops
      // them where the hugetlb controller is missing, as on a hybrid v1 host)
      resources: {
        cpu_shares: 102,
        cpu_period: 100000,
        cpu_quota: 20000,
        oom_score_adj: 999,
        hugepage_limits: hugepageLimitsLikeKubelet(),
      },
    });
    const pid = await pidOf(id);
    eq(readCg(pid, 'cpu', 'cpu.shares'), '102', 'cpu.shares');
    eq(readCg(pid, 'cpu', 'cpu.cfs_quota_us'), '20000', 'cpu.cfs_quota_us');
    eq(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim(), '999', 'oom_score_adj');
  });
  kase('extra: working_dir missing from the image (a kubelet passes the pod spec workingDir as is)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sh', '-c', 'pwd; exec sleep 1000'], more: { working_dir: '/srv/app/work' } });
    await until(async () => /\/srv\/app\/work/.test((await cri(['logs', id])).stdout), 'the process runs in its working dir', 30_000);
  });
  kase('extra: HOME from the image /etc/passwd (the CRI sends no HOME; runc sets it)', async (rt, p) => {
    const pod = await runPod(rt, p);
    const root = await startCtr(pod, { name: 'root', command: ['sleep', '1000'] });
    const user = await startCtr(pod, { name: 'user', command: ['sleep', '1000'], security: { run_as_user: { value: 1000 } } });
    eq(await execOk(root, ['sh', '-c', 'echo "HOME=$HOME"'], 'exec as root'), 'HOME=/root\n', 'HOME of root (exec)');
    eq(await execOk(user, ['sh', '-c', 'echo "HOME=$HOME"'], 'exec as 1000'), 'HOME=/home/user\n', 'HOME of uid 1000 (exec)');
    eq(
      fs
        .readFileSync(`/proc/${await pidOf(user)}/environ`, 'utf8')
        .split('\0')
        .filter((e) => e.startsWith('HOME=')),
      ['HOME=/home/user'],
      'HOME of the container process',
    );
  });
  kase('extra: a tty container: /dev/console is its terminal', async (rt, p) => {
    const pod = await runPod(rt, p);
    const id = await startCtr(pod, { name: 'main', command: ['sleep', '1000'], tty: true, stdin: true });
    const out = await execOk(id, ['sh', '-c', 'ls -l /dev/console | cut -c1-10'], 'exec');
    match(out, /^(crw--w----|crw-------|crw-rw-rw-)\n$/, '/dev/console a character device');
  });
});
