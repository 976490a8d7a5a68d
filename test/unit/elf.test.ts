// elfInterpreter: the loader an ELF names, from synthetic headers of both
// classes and byte orders, and from this host's own programs.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { elfInterpreter } from '../../src/image/elf.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-elf-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A minimal ELF: the header, program headers (type, interpreter text or none) and the texts after them. */
function elf(is64: boolean, le: boolean, phdrs: Array<{ type: number; text?: string }>): Buffer {
  const eh = is64 ? 64 : 52;
  const ph = is64 ? 56 : 32;
  const textAt = eh + ph * phdrs.length;
  const texts = phdrs.map((p) => Buffer.from(p.text === undefined ? '' : `${p.text}\0`, 'latin1'));
  const b = Buffer.alloc(textAt + texts.reduce((n, t) => n + t.length, 0));
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = is64 ? 2 : 1;
  b[5] = le ? 1 : 2;
  b[6] = 1;
  const w16 = (v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const w32 = (v: number, o: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  const word = (v: number, o: number) => (is64 ? (le ? b.writeBigUInt64LE(BigInt(v), o) : b.writeBigUInt64BE(BigInt(v), o)) : w32(v, o));
  word(eh, is64 ? 32 : 28);
  w16(ph, is64 ? 54 : 42);
  w16(phdrs.length, is64 ? 56 : 44);
  let at = textAt;
  phdrs.forEach((p, i) => {
    const o = eh + i * ph;
    w32(p.type, o);
    word(at, o + (is64 ? 8 : 4));
    word(texts[i]!.length, o + (is64 ? 32 : 16));
    texts[i]!.copy(b, at);
    at += texts[i]!.length;
  });
  return b;
}

const file = (name: string, b: Buffer) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, b);
  return p;
};

describe('elfInterpreter', () => {
  it('reads PT_INTERP in both classes and byte orders, after other program headers', () => {
    for (const is64 of [true, false])
      for (const le of [true, false]) {
        const p = file(`i-${is64}-${le}`, elf(is64, le, [{ type: 6 }, { type: 3, text: '/lib/ld-test.so.1' }, { type: 1 }]));
        expect(elfInterpreter(p), `64=${is64} le=${le}`).toBe('/lib/ld-test.so.1');
      }
  });

  it('gives undefined for a static program (no PT_INTERP)', () => {
    expect(elfInterpreter(file('static', elf(true, true, [{ type: 1 }, { type: 4 }])))).toBeUndefined();
  });

  it('refuses a file that is not ELF, a truncated one and an interpreter of absurd size, with the file named', () => {
    expect(() => elfInterpreter(file('text', Buffer.from('#!/bin/sh\necho hi\n')))).toThrow(/text is not an ELF file/);
    const whole = elf(true, true, [{ type: 3, text: '/lib/ld.so' }]);
    expect(() => elfInterpreter(file('cut', whole.subarray(0, 70)))).toThrow(/cut: truncated ELF/);
    const big = Buffer.from(whole);
    big.writeBigUInt64LE(1n << 20n, 64 + 32);
    expect(() => elfInterpreter(file('big', big))).toThrow(/interpreter of 1048576 bytes/);
  });

  it("names this host's loader for node, as the kernel reads it (the loader exists)", () => {
    const loader = elfInterpreter(process.execPath);
    expect(loader).toMatch(/^\/.*ld/);
    expect(fs.existsSync(loader!)).toBe(true);
    // file(1), where present, reads the same header
    const f = spawnSync('file', ['-L', process.execPath], { encoding: 'utf8' });
    if (f.status === 0 && /interpreter/.test(f.stdout)) expect(f.stdout).toContain(`interpreter ${loader}`);
  });
});
