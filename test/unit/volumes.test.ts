// Named volumes on disk (src/runtime/volumes.ts), in a temporary state root:
// a damaged volume.json is said beside its volume, never hides the others,
// and never stops that volume's removal.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Layout } from '../../src/kernel/layout.js';
import { type VolumeHost, createVolume, inspectVolume, listVolumes, removeVolume, volumeDataDir } from '../../src/runtime/volumes.js';

let root: string;
let host: VolumeHost;
let configs: { name: string; mounts?: { source: string; target: string; readonly: boolean }[] }[];

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-volumes-'));
  configs = [];
  host = {
    layout: { root } as Layout,
    store: { readAllConfigs: () => configs },
    withListLock: (fn) => fn(),
  };
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('volumes on disk', () => {
  it('lists a volume whose volume.json is damaged or gone, with the problem, and removes it', async () => {
    for (const n of ['good', 'garbled', 'nulled', 'gone']) await createVolume(host, n);
    const meta = (n: string) => path.join(root, 'volumes', n, 'volume.json');
    fs.writeFileSync(meta('garbled'), '{"name": "garbled", "crea');
    fs.writeFileSync(meta('nulled'), 'null');
    fs.rmSync(meta('gone'));
    fs.mkdirSync(path.join(root, 'volumes', 'stray')); // no data directory: not a volume
    configs = [{ name: 'web', mounts: [{ source: 'garbled', target: '/data', readonly: false }] }];

    const rows = listVolumes(host);
    expect(rows.map((v) => v.name)).toEqual(['garbled', 'gone', 'good', 'nulled']);
    const by = Object.fromEntries(rows.map((v) => [v.name, v]));
    expect(by.good?.problem).toBeUndefined();
    expect(by.good?.created).toMatch(/^\d{4}-/);
    expect(by.garbled?.problem).toMatch(/not JSON/);
    expect(by.garbled?.usedBy).toEqual(['web']);
    expect(by.nulled?.problem).toMatch(/no creation time/);
    expect(by.gone?.problem).toMatch(/missing/);
    expect(inspectVolume(host, 'garbled').path).toBe(volumeDataDir(host.layout, 'garbled'));

    // still guarded while a config mounts it; removable once none does
    await expect(removeVolume(host, 'garbled')).rejects.toThrow(/mounted by context web/);
    configs = [];
    for (const n of ['garbled', 'nulled', 'gone']) await removeVolume(host, n);
    expect(listVolumes(host).map((v) => v.name)).toEqual(['good']);
    expect(() => inspectVolume(host, 'stray')).toThrow(/no volume named 'stray'/);
  });
});
