/*
 * paene: the command's native front door (built as dist/native/paene).
 *
 * `paene exec NAME -- CMD` and `paene enter NAME` are the verbs scripts call
 * in loops; booting Node for each costs ~100 ms before any work.  While a
 * context runs, the TypeScript runtime keeps its exec plan in
 * ROOT/contexts/NAME/exec.plan (kernel/helper.ts execPlanBytes): the helper
 * flags, environment and capability sets it decided at start.  This program
 * reads that plan, checks that the init it names is still the one that was
 * started (pid and start time), adds what the call names (command, --tty,
 * --user, --cwd, --env) and executes paene-helper exec with it.
 *
 * It decides no policy.  Anything it does not recognise exactly (another
 * verb, an unknown option, --help, no plan, a stopped context, not root)
 * goes to the Node CLI unchanged, which does the verb or says what is wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "exec_plan.h"      /* generated from src/proto/exec-plan.ts */
#include "helper_request.h" /* generated from src/proto/helper-request.ts */
#include "paene_names.h"    /* generated from src/proto/names.ts */
#include "copy_scripts.h"   /* generated from src/proto/copy.ts */

#define MAX_ARGS 512
#define PLAN_MAX (256 * 1024)

static char self_dir[PATH_MAX];

/* Hands the whole call to the Node CLI (dist/paene.mjs beside dist/native/). */
static void to_node(char **argv) __attribute__((noreturn));
static void to_node(char **argv) {
  static char bundle[PATH_MAX + 32];
  snprintf(bundle, sizeof bundle, "%s/../paene.mjs", self_dir);
  int n = 0;
  while (argv[n]) n++;
  char **a = calloc((size_t)n + 4, sizeof *a);
  if (!a) _exit(1);
  /*
   * `--` ends node's own options: Node 20 reads --env-file anywhere in its
   * argv, even after the script, so `paene exec --env-file F` would be
   * node's (it loads F into the CLI's environment, or exits 9 without it).
   */
  a[0] = "node";
  a[1] = "--";
  a[2] = bundle;
  for (int i = 1; i < n; i++) a[i + 2] = argv[i];
  execvp("node", a);
  dprintf(2, "paene: cannot run node: %s (paene needs Node.js 20 or later on PATH)\n", strerror(errno));
  _exit(127);
}

/* UID or UID:GID, numbers only, as the CLI's --user. */
static int parse_user(const char *v, char *out, size_t outlen) {
  char *end;
  errno = 0;
  unsigned long u = strtoul(v, &end, 10);
  if (end == v || errno || u > 0xfffffffeUL) return -1;
  unsigned long g = u;
  if (*end == ':') {
    const char *gs = end + 1;
    g = strtoul(gs, &end, 10);
    if (end == gs || errno || g > 0xfffffffeUL) return -1;
  }
  if (*end) return -1;
  snprintf(out, outlen, "%lu:%lu", u, g);
  return (int)(u != 0); /* 1: not guest root */
}

/* The init's start time from /proc/PID/stat (field 22), or 0 if it is gone or a zombie. */
static unsigned long long starttime_of(const char *pid) {
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%s/stat", pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *s = strrchr(buf, ')');
  if (!s || s[1] != ' ' || s[2] == 'Z') return 0;
  s += 2; /* at field 3, the state */
  for (int f = 3; f < 22; f++) {
    s = strchr(s, ' ');
    if (!s) return 0;
    s++;
  }
  return strtoull(s, NULL, 10);
}

struct plan {
  const char *pid, *starttime, *caps_root, *caps_user, *term;
  const char *env[MAX_ARGS];
  int nenv;
  const char *arg[MAX_ARGS];
  int narg;
};

/* A plan this program cannot read (a newer format, a cut file): the Node CLI does the call. */
static char **node_argv;
void die(const char *fmt, ...) {
  (void)fmt;
  to_node(node_argv);
}

