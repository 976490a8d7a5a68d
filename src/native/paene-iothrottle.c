/*
 * paene-iothrottle: paene's own disk-write limiter for one context, for hosts
 * where the kernel cannot throttle buffered writes (cgroup v1 and hybrid:
 * blkio.throttle.* sees direct I/O and reads only; background writeback is
 * charged to the root cgroup).
 *
 *   paene-iothrottle --procs FILE --freeze FILE --frozen VAL --thawed VAL
 *                    --init PID --init-start TICKS
 *                    [--write-bps N] [--read-bps N] [--burst BYTES]
 *                    [--tick-ms MS] [--status FILE]
 *
 * Every tick it reads the context's pids (FILE = a cgroup.procs), sums what
 * each process wrote (and read) since the last tick from /proc/PID/io
 * (write_bytes counts a buffered write when the page is dirtied, so this
 * meters the writer, not the writeback), charges it to a token bucket of
 * `rate` bytes/s and `burst` bytes, and while the bucket is in debt holds
 * the whole context through the freezer (cgroup.freeze or freezer.state).
 *
 * Per-process deltas, not a plain sum: a reaped child's counters are added to
 * its parent's, which would count them twice, so when a process vanishes its
 * last-seen bytes become a credit on its parent (expiring after 500 ms, as a
 * child reaped by the kernel itself -- SIGCHLD ignored -- moves nothing).
 * Bytes a process writes between the last tick and its exit are lost only if
 * its parent is outside the context.
 *
 * It exits (thawing the context first) on SIGTERM/SIGINT or when the
 * context's init (PID with start time TICKS) is gone. Started by the runtime
 * through the monitor, which reaps it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "io_throttle_request.h" /* generated from src/proto/io-throttle.ts */
#include "io_throttle_status.h"  /* generated from src/proto/io-throttle.ts */

struct proc {
  int pid;
  unsigned long long start;
  int ppid;
  unsigned long long rb, wb;   /* last seen read_bytes, write_bytes */
  unsigned long long crb, cwb; /* credit from reaped children */
  double credit_until;
};

static volatile sig_atomic_t stop_requested;
static void on_term(int sig) {
  (void)sig;
  stop_requested = 1;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static ssize_t read_file(const char *path, char *buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, len - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return n;
}

static int write_file(const char *path, const char *val) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, val, strlen(val));
  close(fd);
  return n < 0 ? -1 : 0;
}

/* ppid and starttime from /proc/PID/stat (comm may hold spaces and parens). */
static int read_stat(int pid, int *ppid, unsigned long long *start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (read_file(path, buf, sizeof buf) <= 0) return -1;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p += 2; /* state */
  int field = 3;
  char *save = NULL;
  for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
    if (field == 4) *ppid = atoi(tok);
    if (field == 22) {
      *start = strtoull(tok, NULL, 10);
      return 0;
    }
  }
  return -1;
}

static int read_io(int pid, unsigned long long *rb, unsigned long long *wb) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/io", pid);
  if (read_file(path, buf, sizeof buf) <= 0) return -1;
  char *r = strstr(buf, "\nread_bytes: ");
  char *w = strstr(buf, "\nwrite_bytes: ");
  if (!r || !w) return -1;
  *rb = strtoull(r + 13, NULL, 10);
  *wb = strtoull(w + 14, NULL, 10);
  return 0;
}

static int cmp_proc(const void *a, const void *b) { return ((const struct proc *)a)->pid - ((const struct proc *)b)->pid; }

static struct proc *find(struct proc *v, size_t n, int pid) {
  struct proc key = {.pid = pid};
  return bsearch(&key, v, n, sizeof *v, cmp_proc);
}

struct bucket {
  double rate, burst, tokens;
};

static void refill(struct bucket *b, double dt_ms) {
  if (b->rate <= 0) return;
  b->tokens += b->rate * dt_ms / 1000.0;
  if (b->tokens > b->burst) b->tokens = b->burst;
}

