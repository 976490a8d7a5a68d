// containerd for real: Debian's containerd on a private socket, root and state
// directory drives paene-runc through its io.containerd.runc.v2 shim
// (`ctr run --runc-binary`): output, exit codes, exec, kill, pause, metrics
// through the shim, delete, and nothing left once the daemon stops.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_IMAGE } from '../../src/image/store.js';
import { openImageStore, storeImageSource } from '../../src/runtime/open.js';
import { seedBaseImage } from '../fixture.js';
import { describeReal, tempRoot } from '../helpers.js';

const BIN = path.resolve('bin/paene-runc');
const IMAGE = 'paene.test/base:1';

function have(prog: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${prog}`]).status === 0;
}

/** An OCI image layout (one layer: the rootfs) as a tar archive that `ctr images import` takes. */
function writeImageArchive(rootfs: string, dir: string): string {
  const layout = path.join(dir, 'layout');
  const blobs = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const blob = (b: Buffer) => {
    const h = crypto.createHash('sha256').update(b).digest('hex');
    fs.writeFileSync(path.join(blobs, h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const tar = spawnSync('tar', ['-C', rootfs, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
  if (tar.status !== 0) throw new Error(`tar: ${tar.stderr}`);
  const diffId = 'sha256:' + crypto.createHash('sha256').update(tar.stdout).digest('hex');
  const layer = blob(zlib.gzipSync(tar.stdout));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [diffId] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
      }),
    ),
  );
  fs.writeFileSync(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': IMAGE },
        },
      ],
    }),
  );
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const out = path.join(dir, 'image.tar');
  const t = spawnSync('tar', ['-C', layout, '-cf', out, '.']);
  if (t.status !== 0) throw new Error(`tar: ${t.stderr}`);
  return out;
}

/** The last lines of a log, for a failure's message. */
function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(unreadable: ${(err as Error).message})`;
  }
}

