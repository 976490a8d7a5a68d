// The API's calls for the rest of the CLI's verbs (docs/api.md, "Every verb"):
// the network (net ls, net settings, net egress), volumes, images (build, import,
// export, du), files in and out of a context (cp, as a tar stream), and the
// checks (escape, isolation, network) as long calls. Every size and count is
// bounded (docs/api.md, Bounds).

import type { ChildProcess } from 'node:child_process';
import type http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PaeneError } from '../model/errors.js';
import { parseCount, parseSize } from '../model/units.js';
import { MOUNTS_MAX, type MountSpec, parseMountArg, validateMounts } from '../model/mounts.js';
import { formatPublish } from '../net/bridgeplan.js';
import { netSpecFrom, validateNetSpec } from '../net/model.js';
import { checkNetAgainstCaps, validateHostname } from '../context/config.js';
import { changeCapSpec, parseCcap, profilesReport, validateCcaps } from '../model/caps.js';
import { buildBaseImage } from '../image/base.js';
import { EXPORT_FORMATS, type ExportFormat } from '../image/ociexport.js';
import { DEFAULT_IMAGE, validateImageName } from '../image/store.js';
import { GUEST_TAR } from '../runtime/copy.js';
import { openImageStore } from '../runtime/open.js';
import type { Runtime } from '../runtime/runtime.js';
import { liveCaps } from '../runtime/caps.js';
import { NET_SETTINGS_WORDS, changeNetSettings } from '../runtime/netsettings.js';
import { commitContext, contextDiskUse } from '../runtime/disk.js';
import { changeMounts } from '../runtime/mountchange.js';
import { createVolume, inspectVolume, listVolumes, removeVolume } from '../runtime/volumes.js';
import { runEscapeCheck } from '../check/escape-run.js';
import { EXPERIMENTS, type ExperimentName, runIsolationSuite } from '../check/isolation.js';
import { type NetRow, egressSuite, isolatedSuite, sharedSuite, summarize } from '../check/network.js';
import { HttpError, field, flag, objectBody, send } from './http.js';
import type { Call, Route } from './route.js';

/** The largest tar a PUT of files takes (bytes); past it the copy is cut and refused (413). */
export const MAX_ARCHIVE_BYTES = 64 * 2 ** 30;
/** An image import's bounds: file data and entries, at most (the CLI's defaults are the defaults). */
export const MAX_IMPORT_BYTES = 1024 * 2 ** 30;
export const MAX_IMPORT_FILES = 10_000_000;
/** The longest path a copy names. */
const MAX_PATH = 4096;

const NAME = '([a-z0-9][a-z0-9_-]{0,62})';
const IMAGE = '([A-Za-z0-9][A-Za-z0-9_.-]{0,62})';
const NET_CHECK_MODES = ['shared', 'none', 'private', 'egress'] as const;

/** A query word as a 400 when it is malformed (a query is not a JSON body). */
function queryWord<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PaeneError && e.code === 'invalid-argument' && !(e instanceof HttpError)) throw new HttpError(e.code, e.message, 400);
    throw e;
  }
}

/** A guest path from the query: absolute, no NUL or newline, bounded. */
function guestPath(q: URLSearchParams): string {
  const p = q.get('path');
  if (p === null || !p.startsWith('/') || p.length > MAX_PATH || /[\0\n\r]/.test(p))
    throw new HttpError('invalid-argument', `'path' is an absolute path in the context (at most ${MAX_PATH} characters)`, 400);
  return p;
}

