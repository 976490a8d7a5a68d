// `paene serve`: the runtime as a resident service, a JSON API over a unix
// socket (docs/api.md). Every request runs on one Runtime in this process,
// under the same per-context and create locks as the CLI, so CLI calls and
// API requests may overlap on the same names. The socket is root's only
// (0600) unless a group is named (0660, that group).
//
// Events (GET /v1/events, one JSON object a line): what this service did
// (created, started, stopped, destroyed), what it sees every second in the
// contexts' cgroups and processes: a context stopped by someone else
// (stopped), one whose init died (exited), an OOM kill, a pids limit hit;
// and, every 250 ms, each main process's exits, restarts and give-ups
// (mainevents.ts).
//
// A context's main-process log (GET /v1/contexts/NAME/logs) and its stats
// (GET /v1/contexts/NAME/stats?stream=1) are streamed (chunked) while they
// follow. Every size and count a request names is bounded (docs/api.md).

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AutostartResult, autostartPlan, runAutostart } from '../model/autostart.js';
import { PaeneError } from '../model/errors.js';
import { DEFAULT_LIMITS } from '../model/limits.js';
import { parseLimitFlags, LIMIT_FLAGS } from '../model/limitflags.js';
import { expandTemplate } from '../model/names.js';
import { DEFAULT_LOG, type MainSpec, parseInit, parseRestart, validateAutostart, validateLog, validateMain } from '../model/service.js';
import type { TokenBucket } from '../model/tokenBucket.js';
import { parseSize } from '../model/units.js';
import { PROFILE_FIELDS, PROFILES_PER_CREATE_MAX, type ProfileSettings, validateProfileName } from '../model/profile.js';
import { parseXid } from '../context/config.js';
import type { ContextCgroup } from '../cgroups/cgroups.js';
import { openImageStore } from '../runtime/open.js';
import { ProfileStore, specOfSettings } from '../runtime/profiles.js';
import { autostartCandidates } from '../runtime/autostart.js';
import { applyLimits, sampleUsage } from '../runtime/limits.js';
import { followLog, formatLogLine, logLineJson, logOptions, readLog } from '../runtime/logs.js';
import type { ContextStatus, NewRequest, Runtime } from '../runtime/runtime.js';
import { statsRows } from '../runtime/stats.js';
import { validateImageName } from '../image/store.js';
import { execWithTimeout, releaseStaleGroups } from './exec.js';
import type { Call, Route } from './route.js';
import { MAX_ARCHIVE_BYTES, mountsOf, verbRoutes } from './verbs.js';
import { HttpError, bounded, drained, field, flag, objectBody, readBody, refusal, send } from './http.js';
import { type MainEventType, MainWatcher } from './mainevents.js';
import { API_VERSION, PAENE_VERSION } from './version.js';

/** The most contexts one create names (`count`); past it a 413. */
export const MAX_CREATE_COUNT = 1000;
/** The longest exec, stop or restart timeout (s). */
export const MAX_TIMEOUT_S = 86_400;
/** The widest %0Nd of a name template (a name has at most 63 characters). */
const MAX_TEMPLATE_WIDTH = 63;

export interface PaeneEvent {
  type: 'created' | 'started' | 'stopped' | 'destroyed' | 'exited' | 'oom' | 'limit' | 'main-exited' | 'main-restarted' | 'main-gave-up';
  context: string;
  time: string;
  /** limit: which one (pids); oom: the kill count so far; main-*: code or signal, restarts, state */
  detail?: Record<string, number | string>;
}

export interface ServeOptions {
  socket: string;
  /** a group whose members may use the socket too */
  gid?: number;
  /** how often the watcher looks at the contexts (ms) */
  watchMs?: number;
  /** how often the main processes' states are looked at (ms) */
  mainWatchMs?: number;
  /** the largest tar PUT into a context (bytes; default and most MAX_ARCHIVE_BYTES) */
  maxArchiveBytes?: number;
}

/** The API socket of a state root. */
export function apiSocket(rt: Runtime): string {
  return path.join(rt.layout.root, 'run', 'api.sock');
}

const NAME = '([a-z0-9][a-z0-9_-]{0,62})';
const IMAGE = '([A-Za-z0-9][A-Za-z0-9_.-]{0,62})';

