/*
 * paene-helper: the small native part of paene.
 *
 * A Node process is multi-threaded and cannot safely unshare(2) or setns(2)
 * itself, so the few steps that must happen inside a single-threaded process
 * live here.  Policy (which mounts, which capabilities, which syscalls) is
 * decided by the TypeScript runtime and passed in as arguments; this program
 * only carries it out, in a fixed order, and reports failures precisely.
 *
 *   paene-helper monitor --dir DIR [--idle SECONDS]
 *       The per-state-root supervisor.  A child subreaper that forks every
 *       context's init on request (over DIR/monitor.sock) and reaps it when
 *       it dies, so no context leaves a zombie even on hosts whose pid 1
 *       does not reap.  Exits after SECONDS with no contexts and no requests.
 *
 *   paene-helper sysctl --pid PID KEY=VALUE...
 *       Joins only the uts and ipc namespaces of a running context and writes
 *       the per-namespace sysctls (kernel.hostname, kernel.shmmax, ...) from
 *       the host: the guest's own /proc/sys stays read-only.
 *
 *   paene-helper exec --pid PID [options] -- CMD [ARGS...]
 *       Joins the namespaces of a running context (whose init is PID on the
 *       host), its cgroups, drops to the context's capabilities and seccomp
 *       filter, and runs CMD as a child; exits with CMD's status.
 *
 * A `spawn PROGRAM ARGS...` request runs a host program (such as a per-context
 * I/O throttler) as a child of the monitor, which reaps it.  A `guard ...`
 * request puts a context under the fork back-off (forkbackoff.h), which a
 * process of its own runs: the watcher (below).  A `root-switch` request
 * answers how a context's root becomes its namespace's root: "staged" (the
 * staging namespace, below) or "pivot_root WHY".
 *
 * A start request sent to the monitor carries the same flags as `start`:
 *   --cgroup FILE... --lower DIR --upper DIR --work DIR --rootfs DIR
 *   --hostname H --sysctl K=V... --mask PATH... --ro PATH... --rw PATH...
 *   --scratch DIR --empty DIR --caps HEX --seccomp HEX [--init PROGRAM] [--init-name NAME]
 *   [--netns new [--lo-up]] [--landlock-scoped HEX] [--sched POLICY:SLICE_NS]
 *   [--bind SOURCE TARGET ro|rw file|dir...] (bind mounts, resolved inside the new root: binds.h)
 *   [--bpf-cgroup DIR --bpf-prog sk-storage=N --bpf-prog cg-storage=HEX --bpf-prog TYPE=HEX...]
 *       (sock_addr programs and the context's storage value, see sockattach.h;
 *       the monitor keeps loaded program sets, see prepare_sock_set)
 * and exec takes [--netns join] [--landlock-scoped HEX] [--sched ...] to match.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "forkbackoff.h"
#include "paene-native.h"
#include "proto.h"
#include "helper_request.h" /* generated from src/proto/helper-request.ts */
#include "helper_error.h"   /* generated from src/proto/helper-reply.ts */
#include "sockattach.h"
#include "binds.h"
#include "main_fds.h"   /* generated from src/proto/main-process.ts */
#include "main_event.h" /* generated from src/proto/main-process.ts */

#define MAX_LIST 64
#define MAX_WORDS INIT_WORDS_MAX /* a main process's command line and environment (main_fds.h) */

/* ---------------------------------------------------------------- errors */

static int report_fd = 2; /* where fatal errors go: stderr, or the requester */

/* "err CODE MESSAGE" (src/proto/helper-reply.ts): the runtime acts on the code, shows the message */
static void die_with(enum helper_error code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void vdie(enum helper_error code, const char *fmt, va_list ap) __attribute__((noreturn));
static void vdie(enum helper_error code, const char *fmt, va_list ap) {
  char buf[1024];
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  if (report_fd == 2) {
    dprintf(2, "paene-helper: %s\n", buf);
  } else {
    dprintf(report_fd, "err %s %s\n", helper_error_names[code], buf);
  }
  _exit(125);
}
static void die_with(enum helper_error code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vdie(code, fmt, ap);
}
void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vdie(HELPER_ERROR_FAILED, fmt, ap);
}
/* An answer to a requester: "err CODE MESSAGE". */
static void reply_err(int conn, enum helper_error code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_err(int conn, enum helper_error code, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  dprintf(conn, "err %s %s\n", helper_error_names[code], buf);
}

/* ------------------------------------------------------------ arguments */

struct spec {
  const char *cgroups[MAX_LIST];
  int ncgroups;
  const char *lower, *upper, *work, *rootfs, *hostname, *scratch, *empty, *init_name, *init_path;
  const char *devs[MAX_LIST]; /* PATH:MAJOR:MINOR:OCTAL_MODE */
  int ndevs;
  const char *sysctls[MAX_LIST];
  int nsysctls;
  const char *masks[MAX_LIST];
  int nmasks;
  const char *ros[MAX_LIST];
  int nros;
  const char *rws[MAX_LIST];
  int nrws;
  uint64_t caps;
  int have_caps;
  unsigned char *seccomp;
  size_t seccomp_len;
  /* network: start: "new" unshares a network namespace; exec: "join" enters the init's */
  const char *netns;
  /* start: bring the new network namespace's loopback up (mode none) */
  int lo_up;
  /* start: sock_addr programs (TYPE=HEX) attached to this cgroup v2 directory before the init joins it (mode shared) */
  const char *bpf_cgroup;
  const char *bpf_progs[MAX_LIST];
  int nbpf_progs;
  /* Landlock scopes (LANDLOCK_SCOPE_* bits) of a domain applied before the capabilities drop; 0 = none */
  uint64_t landlock_scoped;
  /* scheduling class of the context's processes (inherited by their children): policy, custom slice in ns (0 = the kernel's) */
  int have_sched;
  uint32_t sched_policy;
  uint64_t sched_slice_ns;
  /* start: the init's command line after its name (init_plan words, carried untouched) and its environment */
  const char *init_args[MAX_WORDS];
  int ninit_args;
  const char *init_envs[MAX_WORDS];
  int ninit_envs;
  /* start: paene-log on the host and its command line (log_plan words, carried untouched) */
  const char *guest_init; /* a path in the guest's root */
  unsigned long long run_tmpfs;
  const char *log_prog;
  const char *log_args[MAX_LIST];
  int nlog_args;
  /* start: bind mounts into the new root, in order (binds.h) */
  struct bind_req binds[MAX_LIST];
  int nbinds;
  /* exec only */
  pid_t pid;
  const char *cwd;
  const char *envs[MAX_LIST];
  int nenvs;
  int have_user;
  uid_t uid;
  gid_t gid;
  int tty;
  int started_fd; /* exec: where 'ok PID' or 'err CODE MESSAGE' goes once the command runs or cannot (0: nowhere) */
  char **cmd;
};

static void push(const char **list, int *n, const char *v, const char *flag) {
  if (*n >= MAX_LIST) die("too many %s flags", flag);
  list[(*n)++] = v;
}

static void push_word(const char **list, int *n, const char *v, const char *flag) {
  if (*n >= MAX_WORDS) die("too many %s flags", flag);
  list[(*n)++] = v;
}

static void parse_spec(int argc, char **argv, struct spec *s) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < argc;) {
    if (strcmp(argv[i], "--") == 0) {
      s->cmd = &argv[i + 1];
      return;
    }
    char **vals;
    int key = proto_flag(argv, argc, &i, helper_request_keys, HELPER_REQUEST_KEYS, &vals, "request");
    if (key < 0) die_with(HELPER_ERROR_UNKNOWN_FLAG, "%s", argv[i]);
    const char *a = helper_request_keys[key].name, *v = vals ? vals[0] : NULL;
    switch ((enum helper_request_key)key) {
    case HELPER_REQUEST___CGROUP: push(s->cgroups, &s->ncgroups, v, a); break;
    case HELPER_REQUEST___CAPS:
      s->caps = strtoull(v, NULL, 16);
      s->have_caps = 1;
      break;
    case HELPER_REQUEST___SECCOMP: s->seccomp = parse_hex(v, &s->seccomp_len); break;
    case HELPER_REQUEST___NETNS: s->netns = v; break;
    case HELPER_REQUEST___LANDLOCK_SCOPED: s->landlock_scoped = strtoull(v, NULL, 16); break;
    case HELPER_REQUEST___SCHED: {
      /* POLICY:SLICE_NS, e.g. 0:300000 (SCHED_OTHER with a 0.3 ms slice) or 3:0 (SCHED_BATCH) */
      char *end;
      s->sched_policy = (uint32_t)strtoul(v, &end, 10);
      if (*end != ':') die("--sched wants POLICY:SLICE_NS");
      s->sched_slice_ns = strtoull(end + 1, NULL, 10);
      s->have_sched = 1;
      break;
    }
    case HELPER_REQUEST___LOWER: s->lower = v; break;
    case HELPER_REQUEST___UPPER: s->upper = v; break;
    case HELPER_REQUEST___WORK: s->work = v; break;
    case HELPER_REQUEST___ROOTFS: s->rootfs = v; break;
    case HELPER_REQUEST___HOSTNAME: s->hostname = v; break;
    case HELPER_REQUEST___SCRATCH: s->scratch = v; break;
    case HELPER_REQUEST___EMPTY: s->empty = v; break;
    case HELPER_REQUEST___INIT: s->init_path = v; break;
    case HELPER_REQUEST___DEV: push(s->devs, &s->ndevs, v, a); break;
    case HELPER_REQUEST___SYSCTL: push(s->sysctls, &s->nsysctls, v, a); break;
    case HELPER_REQUEST___MASK: push(s->masks, &s->nmasks, v, a); break;
    case HELPER_REQUEST___RO: push(s->ros, &s->nros, v, a); break;
    case HELPER_REQUEST___RW: push(s->rws, &s->nrws, v, a); break;
    case HELPER_REQUEST___LO_UP: s->lo_up = 1; break;
    case HELPER_REQUEST___BPF_CGROUP: s->bpf_cgroup = v; break;
    case HELPER_REQUEST___BPF_PROG: push(s->bpf_progs, &s->nbpf_progs, v, a); break;
    case HELPER_REQUEST___PID: s->pid = (pid_t)atoi(v); break;
    case HELPER_REQUEST___ENV: push(s->envs, &s->nenvs, v, a); break;
    case HELPER_REQUEST___CWD: s->cwd = v; break;
    case HELPER_REQUEST___USER: {
      unsigned u, g;
      if (sscanf(v, "%u:%u", &u, &g) != 2) die("--user wants UID:GID, got '%s'", v);
      s->uid = u;
      s->gid = g;
      s->have_user = 1;
      break;
    }
    case HELPER_REQUEST___TTY: s->tty = 1; break;
    case HELPER_REQUEST___STARTED_FD:
      s->started_fd = atoi(v);
      if (s->started_fd < 3) die("--started-fd wants an fd of 3 or more, got '%s'", v);
      break;
    case HELPER_REQUEST___INIT_ARG: push_word(s->init_args, &s->ninit_args, v, a); break;
    case HELPER_REQUEST___INIT_ENV: push_word(s->init_envs, &s->ninit_envs, v, a); break;
    case HELPER_REQUEST___LOG_PROG: s->log_prog = v; break;
    case HELPER_REQUEST___GUEST_INIT: s->guest_init = v; break;
    case HELPER_REQUEST___RUN_TMPFS: s->run_tmpfs = strtoull(v, NULL, 10); break;
    case HELPER_REQUEST___LOG_ARG: push(s->log_args, &s->nlog_args, v, a); break;
    case HELPER_REQUEST___BIND:
      if (s->nbinds >= MAX_LIST) die("too many %s flags", a);
      s->binds[s->nbinds++] = (struct bind_req){vals[0], vals[1], vals[2], vals[3]};
      break;
    case HELPER_REQUEST_KEYS: break;
    }
  }
}

