// The pure OCI planning: layer merge rules, whiteout names, descriptor and
// platform selection, image config parsing, the default process.

import { describe, expect, it } from 'vitest';
import {
  type Descriptor,
  classifyLayerName,
  hostPlatform,
  imageConfigJson,
  mergeLayers,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  planProcess,
  resolveUser,
  selectDockerImage,
  selectManifest,
  tagMatches,
} from '../../src/image/ociplan.js';
import { isPaeneError } from '../../src/model/errors.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return isPaeneError(e) ? `${e.code}: ${e.message}` : String(e);
  }
};

describe('layer entry names', () => {
  it('tells whiteouts and opaque markers from entries, refusing ones that leave their directory', () => {
    expect(classifyLayerName('a/b')).toEqual({ kind: 'entry' });
    expect(classifyLayerName('a/.wh.b')).toEqual({ kind: 'whiteout', target: 'a/b' });
    expect(classifyLayerName('.wh.top')).toEqual({ kind: 'whiteout', target: 'top' });
    expect(classifyLayerName('a/.wh..wh..opq')).toEqual({ kind: 'opaque', dir: 'a' });
    expect(classifyLayerName('.wh..wh..opq')).toEqual({ kind: 'opaque', dir: '' });
    expect(code(() => classifyLayerName('a/.wh...'))).toMatch(/^hostile-archive: .*outside/);
    expect(code(() => classifyLayerName('a/.wh..'))).toMatch(/^hostile-archive: .*outside/);
    expect(code(() => classifyLayerName('.wh.'))).toMatch(/^hostile-archive: .*outside/);
    expect(code(() => classifyLayerName('a/.wh..wh.plnk'))).toMatch(/^hostile-archive: entry .*unknown whiteout marker/);
  });
});

describe('the merge model', () => {
  it('later wins, whiteouts and opaque markers hide only lower layers, dirs merge, a file over a dir replaces its subtree', () => {
    const t = mergeLayers([
      [
        { path: 'a', type: 'dir' },
        { path: 'a/x', type: 'file', body: '1' },
        { path: 'a/y', type: 'file', body: '1' },
        { path: 'b/c/d', type: 'file', body: 'deep' },
        { path: 'f', type: 'file', body: 'f1' },
        { path: 'o/lower', type: 'file', body: 'l' },
        { path: 'o/sub/lower2', type: 'file', body: 'l' },
        { path: 'w/lower', type: 'file', body: 'l' },
        { path: 'v/lower', type: 'file', body: 'l' },
      ],
      [
        { path: 'a/x', type: 'file', body: '2' },
        { path: 'a/.wh.y', type: 'file' },
        { path: 'b', type: 'file', body: 'now a file' },
        { path: 'l', type: 'link', target: 'f' },
        { path: 'o/sub/mine', type: 'file', body: 'm' },
        { path: 'o/.wh..wh..opq', type: 'file' },
        { path: 'n/new', type: 'file', body: 'n' },
        { path: 'n/.wh.new', type: 'file' },
        { path: 'w/mine', type: 'file', body: 'w' },
        { path: '.wh.w', type: 'file' },
        { path: '.wh.v', type: 'file' },
        { path: 'v/mine', type: 'file', body: 'v' },
      ],
    ]);
    expect(Object.fromEntries([...t].sort(([x], [y]) => x.localeCompare(y)))).toEqual({
      '': { type: 'dir' },
      a: { type: 'dir' },
      'a/x': { type: 'file', body: '2' },
      b: { type: 'file', body: 'now a file' },
      f: { type: 'file', body: 'f1' },
      l: { type: 'file', body: 'f1' },
      n: { type: 'dir' },
      'n/new': { type: 'file', body: 'n' },
      o: { type: 'dir' },
      'o/sub': { type: 'dir' },
      'o/sub/mine': { type: 'file', body: 'm' },
      v: { type: 'dir' },
      'v/mine': { type: 'file', body: 'v' },
      w: { type: 'dir' },
      'w/mine': { type: 'file', body: 'w' },
    });
  });
});

