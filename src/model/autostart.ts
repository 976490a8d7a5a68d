// `paene autostart` (docs/services.md): which contexts a host's boot starts,
// and in which order. Pure: the plan, and running it with a start function.
//
// Started: contexts marked `--autostart` (always, also after a user's stop:
// the mark says "start it at boot"), and those whose restart policy is
// `always`, or `unless-stopped` unless a user stopped it. Running ones are
// skipped. Groups by the autostart order, lowest first; contexts without an
// order come after every ordered group. Each group starts many at once; the
// next waits for the whole group before it.

import { eachBounded } from './names.js';
import type { RestartMode } from './service.js';

export interface AutostartCandidate {
  name: string;
  autostart?: { order: number };
  restart?: { mode: RestartMode };
  running?: boolean;
  /** the last stop was a user's (Layout.stoppedMark) */
  stoppedByUser?: boolean;
}

export interface AutostartGroup {
  /** the autostart order of the group; undefined: contexts with no order (restart policies), last */
  order?: number;
  names: string[];
}

export type AutostartWhy = 'autostart' | 'restart always' | 'restart unless-stopped';

export interface AutostartPlan {
  groups: AutostartGroup[];
  /** why each planned context starts */
  why: Record<string, AutostartWhy>;
  /** contexts that would start but are left alone, and why */
  skipped: { name: string; reason: 'running' | 'stopped by user' }[];
}

export function autostartPlan(contexts: readonly AutostartCandidate[]): AutostartPlan {
  const ordered = new Map<number, string[]>();
  const unordered: string[] = [];
  const why: Record<string, AutostartWhy> = {};
  const skipped: AutostartPlan['skipped'] = [];
  for (const c of [...contexts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const mode = c.restart?.mode;
    const reason: AutostartWhy | undefined =
      c.autostart !== undefined
        ? 'autostart'
        : mode === 'always'
          ? 'restart always'
          : mode === 'unless-stopped'
            ? 'restart unless-stopped'
            : undefined;
    if (reason === undefined) continue;
    if (c.running) {
      skipped.push({ name: c.name, reason: 'running' });
      continue;
    }
    if (reason === 'restart unless-stopped' && c.stoppedByUser) {
      skipped.push({ name: c.name, reason: 'stopped by user' });
      continue;
    }
    why[c.name] = reason;
    if (c.autostart !== undefined) {
      const g = ordered.get(c.autostart.order);
      if (g) g.push(c.name);
      else ordered.set(c.autostart.order, [c.name]);
    } else unordered.push(c.name);
  }
  const groups: AutostartGroup[] = [...ordered.entries()].sort((a, b) => a[0] - b[0]).map(([order, names]) => ({ order, names }));
  if (unordered.length > 0) groups.push({ names: unordered });
  return { groups, why, skipped };
}

export interface AutostartResult<T> {
  name: string;
  order?: number;
  outcome: { ok: true; value: T } | { ok: false; error: Error };
}

/**
 * Runs a plan: each group with at most `jobs` starts at once, the next group
 * after the whole previous one. A failure does not stop the others (nor the
 * later groups). `onEach` hears each result as it comes.
 */
export async function runAutostart<T>(
  plan: AutostartPlan,
  jobs: number,
  start: (name: string) => Promise<T>,
  onEach?: (r: AutostartResult<T>) => void,
): Promise<AutostartResult<T>[]> {
  const out: AutostartResult<T>[] = [];
  for (const g of plan.groups) {
    const results = await eachBounded(g.names, jobs, async (name) => {
      try {
        const value = await start(name);
        onEach?.({ name, order: g.order, outcome: { ok: true, value } });
        return value;
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        onEach?.({ name, order: g.order, outcome: { ok: false, error } });
        throw error;
      }
    });
    results.forEach((outcome, i) => out.push({ name: g.names[i] as string, order: g.order, outcome }));
  }
  return out;
}
