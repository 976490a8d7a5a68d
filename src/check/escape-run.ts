// `paene check escape` as a function: a temporary secure context (or a
// given running one) and a peer context, the probe copied in, both suites,
// a summary, and everything it made removed again.

import fs from 'node:fs';
import { PaeneError } from '../model/errors.js';
import { openImageStore } from '../runtime/open.js';
import type { Runtime } from '../runtime/runtime.js';
import { type AttemptResult, type EscapeSummary, summarize } from './escape-judge.js';
import { installProbe, makeSentinel, runSuites, type SuiteEnv } from './escape.js';
import { DEFAULT_IMAGE } from '../image/store.js';

export interface EscapeCheckOptions {
  /** the state root (the sentinel file goes there; the image is looked up there) */
  root: string;
  /** use this running context instead of a temporary one */
  context?: string;
  log?: (line: string) => void;
  onResult?: (r: AttemptResult) => void;
}

export interface EscapeCheckReport {
  context: string;
  profile: string;
  temporary: boolean;
  peer?: string;
  results: AttemptResult[];
  summary: EscapeSummary;
}

export async function runEscapeCheck(rt: Runtime, o: EscapeCheckOptions): Promise<EscapeCheckReport> {
  const log = o.log ?? (() => undefined);
  const made: string[] = [];
  const tag = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  let sentinel: string | undefined;
  try {
    let name = o.context;
    if (name) {
      const s = rt.status(name);
      if (s.state !== 'running') throw new PaeneError('wrong-state', `context '${name}' is not running; start it first`);
      const profile = rt.config(name).caps.profile;
      if (profile !== 'secure') log(`warning: '${name}' uses the ${profile} profile; the suite's expectations are those of secure`);
      log(`note: the admin suite changes files in '${name}' (it replaces /etc/passwd and /bin/ls with identical copies)`);
    } else {
      name = `escape-check-${tag}`;
      log(`creating a temporary secure context '${name}'`);
      await rt.create({ name, image: DEFAULT_IMAGE });
      made.push(name);
      await rt.start(name);
    }
    const peer = `escape-peer-${tag}`;
    await rt.create({ name: peer, image: DEFAULT_IMAGE });
    made.push(peer);
    await rt.start(peer);
    const config = rt.config(name);
    sentinel = makeSentinel(o.root);
    let imageRootfs: string | undefined;
    try {
      imageRootfs = openImageStore(o.root).rootfsOf(config.image);
    } catch {
      imageRootfs = undefined;
    }
    await installProbe(rt, name);
    await installProbe(rt, peer);
    const env: SuiteEnv = { rt, name, otherInitPid: rt.status(peer).pid, hostOnlyPath: sentinel, imageRootfs };
    const results = await runSuites(env, o.onResult);
    return { context: name, profile: config.caps.profile, temporary: !o.context, peer, results, summary: summarize(results) };
  } finally {
    for (const n of made.reverse()) {
      try {
        await rt.destroy(n, { force: true });
      } catch (e) {
        log(`warning: could not remove '${n}': ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (sentinel) fs.rmSync(sentinel, { force: true });
  }
}
