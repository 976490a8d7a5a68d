// `paene image export --format oci|docker|tar` and back: the round trip
// through paene itself, and through real tools from Debian (skopeo reads
// and converts the OCI archive; umoci unpacks it), plus the CLI verbs
// import (file, directory, --platform), inspect and export.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExportFormat } from '../../src/image/ociexport.js';
import { ImageStore } from '../../src/image/store.js';
import { isCI, tempRoot } from '../helpers.js';
import { imageCli } from './clihelp.js';
import { type TestLayer, dockerTar, ociDir, ociTar } from './ocihelp.js';
import { collect, diffSnapshots, snapshot, streamOf } from './tarhelp.js';

const has = (tool: string): boolean => spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
const asRoot = process.getuid?.() === 0;

let root: string;
let store: ImageStore;

const layers: TestLayer[] = [
  {
    compression: 'gzip',
    entries: [
      { name: 'etc/', type: 'directory', mode: 0o755 },
      { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' },
      { name: 'etc/old', body: 'to be deleted' },
      { name: 'usr/', type: 'directory', mode: 0o755 },
      { name: 'usr/bin/', type: 'directory', mode: 0o755 },
      { name: 'usr/bin/su', body: 'setuid thing', mode: 0o4755 },
      { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
      { name: 'home/', type: 'directory', mode: 0o755 },
      { name: 'home/app/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
      { name: 'home/app/notes', body: 'mine', uid: 1000, gid: 1000, mode: 0o600 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'big', body: Buffer.alloc(300_000, 3) },
    ],
  },
  {
    compression: 'zstd',
    entries: [
      { name: 'etc/.wh.old', body: '' },
      { name: 'srv/', type: 'directory', mode: 0o755 },
      { name: 'srv/run.sh', body: '#!/bin/sh\necho hi\n', mode: 0o755 },
      { name: 'srv/same-as-su', type: 'link', linkname: 'usr/bin/su' },
    ],
  },
];
const config = {
  Env: ['PATH=/usr/bin:/bin', 'MODE=test'],
  Entrypoint: ['/bin/sh'],
  Cmd: ['/srv/run.sh'],
  WorkingDir: '/srv',
  User: 'app',
  ExposedPorts: { '8080/tcp': {} },
  Labels: { 'org.example': 'yes' },
};

function exportBuffer(name: string, format: ExportFormat): Promise<Buffer> {
  return collect((out) => store.exportArchive(name, format, out));
}

/**
 * A tree as names, types, modes, owners (as root), content and targets; mtimes
 * too, except the root's: no layer has an entry for it, so it gets the time of
 * its import (as GNU tar gives implicit directories).
 */
const tree = (rootfs: string): Map<string, string> => {
  const m = snapshot(rootfs, { mtimes: true });
  m.set('.', m.get('.')!.replace(/ t\d+/, ''));
  if (!asRoot) for (const [k, v] of m) m.set(k, v.replace(/ \d+:\d+/, ''));
  return m;
};

beforeAll(async () => {
  root = tempRoot('ociexport');
  store = new ImageStore(path.join(root, 'images'));
  await store.importTar(streamOf(await ociTar([{ layers, config }])), 'src');
}, 60_000);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('export and import back', () => {
  for (const format of ['oci', 'docker', 'tar'] as const) {
    it(`--format ${format}: the same tree and (oci, docker) the same config`, async () => {
      const buf = await exportBuffer('src', format);
      const back = await store.importTar(streamOf(buf), `back-${format}`);
      expect(back.format).toBe(format);
      expect(diffSnapshots(tree(store.get('src').rootfs), tree(back.rootfs))).toEqual([]);
      if (format !== 'tar') expect(back.config?.run).toEqual(store.get('src').config?.run);
      // re-importing stores nothing new: every file is already an object
      expect(fs.statSync(path.join(back.rootfs, 'big')).ino).toBe(fs.statSync(path.join(store.get('src').rootfs, 'big')).ino);
    });
  }
});

describe.skipIf(!has('skopeo') && !isCI)('skopeo reads the OCI export', () => {
  it('inspects its config, converts it to a docker-archive and an OCI directory that paene imports to the same tree', async () => {
    const file = path.join(root, 'src-oci.tar');
    fs.writeFileSync(file, await exportBuffer('src', 'oci'));
    const insp = spawnSync('skopeo', ['inspect', '--config', `oci-archive:${file}`], { encoding: 'utf8' });
    expect(insp.stderr).toBe('');
    const cfg = JSON.parse(insp.stdout) as { config: Record<string, unknown>; rootfs: { diff_ids: string[] } };
    expect(cfg.config).toMatchObject({
      Env: config.Env,
      Entrypoint: config.Entrypoint,
      Cmd: config.Cmd,
      WorkingDir: '/srv',
      User: 'app',
      Labels: config.Labels,
    });
    expect(cfg.rootfs.diff_ids).toHaveLength(1);

    const dockerFile = path.join(root, 'via-skopeo-docker.tar');
    const ociDirOut = path.join(root, 'via-skopeo-oci');
    for (const dest of [`docker-archive:${dockerFile}:paene/src:latest`, `oci:${ociDirOut}:latest`]) {
      const r = spawnSync('skopeo', ['copy', '--quiet', `oci-archive:${file}`, dest], { encoding: 'utf8' });
      expect(r.stderr, dest).toBe('');
      expect(r.status, dest).toBe(0);
    }
    const viaDocker = await store.importFile(dockerFile, 'via-docker'); // read in place through its header index
    const viaDir = await store.importLayout(ociDirOut, 'via-dir');
    for (const i of [viaDocker, viaDir]) {
      expect(diffSnapshots(tree(store.get('src').rootfs), tree(i.rootfs))).toEqual([]);
      expect(i.config?.run).toEqual(store.get('src').config?.run);
    }
    expect(viaDocker.format).toBe('docker');
    expect(viaDir.format).toBe('oci');
  });

  it('reads the docker-archive export too', async () => {
    const file = path.join(root, 'src-docker.tar');
    fs.writeFileSync(file, await exportBuffer('src', 'docker'));
    const insp = spawnSync('skopeo', ['inspect', '--config', `docker-archive:${file}`], { encoding: 'utf8' });
    expect(insp.stderr).toBe('');
    const cfg = JSON.parse(insp.stdout) as { config: Record<string, unknown> };
    expect(cfg.config).toMatchObject({ Env: config.Env, Cmd: config.Cmd, WorkingDir: '/srv', User: 'app' });
  });

  it('paene reads what skopeo writes from a layered docker-archive (compressed and re-digested layers)', async () => {
    const src = path.join(root, 'layered-docker.tar');
    fs.writeFileSync(src, await dockerTar({ layers, config }));
    const out = path.join(root, 'layered-oci.tar');
    const r = spawnSync('skopeo', ['copy', '--quiet', `docker-archive:${src}`, `oci-archive:${out}:latest`], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const a = await store.importTar(fs.createReadStream(src), 'ld-docker');
    const b = await store.importFile(out, 'ld-oci');
    expect(b.config?.layers).toHaveLength(2);
    expect(diffSnapshots(tree(a.rootfs), tree(b.rootfs))).toEqual([]);
  });
});

describe.skipIf((!has('umoci') || !asRoot) && !isCI)('umoci unpacks the OCI export', () => {
  it('to the same files, with the config as its runtime spec', () => {
    const layout = path.join(root, 'umoci-layout');
    const bundle = path.join(root, 'umoci-bundle');
    fs.mkdirSync(layout);
    return (async () => {
      fs.writeFileSync(path.join(root, 'u.tar'), await exportBuffer('src', 'oci'));
      expect(spawnSync('tar', ['-xf', path.join(root, 'u.tar'), '-C', layout]).status).toBe(0);
      const r = spawnSync('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      // umoci records its own metadata (mtree) beside rootfs; compare the root filesystems
      const want = snapshot(store.get('src').rootfs);
      const got = snapshot(path.join(bundle, 'rootfs'));
      expect(diffSnapshots(want, got)).toEqual([]);
      const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as {
        process: { args: string[]; env: string[]; cwd: string; user: { uid: number } };
      };
      expect(spec.process.args).toEqual(['/bin/sh', '/srv/run.sh']);
      expect(spec.process.env).toEqual(expect.arrayContaining(['MODE=test']));
      expect(spec.process.cwd).toBe('/srv');
      expect(spec.process.user.uid).toBe(1000);
    })();
  });
});

describe('the CLI verbs', () => {
  let cliRoot: string;
  const run = imageCli(() => cliRoot);
  beforeAll(() => {
    cliRoot = fs.mkdtempSync(path.join(root, 'cli-'));
  });

  it('import a layout directory and a two-platform archive with --platform; inspect; export --format oci -o', async () => {
    const dir = path.join(cliRoot, 'layout');
    await ociDir(dir, [{ layers, config }]);
    expect(await run('image', 'import', dir, '--name', 'fromdir')).toMatch(/^imported image fromdir: .*2 layers \(oci, linux\/\w+\)/);
    const multi = path.join(cliRoot, 'multi.tar');
    fs.writeFileSync(
      multi,
      await ociTar([
        { layers: [{ entries: [{ name: 'arch', body: 'amd64' }] }], platform: { os: 'linux', architecture: 'amd64' } },
        { layers: [{ entries: [{ name: 'arch', body: 'riscv64' }] }], platform: { os: 'linux', architecture: 'riscv64' } },
      ]),
    );
    expect(await run('image', 'import', multi, '--name', 'rv', '--platform', 'linux/riscv64')).toMatch(/linux\/riscv64/);
    await expect(run('image', 'import', multi, '--name', 'bad', '--platform', 'riscv64')).rejects.toThrow(/invalid platform "riscv64"/);

    const text = await run('image', 'inspect', 'fromdir');
    expect(text).toMatch(/^format +oci$/m);
    expect(text).toMatch(/^entrypoint +\["\/bin\/sh"\]$/m);
    expect(text).toMatch(/^cmd +\["\/srv\/run\.sh"\]$/m);
    expect(text).toMatch(/^workingdir +\/srv$/m);
    expect(text).toMatch(/^user +app$/m);
    expect(text).toMatch(/^ports +8080\/tcp$/m);
    const j = JSON.parse(await run('image', 'inspect', 'fromdir', '--json')) as {
      format: string;
      config: { run: { env: string[] }; layers: unknown[] };
    };
    expect(j.format).toBe('oci');
    expect(j.config.run.env).toEqual(config.Env);
    expect(j.config.layers).toHaveLength(2);

    const out = path.join(cliRoot, 'out.tar');
    await run('image', 'export', 'fromdir', '--format', 'oci', '-o', out);
    expect(await run('image', 'import', out, '--name', 'again')).toMatch(/1 layer \(oci/);
    expect(
      diffSnapshots(
        tree(new ImageStore(path.join(cliRoot, 'images')).get('fromdir').rootfs),
        tree(new ImageStore(path.join(cliRoot, 'images')).get('again').rootfs),
      ),
    ).toEqual([]);
    await expect(run('image', 'export', 'fromdir', '--format', 'squash', '-o', out)).rejects.toThrow(
      /Allowed choices are oci, docker, tar/,
    );
  });
});