export class ApiServer {
  private readonly server: http.Server;
  private readonly listeners = new Set<http.ServerResponse>();
  private readonly routes: Route[];
  private watcher?: NodeJS.Timeout;
  private mainTimer?: NodeJS.Timeout;
  private readonly mainWatcher: MainWatcher;
  /** last seen per context: running, oom kills, pids limit hits */
  private seen = new Map<string, { running: boolean; oom: number; pidsMax: number; dying?: boolean }>();
  /** contexts this service is starting, stopping or destroying (how many requests at once) */
  private readonly busy = new Map<string, number>();
  /** the running contexts (start time, init's start since boot), as the watcher and this service's acts last saw them */
  private readonly running = new Map<string, { started: string; initStartMs: number }>();
  /** streams under way (logs, stats): ended when the service closes */
  private readonly streams = new Set<AbortController>();

  constructor(
    private readonly rt: Runtime,
    private readonly opts: ServeOptions,
  ) {
    const ctx = (tail = '') => new RegExp(`^/v1/contexts/${NAME}${tail}$`);
    const name = (c: Call) => c.m[1] as string;
    this.routes = [
      { method: 'GET', re: /^\/v1\/version$/, run: async () => this.version() },
      { method: 'GET', re: /^\/v1\/contexts$/, run: async () => this.rt.list() },
      { method: 'POST', re: /^\/v1\/contexts$/, run: async (c) => this.create(c.body) },
      { method: 'GET', re: ctx(), run: async (c) => ({ ...this.rt.status(name(c)), config: this.rt.config(name(c)) }) },
      {
        method: 'DELETE',
        re: ctx(),
        run: async (c) => {
          const force = field(objectBody(c.body, 'destroy'), 'force', 'boolean') === true;
          return this.acting(name(c), ['destroyed'], async () => {
            await this.rt.destroy(name(c), { force });
            return { destroyed: name(c) };
          });
        },
      },
      { method: 'POST', re: ctx('/start'), run: async (c) => this.acting(name(c), ['started'], () => this.rt.start(name(c))) },
      {
        method: 'POST',
        re: ctx('/stop'),
        run: async (c) => {
          const t = bounded(objectBody(c.body, 'stop'), 'timeout', 0, MAX_TIMEOUT_S);
          return this.acting(name(c), ['stopped'], () => this.rt.stop(name(c), { timeoutMs: t === undefined ? undefined : t * 1000 }));
        },
      },
      {
        method: 'POST',
        re: ctx('/restart'),
        run: async (c) => {
          const t = bounded(objectBody(c.body, 'restart'), 'timeout', 0, MAX_TIMEOUT_S);
          return this.acting(name(c), ['stopped', 'started'], () =>
            this.rt.restart(name(c), { timeoutMs: t === undefined ? undefined : t * 1000 }),
          );
        },
      },
      {
        method: 'POST',
        re: ctx('/kill'),
        run: async (c) => {
          const b = objectBody(c.body, 'kill');
          const sig = parseSignal(b.signal);
          return { ...this.rt.kill(name(c), sig), signal: sig };
        },
      },
      { method: 'POST', re: ctx('/exec'), run: async (c) => this.exec(name(c), c.body) },
      { method: 'GET', re: ctx('/ps'), run: async (c) => this.rt.ps(name(c)) },
      { method: 'GET', re: ctx('/logs'), streams: true, run: async (c) => this.logs(name(c), c.query, c.res) },
      { method: 'GET', re: ctx('/stats'), streams: true, run: async (c) => this.stats(name(c), c.query, c.res) },
      { method: 'GET', re: ctx('/limits'), run: async (c) => ({ name: name(c), limits: this.rt.config(name(c)).limits }) },
      { method: 'PATCH', re: ctx('/limits'), run: async (c) => this.patchLimits(name(c), c.body) },
      {
        method: 'GET',
        re: /^\/v1\/images$/,
        run: async () =>
          this.images()
            .list()
            .map((i) => ({ ...i, contexts: this.usersOf(i.name) })),
      },
      {
        method: 'GET',
        re: new RegExp(`^/v1/images/${IMAGE}$`),
        run: async (c) => {
          const n = validateImageName(name(c));
          return { ...this.images().get(n), contexts: this.usersOf(n) };
        },
      },
      {
        method: 'DELETE',
        re: new RegExp(`^/v1/images/${IMAGE}$`),
        run: async (c) => {
          const n = validateImageName(name(c));
          try {
            this.images().remove(n, this.usersOf(n));
          } catch (e) {
            // in use by a context: a conflict with the state, not a service too busy
            if (e instanceof PaeneError && e.code === 'busy') throw new HttpError('busy', e.message, 409);
            throw e;
          }
          return { removed: n };
        },
      },
      { method: 'GET', re: /^\/v1\/events$/, streams: true, run: async (c) => this.subscribe(c.res) },
      {
        method: 'POST',
        re: /^\/v1\/autostart$/,
        run: async () =>
          (await this.autostart()).map((r) =>
            r.outcome.ok ? { name: r.name, ok: true } : { name: r.name, ok: false, error: errorOf(r.outcome.error) },
          ),
      },
      ...this.profileRoutes(),
      ...verbRoutes(this.rt, Math.min(opts.maxArchiveBytes ?? MAX_ARCHIVE_BYTES, MAX_ARCHIVE_BYTES)),
    ];
    this.mainWatcher = new MainWatcher(
      (n) => this.rt.layout.logDir(n),
      (n, e) => this.emit(e.type, n, e.detail),
    );
    // no whole-request deadline (Node's is 5 minutes): a tar of files or an image streamed in may take longer;
    // a request's headers still have 60 s, and every body has its bound (docs/api.md)
    this.server = http.createServer({ requestTimeout: 0 }, (req, res) => void this.handle(req, res));
  }

