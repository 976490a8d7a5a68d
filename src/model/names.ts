// Many contexts per call: which names a command line means. `web*` and
// `db-?` match existing contexts (shell-style, on the names only), and
// `web%d` with a count makes a numbered set (`%03d` pads: web001 ...).

import { PaeneError } from './errors.js';

/** Whether an argument is a pattern over existing names rather than one name. */
export function isPattern(arg: string): boolean {
  return /[*?[]/.test(arg);
}

/** The existing names a shell-style pattern (`*`, `?`, `[a-c]`, `[!x]`) matches, in order. */
export function matchPattern(pattern: string, names: readonly string[]): string[] {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new PaeneError('invalid-argument', `pattern '${pattern}': '[' without a closing ']'`);
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('!')) set = '^' + set.slice(1);
      re += `[${set.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`);
  return names.filter((n) => rx.test(n));
}

/**
 * The names of the contexts a command works on, from its arguments: plain
 * names as given, patterns expanded against `existing` (one that matches
 * nothing is an error: a typo must not be a silent no-op), or every existing
 * one with --all. Duplicates go, the first mention keeps its place.
 */
export function selectNames(args: readonly string[], all: boolean, existing: () => readonly string[]): string[] {
  if (all && args.length > 0) throw new PaeneError('invalid-argument', 'name contexts or use --all, not both');
  if (all) return [...existing()];
  if (args.length === 0) throw new PaeneError('invalid-argument', 'name at least one context (or a pattern such as web*, or --all)');
  const out = new Set<string>();
  for (const a of args) {
    if (!isPattern(a)) {
      out.add(a);
      continue;
    }
    const hits = matchPattern(a, existing());
    if (hits.length === 0) throw new PaeneError('not-found', `no context matches '${a}'`);
    for (const h of hits) out.add(h);
  }
  return [...out];
}

/** `web%d` × 3 → web1 web2 web3 (from `from`); `%0Nd` pads to N digits. */
export function expandTemplate(template: string, count: number, from = 1): string[] {
  const m = /%(0\d+)?d/.exec(template);
  if (!m) throw new PaeneError('invalid-argument', `--count needs a name template with %d (e.g. web%d), got '${template}'`);
  if (/%(0\d+)?d/.test(template.slice(m.index + m[0].length)))
    throw new PaeneError('invalid-argument', `a name template has one %d, got '${template}'`);
  if (!Number.isInteger(count) || count < 1)
    throw new PaeneError('invalid-argument', `--count must be a whole number of at least 1, got '${count}'`);
  const width = m[1] ? Number(m[1]) : 0;
  const names: string[] = [];
  for (let i = from; i < from + count; i++)
    names.push(template.slice(0, m.index) + String(i).padStart(width, '0') + template.slice(m.index + m[0].length));
  return names;
}

/**
 * Runs `fn` on each item with at most `limit` at once; every item gets its
 * outcome (one failure does not stop the others). Results keep input order.
 */
export async function eachBounded<I, T>(
  items: readonly I[],
  limit: number,
  fn: (item: I) => Promise<T>,
): Promise<({ ok: true; value: T } | { ok: false; error: Error })[]> {
  const out: ({ ok: true; value: T } | { ok: false; error: Error })[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = { ok: true, value: await fn(items[i] as I) };
      } catch (e) {
        out[i] = { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

// The names and numbers of contexts (vserver's xids).

export { NAME_RE } from '../proto/names.js';
import { NAME_RE } from '../proto/names.js';

/** vserver's static xid range; 0 is the host, 1 the spectator. */
export const XID_MIN = 2;

export const XID_MAX = 49151;

export function validateName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new PaeneError(
      'invalid-argument',
      `invalid context name '${name}': use 1-63 characters, lower-case letters, digits, '-' and '_', starting with a letter or digit`,
    );
  }
  return name;
}

export function parseXid(value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < XID_MIN || n > XID_MAX) {
    throw new PaeneError('invalid-argument', `invalid xid '${value}': must be a whole number from ${XID_MIN} to ${XID_MAX}`);
  }
  return n;
}