const desc = (arch: string, variant?: string, os = 'linux'): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${arch
    .padEnd(64, '0')
    .replace(/[^0-9a-f]/g, 'a')
    .slice(0, 64)}`,
  size: 1,
  platform: { os, architecture: arch, ...(variant ? { variant } : {}) },
});

describe('platform selection', () => {
  const idx = [desc('amd64'), desc('arm64', 'v8'), desc('arm', 'v7'), desc('unknown', undefined, 'unknown')];
  it('maps node arches and parses os/arch[/variant]', () => {
    expect(hostPlatform('x64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(hostPlatform('arm64')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('linux/arm/v7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(code(() => parsePlatform('amd64'))).toMatch(/^invalid-argument: invalid platform/);
  });
  it('picks the host platform, an asked one, and refuses an absent one listing what there is', () => {
    expect(selectManifest(idx, hostPlatform('x64'), false).platform?.architecture).toBe('amd64');
    expect(selectManifest(idx, parsePlatform('linux/arm64'), true).platform?.architecture).toBe('arm64');
    expect(selectManifest(idx, parsePlatform('linux/arm64/v8'), true).platform?.architecture).toBe('arm64');
    expect(
      selectManifest([{ ...idx[1], platform: { os: 'linux', architecture: 'arm64' } }], parsePlatform('linux/arm64/v8'), true).platform
        ?.architecture,
    ).toBe('arm64');
    expect(code(() => selectManifest(idx, parsePlatform('linux/arm/v6'), true))).toMatch(
      /^not-found: .*linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7 \(choose/,
    );
    // a single-image index is taken whatever its platform unless one was asked for
    expect(selectManifest([idx[1]], hostPlatform('x64'), false).platform?.architecture).toBe('arm64');
    expect(code(() => selectManifest([idx[3]], hostPlatform('x64'), false))).toMatch(/no image manifest/);
  });
});

describe('choosing a named image', () => {
  it('matches names as docker does: a missing :latest and docker.io/library are implied', () => {
    expect(tagMatches('docker.io/library/nginx:latest', 'nginx')).toBe(true);
    expect(tagMatches('nginx:latest', 'nginx:latest')).toBe(true);
    expect(tagMatches('quay.io/x/y:1', 'quay.io/x/y:1')).toBe(true);
    expect(tagMatches('latest', 'latest')).toBe(true);
    expect(tagMatches('localhost:5000/app:2', 'localhost:5000/app:2')).toBe(true);
    expect(tagMatches('nginx:1.25', 'nginx')).toBe(false);
    expect(tagMatches('quay.io/nginx:latest', 'nginx')).toBe(false);
  });
  it('a docker-archive of several images needs --tag; a tag not there is refused listing what is', () => {
    const imgs = [
      { config: 'a.json', layers: [], repoTags: ['alpine:3.19'] },
      { config: 'b.json', layers: [], repoTags: ['docker.io/library/nginx:latest'] },
    ];
    expect(selectDockerImage(imgs, 'nginx').config).toBe('b.json');
    expect(selectDockerImage([imgs[0]], undefined).config).toBe('a.json');
    expect(code(() => selectDockerImage(imgs, undefined))).toMatch(
      /^invalid-argument: the archive holds 2 images \(alpine:3.19; docker.io\/library\/nginx:latest\); choose one with --tag/,
    );
    expect(code(() => selectDockerImage(imgs, 'redis'))).toMatch(
      /^not-found: .*no image tagged "redis"; the archive has "alpine:3.19", "docker.io\/library\/nginx:latest"/,
    );
  });
  it('an index picks by ref name, then by platform', () => {
    const named = [
      { ...desc('amd64'), ref: ['app:1'] },
      { ...desc('arm64', 'v8'), ref: ['app:1'] },
      { ...desc('amd64'), digest: `sha256:${'e'.repeat(64)}`, ref: ['db:2'] },
    ];
    expect(selectManifest(named, hostPlatform('x64'), false, 'index.json', 'db:2').digest).toBe(`sha256:${'e'.repeat(64)}`);
    expect(selectManifest(named, hostPlatform('arm64'), false, 'index.json', 'app:1').platform?.architecture).toBe('arm64');
    expect(code(() => selectManifest(named, hostPlatform('x64'), false, 'index.json', 'web'))).toMatch(
      /^not-found: .*no image named "web"; the archive has "app:1", "db:2"/,
    );
    expect(code(() => selectManifest(named, hostPlatform('x64'), false))).toMatch(
      /^invalid-argument: index.json: holds 2 images for linux\/amd64 \(app:1; db:2\); choose one with --tag/,
    );
    // skopeo's oci:DIR:REF of several refs: no platforms, told apart by name only
    const unplatformed = named.map(({ platform: _p, ...rest }) => rest);
    expect(selectManifest(unplatformed, hostPlatform('x64'), false, 'index.json', 'db:2').ref).toEqual(['db:2']);
  });
});

describe('documents', () => {
  it('refuses foreign layers, unknown media types and non-sha256 digests', () => {
    const m = (layer: Record<string, unknown>) => ({
      schemaVersion: 2,
      config: { mediaType: 'x', digest: `sha256:${'a'.repeat(64)}`, size: 2 },
      layers: [layer],
    });
    const ok = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'b'.repeat(64)}`, size: 3 };
    expect(parseManifest(m(ok), 'm').layers[0].size).toBe(3);
    expect(code(() => parseManifest(m({ ...ok, urls: ['http://x'] }), 'm'))).toMatch(/foreign layer/);
    expect(code(() => parseManifest(m({ ...ok, mediaType: 'application/x-squashfs' }), 'm'))).toMatch(/unsupported layer media type/);
    expect(code(() => parseManifest(m({ ...ok, digest: `sha512:${'b'.repeat(128)}` }), 'm'))).toMatch(/not sha256/);
    expect(code(() => parseManifest(m({ ...ok, size: -1 }), 'm'))).toMatch(/size must be/);
  });
  it('reads the run config and writes it back the same', () => {
    const raw = {
      architecture: 'amd64',
      os: 'linux',
      config: {
        Env: ['A=1', 'B=x=y'],
        Entrypoint: ['/e'],
        Cmd: ['c'],
        WorkingDir: '/w',
        User: 'app',
        ExposedPorts: { '53/udp': {}, '80/tcp': {} },
        Labels: { k: 'v' },
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${'c'.repeat(64)}`] },
    };
    const c = parseImageConfig(raw);
    expect(c.run).toEqual({
      env: ['A=1', 'B=x=y'],
      entrypoint: ['/e'],
      cmd: ['c'],
      workingDir: '/w',
      user: 'app',
      exposedPorts: ['53/udp', '80/tcp'],
      labels: { k: 'v' },
    });
    expect(parseImageConfig(imageConfigJson(c))).toEqual(c);
    expect(code(() => parseImageConfig({ ...raw, config: { Env: ['NOEQUALS'] } }))).toMatch(/not KEY=VALUE/);
  });
});

describe('the default process', () => {
  const run = {
    env: ['PATH=/usr/bin', 'A=1'],
    entrypoint: ['/bin/sh', '-c'],
    cmd: ['echo hi'],
    workingDir: '/srv',
    user: 'app',
    exposedPorts: [],
    labels: {},
  };
  it('no command: Entrypoint + Cmd with the image Env, WorkingDir and User', () => {
    expect(planProcess(run, { argv: [] }, 'img')).toEqual({
      argv: ['/bin/sh', '-c', 'echo hi'],
      env: { PATH: '/usr/bin', A: '1' },
      cwd: '/srv',
      user: 'app',
    });
  });
  it('a command replaces them; request env, cwd and user win', () => {
    expect(planProcess(run, { argv: ['ls'], env: { A: '2' }, cwd: '/', user: '0' }, 'img')).toEqual({
      argv: ['ls'],
      env: { PATH: '/usr/bin', A: '2' },
      cwd: '/',
      user: '0',
    });
  });
  it('a relative WorkingDir is taken from the root', () => {
    expect(planProcess({ ...run, workingDir: 'app/bin' }, { argv: [] }, 'img').cwd).toBe('/app/bin');
  });
  it('no command and no image default is a clear error; a flat image keeps / and no env', () => {
    expect(code(() => planProcess(undefined, { argv: [] }, 'base'))).toMatch(
      /^invalid-argument: exec needs a command: image "base" has no Cmd/,
    );
    expect(planProcess(undefined, { argv: ['id'] }, 'base')).toEqual({ argv: ['id'], env: {}, cwd: '/' });
  });
  it('resolves user names through the image passwd and group', () => {
    const pw = 'root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n';
    const gr = 'root:x:0:\nstaff:x:50:\n';
    expect(resolveUser('app', pw, gr)).toEqual({ uid: 1000, gid: 1001 });
    expect(resolveUser('app:staff', pw, gr)).toEqual({ uid: 1000, gid: 50 });
    expect(resolveUser('1000', pw, gr)).toEqual({ uid: 1000, gid: 1001 });
    expect(resolveUser('42:7', undefined, undefined)).toEqual({ uid: 42, gid: 7 });
    expect(resolveUser('42', undefined, undefined)).toEqual({ uid: 42, gid: 42 });
    expect(code(() => resolveUser('nobody', pw, gr))).toMatch(/not in the image's \/etc\/passwd/);
    expect(code(() => resolveUser('app:wheel', pw, gr))).toMatch(/not in the image's \/etc\/group/);
  });
});
