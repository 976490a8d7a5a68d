// A message from TypeScript to a native program: NUL-terminated tokens, each
// entry a KEY and its fixed number of values, the whole closed by `end N`
// (N: the tokens before it), so a message cut short or padded is refused.
//
// Each message is described once, as data (the files beside this one): the
// TypeScript writer checks every entry against it, and the build generates
// the C header the native side parses with (scripts/build-helper.js writes
// dist/gen/<name>.h), so the two sides cannot drift apart.

export interface TokenKey {
  /** the key as it travels */
  readonly key: string;
  /** the names of its values, in order (their count is the key's arity) */
  readonly values: readonly string[];
  /** what it means, for the generated header */
  readonly doc: string;
}

export interface TokenMessage {
  /** C identifier prefix (oci_plan → enum oci_plan_key, OCI_PLAN_MOUNT, ...) */
  readonly name: string;
  readonly doc: string;
  readonly keys: readonly TokenKey[];
}

export type Entry = readonly [key: string, ...values: string[]];

/** Why a message cannot be written or read (a bug on our side, or a hostile file). */
export class TokenError extends Error {}

function keyOf(msg: TokenMessage, key: string): TokenKey {
  const k = msg.keys.find((x) => x.key === key);
  if (!k) throw new TokenError(`${msg.name}: unknown key '${key}'`);
  return k;
}

/** Checks one entry against the message: a known key with exactly its values, none holding a NUL. */
export function checkEntry(msg: TokenMessage, e: Entry): void {
  const [key, ...values] = e;
  const k = keyOf(msg, key);
  if (values.length !== k.values.length) {
    throw new TokenError(`${msg.name}: '${key}' takes ${k.values.length} value(s) (${k.values.join(', ')}), got ${values.length}`);
  }
  for (const v of values) if (v.includes('\0')) throw new TokenError(`${msg.name}: a value of '${key}' contains a NUL byte`);
}

/** The entries as the native side reads them: checked, NUL-terminated, closed by `end N`. */
export function encodeMessage(msg: TokenMessage, entries: readonly Entry[]): Buffer {
  const flat: string[] = [];
  for (const e of entries) {
    checkEntry(msg, e);
    flat.push(...e);
  }
  return Buffer.from([...flat, 'end', String(flat.length)].map((s) => s + '\0').join(''), 'utf8');
}

/** Reads a message back into entries (a native program's echo, or a file): the inverse of encodeMessage. */
export function decodeMessage(msg: TokenMessage, buf: Buffer): Entry[] {
  const toks = buf.toString('utf8').split('\0');
  if (toks.pop() !== '') throw new TokenError(`${msg.name}: the last token is not terminated`);
  if (toks.length < 2 || toks[toks.length - 2] !== 'end' || toks[toks.length - 1] !== String(toks.length - 2)) {
    throw new TokenError(`${msg.name}: incomplete (no end marker, or one that does not count the tokens)`);
  }
  toks.length -= 2;
  const out: Entry[] = [];
  for (let i = 0; i < toks.length; ) {
    const k = keyOf(msg, toks[i]);
    if (i + k.values.length >= toks.length) {
      throw new TokenError(`${msg.name}: '${k.key}' needs ${k.values.length} value(s)`);
    }
    out.push(toks.slice(i, i + 1 + k.values.length) as unknown as Entry);
    i += 1 + k.values.length;
  }
  return out;
}

const cIdent = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, '_');

/** The C header the native side includes: an enum of the keys and a table of their names and arities. */
export function cHeader(msg: TokenMessage, source: string): string {
  const P = cIdent(msg.name);
  const lines = [
    `/* Generated from ${source} by scripts/build-helper.js: do not edit. */`,
    `/* ${msg.doc} */`,
    `#ifndef GEN_${P}_H`,
    `#define GEN_${P}_H`,
    '/* needs struct proto_key: include src/native/proto.h first */',
    `enum ${msg.name}_key {`,
    ...msg.keys.map(
      (k) =>
        `  ${P}_${cIdent(k.key)}, /* ${k.key}${k.values.map((v) => ' ' + v.toUpperCase()).join('')}: ${k.doc.replace(/\*\//g, '* /')} */`,
    ),
    `  ${P}_KEYS`,
    '};',
    `static const struct proto_key ${msg.name}_keys[${P}_KEYS] = {`,
    ...msg.keys.map((k) => `  {"${k.key}", ${k.values.length}},`),
    '};',
    '#endif',
    '',
  ];
  return lines.join('\n');
}