/* Reads the exec plan (src/proto/exec-plan.ts); returns 0 on success, -1 to leave the call to Node. */
static int read_plan(const char *file, struct plan *p) {
  static char buf[PLAN_MAX];
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
    if (len == sizeof buf) break;
  }
  close(fd);
  if (len == 0 || len == sizeof buf) return -1;
  memset(p, 0, sizeof *p);
  int nt, version = 0;
  char **toks = proto_tokens(buf, len, &nt, "exec plan"); /* a bad one: die() hands the call to Node */
  for (int i = 0; i < nt;) {
    char **v;
    switch ((enum exec_plan_key)proto_next(toks, nt, &i, exec_plan_keys, EXEC_PLAN_KEYS, &v, "exec plan")) {
    case EXEC_PLAN_VERSION: version = atoi(v[0]); break;
    case EXEC_PLAN_PID: p->pid = v[0]; break;
    case EXEC_PLAN_STARTTIME: p->starttime = v[0]; break;
    case EXEC_PLAN_CAPS_ROOT: p->caps_root = v[0]; break;
    case EXEC_PLAN_CAPS_USER: p->caps_user = v[0]; break;
    case EXEC_PLAN_TERM: p->term = v[0]; break;
    case EXEC_PLAN_ENV:
      if (p->nenv == MAX_ARGS) return -1;
      p->env[p->nenv++] = v[0];
      break;
    case EXEC_PLAN_ARG:
      if (p->narg == MAX_ARGS) return -1;
      p->arg[p->narg++] = v[0];
      break;
    case EXEC_PLAN_KEYS: break;
    }
  }
  return version == 1 && p->pid && p->starttime && p->caps_root && p->caps_user && p->term ? 0 : -1;
}

/* Sets KEY=VALUE in the plan's environment: a later setting of a key replaces the earlier one. */
static int set_env(struct plan *p, const char *kv) {
  size_t klen = strcspn(kv, "=");
  int j = 0;
  for (int i = 0; i < p->nenv; i++)
    if (!(strncmp(p->env[i], kv, klen) == 0 && p->env[i][klen] == '=')) p->env[j++] = p->env[i];
  p->nenv = j;
  if (p->nenv == MAX_ARGS) return -1;
  p->env[p->nenv++] = kv;
  return 0;
}

/* The value of an option written `--opt V`, `--opt=V` or `-o V`; NULL if `a` is not that option. */
static const char *opt_value(char **argv, int *i, const char *lng, const char *shrt) {
  const char *a = argv[*i];
  size_t l = strlen(lng);
  if (!strncmp(a, lng, l) && a[l] == '=') return a + l + 1;
  if (!strcmp(a, lng) || (shrt && !strcmp(a, shrt))) {
    if (!argv[*i + 1]) return NULL;
    return argv[++*i];
  }
  return NULL;
}

/* `NAME:PATH` (a colon before any slash) names a path in a context, as runtime/copy.ts parseCopyEnd. */
static int context_path(const char *a) {
  const char *c = strchr(a, ':'), *sl = strchr(a, '/');
  return c && c > a && (!sl || c < sl);
}

/*
 * `paene cp SRC NAME:DST` natively: the host's tar into the guest's side
 * (src/proto/copy.ts GUEST_PUT, through paene-helper exec), one pipe between
 * them, as the Node CLI does it (runtime/copy.ts copyIn) but without Node's
 * start. Any failure hands the whole call to Node, which does it again and
 * says what went wrong in its own words.
 */
static int run_copy_in(char **args, const char *dir, const char *base, char **argv, const char *src, const char *dst) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) to_node(argv);
  pid_t t = fork();
  if (t < 0) to_node(argv);
  if (t == 0) {
    int nul = open("/dev/null", O_RDWR);
    dup2(pfd[1], 1);
    dup2(nul, 0);
    dup2(nul, 2);
    execlp("tar", "tar", "-c", "-f", "-", "--numeric-owner", "-C", dir, "--", base, (char *)NULL);
    _exit(127);
  }
  pid_t h = fork();
  if (h < 0) to_node(argv);
  if (h == 0) {
    int nul = open("/dev/null", O_RDWR);
    dup2(pfd[0], 0);
    dup2(nul, 1);
    dup2(nul, 2);
    char *noenv[] = {NULL};
    execve(args[0], args, noenv);
    _exit(127);
  }
  close(pfd[0]);
  close(pfd[1]);
  int st_t = 0, st_h = 0;
  while (waitpid(t, &st_t, 0) < 0 && errno == EINTR) {}
  while (waitpid(h, &st_h, 0) < 0 && errno == EINTR) {}
  if (!WIFEXITED(st_t) || WEXITSTATUS(st_t) != 0 || !WIFEXITED(st_h) || WEXITSTATUS(st_h) != 0) to_node(argv);
  printf("copied %s to %s\n", src, dst);
  return 0;
}

