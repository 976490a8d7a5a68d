// paene-runc's native front (src/native/paene-runc.c) and its warm planner
// (src/oci/planner.ts): the front hands a call to the planner, a Node process
// that keeps the runtime loaded, and carries out what only the caller's own
// process may do (run paene-oci with the caller's stdio, so the container's
// init re-parents to the caller's subreaper, the containerd shim). Frames are
// token messages, each after its length (4 bytes, little-endian).

import type { TokenMessage } from './tokens.js';

export const PLANNER_REQUEST: TokenMessage = {
  name: 'planner_request',
  doc: 'front -> planner: a paene-runc call',
  keys: [
    {
      key: 'build',
      values: ['id'],
      doc: "the bundle the front belongs to (dist/paene-runc.mjs's mtime.size): another makes the planner step aside",
    },
    { key: 'cwd', values: ['dir'], doc: "the caller's working directory (relative paths in the call)" },
    { key: 'arg', values: ['word'], doc: 'the next word of the command line (repeated)' },
  ],
};

export const PLANNER_ACTION: TokenMessage = {
  name: 'planner_action',
  doc: 'planner -> front: what to do next',
  keys: [
    { key: 'out', values: ['text'], doc: 'write to standard output' },
    { key: 'err', values: ['text'], doc: 'write to standard error' },
    {
      key: 'spawn',
      values: ['id', 'cmd', 'plan', 'wait'],
      doc: 'run paene-oci CMD PLAN with our stdio; answer sync ID, then (wait 1) exited ID when it ends (others may run meanwhile)',
    },
    { key: 'spawn-input', values: ['id', 'cmd', 'plan', 'wait', 'stdin'], doc: 'the same, with this text on its standard input' },
    { key: 'exit', values: ['code'], doc: 'the call is done: exit with this code' },
    { key: 'stale', values: [], doc: 'the planner runs another build: do the call with Node' },
  ],
};

export const PLANNER_REPLY: TokenMessage = {
  name: 'planner_reply',
  doc: 'front -> planner: what paene-oci said and did',
  keys: [
    { key: 'sync', values: ['id', 'text'], doc: 'everything spawn ID\'s paene-oci wrote on its sync pipe ("pid N", "ok", "err ...")' },
    { key: 'exited', values: ['id', 'code'], doc: "spawn ID's paene-oci exit status (128+N for a signal)" },
  ],
};
