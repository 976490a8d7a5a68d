// What the host knows of a context's main process: paene-log's main.state
// (proto/main-process.ts MAIN_STATE), replaced whole at each start and exit.

import fs from 'node:fs';
import path from 'node:path';
import type { MainState } from '../model/service.js';
import { MAIN_STATE } from '../proto/main-process.js';
import { decodeMessage } from '../proto/tokens.js';

const STATES = new Set(['running', 'restarting', 'exited', 'killed', 'gave-up', 'failed']);

/** The state in `logDir`, or undefined when there is none yet (never started) or it cannot be read. */
export function readMainState(logDir: string): MainState | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path.join(logDir, 'main.state'));
  } catch {
    return undefined;
  }
  try {
    const out: Partial<MainState> & { restarts: number } = { restarts: 0 };
    for (const [key, v = ''] of decodeMessage(MAIN_STATE, buf)) {
      const n = Number(v);
      if (key === 'state' && STATES.has(v)) out.state = v as MainState['state'];
      else if (key === 'pid') out.pid = n;
      else if (key === 'code') out.code = n;
      else if (key === 'signal') out.signal = n;
      else if (key === 'error') out.error = v;
      else if (key === 'restarts') out.restarts = n;
      else if (key === 'at') out.at = v;
    }
    if (!out.state || !out.at) return undefined;
    return out as MainState;
  } catch {
    return undefined;
  }
}
