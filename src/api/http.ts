// The HTTP side of `paene serve` (docs/api.md): request bodies read within a
// bound, their fields checked, answers and refusals written. A refusal is
// `{"error": {"code", "message"}}` with the CLI's error code; its HTTP status
// follows from the code, except where HTTP has a finer word: a body that is
// not JSON is a 400, a JSON body whose values are wrong a 422, a method the
// path does not take a 405 (with Allow), a body or count over a bound a 413.

import type http from 'node:http';
import { type ErrorCode, PaeneError } from '../model/errors.js';

/** The largest request body (bytes). */
export const MAX_BODY_BYTES = 1 << 20;

export const STATUS: Record<ErrorCode, number> = {
  'invalid-argument': 422,
  'not-found': 404,
  exists: 409,
  'wrong-state': 409,
  busy: 503,
  'not-root': 403,
  unsupported: 501,
  'hostile-archive': 422,
  'limit-exceeded': 413,
  internal: 500,
};

/** A refusal with an HTTP status of its own (400 malformed, 405 with its Allow header, 413). */
export class HttpError extends PaeneError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly status: number,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}

/** The status and headers of a refusal. */
export function refusal(e: unknown): { status: number; headers: Record<string, string>; body: unknown } {
  const code: ErrorCode = e instanceof PaeneError ? e.code : 'internal';
  // a RangeError or the like from deep inside is still the service's fault, but say what it was
  const message = e instanceof Error ? e.message : String(e);
  return {
    status: e instanceof HttpError ? e.status : STATUS[code],
    headers: e instanceof HttpError ? e.headers : {},
    body: { error: { code, message } },
  };
}

/** Past this a refused body is not read to its end: the connection is cut once the refusal is out. */
export const DRAIN_BYTES = 64 << 20;

/**
 * The body as JSON (undefined when empty): 413 past `max`, 400 when it is
 * not JSON. A body refused for its size is still read to its end and thrown
 * away (up to DRAIN_BYTES), so the client, still writing, gets the refusal
 * rather than a reset connection.
 */
export function readBody(req: http.IncomingMessage, max = MAX_BODY_BYTES): Promise<unknown> {
  const tooLarge = () => new HttpError('limit-exceeded', `the request body is larger than ${max} bytes`, 413);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) {
    if (declared > DRAIN_BYTES) return Promise.reject(new HttpError('limit-exceeded', tooLarge().message, 413, { connection: 'close' }));
    req.resume(); // read and dropped
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (over) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError('invalid-argument', 'the request body is not valid JSON', 400));
      }
    });
  });
}

export function send(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n';
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

type FieldType = 'string' | 'number' | 'boolean';

/** A field of a JSON body, checked for its type (422 otherwise); a body that is not an object has none. */
export function field(body: unknown, key: string, type: 'string'): string | undefined;
export function field(body: unknown, key: string, type: 'number'): number | undefined;
export function field(body: unknown, key: string, type: 'boolean'): boolean | undefined;
export function field(body: unknown, key: string, type: FieldType): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const v = (body as Record<string, unknown>)[key];
  if (v === undefined) return undefined;
  if (typeof v !== type || (type === 'number' && !Number.isFinite(v)))
    throw new PaeneError('invalid-argument', `'${key}' must be a ${type}, got ${JSON.stringify(v)}`);
  return v;
}

/** A number field in [min, max] (seconds, ids, counts); `whole` wants an integer. */
export function bounded(body: unknown, key: string, min: number, max: number, whole = false): number | undefined {
  const v = field(body, key, 'number');
  if (v === undefined) return undefined;
  if (v < min || v > max || (whole && !Number.isInteger(v)))
    throw new PaeneError('invalid-argument', `'${key}' must be ${whole ? 'a whole number' : 'a number'} from ${min} to ${max}, got ${v}`);
  return v;
}

/** The body is an object (or absent); anything else is refused. */
export function objectBody(body: unknown, what: string): Record<string, unknown> {
  if (body === undefined) return {};
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new PaeneError('invalid-argument', `${what} wants a JSON object as its body`);
  return body as Record<string, unknown>;
}

/** A yes/no query word: absent, 0 or false is no; present empty, 1 or true is yes (400 otherwise). */
export function flag(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  if (v === null || v === '0' || v === 'false') return false;
  if (v === '' || v === '1' || v === 'true') return true;
  throw new HttpError('invalid-argument', `'${key}' is 1 or 0, got '${v}'`, 400);
}

/** Until the response can take more, or the reader is gone. */
export function drained(res: http.ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
