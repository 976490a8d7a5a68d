/*
 * paene-init: a context's pid 1, as small as a process can be.
 *
 * The helper sets the context up, drops its privileges and then executes
 * this program in place of itself: a forked copy of the helper would keep
 * the monitor's pages and page tables alive in every one of thousands of
 * contexts. This one has no libc and no heap: a few pages.
 *
 * It reaps every orphan of the context; on SIGTERM, SIGINT or SIGPWR it
 * passes SIGTERM (and SIGCONT) to every process of the context and exits
 * once they are gone. Signals stay blocked and are taken with
 * rt_sigtimedwait: a blocked signal is queued even for a namespace's init,
 * and no handler (or signal-return trampoline) is needed.
 *
 * With a main process (an init plan after its name, src/proto/main-process.ts:
 * flags, `--`, the command; its environment is the command's), it runs the
 * command with stdout and stderr on the log pipes the helper left at
 * INIT_FD_OUT/ERR, restarts it as the plan's policy says (with the plan's
 * growing back-off), and tells paene-log on INIT_FD_EVENTS each start and
 * exit. It decides nothing the plan does not say.
 */
#include <asm/unistd.h>
#include <linux/signal.h>
#include <linux/time.h>
#include <linux/wait.h>

#include "main_fds.h" /* generated from src/proto/main-process.ts */
struct proto_key {
  const char *name;
  int nvalues;
};
#include "init_plan.h"  /* generated: the plan's flags */
#include "main_event.h" /* generated: the events' keys */

#if defined(__x86_64__)
static long sys4(long n, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static long sys4(long n, long a, long b, long c, long d) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
}
#else
#error "paene-init: add this architecture's system call instruction"
#endif

#define ECHILD 10
#define EINTR 4
#define EAGAIN 11
#define ENOENT 2
#define EACCES 13
#define F_SETFD 2
#define FD_CLOEXEC 1
#define AT_FDCWD (-100)

static unsigned long bit(int sig) { return 1UL << (sig - 1); }

static __attribute__((noreturn)) void leave(int code) {
  for (;;) sys4(__NR_exit_group, code, 0, 0, 0);
}

static int streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static unsigned long slen(const char *s) {
  unsigned long n = 0;
  while (s[n]) n++;
  return n;
}

/* A decimal number, or -1 for anything else. */
static long num(const char *s) {
  long v = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 100000000000L) return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

/* ------------------------------------------------------------ the main process */

static char **main_argv; /* null: no main process */
static char **main_envp;
static const char *restart_mode = "no", *main_cwd = "/";
static long max_restarts, backoff_first = 100, backoff_max = 30000, backoff_reset = 10000, main_uid, main_gid;

static long main_pid;      /* running: its pid; 0: not running */
static long restarts;      /* starts after the first */
static long failures;      /* consecutive early ends, for the back-off */
static long started_ms;    /* when the running one started */
static long next_start_ms; /* a start is due at this time (-1: none) */
static int stopping;

