// The fork back-off's guard requests to the monitor (or its watcher):
// src/native/forkbackoff.h carries them out; model/forkbackoff.ts decides
// every value. `guard --pid P --off` ends a guard; `guard-status --pid P`
// answers "ok held=0|1 holds=N refusals=N".

import type { TokenMessage } from './tokens.js';

export const FORK_BACKOFF_GUARD: TokenMessage = {
  name: 'fork_backoff_guard',
  doc: 'runtime -> monitor: guard, guard-status (words after the request word)',
  keys: [
    { key: '--pid', values: ['pid'], doc: 'the context init: the guard goes when the monitor reaps it' },
    { key: '--off', values: [], doc: 'end the guard (a hold in force is put back)' },
    { key: '--events', values: ['file'], doc: "the context's pids.events" },
    { key: '--trigger', values: ['count'], doc: 'refused forks within a window that start a hold' },
    { key: '--window-ms', values: ['ms'], doc: 'the window' },
    { key: '--hold-ms', values: ['ms'], doc: 'how long a hold lasts' },
    { key: '--poll-ms', values: ['ms'], doc: 'how often the quiet contexts are read, in one pass' },
    { key: '--pass-share', values: ['fraction'], doc: 'at most this share of a CPU for the passes (0: no cap)' },
    { key: '--hot-ms', values: ['ms'], doc: 'how often one that refused lately is read' },
    { key: '--pressure', values: ['file'], doc: 'the PSI file whose CPU stall share gates the passes (absent: no gate)' },
    { key: '--gate', values: ['fraction'], doc: 'the stall share that opens the gate' },
    { key: '--write', values: ['file', 'value'], doc: 'a write of the hold, in order (repeated; the saved values go back in reverse)' },
  ],
};