export function verbRoutes(rt: Runtime, maxArchiveBytes = MAX_ARCHIVE_BYTES): Route[] {
  const ctx = (tail: string) => new RegExp(`^/v1/contexts/${NAME}${tail}$`);
  const name = (c: Call) => c.m[1] as string;
  let checking: string | undefined;
  /** One check at a time: each makes contexts of its own and loads the host. */
  const oneCheck = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    if (checking) throw new HttpError('busy', `a check runs already (${checking}); one at a time`, 409);
    checking = what;
    try {
      return await fn();
    } finally {
      checking = undefined;
    }
  };
  const routes: Route[] = [
    // net ls, net settings, net egress
    { method: 'GET', re: /^\/v1\/net$/, run: async () => rt.list().map((s) => ({ name: s.name, state: s.state, ...s.net })) },
    { method: 'GET', re: /^\/v1\/net\/settings$/, run: async () => rt.network.settings() },
    // net settings --shared-pool/--bridge/--subnet/--publish-host/--host-netns/--egress-pool/--dns, by the same names
    {
      method: 'PATCH',
      re: /^\/v1\/net\/settings$/,
      run: async (c) => {
        const b = objectBody(c.body, 'net settings');
        const unknown = Object.keys(b).filter((k) => !(NET_SETTINGS_WORDS as readonly string[]).includes(k));
        if (unknown.length > 0)
          throw new PaeneError('invalid-argument', `net settings does not know '${unknown[0]}' (${NET_SETTINGS_WORDS.join(', ')})`);
        const hosts = b.publishHost;
        if (hosts !== undefined && (!Array.isArray(hosts) || hosts.length > 16 || !hosts.every((h) => typeof h === 'string')))
          throw new PaeneError('invalid-argument', "'publishHost' must be a list of at most 16 addresses");
        return changeNetSettings(rt, {
          sharedPool: field(b, 'sharedPool', 'string'),
          bridge: field(b, 'bridge', 'string'),
          subnet: field(b, 'subnet', 'string'),
          ...(hosts !== undefined ? { publishHost: hosts as string[] } : {}),
          hostNetns: field(b, 'hostNetns', 'string'),
          egressPool: field(b, 'egressPool', 'string'),
          dns: field(b, 'dns', 'string'),
        });
      },
    },
    {
      method: 'PUT',
      re: ctx('/egress'),
      run: async (c) => {
        const egress = field(objectBody(c.body, 'egress'), 'egress', 'string');
        if (egress === undefined) throw new PaeneError('invalid-argument', 'egress wants {"egress": "nat" | "none"}');
        const next = await rt.changeConfig(name(c), (cur) => ({ ...cur, net: validateNetSpec({ ...cur.net, egress }, 'network') }), {
          after: (n, running) => (running ? rt.network.applyEgress(n) : undefined),
        });
        return next.net;
      },
    },
    // image build, import, export, du
    {
      method: 'POST',
      re: /^\/v1\/images\/build$/,
      run: async (c) => {
        const b = objectBody(c.body, 'image build');
        const n = validateImageName(field(b, 'name', 'string') ?? DEFAULT_IMAGE);
        return buildBaseImage(openImageStore(rt.layout.root), { name: n });
      },
    },
    {
      method: 'PUT',
      re: new RegExp(`^/v1/images/${IMAGE}$`),
      streams: true,
      run: async (c) => {
        const n = validateImageName(c.m[1] as string);
        const q = c.query;
        const opts = queryWord(() => ({
          maxFiles: parseCount(q.get('maxFiles') ?? '1000000', "'maxFiles'", 1, MAX_IMPORT_FILES),
          maxBytes: Math.min(parseSize(q.get('maxBytes') ?? '64G', "'maxBytes'"), MAX_IMPORT_BYTES),
          allowDevices: flag(q, 'allowDevices'),
          ...(q.get('platform') ? { platform: q.get('platform') as string } : {}),
          ...(q.get('tag') ? { tag: q.get('tag') as string } : {}),
          source: 'api',
        }));
        const info = await openImageStore(rt.layout.root).importTar(c.req, n, opts);
        send(c.res, 200, info);
      },
    },
    {
      method: 'GET',
      re: new RegExp(`^/v1/images/${IMAGE}/archive$`),
      streams: true,
      run: async (c) => {
        const n = validateImageName(c.m[1] as string);
        const format = (c.query.get('format') ?? 'tar') as ExportFormat;
        if (!EXPORT_FORMATS.includes(format))
          throw new HttpError('invalid-argument', `'format' is one of ${EXPORT_FORMATS.join(', ')}, got '${format}'`, 400);
        const store = openImageStore(rt.layout.root);
        store.rootfsOf(n); // 404 before the stream starts
        c.res.writeHead(200, { 'content-type': 'application/x-tar' });
        try {
          await store.exportArchive(n, format, c.res);
        } finally {
          c.res.end();
        }
      },
    },
    {
      method: 'GET',
      re: /^\/v1\/image-usage$/,
      run: async (c) => openImageStore(rt.layout.root).du(queryWord(() => parseCount(c.query.get('top') ?? '10', "'top'", 1, 1000))),
    },
    // cp: a tar stream out of and into a running context
    {
      method: 'GET',
      re: ctx('/archive'),
      streams: true,
      run: async (c) => getArchive(rt, name(c), guestPath(c.query), c.res),
    },
    {
      method: 'PUT',
      re: ctx('/archive'),
      streams: true,
      run: async (c) => send(c.res, 200, await putArchive(rt, name(c), guestPath(c.query), c.req, maxArchiveBytes)),
    },
    // net set: a stopped context's model, addresses, ports, egress, nameservers (what is not given is kept, as the CLI)
    {
      method: 'PATCH',
      re: ctx('/net'),
      run: async (c) => {
        const b = objectBody(c.body, 'net set');
        const list = (k: string): string[] | undefined => {
          const v = b[k];
          if (v === undefined) return undefined;
          if (!Array.isArray(v) || v.length > 64 || !v.every((x) => typeof x === 'string' && x.length <= 64))
            throw new PaeneError('invalid-argument', `'${k}' is a list of at most 64 strings`);
          return v as string[];
        };
        const unknown = Object.keys(b).filter((k) => !['net', 'ips', 'publish', 'egress', 'dns'].includes(k));
        if (unknown.length > 0)
          throw new PaeneError('invalid-argument', `net set does not know '${unknown[0]}' (net, ips, publish, egress, dns)`);
        const cur = rt.config(name(c)).net;
        const mode = field(b, 'net', 'string') ?? cur.mode;
        const keep = mode === cur.mode; // a new model starts afresh unless told
        const spec = netSpecFrom({
          mode,
          ips: list('ips') ?? (keep ? cur.addresses : []),
          publish: list('publish') ?? (keep ? cur.publish.map(formatPublish) : []),
          egress: field(b, 'egress', 'string') ?? (keep ? cur.egress : undefined),
          dns: list('dns') ?? (keep ? cur.dns : undefined),
        });
        return (await rt.setNet(name(c), spec)).net;
      },
    },
    // net add | rm: an address of a shared context (live if it runs)
    {
      method: 'POST',
      re: ctx('/addresses'),
      run: async (c) => {
        const a = field(objectBody(c.body, 'address'), 'address', 'string');
        if (a === undefined || a.length > 64) throw new PaeneError('invalid-argument', 'net add wants {"address": IPv4 or IPv6}');
        return (await rt.changeAddress(name(c), 'add', a)).net;
      },
    },
    {
      method: 'DELETE',
      re: ctx('/addresses/([0-9A-Fa-f.:]{2,45})'),
      run: async (c) => (await rt.changeAddress(name(c), 'rm', c.m[2] as string)).net,
    },
    // hostname: live in its own UTS namespace, and in the config for the next start
    {
      method: 'PUT',
      re: ctx('/hostname'),
      run: async (c) => {
        const raw = field(objectBody(c.body, 'hostname'), 'hostname', 'string');
        if (raw === undefined) throw new PaeneError('invalid-argument', 'hostname wants {"hostname"}');
        const h = validateHostname(raw);
        let live = false;
        await rt.changeConfig(
          name(c),
          (cur, running) => {
            live = running;
            return { ...cur, hostname: h };
          },
          { applyLive: () => rt.setSysctls(name(c), { 'kernel.hostname': h }) },
        );
        return { name: name(c), hostname: h, live };
      },
    },
    // caps --list: the capability profiles and the ccaps (as paene caps --list --json)
    { method: 'GET', re: /^\/v1\/caps$/, run: async () => profilesReport() },
    // caps: what a running context's processes hold (as paene caps NAME --json)
    { method: 'GET', re: ctx('/caps'), run: async (c) => liveCaps(rt, name(c)) },
    // config --caps/--cap-add/--cap-drop/--reset-caps/--ccap/--drop-ccap: a stopped context's, fixed at its start
    {
      method: 'PATCH',
      re: ctx('/caps'),
      run: async (c) => {
        const b = objectBody(c.body, 'caps');
        const words = (k: string): string[] => {
          const v = b[k] ?? [];
          if (!Array.isArray(v) || v.length > 64 || !v.every((x) => typeof x === 'string' && x.length <= 64))
            throw new PaeneError('invalid-argument', `'${k}' is a list of at most 64 names`);
          return v as string[];
        };
        const unknown = Object.keys(b).filter((k) => !['profile', 'add', 'drop', 'reset', 'ccaps', 'dropCcaps'].includes(k));
        if (unknown.length > 0)
          throw new PaeneError('invalid-argument', `caps does not know '${unknown[0]}' (profile, add, drop, reset, ccaps, dropCcaps)`);
        const change = {
          profile: field(b, 'profile', 'string'),
          add: words('add'),
          drop: words('drop'),
          reset: field(b, 'reset', 'boolean') === true,
        };
        const grant = words('ccaps').map(parseCcap);
        const withdraw = words('dropCcaps').map(parseCcap);
        const next = await rt.changeConfig(name(c), (cur, running) => {
          if (running)
            throw new PaeneError('wrong-state', `context '${name(c)}' is running: capabilities are fixed when it starts; stop it first`);
          const caps = changeCapSpec(cur.caps, change);
          const ccaps = validateCcaps([...cur.ccaps.filter((x) => !withdraw.includes(x)), ...grant]);
          return { ...cur, caps, ccaps, net: checkNetAgainstCaps(cur.net, caps) };
        });
        return { name: name(c), caps: next.caps, ccaps: next.ccaps };
      },
    },
    // du, commit
    { method: 'GET', re: ctx('/du'), run: async (c) => contextDiskUse(rt, openImageStore(rt.layout.root), name(c)) },
    {
      method: 'POST',
      re: ctx('/commit'),
      run: async (c) => {
        const image = field(objectBody(c.body, 'commit'), 'name', 'string');
        if (image === undefined) throw new PaeneError('invalid-argument', 'commit wants {"name": the new image}');
        return commitContext(rt, openImageStore(rt.layout.root), name(c), validateImageName(image));
      },
    },
    // config --mount/--unmount: from the next start, also while it runs
    {
      method: 'PATCH',
      re: ctx('/mounts'),
      run: async (c) => {
        const b = objectBody(c.body, 'mounts');
        const remove = b.remove ?? [];
        if (!Array.isArray(remove) || remove.length > MOUNTS_MAX || !remove.every((t) => typeof t === 'string'))
          throw new PaeneError('invalid-argument', `'remove' is a list of at most ${MOUNTS_MAX} destinations`);
        if (b.add === undefined && remove.length === 0) throw new PaeneError('invalid-argument', "mounts wants 'add' or 'remove'");
        const next = await changeMounts(rt, name(c), b.add === undefined ? [] : mountsOf(b.add), remove as string[]);
        return { name: name(c), mounts: next.mounts ?? [] };
      },
    },
    // volumes (docs/volumes.md): as paene volume create|ls|inspect|rm
    { method: 'GET', re: /^\/v1\/volumes$/, run: async () => listVolumes(rt) },
    {
      method: 'POST',
      re: /^\/v1\/volumes$/,
      run: async (c) => {
        const n = field(objectBody(c.body, 'volume create'), 'name', 'string');
        if (n === undefined) throw new PaeneError('invalid-argument', 'volume create wants {"name"}');
        return createVolume(rt, n);
      },
    },
    { method: 'GET', re: new RegExp(`^/v1/volumes/${NAME}$`), run: async (c) => inspectVolume(rt, c.m[1] as string) },
    {
      method: 'DELETE',
      re: new RegExp(`^/v1/volumes/${NAME}$`),
      run: async (c) => {
        const n = c.m[1] as string;
        try {
          await removeVolume(rt, n);
        } catch (e) {
          // mounted by a context: a conflict with the state, not a service too busy
          if (e instanceof PaeneError && e.code === 'busy') throw new HttpError('busy', e.message, 409);
          throw e;
        }
        return { removed: n };
      },
    },
    // check escape | isolation | network: long calls, one at a time
    {
      method: 'POST',
      re: /^\/v1\/check\/escape$/,
      run: async (c) => {
        const b = objectBody(c.body, 'check escape');
        const context = field(b, 'context', 'string');
        return oneCheck('escape', () => runEscapeCheck(rt, { root: rt.layout.root, ...(context ? { context } : {}) }));
      },
    },
    {
      method: 'POST',
      re: /^\/v1\/check\/isolation$/,
      run: async (c) => {
        const b = objectBody(c.body, 'check isolation');
        const only = b.only;
        if (only !== undefined && (!Array.isArray(only) || only.length > EXPERIMENTS.length || !only.every((x) => EXPERIMENTS.includes(x))))
          throw new PaeneError('invalid-argument', `'only' is a list of ${EXPERIMENTS.join(', ')}`);
        const quick = field(b, 'quick', 'boolean') === true;
        return oneCheck('isolation', async () => {
          const rows = await runIsolationSuite(rt, { quick, ...(only ? { only: only as ExperimentName[] } : {}) });
          return { rows };
        });
      },
    },
    {
      method: 'POST',
      re: /^\/v1\/check\/network$/,
      run: async (c) => {
        const b = objectBody(c.body, 'check network');
        const modes = b.modes ?? ['shared', 'none'];
        if (!Array.isArray(modes) || modes.length === 0 || modes.length > 4 || !modes.every((m) => NET_CHECK_MODES.includes(m)))
          throw new PaeneError('invalid-argument', `'modes' is a list of ${NET_CHECK_MODES.join(', ')}`);
        return oneCheck('network', async () => {
          const rows: NetRow[] = [];
          for (const m of new Set(modes as (typeof NET_CHECK_MODES)[number][])) {
            if (m === 'shared') rows.push(...(await sharedSuite(rt)));
            else if (m === 'egress') rows.push(...(await egressSuite()));
            else rows.push(...(await isolatedSuite(rt, m)));
          }
          return { rows, summary: summarize(rows) };
        });
      },
    },
  ];
  return routes;
}

