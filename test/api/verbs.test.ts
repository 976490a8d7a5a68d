// The API's calls for the rest of the CLI's verbs, on the real kernel:
// profiles, the network, volumes, images (import, export, du), files in and out of a
// context as tar streams (with a hostile tar), and the checks (one run, refusals).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tar from 'tar-stream';
import { afterAll, expect, it } from 'vitest';
import { ApiServer } from '../../src/api/server.js';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';
import { request, requestRaw } from './request.js';

/** A tar of these members (name -> content), made here: any name, hostile ones too. */
async function tarOf(members: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, text] of Object.entries(members)) pack.entry({ name, mode: 0o644 }, text);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The member names of a tar. */
async function namesIn(buf: Buffer): Promise<string[]> {
  const x = tar.extract();
  const names: string[] = [];
  x.on('entry', (h, s, next) => {
    names.push(h.name);
    s.resume();
    s.on('end', next);
  });
  const done = new Promise<void>((resolve, reject) => x.on('finish', () => resolve()).on('error', reject));
  x.end(buf);
  await done;
  return names;
}

describeReal('paene serve: every verb', () => {
  let server: ApiServer;
  let socket: string;
  const fx = useRuntime(
    'api-verbs',
    async () => {
      socket = path.join(fx.root, 'run', 'api.sock');
      server = new ApiServer(fx.rt, { socket, watchMs: 500, maxArchiveBytes: 1 << 20 }); // a small bound to reach
      await server.listen();
    },
    { setup: 60_000 },
  );
  afterAll(async () => {
    await server?.close();
  }, 120_000);

  it('profiles: create, list, show, edit, remove; a create applies them, its own fields winning', async () => {
    const made = await request(socket, 'POST', '/v1/profiles', { name: 'small', settings: { memory: '64M', nproc: '100', net: 'none' } });
    expect(made).toMatchObject({ status: 200, json: { name: 'small', settings: { memory: '64M', nproc: '100', net: 'none' } } });
    await request(socket, 'POST', '/v1/profiles', { name: 'svc', settings: { restart: 'always', nproc: '200' } });
    expect((await request(socket, 'GET', '/v1/profiles')).json).toHaveLength(2);
    expect((await request(socket, 'PATCH', '/v1/profiles/svc', { set: { cpu: '50%' }, unset: ['restart'] })).json).toEqual({
      name: 'svc',
      settings: { cpu: '50%', nproc: '200' },
    });
    const c = await request(socket, 'POST', '/v1/contexts', { name: 'paene-p1', profiles: ['small', 'svc'], restart: 'on-failure' });
    expect(c.status, JSON.stringify(c.json)).toBe(200);
    const cfg = fx.rt.config('paene-p1');
    expect(cfg.limits.memory).toBe(64 * 2 ** 20);
    expect(cfg.limits.nproc).toBe(200); // the later profile wins
    expect(cfg.limits.cpu).toMatchObject({ fillRate: 50 });
    expect(cfg.net.mode).toBe('none');
    expect(cfg.restart).toEqual({ mode: 'on-failure' }); // the body wins
    // removing a profile changes no context (its values were copied)
    expect((await request(socket, 'DELETE', '/v1/profiles/small')).json).toEqual({ removed: 'small' });
    expect(fx.rt.config('paene-p1').limits.memory).toBe(64 * 2 ** 20);
    // refusals: unknown profile, bad settings, bad names, unknown fields, too many
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'paene-p2', profiles: ['small'] })).toMatchObject({ status: 404 });
    expect(fx.rt.store.names()).toEqual(['paene-p1']);
    expect(await request(socket, 'POST', '/v1/profiles', { name: 'bad', settings: { memory: 'lots' } })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/profiles', { name: 'bad', settings: { xid: '3' } })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/profiles', { name: 'Bad!', settings: {} })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/profiles', { name: 'svc', settings: {} })).toMatchObject({ status: 409 });
    expect(await request(socket, 'POST', '/v1/profiles', { name: 'x', settings: {}, extra: 1 })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/profiles/svc', { unset: ['nothing'] })).toMatchObject({ status: 422 });
    expect(await request(socket, 'GET', '/v1/profiles/ghost')).toMatchObject({ status: 404 });
    const many = Array.from({ length: 33 }, () => 'svc');
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'paene-p3', profiles: many })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PUT', '/v1/profiles')).toMatchObject({ status: 405 });
    expect(fs.readdirSync(path.join(fx.root, 'profiles'))).toEqual(['svc.json']);
    await fx.rt.destroy('paene-p1', { force: true });
  });

  it('net: ls, settings (shown and changed), egress; caps --list; each with its refusal', async () => {
    await request(socket, 'POST', '/v1/contexts', { name: 'paene-n1', net: 'none' });
    expect((await request(socket, 'GET', '/v1/net')).json).toEqual([
      { name: 'paene-n1', state: 'stopped', mode: 'none', addresses: [], publish: [] },
    ]);
    expect((await request(socket, 'GET', '/v1/net/settings')).json).toMatchObject({ sharedPool4: expect.any(String) });
    expect(await request(socket, 'PUT', '/v1/contexts/paene-n1/egress', { egress: 'nat' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PUT', '/v1/contexts/paene-n1/egress', { egress: 'sideways' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PUT', '/v1/contexts/paene-n1/egress', {})).toMatchObject({ status: 422 });
    expect(await request(socket, 'PUT', '/v1/contexts/ghost/egress', { egress: 'none' })).toMatchObject({ status: 404 });
    // net set: a new model starts afresh; what is not given is kept
    const set = await request(socket, 'PATCH', '/v1/contexts/paene-n1/net', { net: 'shared', egress: 'none' });
    expect(set.status, JSON.stringify(set.json)).toBe(200);
    expect(set.json).toMatchObject({ mode: 'shared', egress: 'none', addresses: [expect.any(String)] });
    expect((await request(socket, 'PATCH', '/v1/contexts/paene-n1/net', { dns: ['9.9.9.9'] })).json).toMatchObject({
      mode: 'shared',
      egress: 'none',
      dns: ['9.9.9.9'],
    });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-n1/net', { net: 'bridge' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-n1/net', { ips: 'x' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-n1/net', { colour: 1 })).toMatchObject({ status: 422 });
    // net settings: changed as the CLI's flags change them; the walls' fields wait for the running contexts to stop
    const dns = await request(socket, 'PATCH', '/v1/net/settings', { dns: '9.9.9.9,1.1.1.1' });
    expect(dns.status, JSON.stringify(dns.json)).toBe(200);
    expect(dns.json).toMatchObject({ dns: ['9.9.9.9', '1.1.1.1'] });
    expect((await request(socket, 'PATCH', '/v1/net/settings', { dns: 'host' })).json).not.toHaveProperty('dns');
    expect(await request(socket, 'PATCH', '/v1/net/settings', { colour: 1 })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/net/settings', { publishHost: '10.0.0.1' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/net/settings', { egressPool: '127.5.0.0/16' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/net/settings', { dns: '127.0.0.53' })).toMatchObject({ status: 422 });
    expect((await request(socket, 'POST', '/v1/contexts/paene-n1/start')).status).toBe(200);
    const pool = (await request(socket, 'GET', '/v1/net/settings')).json as { sharedPool4: string };
    expect(await request(socket, 'PATCH', '/v1/net/settings', { sharedPool: '127.201.0.0/16' })).toMatchObject({ status: 409 });
    expect((await request(socket, 'GET', '/v1/net/settings')).json).toMatchObject({ sharedPool4: pool.sharedPool4 });
    // caps --list
    const caps = (await request(socket, 'GET', '/v1/caps')).json as { profiles: { profile: string }[]; ccaps: unknown[] };
    expect(caps.profiles.map((p) => p.profile)).toEqual(['secure', 'strict', 'privileged']);
    expect(caps.ccaps.length).toBeGreaterThan(0);
    await fx.rt.destroy('paene-n1', { force: true });
  });

  it('images: export as a tar stream, import one, the store usage; bad formats and archives refused', async () => {
    await fx.rt.create({ name: 'paene-i0', image: 'base', net: { mode: 'none', addresses: [], publish: [] } });
    await fx.rt.start('paene-i0'); // builds the base image on first use
    await fx.rt.stop('paene-i0', { timeoutMs: 2000 });
    const out = await requestRaw(socket, 'GET', '/v1/images/base/archive?format=tar');
    expect(out.status).toBe(200);
    const names = await namesIn(out.body);
    expect(names.some((n) => /(^|\/)bin\/busybox$|(^|\/)bin\/sh$/.test(n))).toBe(true);
    expect((await requestRaw(socket, 'GET', '/v1/images/base/archive?format=zip')).status).toBe(400);
    expect((await requestRaw(socket, 'GET', '/v1/images/ghost/archive')).status).toBe(404);
    // the exported root filesystem back in under another name
    const imp = await request(socket, 'PUT', '/v1/images/paene-copy?maxFiles=100000', undefined, out.body);
    expect(imp.status, JSON.stringify(imp.json)).toBe(200);
    expect(imp.json).toMatchObject({ name: 'paene-copy' });
    const hostile = await tarOf({ '../../paene-h2-escape': 'x' });
    expect((await request(socket, 'PUT', '/v1/images/paene-bad', undefined, hostile)).status).toBe(422);
    expect(await request(socket, 'PUT', '/v1/images/paene-few?maxFiles=2', undefined, out.body)).toMatchObject({ status: 413 });
    expect(await request(socket, 'PUT', '/v1/images/paene-q?maxFiles=lots', undefined, out.body)).toMatchObject({ status: 400 });
    const du = await request(socket, 'GET', '/v1/image-usage?top=3');
    expect(du.json).toMatchObject({ images: 2 });
    expect(await request(socket, 'GET', '/v1/image-usage?top=0')).toMatchObject({ status: 400 });
    expect((await request(socket, 'DELETE', '/v1/images/paene-copy')).status).toBe(200);
    // build: a long call; a bad name refused before anything is built
    expect(await request(socket, 'POST', '/v1/images/build', { name: '../x' })).toMatchObject({ status: 422 });
    const built = await request(socket, 'POST', '/v1/images/build', { name: 'paene-built' });
    expect(built.status, JSON.stringify(built.json).slice(0, 300)).toBe(200);
    expect(built.json).toMatchObject({ name: 'paene-built', files: expect.any(Number) });
    expect((await request(socket, 'DELETE', '/v1/images/paene-built')).status).toBe(200);
    await fx.rt.destroy('paene-i0', { force: true });
  }, 300_000);

  it('files in and out of a running context as tar streams; a hostile tar stays inside the context', async () => {
    await fx.rt.create({ name: 'paene-f1', image: 'base', net: { mode: 'none', addresses: [], publish: [] } });
    await fx.rt.start('paene-f1');
    const put = await request(socket, 'PUT', '/v1/contexts/paene-f1/archive?path=/tmp', undefined, await tarOf({ 'd/hello': 'hi\n' }));
    expect(put, JSON.stringify(put.json)).toMatchObject({ status: 200, json: { path: '/tmp' } });
    expect((await fx.rt.execCapture('paene-f1', ['cat', '/tmp/d/hello'])).stdout).toBe('hi\n');
    const got = await requestRaw(socket, 'GET', '/v1/contexts/paene-f1/archive?path=/tmp/d');
    expect(got.status).toBe(200);
    expect((await namesIn(got.body)).sort()).toEqual(['d/', 'd/hello']);
    // hostile names: '..' past the root and an absolute one land inside the context or nowhere, never on the host
    const marker = `paene-h2-${process.pid}`;
    const hostile = await tarOf({ [`../../../../../../tmp/${marker}-dots`]: 'x', [`/tmp/${marker}-abs`]: 'x' });
    await request(socket, 'PUT', '/v1/contexts/paene-f1/archive?path=/tmp', undefined, hostile);
    expect(fs.existsSync(path.join(os.tmpdir(), `${marker}-dots`))).toBe(false);
    expect(fs.existsSync(path.join(os.tmpdir(), `${marker}-abs`))).toBe(false);
    // past the bound (1 MiB here, 64 GiB by default): cut and refused
    const big = await tarOf({ big: 'x'.repeat(3 << 20) });
    expect(await request(socket, 'PUT', '/v1/contexts/paene-f1/archive?path=/tmp', undefined, big)).toMatchObject({
      status: 413,
      json: { error: { code: 'limit-exceeded' } },
    });
    // refusals: a relative or missing path, a directory that is not there, a stopped context
    expect((await requestRaw(socket, 'GET', '/v1/contexts/paene-f1/archive?path=tmp')).status).toBe(400);
    expect((await requestRaw(socket, 'GET', '/v1/contexts/paene-f1/archive')).status).toBe(400);
    expect((await requestRaw(socket, 'GET', '/v1/contexts/paene-f1/archive?path=/nothing/here')).status).toBe(404);
    expect((await request(socket, 'PUT', '/v1/contexts/paene-f1/archive?path=/nothing', undefined, await tarOf({ a: 'b' }))).status).toBe(
      404,
    );
    await fx.rt.stop('paene-f1', { timeoutMs: 2000 });
    expect((await requestRaw(socket, 'GET', '/v1/contexts/paene-f1/archive?path=/tmp')).status).toBe(409);
    await fx.rt.destroy('paene-f1', { force: true });
  }, 120_000);

  it("volumes: create, list, inspect, remove; one a context mounts is not removed; create's mounts", async () => {
    expect((await request(socket, 'POST', '/v1/volumes', { name: 'paene-vol' })).json).toMatchObject({ name: 'paene-vol', usedBy: [] });
    expect(await request(socket, 'POST', '/v1/volumes', { name: 'paene-vol' })).toMatchObject({ status: 409 });
    const c = await request(socket, 'POST', '/v1/contexts', { name: 'paene-m1', net: 'none', mounts: ['paene-vol:/data:ro'] });
    expect(c.status, JSON.stringify(c.json)).toBe(200);
    expect(fx.rt.config('paene-m1').mounts).toEqual([{ source: 'paene-vol', target: '/data', readonly: true }]);
    expect((await request(socket, 'GET', '/v1/volumes')).json).toMatchObject([{ name: 'paene-vol', usedBy: ['paene-m1'] }]);
    expect((await request(socket, 'GET', '/v1/volumes/paene-vol')).json).toMatchObject({ usedBy: ['paene-m1'] });
    expect(await request(socket, 'DELETE', '/v1/volumes/paene-vol')).toMatchObject({ status: 409 });
    // a profile's mounts apply too; the body's replace them
    await request(socket, 'POST', '/v1/profiles', { name: 'withvol', settings: { mount: ['paene-vol:/srv'] } });
    await request(socket, 'POST', '/v1/contexts', { name: 'paene-m2', net: 'none', profiles: ['withvol'] });
    expect(fx.rt.config('paene-m2').mounts).toEqual([{ source: 'paene-vol', target: '/srv', readonly: false }]);
    // refusals: a bad name, an unknown volume, a source the runtime refuses, too many mounts
    expect(await request(socket, 'POST', '/v1/volumes', { name: 'Bad/..' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/volumes', {})).toMatchObject({ status: 422 });
    expect(await request(socket, 'GET', '/v1/volumes/ghost')).toMatchObject({ status: 404 });
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'paene-m3', mounts: ['/proc:/p'] })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'paene-m3', mounts: 'x:/y' })).toMatchObject({ status: 422 });
    const many = Array.from({ length: 33 }, (_, i) => `paene-vol:/d${i}`);
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'paene-m3', mounts: many })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/profiles', { name: 'badvol', settings: { mount: ['/srv:/proc/x'] } })).toMatchObject({
      status: 422,
    });
    // config --mount/--unmount over the API
    const changed = await request(socket, 'PATCH', '/v1/contexts/paene-m1/mounts', { add: ['paene-vol:/opt'], remove: ['/data'] });
    expect(changed.json).toEqual({ name: 'paene-m1', mounts: [{ source: 'paene-vol', target: '/opt', readonly: false }] });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-m1/mounts', { remove: ['/nothing'] })).toMatchObject({ status: 404 });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-m1/mounts', {})).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-m1/mounts', { add: ['paene-none:/x'] })).toMatchObject({ status: 404 });
    expect(fx.rt.store.names().sort()).toEqual(['paene-m1', 'paene-m2']);
    for (const n of ['paene-m1', 'paene-m2']) await fx.rt.destroy(n, { force: true });
    expect((await request(socket, 'DELETE', '/v1/volumes/paene-vol')).json).toEqual({ removed: 'paene-vol' });
    expect((await request(socket, 'GET', '/v1/volumes')).json).toEqual([]);
  });

  it('du, commit, hostname, caps, addresses and autostart; each with its refusal', async () => {
    await request(socket, 'POST', '/v1/contexts', { name: 'paene-d1', net: 'shared', autostart: true });
    const st = await request(socket, 'POST', '/v1/autostart');
    expect(st.status, JSON.stringify(st.json)).toBe(200);
    expect(st.json).toEqual([{ name: 'paene-d1', ok: true }]);
    expect(fx.rt.store.live('paene-d1')).toBeDefined();
    await fx.rt.execCapture('paene-d1', ['sh', '-c', 'echo data > /root/new']);
    expect((await request(socket, 'GET', '/v1/contexts/paene-d1/du')).json).toMatchObject({ name: 'paene-d1', image: 'base' });
    expect(await request(socket, 'GET', '/v1/contexts/ghost/du')).toMatchObject({ status: 404 });
    const h = await request(socket, 'PUT', '/v1/contexts/paene-d1/hostname', { hostname: 'web.example' });
    expect(h.json).toEqual({ name: 'paene-d1', hostname: 'web.example', live: true });
    expect((await fx.rt.execCapture('paene-d1', ['hostname'])).stdout).toBe('web.example\n');
    expect(await request(socket, 'PUT', '/v1/contexts/paene-d1/hostname', { hostname: 'bad host!' })).toMatchObject({ status: 422 });
    expect((await request(socket, 'GET', '/v1/contexts/paene-d1/caps')).status).toBe(200);
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-d1/caps', { profile: 'strict' })).toMatchObject({ status: 409 });
    const net = fx.rt.config('paene-d1').net;
    const extra = (net.addresses[0] as string).replace(/\.\d+$/, '.250');
    const added = await request(socket, 'POST', '/v1/contexts/paene-d1/addresses', { address: extra });
    expect(added.status, JSON.stringify(added.json)).toBe(200);
    expect((added.json as { addresses: string[] }).addresses).toContain(extra);
    expect((await request(socket, 'DELETE', `/v1/contexts/paene-d1/addresses/${extra}`)).json).toMatchObject({ addresses: net.addresses });
    expect(await request(socket, 'POST', '/v1/contexts/paene-d1/addresses', { address: 'nope' })).toMatchObject({ status: 422 });
    const c = await request(socket, 'POST', '/v1/contexts/paene-d1/commit', { name: 'paene-committed' });
    expect(c.status, JSON.stringify(c.json)).toBe(200);
    expect(c.json).toMatchObject({ name: 'paene-committed' });
    expect(await request(socket, 'POST', '/v1/contexts/paene-d1/commit', { name: 'paene-committed' })).toMatchObject({ status: 409 });
    expect(await request(socket, 'POST', '/v1/contexts/paene-d1/commit', {})).toMatchObject({ status: 422 });
    // config's capabilities: a stopped context's
    await fx.rt.stop('paene-d1', { timeoutMs: 2000 });
    const caps = await request(socket, 'PATCH', '/v1/contexts/paene-d1/caps', {
      profile: 'strict',
      add: ['net_raw'],
      ccaps: ['SET_UTSNAME'],
    });
    expect(caps.status, JSON.stringify(caps.json)).toBe(200);
    expect(caps.json).toEqual({ name: 'paene-d1', caps: { profile: 'strict', add: ['NET_RAW'], drop: [] }, ccaps: ['SET_UTSNAME'] });
    expect(fx.rt.config('paene-d1').caps.profile).toBe('strict');
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-d1/caps', { profile: 'root' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-d1/caps', { add: ['NOT_A_CAP'] })).toMatchObject({ status: 422 });
    expect(await request(socket, 'PATCH', '/v1/contexts/paene-d1/caps', { colour: 1 })).toMatchObject({ status: 422 });
    await fx.rt.destroy('paene-d1', { force: true });
    expect((await request(socket, 'DELETE', '/v1/images/paene-committed')).status).toBe(200);
  }, 180_000);

  it('checks refuse what they do not know (the runs themselves are the check suites)', async () => {
    expect(await request(socket, 'POST', '/v1/check/network', { modes: ['bogus'] })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/check/network', { modes: [] })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/check/isolation', { only: ['fork-bomb', 'x'] })).toMatchObject({ status: 422 });
    expect(await request(socket, 'GET', '/v1/check/escape')).toMatchObject({ status: 405 });
  });

  it('runs a check as a long call, one at a time', async () => {
    const first = request(socket, 'POST', '/v1/check/network', { modes: ['none'] });
    await new Promise((r) => setTimeout(r, 200));
    expect(await request(socket, 'POST', '/v1/check/escape', {})).toMatchObject({ status: 409, json: { error: { code: 'busy' } } });
    const r = await first;
    expect(r.status, JSON.stringify(r.json).slice(0, 500)).toBe(200);
    const { rows, summary } = r.json as { rows: { mode: string }[]; summary: { escaped: number; adminFailed: number } };
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((x) => x.mode === 'none')).toBe(true);
    expect(summary).toMatchObject({ escaped: 0, adminFailed: 0 });
  }, 180_000);
});