/* `paene-helper echo-request FLAGS... [-- CMD...]`: what parse_spec read, written back (the round-trip test). */
static int echo_request(int argc, char **argv) {
  struct spec s;
  parse_spec(argc, argv, &s);
  struct proto_out o = {stdout, 0};
#define F(k) proto_put(&o, "%s", helper_request_keys[k].name)
#define FV(k, fmt, v) (F(k), proto_put(&o, fmt, v))
  for (int i = 0; i < s.ncgroups; i++) FV(HELPER_REQUEST___CGROUP, "%s", s.cgroups[i]);
  if (s.have_caps) FV(HELPER_REQUEST___CAPS, "%llx", (unsigned long long)s.caps);
  if (s.seccomp_len) {
    F(HELPER_REQUEST___SECCOMP);
    for (size_t j = 0; j < s.seccomp_len; j++) printf("%02x", s.seccomp[j]);
    fputc(0, stdout);
    o.count++;
  }
  if (s.netns) FV(HELPER_REQUEST___NETNS, "%s", s.netns);
  if (s.landlock_scoped) FV(HELPER_REQUEST___LANDLOCK_SCOPED, "%llx", (unsigned long long)s.landlock_scoped);
  if (s.have_sched) F(HELPER_REQUEST___SCHED), proto_put(&o, "%u:%llu", s.sched_policy, (unsigned long long)s.sched_slice_ns);
  if (s.lower) FV(HELPER_REQUEST___LOWER, "%s", s.lower);
  if (s.upper) FV(HELPER_REQUEST___UPPER, "%s", s.upper);
  if (s.work) FV(HELPER_REQUEST___WORK, "%s", s.work);
  if (s.rootfs) FV(HELPER_REQUEST___ROOTFS, "%s", s.rootfs);
  if (s.hostname) FV(HELPER_REQUEST___HOSTNAME, "%s", s.hostname);
  if (s.scratch) FV(HELPER_REQUEST___SCRATCH, "%s", s.scratch);
  if (s.empty) FV(HELPER_REQUEST___EMPTY, "%s", s.empty);
  if (s.init_path) FV(HELPER_REQUEST___INIT, "%s", s.init_path);
  for (int i = 0; i < s.ndevs; i++) FV(HELPER_REQUEST___DEV, "%s", s.devs[i]);
  for (int i = 0; i < s.nsysctls; i++) FV(HELPER_REQUEST___SYSCTL, "%s", s.sysctls[i]);
  for (int i = 0; i < s.nmasks; i++) FV(HELPER_REQUEST___MASK, "%s", s.masks[i]);
  for (int i = 0; i < s.nros; i++) FV(HELPER_REQUEST___RO, "%s", s.ros[i]);
  for (int i = 0; i < s.nrws; i++) FV(HELPER_REQUEST___RW, "%s", s.rws[i]);
  if (s.lo_up) F(HELPER_REQUEST___LO_UP);
  if (s.bpf_cgroup) FV(HELPER_REQUEST___BPF_CGROUP, "%s", s.bpf_cgroup);
  for (int i = 0; i < s.nbpf_progs; i++) FV(HELPER_REQUEST___BPF_PROG, "%s", s.bpf_progs[i]);
  if (s.pid) FV(HELPER_REQUEST___PID, "%d", (int)s.pid);
  for (int i = 0; i < s.nenvs; i++) FV(HELPER_REQUEST___ENV, "%s", s.envs[i]);
  if (s.cwd) FV(HELPER_REQUEST___CWD, "%s", s.cwd);
  if (s.have_user) F(HELPER_REQUEST___USER), proto_put(&o, "%u:%u", (unsigned)s.uid, (unsigned)s.gid);
  if (s.tty) F(HELPER_REQUEST___TTY);
  if (s.started_fd) FV(HELPER_REQUEST___STARTED_FD, "%d", s.started_fd);
  for (int i = 0; i < s.ninit_args; i++) FV(HELPER_REQUEST___INIT_ARG, "%s", s.init_args[i]);
  for (int i = 0; i < s.ninit_envs; i++) FV(HELPER_REQUEST___INIT_ENV, "%s", s.init_envs[i]);
  if (s.guest_init) FV(HELPER_REQUEST___GUEST_INIT, "%s", s.guest_init);
  if (s.run_tmpfs) FV(HELPER_REQUEST___RUN_TMPFS, "%llu", s.run_tmpfs);
  if (s.log_prog) FV(HELPER_REQUEST___LOG_PROG, "%s", s.log_prog);
  for (int i = 0; i < s.nlog_args; i++) FV(HELPER_REQUEST___LOG_ARG, "%s", s.log_args[i]);
  for (int i = 0; i < s.nbinds; i++) {
    const struct bind_req *b = &s.binds[i];
    F(HELPER_REQUEST___BIND), proto_put(&o, "%s", b->source), proto_put(&o, "%s", b->target);
    proto_put(&o, "%s", b->mode), proto_put(&o, "%s", b->kind);
  }
  if (s.cmd) {
    proto_put(&o, "--");
    for (char **c = s.cmd; *c; c++) proto_put(&o, "%s", *c);
  }
#undef F
#undef FV
  proto_end(&o);
  return 0;
}

/* ------------------------------------------------- shared small helpers */

/* Move the calling process into every cgroup of the context. */
/*
 * A Landlock domain with only scopes (no file or network rules): with
 * LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET the guest cannot connect to abstract
 * unix sockets made outside its domain (the host's, another context's).
 * Needs Linux 6.12 (ABI 6); the runtime checks the ABI before asking.
 */
struct paene_landlock_attr {
  uint64_t handled_access_fs, handled_access_net, scoped;
};
static void apply_landlock(const struct spec *s) {
  if (!s->landlock_scoped) return;
  struct paene_landlock_attr attr = {0, 0, s->landlock_scoped};
  long fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (fd < 0) die("landlock_create_ruleset: %s", strerror(errno));
  if (syscall(SYS_landlock_restrict_self, (int)fd, 0) != 0) die("landlock_restrict_self: %s", strerror(errno));
  close((int)fd);
}

/* struct sched_attr (include/uapi/linux/sched/types.h); sched_runtime is the custom slice of a fair task (6.12+). */
struct paene_sched_attr {
  uint32_t size, sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
  uint32_t sched_util_min, sched_util_max;
};
static int set_sched(pid_t pid, uint32_t policy, uint64_t slice_ns) {
  struct paene_sched_attr a = {.size = sizeof a, .sched_policy = policy, .sched_runtime = slice_ns};
  return (int)syscall(SYS_sched_setattr, pid, &a, 0);
}
static void apply_sched(const struct spec *s) {
  if (s->have_sched && set_sched(0, s->sched_policy, s->sched_slice_ns) != 0)
    die("sched_setattr(policy %u, slice %llu ns): %s", s->sched_policy, (unsigned long long)s->sched_slice_ns, strerror(errno));
}