static long now_ms(void) {
  struct timespec ts;
  sys4(__NR_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An event for paene-log: the key and its values as NUL-terminated tokens, in one write. */
static void event(int key, long a, long b) {
  char buf[96];
  unsigned long n = 0;
  const char *k = main_event_keys[key].name;
  while (*k) buf[n++] = *k++;
  buf[n++] = 0;
  long vals[2] = {a, b};
  for (int i = 0; i < main_event_keys[key].nvalues; i++) {
    char d[24];
    int m = 0;
    unsigned long v = (unsigned long)vals[i];
    do d[m++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (m) buf[n++] = d[--m];
    buf[n++] = 0;
  }
  sys4(__NR_write, INIT_FD_EVENTS, (long)buf, (long)n, 0); /* paene-log gone: EPIPE, SIGPIPE stays blocked */
}

static void say(const char *a, const char *b) {
  sys4(__NR_write, 2, (long)a, (long)slen(a), 0);
  sys4(__NR_write, 2, (long)b, (long)slen(b), 0);
  sys4(__NR_write, 2, (long)"\n", 1, 0);
}

/* In the child: become the main process, or report why not and exit 127. */
static __attribute__((noreturn)) void become_main(void) {
  unsigned long none = 0;
  sys4(__NR_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, sizeof none);
  sys4(__NR_dup3, INIT_FD_OUT, 1, 0, 0);
  sys4(__NR_dup3, INIT_FD_ERR, 2, 0, 0);
  long err;
  unsigned int gid = (unsigned int)main_gid;
  if ((err = sys4(__NR_setgroups, 1, (long)&gid, 0, 0)) < 0 || (err = sys4(__NR_setresgid, main_gid, main_gid, main_gid, 0)) < 0 ||
      (err = sys4(__NR_setresuid, main_uid, main_uid, main_uid, 0)) < 0) {
    say("paene-init: cannot become the main process's user", "");
    event(MAIN_EVENT_FAILED, sys4(__NR_getpid, 0, 0, 0, 0), -err);
    leave(127);
  }
  if ((err = sys4(__NR_chdir, (long)main_cwd, 0, 0, 0)) < 0) {
    say("paene-init: cannot enter the working directory ", main_cwd);
    event(MAIN_EVENT_FAILED, sys4(__NR_getpid, 0, 0, 0, 0), -err);
    leave(127);
  }
  const char *cmd = main_argv[0];
  int slash = 0;
  for (const char *c = cmd; *c; c++) slash |= *c == '/';
  if (slash) {
    err = sys4(__NR_execve, (long)cmd, (long)main_argv, (long)main_envp, 0);
  } else {
    /* execvp's search: PATH from its environment, else the usual one */
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (char **e = main_envp; *e; e++)
      if ((*e)[0] == 'P' && (*e)[1] == 'A' && (*e)[2] == 'T' && (*e)[3] == 'H' && (*e)[4] == '=') path = *e + 5;
    err = -ENOENT;
    unsigned long cl = slen(cmd);
    for (const char *p = path;;) {
      const char *q = p;
      while (*q && *q != ':') q++;
      char full[4096];
      unsigned long dl = (unsigned long)(q - p), n = 0;
      if (dl + cl + 2 <= sizeof full) {
        for (const char *c = p; c < q; c++) full[n++] = *c;
        if (dl == 0) full[n++] = '.';
        full[n++] = '/';
        for (unsigned long i = 0; i <= cl; i++) full[n++] = cmd[i];
        long e = sys4(__NR_execve, (long)full, (long)main_argv, (long)main_envp, 0);
        if (e == -EACCES || err != -EACCES) err = e;
      }
      if (!*q) break;
      p = q + 1;
    }
  }
  say("paene-init: cannot run ", cmd);
  event(MAIN_EVENT_FAILED, sys4(__NR_getpid, 0, 0, 0, 0), -err);
  leave(127);
}

static void start_main(void) {
  next_start_ms = -1;
  long pid = sys4(__NR_clone, SIGCHLD, 0, 0, 0);
  if (pid == 0) become_main();
  if (pid < 0) { /* no process to be had (pids limit): try again after the back-off */
    event(MAIN_EVENT_FAILED, 0, -pid);
    long delay = backoff_first;
    for (long i = 0; i < failures && delay < backoff_max; i++) delay *= 2;
    if (delay > backoff_max) delay = backoff_max;
    failures++;
    next_start_ms = now_ms() + delay;
    event(MAIN_EVENT_RESTART, delay, 0);
    return;
  }
  main_pid = pid;
  started_ms = now_ms();
  event(MAIN_EVENT_START, pid, restarts);
}

/* The main process ended with `status`: record it, and start it again if the policy says so. */
static void main_ended(long status) {
  event(MAIN_EVENT_EXIT, main_pid, status);
  main_pid = 0;
  if (stopping) return;
  int clean = (status & 0x7f) == 0 && ((status >> 8) & 0xff) == 0;
  int again = streq(restart_mode, "always") || (streq(restart_mode, "on-failure") && !clean);
  if (!again) return;
  if (streq(restart_mode, "on-failure") && max_restarts > 0 && restarts >= max_restarts) {
    event(MAIN_EVENT_GAVE_UP, 0, 0);
    return;
  }
  if (now_ms() - started_ms >= backoff_reset) failures = 0;
  long delay = backoff_first;
  for (long i = 0; i < failures && delay < backoff_max; i++) delay *= 2;
  if (delay > backoff_max) delay = backoff_max;
  failures++;
  restarts++;
  next_start_ms = now_ms() + delay;
  event(MAIN_EVENT_RESTART, delay, 0);
}

/* Reads the init plan: returns 0, or 1 for a plan it does not understand (then it runs no main process). */
static int read_plan(long argc, char **argv, char **envp) {
  for (long i = 1; i < argc;) {
    if (streq(argv[i], "--")) {
      if (i + 1 >= argc) return 1;
      main_argv = argv + i + 1;
      main_envp = envp;
      return 0;
    }
    int key = -1;
    for (int j = 0; j < INIT_PLAN_KEYS; j++)
      if (streq(init_plan_keys[j].name, argv[i])) key = j;
    if (key < 0 || i + init_plan_keys[key].nvalues >= argc) return 1;
    char **v = argv + i + 1;
    i += 1 + init_plan_keys[key].nvalues;
    switch ((enum init_plan_key)key) {
    case INIT_PLAN___RESTART: restart_mode = v[0]; break;
    case INIT_PLAN___MAX_RESTARTS: max_restarts = num(v[0]); break;
    case INIT_PLAN___BACKOFF:
      backoff_first = num(v[0]);
      backoff_max = num(v[1]);
      backoff_reset = num(v[2]);
      break;
    case INIT_PLAN___UID: main_uid = num(v[0]); break;
    case INIT_PLAN___GID: main_gid = num(v[0]); break;
    case INIT_PLAN___CWD: main_cwd = v[0]; break;
    case INIT_PLAN_KEYS: break;
    }
  }
  return 1;
}

/* Reaps what has exited (the main process's end noted); with `block`, waits until no child is left. Returns 1 when none is left. */
static int reap(int block) {
  for (;;) {
    int status = 0;
    long r = sys4(__NR_wait4, -1, (long)&status, block ? 0 : WNOHANG, 0);
    if (r == -ECHILD) return 1;
    if (r > 0 && r == main_pid) main_ended(status);
    if (r == -EINTR || r > 0) continue;
    return 0; /* 0: children left, none exited */
  }
}

/* `paene-init echo PLAN -- CMD`: the plan as read, written back as NUL-terminated words (the round-trip test). */
static char echo_buf[65536];
static unsigned long echo_len;
static void echo_word(const char *w) {
  while (*w && echo_len < sizeof echo_buf - 1) echo_buf[echo_len++] = *w++;
  if (echo_len < sizeof echo_buf) echo_buf[echo_len++] = 0;
}
static void echo_num(long v) {
  char d[24], w[24];
  int m = 0, n = 0;
  unsigned long u = (unsigned long)v;
  do d[m++] = (char)('0' + u % 10), u /= 10;
  while (u);
  while (m) w[n++] = d[--m];
  w[n] = 0;
  echo_word(w);
}
static __attribute__((noreturn)) void echo_plan(long argc, char **argv, char **envp) {
  if (read_plan(argc - 1, argv + 1, envp) != 0) leave(2);
  echo_word(init_plan_keys[INIT_PLAN___RESTART].name), echo_word(restart_mode);
  echo_word(init_plan_keys[INIT_PLAN___MAX_RESTARTS].name), echo_num(max_restarts);
  echo_word(init_plan_keys[INIT_PLAN___BACKOFF].name), echo_num(backoff_first), echo_num(backoff_max), echo_num(backoff_reset);
  echo_word(init_plan_keys[INIT_PLAN___UID].name), echo_num(main_uid);
  echo_word(init_plan_keys[INIT_PLAN___GID].name), echo_num(main_gid);
  echo_word(init_plan_keys[INIT_PLAN___CWD].name), echo_word(main_cwd);
  echo_word("--");
  for (char **a = main_argv; *a; a++) echo_word(*a);
  sys4(__NR_write, 1, (long)echo_buf, (long)echo_len, 0);
  leave(0);
}

/* sp: the stack the kernel handed over: argc, then argv, NULL, then envp. */
void __attribute__((noreturn, used)) init_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  /* Executed through a file descriptor, its name would be "3": take argv[0] (e.g. "paene-init"). */
  if (argc > 1 && streq(argv[1], "echo")) echo_plan(argc, argv, envp);
  if (argc > 0) sys4(__NR_prctl, 15 /* PR_SET_NAME */, (long)argv[0], 0, 0);
  sys4(__NR_prctl, 4 /* PR_SET_DUMPABLE */, 0, 0, 0);
  unsigned long set = bit(SIGCHLD) | bit(SIGTERM) | bit(SIGINT) | bit(SIGPWR) | bit(SIGHUP);
  unsigned long blocked = set | bit(SIGPIPE);
  sys4(__NR_rt_sigprocmask, SIG_BLOCK, (long)&blocked, 0, sizeof blocked);
  next_start_ms = -1;
  if (argc > 1 && read_plan(argc, argv, envp) == 0) {
    for (int fd = INIT_FD_OUT; fd <= INIT_FD_EVENTS; fd++) sys4(__NR_fcntl, fd, F_SETFD, FD_CLOEXEC, 0);
    start_main();
  }
  for (;;) {
    struct timespec wait = {0, 0};
    long due = next_start_ms;
    if (due >= 0) {
      long left = due - now_ms();
      if (left < 0) left = 0;
      wait.tv_sec = left / 1000;
      wait.tv_nsec = (left % 1000) * 1000000;
    }
    long sig = sys4(__NR_rt_sigtimedwait, (long)&set, 0, due >= 0 ? (long)&wait : 0, sizeof set);
    if (sig == SIGCHLD) {
      reap(0);
    } else if (sig == SIGTERM || sig == SIGINT || sig == SIGPWR) {
      stopping = 1;
      next_start_ms = -1;
      sys4(__NR_kill, -1, SIGTERM, 0, 0);
      sys4(__NR_kill, -1, SIGCONT, 0, 0);
      reap(1);
      leave(0);
    }
    if (next_start_ms >= 0 && now_ms() >= next_start_ms && !stopping) start_main();
    /* SIGHUP and interruptions: nothing to do */
  }
}

/* The entry point: hand init_main the kernel's stack pointer, align the stack as the ABI wants, call it. */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\txor %rbp,%rbp\n\tmov %rsp,%rdi\n\tand $-16,%rsp\n\tcall init_main\n\thlt\n");
#elif defined(__aarch64__)
__asm__(".globl _start\n_start:\n\tmov x29, #0\n\tmov x30, #0\n\tmov x0, sp\n\tand x0, x0, #-16\n\tmov sp, x0\n\tbl init_main\n");
#endif
