// paene-runc on the real kernel: the runc command line over a bundle whose
// root is paene's base image (read-only), as containerd's shim drives it.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_IMAGE } from '../../src/image/store.js';
import { detectCgroupHost } from '../../src/cgroups/cgroups.js';
import { verifyDeviceProgram } from '../../src/kernel/bpf.js';
import { deviceProgram, deviceRules } from '../../src/oci/resources.js';
import { openImageStore, storeImageSource } from '../../src/runtime/open.js';
import { describeReal, tempRoot } from '../helpers.js';

const BIN = path.resolve('bin/paene-runc');

describeReal('paene-runc: an OCI runtime over bundles', () => {
  let dir: string;
  let state: string;
  let rootfs: string;
  let rw: string;
  const cgParent = `paene-runc-test-${process.pid}`;
  // a pure v2 host has one directory per container; v1 and hybrid one per controller hierarchy
  const pureV2 = detectCgroupHost().layout === 'v2';
  const cgDir = (controller: string, id: string) =>
    pureV2 ? `/sys/fs/cgroup/${cgParent}/${id}` : `/sys/fs/cgroup/${controller}/${cgParent}/${id}`;
  const cgRead = (controller: string, id: string, file: string) => fs.readFileSync(path.join(cgDir(controller, id), file), 'utf8').trim();

  function runc(args: string[], input?: string) {
    // create and run --detach hand their stdio to the container, which outlives the call: give it a file
    const lives = args[0] === 'create' || args.includes('--detach');
    const errFile = path.join(dir, 'stderr.out');
    const out = lives ? fs.openSync(path.join(dir, 'container.out'), 'a') : undefined;
    const err = lives ? fs.openSync(errFile, 'w') : undefined;
    const r = spawnSync(BIN, ['--root', state, '--log', path.join(dir, 'log.json'), '--log-format', 'json', ...args], {
      input,
      encoding: 'utf8',
      timeout: 30_000,
      stdio: out === undefined || err === undefined ? 'pipe' : ['ignore', out, err],
    });
    if (out !== undefined) fs.closeSync(out);
    if (err !== undefined) fs.closeSync(err);
    return { code: r.status, stdout: r.stdout ?? '', stderr: lives ? fs.readFileSync(errFile, 'utf8') : r.stderr };
  }
  function bundle(id: string, args: string[], change: (c: Record<string, any>) => void = () => undefined): string {
    const b = path.join(dir, id);
    fs.mkdirSync(b, { recursive: true });
    const cfg: Record<string, any> = {
      ociVersion: '1.0.2',
      root: { path: rootfs, readonly: true },
      process: {
        cwd: '/',
        args,
        env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
        user: { uid: 0, gid: 0 },
        capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
      },
      hostname: 'oci-' + id,
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
      ],
      linux: {
        namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }],
        cgroupsPath: `/${cgParent}/${id}`,
        resources: { devices: [{ allow: false, access: 'rwm' }], pids: { limit: 32 }, memory: { limit: 64 << 20 } },
        maskedPaths: ['/proc/kcore'],
        readonlyPaths: ['/proc/sys'],
      },
    };
    change(cfg);
    fs.writeFileSync(path.join(b, 'config.json'), JSON.stringify(cfg));
    return b;
  }

  beforeAll(async () => {
    dir = tempRoot('oci');
    state = path.join(dir, 'state');
    rootfs = await storeImageSource(openImageStore(path.join(dir, 'paene'))).rootfsOf(DEFAULT_IMAGE);
    // a writable copy with a user of its own (cwd and HOME cases)
    rw = path.join(dir, 'rw-rootfs');
    expect(spawnSync('cp', ['-a', rootfs, rw]).status).toBe(0);
    fs.appendFileSync(path.join(rw, 'etc/passwd'), 'user:x:1000:1000::/home/user:/bin/sh\n');
  }, 180_000);

  afterAll(() => {
    for (const id of fs.existsSync(state) ? fs.readdirSync(state) : []) runc(['delete', '--force', id]);
    for (const h of [...fs.readdirSync('/sys/fs/cgroup'), '.']) {
      try {
        fs.rmdirSync(path.join('/sys/fs/cgroup', h, cgParent));
      } catch {
        /* absent */
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('run: the process sees its root, hostname and limits; its exit status comes back', () => {
    const b = bundle('r1', ['/bin/sh', '-c', 'hostname; cat /proc/self/status | grep CapEff; touch /x 2>/dev/null || echo ro; exit 3']);
    const r = spawnSync(BIN, ['--root', state, 'run', '--bundle', b, 'r1'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('oci-r1\nCapEff:\t0000000000000020\nro\n');
    expect(r.status).toBe(3);
    expect(fs.existsSync(path.join(state, 'r1'))).toBe(false); // run deletes
  });

  it('create, state, start, exec, ps, kill, delete as the shim calls them', () => {
    const b = bundle('c1', ['/bin/sleep', '1000']);
    const pidFile = path.join(dir, 'c1.pid');
    expect(runc(['create', '--bundle', b, '--pid-file', pidFile, 'c1']).code).toBe(0);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    let st = JSON.parse(runc(['state', 'c1']).stdout);
    expect(st).toMatchObject({ id: 'c1', status: 'created', pid, bundle: b });
    // the container's own cgroup, with the limits written
    expect(cgRead('pids', 'c1', 'pids.max')).toBe('32');
    expect(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(`/${cgParent}/c1`);
    expect(runc(['start', 'c1']).code).toBe(0);
    st = JSON.parse(runc(['state', 'c1']).stdout);
    expect(st.status).toBe('running');
    const e = runc(['exec', 'c1', '/bin/sh', '-c', 'echo $$; hostname; exit 5']);
    expect(e.code).toBe(5);
    expect(e.stdout.split('\n').slice(1, 2)).toEqual(['oci-c1']);
    const procFile = path.join(dir, 'p.json');
    fs.writeFileSync(
      procFile,
      JSON.stringify({ cwd: '/tmp', args: ['/bin/sh', '-c', 'pwd; id -u'], user: { uid: 1000, gid: 1000 }, env: ['PATH=/bin'] }),
    );
    const e2 = runc(['exec', '--process', procFile, 'c1']);
    expect(e2.stdout).toBe('/tmp\n1000\n');
    const ps = JSON.parse(runc(['ps', '--format', 'json', 'c1']).stdout) as number[];
    expect(ps).toContain(pid);
    const del = runc(['delete', 'c1']);
    expect(del.code).toBe(1);
    expect(del.stderr).toMatch(/not stopped/);
    expect(runc(['kill', 'c1', 'KILL']).code).toBe(0);
    for (let i = 0; i < 100 && JSON.parse(runc(['state', 'c1']).stdout).status !== 'stopped'; i++) spawnSync('sleep', ['0.05']);
    expect(JSON.parse(runc(['state', 'c1']).stdout).status).toBe('stopped');
    const k = runc(['kill', 'c1', 'TERM']);
    expect(k.stderr).toMatch(/container not running/);
    expect(runc(['delete', 'c1']).code).toBe(0);
    expect(fs.existsSync(cgDir('pids', 'c1'))).toBe(false);
    const gone = runc(['state', 'c1']);
    expect(gone.stderr).toMatch(/does not exist/);
    // errors reach the log as JSON lines, as the shim reads them
    const log = fs
      .readFileSync(path.join(dir, 'log.json'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.at(-1)).toMatchObject({ level: 'error', msg: 'container "c1" does not exist' });
  });

  it("resources, update, pause/resume and kill --all through this host's cgroups (v1 files, or v2's on a pure v2 host)", () => {
    const b = bundle('rs', ['/bin/sleep', '1000'], (c) => {
      c.linux.resources.cpu = { shares: 512, quota: 50000, period: 100000 };
      c.linux.resources.memory = { limit: 64 << 20, reservation: 16 << 20 };
    });
    expect(runc(['run', '--detach', '--bundle', b, 'rs']).code).toBe(0);
    if (pureV2) {
      expect(cgRead('memory', 'rs', 'memory.max')).toBe(String(64 << 20));
      expect(cgRead('memory', 'rs', 'memory.low')).toBe(String(16 << 20));
      expect(cgRead('cpu', 'rs', 'cpu.max')).toBe('50000 100000');
      expect(cgRead('cpu', 'rs', 'cpu.weight')).toBe('20'); // 1 + (512 − 2) × 9999 / 262142
    } else {
      expect(cgRead('memory', 'rs', 'memory.limit_in_bytes')).toBe(String(64 << 20));
      expect(cgRead('cpu', 'rs', 'cpu.cfs_quota_us')).toBe('50000');
      expect(cgRead('cpu', 'rs', 'cpu.shares')).toBe('512');
    }
    const u = runc(
      ['update', '--resources', '-', 'rs'],
      JSON.stringify({ memory: { limit: 32 << 20 }, pids: { limit: 16 }, cpu: { quota: 20000, period: 100000 } }),
    );
    expect(u.stderr).toBe('');
    expect(u.code).toBe(0);
    expect(cgRead('memory', 'rs', pureV2 ? 'memory.max' : 'memory.limit_in_bytes')).toBe(String(32 << 20));
    expect(cgRead('pids', 'rs', 'pids.max')).toBe('16');
    expect(cgRead('cpu', 'rs', pureV2 ? 'cpu.max' : 'cpu.cfs_quota_us')).toBe(pureV2 ? '20000 100000' : '20000');
    // pause freezes every process (cgroup.freeze, or the v1 freezer on a host without it); resume thaws
    expect(runc(['pause', 'rs']).code).toBe(0);
    expect(JSON.parse(runc(['state', 'rs']).stdout).status).toBe('paused');
    expect(runc(['resume', 'rs']).code).toBe(0);
    expect(JSON.parse(runc(['state', 'rs']).stdout).status).toBe('running');
    // kill --all reaches a process exec started beside the init
    expect(runc(['exec', '--detach', 'rs', '/bin/sleep', '1001']).code).toBe(0);
    const ps = JSON.parse(runc(['ps', '--format', 'json', 'rs']).stdout) as number[];
    expect(ps.length).toBe(2);
    expect(runc(['kill', '--all', 'rs', 'KILL']).code).toBe(0);
    for (let i = 0; i < 100 && ps.some((p) => fs.existsSync(`/proc/${p}`)); i++) spawnSync('sleep', ['0.05']);
    const cmdline = (p: number) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      } catch {
        return ''; // gone (reaped between the look and the read)
      }
    };
    expect(ps.filter((p) => cmdline(p).startsWith('/bin/sleep'))).toEqual([]);
    expect(runc(['delete', '--force', 'rs']).code).toBe(0);
    expect(fs.existsSync(cgDir('memory', 'rs'))).toBe(false);
  });

  it("what Docker and the kubelet send: zeros mean 'not set', update raises memory, the container has a cgroup in every hierarchy", () => {
    const b = bundle('dz', ['/bin/sleep', '1000'], (c) => {
      // docker run with no limits: zeros everywhere, empty cpuset strings
      c.linux.resources = {
        devices: [{ allow: false, access: 'rwm' }],
        memory: { limit: 64 << 20, reservation: 0, swap: 64 << 20, kernel: 0, kernelTCP: 0 },
        cpu: { shares: 0, quota: 0, period: 0, realtimeRuntime: 0, realtimePeriod: 0, cpus: '', mems: '' },
        blockIO: { weight: 0, leafWeight: 0 },
        pids: { limit: 32 },
      };
      c.process.oomScoreAdj = 300;
    });
    const r = runc(['run', '--detach', '--bundle', b, 'dz']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const pid = JSON.parse(runc(['state', 'dz']).stdout).pid as number;
    // every mounted hierarchy, named ones included, holds it in a group of its own
    for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
      expect(line, line).toMatch(new RegExp(`:/${cgParent}/dz$`));
    }
    // containerd's exec carries oomScoreAdj: written before the container is entered
    const e = runc(
      ['exec', '--process', '-', 'dz'],
      JSON.stringify({ cwd: '/', args: ['/bin/cat', '/proc/self/oom_score_adj'], env: ['PATH=/bin'], oomScoreAdj: 500 }),
    );
    expect(e.stderr).toBe('');
    expect(e.stdout).toBe('500\n');
    // UpdateContainerResources 64Mi → 128Mi (memory and swap together), then down again; Docker's zeros change nothing
    const file = pureV2 ? 'memory.max' : 'memory.limit_in_bytes';
    const upd = (res: unknown) => runc(['update', '--resources', '-', 'dz'], JSON.stringify(res));
    expect(upd({ memory: { limit: 128 << 20, swap: 128 << 20 } }).stderr).toBe('');
    expect(cgRead('memory', 'dz', file)).toBe(String(128 << 20));
    expect(upd({ memory: { limit: 32 << 20, swap: 32 << 20 } }).stderr).toBe('');
    expect(cgRead('memory', 'dz', file)).toBe(String(32 << 20));
    const u = upd({
      cpu: { shares: 0, quota: 50000, period: 100000 },
      memory: { limit: 0, reservation: 0, swap: 0 },
      blockIO: { weight: 0 },
      pids: { limit: 32 },
    });
    expect(u.stderr).toBe('');
    expect(cgRead('memory', 'dz', file)).toBe(String(32 << 20));
    if (!pureV2) expect(cgRead('cpu', 'dz', 'cpu.shares')).toBe('1024');
    expect(runc(['delete', '--force', 'dz']).code).toBe(0);
    for (const h of fs.readdirSync('/sys/fs/cgroup')) expect(fs.existsSync(path.join('/sys/fs/cgroup', h, cgParent, 'dz'))).toBe(false);
  });

  it("Podman's tmpfs: tmpcopyup starts it with the image's files, read-only root beside it", () => {
    const b = bundle(
      'tc',
      ['/bin/sh', '-c', 'ls /etc | grep -c . ; touch /etc/new && echo writable; touch /x 2>/dev/null || echo ro-root'],
      (c) => {
        c.mounts.push({ destination: '/etc', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'tmpcopyup'] });
      },
    );
    const r = spawnSync(BIN, ['--root', state, 'run', '--bundle', b, 'tc'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    const [count, writable, ro] = r.stdout.trim().split('\n');
    expect(Number(count)).toBe(fs.readdirSync(path.join(rootfs, 'etc')).length);
    expect([writable, ro]).toEqual(['writable', 'ro-root']);
  });

  it('descriptors: --preserve-fds and LISTEN_FDS cross at their numbers; any other the caller left open does not', () => {
    // the last command lists its own descriptors: the process's, and the one ls opens on /proc/self/fd
    // (the lowest free: 5); a shell's own (a pipeline's pipes, a saved stdout) would not be the process's
    const b = bundle('fd', ['/bin/sh', '-c', 'echo "$LISTEN_FDS $LISTEN_PID"; read line <&3; echo "$line"; exec ls /proc/self/fd']);
    const pipeFile = path.join(dir, 'fd3.txt');
    fs.writeFileSync(pipeFile, 'from fd 3\n');
    const f3 = fs.openSync(pipeFile, 'r');
    const f4 = fs.openSync(dir, 'r');
    const stray = fs.openSync(dir, 'r');
    const stdio: (number | 'pipe' | 'ignore')[] = ['pipe', 'pipe', 'pipe', f3, f4, ...Array(15).fill('ignore'), stray];
    const r = spawnSync(BIN, ['--root', state, 'run', '--preserve-fds', '1', '--bundle', b, 'fd'], {
      encoding: 'utf8',
      timeout: 30_000,
      stdio,
      env: { ...process.env, LISTEN_FDS: '1', LISTEN_PID: '' },
    });
    for (const f of [f3, f4, stray]) fs.closeSync(f);
    expect(r.stderr).toBe('');
    const [listen, line, ...fds] = r.stdout.trim().split('\n');
    expect(fds.map(Number).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(listen).toBe('1 1');
    expect(line).toBe('from fd 3');
  });

  it("what runc does for its clients: a missing cwd is made, HOME comes from the container's /etc/passwd, a terminal is /dev/console", async () => {
    // containerd passes a pod's workingDir as given; Docker and the kubelet send no HOME
    const r = spawnSync(
      BIN,
      [
        '--root',
        state,
        'run',
        '--bundle',
        bundle('rh', ['/bin/sh', '-c', 'pwd; echo "HOME=$HOME"; id -u'], (c) => {
          c.root.readonly = false;
          c.root.path = rw;
          c.process.cwd = '/srv/app/work';
          c.process.user = { uid: 1000, gid: 1000 };
        }),
        'rh',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('/srv/app/work\nHOME=/home/user\n1000\n');
    // root: its home; a uid /etc/passwd does not name: /
    const home = (uid: number) =>
      spawnSync(
        BIN,
        [
          '--root',
          state,
          'run',
          '--bundle',
          bundle(`rh${uid}`, ['/bin/sh', '-c', 'echo "$HOME"'], (c) => {
            c.root.path = rw;
            c.process.user = { uid, gid: uid };
          }),
          `rh${uid}`,
        ],
        { encoding: 'utf8', timeout: 30_000 },
      ).stdout;
    expect(home(0)).toBe('/root\n');
    expect(home(4242)).toBe('/\n');
    // exec without HOME too, and a HOME the config gives is kept
    const c = bundle('rhx', ['/bin/sleep', '1000'], (c) => (c.root.path = rw));
    expect(runc(['run', '--detach', '--bundle', c, 'rhx']).code).toBe(0);
    const e = runc(
      ['exec', '--process', '-', 'rhx'],
      JSON.stringify({ cwd: '/', args: ['/bin/sh', '-c', 'echo "$HOME"'], env: ['PATH=/bin'], user: { uid: 1000, gid: 1000 } }),
    );
    expect(e.stdout).toBe('/home/user\n');
    const e2 = runc(
      ['exec', '--process', '-', 'rhx'],
      JSON.stringify({ cwd: '/', args: ['/bin/sh', '-c', 'echo "$HOME"'], env: ['PATH=/bin', 'HOME=/x'] }),
    );
    expect(e2.stdout).toBe('/x\n');
    expect(runc(['delete', '--force', 'rhx']).code).toBe(0);
  });

  it('device rules hold (v1 devices cgroup, or the BPF program on v2): a node the rules do not allow cannot be opened', () => {
    // /dev/kmsg (c 1:11) bound in: opening it write-only needs no capability, only the device rules
    const kmsg = (id: string, rules: Record<string, unknown>[]) =>
      bundle(id, ['/bin/sh', '-c', ': > /dev/kmsg && echo opened'], (c) => {
        c.mounts.push({ destination: '/dev/kmsg', type: 'bind', source: '/dev/kmsg', options: ['bind'] });
        c.linux.resources.devices = rules;
      });
    const run = (id: string, b: string) =>
      spawnSync(BIN, ['--root', state, 'run', '--bundle', b, id], { encoding: 'utf8', timeout: 30_000 });
    const denied = run('dv1', kmsg('dv1', [{ allow: false, access: 'rwm' }]));
    expect(denied.stdout).toBe('');
    expect(denied.stderr).toMatch(/Operation not permitted/);
    const allowed = run(
      'dv2',
      kmsg('dv2', [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 11, access: 'w' },
      ]),
    );
    expect(allowed.stdout).toBe('opened\n');
    // the v2 form of such rules passes this kernel's verifier whatever the host's layout
    expect(() =>
      verifyDeviceProgram(deviceProgram(deviceRules([{ allow: true, type: 'b', major: 8, minor: -1, access: 'r' }], []))),
    ).not.toThrow();
  });

  it('paene.io/ccaps SET_UTSNAME: the container sets its own hostname through a hole in its read-only /proc/sys', () => {
    const hostBefore = fs.readFileSync('/proc/sys/kernel/hostname', 'utf8');
    const script = 'echo renamed > /proc/sys/kernel/hostname && hostname; (echo x > /proc/sys/kernel/ostype) 2>/dev/null || echo ro';
    const run = (id: string, ann: Record<string, string>) =>
      spawnSync(BIN, ['--root', state, 'run', '--bundle', bundle(id, ['/bin/sh', '-c', script], (c) => (c.annotations = ann)), id], {
        encoding: 'utf8',
        timeout: 30_000,
      });
    const r = run('ut1', { 'paene.io/ccaps': 'SET_UTSNAME' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('renamed\nro\n'); // the rest of /proc/sys stays read-only
    expect(fs.readFileSync('/proc/sys/kernel/hostname', 'utf8')).toBe(hostBefore);
    const without = run('ut2', {});
    expect(without.stdout).toBe('ro\n');
    expect(without.stderr).toMatch(/Read-only file system/);
  });

  it('paene.io/io-write-bps: io.max on the disk behind the root on a pure v2 host; refused on v1', () => {
    const b = bundle('io1', ['/bin/true'], (c) => (c.annotations = { 'paene.io/io-write-bps': '10MiB/s' }));
    const r = runc(['create', '--bundle', b, 'io1']);
    if (!pureV2) {
      expect(r.stderr).toMatch(/io-write-bps: needs a pure cgroup v2 host/);
      return;
    }
    if (r.code === 0) {
      expect(cgRead('io', 'io1', 'io.max')).toMatch(/^\d+:\d+ rbps=max wbps=10485760/m);
      expect(runc(['delete', '--force', 'io1']).code).toBe(0);
    } else {
      // a root on tmpfs (the test VM's /tmp) has no disk to throttle: said, not ignored
      expect(r.stderr).toMatch(/no block device behind root.path/);
    }
    expect(fs.existsSync(path.join(state, 'io1'))).toBe(false);
  });

  it('a field paene cannot honour is refused before anything is made', () => {
    const b = bundle('bad', ['/bin/true'], (c) => (c.process.selinuxLabel = 'system_u:system_r:container_t:s0'));
    const r = runc(['create', '--bundle', b, 'bad']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/process.selinuxLabel: SELinux is not supported/);
    expect(fs.existsSync(path.join(state, 'bad'))).toBe(false);
    expect(fs.existsSync(cgDir('pids', 'bad'))).toBe(false);
    // an AppArmor profile on a host without AppArmor: runc's init fails ("write /proc/self/attr/exec: invalid
    // argument"); paene-runc says why at create
    if (!fs.existsSync('/sys/module/apparmor/parameters/enabled')) {
      const aa = runc(['create', '--bundle', bundle('bad3', ['/bin/true'], (c) => (c.process.apparmorProfile = 'docker-default')), 'bad3']);
      expect(aa.stderr).toMatch(/process.apparmorProfile: 'docker-default' asked for, but AppArmor is not enabled on this host/);
    }
  });

  it('a failing mount fails create, and leaves no state or cgroup behind', () => {
    const b = bundle('bad2', ['/bin/true'], (c) => c.mounts.push({ destination: '/mnt', type: 'bind', source: '/nonexistent-paene' }));
    const r = runc(['create', '--bundle', b, 'bad2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nonexistent-paene/);
    expect(fs.existsSync(path.join(state, 'bad2'))).toBe(false);
    expect(fs.existsSync(cgDir('pids', 'bad2'))).toBe(false);
  });

  it('seccomp: the OCI profile is compiled by paene and holds in the container and in exec', () => {
    const b = bundle('s1', ['/bin/sleep', '1000'], (c) => {
      c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['sethostname'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
      c.process.capabilities = { bounding: ['CAP_SYS_ADMIN'], effective: ['CAP_SYS_ADMIN'], permitted: ['CAP_SYS_ADMIN'] };
    });
    expect(runc(['run', '--detach', '--bundle', b, 's1']).code).toBe(0);
    const e = runc(['exec', 's1', '/bin/sh', '-c', 'hostname x || echo denied; grep Seccomp: /proc/self/status']);
    expect(e.stdout).toContain('denied');
    expect(e.stdout).toMatch(/Seccomp:\s+2/);
    expect(runc(['delete', '--force', 's1']).code).toBe(0);
  });

  it('without a mount namespace: chrooted, its mounts below one bind that delete detaches from the host', () => {
    const b = bundle('nm', ['/bin/sleep', '1000'], (c) => {
      c.linux.namespaces = [{ type: 'pid' }];
      delete c.hostname;
    });
    const mountsAt = () =>
      fs
        .readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(` ${rootfs}`)).length;
    const before = mountsAt();
    expect(runc(['run', '--detach', '--bundle', b, 'nm']).code).toBe(0);
    expect(mountsAt()).toBeGreaterThan(before);
    // exec enters its root (a chroot in the host's mount namespace) and its pid namespace
    const e = runc(['exec', 'nm', '/bin/sh', '-c', 'cat /proc/1/comm; test -e /etc/paene-runc-absent || echo own-root']);
    expect(e.stdout).toBe('sleep\nown-root\n');
    expect(runc(['delete', '--force', 'nm']).code).toBe(0);
    expect(mountsAt()).toBe(before);
  });

  it('terminal: the pty master goes to --console-socket, sized; the process has it as its tty', async () => {
    // the receiving end of a console socket, as the shim has it: take the fd (SCM_RIGHTS), read to EOF
    const receiver = [
      'import socket, array, os, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)',
      'c, _ = s.accept(); fds = array.array("i")',
      'msg, anc, flags, addr = c.recvmsg(64, socket.CMSG_LEN(4))',
      'fds.frombytes(anc[0][2][:4]); out = b""',
      'while True:',
      '  try: d = os.read(fds[0], 4096)',
      '  except OSError: break',
      '  if not d: break',
      '  out += d',
      'sys.stdout.write(out.decode())',
    ].join('\n');
    const sock = path.join(dir, 'console.sock');
    const py = spawn('python3', ['-c', receiver, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let got = '';
    py.stdout.on('data', (d: Buffer) => (got += d.toString()));
    const done = new Promise((r) => py.once('exit', r));
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
    // /dev/console is the pty's slave (runc's; Docker's and Podman's run -it and a CRI tty container read it)
    const b = bundle(
      'tty',
      ['/bin/sh', '-c', '/bin/busybox tty; /bin/busybox stty size; /bin/busybox stat -c "%t %F" /dev/console'],
      (c) => {
        c.process.terminal = true;
        c.process.consoleSize = { height: 33, width: 111 };
        c.mounts.push({
          destination: '/dev/pts',
          type: 'devpts',
          source: 'devpts',
          options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
        });
      },
    );
    expect(runc(['create', '--bundle', b, '--console-socket', sock, 'tty']).code).toBe(0);
    expect(runc(['start', 'tty']).code).toBe(0);
    await done;
    expect(got.replace(/\r/g, '')).toBe('/dev/pts/0\n33 111\n88 character special file\n');
    expect(runc(['delete', '--force', 'tty']).code).toBe(0);
    const noSock = bundle('tty2', ['/bin/true'], (c) => (c.process.terminal = true));
    expect(runc(['create', '--bundle', noSock, 'tty2']).stderr).toMatch(/--console-socket is required/);
  });

  it('hooks: createRuntime on the host, createContainer and startContainer inside the container, each with the state on stdin', () => {
    const mark = path.join(dir, 'runtime-hook.json');
    const b = bundle('hk', ['/bin/sh', '-c', 'cat /tmp/created; echo; cat /tmp/started'], (c) => {
      c.hooks = {
        createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `cat > ${mark}`] }],
        createContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'cat > /tmp/created'] }],
        startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'echo started-in-$(hostname) > /tmp/started'] }],
      };
    });
    const r = spawnSync(BIN, ['--root', state, 'run', '--bundle', b, 'hk'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    const [created, started] = r.stdout.split('\n');
    expect(JSON.parse(created)).toMatchObject({ id: 'hk', status: 'created', bundle: b });
    expect(started).toBe('started-in-oci-hk');
    expect(JSON.parse(fs.readFileSync(mark, 'utf8'))).toMatchObject({ id: 'hk', status: 'created' });
    // a failing startContainer hook: start fails and the process never runs
    const bad = bundle('hk2', ['/bin/sleep', '1000'], (c) => (c.hooks = { startContainer: [{ path: '/bin/false' }] }));
    expect(runc(['create', '--bundle', bad, 'hk2']).code).toBe(0);
    const s = runc(['start', 'hk2']);
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(/startContainer hook \/bin\/false failed/);
    expect(runc(['delete', '--force', 'hk2']).code).toBe(0);
  });

  /** The pids of the planners serving `root`. */
  const plannersOf = (root: string) =>
    fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').includes(`__planner ${root}`);
        } catch {
          return false;
        }
      });

  it("the native front hands calls to the root's warm planner; a planner of another build steps aside; it leaves with its root", async () => {
    const root = path.join(dir, 'planner-root');
    const call = () => spawnSync(BIN, ['--root', root, 'list', '-q'], { encoding: 'utf8', timeout: 30_000 });
    expect(call().status).toBe(0); // no planner yet: Node does the call and starts one
    const sock = path.join(root, '.planner.sock');
    const planners = () => plannersOf(root);
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    expect(planners().length).toBe(1);
    expect(call().status).toBe(0);
    expect(planners().length).toBe(1); // the same one served
    // a front of another build: told to go to Node, and the planner leaves
    const { frame } = await import('../../src/oci/planner.js');
    const { PLANNER_REQUEST, PLANNER_ACTION } = await import('../../src/proto/planner.js');
    const { decodeMessage } = await import('../../src/proto/tokens.js');
    const net = await import('node:net');
    const answer = await new Promise<Buffer>((res, rej) => {
      const c = net.createConnection(sock, () =>
        c.write(
          frame(PLANNER_REQUEST, [
            ['build', 'another'],
            ['cwd', '/'],
            ['arg', 'list'],
          ]),
        ),
      );
      let got = Buffer.alloc(0);
      c.on('data', (d) => (got = Buffer.concat([got, d])));
      c.on('close', () => res(got));
      c.on('error', rej);
    });
    expect(decodeMessage(PLANNER_ACTION, answer.subarray(4))).toEqual([['stale']]);
    for (let i = 0; i < 200 && planners().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(planners()).toEqual([]);
    // a new one for the next calls; removing the root ends it
    expect(call().status).toBe(0);
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    expect(planners().length).toBe(1);
    fs.rmSync(root, { recursive: true, force: true });
    for (let i = 0; i < 200 && planners().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(planners()).toEqual([]);
  });

  it("under a containerd shim the planner serves and leaves with the shim; under Podman's conmon it does not stay", async () => {
    // the same subreaper under the two names the planner goes by
    const probe = path.join(dir, 'subreaper-probe');
    const cc = spawnSync('cc', ['-O2', '-o', probe, path.resolve('test/oci/subreaper-probe.c')], { encoding: 'utf8', timeout: 120_000 });
    expect(cc.status, cc.stderr).toBe(0);
    const ppidOf = (pid: string) => Number(/^PPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 400 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(ok(), what).toBe(true);
    };
    /** Runs one call under a subreaper named `name`; its output so far, and a way to end it. */
    const under = (name: string, root: string) => {
      const exe = path.join(dir, name);
      fs.copyFileSync(probe, exe);
      fs.chmodSync(exe, 0o755);
      const p = spawn(exe, [BIN, '--root', root, 'list', '-q'], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise((r) => p.once('exit', r));
      return { pid: p.pid, out: () => out, end: () => (p.stdin.end(), exited) };
    };

    // a shim: the planner the call started serves, as the shim's child
    const shimRoot = path.join(dir, 'planner-shim');
    const shim = under('containerd-shim-runc-v2', shimRoot);
    try {
      await until('the call under the shim ends', () => /^done \d+$/m.test(shim.out()));
      await until('a planner serves under the shim', () => fs.existsSync(path.join(shimRoot, '.planner.sock')));
      const [planner] = plannersOf(shimRoot);
      expect(ppidOf(planner ?? '0')).toBe(shim.pid);
      expect(spawnSync(BIN, ['--root', shimRoot, 'list', '-q'], { encoding: 'utf8', timeout: 30_000 }).status).toBe(0);
      expect(plannersOf(shimRoot)).toEqual([planner]); // the same one served
    } finally {
      await shim.end();
    }
    await until('the planner leaves with its shim', () => plannersOf(shimRoot).length === 0);

    // conmon waits for all its children before it exits: the planner started there leaves at once
    const conmonRoot = path.join(dir, 'planner-conmon');
    const conmon = under('conmon', conmonRoot);
    try {
      await until(
        'the call under conmon ends and its planner leaves',
        () => /^done \d+$/m.test(conmon.out()) && /^reaped \d+$/m.test(conmon.out()),
      );
      expect(fs.existsSync(path.join(conmonRoot, '.planner.sock'))).toBe(false);
      expect(plannersOf(conmonRoot)).toEqual([]);
    } finally {
      await conmon.end();
    }
  });

  it('features and --version answer without a container', () => {
    const f = JSON.parse(runc(['features']).stdout);
    expect(f.ociVersionMax).toMatch(/^1\./);
    expect(f.linux.namespaces).toContain('network');
    expect(f.linux.seccomp.enabled).toBe(true);
    expect(f.linux.cgroup).toMatchObject({ v1: true, v2: true });
    expect(runc(['--version']).stdout).toMatch(/^paene-runc version/);
  });
});
