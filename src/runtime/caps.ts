// What a running context's processes really hold: its init's and a fresh
// exec's capability sets and seccomp mode, read from /proc (paene caps).

import fs from 'node:fs';
import { type DecodedCaps, capMask, decodeStatus, formatCapHex, maskToNames, type CapSpec } from '../model/caps.js';
import { PaeneError } from '../model/errors.js';
import type { Runtime } from './runtime.js';

export interface LiveCaps {
  context: string;
  caps: CapSpec;
  ccaps: string[];
  expected: { hex: string; names: string[] };
  init: { hostPid: number } & DecodedCaps;
  exec: DecodedCaps;
}

export async function liveCaps(rt: Runtime, name: string): Promise<LiveCaps> {
  const st = rt.status(name);
  const config = rt.config(name);
  if (st.state !== 'running' || !st.pid)
    throw new PaeneError(
      'wrong-state',
      `context '${name}' is not running; start it to see its live sets (its config: ${JSON.stringify(config.caps)})`,
    );
  const expected = capMask(config.caps);
  const init = decodeStatus(fs.readFileSync(`/proc/${st.pid}/status`, 'utf8'));
  const r = await rt.execCapture(name, ['/bin/cat', '/proc/self/status'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new PaeneError('internal', `cannot read /proc/self/status in '${name}': ${r.stderr.trim()}`);
  return {
    context: name,
    caps: config.caps,
    ccaps: config.ccaps,
    expected: { hex: formatCapHex(expected), names: maskToNames(expected) },
    init: { hostPid: st.pid, ...init },
    exec: decodeStatus(r.stdout),
  };
}
