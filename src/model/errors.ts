// One error type for everything the user can get wrong or the host can lack.
// `code` is stable (scripts match on it, --json prints it); the message says
// what happened and, where there is one, what to do.

export type ErrorCode =
  | 'invalid-argument' // a name, number, limit or flag the user gave is malformed
  | 'not-found' // unknown context or image
  | 'exists' // duplicate name or xid
  | 'wrong-state' // e.g. exec on a stopped context, start on a running one
  | 'busy' // another paene holds the lock, or an image is in use
  | 'not-root' // the operation needs root
  | 'unsupported' // not Linux, or a kernel feature is missing
  | 'hostile-archive' // an image archive tried something it must not
  | 'limit-exceeded' // an import hit --max-files / --max-bytes
  | 'internal'; // a bug or an unexpected host failure

export class PaeneError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PaeneError';
    this.code = code;
  }
}

export function isPaeneError(e: unknown, code?: ErrorCode): e is PaeneError {
  return e instanceof PaeneError && (code === undefined || e.code === code);
}

/** Node's system errors carry `code` (ENOENT, EEXIST, ...). */
export function errnoOf(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const c = (e as { code: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}
