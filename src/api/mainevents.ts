// The main process's events in `paene serve`'s stream (docs/api.md): each
// exit, restart and give-up of a context's main process, from the host-side
// state file paene-log replaces whole at each change (main.state). A look
// may come after several changes (a quick restart): the restart counter
// says how many runs began since the last look, so none is lost, and the
// last state seen says what was told already, so none is told twice.

import fs from 'node:fs';
import path from 'node:path';
import type { MainState } from '../model/service.js';
import { readMainState } from '../runtime/mainstate.js';

export type MainEventType = 'main-exited' | 'main-restarted' | 'main-gave-up';

export interface MainEvent {
  type: MainEventType;
  detail: Record<string, number | string>;
}

/** What was told of a run: its state and restart count (a run's count is the restarts before it). */
export type MainSeen = Pick<MainState, 'state' | 'restarts'>;

const ENDED = new Set<MainState['state']>(['restarting', 'exited', 'killed', 'gave-up', 'failed']);

function ending(s: Pick<MainState, 'code' | 'signal' | 'error' | 'state'>, restarts: number): Record<string, number | string> {
  return {
    restarts,
    ...(s.signal !== undefined ? { signal: s.signal } : s.code !== undefined ? { code: s.code } : {}),
    ...(s.error !== undefined ? { error: s.error } : {}),
    ...(s.state !== 'running' ? { state: s.state } : {}),
  };
}

/**
 * The events between what was told (`prev`) and the state now: for each run
 * begun since, the end of the one before (unless told) and the restart; then
 * the end of the current run, and a give-up. A state file keeps only the
 * last exit's code: an exit missed between two looks carries the code of
 * the latest one and `missed: 1`.
 */
export function mainEvents(prev: MainSeen, cur: MainState): MainEvent[] {
  const out: MainEvent[] = [];
  if (cur.restarts < prev.restarts) return out; // a new run of the context: its own baseline
  for (let r = prev.restarts + 1; r <= cur.restarts; r++) {
    const endTold = r === prev.restarts + 1 && ENDED.has(prev.state);
    if (!endTold) {
      // the run before r ended: its code is known when it is the latest exit (the run now is r and running)
      const exact = r === cur.restarts && cur.state === 'running';
      out.push({ type: 'main-exited', detail: { ...ending({ ...cur, state: 'restarting' }, r - 1), ...(exact ? {} : { missed: 1 }) } });
    }
    out.push({ type: 'main-restarted', detail: { restarts: r } });
  }
  if (ENDED.has(cur.state)) {
    const sameRun = cur.restarts === prev.restarts;
    if (!(sameRun && ENDED.has(prev.state))) out.push({ type: 'main-exited', detail: ending(cur, cur.restarts) });
    if (cur.state === 'gave-up' && !(sameRun && prev.state === 'gave-up'))
      out.push({ type: 'main-gave-up', detail: ending(cur, cur.restarts) });
  }
  return out;
}

interface Watched {
  /** the context's run this is about (its start time) */
  started: string;
  seen: MainSeen;
  /** main.state's identity at the last read: a read only when it changed */
  stamp: string;
}

/**
 * Looks at the main.state of each running context (a stat each; a read
 * only when it changed) and tells its events. A context seen starting after
 * the watcher began is told from its first run; one already running when it
 * began, from what it is at the first look.
 */
export class MainWatcher {
  private readonly watched = new Map<string, Watched>();
  private readonly since = Date.now();

  constructor(
    private readonly logDir: (name: string) => string,
    private readonly tell: (name: string, e: MainEvent) => void,
  ) {}

  /**
   * One look at these running contexts (name → its start time, and its
   * init's start in ms since boot: a state written before it is the last
   * run's); the others are forgotten.
   */
  look(running: Map<string, { started: string; initStartMs: number }>): void {
    for (const n of this.watched.keys()) if (!running.has(n)) this.watched.delete(n);
    const bootMs = Date.now() - uptimeMs();
    for (const [name, { started, initStartMs }] of running) {
      const file = path.join(this.logDir(name), 'main.state');
      let stamp: string;
      try {
        const st = fs.statSync(file);
        stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
      } catch {
        continue; // no main process, or none started yet
      }
      let w = this.watched.get(name);
      if (w && w.started === started && w.stamp === stamp) continue;
      const cur = readMainState(this.logDir(name));
      if (!cur) continue;
      // a state older than this run of the context (its init's start, to a clock tick) is its last run's
      if (Date.parse(cur.at) < bootMs + initStartMs - 50) continue;
      if (!w || w.started !== started) {
        // seen starting (after the watcher began): from its first run; else from what it is now
        const fresh = Date.parse(started) >= this.since;
        w = { started, stamp: '', seen: fresh ? { state: 'running', restarts: 0 } : { state: cur.state, restarts: cur.restarts } };
        this.watched.set(name, w);
      }
      if (cur.restarts < w.seen.restarts) w.seen = { state: 'running', restarts: 0 };
      for (const e of mainEvents(w.seen, cur)) this.tell(name, e);
      w.seen = { state: cur.state, restarts: cur.restarts };
      w.stamp = stamp;
    }
  }
}

/** Time since boot (ms), to 10 ms. */
function uptimeMs(): number {
  try {
    return Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
  } catch {
    return Number.NaN; // unknown: no state is judged stale
  }
}
