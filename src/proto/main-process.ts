// A context's main process (docs/services.md): what the runtime hands its
// pid 1 and its host-side log writer, through paene-helper's start, which
// carries both untouched.
//
//   runtime ──start request (--init-arg/--init-env, --log-prog/--log-arg)──▶ paene-helper
//   paene-helper: three pipes; forks paene-log on the host with their read
//   ends (LOG_FD_*), then the init with their write ends (INIT_FD_*)
//   paene-init (pid 1): runs and restarts the main process, its stdout and
//   stderr on the pipes; tells paene-log each start and exit (MAIN_EVENT)
//   paene-log: writes ROOT/contexts/NAME/log/main.log (CRI lines, rotated)
//   and main.state (MAIN_STATE), which `status` and `logs` read

import type { TokenMessage } from './tokens.js';

/** paene-init's command line after its name; `--` then the main process's argv (its envp is the main process's environment). */
export const INIT_PLAN: TokenMessage = {
  name: 'init_plan',
  doc: 'runtime -> paene-init (through paene-helper): the main process and its restart policy',
  keys: [
    { key: '--restart', values: ['mode'], doc: 'no, on-failure or always: when an exit is followed by a new start' },
    { key: '--max-restarts', values: ['n'], doc: 'on-failure: restarts before it gives up (0: no bound)' },
    {
      key: '--backoff',
      values: ['first_ms', 'max_ms', 'reset_ms'],
      doc: 'the first delay, doubled up to max; a run of reset_ms starts again',
    },
    { key: '--uid', values: ['uid'], doc: 'the user it runs as' },
    { key: '--gid', values: ['gid'], doc: 'its group (and only supplementary group)' },
    { key: '--cwd', values: ['dir'], doc: 'its working directory in the context' },
  ],
};

/** paene-log's command line after its name. */
export const LOG_PLAN: TokenMessage = {
  name: 'log_plan',
  doc: 'runtime -> paene-log (through paene-helper): where the log goes and how big it grows',
  keys: [
    { key: '--dir', values: ['dir'], doc: "the context's log directory on the host (main.log, main.log.N, main.state)" },
    { key: '--max-bytes', values: ['n'], doc: 'main.log is rotated before it would grow past this' },
    { key: '--keep', values: ['n'], doc: 'rotated files kept (main.log.1 the newest)' },
    { key: '--stream', values: ['name'], doc: 'the name of the stdout records (stdout, or console for a guest init)' },
    { key: '--console', values: [], doc: "also read the guest's /dev/console (a FIFO) at LOG_FD_CONSOLE, as records of stream console" },
  ],
};

/** paene-init → paene-log on the events pipe: tokens, one entry per event. */
export const MAIN_EVENT: TokenMessage = {
  name: 'main_event',
  doc: 'paene-init -> paene-log: what happened to the main process',
  keys: [
    { key: 'init', values: ['host_pid'], doc: "from paene-helper: the context's init on the host; paene-log ends when it has ended" },
    { key: 'start', values: ['pid', 'restarts'], doc: 'it runs (pid in the context), after that many restarts' },
    { key: 'exit', values: ['pid', 'wstatus'], doc: 'it ended (the raw wait status)' },
    { key: 'restart', values: ['delay_ms'], doc: 'a new start comes after this delay' },
    { key: 'gave-up', values: [], doc: 'on-failure: the bound is reached, no more starts' },
    {
      key: 'failed',
      values: ['pid', 'errno'],
      doc: 'that run could not start (its exec failed: it exits 127; pid 0: no process to be had)',
    },
  ],
};

/** paene-log → runtime: main.state, replaced whole at each event. */
export const MAIN_STATE: TokenMessage = {
  name: 'main_state',
  doc: 'paene-log -> runtime: the main process now',
  keys: [
    { key: 'state', values: ['word'], doc: 'running, restarting, exited, killed, gave-up or failed' },
    { key: 'pid', values: ['pid'], doc: 'its pid in the context (while running)' },
    { key: 'code', values: ['n'], doc: "the last run's exit code" },
    { key: 'signal', values: ['n'], doc: 'the signal that ended the last run' },
    { key: 'error', values: ['errno'], doc: 'the errno of a failed exec' },
    { key: 'restarts', values: ['n'], doc: 'restarts so far' },
    { key: 'at', values: ['time'], doc: 'when (RFC 3339, UTC)' },
  ],
};

/** Where the pipes are in each process: paene-log reads, paene-init holds the write ends for each start. */
export const MAIN_FDS = {
  name: 'main_fds',
  doc: 'the descriptors of the log pipes in paene-log and paene-init',
  constants: {
    LOG_FD_OUT: 3,
    LOG_FD_ERR: 4,
    LOG_FD_EVENTS: 5,
    LOG_FD_CONSOLE: 6,
    INIT_FD_OUT: 4,
    INIT_FD_ERR: 5,
    INIT_FD_EVENTS: 6,
    /** the init's command line (plan and command) and its environment: at most this many words each */
    INIT_WORDS_MAX: 4096,
  },
} as const;