/** Waits until a child's exit and its stderr's end (the last 4 KiB kept). */
function ended(child: ChildProcess): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4096);
  });
  return new Promise((resolve) => {
    child.on('error', () => resolve({ code: 127, stderr }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stderr }));
  });
}

/** The guest side's failure as an error: a path that is not there is a 404. */
function guestError(rt: Runtime, name: string, what: string, r: { code: number; stderr: string }): PaeneError {
  // stopped meanwhile (a stop or destroy raced the copy): the state's word, not a failure of ours
  if (!rt.store.live(name)) return new PaeneError('wrong-state', `${what}: context '${name}' stopped meanwhile`);
  // killed (a stop or restart meanwhile kills every process of the context, an OOM kill): not a failure of ours
  if (r.code >= 128 && r.stderr.trim() === '')
    return new PaeneError('wrong-state', `${what} in '${name}': its tar was killed (a stop, a restart or an OOM kill meanwhile)`);
  if (r.code === 127) return new PaeneError('unsupported', `context '${name}' has neither tar nor busybox in its PATH`);
  const msg = r.stderr.trim().split('\n').slice(-3).join('; ') || `exit ${r.code}`;
  return new PaeneError(
    /No such file|not found|cannot stat|can't stat|can't change directory|Cannot open/i.test(msg) ? 'not-found' : 'internal',
    `${what} in '${name}': ${msg}`,
  );
}

