/*
 * paene-runc's native front (built as dist/native/paene-runc; bin/paene-runc
 * links to it).
 *
 * containerd's shim, Docker and Podman call the runtime for every create,
 * start, state, exec, kill and delete; booting Node for each costs about
 * 0.2 s here, three times a whole `runc exec`.  This program hands the call to
 * the state root's warm planner (src/oci/planner.ts, a Node process that keeps
 * the runtime loaded) over ROOT/.planner.sock and does what only the caller's
 * own process may: it runs paene-oci with the caller's stdio, so the
 * container's output goes where the caller's goes and its init re-parents to
 * the caller's subreaper.  The frames are src/proto/planner.ts.
 *
 * It decides nothing.  With no planner (the first call, or one that left when
 * idle) it starts one in the background and hands this call to the Node CLI;
 * so does a call that needs the caller's descriptors or standard input
 * (--preserve-fds, LISTEN_FDS, `-` for a file), and any call of a planner of
 * another build.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "planner_action.h"  /* generated from src/proto/planner.ts */
#include "planner_reply.h"   /* generated from src/proto/planner.ts */
#include "planner_request.h" /* generated from src/proto/planner.ts */

static char self_dir[PATH_MAX];
static char **call_argv;

/* The whole call to the Node CLI (dist/paene-runc.mjs beside dist/native/). */
static void to_node(void) __attribute__((noreturn));
static void to_node(void) {
  static char bundle[PATH_MAX + 32];
  snprintf(bundle, sizeof bundle, "%s/../paene-runc.mjs", self_dir);
  int n = 0;
  while (call_argv[n]) n++;
  char **a = calloc((size_t)n + 3, sizeof *a);
  if (!a) _exit(1);
  a[0] = "node";
  a[1] = bundle;
  for (int i = 1; i < n; i++) a[i + 1] = call_argv[i];
  execvp("node", a);
  dprintf(2, "paene-runc: cannot run node: %s (paene-runc needs Node.js 20 or later on PATH)\n", strerror(errno));
  _exit(127);
}

/* A planner that cannot be understood: the call goes to Node (nothing of it has happened yet). */
static int committed; /* a paene-oci ran: from here on, an error is the call's */
void die(const char *fmt, ...) {
  if (!committed) to_node();
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  dprintf(2, "paene-runc: %s\n", buf);
  _exit(1);
}

