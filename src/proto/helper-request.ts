// The requests paene-helper executes (src/native/paene-helper.c): `start`
// (through the monitor's socket) and `exec` (a command line, from the runtime
// or from the native front door, src/native/paene-front.c, which adds the
// call's own flags by these names too). Flags with none or one value; `--`
// ends them (exec: the command follows). Written by kernel/helper.ts.

import type { TokenMessage } from './tokens.js';

export const HELPER_REQUEST: TokenMessage = {
  name: 'helper_request',
  doc: 'runtime (or paene-front) -> paene-helper start/exec: --FLAG [VALUE] words, -- then the command',
  keys: [
    // both
    { key: '--cgroup', values: ['procs'], doc: 'a cgroup.procs file to join (repeated)' },
    { key: '--caps', values: ['mask'], doc: 'the capability set (hex) every set is reduced to' },
    { key: '--seccomp', values: ['program'], doc: 'the classic-BPF filter (hex)' },
    { key: '--netns', values: ['mode'], doc: 'start: "new" unshares a network namespace; exec: "join" enters the init\'s' },
    { key: '--landlock-scoped', values: ['bits'], doc: 'Landlock scope bits (hex) of a domain applied before the capabilities drop' },
    { key: '--sched', values: ['policy:slice'], doc: "scheduling policy and custom slice in ns (0: the kernel's)" },
    // start
    { key: '--lower', values: ['dir'], doc: 'the overlay lower directory (the image)' },
    { key: '--upper', values: ['dir'], doc: "the overlay upper directory (the context's changes)" },
    { key: '--work', values: ['dir'], doc: 'the overlay work directory' },
    { key: '--rootfs', values: ['dir'], doc: 'where the overlay is mounted' },
    { key: '--hostname', values: ['name'], doc: "the context's hostname" },
    { key: '--scratch', values: ['dir'], doc: "the context's dev/, shm/ and tmp/ in the scratch tmpfs" },
    { key: '--empty', values: ['dir'], doc: 'the empty directory bound over masked directories' },
    { key: '--init', values: ['path'], doc: 'the program the init becomes (run from a sealed copy)' },
    { key: '--dev', values: ['path:major:minor:mode'], doc: 'a character device in its /dev (mode octal)' },
    { key: '--sysctl', values: ['key=value'], doc: 'a per-context (ipc, uts) sysctl' },
    { key: '--mask', values: ['path'], doc: 'a masked path' },
    { key: '--ro', values: ['path'], doc: 'a read-only path' },
    { key: '--rw', values: ['path'], doc: 'a writable hole in a read-only path' },
    { key: '--lo-up', values: [], doc: "bring the new network namespace's loopback up" },
    { key: '--bpf-cgroup', values: ['dir'], doc: 'the cgroup v2 directory the sock_addr programs are attached to' },
    {
      key: '--guest-init',
      values: ['path'],
      doc: "the guest's own init (a path in its root) becomes pid 1 instead of --init, its stdout and stderr on the log pipes",
    },
    { key: '--run-tmpfs', values: ['bytes'], doc: 'a tmpfs of that size on /run (what a guest init expects)' },
    {
      key: '--init-arg',
      values: ['word'],
      doc: "a word of the init's command line after its name (init_plan, carried untouched; repeated)",
    },
    { key: '--init-env', values: ['k=v'], doc: "the init's environment: its main process's (repeated)" },
    { key: '--log-prog', values: ['path'], doc: "paene-log: run on the host with the read ends of the main process's pipes" },
    {
      key: '--log-arg',
      values: ['word'],
      doc: "a word of paene-log's command line after its name (log_plan, carried untouched; repeated)",
    },
    { key: '--bpf-prog', values: ['type=hex'], doc: 'a sock_addr program (repeated)' },
    {
      key: '--bind',
      values: ['source', 'target', 'mode', 'kind'],
      doc: "a bind mount (repeated, in order): a host path onto a path resolved inside the new root (never through the guest's symlinks out of it), mode ro|rw, kind file|dir (what a missing mount point is made as)",
    },
    // exec
    { key: '--pid', values: ['pid'], doc: 'the init whose namespaces are joined' },
    { key: '--env', values: ['k=v'], doc: 'the next environment entry' },
    { key: '--cwd', values: ['dir'], doc: 'the working directory' },
    { key: '--user', values: ['uid:gid'], doc: 'the user to become' },
    { key: '--tty', values: [], doc: "a pty from the context's devpts" },
    {
      key: '--started-fd',
      values: ['fd'],
      doc: "an fd (3 or more) that gets one reply line, then is closed: 'ok PID' (the command's pid on the host) once its execve succeeded, or 'err CODE MESSAGE' (not-found, failed) when it could not run; the helper's own fatal errors go there too",
    },
  ],
};