int main(int argc, char **argv) {
  (void)argc;
  node_argv = argv;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    dprintf(2, "paene: cannot find its own program: %s\n", strerror(errno));
    return 1;
  }
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  snprintf(self_dir, sizeof self_dir, "%s", exe);

  /* the round-trip test of src/proto/exec-plan.ts: what read_plan took, written back */
  if (argv[1] && !strcmp(argv[1], "__echo-exec-plan") && argv[2]) {
    static struct plan e;
    if (read_plan(argv[2], &e) != 0) return 1;
    struct proto_out o = {stdout, 0};
    proto_put(&o, "version"), proto_put(&o, "1");
    proto_put(&o, "pid"), proto_put(&o, "%s", e.pid);
    proto_put(&o, "starttime"), proto_put(&o, "%s", e.starttime);
    proto_put(&o, "caps-root"), proto_put(&o, "%s", e.caps_root);
    proto_put(&o, "caps-user"), proto_put(&o, "%s", e.caps_user);
    proto_put(&o, "term"), proto_put(&o, "%s", e.term);
    for (int j = 0; j < e.nenv; j++) proto_put(&o, "env"), proto_put(&o, "%s", e.env[j]);
    for (int j = 0; j < e.narg; j++) proto_put(&o, "arg"), proto_put(&o, "%s", e.arg[j]);
    proto_end(&o);
    return 0;
  }

  /* [--root DIR] exec|enter ... */
  int i = 1;
  const char *root = getenv("PAENE_ROOT");
  if (argv[i] && (!strncmp(argv[i], "--root=", 7) || !strcmp(argv[i], "--root"))) {
    root = opt_value(argv, &i, "--root", NULL);
    if (!root) to_node(argv);
    i++;
  }
  const char *verb = argv[i];
  if (!verb || (strcmp(verb, "exec") && strcmp(verb, "enter") && strcmp(verb, "cp")) || geteuid() != 0) to_node(argv);
  int enter = !strcmp(verb, "enter");
  i++;

  /* cp: only `cp SRC NAME:DST` (a plain host path into a context, no options); everything else is Node's */
  const char *copy_src = NULL, *copy_dst = NULL;
  static char copy_name[64], copy_dir[PATH_MAX], copy_base[256];
  static char *copy_cmd[10];
  if (!strcmp(verb, "cp")) {
    const char *src = argv[i], *dst = src ? argv[i + 1] : NULL;
    if (!src || !dst || argv[i + 2] || src[0] == '-' || dst[0] == '-' || context_path(src) || !context_path(dst)) to_node(argv);
    const char *colon = strchr(dst, ':');
    size_t nl = (size_t)(colon - dst);
    if (nl >= sizeof copy_name || !colon[1]) to_node(argv);
    memcpy(copy_name, dst, nl);
    copy_name[nl] = 0;
    if (!paene_valid_name(copy_name)) to_node(argv);
    /* a plain path: no trailing slash, no . or .. part (Node normalizes those) */
    size_t sl = strlen(src);
    if (sl == 0 || sl >= sizeof copy_dir || src[sl - 1] == '/' || strstr(src, "/./") || strstr(src, "/../") || strstr(src, "//"))
      to_node(argv);
    const char *b = strrchr(src, '/');
    const char *base = b ? b + 1 : src;
    if (!strcmp(base, ".") || !strcmp(base, "..") || strlen(base) >= sizeof copy_base || strchr(base, '\n')) to_node(argv);
    if (!strncmp(src, "./", 2) || !strncmp(src, "../", 3)) to_node(argv);
    snprintf(copy_base, sizeof copy_base, "%s", base);
    if (!b)
      snprintf(copy_dir, sizeof copy_dir, ".");
    else if (b == src)
      snprintf(copy_dir, sizeof copy_dir, "/");
    else
      snprintf(copy_dir, sizeof copy_dir, "%.*s", (int)(b - src), src);
    struct stat st;
    if (lstat(src, &st) != 0) to_node(argv);
    copy_cmd[0] = "sh", copy_cmd[1] = "-c", copy_cmd[2] = GUEST_PUT, copy_cmd[3] = "paene-cp";
    copy_cmd[4] = (char *)colon + 1, copy_cmd[5] = copy_base, copy_cmd[6] = S_ISDIR(st.st_mode) ? "dir" : "file";
    copy_cmd[7] = "-o", copy_cmd[8] = NULL;
    copy_src = src, copy_dst = dst;
    while (argv[i]) i++; /* the option loop below sees nothing */
  }

  int tty = 0, nonroot = 0;
  const char *user = NULL, *cwd = "/", *shell = "/bin/sh", *name = NULL;
  char userbuf[64];
  const char *envs[MAX_ARGS];
  int nenvs = 0;
  char **cmd = NULL;
  for (; argv[i]; i++) {
    const char *a = argv[i], *v;
    if (!enter && name) {
      /* exec's options end at the name; an optional `--` then the command */
      cmd = !strcmp(a, "--") ? &argv[i + 1] : &argv[i];
      break;
    }
    if (a[0] != '-' || !a[1]) {
      if (name || !paene_valid_name(a)) to_node(argv);
      name = a;
    } else if (enter) {
      if (!(v = opt_value(argv, &i, "--shell", NULL))) to_node(argv);
      shell = v;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--tty"))
      tty = 1;
    else if ((v = opt_value(argv, &i, "--user", "-u"))) {
      if ((nonroot = parse_user(v, userbuf, sizeof userbuf)) < 0) to_node(argv);
      user = userbuf;
    } else if ((v = opt_value(argv, &i, "--cwd", "-w")))
      cwd = v;
    else if ((v = opt_value(argv, &i, "--env", "-e"))) {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v || nenvs == MAX_ARGS) to_node(argv);
      envs[nenvs++] = v;
    } else
      to_node(argv); /* --help and everything else: the Node CLI */
  }
  if (copy_src) name = copy_name, cmd = copy_cmd;
  if (!name || (!enter && (!cmd || !cmd[0]))) to_node(argv);
  char *enter_cmd[3] = {(char *)shell, "-l", NULL};
  if (enter) {
    cmd = enter_cmd;
    tty = isatty(0);
  }

  static char dir[2 * PATH_MAX + 2], plan_file[2 * PATH_MAX + 128];
  if (!root) root = PAENE_DEFAULT_ROOT;
  if (root[0] == '/')
    snprintf(dir, sizeof dir, "%s", root);
  else {
    char cwdbuf[PATH_MAX];
    if (!getcwd(cwdbuf, sizeof cwdbuf)) to_node(argv);
    snprintf(dir, sizeof dir, "%s/%s", cwdbuf, root);
  }
  snprintf(plan_file, sizeof plan_file, "%s/contexts/%s/exec.plan", dir, name);
  static struct plan p;
  if (read_plan(plan_file, &p) != 0) to_node(argv);
  char *end;
  unsigned long long want = strtoull(p.starttime, &end, 10);
  if (*end || want == 0 || starttime_of(p.pid) != want) to_node(argv); /* stopped or crashed: Node says so */

  /* as the runtime: the guest's environment, then TERM with a terminal, then the call's --env */
  static char term[512];
  if (tty) {
    const char *t = getenv("TERM");
    snprintf(term, sizeof term, "TERM=%s", t && *t ? t : p.term);
    if (set_env(&p, term) != 0) to_node(argv);
  }
  for (int e = 0; e < nenvs; e++)
    if (set_env(&p, envs[e]) != 0) to_node(argv);

  static char *args[4 * MAX_ARGS];
  int k = 0;
  static char helper[PATH_MAX + 32];
  snprintf(helper, sizeof helper, "%s/paene-helper", self_dir);
  /* the exec request (src/proto/helper-request.ts), its flags by the generated names */