/**
 * A context's PATH as a tar (GET .../archive?path=): the guest's own tar
 * reads it inside the context (its walls, its view of its symlinks). The
 * stream is the guest's: a client treats it as hostile, as `paene cp`'s own
 * extractor does. A path that is not there is a 404 (nothing was sent yet).
 */
async function getArchive(rt: Runtime, name: string, p: string, res: http.ServerResponse): Promise<void> {
  const abs = path.posix.normalize(p);
  const dir = abs === '/' ? '/' : path.posix.dirname(abs.replace(/\/+$/, ''));
  const base = abs === '/' ? '.' : path.posix.basename(abs.replace(/\/+$/, ''));
  const child = await rt.execChild(name, ['sh', '-c', GUEST_TAR, 'paene-cp', '-c', '-f', '-', '-C', dir, base], ['ignore', 'pipe', 'pipe']);
  const done = ended(child);
  const out = child.stdout as NodeJS.ReadableStream;
  // the first chunk or the end decides the status
  const first = await new Promise<Buffer | undefined>((resolve) => {
    out.once('data', (d: Buffer) => resolve(d));
    out.once('end', () => resolve(undefined));
  });
  out.pause();
  if (first === undefined) {
    const r = await done;
    throw guestError(rt, name, `reading ${p}`, r.code === 0 ? { code: 1, stderr: 'No such file: nothing came out' } : r);
  }
  res.writeHead(200, { 'content-type': 'application/x-tar' });
  res.write(first);
  res.on('close', () => child.kill('SIGKILL')); // the client went: the guest's tar goes too
  try {
    await pipeline(out, res);
  } finally {
    await done;
  }
}

