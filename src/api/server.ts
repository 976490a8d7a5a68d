// `paene serve`: the runtime as a resident service, a JSON API over a unix
// socket (docs/api.md). Every request runs on one Runtime in this process,
// under the same per-context and create locks as the CLI, so CLI calls and
// API requests may overlap on the same names. The socket is root's only
// (0600) unless a group is named (0660, that group).
//
// Events (GET /v1/events, one JSON object a line): what this service did
// (created, started, stopped, destroyed), and what it sees every second in
// the contexts' cgroups and processes: a context stopped by someone else
// (stopped), one whose init died (exited), an OOM kill, a pids limit hit.
//
// A context's main-process log (GET /v1/contexts/NAME/logs) is plain text, or
// one JSON object a line, streamed (chunked) while it follows.

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { type AutostartResult, autostartPlan, runAutostart } from '../model/autostart.js';
import { type ErrorCode, PaeneError } from '../model/errors.js';
import { DEFAULT_LIMITS } from '../model/limits.js';
import { expandTemplate } from '../model/names.js';
import { parseXid } from '../context/config.js';
import type { ContextCgroup } from '../cgroups/cgroups.js';
import { autostartCandidates } from '../runtime/autostart.js';
import { followLog, formatLogLine, logLineJson, logOptions, readLog } from '../runtime/logs.js';
import type { ContextStatus, NewRequest, Runtime } from '../runtime/runtime.js';

const STATUS: Record<ErrorCode, number> = {
  'invalid-argument': 400,
  'not-found': 404,
  exists: 409,
  'wrong-state': 409,
  busy: 503,
  'not-root': 403,
  unsupported: 501,
  'hostile-archive': 400,
  'limit-exceeded': 413,
  internal: 500,
};

export interface PaeneEvent {
  type: 'created' | 'started' | 'stopped' | 'destroyed' | 'exited' | 'oom' | 'limit';
  context: string;
  time: string;
  /** limit: which one (pids); oom: the kill count so far */
  detail?: Record<string, number | string>;
}

export interface ServeOptions {
  socket: string;
  /** a group whose members may use the socket too */
  gid?: number;
  /** how often the watcher looks at the contexts (ms) */
  watchMs?: number;
}

/** The API socket of a state root. */
export function apiSocket(rt: Runtime): string {
  return path.join(rt.layout.root, 'run', 'api.sock');
}

type Handler = (m: RegExpMatchArray, body: unknown) => Promise<unknown>;

export class ApiServer {
  private readonly server: http.Server;
  private readonly listeners = new Set<http.ServerResponse>();
  private readonly routes: [string, RegExp, Handler][];
  private watcher?: NodeJS.Timeout;
  /** last seen per context: running, oom kills, pids limit hits */
  private seen = new Map<string, { running: boolean; oom: number; pidsMax: number; dying?: boolean }>();
  /** contexts this service is starting, stopping or destroying (how many requests at once) */
  private readonly busy = new Map<string, number>();
  /** log requests under way: ended when the service closes */
  private readonly logReaders = new Set<AbortController>();