/* ---------------------------------------------------------------- frames */

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* A frame of tokens: the length, then the tokens and "end N". */
struct out {
  char *buf;
  size_t len, cap;
  long count;
};
static void put(struct out *o, const char *s) {
  size_t n = strlen(s) + 1;
  if (o->len + n + 64 > o->cap) {
    o->cap = (o->len + n + 64) * 2;
    o->buf = realloc(o->buf, o->cap);
    if (!o->buf) die("out of memory");
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
  o->count++;
}
static void send_frame(int sock, struct out *o) {
  char end[32];
  int n = snprintf(end, sizeof end, "end%c%ld%c", 0, o->count, 0);
  uint32_t len = (uint32_t)(o->len + (size_t)n);
  if (write_all(sock, (char *)&len, 4) || write_all(sock, o->buf, o->len) || write_all(sock, end, (size_t)n)) die("the planner went away");
  o->len = 0;
  o->count = 0;
}

static int read_all(int fd, char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* The next frame's tokens (end marker checked); NULL when the planner closed. */
static char **read_frame(int sock, int *nt) {
  uint32_t len;
  if (read_all(sock, (char *)&len, 4)) return NULL;
  if (len > (256u << 20)) die("a frame of %u bytes from the planner", len);
  char *buf = malloc((size_t)len + 1);
  if (!buf || read_all(sock, buf, len)) die("a cut frame from the planner");
  buf[len] = 0;
  return proto_tokens(buf, len, nt, "planner frame");
}

/* ----------------------------------------------------------- the planner */

/* The build the planner must have: dist/paene-runc.mjs's modification time (ns) and size. */
static void build_id(char *out, size_t n) {
  char bundle[PATH_MAX + 32];
  snprintf(bundle, sizeof bundle, "%s/../paene-runc.mjs", self_dir);
  struct stat st;
  if (stat(bundle, &st) != 0) to_node();
  snprintf(out, n, "%lld%09ld.%lld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_size);
}

/* Starts the root's planner in the background, in a session of its own, with nothing of ours open. */
static void start_planner(const char *root) {
  pid_t p = fork();
  if (p < 0) return;
  if (p > 0) {
    waitpid(p, NULL, 0);
    return;
  }
  setsid();
  if (fork() != 0) _exit(0);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3; fd++) dup2(null, fd);
  if (syscall(SYS_close_range, 3, ~0U, 0) != 0)
    for (int fd = 3; fd < 1024; fd++) close(fd);
  static char bundle[PATH_MAX + 32];
  snprintf(bundle, sizeof bundle, "%s/../paene-runc.mjs", self_dir);
  char *a[] = {"node", bundle, "__planner", (char *)root, NULL};
  execvp("node", a);
  _exit(127);
}

/* -------------------------------------------------------------- paene-oci */

/* Runs paene-oci CMD PLAN 3 with our stdio (stdin fed from `input` if given); *pid, and the sync text. */
static char *spawn_oci(const char *cmd, const char *plan, const char *input, pid_t *pid) {
  int sync[2], in[2] = {-1, -1};
  if (pipe2(sync, O_CLOEXEC) < 0 || (input && pipe2(in, O_CLOEXEC) < 0)) die("pipe: %s", strerror(errno));
  static char oci[PATH_MAX + 32];
  snprintf(oci, sizeof oci, "%s/paene-oci", self_dir);
  committed = 1;
  pid_t p = fork();
  if (p < 0) die("fork: %s", strerror(errno));
  if (p == 0) {
    if (input && dup2(in[0], 0) < 0) _exit(125);
    if (dup2(sync[1], 3) < 0) _exit(125); /* dup2 leaves it open across the exec */
    char *a[] = {oci, (char *)cmd, (char *)plan, "3", NULL};
    execv(oci, a);
    dprintf(3, "err cannot run %s: %s\n", oci, strerror(errno));
    _exit(125);
  }
  *pid = p;
  close(sync[1]);
  if (input) {
    close(in[0]);
    write_all(in[1], input, strlen(input)); /* SIGPIPE is ignored: a hook may exit without reading its state */
    close(in[1]);
  }
  size_t len = 0, cap = 256;
  char *text = malloc(cap);
  if (!text) die("out of memory");
  for (;;) {
    if (len + 128 > cap) {
      cap *= 2;
      text = realloc(text, cap);
      if (!text) die("out of memory");
    }
    ssize_t r = read(sync[0], text + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(sync[0]);
  text[len] = 0;
  for (size_t i = 0; i < len; i++)
    if (!text[i]) text[i] = ' ';
  return text;
}

static int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 125;
}

/* ------------------------------------------------------------------ main */

/* The global --root (runc's: before the verb), or the default. */
static const char *root_of(char **argv) {
  for (int i = 1; argv[i] && argv[i][0] == '-'; i++) {
    const char *a = argv[i] + (argv[i][1] == '-' ? 2 : 1);
    if (!strncmp(a, "root=", 5)) return a + 5;
    if (!strcmp(a, "root")) return argv[i + 1];
    /* the other global flags that take a value */
    if (!strcmp(a, "log") || !strcmp(a, "log-format") || !strcmp(a, "criu") || !strcmp(a, "rootless")) i++;
  }
  return "/run/paene-runc";
}

int main(int argc, char **argv) {
  (void)argc;
  call_argv = argv;
  ssize_t n = readlink("/proc/self/exe", self_dir, sizeof self_dir - 1);
  if (n <= 0) {
    dprintf(2, "paene-runc: cannot find its own program: %s\n", strerror(errno));
    return 1;
  }
  self_dir[n] = 0;
  char *slash = strrchr(self_dir, '/');
  if (slash) *slash = 0;

  /* what needs the caller's own descriptors or input: Node, in this process */
  if (getenv("LISTEN_FDS") || geteuid() != 0) to_node();
  for (int i = 1; argv[i]; i++)
    if (!strcmp(argv[i], "-") || !strncmp(argv[i], "--preserve-fds", 14) || !strncmp(argv[i], "-preserve-fds", 13)) to_node();

  const char *root = root_of(argv);
  if (!root || !*root) to_node();
  char rootabs[2 * PATH_MAX + 2], cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) to_node();
  if (root[0] == '/')
    snprintf(rootabs, sizeof rootabs, "%s", root);
  else
    snprintf(rootabs, sizeof rootabs, "%s/%s", cwd, root);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (snprintf(addr.sun_path, sizeof addr.sun_path, "%s/.planner.sock", rootabs) >= (int)sizeof addr.sun_path) to_node();
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) to_node();
  if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
    start_planner(rootabs); /* for the next call; this one goes to Node */
    to_node();
  }

  struct out o = {0};
  char build[96];
  build_id(build, sizeof build);
  put(&o, planner_request_keys[PLANNER_REQUEST_BUILD].name), put(&o, build);
  put(&o, planner_request_keys[PLANNER_REQUEST_CWD].name), put(&o, cwd);
  for (int i = 1; argv[i]; i++) put(&o, planner_request_keys[PLANNER_REQUEST_ARG].name), put(&o, argv[i]);
  send_frame(sock, &o);

  signal(SIGPIPE, SIG_IGN);
  /* the paene-oci runs whose status the planner waits for (run's create, exec, a hook beside them) */
  struct kid {
    pid_t pid;
    int pidfd;
    char id[32];
  } kids[32];
  int nkids = 0;
  for (;;) {
    struct pollfd pf[33];
    pf[0] = (struct pollfd){.fd = sock, .events = POLLIN};
    int nofd = 0;
    for (int k = 0; k < nkids; k++) {
      pf[1 + k] = (struct pollfd){.fd = kids[k].pidfd, .events = POLLIN};
      if (kids[k].pidfd < 0) nofd = 1;
    }
    /* without pidfds (before Linux 5.3) a kid is looked at every 20 ms */
    int r = poll(pf, (nfds_t)(1 + nkids), nofd ? 20 : -1);
    if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    for (int k = 0; k < nkids;) {
      int st;
      pid_t w = (kids[k].pidfd < 0 || (pf[1 + k].revents & POLLIN)) ? waitpid(kids[k].pid, &st, WNOHANG) : 0;
      if (w != kids[k].pid) {
        k++;
        continue;
      }
      char code[16];
      snprintf(code, sizeof code, "%d", status_code(st));
      put(&o, planner_reply_keys[PLANNER_REPLY_EXITED].name), put(&o, kids[k].id), put(&o, code);
      send_frame(sock, &o);
      if (kids[k].pidfd >= 0) close(kids[k].pidfd);
      kids[k] = kids[--nkids];
      memmove(pf + 1 + k, pf + 2 + k, sizeof *pf * (size_t)(nkids - k)); /* keep pf beside kids */
    }
    if (r <= 0 || !(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    int nt;
    char **t = read_frame(sock, &nt);
    if (!t) die("the planner went away during the call");
    for (int i = 0; i < nt;) {
      char **v;
      int key = proto_next(t, nt, &i, planner_action_keys, PLANNER_ACTION_KEYS, &v, "planner action");
      switch ((enum planner_action_key)key) {
      case PLANNER_ACTION_OUT: write_all(1, v[0], strlen(v[0])); break;
      case PLANNER_ACTION_ERR: write_all(2, v[0], strlen(v[0])); break;
      case PLANNER_ACTION_STALE: to_node();
      case PLANNER_ACTION_EXIT: return atoi(v[0]);
      case PLANNER_ACTION_SPAWN:
      case PLANNER_ACTION_SPAWN_INPUT: {
        pid_t pid;
        char *text = spawn_oci(v[1], v[2], key == PLANNER_ACTION_SPAWN_INPUT ? v[4] : NULL, &pid);
        put(&o, planner_reply_keys[PLANNER_REPLY_SYNC].name), put(&o, v[0]), put(&o, text);
        send_frame(sock, &o);
        free(text);
        if (strcmp(v[3], "1") != 0 || nkids == 32) {
          /* create and detached exec: it exits once it reported */
          int st;
          while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
          if (strcmp(v[3], "1") == 0) die("more than 32 processes at once");
          break;
        }
        kids[nkids].pid = pid;
        kids[nkids].pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        snprintf(kids[nkids].id, sizeof kids[nkids].id, "%s", v[0]);
        nkids++;
        break;
      }
      case PLANNER_ACTION_KEYS: break;
      }
    }
  }
}
