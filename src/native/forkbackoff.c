/* The monitor's fork back-off: forkbackoff.h says what it does and the request it takes. */
#include "forkbackoff.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "fork_backoff_guard.h" /* generated from src/proto/fork-backoff.ts */

#define BACKOFF_MAX_WRITES 8

struct backoff {
  pid_t pid;
  int fd; /* pids.events, open; -1: opened at each look */
  char *events;
  long long trigger;
  double window_ms, hold_ms, poll_ms, hot_ms;
  int nw;
  char *files[BACKOFF_MAX_WRITES], *values[BACKOFF_MAX_WRITES], *saved[BACKOFF_MAX_WRITES];
  long long refusals;  /* pids.events "max" at the last look */
  long long win_count; /* ... when the window began */
  double win_start;    /* ms, CLOCK_MONOTONIC */
  double held_until;   /* 0: not held */
  double next_look;    /* 0: quiet, read by the scan */
  double hot_until;    /* looked at every hot_ms until then */
  long holds;
  int hot_slot; /* where it is in backoff_hot; -1: quiet */
};

/*
 * The guards, and two ways into them that cost nothing per guard: at 10,000
 * contexts a walk of every guard on each of the monitor's wake-ups (three
 * a start) and a linear search per guard request and per reaped init were
 * the monitor's largest cost. backoff_hot lists the guards that are held
 * or due a look of their own (next_look > 0): a tick outside the quiet pass
 * visits only those. backoff_index finds a guard by pid (open addressing,
 * linear probing, at most half full).
 */
static struct backoff *backoffs;
static int nbackoffs, capbackoffs;
static int *backoff_hot, nhot;
struct backoff_slot {
  pid_t pid; /* 0: empty */
  int at;    /* index in backoffs */
};
static struct backoff_slot *backoff_index;
static unsigned backoff_index_size; /* a power of two, or 0 */

static unsigned backoff_hash(pid_t pid) { return ((unsigned)pid * 2654435761u) & (backoff_index_size - 1); }

/* The slot that holds pid, or the empty one where it would go. */
static unsigned backoff_slot_of(pid_t pid) {
  unsigned h = backoff_hash(pid);
  while (backoff_index[h].pid && backoff_index[h].pid != pid) h = (h + 1) & (backoff_index_size - 1);
  return h;
}

static void backoff_index_del(pid_t pid) {
  if (!backoff_index_size) return;
  unsigned mask = backoff_index_size - 1, h = backoff_slot_of(pid);
  if (!backoff_index[h].pid) return;
  backoff_index[h].pid = 0;
  /* Backward shift: a later entry of the run moves into the hole unless its home lies cyclically in (hole, it]. */
  for (unsigned j = (h + 1) & mask; backoff_index[j].pid; j = (j + 1) & mask) {
    unsigned k = backoff_hash(backoff_index[j].pid);
    if (h <= j ? (h < k && k <= j) : (h < k || k <= j)) continue;
    backoff_index[h] = backoff_index[j];
    backoff_index[j].pid = 0;
    h = j;
  }
}

/* Room for n guards in the index (rebuilt twice as large when it would be more than half full); -1: no memory. */
static int backoff_index_room(int n) {
  if ((unsigned)n * 2 <= backoff_index_size) return 0;
  unsigned size = backoff_index_size ? backoff_index_size : 64;
  while ((unsigned)n * 2 > size) size *= 2;
  struct backoff_slot *t = calloc(size, sizeof *t);
  if (!t) return -1;
  free(backoff_index);
  backoff_index = t;
  backoff_index_size = size;
  for (int i = 0; i < nbackoffs; i++) backoff_index[backoff_slot_of(backoffs[i].pid)] = (struct backoff_slot){backoffs[i].pid, i};
  return 0;
}

/* Puts guard i on the hot list or takes it off, as its state says. */
static void backoff_mark(int i) {
  struct backoff *b = &backoffs[i];
  int hot = b->held_until > 0 || b->next_look > 0;
  if (hot && b->hot_slot < 0) {
    b->hot_slot = nhot;
    backoff_hot[nhot++] = i;
  } else if (!hot && b->hot_slot >= 0) {
    int last = backoff_hot[--nhot];
    backoff_hot[b->hot_slot] = last;
    backoffs[last].hot_slot = b->hot_slot;
    b->hot_slot = -1;
  }
}

/* The scan of the quiet contexts: when, how often, and its gate (from the last guard request). */
static double backoff_scan_at, backoff_poll_ms = 1000, backoff_gate, backoff_share;
static char backoff_pressure[256];
static unsigned long long backoff_stall_us;
static double backoff_stall_at;