  constructor(
    private readonly rt: Runtime,
    private readonly opts: ServeOptions,
  ) {
    const name = '([a-z0-9][a-z0-9_-]{0,62})';
    this.routes = [
      ['GET', /^\/v1\/contexts$/, async () => this.rt.list()],
      ['POST', /^\/v1\/contexts$/, async (_m, b) => this.create(b)],
      [
        'GET',
        new RegExp(`^/v1/contexts/${name}$`),
        async (m) => ({ ...this.rt.status(m[1] as string), config: this.rt.config(m[1] as string) }),
      ],
      [
        'DELETE',
        new RegExp(`^/v1/contexts/${name}$`),
        async (m, b) =>
          this.acting(m[1] as string, 'destroyed', async () => {
            await this.rt.destroy(m[1] as string, { force: field(b, 'force', 'boolean') === true });
            return { destroyed: m[1] };
          }),
      ],
      [
        'POST',
        new RegExp(`^/v1/contexts/${name}/start$`),
        async (m) => this.acting(m[1] as string, 'started', () => this.rt.start(m[1] as string)),
      ],
      [
        'POST',
        new RegExp(`^/v1/contexts/${name}/stop$`),
        async (m, b) => {
          const t = field(b, 'timeout', 'number');
          return this.acting(m[1] as string, 'stopped', () =>
            this.rt.stop(m[1] as string, { timeoutMs: t === undefined ? undefined : (t as number) * 1000 }),
          );
        },
      ],
      ['POST', new RegExp(`^/v1/contexts/${name}/exec$`), async (m, b) => this.exec(m[1] as string, b)],
      ['GET', new RegExp(`^/v1/contexts/${name}/ps$`), async (m) => this.rt.ps(m[1] as string)],
    ];
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** Listens on the socket (replacing a stale one) and starts the watcher. */
  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.opts.socket), { recursive: true, mode: 0o700 });
    if (fs.existsSync(this.opts.socket)) {
      if (await answers(this.opts.socket)) throw new PaeneError('busy', `a paene service already answers on ${this.opts.socket}`);
      fs.rmSync(this.opts.socket, { force: true });
    }
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
    this.watcher = setInterval(() => this.watch(), this.opts.watchMs ?? 1000);
  }

  async close(): Promise<void> {
    if (this.watcher) clearInterval(this.watcher);
    for (const r of this.logReaders) r.abort();
    for (const l of this.listeners) l.end();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.opts.socket, { force: true });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const url = q < 0 ? raw : raw.slice(0, q);
    const query = q < 0 ? '' : raw.slice(q + 1);
    try {
      if (req.method === 'GET' && url === '/v1/events') return this.subscribe(res);
      const logs = LOGS_PATH.exec(url);
      if (logs) {
        if (req.method !== 'GET') throw new PaeneError('invalid-argument', `${req.method} is not allowed on ${url}`);
        return await this.logs(logs[1] as string, new URLSearchParams(query), res);
      }
      const route = this.routes.find(([method, re]) => method === req.method && re.test(url));
      if (!route) {
        const known = this.routes.some(([, re]) => re.test(url));
        throw new PaeneError(
          known ? 'invalid-argument' : 'not-found',
          known ? `${req.method} is not allowed on ${url}` : `no such endpoint: ${url} (see docs/api.md)`,
        );
      }
      const body = await readBody(req);
      const out = await route[2](url.match(route[1]) as RegExpMatchArray, body);
      send(res, 200, out ?? null);
    } catch (e) {
      const code: ErrorCode = e instanceof PaeneError ? e.code : 'internal';
      send(res, STATUS[code], { error: { code, message: e instanceof Error ? e.message : String(e) } });
    }
  }

  /**
   * Runs a start, stop or destroy of this service: the watcher leaves the
   * context alone meanwhile and forgets what it saw (the event is this one's).
   */
  private async acting<T>(name: string, event: PaeneEvent['type'], fn: () => Promise<T>): Promise<T> {
    this.busy.set(name, (this.busy.get(name) ?? 0) + 1);
    try {
      const r = await fn();
      this.emit(event, name);
      return r;
    } finally {
      const left = (this.busy.get(name) ?? 1) - 1;
      if (left > 0) this.busy.set(name, left);
      else this.busy.delete(name);
      this.seen.delete(name);
    }
  }

  private async create(b: unknown): Promise<unknown> {
    const name = field(b, 'name', 'string') as string | undefined;
    if (!name) throw new PaeneError('invalid-argument', "create wants a JSON body with 'name' (and 'count' for a %d template)");
    const count = field(b, 'count', 'number') as number | undefined;
    const names = count === undefined ? [name] : expandTemplate(name, count);
    const xid = field(b, 'xid', 'number');
    const spec: Omit<NewRequest, 'name'> = {
      image: (field(b, 'image', 'string') as string | undefined) ?? 'base',
      xid: xid === undefined ? undefined : parseXid(xid as number),
      hostname: field(b, 'hostname', 'string') as string | undefined,
      limits: DEFAULT_LIMITS,
    };
    const netMode = field(b, 'net', 'string') as string | undefined;
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
      r instanceof Error
        ? { name: names[i], ok: false, error: { code: r instanceof PaeneError ? r.code : 'internal', message: r.message } }
        : { name: names[i], ok: true, result: r },
    );
  }

  private async exec(name: string, b: unknown): Promise<unknown> {
    const argv = b !== null && typeof b === 'object' ? (b as { argv?: unknown }).argv : undefined;
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
      throw new PaeneError('invalid-argument', "exec wants a JSON body with 'argv': a non-empty list of strings");
    }
    const uid = field(b, 'uid', 'number') as number | undefined;
    const timeout = field(b, 'timeout', 'number') as number | undefined;
    return this.rt.execCapture(name, argv as string[], {
      user: uid === undefined ? undefined : { uid, gid: (field(b, 'gid', 'number') as number | undefined) ?? uid },
      cwd: field(b, 'cwd', 'string') as string | undefined,
      input: field(b, 'input', 'string') as string | undefined,
      timeoutMs: timeout === undefined ? 60_000 : timeout * 1000,
    });
  }

  /**
   * A context's main-process log: `tail`, `since`, `stream`, `timestamps`,
   * `json` as `paene logs`; with `follow` it stays open and sends each new
   * line, until the client goes or the service stops.
   */
  private async logs(name: string, q: URLSearchParams, res: http.ServerResponse): Promise<void> {
    this.rt.config(name); // 404 for an unknown context
    const opts = logOptions({ tail: q.get('tail') ?? undefined, since: q.get('since') ?? undefined, stream: q.get('stream') ?? undefined });
    const follow = flag(q, 'follow');
    const timestamps = flag(q, 'timestamps');
    const json = flag(q, 'json');
    const ac = new AbortController();
    this.logReaders.add(ac);
    res.on('close', () => ac.abort());
    res.writeHead(200, { 'content-type': json ? 'application/x-ndjson' : 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders(); // a follower sees the stream open before the first line
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
      this.logReaders.delete(ac);
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
    return [...failed, ...(await runAutostart(plan, jobs, (name) => this.acting(name, 'started', () => this.rt.start(name)), onEach))];
  }

  private subscribe(res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    res.write(''); // headers out now: a client sees the stream open before the first event
    this.listeners.add(res);
    res.on('close', () => this.listeners.delete(res));
  }

  private emit(type: PaeneEvent['type'], context: string, detail?: PaeneEvent['detail']): void {
    const line =
      JSON.stringify({ type, context, time: new Date().toISOString(), ...(detail ? { detail } : {}) } satisfies PaeneEvent) + '\n';
    for (const l of this.listeners) l.write(line);
  }

  /** Compares what each context is now with what it was: init gone, OOM kills, pids limit hits. */
  private watch(): void {
    const now = new Map<string, { running: boolean; oom: number; pidsMax: number; dying?: boolean }>();
    for (const n of this.rt.store.names()) {
      if (this.busy.has(n)) continue; // its event comes from the request
      const running = this.rt.store.live(n) !== undefined;
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

/** OOM kills in the context's memory cgroup (v2 memory.events, v1 memory.oom_control). */
function oomKills(cg: ContextCgroup): number {
  const text = cg.read('memory', 'memory.events') ?? cg.read('memory', 'memory.oom_control') ?? '';
  return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0);
}

/** Forks refused by the pids limit (pids.events `max`). */
function pidsMaxHits(cg: ContextCgroup): number {
  return Number(/^max (\d+)/m.exec(cg.read('pids', 'pids.events') ?? '')?.[1] ?? 0);
}

const LOGS_PATH = /^\/v1\/contexts\/([a-z0-9][a-z0-9_-]{0,62})\/logs$/;

/** A yes/no query word: absent, 0 or false is no; present empty, 1 or true is yes. */
function flag(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  if (v === null || v === '0' || v === 'false') return false;
  if (v === '' || v === '1' || v === 'true') return true;
  throw new PaeneError('invalid-argument', `'${key}' is 1 or 0, got '${v}'`);
}

/** Until the response can take more, or the reader is gone. */
function drained(res: http.ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A field of a JSON body, checked for its type. */
function field(body: unknown, key: string, type: 'string' | 'number' | 'boolean'): unknown {
  if (body === null || typeof body !== 'object') return undefined;
  const v = (body as Record<string, unknown>)[key];
  if (v === undefined) return undefined;
  if (typeof v !== type) throw new PaeneError('invalid-argument', `'${key}' must be a ${type}, got ${JSON.stringify(v)}`);
  return v;
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 1 << 20) throw new PaeneError('invalid-argument', 'request body larger than 1 MiB');
  }
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new PaeneError('invalid-argument', 'the request body is not valid JSON');
  }
}

function send(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
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