/* `paene-helper sched POLICY:SLICE_NS PID...`: a live change of a running context's processes. */
static int sched_main(int argc, char **argv) {
  if (argc < 1) die("sched needs POLICY:SLICE_NS and pids");
  char *end;
  uint32_t policy = (uint32_t)strtoul(argv[0], &end, 10);
  if (*end != ':') die("sched wants POLICY:SLICE_NS");
  uint64_t slice = strtoull(end + 1, NULL, 10);
  int failed = 0;
  for (int i = 1; i < argc; i++) {
    pid_t pid = (pid_t)atoi(argv[i]);
    /* A process that exited meanwhile is not an error. */
    if (set_sched(pid, policy, slice) != 0 && errno != ESRCH) {
      dprintf(2, "sched_setattr %d: %s\n", (int)pid, strerror(errno));
      failed = 1;
    }
  }
  return failed;
}

/* A group that vanished before the join (a racing last destroy removed the shared ones) is told apart: the start can make it again. */
static void join_cgroups(const struct spec *s) {
  for (int i = 0; i < s->ncgroups; i++) {
    int fd = open(s->cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) die_with(HELPER_ERROR_CGROUP_GONE, "%s", s->cgroups[i]);
    if (fd < 0) die("open %s: %s", s->cgroups[i], strerror(errno));
    if (write(fd, "0", 1) != 1) die("write '0' to %s: %s", s->cgroups[i], strerror(errno));
    close(fd);
  }
}

/*
 * A shared context's sock_addr programs. The monitor keeps the last few
 * program sets it loaded (verified, JIT-compiled, with their maps), keyed by
 * the exact program bytes: the programs are the same for every context of a
 * root with as many own addresses, which they read from the cgroup storage
 * value each start writes. Closing an evicted set's fds only drops the
 * monitor's references: the cgroups it is attached to keep theirs.
 */
#define SOCK_SETS 8
static struct {
  char *key; /* the program list, the cg-storage value replaced by its size; NULL: free slot */
  size_t keylen;
  struct sa_set set;
  unsigned long used;
} sock_sets[SOCK_SETS];
static unsigned long sock_clock;
/* The set the start being handled attaches (the handler is a fork of the monitor, which found or loaded it). */
static const struct sa_set *start_set;

/* The --bpf-prog values of a request, in order (at most max); their count, or -1 when there are more. */
static int bpf_args(int argc, char **argv, char **out, int max) {
  int n = 0;
  for (int i = 0; i + 1 < argc; i++) {
    if (strcmp(argv[i], "--bpf-prog")) continue;
    if (n == max) return -1;
    out[n++] = argv[++i];
  }
  return n;
}

/* The hex value of a cg-storage=HEX argument (its key from src/proto/sock-attach.ts), or NULL for another argument. */
static const char *cg_storage_hex(const char *arg) {
  const size_t p = strlen(SOCK_ATTACH_CG_STORAGE);
  return strncmp(arg, SOCK_ATTACH_CG_STORAGE, p) ? NULL : arg + p;
}

/* One argument's part of a cache key (the cg-storage value only by its size, after a '#') written at out; its length. */
static size_t key_part(const char *arg, char *out) {
  const char *hex = cg_storage_hex(arg);
  if (hex) return (size_t)sprintf(out, SOCK_ATTACH_CG_STORAGE "#%zu\n", strlen(hex) / 2);
  return (size_t)sprintf(out, "%s\n", arg);
}

/* Is this the key the arguments make? (compares without building it) */
static int key_matches(const char *key, size_t keylen, char **progs, int n) {
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    if (cg_storage_hex(progs[i])) {
      char part[40];
      size_t l = key_part(progs[i], part);
      if (at + l > keylen || memcmp(key + at, part, l)) return 0;
      at += l;
    } else {
      size_t l = strlen(progs[i]);
      if (at + l + 1 > keylen || memcmp(key + at, progs[i], l) || key[at + l] != '\n') return 0;
      at += l + 1;
    }
  }
  return at == keylen;
}

/*
 * The monitor, before it forks a start's handler: finds the request's
 * program set in the cache, or loads it there. 0, or -1 after answering the
 * requester with the error.
 */
static int prepare_sock_set(int conn, int argc, char **argv) {
  char *progs[MAX_PROGS + 4]; /* the map options (sk-storage, cg-storage, addr-set4, addr-set6) and the programs */
  int n = bpf_args(argc, argv, progs, MAX_PROGS + 4);
  start_set = NULL;
  if (n == 0) return 0;
  if (n < 0) {
    reply_err(conn, HELPER_ERROR_FAILED, "more than %d --bpf-prog arguments", MAX_PROGS + 4);
    return -1;
  }
  const char *dir = "the context's cgroup";
  for (int i = 0; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--bpf-cgroup")) dir = argv[i + 1];
  /* Found by reading only: right after a fork every page the monitor writes is a copy-on-write fault. */
  int lru = 0;
  for (int i = 0; i < SOCK_SETS; i++) {
    if (sock_sets[i].key && key_matches(sock_sets[i].key, sock_sets[i].keylen, progs, n)) {
      sock_sets[i].used = ++sock_clock;
      start_set = &sock_sets[i].set;
      return 0;
    }
    if (!sock_sets[i].key || (sock_sets[lru].key && sock_sets[i].used < sock_sets[lru].used)) lru = i;
  }
  size_t len = 0;
  for (int i = 0; i < n; i++) len += strlen(progs[i]) + 24;
  char *key = malloc(len + 1);
  if (!key) {
    reply_err(conn, HELPER_ERROR_FAILED, "out of memory");
    return -1;
  }
  size_t at = 0;
  for (int i = 0; i < n; i++) at += key_part(progs[i], key + at);
  static struct sa_err e;
  struct sa_set fresh;
  if (sa_parse(&fresh, n, progs, &e) < 0 || sa_load(&fresh, &e) < 0) {
    free(key);
    for (char *c = e.msg; *c; c++)
      if (*c == '\n') *c = ' '; /* one answer line */
    reply_err(conn, HELPER_ERROR_FAILED, "attaching the network programs to %s: %.3000s", dir, e.msg);
    return -1;
  }
  if (sock_sets[lru].key) {
    free(sock_sets[lru].key);
    sa_close(&sock_sets[lru].set);
  }
  free(fresh.value); /* each start brings its own */
  fresh.value = NULL;
  sock_sets[lru].key = key;
  sock_sets[lru].keylen = at;
  sock_sets[lru].set = fresh;
  sock_sets[lru].used = ++sock_clock;
  start_set = &sock_sets[lru].set;
  return 0;
}

/*
 * The handler: the monitor's loaded set onto the context's cgroup v2
 * directory and the context's storage value written, before the init joins
 * it (no socket of the context ever exists unwalled).
 */
static void attach_sock_programs(const struct spec *s) {
  if (!s->bpf_cgroup) return;
  if (!start_set) die("attaching the network programs to %s: the monitor has no programs for it", s->bpf_cgroup);
  unsigned char *value = NULL;
  size_t len = 0;
  for (int i = 0; i < s->nbpf_progs; i++)
    if (cg_storage_hex(s->bpf_progs[i])) value = sa_unhex(cg_storage_hex(s->bpf_progs[i]), &len);
  if (start_set->cg_bytes && (!value || len != start_set->cg_bytes))
    die("attaching the network programs to %s: the cgroup storage value is missing or not %u bytes", s->bpf_cgroup, start_set->cg_bytes);
  static struct sa_err e;
  if (sa_attach(s->bpf_cgroup, start_set, value, 1, &e) < 0) { /* a start: a failed one removes the cgroup, nothing to put back */
    for (char *c = e.msg; *c; c++)
      if (*c == '\n') *c = ' ';
    die("attaching the network programs to %s: %s", s->bpf_cgroup, e.msg);
  }
  free(value);
}

/* Brings up the loopback of the network namespace this process is in (a new one: mode none). */
static void bring_lo_up(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket: %s", strerror(errno));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) die("get the flags of lo: %s", strerror(errno));
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) die("bring lo up: %s", strerror(errno));
  close(sock);
}

static void load_seccomp(const struct spec *s) { load_seccomp_filter(s->seccomp, s->seccomp ? s->seccomp_len : 0); }

/*
 * Bounding set first (needs CAP_SETPCAP, which we still hold), then the
 * effective/permitted/inheritable sets, then ambient so a non-setuid exec by
 * root keeps exactly the mask.  A non-root user gets no capabilities at all.
 */