describeReal('containerd drives paene-runc through the runc v2 shim', () => {
  let dir: string;
  let sock: string;
  let daemon: ChildProcess | undefined;
  const cg = `paene-ctd-test-${process.pid}`;

  function ctr(args: string[], timeout = 60_000) {
    const r = spawnSync('ctr', ['--address', sock, ...args], { encoding: 'utf8', timeout });
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }
  const run = (id: string, extra: string[], cmd: string[]) =>
    ctr(['run', '--runc-binary', BIN, '--cgroup', `/${cg}/${id}`, ...extra, IMAGE, id, ...cmd]);

  beforeAll(async () => {
    if (!have('containerd') || !have('ctr') || !have('containerd-shim-runc-v2')) {
      const r = spawnSync('apt-get', ['install', '-y', '-q', 'containerd'], {
        encoding: 'utf8',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      if (r.status !== 0) throw new Error(`apt-get install containerd failed: ${r.stderr}`);
    }
    dir = tempRoot('containerd');
    sock = path.join(dir, 'containerd.sock');
    fs.writeFileSync(
      path.join(dir, 'config.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = "${sock}"`,
        '[ttrpc]',
        `  address = "${sock}.ttrpc"`,
      ].join('\n'),
    );
    daemon = spawn('containerd', ['--config', path.join(dir, 'config.toml')], {
      stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'containerd.log'), 'a')],
    });
    for (let i = 0; i < 200 && ctr(['version'], 5000).code !== 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(ctr(['version']).code).toBe(0);
    await seedBaseImage(path.join(dir, 'paene')); // the run's base image (built once, copied in), not a build of its own
    const rootfs = await storeImageSource(openImageStore(path.join(dir, 'paene'))).rootfsOf(DEFAULT_IMAGE);
    const imp = ctr(['images', 'import', writeImageArchive(rootfs, dir)], 120_000);
    expect(imp.stderr).toBe('');
    expect(ctr(['images', 'ls', '-q']).stdout).toContain(IMAGE);
  }, 240_000);

  /** Kills and deletes what a failed test left running, while the daemon still answers (a shim outlives it). */
  function clearTasks(): void {
    for (const id of ctr(['task', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    for (const id of ctr(['containers', 'ls', '-q']).stdout.split('\n').filter(Boolean)) {
      ctr(['task', 'delete', '-f', id]);
      ctr(['containers', 'delete', id]);
    }
  }

  afterAll(async () => {
    if (daemon?.pid) clearTasks();
    if (daemon?.pid) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon?.once('exit', r));
    }
    spawnSync('umount', ['-R', path.join(dir, 'root')]);
    for (const h of [...fs.readdirSync('/sys/fs/cgroup'), '.']) {
      try {
        fs.rmdirSync(path.join('/sys/fs/cgroup', h, cg));
      } catch {
        /* absent */
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('ctr run: output and exit status come back through the shim', () => {
    const r = run('r1', ['--rm'], ['/bin/sh', '-c', 'echo hello from $(cat /proc/1/comm); exit 7']);
    expect(r.stdout).toBe('hello from sh\n');
    expect(r.code).toBe(7);
  });

  it('a detached task: exec, metrics, pause/resume, kill, delete', async () => {
    expect(run('t1', ['-d'], ['/bin/sleep', '1000']).code).toBe(0);
    expect(ctr(['task', 'ls']).stdout).toMatch(/t1\s+\d+\s+RUNNING/);
    const e = ctr(['task', 'exec', '--exec-id', 'e1', 't1', '/bin/sh', '-c', 'echo in; cat /proc/1/comm; exit 4']);
    expect(e.code).toBe(4);
    // the exec joined the task's pid namespace, whose pid 1 is its sleep. Its output was lost once in about 12 runs
    // (exit status right, stdout empty), not reproduced since: the message carries what the next one needs.
    const said = () => `stderr ${JSON.stringify(e.stderr)}; containerd's log: ${tail(path.join(dir, 'containerd.log'))}`;
    expect(e.stdout, said()).toBe('in\nsleep\n');
    const m = ctr(['task', 'metrics', 't1']);
    expect(m.stdout).toMatch(/memory\.usage(_in_bytes)?\s+\d+/); // v1's name, or v2's on a pure v2 host
    expect(ctr(['task', 'pause', 't1']).code).toBe(0);
    expect(ctr(['task', 'ls']).stdout).toMatch(/t1\s+\d+\s+PAUSED/);
    expect(ctr(['task', 'resume', 't1']).code).toBe(0);
    expect(ctr(['task', 'kill', '-s', 'SIGKILL', 't1']).code).toBe(0);
    for (let i = 0; i < 100 && !/STOPPED/.test(ctr(['task', 'ls']).stdout); i++) await new Promise((r) => setTimeout(r, 50));
    expect(ctr(['task', 'ls']).stdout).toMatch(/t1\s+\d+\s+STOPPED/);
    expect(ctr(['task', 'delete', 't1']).code).toBe(0);
    expect(ctr(['containers', 'delete', 't1']).code).toBe(0);
    // the shim's runc state and the container's cgroup are gone
    expect(fs.existsSync(`/sys/fs/cgroup/pids/${cg}/t1`) || fs.existsSync(`/sys/fs/cgroup/${cg}/t1`)).toBe(false);
  });

  it('an error of paene-runc reaches the ctr user', () => {
    const r = ctr(['run', '--runc-binary', BIN, '--cgroup', 'system.slice:x:y', '--rm', IMAGE, 'bad', '/bin/true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cgroupsPath/);
    ctr(['containers', 'delete', 'bad']);
  });
  it('nothing is left once the daemon stops: no shim, no container process, no mount, no cgroup', async () => {
    // what the tests above deleted is gone by now; a task one of them left on failing is not this test's to judge
    const left = ctr(['task', 'ls', '-q']).stdout.split('\n').filter(Boolean);
    if (left.length > 0) {
      clearTasks();
      for (let i = 0; i < 100 && ctr(['task', 'ls', '-q']).stdout.trim() !== ''; i++) await new Promise((r) => setTimeout(r, 50));
    }
    if (daemon?.pid) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon?.once('exit', r));
      daemon = undefined;
    }
    const ours = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
        } catch {
          return false;
        }
      });
    expect(ours).toEqual([]);
    expect(
      fs
        .readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(dir)),
    ).toEqual([]);
    for (const h of ['pids', 'memory', 'cpu', 'devices', 'freezer', '.']) {
      const d = path.join('/sys/fs/cgroup', h, cg);
      expect(
        fs.existsSync(d)
          ? fs
              .readdirSync(d, { withFileTypes: true })
              .filter((e) => e.isDirectory())
              .map((e) => e.name)
          : [],
      ).toEqual([]);
    }
  });
});