/* CPU time this process has used (ms): the watcher and the monitor are single-threaded. */
static double backoff_cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double backoff_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A small file's content without trailing white space; NULL if it cannot be read. */
static char *backoff_read(const char *file) {
  char buf[256];
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) return NULL;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
  buf[n] = 0;
  return strdup(buf);
}

static int backoff_write(const char *file, const char *value) {
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, value, strlen(value));
  close(fd);
  return n == (ssize_t)strlen(value) ? 0 : -1;
}

/* Refused forks so far: the "max N" line of pids.events; -1 if unreadable. */
static long long backoff_refusals(const struct backoff *b) {
  char buf[256];
  int fd = b->fd >= 0 ? b->fd : open(b->events, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (fd != b->fd) close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  char *m = strstr(buf, "max ");
  return m ? atoll(m + 4) : 0;
}

/* Puts back the saved values, last write first; not if a limit change replaced the hold. */
static void backoff_lift(struct backoff *b) {
  int last = -1;
  for (int i = 0; i < b->nw; i++)
    if (b->saved[i]) last = i;
  char *cur = last >= 0 ? backoff_read(b->files[last]) : NULL;
  int ours = cur && !strcmp(cur, b->values[last]);
  free(cur);
  for (int i = b->nw - 1; i >= 0; i--) {
    if (b->saved[i] && ours) backoff_write(b->files[i], b->saved[i]);
    free(b->saved[i]);
    b->saved[i] = NULL;
  }
  b->held_until = 0;
  b->win_start = backoff_now();
  b->win_count = b->refusals;
  b->hot_until = b->win_start + b->window_ms; /* a bomb still running shows at once */
  b->next_look = b->win_start + b->hot_ms;
}

static void backoff_engage(struct backoff *b) {
  for (int i = 0; i < b->nw; i++) {
    b->saved[i] = backoff_read(b->files[i]);
    if (!b->saved[i]) continue; /* not on this kernel */
    if (backoff_write(b->files[i], b->values[i]) != 0) {
      /* refused: undo what was written, no hold */
      free(b->saved[i]);
      b->saved[i] = NULL;
      for (int j = i - 1; j >= 0; j--) {
        if (b->saved[j]) backoff_write(b->files[j], b->saved[j]);
        free(b->saved[j]);
        b->saved[j] = NULL;
      }
      b->win_start = backoff_now();
      b->win_count = b->refusals;
      return;
    }
  }
  b->held_until = backoff_now() + b->hold_ms;
  b->holds++;
}

/* A look: engage when the refusals since the window began reach the trigger. */
static void backoff_check(struct backoff *b) {
  double now = backoff_now();
  long long c = backoff_refusals(b);
  if (c < 0) {
    b->next_look = 0;
    return;
  }
  long long prev = b->refusals;
  b->refusals = c;
  if (c != prev) b->hot_until = now + b->window_ms;
  b->next_look = now < b->hot_until ? now + b->hot_ms : 0;
  if (b->held_until > 0) return;
  if (now - b->win_start > b->window_ms) {
    b->win_start = now;
    b->win_count = prev;
  }
  if (c - b->win_count >= b->trigger) backoff_engage(b);
}

static int backoff_find(pid_t pid) {
  if (!backoff_index_size) return -1;
  unsigned h = backoff_slot_of(pid);
  return backoff_index[h].pid ? backoff_index[h].at : -1;
}

/* Drops a guard; a held one is lifted first unless its cgroup is gone. */
static void backoff_drop(int i, int lift) {
  struct backoff *b = &backoffs[i];
  if (b->held_until > 0 && lift) backoff_lift(b);
  if (b->fd >= 0) close(b->fd);
  free(b->events);
  for (int j = 0; j < b->nw; j++) {
    free(b->files[j]);
    free(b->values[j]);
    free(b->saved[j]);
  }
  b->held_until = b->next_look = 0;
  backoff_mark(i);
  backoff_index_del(b->pid);
  /* The last guard moves into the hole: its hot-list entry and index slot follow it. */
  if (i != --nbackoffs) {
    backoffs[i] = backoffs[nbackoffs];
    if (backoffs[i].hot_slot >= 0) backoff_hot[backoffs[i].hot_slot] = i;
    backoff_index[backoff_slot_of(backoffs[i].pid)].at = i;
  }
}

/* The init of a guarded context was reaped: its cgroup is going, nothing to put back. */
void backoff_reaped(pid_t pid) {
  int i = backoff_find(pid);
  if (i >= 0) backoff_drop(i, 0);
}

/* Handles `guard --pid P ...` (src/proto/fork-backoff.ts; argv after the word); writes the answer to conn. */
void backoff_request(int conn, int argc, char **argv) {
  pid_t pid = 0;
  int off = 0, nw = 0;
  const char *events = NULL, *pressure = "", *vals[FORK_BACKOFF_GUARD_KEYS] = {0};
  char *files[BACKOFF_MAX_WRITES], *values[BACKOFF_MAX_WRITES];
  for (int i = 0; i < argc;) {
    char **v;
    int key = proto_flag(argv, argc, &i, fork_backoff_guard_keys, FORK_BACKOFF_GUARD_KEYS, &v, "guard");
    if (key < 0) {
      dprintf(conn, "err unknown-flag guard: unknown flag %s\n", argv[i]);
      return;
    }
    if (v) vals[key] = v[0];
    switch ((enum fork_backoff_guard_key)key) {
    case FORK_BACKOFF_GUARD___PID: pid = (pid_t)atoi(v[0]); break;
    case FORK_BACKOFF_GUARD___OFF: off = 1; break;
    case FORK_BACKOFF_GUARD___EVENTS: events = v[0]; break;
    case FORK_BACKOFF_GUARD___PRESSURE: pressure = v[0]; break;
    case FORK_BACKOFF_GUARD___WRITE:
      if (nw == BACKOFF_MAX_WRITES) {
        dprintf(conn, "err failed more than %d --write\n", BACKOFF_MAX_WRITES);
        return;
      }
      files[nw] = v[0];
      values[nw++] = v[1];
      break;
    default: break;
    }
  }
  if (pid <= 0) {
    dprintf(conn, "err failed guard needs --pid\n");
    return;
  }
  int old = backoff_find(pid);
  if (old >= 0) backoff_drop(old, 1);
  if (off) {
    dprintf(conn, "ok 0\n");
    return;
  }
  static const enum fork_backoff_guard_key needed[] = {
      FORK_BACKOFF_GUARD___EVENTS,  FORK_BACKOFF_GUARD___TRIGGER, FORK_BACKOFF_GUARD___WINDOW_MS, FORK_BACKOFF_GUARD___HOLD_MS,
      FORK_BACKOFF_GUARD___POLL_MS, FORK_BACKOFF_GUARD___HOT_MS,  FORK_BACKOFF_GUARD___GATE};
  for (size_t j = 0; j < sizeof needed / sizeof *needed; j++)
    if (!vals[needed[j]]) {
      dprintf(conn, "err failed guard needs %s\n", fork_backoff_guard_keys[needed[j]].name);
      return;
    }
  if (nw == 0) {
    dprintf(conn, "err failed guard needs --write\n");
    return;
  }
  int fd = open(events, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != EMFILE && errno != ENFILE) {
    dprintf(conn, "err failed open %s: %s\n", events, strerror(errno));
    return;
  }
  if (nbackoffs == capbackoffs) {
    int cap = capbackoffs ? capbackoffs * 2 : 16;
    struct backoff *n = realloc(backoffs, (size_t)cap * sizeof *n);
    int *h = n ? realloc(backoff_hot, (size_t)cap * sizeof *h) : NULL;
    if (n) backoffs = n;
    if (h) {
      backoff_hot = h;
      capbackoffs = cap;
    }
  }
  if (nbackoffs == capbackoffs || backoff_index_room(nbackoffs + 1) != 0) {
    if (fd >= 0) close(fd);
    dprintf(conn, "err failed out of memory\n");
    return;
  }
  int at = nbackoffs++;
  struct backoff *b = &backoffs[at];
  memset(b, 0, sizeof *b);
  b->hot_slot = -1;
  b->pid = pid;
  backoff_index[backoff_slot_of(pid)] = (struct backoff_slot){pid, at};
  b->fd = fd;
  b->events = strdup(events);
  b->trigger = atoll(vals[FORK_BACKOFF_GUARD___TRIGGER]);
  b->window_ms = atof(vals[FORK_BACKOFF_GUARD___WINDOW_MS]);
  b->hold_ms = atof(vals[FORK_BACKOFF_GUARD___HOLD_MS]);
  b->poll_ms = atof(vals[FORK_BACKOFF_GUARD___POLL_MS]);
  b->hot_ms = atof(vals[FORK_BACKOFF_GUARD___HOT_MS]);
  b->nw = nw;
  for (int i = 0; i < nw; i++) {
    b->files[i] = strdup(files[i]);
    b->values[i] = strdup(values[i]);
  }
  backoff_poll_ms = b->poll_ms;
  backoff_share = vals[FORK_BACKOFF_GUARD___PASS_SHARE] ? atof(vals[FORK_BACKOFF_GUARD___PASS_SHARE]) : 0;
  snprintf(backoff_pressure, sizeof backoff_pressure, "%s", pressure);
  backoff_gate = atof(vals[FORK_BACKOFF_GUARD___GATE]);
  long long c = backoff_refusals(b);
  b->refusals = b->win_count = c > 0 ? c : 0;
  b->win_start = backoff_now();
  b->next_look = b->win_start + b->hot_ms;
  backoff_mark(at);
  dprintf(conn, "ok %d\n", nbackoffs);
}

/*
 * Contexts beyond the soft limit of open files would each cost an open per
 * look: the monitor raises its own, and puts the old one back in the
 * children it forks (context inits and host programs must not inherit it).
 */
static struct rlimit backoff_nofile;
static int backoff_nofile_raised;
void backoff_raise_nofile(void) {
  if (getrlimit(RLIMIT_NOFILE, &backoff_nofile) != 0 || backoff_nofile.rlim_cur >= backoff_nofile.rlim_max) return;
  struct rlimit rl = backoff_nofile;
  rl.rlim_cur = rl.rlim_max;
  backoff_nofile_raised = setrlimit(RLIMIT_NOFILE, &rl) == 0;
}
void backoff_restore_nofile(void) {
  if (backoff_nofile_raised) setrlimit(RLIMIT_NOFILE, &backoff_nofile);
}

void backoff_status(int conn, int argc, char **argv) {
  int i = -1;
  for (int j = 0; j < argc;) {
    char **v;
    int key = proto_flag(argv, argc, &j, fork_backoff_guard_keys, FORK_BACKOFF_GUARD_KEYS, &v, "guard-status");
    if (key < 0) {
      dprintf(conn, "err unknown-flag guard-status: unknown flag %s\n", argv[j]);
      return;
    }
    if (key == FORK_BACKOFF_GUARD___PID) i = backoff_find((pid_t)atoi(v[0]));
  }
  if (i < 0) {
    dprintf(conn, "err no-guard no guard for that pid\n");
    return;
  }
  struct backoff *b = &backoffs[i];
  long long c = backoff_refusals(b);
  dprintf(conn, "ok held=%d holds=%ld refusals=%lld\n", b->held_until > 0, b->holds, c < 0 ? b->refusals : c);
}

/*
 * Whether some task waited for a CPU for at least the gate's share of the
 * time since the last call ("some ... total=US" of the PSI file). No gate, no
 * file, or the first call: yes.
 */
static int backoff_contended(double now) {
  if (backoff_gate <= 0 || !backoff_pressure[0]) return 1;
  char *text = backoff_read(backoff_pressure);
  char *t = text ? strstr(text, "total=") : NULL;
  if (!t) {
    free(text);
    return 1;
  }
  unsigned long long total = strtoull(t + 6, NULL, 10);
  free(text);
  double was = backoff_stall_at;
  unsigned long long before = backoff_stall_us;
  backoff_stall_us = total;
  backoff_stall_at = now;
  if (was <= 0 || now <= was) return 1;
  return (double)(total - before) / 1e3 / (now - was) >= backoff_gate;
}

/* Lifts holds that are due, looks at contexts that are due; returns ms to the next thing due, at most cap. */
int backoff_tick(int cap) {
  double now = backoff_now(), next = now + cap;
  if (nbackoffs == 0) return cap;
  int scan = 0;
  if (now >= backoff_scan_at) {
    scan = backoff_contended(now);
    backoff_scan_at = now + backoff_poll_ms;
  }
  double cpu_before = scan ? backoff_cpu_ms() : 0;
  /* The pass visits every guard; other ticks only the hot ones (from the end: one that cools
     down takes the last one's place, which was visited already). */
  for (int k = scan ? nbackoffs - 1 : nhot - 1; k >= 0; k--) {
    int i = scan ? k : backoff_hot[k];
    struct backoff *b = &backoffs[i];
    if (b->held_until > 0 && b->held_until <= now) backoff_lift(b);
    if (b->next_look > 0 ? b->next_look <= now : scan) backoff_check(b);
    if (b->held_until > 0 && b->held_until < next) next = b->held_until;
    if (b->next_look > 0 && b->next_look < next) next = b->next_look;
    backoff_mark(i);
  }
  if (scan && backoff_share > 0) {
    double spent = backoff_cpu_ms() - cpu_before;
    if (spent / backoff_share > backoff_poll_ms) backoff_scan_at = now + spent / backoff_share;
  }
  if (backoff_scan_at < next) next = backoff_scan_at;
  int ms = (int)(next - now) + 1;
  return ms < 1 ? 1 : ms > cap ? cap : ms;
}
