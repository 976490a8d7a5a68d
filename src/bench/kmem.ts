// Where a context's memory goes: /proc/meminfo's kernel fields and every slab
// cache from /proc/slabinfo, snapshot against snapshot, so the packing
// benchmark can give each KiB an owner (slab caches, page tables, stacks,
// per-cpu, anonymous and shmem pages) and the processes' own share.

import fs from 'node:fs';
import { meminfo } from './common.js';

/** The /proc/meminfo fields that split "memory used" by kind of owner. */
export const MEMINFO_FIELDS = [
  'AnonPages',
  'Shmem',
  'KernelStack',
  'PageTables',
  'Percpu',
  'SUnreclaim',
  'SReclaimable',
  'Cached',
  'Buffers',
] as const;
export type MeminfoField = (typeof MEMINFO_FIELDS)[number];

export interface KmemSnapshot {
  meminfo: Record<MeminfoField, number>;
  /** slab cache name -> bytes held by its slabs (num_slabs × pages per slab × page size) */
  slabs: Record<string, number>;
  /** bytes of free objects in slabs already held ((num_objs - active_objs) × objsize, summed): new objects fill these first */
  slabFree: number;
}

/** Parses /proc/slabinfo (version 2.1) into bytes per cache (pure, for tests). */
export function parseSlabinfo(text: string, pageSize = 4096): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('slabinfo') || line.startsWith('#')) continue;
    // name active_objs num_objs objsize objperslab pagesperslab : tunables ... : slabdata active_slabs num_slabs sharedavail
    const f = line.split(/\s+/);
    const name = f[0];
    const pagesPerSlab = Number(f[5]);
    const sd = f.indexOf('slabdata');
    const numSlabs = sd > 0 ? Number(f[sd + 2]) : NaN;
    if (!name || !Number.isFinite(pagesPerSlab) || !Number.isFinite(numSlabs)) continue;
    out[name] = (out[name] ?? 0) + numSlabs * pagesPerSlab * pageSize;
  }
  return out;
}

/** Bytes of free objects in the slabs the caches hold (pure, for tests). */
export function parseSlabFree(text: string): number {
  let free = 0;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('slabinfo') || line.startsWith('#')) continue;
    const f = line.split(/\s+/);
    const [active, total, size] = [Number(f[1]), Number(f[2]), Number(f[3])];
    if (Number.isFinite(active) && Number.isFinite(total) && Number.isFinite(size) && total > active) free += (total - active) * size;
  }
  return free;
}

export function kmemSnapshot(): KmemSnapshot {
  const m = meminfo();
  const mi = Object.fromEntries(MEMINFO_FIELDS.map((k) => [k, m[k] ?? 0])) as Record<MeminfoField, number>;
  let slabs: Record<string, number> = {};
  let slabFree = 0;
  try {
    const text = fs.readFileSync('/proc/slabinfo', 'utf8');
    slabs = parseSlabinfo(text);
    slabFree = parseSlabFree(text);
  } catch {
    /* not readable (not root, or no SLUB stats): the breakdown has meminfo only */
  }
  return { meminfo: mi, slabs, slabFree };
}

export interface KmemBreakdown {
  /** bytes per context for each meminfo field, (after - before) / contexts */
  meminfo: Record<MeminfoField, number>;
  /** the slab caches that grew most, bytes per context, largest first */
  slabs: { cache: string; perContext: number }[];
  /** the rest of the slab growth, summed */
  otherSlabsPerContext: number;
}

/** Growth between two snapshots per context (pure). */
export function kmemBreakdown(before: KmemSnapshot, after: KmemSnapshot, contexts: number, top = 12): KmemBreakdown {
  const per = (a: number, b: number) => (contexts > 0 ? Math.round((b - a) / contexts) : NaN);
  const mi = Object.fromEntries(MEMINFO_FIELDS.map((k) => [k, per(before.meminfo[k], after.meminfo[k])])) as Record<MeminfoField, number>;
  const names = new Set([...Object.keys(before.slabs), ...Object.keys(after.slabs)]);
  const growth = [...names]
    .map((cache) => ({ cache, perContext: per(before.slabs[cache] ?? 0, after.slabs[cache] ?? 0) }))
    .sort((a, b) => b.perContext - a.perContext);
  const shown = growth.slice(0, top);
  const otherSlabsPerContext = growth.slice(top).reduce((s, g) => s + g.perContext, 0);
  return { meminfo: mi, slabs: shown, otherSlabsPerContext };
}
