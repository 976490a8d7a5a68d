// The API's routes against docs/openapi.yaml, both ways: every method and
// path the service answers is described there, and every path and method
// described there is one the service answers (no kernel needed: the routes
// are read from a service that never listens).

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiServer } from '../../src/api/server.js';
import type { Runtime } from '../../src/runtime/runtime.js';

const spec = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/openapi.yaml'), 'utf8');

/** The paths of the spec with their methods, a path's parameters filled with a sample. */
function described(): { method: string; url: string; path: string }[] {
  const out: { method: string; url: string; path: string }[] = [];
  let cur: string | undefined;
  for (const line of spec.split('\n')) {
    const p = /^ {2}(\/v1\/[^:]*):$/.exec(line);
    if (p) cur = p[1];
    else if (/^\S/.test(line)) cur = undefined;
    const m = /^ {4}(get|post|put|patch|delete):$/.exec(line);
    if (m && cur) {
      const url = cur.replace(/\{address\}/g, '127.0.0.9').replace(/\{[a-z]+\}/g, 'paene-x');
      out.push({ method: (m[1] as string).toUpperCase(), url, path: cur });
    }
  }
  return out;
}

describe('the API routes and docs/openapi.yaml', () => {
  // the routes are made in the constructor; nothing is opened until listen()
  const routes = new ApiServer({} as Runtime, { socket: '/nonexistent/paene.sock' }).routeTable;
  const ops = described();

  it('describes every route the service answers', () => {
    expect(routes.length).toBeGreaterThan(40);
    const missing = routes.filter((r) => !ops.some((o) => o.method === r.method && r.re.test(o.url)));
    expect(missing.map((r) => `${r.method} ${r.re.source}`)).toEqual([]);
  });

  it('answers every path and method it describes', () => {
    const stray = ops.filter((o) => !routes.some((r) => r.method === o.method && r.re.test(o.url)));
    expect(stray.map((o) => `${o.method} ${o.path}`)).toEqual([]);
  });
});
