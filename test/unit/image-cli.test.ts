// The `paene image` verbs, driven in-process through commander.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSize } from '../../src/model/units.js';
import { isPaeneError } from '../../src/model/errors.js';
import { tempRoot } from '../helpers.js';
import { imageCli } from '../image/clihelp.js';
import { makeTar } from '../image/tarhelp.js';

let root: string;
let tarFile: string;
const users = new Map<string, string[]>();

const run = imageCli(
  () => root,
  (img) => users.get(img) ?? [],
);

beforeAll(async () => {
  root = tempRoot('image-cli');
  tarFile = path.join(root, 'img.tar');
  fs.writeFileSync(
    tarFile,
    await makeTar([
      { name: 'etc/hostname', body: 'x\n' },
      { name: 'bin/', type: 'directory' },
    ]),
  );
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('paene image verbs', () => {
  it('parses sizes', () => {
    expect(parseSize('1000')).toBe(1000);
    expect(parseSize('500M')).toBe(500 * 1024 ** 2);
    expect(parseSize('64G')).toBe(64 * 1024 ** 3);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(() => parseSize('lots')).toThrow(/expected a number of bytes/);
  });

  it('import, ls, du, export, rm', async () => {
    expect(await run('image', 'import', tarFile, '--name', 'one')).toMatch(/imported image one: 3 entries/);
    const rows = JSON.parse(await run('image', 'ls', '--json')) as Array<{ name: string; files: number; contexts: string[] }>;
    expect(rows.map((r) => [r.name, r.files])).toEqual([['one', 3]]);
    expect(await run('image', 'ls')).toMatch(/^NAME\s+FILES\s+SIZE\s+ON DISK\s+CONTEXTS/);
    const du = JSON.parse(await run('image', 'du', '--json')) as { images: number; objects: number };
    expect([du.images, du.objects]).toEqual([1, 1]);
    const out = path.join(root, 'out.tar');
    await run('image', 'export', 'one', '-o', out);
    expect(fs.statSync(out).size).toBeGreaterThan(1024);
    expect(await run('image', 'import', out, '--name', 'two')).toMatch(/imported image two/);
    users.set('two', ['web1']);
    await expect(run('image', 'rm', 'two')).rejects.toSatisfy((e: unknown) => isPaeneError(e, 'busy') && /web1/.test((e as Error).message));
    expect(JSON.parse(await run('image', 'ls', '--json'))[1].contexts).toEqual(['web1']);
    users.delete('two');
    expect(await run('image', 'rm', 'two')).toMatch(/removed image two/);
  });

  it('limits and bad names are errors', async () => {
    await expect(run('image', 'import', tarFile, '--name', 'Bad/Name')).rejects.toSatisfy((e: unknown) =>
      isPaeneError(e, 'invalid-argument'),
    );
    await expect(run('image', 'import', tarFile, '--name', 'x', '--max-files', '1')).rejects.toSatisfy((e: unknown) =>
      isPaeneError(e, 'limit-exceeded'),
    );
    await expect(run('image', 'import', path.join(root, 'missing.tar'), '--name', 'x')).rejects.toSatisfy((e: unknown) =>
      isPaeneError(e, 'not-found'),
    );
    await expect(run('image', 'export', 'nope', '-o', path.join(root, 'n.tar'))).rejects.toSatisfy((e: unknown) =>
      isPaeneError(e, 'not-found'),
    );
    expect(fs.existsSync(path.join(root, 'n.tar'))).toBe(false);
  });
});
