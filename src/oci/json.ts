// JSON from a bundle or a caller (config.json, exec --process, update
// --resources), parsed within stated limits: a hostile file gets an error that
// names the limit, never a stack overflow or a runtime that runs out of memory
// half-way through a create.

import { PaeneError } from '../model/errors.js';

/** config.json is a few KiB; the largest real ones (big seccomp profiles) stay under 1 MiB. */
export const OCI_JSON_MAX_BYTES = 32 << 20;
/** Real configs nest about 6 levels; Go's encoding/json (runc) stops at 10,000. */
export const OCI_JSON_MAX_DEPTH = 1000;

/** The deepest nesting of objects and arrays in a JSON text (strings skipped); stops counting past `limit`. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** Parses `text` (from `what`, named in errors) if it is within the size and depth limits. */
export function parseOciJson(text: string, what: string): unknown {
  const bytes = Buffer.byteLength(text);
  if (bytes > OCI_JSON_MAX_BYTES) {
    throw new PaeneError('invalid-argument', `${what}: ${bytes} bytes is over the limit of ${OCI_JSON_MAX_BYTES} bytes`);
  }
  if (jsonDepth(text, OCI_JSON_MAX_DEPTH) > OCI_JSON_MAX_DEPTH) {
    throw new PaeneError('invalid-argument', `${what}: nested more than ${OCI_JSON_MAX_DEPTH} levels deep (the limit)`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PaeneError('invalid-argument', `${what}: not JSON: ${(e as Error).message}`);
  }
}