void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "paene-iothrottle: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void usage(void) {
  fprintf(stderr, "usage: paene-iothrottle --procs FILE --freeze FILE --frozen VAL --thawed VAL --init PID --init-start TICKS "
                  "[--write-bps N] [--read-bps N] [--burst BYTES] [--tick-ms MS] [--status FILE]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *procs = NULL, *freeze = NULL, *frozen_val = NULL, *thawed_val = NULL, *status = NULL;
  int init = 0;
  unsigned long long init_start = 0;
  double wbps = 0, rbps = 0, burst = -1, tick = 10;
  for (int i = 1; i < argc;) {
    char **vals;
    int key = proto_flag(argv, argc, &i, io_throttle_request_keys, IO_THROTTLE_REQUEST_KEYS, &vals, "paene-iothrottle");
    if (key < 0) usage();
    const char *v = vals[0];
    switch ((enum io_throttle_request_key)key) {
    case IO_THROTTLE_REQUEST___PROCS: procs = v; break;
    case IO_THROTTLE_REQUEST___FREEZE: freeze = v; break;
    case IO_THROTTLE_REQUEST___FROZEN: frozen_val = v; break;
    case IO_THROTTLE_REQUEST___THAWED: thawed_val = v; break;
    case IO_THROTTLE_REQUEST___INIT: init = atoi(v); break;
    case IO_THROTTLE_REQUEST___INIT_START: init_start = strtoull(v, NULL, 10); break;
    case IO_THROTTLE_REQUEST___WRITE_BPS: wbps = atof(v); break;
    case IO_THROTTLE_REQUEST___READ_BPS: rbps = atof(v); break;
    case IO_THROTTLE_REQUEST___BURST: burst = atof(v); break;
    case IO_THROTTLE_REQUEST___TICK_MS: tick = atof(v); break;
    case IO_THROTTLE_REQUEST___STATUS: status = v; break;
    case IO_THROTTLE_REQUEST_KEYS: break;
    }
  }
  if (!procs || !freeze || !frozen_val || !thawed_val || init <= 0 || (wbps <= 0 && rbps <= 0) || tick <= 0) usage();
  /* A writer thawed into the page cache dirties ~3 GB/s here: every ms this
   * program is late to look is 3 MB over the limit. So it runs at the lowest
   * real-time priority (it sleeps almost always; the kernel's RT throttling
   * still bounds it) with a 1 us timer slack, so its looks are on time even
   * when the CPUs are busy. Neither is required: it works, coarser, without. */
  struct sched_param sp = {.sched_priority = 1};
  int rt_ok = sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) == 0;
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  struct sigaction sa = {.sa_handler = on_term};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  /* The bucket depth is the runtime's decision (runtime/iothrottle.ts defaultBurst): no default here. */
  if (burst < 0) {
    fprintf(stderr, "paene-iothrottle: --burst is required\n");
    return 2;
  }
  struct bucket w = {wbps, burst, 0}, r = {rbps, burst, 0};
  w.tokens = w.burst;
  r.tokens = r.burst;
  size_t cap = 256, n_old = 0;
  struct proc *old = calloc(cap, sizeof *old), *cur = calloc(cap, sizeof *cur);
  char *buf = malloc(1 << 20);
  if (!old || !cur || !buf) return 1;
  int frozen = 0;
  unsigned long long total_w = 0, total_r = 0, holds = 0;
  double fast_until = 0, held_ms = 0, held_since = 0, last = now_ms(), last_status = 0, started = last;

  while (!stop_requested) {
    int ip;
    unsigned long long is;
    if (read_stat(init, &ip, &is) != 0 || is != init_start) break; /* the context is gone */
    double t = now_ms();
    /* the pids of the context, sorted */
    size_t n = 0;
    ssize_t len = read_file(procs, buf, 1 << 20);
    if (len < 0) break; /* cgroup removed */
    for (char *p = buf; *p;) {
      int pid = (int)strtol(p, &p, 10);
      while (*p == '\n') p++;
      if (pid <= 0) break;
      if (n == cap) {
        cap *= 2;
        struct proc *o2 = realloc(old, cap * sizeof *old), *c2 = realloc(cur, cap * sizeof *cur);
        if (!o2 || !c2) return 1;
        old = o2;
        cur = c2;
      }
      struct proc *e = &cur[n];
      memset(e, 0, sizeof *e);
      e->pid = pid;
      if (read_stat(pid, &e->ppid, &e->start) != 0 || read_io(pid, &e->rb, &e->wb) != 0) continue;
      n++;
    }
    qsort(cur, n, sizeof *cur, cmp_proc);
    /* carry credits over; vanished processes credit their parents */
    for (size_t i = 0; i < n; i++) {
      struct proc *o = find(old, n_old, cur[i].pid);
      if (o && o->start == cur[i].start) {
        cur[i].crb = o->crb;
        cur[i].cwb = o->cwb;
        cur[i].credit_until = o->credit_until;
      }
    }
    for (size_t i = 0; i < n_old; i++) {
      struct proc *c = find(cur, n, old[i].pid);
      if (c && c->start == old[i].start) continue;
      struct proc *parent = find(cur, n, old[i].ppid);
      if (parent) {
        parent->crb += old[i].rb;
        parent->cwb += old[i].wb;
        parent->credit_until = t + 500;
      }
    }
    unsigned long long dw = 0, dr = 0;
    for (size_t i = 0; i < n; i++) {
      struct proc *e = &cur[i], *o = find(old, n_old, e->pid);
      int same = o && o->start == e->start;
      unsigned long long pw = same ? o->wb : 0, pr = same ? o->rb : 0;
      unsigned long long rw = e->wb > pw ? e->wb - pw : 0, rr = e->rb > pr ? e->rb - pr : 0;
      unsigned long long cw = rw < e->cwb ? rw : e->cwb, cr = rr < e->crb ? rr : e->crb;
      e->cwb -= cw;
      e->crb -= cr;
      if (t > e->credit_until) e->cwb = e->crb = 0;
      dw += rw - cw;
      dr += rr - cr;
    }
    struct proc *tmp = old;
    old = cur;
    cur = tmp;
    n_old = n;
    total_w += dw;
    total_r += dr;

    refill(&w, t - last);
    refill(&r, t - last);
    last = t;
    if (w.rate > 0) w.tokens -= (double)dw;
    if (r.rate > 0) r.tokens -= (double)dr;
    int debt = w.tokens < 0 || r.tokens < 0, thawed_now = 0;
    if (getenv("PAENE_IOTHROTTLE_TRACE")) fprintf(stderr, "%.1f dw=%llu tokens=%.0f frozen=%d\n", t - started, dw, w.tokens, frozen);
    if (debt && !frozen) {
      if (write_file(freeze, frozen_val) == 0) {
        frozen = 1;
        holds++;
        held_since = t;
      }
    } else if (!debt && frozen) {
      write_file(freeze, thawed_val);
      frozen = 0;
      thawed_now = 1;
      held_ms += t - held_since;
    }
    if (status && t - last_status >= 250) {
      last_status = t;
      /* a token message (src/proto/io-throttle.ts), replaced whole */
      char tmpf[4096];
      snprintf(tmpf, sizeof tmpf, "%s.tmp", status);
      FILE *f = fopen(tmpf, "we");
      if (f) {
        struct proto_out o = {f, 0};
#define ST(k, fmt, v) proto_put(&o, "%s", io_throttle_status_keys[k].name), proto_put(&o, fmt, v)
        ST(IO_THROTTLE_STATUS_UPTIME_MS, "%.0f", t - started);
        ST(IO_THROTTLE_STATUS_WRITE_BPS, "%.0f", w.rate);
        ST(IO_THROTTLE_STATUS_READ_BPS, "%.0f", r.rate);
        ST(IO_THROTTLE_STATUS_BURST, "%.0f", w.rate > 0 ? w.burst : r.burst);
        ST(IO_THROTTLE_STATUS_WRITE_TOKENS, "%.0f", w.tokens);
        ST(IO_THROTTLE_STATUS_READ_TOKENS, "%.0f", r.tokens);
        ST(IO_THROTTLE_STATUS_WRITTEN, "%llu", total_w);
        ST(IO_THROTTLE_STATUS_READ, "%llu", total_r);
        ST(IO_THROTTLE_STATUS_HOLDS, "%llu", holds);
        ST(IO_THROTTLE_STATUS_HELD_MS, "%.0f", held_ms + (frozen ? t - held_since : 0));
        ST(IO_THROTTLE_STATUS_FROZEN, "%d", frozen);
        ST(IO_THROTTLE_STATUS_PROCESSES, "%zu", n);
        ST(IO_THROTTLE_STATUS_REALTIME, "%d", rt_ok);
#undef ST
        proto_end(&o);
        int bad = ferror(f);
        if (fclose(f) == 0 && !bad) rename(tmpf, status);
      }
    }
    /* While writes flow, look every 1 ms: a thawed writer can dirty ~1 GB/s of
     * page cache, so the lump it writes before the next look is what limits
     * precision. While in debt, sleep until it is paid (at most one tick, so
     * exits are seen). Idle: one tick. */
    if (dw + dr > 0 || thawed_now) fast_until = t + 100; /* a thawed writer may take a while to run again */
    double sleep_ms = t < fast_until ? (tick < 1 ? tick : 1) : tick;
    if (frozen) {
      double need = 0;
      if (w.tokens < 0) need = -w.tokens * 1000 / w.rate;
      if (r.tokens < 0 && -r.tokens * 1000 / r.rate > need) need = -r.tokens * 1000 / r.rate;
      if (need < sleep_ms) sleep_ms = need < 1 ? 1 : need;
    }
    struct timespec ts = {(time_t)(sleep_ms / 1000), (long)(((long long)(sleep_ms * 1e6)) % 1000000000LL)};
    nanosleep(&ts, NULL);
  }
  if (frozen) write_file(freeze, thawed_val);
  if (status) unlink(status);
  return 0;
}
