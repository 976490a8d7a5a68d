// The dynamic loader an ELF program names (its PT_INTERP), read from the file's
// program headers. The base image asks that loader for the program's libraries
// (what ldd does, without ldd's shell script around every call: a tenth of the
// CPU when the base image is built).

import fs from 'node:fs';
import { PaeneError } from '../model/errors.js';

const PT_INTERP = 3;

/** The loader path an ELF names, or undefined for a static program; throws for a file that is not ELF. */
export function elfInterpreter(file: string): string | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const read = (at: number, n: number): Buffer => {
      const b = Buffer.alloc(n);
      const got = fs.readSync(fd, b, 0, n, at);
      if (got !== n) throw new PaeneError('invalid-argument', `${file}: truncated ELF (${got} of ${n} bytes at ${at})`);
      return b;
    };
    const ident = read(0, 16);
    if (ident.readUInt32BE(0) !== 0x7f454c46) throw new PaeneError('invalid-argument', `${file} is not an ELF file`);
    const is64 = ident[4] === 2;
    const le = ident[5] === 1;
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const word = (b: Buffer, o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
    const header = read(0, is64 ? 64 : 52);
    const phoff = word(header, is64 ? 32 : 28);
    const phentsize = u16(header, is64 ? 54 : 42);
    const phnum = u16(header, is64 ? 56 : 44);
    for (let i = 0; i < phnum; i++) {
      const ph = read(phoff + i * phentsize, phentsize);
      if (u32(ph, 0) !== PT_INTERP) continue;
      const offset = word(ph, is64 ? 8 : 4);
      const size = word(ph, is64 ? 32 : 16);
      if (size < 2 || size > 4096) throw new PaeneError('invalid-argument', `${file}: an ELF interpreter of ${size} bytes`);
      return read(offset, size).toString('latin1').replace(/\0.*$/s, '');
    }
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}
