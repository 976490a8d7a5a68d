/*
 * paene-log: writes a context's main-process log on the host.
 *
 *   paene-log --dir DIR --max-bytes N --keep K --stream NAME
 *
 * (log_plan, src/proto/main-process.ts). paene-helper starts it on the host,
 * outside the context, with the read ends of three pipes: the main
 * process's stdout (LOG_FD_OUT) and stderr (LOG_FD_ERR), and the init's
 * events (LOG_FD_EVENTS, main_event tokens). Each line becomes a record of
 * the CRI log format, `TIME STREAM F|P TEXT`, appended to DIR/main.log in
 * one write; before main.log would grow past N bytes it becomes
 * main.log.1 (main.log.1 becomes .2, ... K kept). Each event replaces
 * DIR/main.state (main_state tokens) whole. The guest writes into its pipes
 * only: it can fill its own log, never name a file or a time. It exits when
 * every write end is closed (the context has stopped).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "log_plan.h"   /* generated from src/proto/main-process.ts */
#include "main_event.h" /* generated */
#include "main_state.h" /* generated */
#include "main_fds.h"   /* generated */

#define CHUNK (16 * 1024) /* a line longer than this is cut into P records */

void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("paene-log: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static int dirfd_ = -1, logfd = -1;
static int cut_short; /* the file does not end with a newline: the next write starts with one */
static long long max_bytes = 10 << 20, logsize;
static int keep = 1;
static const char *out_stream = "stdout";
static int init_fd = -1, init_gone; /* a pidfd of the context's init; set once it has ended */
static int console_fd = -1;         /* a guest init's /dev/console, read beside the pipes (never at its end: we hold it open too) */

static void timestamp(char *buf, size_t cap) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, cap - n, ".%09ldZ", ts.tv_nsec);
}

static void open_log(void) {
  logfd = openat(dirfd_, "main.log", O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (logfd < 0) die("open main.log: %s", strerror(errno));
  struct stat st;
  logsize = fstat(logfd, &st) == 0 ? st.st_size : 0;
  /* a record cut short before (a full disk, a crash): end its line, so the next record starts one of its own */
  char last = '\n';
  if (logsize > 0 && pread(logfd, &last, 1, logsize - 1) == 1 && last != '\n') cut_short = 1;
}

static void rotate(void) {
  close(logfd);
  char from[32], to[32];
  for (int i = keep - 1; i >= 1; i--) {
    snprintf(from, sizeof from, "main.log.%d", i);
    snprintf(to, sizeof to, "main.log.%d", i + 1);
    renameat(dirfd_, from, dirfd_, to);
  }
  if (keep > 0)
    renameat(dirfd_, "main.log", dirfd_, "main.log.1");
  else
    unlinkat(dirfd_, "main.log", 0);
  open_log();
}

/* One record: TIME STREAM TAG TEXT\n, in one write. */
static void record(const char *stream, char tag, const char *text, size_t len) {
  static char buf[CHUNK + 128];
  char ts[64];
  timestamp(ts, sizeof ts);
  int n = snprintf(buf, sizeof buf, "%s %s %c ", ts, stream, tag);
  memcpy(buf + n, text, len);
  size_t total = (size_t)n + len;
  buf[total++] = '\n';
  if (logsize > 0 && logsize + (long long)total > max_bytes) rotate();
  if (cut_short && write(logfd, "\n", 1) == 1) {
    cut_short = 0;
    logsize++;
  }
  for (size_t off = 0; off < total;) {
    ssize_t w = write(logfd, buf + off, total - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      cut_short = off > 0; /* a full disk: the line is lost (its start ended at the next write), the service goes on */
      logsize += (long long)off;
      return;
    }
    off += (size_t)w;
  }
  logsize += (long long)total;
}

struct stream {
  int fd;
  const char *name;
  char buf[CHUNK];
  size_t len;
};

/* Reads what is there; writes each whole line, and a chunk of a line too long to wait for. Returns 0 at EOF. */
static int pump(struct stream *s) {
  ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
  if (n <= 0) {
    if (s->len) record(s->name, 'F', s->buf, s->len);
    s->len = 0;
    return 0;
  }
  s->len += (size_t)n;
  size_t start = 0;
  for (size_t i = 0; i < s->len; i++) {
    if (s->buf[i] != '\n') continue;
    record(s->name, 'F', s->buf + start, i - start);
    start = i + 1;
  }
  if (start == 0 && s->len == sizeof s->buf) {
    record(s->name, 'P', s->buf, s->len);
    start = s->len;
  }
  memmove(s->buf, s->buf + start, s->len - start);
  s->len -= start;
  return 1;
}

/* ------------------------------------------------------------- state */

static struct {
  const char *state;
  long pid, code, sig, err, restarts;
  long failed_pid; /* the run whose exec failed (its failed event may come before its start) */
} st = {"running", 0, -1, -1, -1, 0, -1};

/* A main_state token into buf at *len (no stdio: a FILE and its heap would be most of this process's pages). */
static void put_token(char *buf, size_t cap, size_t *len, int *count, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n + 1 > cap - *len) return;
  *len += (size_t)n + 1; /* its NUL ends the token */
  (*count)++;
}