/** A flag message as a command line: each entry checked, flattened (no end marker: argv has its own end). */
export function flagArgs(msg: TokenMessage, entries: readonly Entry[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    checkEntry(msg, e);
    out.push(...e);
  }
  return out;
}

/** A command line back into entries, up to `--` (what follows is returned apart). */
export function parseFlagArgs(msg: TokenMessage, argv: readonly string[]): { entries: Entry[]; rest?: string[] } {
  const entries: Entry[] = [];
  for (let i = 0; i < argv.length; ) {
    if (argv[i] === '--') return { entries, rest: argv.slice(i + 1) };
    const k = keyOf(msg, argv[i]);
    if (i + k.values.length >= argv.length) throw new TokenError(`${msg.name}: '${k.key}' needs ${k.values.length} value(s)`);
    entries.push(argv.slice(i, i + 1 + k.values.length) as unknown as Entry);
    i += 1 + k.values.length;
  }
  return { entries };
}

/** The codes an answer can carry ("err CODE MESSAGE"): described once, generated into C as an enum and names. */
export interface ReplyCodes {
  readonly name: string;
  readonly doc: string;
  readonly codes: readonly { readonly code: string; readonly doc: string }[];
}

export type Reply<C extends string = string> = { ok: true; value: string } | { ok: false; code: C | undefined; message: string };

/** Reads an answer line: "ok VALUE", or "err CODE MESSAGE" (code undefined: not one of the codes, an older helper's). */
export function parseReply(codes: ReplyCodes, line: string): Reply {
  if (line === 'ok' || line.startsWith('ok ')) return { ok: true, value: line.slice(2).trim() };
  if (!line.startsWith('err ')) return { ok: false, code: undefined, message: line };
  const rest = line.slice(4);
  const sp = rest.indexOf(' ');
  const word = sp < 0 ? rest : rest.slice(0, sp);
  if (codes.codes.some((c) => c.code === word)) return { ok: false, code: word, message: sp < 0 ? '' : rest.slice(sp + 1) };
  return { ok: false, code: undefined, message: rest };
}

/** The C header of a code list: an enum and the codes' names. */
export function cCodesHeader(codes: ReplyCodes, source: string): string {
  const P = cIdent(codes.name);
  return [
    `/* Generated from ${source} by scripts/build-helper.js: do not edit. */`,
    `/* ${codes.doc} */`,
    `#ifndef GEN_${P}_H`,
    `#define GEN_${P}_H`,
    `enum ${codes.name} {`,
    ...codes.codes.map((c) => `  ${P}_${cIdent(c.code)}, /* ${c.code}: ${c.doc.replace(/\*\//g, '* /')} */`),
    `  ${P}S`,
    '};',
    `__attribute__((unused)) static const char *const ${codes.name}_names[${P}S] = {`,
    ...codes.codes.map((c) => `  "${c.code}",`),
    '};',
    '#endif',
    '',
  ].join('\n');
}

/** Numbers both languages use outside a message (e.g. where a descriptor is): described once, generated into C as defines. */
export interface ProtoConstants {
  readonly name: string;
  readonly doc: string;
  readonly constants: Readonly<Record<string, number>>;
}

export function cConstantsHeader(c: ProtoConstants, source: string): string {
  const P = cIdent(c.name);
  return [
    `/* Generated from ${source} by scripts/build-helper.js: do not edit. */`,
    `/* ${c.doc} */`,
    `#ifndef GEN_${P}_H`,
    `#define GEN_${P}_H`,
    ...Object.entries(c.constants).map(([k, v]) => `#define ${cIdent(k)} ${v}`),
    '#endif',
    '',
  ].join('\n');
}