  /** Every route's method and path (the contract test holds them against docs/openapi.yaml). */
  get routeTable(): readonly { method: string; re: RegExp }[] {
    return this.routes.map((r) => ({ method: r.method, re: r.re }));
  }

  /** Listens on the socket (replacing a stale one) and starts the watchers. */
  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.opts.socket), { recursive: true, mode: 0o700 });
    if (fs.existsSync(this.opts.socket)) {
      if (await answers(this.opts.socket)) throw new PaeneError('busy', `a paene service already answers on ${this.opts.socket}`);
      fs.rmSync(this.opts.socket, { force: true });
    }
    await releaseStaleGroups(this.rt); // a service that died mid-exec left them
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.socket, () => resolve());
    });
    if (this.opts.gid !== undefined) {
      fs.chownSync(this.opts.socket, 0, this.opts.gid);
      fs.chmodSync(this.opts.socket, 0o660);
      // the group must reach the socket through run/ too
      fs.chownSync(path.dirname(this.opts.socket), 0, this.opts.gid);
      fs.chmodSync(path.dirname(this.opts.socket), 0o750);
    } else fs.chmodSync(this.opts.socket, 0o600);
    this.watch();
    this.watchMain();
    this.watcher = setInterval(() => this.watch(), this.opts.watchMs ?? 1000);
    this.mainTimer = setInterval(() => this.watchMain(), this.opts.mainWatchMs ?? 250);
  }

  async close(): Promise<void> {
    if (this.watcher) clearInterval(this.watcher);
    if (this.mainTimer) clearInterval(this.mainTimer);
    for (const r of this.streams) r.abort();
    for (const l of this.listeners) l.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.opts.socket, { force: true });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const url = q < 0 ? raw : raw.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    try {
      const route = this.routes.find((r) => r.method === req.method && r.re.test(url));
      if (!route) {
        const allow = [...new Set(this.routes.filter((r) => r.re.test(url)).map((r) => r.method))];
        if (allow.length === 0) throw new PaeneError('not-found', `no such endpoint: ${url} (see docs/api.md)`);
        throw new HttpError('invalid-argument', `${req.method} is not allowed on ${url} (allowed: ${allow.join(', ')})`, 405, {
          allow: allow.join(', '),
        });
      }
      const body = route.streams ? undefined : await readBody(req);
      const out = await route.run({ m: url.match(route.re) as RegExpMatchArray, body, query, req, res });
      if (!route.streams) send(res, 200, out ?? null);
    } catch (e) {
      if (res.headersSent) {
        res.end();
        return;
      }
      const r = refusal(e);
      send(res, r.status, r.body, r.headers);
      // a body too large to read to its end: the connection goes once the refusal is out
      if (r.headers.connection === 'close') res.once('finish', () => req.destroy());
    }
  }

  /**
   * Runs a start, stop, restart or destroy of this service: the watcher
   * leaves the context alone meanwhile and forgets what it saw (the events
   * are this one's).
   */
  private async acting<T>(name: string, events: PaeneEvent['type'][], fn: () => Promise<T>): Promise<T> {
    this.busy.set(name, (this.busy.get(name) ?? 0) + 1);
    try {
      const r = await fn();
      for (const e of events) this.emit(e, name);
      return r;
    } finally {
      this.sawRunning(name, this.rt.store.live(name));
      const left = (this.busy.get(name) ?? 1) - 1;
      if (left > 0) this.busy.set(name, left);
      else this.busy.delete(name);
      this.seen.delete(name);
    }
  }

  private version(): unknown {
    const cg = this.rt.cgroupHost;
    return {
      version: PAENE_VERSION,
      api: API_VERSION,
      node: process.version,
      kernel: os.release(),
      cgroup: cg.unified ? (cg.v1.size > 0 ? 'hybrid' : 'v2') : 'v1',
    };
  }

  private async create(raw: unknown): Promise<unknown> {
    const b = objectBody(raw, 'create');
    const unknown = Object.keys(b).filter((k) => !CREATE_FIELDS.has(k));
    if (unknown.length > 0)
      throw new PaeneError('invalid-argument', `create does not know ${unknown.map((k) => `'${k}'`).join(', ')} (see docs/api.md)`);
    const name = field(b, 'name', 'string');
    if (!name) throw new PaeneError('invalid-argument', "create wants a JSON body with 'name' (and 'count' for a %d template)");
    const count = field(b, 'count', 'number');
    if (count !== undefined) {
      if (!Number.isInteger(count) || count < 1)
        throw new PaeneError('invalid-argument', `'count' must be a whole number of at least 1, got ${count}`);
      if (count > MAX_CREATE_COUNT)
        throw new HttpError('limit-exceeded', `'count' is at most ${MAX_CREATE_COUNT} a request, got ${count}`, 413);
    }
    const width = /%0(\d+)d/.exec(name)?.[1];
    if (name.length > 256 || (width !== undefined && Number(width) > MAX_TEMPLATE_WIDTH))
      throw new PaeneError('invalid-argument', `'name' is a context name or a template with %d or %0Nd (N at most ${MAX_TEMPLATE_WIDTH})`);
    const names = count === undefined ? [name] : expandTemplate(name, count);
    const xid = field(b, 'xid', 'number');
    // the profiles first, then what the body says (as create --profile: the flags given win)
    const profiles = b.profiles === undefined ? {} : specOfSettings(new ProfileStore(this.rt.layout.root).merged(profileNames(b.profiles)));
    const spec: Omit<NewRequest, 'name'> = {
      ...profiles,
      image: field(b, 'image', 'string') ?? profiles.image ?? 'base',
      xid: xid === undefined ? undefined : parseXid(xid),
      hostname: field(b, 'hostname', 'string'),
      limits: profiles.limits ?? DEFAULT_LIMITS,
      ...serviceSpec(b),
      ...(b.mounts !== undefined ? { mounts: mountsOf(b.mounts) } : {}),
    };
    if (count !== undefined && spec.xid !== undefined)
      throw new PaeneError('invalid-argument', "'xid' names one context; leave it out with 'count'");
    const netMode = field(b, 'net', 'string');
    if (netMode !== undefined) {
      if (!['shared', 'private', 'none', 'host'].includes(netMode))
        throw new PaeneError('invalid-argument', `'net' is one of shared, private, none, host; got '${netMode}'`);
      spec.net = { mode: netMode as 'shared' | 'private' | 'none' | 'host', addresses: [], publish: [] };
    }
    const results = await this.rt.createEach(names.map((n) => ({ ...spec, name: n })));
    results.forEach((r, i) => r instanceof Error || this.emit('created', names[i] as string));
    if (count === undefined) {
      const r = results[0];
      if (r instanceof Error) throw r;
      return r;
    }
    return results.map((r, i) =>
      r instanceof Error ? { name: names[i], ok: false, error: errorOf(r) } : { name: names[i], ok: true, result: r },
    );
  }

  private async exec(name: string, raw: unknown): Promise<unknown> {
    const b = objectBody(raw, 'exec');
    const argv = b.argv;
    if (!Array.isArray(argv) || argv.length === 0 || argv.length > 4096 || !argv.every((a) => typeof a === 'string')) {
      throw new PaeneError('invalid-argument', "exec wants a JSON body with 'argv': a non-empty list of strings");
    }
    const uid = bounded(b, 'uid', 0, MAX_ID, true);
    const gid = bounded(b, 'gid', 0, MAX_ID, true);
    if (gid !== undefined && uid === undefined) throw new PaeneError('invalid-argument', "'gid' goes with a 'uid'");
    const userName = b.user === undefined ? undefined : validateMain({ user: b.user }, 'exec').user;
    if (userName !== undefined && uid !== undefined) throw new PaeneError('invalid-argument', "give 'user' or 'uid', not both");
    const user = userName ?? (uid === undefined ? undefined : { uid, gid: gid ?? uid });
    const env = b.env === undefined ? undefined : validateMain({ env: b.env }, 'exec').env;
    const cwd = field(b, 'cwd', 'string');
    if (field(b, 'detach', 'boolean') === true) {
      if (b.input !== undefined || b.timeout !== undefined)
        throw new PaeneError('invalid-argument', "a detached exec takes no 'input' or 'timeout' (its output goes nowhere)");
      return this.rt.execDetached(name, argv as string[], { user, env, cwd });
    }
    const timeout = bounded(b, 'timeout', 0.001, MAX_TIMEOUT_S);
    return execWithTimeout(this.rt, name, {
      argv: argv as string[],
      user,
      env,
      cwd,
      input: field(b, 'input', 'string'),
      timeoutMs: (timeout ?? 60) * 1000,
    });
  }

  /** Profiles (docs/profiles.md): as `paene profile`, settings spelled as create's flags. */
  private profileRoutes(): Route[] {
    const one = new RegExp(`^/v1/profiles/${NAME}$`);
    const store = () => new ProfileStore(this.rt.layout.root);
    const settingsOf = (v: unknown) => (v === undefined ? {} : (v as ProfileSettings)); // checked whole by the store
    return [
      { method: 'GET', re: /^\/v1\/profiles$/, run: async () => store().list() },
      {
        method: 'POST',
        re: /^\/v1\/profiles$/,
        run: async (c) => {
          const b = objectBody(c.body, 'profile create');
          onlyFields(b, ['name', 'settings'], 'profile create');
          return store().create(validateProfileName(b.name), settingsOf(b.settings));
        },
      },
      { method: 'GET', re: one, run: async (c) => store().get(c.m[1] as string) },
      {
        method: 'PATCH',
        re: one,
        run: async (c) => {
          const b = objectBody(c.body, 'profile edit');
          onlyFields(b, ['set', 'unset'], 'profile edit');
          const unset = b.unset ?? [];
          if (!Array.isArray(unset) || unset.length > PROFILE_FIELDS.size || !unset.every((u) => typeof u === 'string'))
            throw new PaeneError('invalid-argument', `'unset' is a list of setting names (at most ${PROFILE_FIELDS.size})`);
          if (b.set === undefined && unset.length === 0) throw new PaeneError('invalid-argument', "profile edit wants 'set' or 'unset'");
          return store().edit(c.m[1] as string, settingsOf(b.set), unset as string[]);
        },
      },
      { method: 'DELETE', re: one, run: async (c) => store().remove(c.m[1] as string) },
    ];
  }

  private async patchLimits(name: string, raw: unknown): Promise<unknown> {
    const b = objectBody(raw, 'limits');
    const flags: Record<string, string> = {};
    for (const [k, v] of Object.entries(b)) {
      const key = k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      if (!LIMIT_KEYS.has(key)) throw new PaeneError('invalid-argument', `'${k}' is not a limit (one of ${[...LIMIT_KEYS].join(', ')})`);
      if (typeof v === 'number' && Number.isFinite(v)) flags[key] = String(v);
      else if (typeof v === 'string' && v.length <= 256) flags[key] = v;
      else if (v === null) flags[key] = 'unlimited';
      else throw new PaeneError('invalid-argument', `'${k}' wants a string as the CLI's --${key} takes it (or a number, or null)`);
    }
    if (Object.keys(flags).length === 0) throw new PaeneError('invalid-argument', 'PATCH limits wants at least one limit');
    const patch = parseLimitFlags(flags);
    return applyLimits(this.rt, name, patch);
  }

  private images() {
    return openImageStore(this.rt.layout.root);
  }

  private usersOf(image: string): string[] {
    return this.rt.store
      .readAllConfigs()
      .filter((c) => c.image === image)
      .map((c) => c.name);
  }

  /** Starts a stream (logs, stats): chunked, headers out at once, ended when the reader goes or the service stops. */
  private stream(res: http.ServerResponse, type: string): AbortController {
    const ac = new AbortController();
    this.streams.add(ac);
    res.on('close', () => ac.abort());
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
    res.flushHeaders(); // a follower sees the stream open before the first line
    return ac;
  }

  /**
   * A context's main-process log: `tail`, `since`, `stream`, `timestamps`,
   * `json` as `paene logs`; with `follow` it stays open and sends each new
   * line, until the client goes or the service stops.
   */
  private async logs(name: string, q: URLSearchParams, res: http.ServerResponse): Promise<void> {
    this.rt.config(name); // 404 for an unknown context
    let opts: ReturnType<typeof logOptions>;
    try {
      opts = logOptions({ tail: q.get('tail') ?? undefined, since: q.get('since') ?? undefined, stream: q.get('stream') ?? undefined });
    } catch (e) {
      // a query word, not a body: a 400
      if (e instanceof PaeneError && e.code === 'invalid-argument') throw new HttpError(e.code, e.message, 400);
      throw e;
    }
    const follow = flag(q, 'follow');
    const timestamps = flag(q, 'timestamps');
    const json = flag(q, 'json');
    const ac = this.stream(res, json ? 'application/x-ndjson' : 'text/plain; charset=utf-8');
    try {
      const dir = this.rt.layout.logDir(name);
      for await (const line of follow ? followLog(dir, { ...opts, signal: ac.signal }) : readLog(dir, opts)) {
        if (ac.signal.aborted) break;
        const ok = res.write(json ? `${JSON.stringify(logLineJson(line))}\n` : formatLogLine(line, timestamps));
        if (!ok) await drained(res, ac.signal);
      }
    } catch (e) {
      // the status is out already: end the stream with the reason as its last line
      if (!res.destroyed) res.write(`paene: reading the log failed: ${e instanceof Error ? e.message : String(e)}\n`);
    } finally {
      this.streams.delete(ac);
      res.end();
    }
  }

  /**
   * A running context's stats (as `paene stats NAME --json`, one row):
   * rates over `interval` ms; with `stream=1` a row a line every interval
   * until the client goes, the context stops or the service does.
   */
  private async stats(name: string, q: URLSearchParams, res: http.ServerResponse): Promise<void> {
    this.rt.config(name);
    const iv = q.get('interval');
    const interval = iv === null ? 1000 : Number(iv);
    if (!/^\d{1,6}$/.test(iv ?? '1000') || interval < 100 || interval > 60_000)
      throw new HttpError('invalid-argument', `'interval' is 100-60000 ms, got '${iv}'`, 400);
    const streaming = flag(q, 'stream');
    if (!this.rt.store.live(name)) throw new PaeneError('wrong-state', `context '${name}' is not running`);
    const buckets = new Map<string, TokenBucket>();
    let prev = new Map([[name, sampleUsage(this.rt, name)]]);
    const next = async () => {
      const [row] = await statsRows(this.rt, [name], prev, buckets);
      if (!row) return undefined;
      prev = new Map([[name, row.sample]]);
      const { sample: _s, ...out } = row;
      return out;
    };
    if (!streaming) {
      await sleep(interval);
      send(res, 200, await next());
      return;
    }
    const ac = this.stream(res, 'application/x-ndjson');
    try {
      while (!ac.signal.aborted) {
        try {
          await sleep(interval, undefined, { signal: ac.signal });
        } catch {
          break; // aborted
        }
        if (!this.rt.store.live(name)) break;
        const ok = res.write(`${JSON.stringify(await next())}\n`);
        if (!ok) await drained(res, ac.signal);
      }
    } catch (e) {
      if (!res.destroyed)
        res.write(`${JSON.stringify({ error: { code: 'internal', message: e instanceof Error ? e.message : String(e) } })}\n`);
    } finally {
      this.streams.delete(ac);
      res.end();
    }
  }

  /**
   * Runs the autostart plan (`paene serve --autostart`, docs/services.md):
   * each start is this service's, with its `started` event. `onEach` hears
   * each result as it comes.
   */
  async autostart(
    jobs = 2 * Math.max(1, os.availableParallelism()),
    onEach?: (r: AutostartResult<ContextStatus>) => void,
  ): Promise<AutostartResult<ContextStatus>[]> {
    const { candidates, broken } = autostartCandidates(this.rt);
    const failed = broken.map((b): AutostartResult<ContextStatus> => ({ name: b.name, outcome: { ok: false, error: b.error } }));
    for (const f of failed) onEach?.(f);
    const plan = autostartPlan(candidates);
    return [...failed, ...(await runAutostart(plan, jobs, (name) => this.acting(name, ['started'], () => this.rt.start(name)), onEach))];
  }

  private async subscribe(res: http.ServerResponse): Promise<void> {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.write(''); // headers out now: a client sees the stream open before the first event
    this.listeners.add(res);
    res.on('close', () => this.listeners.delete(res));
  }

  private emit(type: PaeneEvent['type'] | MainEventType, context: string, detail?: PaeneEvent['detail']): void {
    const line =
      JSON.stringify({ type, context, time: new Date().toISOString(), ...(detail ? { detail } : {}) } satisfies PaeneEvent) + '\n';
    for (const l of this.listeners) l.write(line);
  }

  /** Notes whether a context runs (for the main-process watcher). */
  private sawRunning(name: string, live: { started: string; starttime: number } | undefined): void {
    // starttime: clock ticks since boot (USER_HZ, 100 a second)
    if (live) this.running.set(name, { started: live.started, initStartMs: live.starttime * 10 });
    else this.running.delete(name);
  }

  /**
   * The running contexts' main processes: their exits, restarts and
   * give-ups (mainevents.ts), a stat each: which contexts run is the
   * once-a-second watcher's and this service's own starts' news.
   */
  private watchMain(): void {
    try {
      this.mainWatcher.look(this.running);
    } catch {
      /* a context going meanwhile: the next look sees it */
    }
  }

  /** Compares what each context is now with what it was: init gone, OOM kills, pids limit hits. */
  private watch(): void {
    const now = new Map<string, { running: boolean; oom: number; pidsMax: number; dying?: boolean }>();
    const names = this.rt.store.names();
    const known = new Set(names);
    for (const n of this.running.keys()) if (!known.has(n)) this.running.delete(n);
    for (const n of names) {
      if (this.busy.has(n)) continue; // its event comes from the request
      const live = this.rt.store.live(n);
      this.sawRunning(n, live);
      const running = live !== undefined;
      const cg = this.rt.cgroupOf(n);
      const cur = { running, oom: running ? oomKills(cg) : 0, pidsMax: running ? pidsMaxHits(cg) : 0 };
      const was = this.seen.get(n);
      if (was) {
        // stopped cleanly (by this service or a CLI): state.json is gone; died: it names a dead init. A stop
        // under way kills the init before it clears the state: a dead init is judged at the next look.
        if (was.running && !running) {
          const died = this.rt.store.readState(n) !== undefined;
          if (died && !was.dying) {
            now.set(n, { ...cur, running: true, oom: was.oom, pidsMax: was.pidsMax, dying: true });
            continue;
          }
          this.emit(died ? 'exited' : 'stopped', n);
        }
        if (running && was.running && cur.oom > was.oom) this.emit('oom', n, { kills: cur.oom });
        if (running && was.running && cur.pidsMax > was.pidsMax) this.emit('limit', n, { limit: 'pids', hits: cur.pidsMax });
      }
      now.set(n, cur);
    }
    this.seen = now;
  }
}

