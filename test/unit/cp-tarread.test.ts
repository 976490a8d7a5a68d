// runtime/tarread.ts, paene cp's push tar reader of a guest's stream: the
// same members and bytes however the stream is cut into pieces (down to one
// byte per read, the piece buffer reused between reads), tar-stream's and
// GNU tar's long names and PAX records, base-256 sizes; and the hostile
// cases refused in a sentence: a bad checksum, an unknown format, a number
// that is not one, a PAX record that lies, a stream cut short, an oversized
// metadata member.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PaeneError } from '../../src/model/errors.js';
import { type TarHeader, TarReader } from '../../src/runtime/tarread.js';
import { makeTar, paxRecord, rawEntry, rawHeader, rawTar } from '../image/tarhelp.js';

interface Got {
  h: TarHeader;
  data: Buffer;
}

/** Feeds `tar` in pieces of `size` bytes through one reused buffer (as copy.ts reads); the members and their data. */
function read(tar: Buffer, size = tar.length): Got[] {
  const got: Got[] = [];
  const r = new TarReader((h) => {
    const g: Got = { h, data: Buffer.alloc(0) };
    got.push(g);
    const parts: Buffer[] = [];
    return {
      write: (d) => parts.push(Buffer.from(d)),
      end: () => {
        g.data = Buffer.concat(parts);
      },
    };
  });
  const piece = Buffer.alloc(size);
  for (let off = 0; off < tar.length; off += size) {
    const n = tar.copy(piece, 0, off, off + size);
    r.push(piece.subarray(0, n));
    piece.fill(0xaa); // what the reader kept of this piece must have been copied
  }
  r.end();
  return got;
}

const refused = (f: () => unknown, msg: RegExp) => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PaeneError);
    expect((e as PaeneError).code).toBe('hostile-archive');
    expect((e as Error).message).toMatch(msg);
    return;
  }
  throw new Error('not refused');
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-tarread-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TarReader', () => {
  const long = `x/${'d'.repeat(120)}/${'f'.repeat(150)}`;
  const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));

  it('reads what tar-stream packs the same however the stream is cut', async () => {
    const tar = await makeTar([
      { name: 'x/', type: 'directory', mode: 0o755 },
      { name: 'x/a', body, mode: 0o4755, uid: 7, gid: 8 },
      { name: 'x/empty', body: '' },
      { name: 'x/s', type: 'symlink', linkname: '../elsewhere' },
      { name: 'x/h', type: 'link', linkname: 'x/a' },
      { name: long, body: 'long\n' },
      { name: 'x/dev', type: 'character-device', devmajor: 1, devminor: 3 },
    ]);
    const whole = read(tar);
    expect(whole.map((g) => [g.h.name, g.h.type])).toEqual([
      ['x/', 'directory'],
      ['x/a', 'file'],
      ['x/empty', 'file'],
      ['x/s', 'symlink'],
      ['x/h', 'link'],
      [long, 'file'],
      ['x/dev', 'character-device'],
    ]);
    expect(whole[1].data.equals(body)).toBe(true);
    expect(whole[1].h).toMatchObject({ mode: 0o4755, uid: 7, gid: 8, size: 3000 });
    expect(whole[1].h.mtime.getTime()).toBe(1_700_000_000_000);
    expect(whole[3].h.linkname).toBe('../elsewhere');
    expect(whole[5].data.toString()).toBe('long\n');
    for (const size of [1, 7, 511, 512, 513, 4096])
      expect(read(tar, size).map((g) => [g.h.name, g.h.type, g.h.linkname, g.data.toString('hex')])).toEqual(
        whole.map((g) => [g.h.name, g.h.type, g.h.linkname, g.data.toString('hex')]),
      );
  });

  it("reads GNU tar's own long names and links (GNU format)", () => {
    const src = path.join(dir, 'gnu');
    fs.mkdirSync(path.join(src, 'd'.repeat(120)), { recursive: true });
    fs.writeFileSync(path.join(src, 'd'.repeat(120), 'f'.repeat(120)), 'gnu\n');
    fs.symlinkSync(`../${'t'.repeat(130)}`, path.join(src, 'l'));
    const r = spawnSync('tar', ['--format=gnu', '-c', '-f', '-', '-C', src, '.'], { maxBuffer: 1 << 24 });
    expect(r.status).toBe(0);
    const got = read(r.stdout, 100);
    const file = got.find((g) => g.h.type === 'file');
    expect(file?.h.name).toBe(`./${'d'.repeat(120)}/${'f'.repeat(120)}`);
    expect(file?.data.toString()).toBe('gnu\n');
    expect(got.find((g) => g.h.type === 'symlink')?.h.linkname).toBe(`../${'t'.repeat(130)}`);
  });

  it('honours PAX path, linkpath and size, and base-256 sizes', () => {
    const pax = Buffer.concat([paxRecord('path', 'x/from-pax'), paxRecord('size', '5')]);
    const huge = Buffer.alloc(12);
    huge[0] = 0x80;
    huge.writeUInt32BE(3, 8);
    const tar = rawTar(
      rawEntry({ name: 'PaxHeader', typeflag: 'x' }, pax),
      rawHeader({ name: 'x/ignored', size: 99 }),
      Buffer.concat([Buffer.from('hello'), Buffer.alloc(507)]),
      rawHeader({ name: 'x/b256', sizeField: huge }),
      Buffer.concat([Buffer.from('abc'), Buffer.alloc(509)]),
    );
    expect(read(tar, 3).map((g) => [g.h.name, g.data.toString()])).toEqual([
      ['x/from-pax', 'hello'],
      ['x/b256', 'abc'],
    ]);
  });

  it('refuses a bad checksum, an unknown format, a number that is not one, a lying PAX record', () => {
    const good = rawEntry({ name: 'x/a' }, 'a');
    const flipped = Buffer.from(good);
    flipped[0] ^= 1;
    refused(() => read(rawTar(flipped)), /bad checksum/);
    const v7 = rawHeader({ name: 'x/a' });
    v7.fill(0, 257, 265);
    let sum = 0;
    v7.fill(' ', 148, 156);
    for (const x of v7) sum += x;
    v7.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    refused(() => read(rawTar(v7)), /no tar format/);
    refused(() => read(rawTar(rawHeader({ name: 'x/a', sizeField: Buffer.from('12x4\0\0\0\0\0\0\0\0') }))), /not a number/);
    refused(() => read(rawTar(rawEntry({ name: 'P', typeflag: 'x' }, '99 path=x/a\n'))), /malformed PAX/);
    refused(() => read(rawTar(rawEntry({ name: 'P', typeflag: 'x' }, paxRecord('size', '-1')), good)), /PAX size/);
    refused(() => read(rawTar(rawHeader({ name: 'L', typeflag: 'L', size: 2 * 1024 * 1024 }))), /metadata member larger/);
  });

  it('refuses a stream cut short inside a header, inside data or inside padding', () => {
    const tar = rawTar(rawEntry({ name: 'x/a' }, 'abc'));
    for (const cut of [100, 512 + 2, 512 + 100]) refused(() => read(tar.subarray(0, cut), 64), /ended inside a member/);
    expect(read(tar.subarray(0, 1024)).map((g) => g.h.name)).toEqual(['x/a']); // without its end blocks: whole members
  });
});
