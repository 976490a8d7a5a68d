// A context made from an imported layered image runs the image's default
// process: `exec` with no command runs Entrypoint + Cmd with the image's
// Env, WorkingDir and User; a command given runs with the same Env. The
// image is two layers: the base image's tree, and one that adds a user,
// a working directory and whites out a file of the first.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { openImageStore } from '../../src/runtime/open.js';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';
import { dockerTar } from '../image/ocihelp.js';
import { collect, streamOf } from '../image/tarhelp.js';

describeReal('a context from an imported layered image', () => {
  const fx = useRuntime(
    'imgcfg',
    async () => {
      const store = openImageStore(fx.root);
      await fx.rt.create({ name: 'ic-base', image: 'base' }); // builds the base image
      const baseTar = await collect((out) => store.exportTar('base', out));
      const passwd = fs.readFileSync(path.join(store.rootfsOf('base'), 'etc/passwd'), 'utf8') + 'app:x:1000:1000::/srv:/bin/sh\n';
      const archive = await dockerTar({
        layers: [
          { entries: [], raw: baseTar, compression: 'gzip' },
          {
            compression: 'zstd',
            entries: [
              { name: 'etc/passwd', body: passwd },
              { name: 'etc/.wh.hostname', body: '' },
              { name: 'srv/', type: 'directory', mode: 0o755 },
              { name: 'srv/data', body: 'from layer two\n' },
            ],
          },
        ],
        config: {
          Env: ['PATH=/usr/bin:/bin', 'GREETING=hello from the image'],
          Entrypoint: ['/bin/sh', '-c'],
          Cmd: ['echo "$GREETING"; pwd; id -u; cat data; test -e /etc/hostname && echo hostname-present || echo hostname-gone'],
          WorkingDir: '/srv',
          User: 'app',
        },
      });
      await store.importTar(streamOf(archive), 'layered');
      await fx.rt.create({ name: 'ic-app', image: 'layered' });
      await fx.rt.start('ic-app');
    },
    { setup: 240_000 },
  );

  it('exec with no command runs the image Cmd with its Env, WorkingDir and User, over the merged layers', async () => {
    const r = await fx.rt.execCapture('ic-app', [], { timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual(['hello from the image', '/srv', '1000', 'from layer two', 'hostname-gone', '']);
  });

  it('a given command replaces the Cmd but keeps the Env; the request overrides cwd, user and variables', async () => {
    const r = await fx.rt.execCapture('ic-app', ['/bin/sh', '-c', 'echo "$GREETING|$EXTRA"; pwd; id -u'], {
      cwd: '/',
      user: { uid: 0, gid: 0 },
      env: { EXTRA: 'x' },
      timeoutMs: 30_000,
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['hello from the image|x', '/', '0', '']);
  });

  it('a context of a flat image still needs a command, with a clear error', async () => {
    await expect(fx.rt.execCapture('ic-base', [], { timeoutMs: 30_000 })).rejects.toThrow(/not running|exec needs a command/);
    await fx.rt.start('ic-base');
    await expect(fx.rt.execCapture('ic-base', [], { timeoutMs: 30_000 })).rejects.toThrow(
      /exec needs a command: image "base" has no Cmd or Entrypoint/,
    );
  });
});