/**
 * A tar into a context's existing directory PATH (PUT .../archive?path=):
 * the guest's own tar extracts it inside the context, with every wall of an
 * exec, so no member name (`..`, absolute, through a symlink) reaches
 * outside the context's own view; owners are not kept (-o). At most
 * `max` bytes (MAX_ARCHIVE_BYTES): past it the copy is cut (what the guest's
 * tar extracted until then stays) and refused.
 */
async function putArchive(
  rt: Runtime,
  name: string,
  p: string,
  req: http.IncomingMessage,
  max: number,
): Promise<{ bytes: number; path: string }> {
  const child = await rt.execChild(name, ['sh', '-c', GUEST_TAR, 'paene-cp', '-x', '-o', '-f', '-', '-C', p], ['pipe', 'ignore', 'pipe']);
  const done = ended(child);
  let bytes = 0;
  let over = false;
  const stdin = child.stdin as NodeJS.WritableStream & { destroy(): void };
  req.on('data', (d: Buffer) => {
    bytes += d.length;
    if (bytes > max && !over) {
      over = true;
      req.unpipe(stdin);
      child.kill('SIGKILL');
      req.resume(); // the rest is dropped until the refusal is out; then the connection goes (server.ts)
    }
  });
  (child.stdin as NodeJS.WritableStream).on('error', () => undefined); // the guest's tar ended early: its exit says why
  req.pipe(stdin);
  const r = await done;
  if (over) throw new HttpError('limit-exceeded', `a tar of files is at most ${max} bytes`, 413, { connection: 'close' });
  if (r.code !== 0) throw guestError(rt, name, `writing into ${p}`, r);
  return { bytes, path: p };
}

/** create's `mounts`: `"SRC:DST[:ro]"` as the CLI's --mount, or `{"source", "target", "readonly"}`; at most MOUNTS_MAX. */
export function mountsOf(v: unknown): MountSpec[] {
  if (!Array.isArray(v) || v.length > MOUNTS_MAX)
    throw new PaeneError(
      'invalid-argument',
      `'mounts' is a list of at most ${MOUNTS_MAX} mounts ("SRC:DST[:ro]" or {source, target, readonly})`,
    );
  return validateMounts(
    v.map((m) => (typeof m === 'string' && m.length <= 8192 ? parseMountArg(m) : { readonly: false, ...(m as object) })),
    "'mounts'",
  );
}