static void drop_caps(const struct spec *s_in, int lastcap) {
  if (!s_in->have_caps) return;
  /* A context can never get more than the host gave us (e.g. a host root without SYS_RESOURCE). */
  struct spec copy = *s_in;
  const struct spec *s = &copy;
  {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct cur[2];
    if (syscall(SYS_capget, &h, cur) != 0) die("capget: %s", strerror(errno));
    copy.caps &= ((uint64_t)cur[1].permitted << 32) | cur[0].permitted;
  }
  for (int c = 0; c <= lastcap; c++) {
    if (!(s->caps & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
      die("drop capability %d from the bounding set: %s", c, strerror(errno));
  }
  if (s->have_user) {
    if (setgroups(0, NULL) != 0) die("setgroups: %s", strerror(errno));
    if (setgid(s->gid) != 0) die("setgid %u: %s", s->gid, strerror(errno));
    if (setuid(s->uid) != 0) die("setuid %u: %s", s->uid, strerror(errno));
    if (s->uid != 0) return; /* the uid change cleared every set */
  }
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  for (int i = 0; i < 2; i++) {
    uint32_t part = (uint32_t)(s->caps >> (32 * i));
    data[i].effective = data[i].permitted = data[i].inheritable = part;
  }
  if (syscall(SYS_capset, &hdr, data) != 0) die("capset: %s", strerror(errno));
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (int c = 0; c <= lastcap; c++) {
    if ((s->caps & (1ULL << c)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0)
      die("raise ambient capability %d: %s", c, strerror(errno));
  }
}

/* stdin, stdout and stderr to /dev/null (of whatever root we are in now). */
static void stdio_to_null(void) {
  int nul = open("/dev/null", O_RDWR);
  if (nul < 0) return;
  dup2(nul, 0);
  dup2(nul, 1);
  dup2(nul, 2);
  if (nul > 2) close(nul);
}

static void close_fds_from(int lowest) {
  if (syscall(SYS_close_range, lowest, ~0U, 0) == 0) return;
  for (int fd = lowest; fd < 1024; fd++) close(fd);
}

/* ------------------------------------------------------ context setup */

/*
 * Binds a path onto itself and remounts the bind with `flags` (MS_RDONLY for
 * a read-only path, none for a writable hole in one). Returns -1 with errno
 * set when the first bind fails (the caller decides whether a missing path
 * matters); dies when the remount does.
 */
static int rebind_path(const char *p, unsigned long bind_flags, unsigned long flags) {
  if (mount(p, p, NULL, MS_BIND | bind_flags, NULL) < 0) return -1;
  if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | bind_flags | flags, NULL) < 0) die("remount %s: %s", p, strerror(errno));
  return 0;
}

static void mountx(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  if (mount(src, dst, type, flags, data) != 0)
    die("mount %s on %s (%s): %s", src ? src : "none", dst, type ? type : "bind", strerror(errno));
}

static void path_in(char *out, size_t n, const char *root, const char *rel) {
  if (snprintf(out, n, "%s/%s", root, rel[0] == '/' ? rel + 1 : rel) >= (int)n) die("path too long: %s", rel);
}

static void make_dev(const char *root, const char *name, mode_t mode, unsigned maj, unsigned min) {
  char p[4096];
  path_in(p, sizeof p, root, name);
  if (mknod(p, S_IFCHR | mode, makedev(maj, min)) != 0) die("mknod %s: %s", name, strerror(errno));
  chmod(p, mode); /* mknod obeys the umask */
}

static void make_link(const char *root, const char *target, const char *name) {
  char p[4096];
  path_in(p, sizeof p, root, name);
  if (symlink(target, p) != 0 && errno != EEXIST) die("symlink %s: %s", name, strerror(errno));
}

/*
 * Binds a host directory onto a path of the new root with exactly these
 * flags: a bind mount shares its source's superblock, so the context pays
 * for no filesystem of its own, so no shrinker of its own either.
 */
static void bind_with(const char *src, const char *dst, unsigned long flags) {
  mountx(src, dst, NULL, MS_BIND, NULL);
  mountx(NULL, dst, NULL, MS_BIND | MS_REMOUNT | flags, NULL);
}

static void scratch_path(char *out, size_t n, const struct spec *s, const char *sub) {
  if (snprintf(out, n, "%s/%s", s->scratch, sub) >= (int)n) die("path too long: %s/%s", s->scratch, sub);
}

/*
 * A minimal /dev: the character devices the runtime lists, its own ptys, its
 * own shm. /dev and /dev/shm are directories the runtime made for this
 * context in the host's shared scratch tmpfs; only devpts is a filesystem of
 * the context's own (its ptys must be its own).
 */
static void setup_dev(const struct spec *s, const char *root) {
  char p[4096], src[4096];
  path_in(p, sizeof p, root, "/dev");
  mkdir(p, 0755);
  scratch_path(src, sizeof src, s, "dev");
  bind_with(src, p, MS_NOSUID | MS_NOEXEC);
  for (int i = 0; i < s->ndevs; i++) {
    char name[256];
    unsigned maj, min, mode;
    if (sscanf(s->devs[i], "%255[^:]:%u:%u:%o", name, &maj, &min, &mode) != 4) die("bad --dev '%s'", s->devs[i]);
    make_dev(root, name, (mode_t)mode, maj, min);
  }
  path_in(p, sizeof p, root, "/dev/pts");
  mkdir(p, 0755);
  mountx("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  make_link(root, "pts/ptmx", "/dev/ptmx");
  path_in(p, sizeof p, root, "/dev/shm");
  mkdir(p, 01777);
  scratch_path(src, sizeof src, s, "shm");
  bind_with(src, p, MS_NOSUID | MS_NODEV);
  make_link(root, "/proc/self/fd", "/dev/fd");
  make_link(root, "/proc/self/fd/0", "/dev/stdin");
  make_link(root, "/proc/self/fd/1", "/dev/stdout");
  make_link(root, "/proc/self/fd/2", "/dev/stderr");
}

static void ensure_dir(const char *root, const char *rel, mode_t mode) {
  char p[4096];
  path_in(p, sizeof p, root, rel);
  if (mkdir(p, mode) != 0 && errno != EEXIST) die("mkdir %s: %s", rel, strerror(errno));
}

/* /proc/sys/kernel/shmmax etc.: IPC sysctls are per IPC namespace. */
static void apply_sysctls(const struct spec *s, const char *root) {
  for (int i = 0; i < s->nsysctls; i++) {
    char key[256], p[4096];
    const char *eq = strchr(s->sysctls[i], '=');
    if (!eq || eq - s->sysctls[i] >= (long)sizeof key) die("bad sysctl '%s'", s->sysctls[i]);
    memcpy(key, s->sysctls[i], eq - s->sysctls[i]);
    key[eq - s->sysctls[i]] = 0;
    for (char *c = key; *c; c++)
      if (*c == '.') *c = '/';
    snprintf(p, sizeof p, "%s/proc/sys/%s", root, key);
    write_file(p, eq + 1);
  }
}

/*
 * Hide a file or directory of the guest's /proc or /sys, as runc does: a
 * directory under a read-only bind of the runtime's one empty directory (not
 * a tmpfs each: every superblock costs every memory cgroup on the host), a
 * file under /dev/null.
 */
static void mask_path(const struct spec *s, const char *root, const char *rel) {
  char p[4096];
  struct stat st;
  path_in(p, sizeof p, root, rel);
  if (lstat(p, &st) != 0) return; /* nothing to hide */
  if (S_ISDIR(st.st_mode))
    bind_with(s->empty, p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
  else
    mountx("/dev/null", p, NULL, MS_BIND, NULL);
}

static void readonly_path(const char *root, const char *rel) {
  char p[4096];
  struct stat st;
  path_in(p, sizeof p, root, rel);
  if (lstat(p, &st) != 0) return;
  if (rebind_path(p, MS_REC, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0) die("mount %s on %s (bind): %s", p, p, strerror(errno));
}

/* A writable hole in a read-only path (e.g. /proc/sys/kernel/hostname for the SET_UTSNAME ccap). */
static void writable_path(const char *root, const char *rel) {
  char p[4096];
  struct stat st;
  path_in(p, sizeof p, root, rel);
  if (lstat(p, &st) != 0) die("cannot make %s writable: it does not exist", rel);
  if (rebind_path(p, 0, MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0) die("mount %s on %s (bind): %s", p, p, strerror(errno));
}

/*
 * The staging namespace: how a context's root becomes its namespace's root
 * without pivot_root for each start.  pivot_root walks every task on the host
 * under the task list lock (it moves any whose root or cwd is the old root):
 * ~5 ms a start at 20,000 processes, and growing with them.  So the monitor
 * pays it once: it makes a mount namespace whose whole tree is an empty
 * read-only tmpfs (make_stage) and keeps it open.  A context's init builds its
 * tree as before in a copy of the host's namespace, clones the tree
 * (open_tree), joins the staging namespace and unshares a copy of it (two
 * mounts), attaches the clone on the copy's root and chroots into it.  That
 * is what pivot_root left: the context's root is the topmost mount of its
 * namespace and every mount beneath is stacked root on root (".." cannot
 * leave it, as escape-probe's chroot breakout checks), and no mount of the
 * host is in the namespace or pinned by it.  Kernels before 5.2 (no
 * open_tree) and a failed make_stage keep pivot_root; the monitor's
 * `root-switch` request says which, and why.  An init whose clone or join
 * is refused all the same pivots too: a slower start, not a failed one.
 */
static int stage_fd = -1; /* the staging namespace (nsfs), or -1: pivot_root */
static char stage_why[256] = "not made yet";

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* Called by the monitor before it serves: sets stage_fd, or stage_why. */
static void make_stage(void) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    snprintf(stage_why, sizeof stage_why, "pipe: %s", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    const char *step = "unshare";
    int ok = unshare(CLONE_NEWNS) == 0;
    if (ok) step = "make / private", ok = mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
    /* any directory will do as the mount point: only this namespace sees it */
    if (ok)
      step = "mount tmpfs",
      ok = mount("paene-stage", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=4,mode=0555") == 0;
    if (ok) step = "chdir", ok = chdir("/proc") == 0;
    if (ok) step = "pivot_root", ok = syscall(SYS_pivot_root, ".", ".") == 0;
    if (ok) step = "detach old root", ok = umount2(".", MNT_DETACH) == 0;
    if (ok) step = "chdir /", ok = chdir("/") == 0;
    /* the init's way in: a clone of a tree, attached on the root */
    int t = ok ? (int)syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC) : -1;
    if (ok) step = "open_tree", ok = t >= 0;
    if (ok) close(t);
    if (ok)
      dprintf(pfd[1], "ok\n");
    else
      dprintf(pfd[1], "%s: %s\n", step, strerror(errno));
    pause(); /* until the monitor has opened our namespace */
    _exit(0);
  }
  close(pfd[1]);
  if (pid < 0) {
    snprintf(stage_why, sizeof stage_why, "fork: %s", strerror(errno));
    close(pfd[0]);
    return;
  }
  char buf[200];
  ssize_t n = read(pfd[0], buf, sizeof buf - 1);
  close(pfd[0]);
  buf[n > 0 ? n : 0] = 0;
  if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
  if (!strcmp(buf, "ok")) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/mnt", (int)pid);
    stage_fd = open(p, O_RDONLY | O_CLOEXEC);
    if (stage_fd < 0) snprintf(stage_why, sizeof stage_why, "open %s: %s", p, strerror(errno));
  } else {
    snprintf(stage_why, sizeof stage_why, "%s", n > 0 ? buf : "the staging process died");
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/*
 * In the init, at the end of setup_context (cwd: the new root): into a copy
 * of the staging namespace, root on top.  -1 if the clone or the join was
 * refused (a security module, an outer seccomp filter): nothing has changed
 * then, and the caller pivots instead.
 */
static int enter_stage(const char *root) {
  int t = (int)syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (t < 0) return -1;
  if (setns(stage_fd, CLONE_NEWNS) != 0) {
    close(t);
    return -1;
  }
  close(stage_fd);
  stage_fd = -1;
  if (unshare(CLONE_NEWNS) != 0) die("unshare (copy of the staging namespace): %s", strerror(errno));
  if (syscall(SYS_move_mount, t, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) != 0) die("move_mount %s onto /: %s", root, strerror(errno));
  if (fchdir(t) != 0 || chroot(".") != 0) die("chroot into %s: %s", root, strerror(errno));
  close(t);
  return 0;
}

/*
 * Runs as pid 1 of the new pid namespace, in the new mount/uts/ipc namespaces.
 * Builds the root and makes it the root of a namespace that holds nothing
 * else of the host's (enter_stage, or pivot_root): the host tree is gone from
 * it, not merely hidden behind a chroot.
 */
static void setup_context(const struct spec *s) {
  char opts[8192], p[4096];
  const char *root = s->rootfs;
  if (!root || !s->lower || !s->upper || !s->work || !s->scratch || !s->empty)
    die("start needs --lower, --upper, --work, --rootfs, --scratch and --empty");

  mountx(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  if (snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", s->lower, s->upper, s->work) >= (int)sizeof opts)
    die("overlay options too long");
  mountx("paene", root, "overlay", 0, opts);

  ensure_dir(root, "/proc", 0555);
  path_in(p, sizeof p, root, "/proc");
  mountx("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  apply_sysctls(s, root);

  ensure_dir(root, "/sys", 0555);
  path_in(p, sizeof p, root, "/sys");
  mountx("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

  setup_dev(s, root);

  ensure_dir(root, "/tmp", 01777);
  path_in(p, sizeof p, root, "/tmp");
  char src[4096];
  scratch_path(src, sizeof src, s, "tmp");
  bind_with(src, p, MS_NOSUID | MS_NODEV);

  if (s->run_tmpfs) {
    ensure_dir(root, "/run", 0755);
    path_in(p, sizeof p, root, "/run");
    char o[64];
    snprintf(o, sizeof o, "mode=755,size=%llu", s->run_tmpfs);
    mountx("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, o);
  }

  /* after the runtime's own mounts (a bind may not land in them), before masks and the root switch */
  char berr[1024];
  if (binds_apply(root, s->run_tmpfs ? "run" : NULL, s->binds, s->nbinds, berr, sizeof berr) != 0)
    die_with(HELPER_ERROR_BIND_REFUSED, "%s", berr);

  for (int i = 0; i < s->nmasks; i++) mask_path(s, root, s->masks[i]);
  for (int i = 0; i < s->nros; i++) readonly_path(root, s->ros[i]);
  for (int i = 0; i < s->nrws; i++) writable_path(root, s->rws[i]);

  if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) != 0) die("sethostname: %s", strerror(errno));

  if (chdir(root) != 0) die("chdir %s: %s", root, strerror(errno));
  if (stage_fd < 0 || enter_stage(root) != 0) {
    /* pivot_root(".", "."): the old root ends up stacked on the new one; detach it. */
    if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root: %s", strerror(errno));
    if (umount2(".", MNT_DETACH) != 0) die("detach old root: %s", strerror(errno));
  }
  if (chdir("/") != 0) die("chdir /: %s", strerror(errno));
}

/* ------------------------------------------------------------- init */

/* The argv area of this process, so the init can show a clean command line. */
static char *argv_area;
static size_t argv_area_len;

/* Overwrite our inherited command line (the monitor's, which names host paths). */
static void set_cmdline(const char *name) {
  if (!argv_area) return;
  memset(argv_area, 0, argv_area_len);
  strncpy(argv_area, name, argv_area_len - 1);
}

static volatile sig_atomic_t got_term;
static void on_term(int sig) {
  (void)sig;
  got_term = 1;
}

/*
 * The context's pid 1: reaps every orphan of the context and, on SIGTERM
 * (or SIGINT/SIGPWR), passes SIGTERM to every process of the context and
 * exits once they are gone.  When pid 1 exits the kernel kills whatever is
 * left in the namespace.
 */
static void run_init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGPWR, &sa, NULL);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  int forwarded = 0;
  for (;;) {
    if (got_term && !forwarded) {
      kill(-1, SIGTERM);
      kill(-1, SIGCONT);
      forwarded = 1;
    }
    pid_t r = waitpid(-1, NULL, forwarded ? WNOHANG : 0);
    if (r > 0) continue;
    if (r < 0 && errno == ECHILD) {
      if (forwarded) _exit(0);
      pause(); /* nothing to reap: sleep until a signal (SIGCHLD or SIGTERM) */
      continue;
    }
    if (r == 0) {
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
}

/*
 * Handles one start request in a child of the monitor: enter new namespaces,
 * fork the init, wait for it to report that its root is ready, answer the
 * requester with the init's host pid.
 */
/*
 * The main process's log writer: three pipes (stdout, stderr, events), their
 * read ends handed to paene-log, forked here on the host (outside the
 * context's namespaces and cgroups, in a session of its own, so neither the
 * guest nor the monitor's end stops it; it exits when every write end is
 * closed). The write ends are returned, moved out of the way, for the init.
 */
static void start_logger(const struct spec *s, int conn, int w[3]) {
  int p[3][2];
  for (int i = 0; i < 3; i++)
    if (pipe2(p[i], O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));
  /* A guest init's /dev/console: a FIFO in its /dev, read by the log writer (which holds it open both ways, so a
     guest's open never waits and the writer never sees its end). */
  int console = -1;
  if (s->guest_init) {
    char c[4096];
    scratch_path(c, sizeof c, s, "dev/console");
    unlink(c);
    if (mkfifo(c, 0620) != 0) die("mkfifo %s: %s", c, strerror(errno));
    console = open(c, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (console < 0) die("open %s: %s", c, strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    setsid();
    close(conn);
    signal(SIGCHLD, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int r[3];
    for (int i = 0; i < 3; i++) r[i] = fcntl(p[i][0], F_DUPFD, 100);
    int rc = console >= 0 ? fcntl(console, F_DUPFD, 100) : -1;
    stdio_to_null();
    if (dup2(r[0], LOG_FD_OUT) < 0 || dup2(r[1], LOG_FD_ERR) < 0 || dup2(r[2], LOG_FD_EVENTS) < 0) _exit(126);
    if (rc >= 0 && dup2(rc, LOG_FD_CONSOLE) < 0) _exit(126);
    close_fds_from((rc >= 0 ? LOG_FD_CONSOLE : LOG_FD_EVENTS) + 1);
    const char *largv[MAX_LIST + 2];
    int n = 0;
    largv[n++] = "paene-log";
    for (int i = 0; i < s->nlog_args; i++) largv[n++] = s->log_args[i];
    largv[n] = NULL;
    char *lenv[] = {NULL};
    execve(s->log_prog, (char **)largv, lenv);
    _exit(127);
  }
  if (console >= 0) close(console);
  for (int i = 0; i < 3; i++) {
    close(p[i][0]);
    w[i] = fcntl(p[i][1], F_DUPFD_CLOEXEC, 100);
    if (w[i] < 0) die("dup: %s", strerror(errno));
    close(p[i][1]);
  }
}

static void handle_start(int conn, int argc, char **argv) {
  struct spec s;
  report_fd = conn;
  parse_spec(argc, argv, &s);
  int lastcap = last_cap();
  /* A main process: its log writer first, so nothing it prints before the first read is lost. */
  int logw[3] = {-1, -1, -1};
  if (s.ninit_args > 0 && !s.init_path && !s.guest_init) die("a main process needs --init");
  if (s.log_prog) start_logger(&s, conn, logw);
  attach_sock_programs(&s);
  join_cgroups(&s);
  /* After joining the cgroups: the cgroup namespace makes them the guest's "/". */
  int nsflags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWCGROUP;
  int new_net = s.netns && !strcmp(s.netns, "new");
  if (new_net) nsflags |= CLONE_NEWNET;
  if (unshare(nsflags) != 0) die("unshare: %s", strerror(errno));
  if (s.lo_up) {
    if (!new_net) die("--lo-up needs --netns new");
    bring_lo_up();
  }
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));
  pid_t child = fork();
  if (child < 0) die("fork: %s", strerror(errno));
  if (child == 0) {
    close(pipefd[0]);
    report_fd = pipefd[1];
    close(conn);
    setsid();
    signal(SIGCHLD, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /*
     * The init program is opened before the switch into the context's root hides the host tree,
     * and runs from a sealed copy: the context's /proc/1/exe never leads to the host's file.
     */
    int init_fd = -1;
    if (s.init_path) {
      int f = open(s.init_path, O_RDONLY | O_CLOEXEC);
      if (f < 0) die("open %s: %s", s.init_path, strerror(errno));
      init_fd = sealed_copy(f, "paene-init", 1);
      close(f);
    }
    setup_context(&s);
    apply_sched(&s);
    apply_landlock(&s);
    load_seccomp(&s);
    drop_caps(&s, lastcap);
    prctl(PR_SET_NAME, s.init_name ? s.init_name : "paene-init", 0, 0, 0);
    set_cmdline(s.init_name ? s.init_name : "paene-init");
    stdio_to_null();
    if (s.guest_init) {
      /* The guest's own init as pid 1: its stdout and stderr on the log pipes (its console), run from the guest's root.
         No "ok" before the exec: the report pipe closes on a successful exec (the handler takes that as ready), and
         carries the error of a failed one. */
      int gfd = open(s.guest_init, O_PATH | O_CLOEXEC);
      if (gfd < 0) die("the guest's init %s: %s", s.guest_init, strerror(errno));
      if (logw[0] >= 0 && (dup2(logw[0], 1) < 0 || dup2(logw[1], 2) < 0)) die("dup: %s", strerror(errno));
      static char *gargv[MAX_WORDS + 2], *genv[MAX_WORDS + 1];
      const char *base = strrchr(s.guest_init, '/');
      int n = 0;
      gargv[n++] = (char *)(base ? base + 1 : s.guest_init);
      for (int i = 0; i < s.ninit_args; i++) gargv[n++] = (char *)s.init_args[i];
      gargv[n] = NULL;
      for (int i = 0; i < s.ninit_envs; i++) genv[i] = (char *)s.init_envs[i];
      genv[s.ninit_envs] = NULL;
      if (syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) != 0) die("close_range: %s", strerror(errno));
      syscall(SYS_execveat, gfd, "", gargv, genv, AT_EMPTY_PATH);
      die("exec the guest's init %s: %s", s.guest_init, strerror(errno));
    }
    if (write(pipefd[1], "ok\n", 3) != 3) _exit(125);
    if (init_fd >= 0) {
      /* Become the small init (no copy of the monitor's memory kept alive); if that fails, be it ourselves. */
      if (dup2(init_fd, 3) == 3) {
        int keep = 4;
        if (logw[0] >= 0) {
          /* the log pipes' write ends, where the init plan's reader expects them */
          if (dup2(logw[0], INIT_FD_OUT) < 0 || dup2(logw[1], INIT_FD_ERR) < 0 || dup2(logw[2], INIT_FD_EVENTS) < 0) _exit(125);
          keep = INIT_FD_EVENTS + 1;
        }
        close_fds_from(keep);
        fcntl(3, F_SETFD, FD_CLOEXEC); /* the copy is not left open in the init */
        static char *iargv[MAX_WORDS + 2], *ienv[MAX_WORDS + 1];
        int n = 0;
        iargv[n++] = (char *)(s.init_name ? s.init_name : "paene-init");
        for (int i = 0; i < s.ninit_args; i++) iargv[n++] = (char *)s.init_args[i];
        iargv[n] = NULL;
        for (int i = 0; i < s.ninit_envs; i++) ienv[i] = (char *)s.init_envs[i];
        ienv[s.ninit_envs] = NULL;
        syscall(SYS_execveat, 3, "", iargv, ienv, AT_EMPTY_PATH);
      }
    }
    close_fds_from(3);
    run_init();
  }
  close(pipefd[1]);
  if (logw[2] >= 0) {
    /* the log writer ends with the init (a guest init may close every pipe it was given) */
    char ev[64];
    int len = snprintf(ev, sizeof ev, "%s%c%d%c", main_event_keys[MAIN_EVENT_INIT].name, 0, (int)child, 0);
    if (write(logw[2], ev, (size_t)len) != len) { /* the log writer is gone: the context runs without its log */
    }
    for (int i = 0; i < 3; i++) close(logw[i]);
  }
  char buf[1024];
  ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  if (n == 0 && s.guest_init && waitpid(child, NULL, WNOHANG) == 0) {
    dprintf(conn, "ok %d\n", (int)child); /* the guest's init was executed */
    _exit(0);
  }
  if (n <= 0) {
    waitpid(child, NULL, 0);
    die("context init exited before it was ready");
  }
  buf[n] = 0;
  if (strncmp(buf, "ok\n", 3) != 0) {
    waitpid(child, NULL, 0);
    dprintf(conn, "%s", buf); /* the init's own "err ..." line */
    _exit(125);
  }
  dprintf(conn, "ok %d\n", (int)child);
  _exit(0);
}

/* ---------------------------------------------------------- monitor */

static int read_request(int conn, char *buf, size_t cap, char **argv, int maxargs) {
  size_t len = 0;
  /* The request is argv as NUL-terminated strings, ended by an empty string. */
  for (;;) {
    if (len >= cap) return -1;
    ssize_t n = read(conn, buf + len, cap - len);
    if (n <= 0) return -1;
    len += (size_t)n;
    if (len >= 2 && buf[len - 1] == 0 && buf[len - 2] == 0) break;
    if (len == 1 && buf[0] == 0) break;
  }
  int argc = 0;
  size_t i = 0;
  while (i < len && buf[i] != 0) {
    if (argc >= maxargs) return -1;
    argv[argc++] = buf + i;
    i += strlen(buf + i) + 1;
  }
  argv[argc] = NULL;
  return argc;
}

/* ---------------------------------------------------------- watcher */

/*
 * The fork back-off runs in a process of its own, the watcher, not in the
 * monitor: it holds one open pids.events and a guard's state per context
 * and reads them in a pass each second. In the monitor, at 10,000 contexts,
 * that made every fork of a start handler copy 10,000 descriptors and the
 * guards' memory (and close and copy-on-write them again), and a start
 * request waited behind a pass. The monitor hands it `guard` and
 * `guard-status` requests with the client's connection (SCM_RIGHTS), which
 * the watcher answers, and tells it each pid it reaps, in order on one
 * SOCK_SEQPACKET pair. It is made before the monitor becomes a subreaper, so
 * it is not the monitor's child (the monitor exits when it has none), and it
 * exits when the monitor's end closes. If it is gone, the monitor runs the
 * guards itself, as before.
 */
static int watcher_fd = -1; /* the monitor's end; -1: no watcher, the back-off runs in the monitor */

/* A request (NUL-separated words ended by an empty one) with an open descriptor or -1; -1 if it could not go. */
static int send_with_fd(int s, const char *buf, size_t len, int fd) {
  struct iovec iov = {(void *)buf, len};
  union {
    char b[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (fd >= 0) {
    memset(&ctl, 0, sizeof ctl);
    m.msg_control = ctl.b;
    m.msg_controllen = sizeof ctl.b;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do n = sendmsg(s, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == (ssize_t)len ? 0 : -1;
}

/* Hands a request to the watcher; 0 if it took it (it answers conn, if any). */
static int to_watcher(const char *buf, size_t len, int conn) {
  if (watcher_fd < 0) return -1;
  if (send_with_fd(watcher_fd, buf, len, conn) == 0) return 0;
  close(watcher_fd); /* gone: from now on the monitor guards */
  watcher_fd = -1;
  return -1;
}

/* A child was reaped: its guard (if any) goes. */
static void reaped(pid_t pid) {
  char msg[32];
  int n = snprintf(msg, sizeof msg, "reaped%c%d%c%c", 0, (int)pid, 0, 0);
  if (to_watcher(msg, (size_t)n, -1) != 0) backoff_reaped(pid);
}

static void watcher_main(int s) {
  prctl(PR_SET_NAME, "paene-watcher", 0, 0, 0);
  backoff_raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  static char buf[65536];
  char *argv[1024];
  for (;;) {
    struct pollfd p = {s, POLLIN, 0};
    if (poll(&p, 1, backoff_tick(1000)) < 0 && errno != EINTR) _exit(1);
    if (!p.revents) continue;
    union {
      char b[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } ctl;
    struct iovec iov = {buf, sizeof buf - 2};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.b;
    m.msg_controllen = sizeof ctl.b;
    ssize_t n = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0); /* the monitor is gone */
    int conn = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&conn, CMSG_DATA(c), sizeof conn);
    buf[n] = buf[n + 1] = 0;
    int argc = 0;
    for (char *w = buf; *w && argc < 1023; w += strlen(w) + 1) argv[argc++] = w;
    argv[argc] = NULL;
    if (argc == 2 && !strcmp(argv[0], "reaped"))
      backoff_reaped((pid_t)atoi(argv[1]));
    else if (argc >= 1 && conn >= 0 && !strcmp(argv[0], "guard"))
      backoff_request(conn, argc - 1, argv + 1);
    else if (argc >= 1 && conn >= 0 && !strcmp(argv[0], "guard-status"))
      backoff_status(conn, argc - 1, argv + 1);
    if (conn >= 0) close(conn);
  }
}

/* Starts the watcher as a grandchild (so not our child once its parent exits); the monitor's end, or -1. */
static int start_watcher(int lock) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  pid_t mid = fork();
  if (mid == 0) {
    close(sv[0]);
    close(lock); /* the monitor's single-instance lock is the monitor's alone */
    setsid();
    if (fork() == 0) {
      stdio_to_null();
      if (sv[1] != 3 && dup2(sv[1], 3) != 3) _exit(1);
      close_fds_from(4);
      watcher_main(3);
    }
    _exit(0);
  }
  close(sv[1]);
  if (mid < 0 || waitpid(mid, NULL, 0) != mid) {
    close(sv[0]);
    return -1;
  }
  return sv[0];
}

/* Any child left, running or not yet reaped?  (Inits re-parent to us: we are a subreaper.) */
static int has_children(void) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static int monitor_main(int argc, char **argv) {
  const char *dir = NULL;
  int idle = 30;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--dir"))
      dir = argv[i + 1];
    else if (!strcmp(argv[i], "--idle"))
      idle = atoi(argv[i + 1]);
  }
  if (!dir) die("monitor needs --dir");
  char lockpath[4096], sockpath[108];
  snprintf(lockpath, sizeof lockpath, "%s/monitor.lock", dir);
  if (snprintf(sockpath, sizeof sockpath, "%s/monitor.sock", dir) >= (int)sizeof sockpath)
    die("state root path too long for a unix socket: %s", dir);

  int lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) die("open %s: %s", lockpath, strerror(errno));
  if (flock(lock, LOCK_EX | LOCK_NB) != 0) return 0; /* another monitor serves this root */

  watcher_fd = start_watcher(lock); /* before we are a subreaper: its parent exits, and it must not be ours */
  make_stage();
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) die("subreaper: %s", strerror(errno));
  backoff_raise_nofile(); /* for guards of its own, should the watcher be gone */
  unlink(sockpath);
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, sockpath);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind %s: %s", sockpath, strerror(errno));
  chmod(sockpath, 0600);
  if (listen(ls, 64) != 0) die("listen: %s", strerror(errno));

  /* Tell the spawner we are listening, then detach from its stdio. */
  dprintf(1, "ready\n");
  stdio_to_null();

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);

  time_t idle_since = time(NULL);
  /* A wait for any child walks every child under the kernel's task list lock, which every fork on
     the host needs too: milliseconds at 10,000 contexts. The sweep below makes that walk only after
     a SIGCHLD (or when the monitor might exit), and no more often than keeps it under 0.1% of the time
     (at most every 10 s). */
  double last_sweep = 0, sweep_every = 1000;
  int quitting = 0, sigchld = 0;
  /* a start request carries a main process's command line and environment too */
  static char reqbuf[1 << 20];
  static char *rargv[MAX_WORDS * 2 + 1024];
  for (;;) {
    struct pollfd fds[2] = {{ls, POLLIN, 0}, {sfd, POLLIN, 0}};
    int r = poll(fds, 2, backoff_tick(1000));
    if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP) quitting = 1;
        /* Reap the child that signalled by its pid: a wait for any child walks all of them
           (10,000 inits at 10,000 contexts) under the kernel's task list lock, which every fork
           on the host needs too. */
        if (si.ssi_signo == SIGCHLD) sigchld = 1;
        if (si.ssi_signo == SIGCHLD && si.ssi_pid > 0 && waitpid((pid_t)si.ssi_pid, NULL, WNOHANG) > 0) reaped((pid_t)si.ssi_pid);
      }
    }
    if (fds[0].revents & POLLIN) {
      int conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
      if (conn >= 0) {
        int n = read_request(conn, reqbuf, sizeof reqbuf, rargv, (int)(sizeof rargv / sizeof *rargv) - 1);
        if (n <= 0) {
          reply_err(conn, HELPER_ERROR_MALFORMED, "malformed request");
        } else if (!strcmp(rargv[0], "ping")) {
          dprintf(conn, "ok %d\n", (int)getpid());
        } else if (!strcmp(rargv[0], "root-switch")) {
          if (stage_fd >= 0)
            dprintf(conn, "ok staged\n");
          else
            dprintf(conn, "ok pivot_root %s\n", stage_why);
        } else if (!strcmp(rargv[0], "quit")) {
          quitting = 1;
          last_sweep = 0; /* exit as soon as no child is left */
          dprintf(conn, "ok %d\n", has_children());
        } else if (!strcmp(rargv[0], "guard") || !strcmp(rargv[0], "guard-status")) {
          /* The request's bytes as they came (read_request only split them), for the watcher to answer. */
          size_t len = (size_t)(rargv[n - 1] + strlen(rargv[n - 1]) + 1 - reqbuf) + 1;
          if (to_watcher(reqbuf, len, conn) != 0) {
            if (rargv[0][5] == 0)
              backoff_request(conn, n - 1, rargv + 1);
            else
              backoff_status(conn, n - 1, rargv + 1);
          }
        } else if (!strcmp(rargv[0], "spawn") && n >= 2) {
          /* A host program (e.g. a per-context I/O throttler) as our child, so we reap it. */
          pid_t h = fork();
          if (h == 0) {
            setsid();
            backoff_restore_nofile();
            sigprocmask(SIG_UNBLOCK, &mask, NULL);
            stdio_to_null();
            close_fds_from(3);
            execv(rargv[1], rargv + 1);
            _exit(127);
          }
          if (h > 0)
            dprintf(conn, "ok %d\n", (int)h);
          else
            reply_err(conn, HELPER_ERROR_FAILED, "fork: %s", strerror(errno));
        } else if (!strcmp(rargv[0], "start")) {
          /* A handler of ours owns the connection from here; we go on serving. */
          pid_t h = prepare_sock_set(conn, n - 1, rargv + 1) == 0 ? fork() : -2;
          if (h == 0) {
            close(ls);
            close(sfd);
            close(lock);
            if (watcher_fd >= 0) close(watcher_fd);
            backoff_restore_nofile();
            sigprocmask(SIG_UNBLOCK, &mask, NULL);
            handle_start(conn, n - 1, rargv + 1);
          }
          if (h == -1) reply_err(conn, HELPER_ERROR_FAILED, "fork: %s", strerror(errno));
        } else {
          reply_err(conn, HELPER_ERROR_UNKNOWN_REQUEST, "unknown request '%s'", rargv[0]);
        }
        close(conn);
      }
      idle_since = time(NULL);
    }
    /* Signals of children that exit together merge into one: the sweep reaps those. Its last
       answer says whether any child is left (inits that just exited are not). */
    int might_exit = quitting || (idle > 0 && time(NULL) - idle_since >= idle);
    double now = backoff_now();
    if ((sigchld || might_exit) && now - last_sweep >= sweep_every) {
      pid_t p;
      while ((p = waitpid(-1, NULL, WNOHANG)) > 0) reaped(p);
      int none_left = p < 0 && errno == ECHILD;
      /* 0.1% of the time, between 1 s and 10 s (a sweep that only looked slow, preempted on a busy host,
         must not keep a merged zombie or an idle monitor around for minutes) */
      double took = backoff_now() - now;
      sweep_every = took * 1000 < 1000 ? 1000 : took * 1000 > 10000 ? 10000 : took * 1000;
      last_sweep = backoff_now();
      sigchld = 0;
      if (might_exit && none_left) {
        unlink(sockpath);
        return 0;
      }
    }
  }
}

/* -------------------------------------------------------------- exec */

static void open_ns(pid_t pid, const char *ns, int *fd) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/ns/%s", (int)pid, ns);
  *fd = open(p, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) die("open %s: %s (is the context running?)", p, strerror(errno));
}

static struct termios saved_tio;
static int tio_saved;
static void restore_tty(void) {
  if (tio_saved) tcsetattr(0, TCSADRAIN, &saved_tio);
}

static volatile sig_atomic_t winch;
static void on_winch(int sig) {
  (void)sig;
  winch = 1;
}

static pid_t exec_child = -1;
static void forward_signal(int sig) {
  if (exec_child > 0) kill(exec_child, sig);
}

static int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

/* Copy between our stdio and the pty master until the child is gone. */
static int relay_pty(int master, pid_t child) {
  char buf[8192];
  int status = 0, stdin_open = 1;
  for (;;) {
    if (winch) {
      struct winsize ws;
      winch = 0;
      if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
    }
    struct pollfd fds[2] = {{master, POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    int r = poll(fds, 2, 200);
    if (r < 0 && errno != EINTR) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0) break; /* EIO: the last slave fd closed */
      if (write(1, buf, (size_t)n) < 0) break;
    }
    if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP))) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n <= 0)
        stdin_open = 0;
      else if (write(master, buf, (size_t)n) < 0)
        break;
    }
    if (waitpid(child, &status, WNOHANG) == child) {
      /* drain what is left */
      ssize_t n;
      while ((n = read(master, buf, sizeof buf)) > 0)
        if (write(1, buf, (size_t)n) < 0) break;
      return exit_code(status);
    }
  }
  waitpid(child, &status, 0);
  return exit_code(status);
}

