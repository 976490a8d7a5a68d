// The fields of a tar header, decoded once for every reader of hostile tar:
// the image archive index (tarindex.ts) and `paene cp`'s copy-out reader
// (runtime/tarread.ts). Each caller says how a bad field fails (`fail`, with
// its own error text around the phrase given here).

/** The largest PAX record block or GNU long name a reader takes. */
export const TAR_META_MAX = 1024 * 1024;

export type Fail = (msg: string) => never;

/** A numeric field: octal text, or GNU base-256 (first byte 0x80; a negative one, 0xff, is refused). */
export function tarNumber(b: Buffer, what: string, fail: Fail): number {
  if (b[0]! & 0x80) {
    if (b[0] !== 0x80) fail(`a negative ${what}`);
    let n = 0;
    for (let i = 1; i < b.length; i++) n = n * 256 + b[i]!;
    if (!Number.isSafeInteger(n)) fail(`a ${what} too large`);
    return n;
  }
  const s = b.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) fail(`a ${what} that is not a number`);
  return parseInt(s, 8);
}

/** A NUL-terminated (or full-width) text field. */
export function tarString(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
}

/** A PAX extended header's records ("LEN key=value\n" each). */
export function paxRecords(data: Buffer, fail: Fail): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < data.length && data[off] !== 0) {
    const sp = data.indexOf(0x20, off);
    const len = sp < 0 ? Number.NaN : Number(data.subarray(off, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= sp - off + 1 || off + len > data.length) fail('a malformed PAX record');
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq < 0) fail("a PAX record without '='");
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}