static void write_state(void) {
  char ts[64], buf[512];
  size_t len = 0;
  int count = 0;
  timestamp(ts, sizeof ts);
#define KV(k, fmt, v) \
  (put_token(buf, sizeof buf, &len, &count, "%s", main_state_keys[k].name), put_token(buf, sizeof buf, &len, &count, fmt, v))
  KV(MAIN_STATE_STATE, "%s", st.state);
  if (st.pid > 0) KV(MAIN_STATE_PID, "%ld", st.pid);
  if (st.code >= 0) KV(MAIN_STATE_CODE, "%ld", st.code);
  if (st.sig >= 0) KV(MAIN_STATE_SIGNAL, "%ld", st.sig);
  if (st.err >= 0) KV(MAIN_STATE_ERROR, "%s", strerrorname_np((int)st.err) ? strerrorname_np((int)st.err) : "E?");
  KV(MAIN_STATE_RESTARTS, "%ld", st.restarts);
  KV(MAIN_STATE_AT, "%s", ts);
#undef KV
  int n = count;
  put_token(buf, sizeof buf, &len, &count, "end");
  put_token(buf, sizeof buf, &len, &count, "%d", n);
  int fd = openat(dirfd_, "main.state.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  int ok = write(fd, buf, len) == (ssize_t)len;
  close(fd);
  if (ok) renameat(dirfd_, "main.state.tmp", dirfd_, "main.state");
}

/* An event's tokens: applied once whole (a key and all its values are in). Returns the bytes used. */
static size_t apply_events(char *buf, size_t len) {
  size_t used = 0;
  for (;;) {
    char *toks[4];
    size_t at = used;
    int n = 0;
    while (n < 4 && at < len) {
      char *z = memchr(buf + at, 0, len - at);
      if (!z) break;
      toks[n++] = buf + at;
      at = (size_t)(z - buf) + 1;
    }
    if (n == 0) return used;
    int key = -1;
    for (int j = 0; j < MAIN_EVENT_KEYS; j++)
      if (!strcmp(main_event_keys[j].name, toks[0])) key = j;
    if (key < 0) die("unknown event '%s'", toks[0]); /* only the init writes here */
    if (n < 1 + main_event_keys[key].nvalues) return used;
    /* consumed: the key and its values */
    size_t end = used;
    for (int i = 0; i <= main_event_keys[key].nvalues; i++) end += strlen(buf + end) + 1;
    if (key == MAIN_EVENT_INIT) {
      /* the helper's word: the init's host pid, watched through a pidfd */
      if (init_fd < 0) init_fd = (int)syscall(SYS_pidfd_open, (pid_t)atol(toks[1]), 0);
      if (init_fd < 0) init_gone = 1;
      used = end;
      continue;
    }
    switch ((enum main_event_key)key) {
    case MAIN_EVENT_INIT: break;
    case MAIN_EVENT_START:
      st.state = "running";
      st.pid = atol(toks[1]);
      st.restarts = atol(toks[2]);
      if (st.failed_pid != st.pid) st.err = -1;
      break;
    case MAIN_EVENT_EXIT: {
      long w = atol(toks[2]);
      st.pid = 0;
      if ((w & 0x7f) == 0) {
        st.state = "exited";
        st.code = (w >> 8) & 0xff;
        st.sig = -1;
      } else {
        st.state = "killed";
        st.sig = w & 0x7f;
        st.code = -1;
      }
      if (st.err >= 0 && st.failed_pid == atol(toks[1])) st.state = "failed";
      break;
    }
    case MAIN_EVENT_RESTART: st.state = "restarting"; break;
    case MAIN_EVENT_GAVE_UP: st.state = "gave-up"; break;
    case MAIN_EVENT_FAILED:
      st.failed_pid = atol(toks[1]);
      st.err = atol(toks[2]);
      if (st.failed_pid == 0) st.state = "failed";
      break;
    case MAIN_EVENT_KEYS: break;
    }
    write_state();
    used = end;
  }
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  /* `paene-log echo PLAN`: the plan as read, written back as a message (the round-trip test) */
  int echo = argc > 1 && !strcmp(argv[1], "echo");
  for (int i = echo ? 2 : 1; i < argc;) {
    char **vals;
    int key = proto_flag(argv, argc, &i, log_plan_keys, LOG_PLAN_KEYS, &vals, "log plan");
    if (key < 0) die("unknown flag '%s'", argv[i]);
    switch ((enum log_plan_key)key) {
    case LOG_PLAN___DIR: dir = vals[0]; break;
    case LOG_PLAN___MAX_BYTES: max_bytes = atoll(vals[0]); break;
    case LOG_PLAN___KEEP: keep = atoi(vals[0]); break;
    case LOG_PLAN___STREAM: out_stream = vals[0]; break;
    case LOG_PLAN___CONSOLE: console_fd = LOG_FD_CONSOLE; break;
    case LOG_PLAN_KEYS: break;
    }
  }
  if (!dir || max_bytes < 1024 || keep < 0 || keep > 99) die("a log plan wants --dir, --max-bytes (>= 1024) and --keep (0-99)");
  if (echo) {
    struct proto_out o = {stdout, 0};
#define KV(k, fmt, v) (proto_put(&o, "%s", log_plan_keys[k].name), proto_put(&o, fmt, v))
    KV(LOG_PLAN___DIR, "%s", dir);
    KV(LOG_PLAN___MAX_BYTES, "%lld", max_bytes);
    KV(LOG_PLAN___KEEP, "%d", keep);
    KV(LOG_PLAN___STREAM, "%s", out_stream);
    if (console_fd >= 0) proto_put(&o, "%s", log_plan_keys[LOG_PLAN___CONSOLE].name);
#undef KV
    proto_end(&o);
    return 0;
  }
  dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dirfd_ < 0) die("open %s: %s", dir, strerror(errno));
  open_log();
  static struct stream out, err, con;
  out.fd = LOG_FD_OUT;
  out.name = out_stream;
  err.fd = LOG_FD_ERR;
  err.name = "stderr";
  con.fd = console_fd;
  con.name = "console";
  static char ev[4096];
  size_t evlen = 0;
  int evfd = LOG_FD_EVENTS;
  for (;;) {
    struct pollfd p[5] = {{out.fd, POLLIN, 0}, {err.fd, POLLIN, 0}, {evfd, POLLIN, 0}, {con.fd, POLLIN, 0}, {init_fd, POLLIN, 0}};
    /* every writer gone: the context has stopped (with its init known, its end is the sign: a guest init closes what it
       was given and opens /dev/console) */
    if (out.fd < 0 && err.fd < 0 && evfd < 0 && init_fd < 0) break;
    if (init_gone) break;
    /* the init has ended: what its processes wrote is drained (they are killed with it), then done */
    if (poll(p, 5, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll: %s", strerror(errno));
    }
    /* events first: a start is recorded before the lines it prints */
    if (evfd >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(evfd, ev + evlen, sizeof ev - evlen);
      if (n <= 0 && !(n < 0 && errno == EINTR)) {
        close(evfd);
        evfd = -1;
      } else if (n > 0) {
        evlen += (size_t)n;
        size_t used = apply_events(ev, evlen);
        memmove(ev, ev + used, evlen - used);
        evlen -= used;
        if (evlen == sizeof ev) evlen = 0; /* not an event: dropped */
      }
    }
    struct stream *ss[2] = {&out, &err};
    for (int i = 0; i < 2; i++)
      if (ss[i]->fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) && !pump(ss[i])) {
        close(ss[i]->fd);
        ss[i]->fd = -1;
      }
    if (con.fd >= 0 && (p[3].revents & POLLIN)) pump(&con);
    if (init_fd >= 0 && (p[4].revents & POLLIN)) {
      /* ended: one last look at each stream, without waiting */
      for (int i = 0; i < 2; i++)
        if (ss[i]->fd >= 0) {
          fcntl(ss[i]->fd, F_SETFL, O_NONBLOCK);
          while (pump(ss[i]) && ss[i]->len < sizeof ss[i]->buf) {
            struct pollfd q = {ss[i]->fd, POLLIN, 0};
            if (poll(&q, 1, 50) <= 0) break;
          }
        }
      if (con.fd >= 0) pump(&con);
      init_gone = 1;
    }
  }
  return 0;
}