static int exec_main(int argc, char **argv) {
  struct spec s;
  parse_spec(argc, argv, &s);
  /* the requester reads this helper's fatal errors as replies there, until the command has started */
  if (s.started_fd) report_fd = s.started_fd;
  /* the child moves the answer's pipe to fd 3, where a pty's descriptors could be: a detached exec has no tty */
  if (s.started_fd && s.tty) die("--started-fd and --tty do not go together");
  if (s.pid <= 0) die("exec needs --pid");
  if (!s.cmd || !s.cmd[0]) die("exec needs a command after --");
  int lastcap = last_cap();
  int fd_ipc, fd_uts, fd_pid, fd_mnt, fd_cg, fd_net = -1;
  if (s.netns && !strcmp(s.netns, "join")) open_ns(s.pid, "net", &fd_net);
  open_ns(s.pid, "cgroup", &fd_cg);
  open_ns(s.pid, "ipc", &fd_ipc);
  open_ns(s.pid, "uts", &fd_uts);
  open_ns(s.pid, "pid", &fd_pid);
  open_ns(s.pid, "mnt", &fd_mnt);
  join_cgroups(&s);
  if (setns(fd_cg, CLONE_NEWCGROUP) != 0) die("setns cgroup: %s", strerror(errno));
  if (fd_net >= 0 && setns(fd_net, CLONE_NEWNET) != 0) die("setns net: %s", strerror(errno));
  if (setns(fd_ipc, CLONE_NEWIPC) != 0) die("setns ipc: %s", strerror(errno));
  if (setns(fd_uts, CLONE_NEWUTS) != 0) die("setns uts: %s", strerror(errno));
  if (setns(fd_pid, CLONE_NEWPID) != 0) die("setns pid: %s", strerror(errno));
  if (setns(fd_mnt, CLONE_NEWNS) != 0) die("setns mnt: %s", strerror(errno));
  if (fd_net >= 0) close(fd_net);
  close(fd_cg);
  close(fd_ipc);
  close(fd_uts);
  close(fd_pid);
  close(fd_mnt);
  /* setns(mnt) put us on the namespace's topmost root mount: the context's own root. */
  if (chdir(s.cwd ? s.cwd : "/") != 0) die("chdir %s: %s", s.cwd ? s.cwd : "/", strerror(errno));

  int master = -1, slave = -1;
  if (s.tty) {
    master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) die("open the context's /dev/ptmx: %s", strerror(errno));
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) != 0) die("unlock pty: %s", strerror(errno));
    slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0) die("open pty peer: %s", strerror(errno));
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
  }

  /*
   * Drop to the context's privileges *before* forking: the child appears in
   * the context's pid namespace, where guest root (which may hold
   * CAP_SYS_PTRACE) could otherwise attach to a fully privileged process.
   */
  apply_sched(&s);
  apply_landlock(&s);
  load_seccomp(&s);
  drop_caps(&s, lastcap);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  /* --started-fd: the child's execve result comes back on a close-on-exec pipe: EOF once it ran, its errno if not */
  int ran[2] = {-1, -1};
  if (s.started_fd && pipe2(ran, O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));
  pid_t child = fork();
  if (child < 0) die("fork: %s", strerror(errno));
  if (child == 0) {
    report_fd = 2; /* the child's own failures are its stderr's; fd 3 becomes the pipe */
    if (s.started_fd) {
      /* fd 3 is the pipe's write end (close-on-exec); every other fd from 3 up goes below */
      if (ran[1] != 3 && dup3(ran[1], 3, O_CLOEXEC) < 0) _exit(126);
    }
    /* A new session: the host terminal is never the guest's controlling tty (no TIOCSTI). */
    setsid();
    if (s.tty) {
      if (ioctl(slave, TIOCSCTTY, 0) != 0) die("set controlling tty: %s", strerror(errno));
      dup2(slave, 0);
      dup2(slave, 1);
      dup2(slave, 2);
      close(slave);
      close(master);
    }
    close_fds_from(s.started_fd ? 4 : 3);
    char *envp[MAX_LIST + 1];
    for (int i = 0; i < s.nenvs; i++) envp[i] = (char *)s.envs[i];
    envp[s.nenvs] = NULL;
    /* execvpe searches the PATH we pass in the environment. */
    for (int i = 0; i < s.nenvs; i++)
      if (!strncmp(s.envs[i], "PATH=", 5)) setenv("PATH", s.envs[i] + 5, 1);
    execvpe(s.cmd[0], s.cmd, envp);
    int err = errno;
    if (s.started_fd) (void)!write(3, &err, sizeof err);
    dprintf(2, "paene: exec %s: %s\n", s.cmd[0], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }
  exec_child = child;
  if (s.started_fd) {
    close(ran[1]);
    int err = 0;
    ssize_t n;
    while ((n = read(ran[0], &err, sizeof err)) < 0 && errno == EINTR) {}
    close(ran[0]);
    if (n == (ssize_t)sizeof err)
      dprintf(s.started_fd, "err %s exec %s: %s\n", helper_error_names[err == ENOENT ? HELPER_ERROR_NOT_FOUND : HELPER_ERROR_FAILED],
              s.cmd[0], strerror(err));
    else
      dprintf(s.started_fd, "ok %d\n", (int)child);
    close(s.started_fd);
    report_fd = 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGQUIT, &sa, NULL);
  if (!s.tty) sigaction(SIGINT, &sa, NULL);
  int status;
  if (s.tty) {
    close(slave);
    if (isatty(0) && tcgetattr(0, &saved_tio) == 0) {
      struct termios raw = saved_tio;
      cfmakeraw(&raw);
      tio_saved = 1;
      atexit(restore_tty);
      tcsetattr(0, TCSANOW, &raw); /* not FLUSH: keep what was typed ahead */
    }
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, NULL);
    int code = relay_pty(master, child);
    restore_tty();
    return code;
  }
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) die("wait: %s", strerror(errno));
  }
  return exit_code(status);
}

