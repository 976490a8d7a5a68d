/*
 * The monitor's fork back-off (docs/isolation.md, "Spinning fork bombs").
 *
 * A context whose processes keep running into its process limit (a fork bomb
 * that retries every refused fork at once) is a CPU hog the pids limit cannot
 * stop.  The monitor's watcher (paene-helper.c; the monitor itself if the
 * watcher is gone) reads each guarded context's pids.events now and then
 * and, when the refusals in a window reach a trigger, makes a list of cgroup
 * writes (a small CPU quota) for a while, then puts back what it found.  It
 * reads rather than waits for a notification: cgroup v1 (6.18 here) does not
 * notify pids.events changes.  One that refused a fork lately or was just
 * released is read every HOT_MS; the quiet ones are read together, in one
 * pass every POLL_MS, and only when the host's CPU was contended in the last
 * pass's interval (the "some" stall share of PRESSURE_FILE, Linux PSI, at
 * least GATE; '-' or an unreadable file: always): a bomb that hurts nobody
 * needs no hold, and 10,000 idle contexts then cost no reads at all.  On a
 * busy host the pass comes less often than POLL_MS when it would otherwise
 * take more than SHARE of a CPU (POLL_MS:SHARE; at 10,000 contexts a pass
 * reads for ~70 ms).  The file stays open (one pread per look).
 *
 * The policy comes whole from the TypeScript runtime in a request whose
 * flags are described once, in src/proto/fork-backoff.ts:
 *   guard --pid PID --events FILE --trigger N --window-ms MS --hold-ms MS --poll-ms MS
 *         [--pass-share F] --hot-ms MS [--pressure FILE] --gate F --write FILE VALUE...
 *   guard --pid PID --off
 *   guard-status --pid PID      -> ok held=0|1 holds=N refusals=N
 * PID is the context's init: the guard goes when the monitor reaps it.  A
 * FILE that does not exist is skipped (cpu burst on kernels before 5.14).
 * The saved values are put back only if the last FILE still holds what the
 * hold wrote: a `paene limit` during a hold has replaced it and wins.
 */
#ifndef PAENE_FORKBACKOFF_H
#define PAENE_FORKBACKOFF_H

#include <sys/types.h>

void backoff_reaped(pid_t pid);
void backoff_raise_nofile(void);
void backoff_restore_nofile(void);
int backoff_tick(int cap);
void backoff_request(int conn, int argc, char **argv);
void backoff_status(int conn, int argc, char **argv);
double backoff_now(void);

#endif