#define FLAG(key) ((char *)helper_request_keys[key].name)
  args[k++] = helper;
  args[k++] = "exec";
  args[k++] = FLAG(HELPER_REQUEST___PID);
  args[k++] = (char *)p.pid;
  args[k++] = FLAG(HELPER_REQUEST___CAPS);
  args[k++] = (char *)(nonroot ? p.caps_user : p.caps_root);
  for (int e = 0; e < p.nenv; e++) args[k++] = FLAG(HELPER_REQUEST___ENV), args[k++] = (char *)p.env[e];
  args[k++] = FLAG(HELPER_REQUEST___CWD);
  args[k++] = (char *)cwd;
  if (user) args[k++] = FLAG(HELPER_REQUEST___USER), args[k++] = (char *)user;
  if (tty) args[k++] = FLAG(HELPER_REQUEST___TTY);
#undef FLAG
  for (int e = 0; e < p.narg; e++) args[k++] = (char *)p.arg[e];
  args[k++] = "--";
  for (int c = 0; cmd[c]; c++) {
    if (k >= (int)(sizeof args / sizeof *args) - 1) to_node(argv);
    args[k++] = cmd[c];
  }
  args[k] = NULL;
  if (copy_src) return run_copy_in(args, copy_dir, copy_base, argv, copy_src, copy_dst);
  char *noenv[] = {NULL};
  execve(helper, args, noenv);
  dprintf(2, "paene: cannot run %s: %s (run 'npm run build')\n", helper, strerror(errno));
  return 1;
}