static int sysctl_main(int argc, char **argv) {
  pid_t pid = 0;
  int first = argc;
  for (int i = 0; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--pid")) {
      pid = (pid_t)atoi(argv[i + 1]);
      first = i + 2;
      break;
    }
  }
  if (pid <= 0 || first >= argc) die("usage: sysctl --pid PID KEY=VALUE...");
  int fd_ipc, fd_uts;
  open_ns(pid, "ipc", &fd_ipc);
  open_ns(pid, "uts", &fd_uts);
  if (setns(fd_ipc, CLONE_NEWIPC) != 0) die("setns ipc: %s", strerror(errno));
  if (setns(fd_uts, CLONE_NEWUTS) != 0) die("setns uts: %s", strerror(errno));
  for (int i = first; i < argc; i++) {
    char key[256], p[512];
    const char *eq = strchr(argv[i], '=');
    if (!eq || eq - argv[i] >= (long)sizeof key) die("bad sysctl '%s'", argv[i]);
    memcpy(key, argv[i], eq - argv[i]);
    key[eq - argv[i]] = 0;
    /* the runtime sends only per-context (uts/ipc) sysctls (context/config.ts isPerContextSysctl) */
    for (char *c = key; *c; c++)
      if (*c == '.') *c = '/';
    snprintf(p, sizeof p, "/proc/sys/%s", key);
    write_file(p, eq + 1);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    dprintf(2, "usage: paene-helper monitor|exec ... (internal to paene)\n");
    return 2;
  }
  argv_area = argv[0];
  argv_area_len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
  /* the modes whose processes a guest can see run from a sealed copy, non-dumpable (CVE-2019-5736) */
  if (!strcmp(argv[1], "monitor") || !strcmp(argv[1], "exec")) run_from_sealed_copy(argv, "paene-helper");
  if (!strcmp(argv[1], "monitor")) return monitor_main(argc - 2, argv + 2);
  if (!strcmp(argv[1], "exec")) return exec_main(argc - 2, argv + 2);
  if (!strcmp(argv[1], "sysctl")) return sysctl_main(argc - 2, argv + 2);
  if (!strcmp(argv[1], "echo-request")) return echo_request(argc - 2, argv + 2);
  if (!strcmp(argv[1], "sched")) return sched_main(argc - 2, argv + 2);
  if (!strcmp(argv[1], "landlock-abi")) {
    /* The kernel's Landlock ABI version (0 = none): the runtime decides what it may ask for. */
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */);
    printf("%ld\n", v < 0 ? 0L : v);
    return 0;
  }
  dprintf(2, "paene-helper: unknown mode '%s'\n", argv[1]);
  return 2;
}
