// paene-iothrottle (src/native/paene-iothrottle.c): the disk-write limiter
// the runtime (runtime/iothrottle.ts) starts for a context on a host whose
// kernel cannot throttle buffered writes. Its flags, and the status it
// publishes every 250 ms (a token message, replaced atomically).

import type { TokenMessage } from './tokens.js';

export const IO_THROTTLE_REQUEST: TokenMessage = {
  name: 'io_throttle_request',
  doc: 'runtime -> paene-iothrottle: its command line',
  keys: [
    { key: '--procs', values: ['file'], doc: "the context's cgroup.procs" },
    { key: '--freeze', values: ['file'], doc: 'the freezer file that holds the whole context' },
    { key: '--frozen', values: ['value'], doc: 'what is written to it to freeze' },
    { key: '--thawed', values: ['value'], doc: 'what is written to it to thaw' },
    { key: '--init', values: ['pid'], doc: "the context's init: the throttler exits when it is gone" },
    { key: '--init-start', values: ['ticks'], doc: "the init's start time (a reused pid is not it)" },
    { key: '--write-bps', values: ['rate'], doc: 'bytes per second written' },
    { key: '--read-bps', values: ['rate'], doc: 'bytes per second read' },
    { key: '--burst', values: ['bytes'], doc: 'the bucket depth (the runtime decides it: no default)' },
    { key: '--tick-ms', values: ['ms'], doc: 'how often it looks while idle' },
    { key: '--status', values: ['file'], doc: 'where it publishes its state (IO_THROTTLE_STATUS)' },
  ],
};

export const IO_THROTTLE_STATUS: TokenMessage = {
  name: 'io_throttle_status',
  doc: 'paene-iothrottle -> runtime: its state, every 250 ms',
  keys: [
    { key: 'uptime_ms', values: ['ms'], doc: 'since it started' },
    { key: 'write_bps', values: ['rate'], doc: 'the write rate it enforces (0: none)' },
    { key: 'read_bps', values: ['rate'], doc: 'the read rate it enforces (0: none)' },
    { key: 'burst', values: ['bytes'], doc: 'the bucket depth' },
    { key: 'write_tokens', values: ['bytes'], doc: 'the write bucket now (negative: in debt)' },
    { key: 'read_tokens', values: ['bytes'], doc: 'the read bucket now' },
    { key: 'written', values: ['bytes'], doc: 'bytes written since it started' },
    { key: 'read', values: ['bytes'], doc: 'bytes read since it started' },
    { key: 'holds', values: ['count'], doc: 'how often it froze the context' },
    { key: 'held_ms', values: ['ms'], doc: 'how long the context was frozen in all' },
    { key: 'frozen', values: ['0|1'], doc: 'whether it holds the context now' },
    { key: 'processes', values: ['count'], doc: 'processes it meters' },
    { key: 'realtime', values: ['0|1'], doc: 'whether it got its real-time priority' },
  ],
};
