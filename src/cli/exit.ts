// Exit codes by error kind, so scripts can tell them apart (documented in the README).

import type { ErrorCode } from '../model/errors.js';

export const EXIT: Record<ErrorCode, number> = {
  'invalid-argument': 2,
  'not-found': 3,
  exists: 4,
  'wrong-state': 5,
  busy: 6,
  'not-root': 7,
  unsupported: 8,
  'hostile-archive': 9,
  'limit-exceeded': 9,
  internal: 1,
};
