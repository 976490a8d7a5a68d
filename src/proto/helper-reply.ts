// What the monitor and paene-helper answer (src/native/paene-helper.c): a
// line "ok VALUE", or "err CODE MESSAGE" where CODE is one of these, so the
// runtime acts on the code and shows the message; it never reads the
// message's words. A first word that is no code here comes from a monitor
// an older paene started (it served before codes existed).

import type { ReplyCodes } from './tokens.js';

export const HELPER_ERRORS: ReplyCodes = {
  name: 'helper_error',
  doc: 'paene-helper -> runtime: err CODE MESSAGE',
  codes: [
    { code: 'failed', doc: 'the request was understood and could not be done; the message says why' },
    { code: 'malformed', doc: 'not NUL-terminated words ended by an empty one' },
    { code: 'unknown-request', doc: 'a request word this helper does not know' },
    { code: 'unknown-flag', doc: 'a flag this helper does not know' },
    { code: 'cgroup-gone', doc: 'a cgroup.procs file to join does not exist; the message is its path' },
    { code: 'no-guard', doc: 'no fork back-off guard for that pid' },
    { code: 'not-found', doc: 'exec: the command is not in the context (its execve failed with ENOENT)' },
    {
      code: 'bind-refused',
      doc: "a bind mount was refused (its source, or its target in the guest's tree); the message says which and why",
    },
  ],
};