const MAX_ID = 4_294_967_294;

const CREATE_FIELDS = new Set([
  'name',
  'profiles',
  'mounts',
  'count',
  'image',
  'xid',
  'hostname',
  'net',
  'main',
  'restart',
  'logSize',
  'logKeep',
  'autostart',
  'init',
]);
const LIMIT_KEYS = new Set(LIMIT_FLAGS.map((f) => f.flag));

/** An error as an answer's `{code, message}`. */
function errorOf(e: unknown): { code: string; message: string } {
  return { code: e instanceof PaeneError ? e.code : 'internal', message: e instanceof Error ? e.message : String(e) };
}

/** Refuses a body field that is not one of these. */
function onlyFields(b: Record<string, unknown>, known: string[], what: string): void {
  const unknown = Object.keys(b).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw new PaeneError(
      'invalid-argument',
      `${what} does not know ${unknown.map((k) => `'${k}'`).join(', ')} (one of ${known.join(', ')})`,
    );
}

/** create's `profiles`: a list of profile names, at most PROFILES_PER_CREATE_MAX (the store says which exist). */
function profileNames(v: unknown): string[] {
  if (!Array.isArray(v) || v.length > PROFILES_PER_CREATE_MAX || !v.every((n) => typeof n === 'string'))
    throw new PaeneError('invalid-argument', `'profiles' is a list of at most ${PROFILES_PER_CREATE_MAX} profile names`);
  return v.map(validateProfileName);
}

