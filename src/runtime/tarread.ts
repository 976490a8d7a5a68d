// A push tar reader for `paene cp`'s copy out: the guest's stream is fed in
// whatever pieces a read returned, and each member's header and data are
// handed on synchronously, the data as views of the piece it came in (no
// copy, no stream per member, no tick between pieces). What it reads is
// hostile: checksums are verified, numbers must be numbers, PAX records and
// GNU long names are honoured up to a cap, and a stream that ends inside a
// member is an error. Where a member may go is not decided here (the
// extractor checks every name); a misread header can only misname a member.

import { PaeneError } from '../model/errors.js';
import { paxRecords, TAR_META_MAX, tarNumber, tarString } from '../image/tarfields.js';

export type TarType =
  | 'file'
  | 'contiguous-file'
  | 'link'
  | 'symlink'
  | 'character-device'
  | 'block-device'
  | 'directory'
  | 'fifo'
  | 'unknown';

export interface TarHeader {
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname: string;
}

/** Where a member's data goes: each piece as it arrives (a view, valid during the call), then end. */
export interface TarSink {
  write(data: Buffer): void;
  end(): void;
}

const BLOCK = 512;
const TYPES: Record<string, TarType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'contiguous-file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

function bad(msg: string): never {
  throw new PaeneError('hostile-archive', `the guest's tar sent a broken stream: ${msg}`);
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

/** Reads a tar pushed in pieces; `onEntry` gets each member (after its long names) and returns where its data goes. */
export class TarReader {
  private state: 'header' | 'data' | 'meta' | 'skip' = 'header';
  /** bytes still to come of the current data, metadata or padding */
  private need = 0;
  /** a header or a metadata block read in part (copied: the pieces are reused) */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private meta = '';
  private metaPad = 0;
  private sink: TarSink | undefined;
  private pax: Record<string, string> = {};
  private paxGlobal: Record<string, string> = {};
  private longName: string | undefined;
  private longLink: string | undefined;

  constructor(private readonly onEntry: (h: TarHeader) => TarSink | undefined) {}

  /** Feeds a piece; `piece` may be reused by the caller once this returns. */
  push(piece: Buffer): void {
    let off = 0;
    while (off < piece.length) {
      const avail = piece.length - off;
      if (this.state === 'data' || this.state === 'skip') {
        const n = Math.min(this.need, avail);
        if (this.state === 'data' && n > 0) this.sink?.write(piece.subarray(off, off + n));
        off += n;
        this.need -= n;
        if (this.need === 0) this.afterData();
        continue;
      }
      // a header (512 bytes) or a metadata member (its size): whole, copied when it spans pieces
      const want = (this.state === 'header' ? BLOCK : this.need) - this.heldBytes;
      if (avail < want) {
        this.held.push(Buffer.from(piece.subarray(off)));
        this.heldBytes += avail;
        return;
      }
      const part = piece.subarray(off, off + want);
      off += want;
      const whole = this.heldBytes ? Buffer.concat([...this.held, part]) : part;
      this.held = [];
      this.heldBytes = 0;
      if (this.state === 'header') this.header(whole);
      else this.metadata(whole);
    }
  }

  /** The stream ended: anything but a member boundary is a cut-short stream. */
  end(): void {
    if (this.state !== 'header' || this.heldBytes > 0) bad('it ended inside a member');
  }

  private afterData(): void {
    if (this.state === 'data') {
      const sink = this.sink;
      this.sink = undefined;
      this.state = 'skip';
      this.need = this.metaPad;
      sink?.end();
      if (this.need > 0) return;
    }
    this.state = 'header';
  }

  private header(h: Buffer): void {
    if (h.every((x) => x === 0)) return; // the end-of-archive blocks (and anything after them read the same way)
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    if (tarNumber(h.subarray(148, 156), 'checksum', bad) !== sum) bad('a header with a bad checksum');
    const magic = h.subarray(257, 263).toString('latin1');
    if (magic !== 'ustar\0' && magic !== 'ustar ') bad('a header of no tar format it knows (not ustar or GNU)');
    const flag = String.fromCharCode(h[156]);
    let size = tarNumber(h.subarray(124, 136), 'size', bad);
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > TAR_META_MAX) bad(`a metadata member larger than ${TAR_META_MAX} bytes`);
      this.meta = flag;
      this.metaPad = padding(size);
      this.state = 'meta';
      this.need = size;
      if (size === 0) this.metadata(Buffer.alloc(0));
      return;
    }
    const pax = { ...this.paxGlobal, ...this.pax };
    const prefix = magic === 'ustar\0' ? tarString(h.subarray(345, 500)) : '';
    const plain = tarString(h.subarray(0, 100));
    const name = pax.path ?? this.longName ?? (prefix ? `${prefix}/${plain}` : plain);
    const linkname = pax.linkpath ?? this.longLink ?? tarString(h.subarray(157, 257));
    this.pax = {};
    this.longName = undefined;
    this.longLink = undefined;
    if (pax.size !== undefined) {
      if (!/^\d+$/.test(pax.size)) bad('a PAX size that is not a number');
      size = Number(pax.size);
      if (!Number.isSafeInteger(size)) bad('a PAX size too large');
    }
    let type = TYPES[flag] ?? 'unknown';
    if (type === 'directory' || type === 'symlink' || type === 'link') size = 0; // no data follows them, as tar-stream reads them
    if (type === 'file' && name.endsWith('/')) type = 'directory'; // old tars mark directories so
    const header: TarHeader = {
      name,
      type,
      mode: tarNumber(h.subarray(100, 108), 'mode', bad),
      uid: tarNumber(h.subarray(108, 116), 'uid', bad),
      gid: tarNumber(h.subarray(116, 124), 'gid', bad),
      size,
      mtime: new Date(1000 * tarNumber(h.subarray(136, 148), 'mtime', bad)),
      linkname,
    };
    this.sink = this.onEntry(header);
    this.metaPad = padding(size);
    this.state = 'data';
    this.need = size;
    if (size === 0) this.afterData();
  }

  private metadata(data: Buffer): void {
    if (this.meta === 'x') this.pax = paxRecords(data, bad);
    else if (this.meta === 'g') this.paxGlobal = { ...this.paxGlobal, ...paxRecords(data, bad) };
    else if (this.meta === 'L') this.longName = tarString(data);
    else this.longLink = tarString(data);
    this.state = 'skip';
    this.need = this.metaPad;
    if (this.need === 0) this.state = 'header';
  }
}
