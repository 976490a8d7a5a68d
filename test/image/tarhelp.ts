// Helpers for image tests: build tarballs (with tar-stream, or raw 512-byte
// headers where tar-stream refuses to write something hostile), snapshot
// trees to prove nothing changed, and a seeded PRNG for the fuzz test.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import zlib from 'node:zlib';
import tar from 'tar-stream';

export type Ent = Partial<tar.Header> & { name: string; body?: Buffer | string };

/** A tar made by tar-stream's pack. */
export async function makeTar(entries: Ent[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const { body, ...h } = e;
    const header = { mode: 0o644, mtime: new Date(1_700_000_000_000), uid: 0, gid: 0, ...h };
    await new Promise<void>((resolve, reject) => {
      if (body !== undefined)
        pack.entry(header, typeof body === 'string' ? Buffer.from(body) : body, (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function oct(buf: Buffer, off: number, len: number, v: number): void {
  buf.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

export interface RawHeader {
  name: string | Buffer;
  typeflag?: string; // '0' file, '1' hard link, '2' symlink, '3' char, '5' dir, 'x' pax, 'L' GNU long name, 'S' sparse …
  size?: number;
  sizeField?: Buffer; // raw 12 bytes (e.g. base-256 huge sizes)
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  gnu?: boolean; // GNU magic instead of ustar
}

/** One raw 512-byte tar header with a correct checksum. */
export function rawHeader(h: RawHeader): Buffer {
  const b = Buffer.alloc(512);
  (typeof h.name === 'string' ? Buffer.from(h.name) : h.name).copy(b, 0, 0, 100);
  oct(b, 100, 8, h.mode ?? 0o644);
  oct(b, 108, 8, h.uid ?? 0);
  oct(b, 116, 8, h.gid ?? 0);
  if (h.sizeField) h.sizeField.copy(b, 124, 0, 12);
  else oct(b, 124, 12, h.size ?? 0);
  oct(b, 136, 12, h.mtime ?? 1_700_000_000);
  b.write((h.typeflag ?? '0').slice(0, 1), 156, 'latin1');
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  if (h.gnu) b.write('ustar  \0', 257, 'latin1');
  else {
    b.write('ustar\0', 257, 'latin1');
    b.write('00', 263, 'latin1');
  }
  oct(b, 329, 8, h.devmajor ?? 0);
  oct(b, 337, 8, h.devminor ?? 0);
  b.fill(' ', 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

export function pad(data: Buffer): Buffer {
  const rem = data.length % 512;
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rem)]);
}

/** A raw entry: header plus padded data. */
export function rawEntry(h: RawHeader, data: Buffer | string = Buffer.alloc(0)): Buffer {
  const d = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([rawHeader({ size: d.length, ...h }), pad(d)]);
}

export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), typeof value === 'string' ? Buffer.from(value) : value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

export function rawTar(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}

export function streamOf(buf: Buffer, chunk = 4096): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= buf.length) {
        this.push(null);
        return;
      }
      this.push(buf.subarray(off, off + chunk));
      off += chunk;
    },
  });
}

/** Everything about a tree that an import must not change: names, types, modes, owners, contents, targets. */
export function snapshot(root: string, opts: { mtimes?: boolean; skip?: (rel: string) => boolean } = {}): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (rel: string): void => {
    if (opts.skip?.(rel)) return;
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (!st) return;
    let desc = `${st.mode.toString(8)} ${st.uid}:${st.gid}`;
    if (opts.mtimes) desc += ` t${Math.floor(st.mtimeMs / 1000)}`;
    if (st.isFile()) desc += ` file ${st.size} ${createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`;
    else if (st.isSymbolicLink()) desc += ` -> ${fs.readlinkSync(abs)}`;
    else if (st.isCharacterDevice() || st.isBlockDevice()) desc += ` dev ${st.rdev}`;
    out.set(rel === '' ? '.' : rel, desc);
    if (st.isDirectory()) for (const n of fs.readdirSync(abs).sort()) visit(rel === '' ? n : `${rel}/${n}`);
  };
  visit('');
  return out;
}