/** The guest-service fields of a create body (docs/services.md), checked as the CLI's flags are. */
function serviceSpec(b: Record<string, unknown>): Pick<NewRequest, 'main' | 'restart' | 'log' | 'autostart' | 'init'> {
  const out: Pick<NewRequest, 'main' | 'restart' | 'log' | 'autostart' | 'init'> = {};
  if (b.main !== undefined) out.main = b.main === 'none' ? 'none' : (validateMain(b.main, "'main'") satisfies MainSpec);
  const restart = field(b, 'restart', 'string');
  if (restart !== undefined) out.restart = parseRestart(restart, "'restart'");
  if (b.logSize !== undefined || b.logKeep !== undefined) {
    const size = b.logSize;
    let maxBytes = DEFAULT_LOG.maxBytes;
    if (typeof size === 'string') maxBytes = parseSize(size, "'logSize'");
    else if (typeof size === 'number') maxBytes = size;
    else if (size !== undefined)
      throw new PaeneError('invalid-argument', `'logSize' is bytes, or a size such as 10M; got ${JSON.stringify(size)}`);
    const keep = bounded(b, 'logKeep', 0, Number.MAX_SAFE_INTEGER, true) ?? DEFAULT_LOG.keep;
    out.log = validateLog({ maxBytes, keep }, "'logSize'/'logKeep'");
  }
  if (b.autostart !== undefined && b.autostart !== false)
    out.autostart = validateAutostart(b.autostart === true ? { order: 0 } : b.autostart, "'autostart'");
  const init = field(b, 'init', 'string');
  if (init !== undefined) out.init = parseInit(init);
  return out;
}

