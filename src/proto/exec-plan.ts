// A running context's exec plan (ROOT/contexts/NAME/exec.plan): what the
// native front door (src/native/paene-front.c) needs to run `paene exec`
// without Node. Written by kernel/helper.ts (execPlanBytes) at start.

import type { TokenMessage } from './tokens.js';

export const EXEC_PLAN: TokenMessage = {
  name: 'exec_plan',
  doc: 'runtime -> paene-front: how to exec into a running context',
  keys: [
    { key: 'version', values: ['n'], doc: 'the plan format (1); another makes the front door hand the call to Node' },
    { key: 'pid', values: ['pid'], doc: 'the context init' },
    { key: 'starttime', values: ['ticks'], doc: 'its start time, checked before use (a reused pid is not it)' },
    { key: 'caps-root', values: ['mask'], doc: 'the capability set of guest root (hex)' },
    { key: 'caps-user', values: ['mask'], doc: 'the capability set of any other user (hex)' },
    { key: 'term', values: ['name'], doc: 'TERM when the caller has none (with --tty)' },
    { key: 'env', values: ['k=v'], doc: "the guest environment (repeated; the call's --env replaces a key)" },
    { key: 'arg', values: ['word'], doc: 'a helper_request word of the walls (repeated, in order)' },
  ],
};