export function diffSnapshots(a: Map<string, string>, b: Map<string, string>): string[] {
  const d: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) d.push(`${k}: ${v} => ${b.get(k) ?? '(gone)'}`);
  for (const [k, v] of b) if (!a.has(k)) d.push(`${k}: (new) ${v}`);
  return d;
}

/** mulberry32: a tiny seeded PRNG so fuzz failures reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Physical bytes of a directory: st_blocks of each distinct inode once. */
export function physicalBytes(root: string): number {
  const seen = new Set<string>();
  let total = 0;
  const visit = (abs: string): void => {
    const st = fs.lstatSync(abs);
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      total += st.blocks * 512;
    }
    if (st.isDirectory()) for (const n of fs.readdirSync(abs)) visit(path.join(abs, n));
  };
  visit(root);
  return total;
}

/** What a writer puts into a stream, as one buffer (e.g. an image export). */
export async function collect(write: (out: NodeJS.WritableStream) => Promise<void>): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((r) => out.on('end', r));
  await write(out);
  await ended;
  return Buffer.concat(chunks);
}

/** One seeded corruption of a tar: flipped bits, truncation, junk header fields (checksum fixed), moved, inserted or removed blocks, corrupt gzip. */
export function mutateTar(base: Buffer, r: () => number): Buffer {
  const b = Buffer.from(base);
  const pick = Math.floor(r() * 7);
  const at = () => Math.floor(r() * b.length);
  switch (pick) {
    case 0: // flip a few random bytes
      for (let i = 0, k = 1 + Math.floor(r() * 8); i < k; i++) b[at()] ^= 1 << Math.floor(r() * 8);
      return b;
    case 1: // truncate
      return b.subarray(0, at());
    case 2: {
      // rewrite a header field with junk and fix the checksum so the parser accepts it
      const hdr = Math.floor(r() * (b.length / 512)) * 512;
      const fields: Array<[number, number]> = [
        [0, 100],
        [100, 8],
        [108, 8],
        [116, 8],
        [124, 12],
        [136, 12],
        [156, 1],
        [157, 100],
        [345, 155],
      ];
      const [off, len] = fields[Math.floor(r() * fields.length)];
      const junk = ['..', '/', '../../sentinel/secret', '\0', '7777777777', 'zz', '/tmp', 'out/x', '-1', '5', '2', '1', 'L', 'x', 'S'];
      b.fill(0, hdr + off, hdr + off + len);
      b.write(junk[Math.floor(r() * junk.length)], hdr + off, len, 'latin1');
      b.fill(' ', hdr + 148, hdr + 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += b[hdr + i] ?? 0;
      b.write(sum.toString(8).padStart(6, '0') + '\0 ', hdr + 148, 8, 'latin1');
      return b;
    }
    case 3: {
      // duplicate a 512-byte block somewhere else
      const from = Math.floor(r() * (b.length / 512)) * 512;
      const to = Math.floor(r() * (b.length / 512)) * 512;
      return Buffer.concat([b.subarray(0, to), b.subarray(from, from + 512), b.subarray(to)]);
    }
    case 4: {
      // insert random bytes
      const pos = at();
      const junk = Buffer.alloc(1 + Math.floor(r() * 700));
      for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(r() * 256);
      return Buffer.concat([b.subarray(0, pos), junk, b.subarray(pos)]);
    }
    case 5: {
      // gzip, then corrupt the compressed stream
      const gz = zlib.gzipSync(b);
      for (let i = 0, k = 1 + Math.floor(r() * 4); i < k; i++) gz[10 + Math.floor(r() * (gz.length - 10))] ^= 0xff;
      return gz;
    }
    default: {
      // remove a block
      const blk = Math.floor(r() * (b.length / 512)) * 512;
      return Buffer.concat([b.subarray(0, blk), b.subarray(blk + 512)]);
    }
  }
}