/** A signal by name (KILL, SIGKILL) or number; SIGTERM when absent. */
function parseSignal(v: unknown): NodeJS.Signals | number {
  if (v === undefined) return 'SIGTERM';
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 1 && v <= 64) return v;
  } else if (typeof v === 'string' && v.length <= 16) {
    if (/^\d{1,2}$/.test(v) && Number(v) >= 1 && Number(v) <= 64) return Number(v);
    const up = v.toUpperCase();
    const sig = (up.startsWith('SIG') ? up : `SIG${up}`) as NodeJS.Signals;
    if (sig in os.constants.signals) return sig;
  }
  throw new PaeneError('invalid-argument', `'signal' is a signal name (TERM, SIGKILL) or number 1-64, got ${JSON.stringify(v)}`);
}

/** OOM kills in the context's memory cgroup (v2 memory.events, v1 memory.oom_control). */
function oomKills(cg: ContextCgroup): number {
  const text = cg.read('memory', 'memory.events') ?? cg.read('memory', 'memory.oom_control') ?? '';
  return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0);
}

/** Forks refused by the pids limit (pids.events `max`). */
function pidsMaxHits(cg: ContextCgroup): number {
  return Number(/^max (\d+)/m.exec(cg.read('pids', 'pids.events') ?? '')?.[1] ?? 0);
}

/** Whether something answers HTTP on the socket (a live service, not a stale file). */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: socket, path: '/v1/contexts', timeout: 2000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}
