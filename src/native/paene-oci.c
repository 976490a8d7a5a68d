/*
 * paene-oci: the native part of paene-runc, paene's OCI runtime command line.
 *
 * The TypeScript side (src/oci/spec.ts) turns an OCI bundle's config.json
 * into a plan: every mount with its flags already computed, every device,
 * capability mask, rlimit and seccomp program decided.  This program only
 * carries the plan out, in a fixed order, and reports failures precisely.
 * It has no defaults of its own.
 *
 *   paene-oci create PLAN   a new container: join/unshare namespaces, build its
 *                           root, wait for `start`, exec the process
 *   paene-oci exec PLAN     a new process in a running container
 *
 * PLAN is a file of NUL-terminated tokens: a key, then a fixed number of
 * values (see parse_plan).  Progress goes to fd 3 (the sync pipe):
 * "pid N\n", then "ok\n" once the container waits for start (create) or the
 * process was exec'd (exec, seen as EOF), or "err MESSAGE\n".
 *
 * create: the parent joins namespaces given by path and the cgroups, clones
 * the init with the new namespaces, writes its id maps and rlimits, reports
 * the pid and exits (or, with `wait 1`, waits and exits with its status, for
 * `paene-runc run`).  The init reparents to the caller's subreaper (the
 * containerd shim), which reaps it, as with runc.  The init opens the exec
 * fifo for reading without blocking before pivot_root, reports "ok", then
 * polls it: `start` opens it for writing and writes one byte.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <termios.h>
#include <unistd.h>

#include "paene-native.h"
#include "proto.h"
#include "oci_plan.h" /* generated from src/proto/oci-plan.ts */

/* the sync pipe to paene-runc: fd 3, or the fd after the --preserve-fds ones (argv[3]) */
static int sync_fd = 3;
#define SYNC_FD sync_fd

void die(const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  for (char *p = buf; *p; p++)
    if (*p == '\n') *p = ' ';
  if (dprintf(SYNC_FD, "err %s\n", buf) < 0) dprintf(2, "paene-oci: %s\n", buf);
  _exit(125);
}

/* ------------------------------------------------------------------ plan */

struct mnt {
  const char *src, *dst, *type, *data;
  unsigned long flags, prop;
  unsigned how; /* HOW_* bits, decided by the runtime (oci/spec.ts MOUNT_HOW) */
};
/* the destination must be reached without a symlink, and be a directory (proc, sysfs: runc's rule) */
#define HOW_NO_SYMLINK 1u
/* the mount may land on a guarded path itself (the proc mount on /proc) */
#define HOW_MAY_COVER 2u
/* a tmpfs that starts with a copy of what the image has at its destination (tmpcopyup) */
#define HOW_COPY_UP 4u
struct dev {
  const char *path;
  char type;
  unsigned major, minor, mode, uid, gid;
};
struct ns {
  int type;         /* CLONE_NEW* */
  const char *path; /* "" = new */
};
struct rlim {
  int res;
  unsigned long long soft, hard;
};

struct plan {
  struct ns ns[16];
  int nns;
  const char *uidmap, *gidmap; /* whole map file contents, lines "IN OUT N" */
  const char *cgroups[32];
  int ncgroups;
  const char *rootfs, *fifo, *hostname, *domainname, *cwd, *console;
  const char *chroot_dir; /* exec into a container without a mount namespace: its init's root */
  const char *exe;        /* the program to run when it is not args[0], resolved in the container */
  const char *exe_host;   /* ... or resolved on the host before anything is joined (a createContainer hook) */
  unsigned long rootprop;
  int nopivot, rootro, nnp, terminal, wait, join_pid, have_oom, oom, have_umask, preserve;
  unsigned umask_v;
  unsigned rows, cols;
  /* every list below is sized by the plan's own token count: no silent limit */
  struct mnt *mounts;
  int nmounts;
  struct dev *devs;
  int ndevs;
  const char *(*symlinks)[2];
  int nsymlinks;
  const char **masks, **ros, **rws, *(*sysctls)[2], **guards, **guard_allows;
  int nmasks, nros, nrws, nsysctls, nguards, nguard_allows;
  const char **args, **envs;
  int nargs, nenvs;
  int have_user;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  int ngroups;
  uint64_t caps[5]; /* bounding effective permitted inheritable ambient */
  int have_caps;
  struct rlim rlimits[32];
  int nrlimits;
  unsigned char *seccomp;
  size_t seccomp_len;
  int exec_check;       /* resolve args[0] before reporting ok */
  const char *apparmor; /* the AppArmor profile to exec into */
  int mkcwd;            /* create the cwd in the root when missing (create, as runc) */
  int home_from_passwd; /* no HOME in the environment: the user's home from the container's /etc/passwd, else / */
  int console_dev;      /* the pty's slave bound on /dev/console (create with a terminal) */
};

static unsigned long long num(const char *s) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end) die("plan: bad number '%s'", s);
  return v;
}

static long long snum(const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || !*s) die("plan: bad number '%s'", s);
  return v;
}

static int ns_flag(const char *t) {
  if (!strcmp(t, "pid")) return CLONE_NEWPID;
  if (!strcmp(t, "network")) return CLONE_NEWNET;
  if (!strcmp(t, "mount")) return CLONE_NEWNS;
  if (!strcmp(t, "ipc")) return CLONE_NEWIPC;
  if (!strcmp(t, "uts")) return CLONE_NEWUTS;
  if (!strcmp(t, "user")) return CLONE_NEWUSER;
  if (!strcmp(t, "cgroup")) return CLONE_NEWCGROUP;
#ifdef CLONE_NEWTIME
  if (!strcmp(t, "time")) return CLONE_NEWTIME;
#endif
  die("plan: unknown namespace '%s'", t);
}

/* The plan's name of a namespace type (the inverse of ns_flag). */
static const char *ns_name(int flag) {
  switch (flag) {
  case CLONE_NEWPID: return "pid";
  case CLONE_NEWNET: return "network";
  case CLONE_NEWNS: return "mount";
  case CLONE_NEWIPC: return "ipc";
  case CLONE_NEWUTS: return "uts";
  case CLONE_NEWUSER: return "user";
  case CLONE_NEWCGROUP: return "cgroup";
  default: return "time";
  }
}

static const char *ns_file(int flag) {
  switch (flag) {
  case CLONE_NEWPID: return "pid";
  case CLONE_NEWNET: return "net";
  case CLONE_NEWNS: return "mnt";
  case CLONE_NEWIPC: return "ipc";
  case CLONE_NEWUTS: return "uts";
  case CLONE_NEWUSER: return "user";
  case CLONE_NEWCGROUP: return "cgroup";
  default: return "time";
  }
}

static void parse_plan(const char *file, struct plan *p) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("cannot open plan %s: %s", file, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0) die("stat plan: %s", strerror(errno));
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) die("out of memory");
  ssize_t got = 0;
  while (got < st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)(st.st_size - got));
    if (r <= 0) die("read plan: %s", strerror(errno));
    got += r;
  }
  close(fd);
  buf[got] = 0;
  /* the tokens (src/proto/oci-plan.ts; the end marker refuses a cut or padded plan), and every list
   * as long as the plan is: no silent limit */
  int nt;
  char **toks = proto_tokens(buf, (size_t)got, &nt, "plan");
  memset(p, 0, sizeof *p);
  size_t n = (size_t)nt + 1;
  p->mounts = calloc(n, sizeof *p->mounts);
  p->devs = calloc(n, sizeof *p->devs);
  p->symlinks = calloc(n, sizeof *p->symlinks);
  p->sysctls = calloc(n, sizeof *p->sysctls);
  p->masks = calloc(n, sizeof *p->masks);
  p->ros = calloc(n, sizeof *p->ros);
  p->rws = calloc(n, sizeof *p->rws);
  p->guards = calloc(n, sizeof *p->guards);
  p->guard_allows = calloc(n, sizeof *p->guard_allows);
  p->args = calloc(n, sizeof *p->args);
  p->envs = calloc(n + 1, sizeof *p->envs); /* room for a HOME from /etc/passwd */
  p->groups = calloc(n, sizeof *p->groups);
  if (!p->mounts || !p->devs || !p->symlinks || !p->sysctls || !p->masks || !p->ros || !p->rws || !p->guards || !p->guard_allows ||
      !p->args || !p->envs || !p->groups)
    die("out of memory");
#define CAP(cnt, max) \
  if ((cnt) >= (max)) die("plan: more than %d '%s' entries", max, oci_plan_keys[key].name);
  for (int i = 0; i < nt;) {
    char **v;
    int key = proto_next(toks, nt, &i, oci_plan_keys, OCI_PLAN_KEYS, &v, "plan");
    switch ((enum oci_plan_key)key) {
    case OCI_PLAN_NS:
      CAP(p->nns, 16) p->ns[p->nns].type = ns_flag(v[0]);
      p->ns[p->nns++].path = v[1];
      break;
    case OCI_PLAN_UIDMAP: p->uidmap = v[0]; break;
    case OCI_PLAN_GIDMAP: p->gidmap = v[0]; break;
    case OCI_PLAN_CGROUP: CAP(p->ncgroups, 32) p->cgroups[p->ncgroups++] = v[0]; break;
    case OCI_PLAN_PID: p->join_pid = (int)num(v[0]); break;
    case OCI_PLAN_CHROOT: p->chroot_dir = v[0]; break;
    case OCI_PLAN_ROOTFS: p->rootfs = v[0]; break;
    case OCI_PLAN_FIFO: p->fifo = v[0]; break;
    case OCI_PLAN_ROOTPROP: p->rootprop = (unsigned long)num(v[0]); break;
    case OCI_PLAN_NOPIVOT: p->nopivot = 1; break;
    case OCI_PLAN_ROOTRO: p->rootro = 1; break;
    case OCI_PLAN_WAIT: p->wait = 1; break;
    case OCI_PLAN_HOSTNAME: p->hostname = v[0]; break;
    case OCI_PLAN_DOMAINNAME: p->domainname = v[0]; break;
    case OCI_PLAN_CONSOLE: p->console = v[0]; break;
    case OCI_PLAN_PRESERVE: p->preserve = (int)num(v[0]); break;
    case OCI_PLAN_GUARD: p->guards[p->nguards++] = v[0]; break;
    case OCI_PLAN_GUARD_ALLOW: p->guard_allows[p->nguard_allows++] = v[0]; break;
    case OCI_PLAN_MOUNT: {
      struct mnt *m = &p->mounts[p->nmounts++];
      m->src = v[0];
      m->dst = v[1];
      m->type = v[2];
      m->flags = (unsigned long)num(v[3]);
      m->prop = (unsigned long)num(v[4]);
      m->data = v[5];
      m->how = (unsigned)num(v[6]);
      break;
    }
    case OCI_PLAN_DEV: {
      struct dev *d = &p->devs[p->ndevs++];
      d->path = v[0];
      d->type = v[1][0];
      d->major = (unsigned)num(v[2]);
      d->minor = (unsigned)num(v[3]);
      d->mode = (unsigned)num(v[4]);
      d->uid = (unsigned)num(v[5]);
      d->gid = (unsigned)num(v[6]);
      break;
    }
    case OCI_PLAN_SYMLINK:
      p->symlinks[p->nsymlinks][0] = v[0];
      p->symlinks[p->nsymlinks++][1] = v[1];
      break;
    case OCI_PLAN_MASK: p->masks[p->nmasks++] = v[0]; break;
    case OCI_PLAN_RO: p->ros[p->nros++] = v[0]; break;
    case OCI_PLAN_RW: p->rws[p->nrws++] = v[0]; break;
    case OCI_PLAN_SYSCTL:
      p->sysctls[p->nsysctls][0] = v[0];
      p->sysctls[p->nsysctls++][1] = v[1];
      break;
    case OCI_PLAN_ARG: p->args[p->nargs++] = v[0]; break;
    case OCI_PLAN_ENV: p->envs[p->nenvs++] = v[0]; break;
    case OCI_PLAN_EXE: p->exe = v[0]; break;
    case OCI_PLAN_EXE_HOST: p->exe_host = v[0]; break;
    case OCI_PLAN_CWD: p->cwd = v[0]; break;
    case OCI_PLAN_USER:
      p->have_user = 1;
      p->uid = (uid_t)num(v[0]);
      p->gid = (gid_t)num(v[1]);
      break;
    case OCI_PLAN_GROUP: p->groups[p->ngroups++] = (gid_t)num(v[0]); break;
    case OCI_PLAN_UMASK:
      p->have_umask = 1;
      p->umask_v = (unsigned)num(v[0]);
      break;
    case OCI_PLAN_CAPS:
      p->have_caps = 1;
      for (int j = 0; j < 5; j++) p->caps[j] = num(v[j]);
      break;
    case OCI_PLAN_RLIMIT: {
      CAP(p->nrlimits, 32) struct rlim *r = &p->rlimits[p->nrlimits++];
      r->res = (int)num(v[0]);
      r->soft = num(v[1]);
      r->hard = num(v[2]);
      break;
    }
    case OCI_PLAN_NNP: p->nnp = 1; break;
    case OCI_PLAN_TERMINAL: p->terminal = 1; break;
    case OCI_PLAN_CONSOLESIZE:
      p->rows = (unsigned)num(v[0]);
      p->cols = (unsigned)num(v[1]);
      break;
    case OCI_PLAN_OOM:
      p->have_oom = 1;
      p->oom = (int)snum(v[0]);
      break;
    case OCI_PLAN_APPARMOR: p->apparmor = v[0]; break;
    case OCI_PLAN_SECCOMP: p->seccomp = parse_hex(v[0], &p->seccomp_len); break;
    case OCI_PLAN_EXECCHECK: p->exec_check = 1; break;
    case OCI_PLAN_MKCWD: p->mkcwd = 1; break;
    case OCI_PLAN_HOME_FROM_PASSWD: p->home_from_passwd = 1; break;
    case OCI_PLAN_CONSOLE_DEV: p->console_dev = 1; break;
    case OCI_PLAN_KEYS: break;
    }
  }
  p->args[p->nargs] = NULL;
  p->envs[p->nenvs] = NULL;
}

/* `paene-oci echo PLAN`: what was parsed, written back as a plan (the round-trip test of proto/oci-plan.ts). */
static int echo_plan(const struct plan *p) {
  struct proto_out o = {stdout, 0};
#define PUT1(k, fmt, v) proto_put(&o, "%s", k), proto_put(&o, fmt, v)
  for (int i = 0; i < p->nns; i++) proto_put(&o, "ns"), proto_put(&o, "%s", ns_name(p->ns[i].type)), proto_put(&o, "%s", p->ns[i].path);
  if (p->uidmap) PUT1("uidmap", "%s", p->uidmap);
  if (p->gidmap) PUT1("gidmap", "%s", p->gidmap);
  for (int i = 0; i < p->ncgroups; i++) PUT1("cgroup", "%s", p->cgroups[i]);
  if (p->join_pid) PUT1("pid", "%d", p->join_pid);
  if (p->chroot_dir) PUT1("chroot", "%s", p->chroot_dir);
  if (p->rootfs) PUT1("rootfs", "%s", p->rootfs);
  if (p->fifo) PUT1("fifo", "%s", p->fifo);
  if (p->rootprop) PUT1("rootprop", "%lu", p->rootprop);
  if (p->nopivot) proto_put(&o, "nopivot");
  if (p->rootro) proto_put(&o, "rootro");
  if (p->wait) proto_put(&o, "wait");
  if (p->hostname) PUT1("hostname", "%s", p->hostname);
  if (p->domainname) PUT1("domainname", "%s", p->domainname);
  if (p->console) PUT1("console", "%s", p->console);
  if (p->preserve) PUT1("preserve", "%d", p->preserve);
  for (int i = 0; i < p->nguards; i++) PUT1("guard", "%s", p->guards[i]);
  for (int i = 0; i < p->nguard_allows; i++) PUT1("guard-allow", "%s", p->guard_allows[i]);
  for (int i = 0; i < p->nmounts; i++) {
    const struct mnt *m = &p->mounts[i];
    proto_put(&o, "mount"), proto_put(&o, "%s", m->src), proto_put(&o, "%s", m->dst), proto_put(&o, "%s", m->type);
    proto_put(&o, "%lu", m->flags), proto_put(&o, "%lu", m->prop), proto_put(&o, "%s", m->data), proto_put(&o, "%u", m->how);
  }
  for (int i = 0; i < p->ndevs; i++) {
    const struct dev *d = &p->devs[i];
    proto_put(&o, "dev"), proto_put(&o, "%s", d->path), proto_put(&o, "%c", d->type), proto_put(&o, "%u", d->major);
    proto_put(&o, "%u", d->minor), proto_put(&o, "%u", d->mode), proto_put(&o, "%u", d->uid), proto_put(&o, "%u", d->gid);
  }
  for (int i = 0; i < p->nsymlinks; i++)
    proto_put(&o, "symlink"), proto_put(&o, "%s", p->symlinks[i][0]), proto_put(&o, "%s", p->symlinks[i][1]);
  for (int i = 0; i < p->nmasks; i++) PUT1("mask", "%s", p->masks[i]);
  for (int i = 0; i < p->nros; i++) PUT1("ro", "%s", p->ros[i]);
  for (int i = 0; i < p->nrws; i++) PUT1("rw", "%s", p->rws[i]);
  for (int i = 0; i < p->nsysctls; i++)
    proto_put(&o, "sysctl"), proto_put(&o, "%s", p->sysctls[i][0]), proto_put(&o, "%s", p->sysctls[i][1]);
  for (int i = 0; i < p->nargs; i++) PUT1("arg", "%s", p->args[i]);
  for (int i = 0; i < p->nenvs; i++) PUT1("env", "%s", p->envs[i]);
  if (p->exe) PUT1("exe", "%s", p->exe);
  if (p->exe_host) PUT1("exe-host", "%s", p->exe_host);
  if (p->cwd) PUT1("cwd", "%s", p->cwd);
  if (p->have_user) proto_put(&o, "user"), proto_put(&o, "%u", p->uid), proto_put(&o, "%u", p->gid);
  for (int i = 0; i < p->ngroups; i++) PUT1("group", "%u", p->groups[i]);
  if (p->have_umask) PUT1("umask", "%u", p->umask_v);
  if (p->have_caps) {
    proto_put(&o, "caps");
    for (int j = 0; j < 5; j++) proto_put(&o, "0x%llx", (unsigned long long)p->caps[j]);
  }
  for (int i = 0; i < p->nrlimits; i++)
    proto_put(&o, "rlimit"), proto_put(&o, "%d", p->rlimits[i].res), proto_put(&o, "%llu", p->rlimits[i].soft),
        proto_put(&o, "%llu", p->rlimits[i].hard);
  if (p->nnp) proto_put(&o, "nnp");
  if (p->terminal) proto_put(&o, "terminal");
  if (p->rows || p->cols) proto_put(&o, "consolesize"), proto_put(&o, "%u", p->rows), proto_put(&o, "%u", p->cols);
  if (p->have_oom) PUT1("oom", "%d", p->oom);
  if (p->apparmor) PUT1("apparmor", "%s", p->apparmor);
  if (p->seccomp_len) {
    proto_put(&o, "seccomp");
    for (size_t j = 0; j < p->seccomp_len; j++) fprintf(o.f, "%02x", p->seccomp[j]);
    fputc(0, o.f);
    o.count++;
  }
  if (p->exec_check) proto_put(&o, "execcheck");
  if (p->mkcwd) proto_put(&o, "mkcwd");
  if (p->home_from_passwd) proto_put(&o, "home-from-passwd");
  if (p->console_dev) proto_put(&o, "console-dev");
#undef PUT1
  proto_end(&o);
  return 0;
}

/* ------------------------------------------------------ paths in the root */

static void fdpath(char *out, size_t n, int fd) { snprintf(out, n, "/proc/self/fd/%d", fd); }

struct open_how_ {
  uint64_t flags, mode, resolve;
};
#define RESOLVE_NO_SYMLINKS_ 0x04
#define RESOLVE_IN_ROOT_ 0x10

static int open_in_root_how(int rootfd, const char *path, int flags, uint64_t resolve) {
  struct open_how_ how = {.flags = (uint64_t)(flags | O_CLOEXEC), .mode = 0, .resolve = RESOLVE_IN_ROOT_ | resolve};
  while (*path == '/') path++;
  if (!*path) path = ".";
  return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Opens PATH as if the root were ROOTFD: symlinks in the guest's tree cannot lead out of it. */
static int open_in_root(int rootfd, const char *path, int flags) { return open_in_root_how(rootfd, path, flags, 0); }

/* Where the open fd is, as a path inside the root (the root's own path is cut off); dies if outside. */
static void path_in_root(int rootfd, int fd, char *out, size_t n) {
  char root[4096], at[4096], link[64];
  fdpath(link, sizeof link, rootfd);
  ssize_t r = readlink(link, root, sizeof root - 1);
  fdpath(link, sizeof link, fd);
  ssize_t a = readlink(link, at, sizeof at - 1);
  if (r < 0 || a < 0) die("readlink %s: %s", link, strerror(errno));
  root[r] = 0;
  at[a] = 0;
  size_t rl = strcmp(root, "/") == 0 ? 0 : (size_t)r;
  if (strncmp(at, root, rl) != 0 || (at[rl] != '/' && at[rl] != 0)) die("%s resolves outside the container's root", at);
  snprintf(out, n, "%s", at[rl] ? at + rl : "/");
}

/* Is `path` the guarded directory g or below it? 1: below, 2: g itself, 0: neither. */
static int under(const char *path, const char *g) {
  size_t n = strlen(g);
  if (strncmp(path, g, n) != 0) return 0;
  if (path[n] == 0) return 2;
  return path[n] == '/' ? 1 : 0;
}

/* mkdir -p inside the root; the last component is a file (touch) when as_file. */
static void make_in_root(int rootfd, const char *path, int as_file) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  char *p = buf;
  while (*p == '/') p++;
  for (char *s = p;; s++) {
    int last = (*s == 0);
    if (*s == '/' || last) {
      char save = *s;
      *s = 0;
      if (*p) {
        int fd = open_in_root(rootfd, buf, O_PATH);
        if (fd >= 0)
          close(fd);
        else if (errno == ENOENT) {
          /* create in the (safely opened) parent */
          char *slash = strrchr(buf, '/');
          const char *name = slash ? slash + 1 : buf;
          int pfd;
          if (slash && slash != buf) {
            *slash = 0;
            pfd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
            *slash = '/';
          } else
            pfd = dup(rootfd);
          if (pfd < 0) die("open parent of %s: %s", buf, strerror(errno));
          if (last && as_file) {
            int f = openat(pfd, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (f < 0 && errno != EEXIST) die("create %s: %s", buf, strerror(errno));
            if (f >= 0) close(f);
          } else if (mkdirat(pfd, name, 0755) < 0 && errno != EEXIST)
            die("mkdir %s: %s", buf, strerror(errno));
          close(pfd);
        } else
          die("open %s: %s", buf, strerror(errno));
      }
      *s = save;
      if (last) break;
    }
  }
}

/* ---------------------------------------------------------------- mounts */

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * tmpcopyup: the tree below `from` (the image's, hidden by the new tmpfs) into
 * `to`. Nothing is followed: symlinks are copied as links, every open is
 * O_NOFOLLOW under a directory descriptor, so the image's links cannot make
 * the copy read or write outside it. The tmpfs's size and the container's
 * memory limit bound what a large tree can take.
 */
static void copy_tree(int from, int to, const char *where, int depth) {
  if (depth > 256) die("tmpcopyup %s: deeper than 256 directories", where);
  int dup_from = dup(from);
  DIR *d = dup_from >= 0 ? fdopendir(dup_from) : NULL;
  if (!d) die("tmpcopyup %s: %s", where, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
    struct stat st;
    if (fstatat(from, n, &st, AT_SYMLINK_NOFOLLOW) < 0) die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
    mode_t mode = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(to, n, 0700) < 0) die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
      int a = openat(from, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int b = openat(to, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (a < 0 || b < 0) die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
      copy_tree(a, b, where, depth + 1);
      close(a);
      close(b);
    } else if (S_ISREG(st.st_mode)) {
      int a = openat(from, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      int b = openat(to, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (a < 0 || b < 0) die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
      for (;;) {
        ssize_t c = sendfile(b, a, NULL, 1 << 20);
        if (c == 0) break;
        if (c < 0) die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
      }
      close(a);
      close(b);
    } else if (S_ISLNK(st.st_mode)) {
      char link[4096];
      ssize_t l = readlinkat(from, n, link, sizeof link - 1);
      if (l < 0) die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
      link[l] = 0;
      if (symlinkat(link, to, n) < 0) die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
    } else if (S_ISSOCK(st.st_mode)) {
      continue; /* a socket is nothing without its listener */
    } else if (mknodat(to, n, (st.st_mode & S_IFMT) | 0600, st.st_rdev) < 0) {
      die("tmpcopyup %s/%s: %s", where, n, strerror(errno));
    }
    if (fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) die("tmpcopyup %s/%s: chown: %s", where, n, strerror(errno));
    if (!S_ISLNK(st.st_mode) && fchmodat(to, n, mode, 0) < 0) die("tmpcopyup %s/%s: chmod: %s", where, n, strerror(errno));
  }
  closedir(d);
}

static void do_mount(const struct plan *p, int rootfd, const struct mnt *m) {
  int bind = (m->flags & MS_BIND) != 0;
  int file = bind && !is_dir(m->src);
  make_in_root(rootfd, m->dst, file);
  int fd;
  if (m->how & HOW_NO_SYMLINK) {
    fd = open_in_root_how(rootfd, m->dst, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS_);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR))
      die("mount destination %s: filesystem %s must be mounted on an ordinary directory (the image has a symlink or a file there)", m->dst,
          m->type);
  } else
    fd = open_in_root(rootfd, m->dst, O_PATH);
  if (fd < 0) die("open mount point %s: %s", m->dst, strerror(errno));
  /* where the destination really is, after the image's symlinks: a guarded tree (/proc) takes no mount of the config's */
  char resolved[4096];
  path_in_root(rootfd, fd, resolved, sizeof resolved);
  for (int g = 0; g < p->nguards; g++) {
    int u = under(resolved, p->guards[g]);
    if (!u || (u == 2 && (m->how & HOW_MAY_COVER))) continue;
    int allowed = 0;
    for (int a = 0; a < p->nguard_allows; a++)
      if (!strcmp(resolved, p->guard_allows[a])) allowed = 1;
    if (!allowed) die("mount destination %s (%s in the container) is inside %s: refused", m->dst, resolved, p->guards[g]);
  }
  char target[64];
  fdpath(target, sizeof target, fd);
  if (bind) {
    if (mount(m->src, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
      die("bind mount %s on %s: %s", m->src, m->dst, strerror(errno));
    unsigned long extra = m->flags & ~(unsigned long)(MS_BIND | MS_REC);
    if (extra) {
      /* the bind mount is new: reopen so the remount hits it, not the mount point below */
      close(fd);
      fd = open_in_root(rootfd, m->dst, O_PATH);
      if (fd < 0) die("reopen %s: %s", m->dst, strerror(errno));
      fdpath(target, sizeof target, fd);
      if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | extra, NULL) < 0) {
        /* locked flags (nodev/nosuid of the source) must be kept: retry with the source's */
        die("remount %s with flags 0x%lx: %s", m->dst, extra, strerror(errno));
      }
    }
  } else if (m->how & HOW_COPY_UP) {
    /* what the image has there, opened before the tmpfs hides it, is copied into it; then read-only if asked */
    int below = open_in_root(rootfd, m->dst, O_RDONLY | O_DIRECTORY);
    if (below < 0) die("tmpcopyup %s: %s", m->dst, strerror(errno));
    const char *data = *m->data ? m->data : NULL;
    if (mount(m->src, target, m->type, m->flags & ~(unsigned long)MS_RDONLY, data) < 0)
      die("mount %s (%s) on %s: %s", m->src, m->type, m->dst, strerror(errno));
    close(fd);
    fd = open_in_root(rootfd, m->dst, O_RDONLY | O_DIRECTORY);
    if (fd < 0) die("reopen %s: %s", m->dst, strerror(errno));
    struct stat st;
    if (fstat(below, &st) < 0) die("tmpcopyup %s: %s", m->dst, strerror(errno));
    copy_tree(below, fd, m->dst, 0);
    if (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, st.st_mode & 07777) < 0) die("tmpcopyup %s: %s", m->dst, strerror(errno));
    close(below);
    fdpath(target, sizeof target, fd);
    if ((m->flags & MS_RDONLY) && mount(NULL, target, NULL, MS_REMOUNT | m->flags, data) < 0)
      die("remount %s read-only: %s", m->dst, strerror(errno));
  } else {
    const char *data = *m->data ? m->data : NULL;
    if (mount(m->src, target, m->type, m->flags, data) < 0) die("mount %s (%s) on %s: %s", m->src, m->type, m->dst, strerror(errno));
  }
  if (m->prop) {
    close(fd);
    fd = open_in_root(rootfd, m->dst, O_PATH);
    if (fd < 0) die("reopen %s: %s", m->dst, strerror(errno));
    fdpath(target, sizeof target, fd);
    if (mount(NULL, target, NULL, m->prop, NULL) < 0) die("propagation of %s: %s", m->dst, strerror(errno));
  }
  close(fd);
}

static void make_dev(int rootfd, const struct dev *d) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", d->path);
  char *slash = strrchr(buf, '/');
  if (slash && slash != buf) {
    *slash = 0;
    make_in_root(rootfd, buf, 0);
    *slash = '/';
  }
  char *dir = buf;
  const char *name = d->path;
  int pfd;
  if (slash) {
    *slash = 0;
    name = slash + 1;
    pfd = open_in_root(rootfd, *dir ? dir : "/", O_PATH | O_DIRECTORY);
  } else
    pfd = dup(rootfd);
  if (pfd < 0) die("open parent of %s: %s", d->path, strerror(errno));
  mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
  unlinkat(pfd, name, 0);
  if (mknodat(pfd, name, type | (d->mode & 07777), makedev(d->major, d->minor)) < 0) {
    if (errno != EPERM) die("mknod %s: %s", d->path, strerror(errno));
    /* in a user namespace: bind the host's node instead */
    int f = openat(pfd, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0) die("create %s: %s", d->path, strerror(errno));
    close(f);
    char host[4096], target[64];
    snprintf(host, sizeof host, "%s", d->path);
    int fd = openat(pfd, name, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    fdpath(target, sizeof target, fd);
    if (mount(host, target, NULL, MS_BIND, NULL) < 0) die("bind device %s: %s", d->path, strerror(errno));
    close(fd);
  } else {
    if (fchownat(pfd, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) die("chown %s: %s", d->path, strerror(errno));
    if (fchmodat(pfd, name, d->mode & 07777, 0) < 0) die("chmod %s: %s", d->path, strerror(errno));
  }
  close(pfd);
}

/*
 * After pivot_root: paths are the guest's own, and every mount is made on a
 * descriptor (/proc/self/fd/N), so what was checked is what gets mounted.
 */
static int null_fd = -1;

/* The container's /dev/null, checked to be the null device: an image's symlink or file there would
 * make a mask expose what it points at instead of hiding (CVE-2025-31133). */
static int null_device(void) {
  if (null_fd >= 0) return null_fd;
  null_fd = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (null_fd < 0 || fstat(null_fd, &st) < 0) die("mask: open /dev/null: %s", strerror(errno));
  if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) die("mask: /dev/null in the container is not the null device (1:3): refused");
  return null_fd;
}

static void mask_path(const char *p) {
  int fd = open(p, O_PATH | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return;
    die("mask %s: %s", p, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) < 0) die("mask %s: %s", p, strerror(errno));
  char target[64], src[64];
  fdpath(target, sizeof target, fd);
  if (S_ISDIR(st.st_mode)) {
    if (mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mask %s: %s", p, strerror(errno));
  } else {
    fdpath(src, sizeof src, null_device());
    if (mount(src, target, NULL, MS_BIND, NULL) < 0) die("mask %s: %s", p, strerror(errno));
  }
  close(fd);
}

/* The flags of the mount a path is on that a bind remount must keep (nosuid, nodev, noexec, atime). */
static unsigned long kept_flags(const char *target) {
  struct statvfs v;
  if (statvfs(target, &v) < 0) die("statvfs %s: %s", target, strerror(errno));
  unsigned long f = 0;
  if (v.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (v.f_flag & ST_NODEV) f |= MS_NODEV;
  if (v.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (v.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (v.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (v.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

/* Binds a path onto itself and remounts it with its own flags, read-only or not; 0, or -1 if it is absent. */
static int rebind_keeping(const char *p, unsigned long bind_flags, unsigned long ro) {
  int fd = open(p, O_PATH | O_CLOEXEC);
  if (fd < 0) return -1;
  char target[64];
  fdpath(target, sizeof target, fd);
  if (mount(target, target, NULL, MS_BIND | bind_flags, NULL) < 0) die("bind %s: %s", p, strerror(errno));
  close(fd);
  /* the new bind is on top now: open it again so the remount hits it */
  fd = open(p, O_PATH | O_CLOEXEC);
  if (fd < 0) die("reopen %s: %s", p, strerror(errno));
  fdpath(target, sizeof target, fd);
  if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | bind_flags | ro | kept_flags(target), NULL) < 0)
    die("remount %s: %s", p, strerror(errno));
  close(fd);
  return 0;
}

static void readonly_path(const char *p) {
  if (rebind_keeping(p, MS_REC, MS_RDONLY) < 0 && errno != ENOENT && errno != ENOTDIR) die("readonly %s: %s", p, strerror(errno));
}

/* A writable hole in a read-only path (the SET_UTSNAME ccap: /proc/sys/kernel/hostname). */
static void writable_path(const char *p) {
  if (rebind_keeping(p, 0, 0) < 0) die("cannot make %s writable: %s", p, strerror(errno));
}

/* A sysctl of the container's own namespaces, written only into a real procfs (never through a symlink). */
static void write_sysctl(const char *key, const char *value) {
  char path[512];
  snprintf(path, sizeof path, "/proc/sys/%s", key);
  for (char *q = path + 10; *q; q++)
    if (*q == '.') *q = '/';
  int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", path, strerror(errno));
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC) die("sysctl %s: %s is not on procfs: refused", key, path);
  size_t n = strlen(value);
  if (write(fd, value, n) != (ssize_t)n) die("write '%s' to %s: %s", value, path, strerror(errno));
  close(fd);
}

/* ---------------------------------------------------------- the process */

static void load_seccomp(const struct plan *p) { load_seccomp_filter(p->seccomp, p->seccomp_len); }

static void set_identity_and_caps(const struct plan *p) {
  int lastcap = last_cap();
  if (p->have_caps) {
    for (int c = 0; c <= lastcap; c++)
      if (!(p->caps[0] >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
        die("drop capability %d from the bounding set: %s", c, strerror(errno));
  }
  if (p->have_user) {
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) die("keepcaps: %s", strerror(errno));
    if (setgroups((size_t)p->ngroups, p->groups) < 0 && !(errno == EPERM && p->ngroups == 0)) die("setgroups: %s", strerror(errno));
    if (setresgid(p->gid, p->gid, p->gid) < 0) die("setgid %u: %s", p->gid, strerror(errno));
    if (setresuid(p->uid, p->uid, p->uid) < 0) die("setuid %u: %s", p->uid, strerror(errno));
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) die("keepcaps: %s", strerror(errno));
  }
  if (p->have_caps) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 2; i++) {
      d[i].effective = (uint32_t)(p->caps[1] >> (32 * i));
      d[i].permitted = (uint32_t)(p->caps[2] >> (32 * i));
      d[i].inheritable = (uint32_t)(p->caps[3] >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, d) != 0)
      die("capset (permitted 0x%llx): %s%s", (unsigned long long)p->caps[2], strerror(errno),
          errno == EPERM ? " (a capability the runtime itself does not hold?)" : "");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
      die("clear ambient capabilities: %s", strerror(errno));
    /* the kernel keeps ambient within permitted and inheritable; runc skips the rest the same way */
    uint64_t ambient = p->caps[4] & p->caps[2] & p->caps[3];
    for (int c = 0; c <= lastcap; c++)
      if ((ambient >> c & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
        die("raise ambient capability %d: %s", c, strerror(errno));
  }
}

/* The hook program resolved on the host (exe-host), as a sealed copy; -1 when there is none. */
static int exe_host_fd = -1;

/* chdir into the process's cwd, which must be inside the container (CVE-2024-21626: not a leaked descriptor's). */
static void enter_cwd(const char *cwd) {
  if (chdir(cwd) < 0) die("chdir %s: %s", cwd, strerror(errno));
  char buf[4096];
  /* glibc's getcwd fails with ENOENT where the kernel says "(unreachable)": outside our root */
  if (!getcwd(buf, sizeof buf) || buf[0] != '/') die("process.cwd %s is outside the container: refused", cwd);
}

/* The AppArmor profile for the next exec, written only into a real procfs (CVE-2019-16884: an image's fake /proc). */
static void apply_apparmor(const char *profile) {
  int fd = open("/proc/self/attr/apparmor/exec", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fd = open("/proc/self/attr/exec", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) die("apparmor: open /proc/self/attr/exec: %s", strerror(errno));
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC) die("apparmor: /proc/self/attr is not on procfs: refused");
  char v[4096];
  int n = snprintf(v, sizeof v, "exec %s", profile);
  if (n < 0 || (size_t)n >= sizeof v || write(fd, v, (size_t)n) != n) die("apparmor: apply profile %s: %s", profile, strerror(errno));
  close(fd);
}

/*
 * HOME when the process's environment has none (Docker and the kubelet leave
 * it to the runtime): the user's home in the container's /etc/passwd, or /,
 * as runc. The file is the container's: read only if it is a regular file
 * (a fifo there must not hang the start), at most 1 MiB of it.
 */
static void set_home(struct plan *p) {
  static char home[4096 + 8];
  snprintf(home, sizeof home, "HOME=/");
  int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    static char buf[1 << 20];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    uid_t uid = p->have_user ? p->uid : 0;
    for (char *line = buf, *next; line && *line; line = next) {
      next = strchr(line, '\n');
      if (next) *next++ = 0;
      char *f[7] = {0};
      int k = 0;
      for (char *q = line; k < 7; k++) {
        f[k] = q;
        q = strchr(q, ':');
        if (!q) break;
        *q++ = 0;
      }
      if (k >= 5 && f[2] && f[5] && *f[5] && strtoul(f[2], NULL, 10) == uid && f[2][0] >= '0' && f[2][0] <= '9') {
        snprintf(home, sizeof home, "HOME=%.4096s", f[5]);
        break;
      }
    }
  }
  if (fd >= 0) close(fd);
  p->envs[p->nenvs++] = home;
  p->envs[p->nenvs] = NULL;
}

/* The process's own setup after the namespaces: identity, capabilities, seccomp, exec. */
static void become_process(struct plan *p) {
  if (p->home_from_passwd) set_home(p);
  if (p->have_umask) umask(p->umask_v);
  if (p->apparmor) apply_apparmor(p->apparmor);
  /* without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while still privileged */
  if (!p->nnp) load_seccomp(p);
  set_identity_and_caps(p);
  if (p->cwd) enter_cwd(p->cwd);
  if (p->nnp) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs: %s", strerror(errno));
    load_seccomp(p);
  }
  /* the descriptors asked for (--preserve-fds) cross; every other was closed at start or closes on exec */
  for (int fd = 3; fd < 3 + p->preserve; fd++) fcntl(fd, F_SETFD, 0);
  extern char **environ;
  environ = (char **)p->envs;
  if (exe_host_fd >= 0) {
    syscall(SYS_execveat, exe_host_fd, "", p->args, p->envs, AT_EMPTY_PATH);
    /* a script: the kernel reopens it by /dev/fd/N, which a close-on-exec descriptor cannot be */
    if (errno == ENOENT && fcntl(exe_host_fd, F_SETFD, 0) == 0) syscall(SYS_execveat, exe_host_fd, "", p->args, p->envs, AT_EMPTY_PATH);
    die("exec %s: %s", p->exe_host, strerror(errno));
  }
  if (p->exe)
    execve(p->exe, (char *const *)p->args, (char *const *)p->envs);
  else
    execvp(p->args[0], (char *const *)p->args);
  die("exec %s: %s", p->exe ? p->exe : p->args[0], strerror(errno));
}

/* Is args[0] an executable in the guest's PATH? Checked before "ok" so create fails, as runc does. */
static void check_executable(const struct plan *p) {
  if (exe_host_fd >= 0) return; /* opened on the host already */
  const char *a = p->exe ? p->exe : p->args[0];
  if (!a) die("process.args is empty");
  if (strchr(a, '/')) {
    if (access(a, X_OK) < 0) die("exec: %s: %s", a, strerror(errno));
    return;
  }
  const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (int i = 0; i < p->nenvs; i++)
    if (!strncmp(p->envs[i], "PATH=", 5)) path = p->envs[i] + 5;
  char buf[4096];
  const char *s = path;
  while (*s) {
    const char *e = strchr(s, ':');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    snprintf(buf, sizeof buf, "%.*s/%s", (int)n, s, a);
    if (access(buf, X_OK) == 0) return;
    if (!e) break;
    s = e + 1;
  }
  die("exec: \"%s\": executable file not found in $PATH", a);
}

static int console_connect(const char *path) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket: %s", strerror(errno));
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) die("console socket path too long");
  strcpy(a.sun_path, path);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect console socket %s: %s", path, strerror(errno));
  return s;
}

/* A pty from the guest's devpts: the master goes to the console socket, the slave becomes stdio. */
static void setup_terminal(const struct plan *p, int sock) {
  int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) die("open /dev/ptmx: %s", strerror(errno));
  if (grantpt(m) < 0 || unlockpt(m) < 0) die("unlockpt: %s", strerror(errno));
  int sfd = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
  if (sfd < 0) {
    char *name = ptsname(m);
    if (!name) die("ptsname: %s", strerror(errno));
    sfd = open(name, O_RDWR | O_NOCTTY);
    if (sfd < 0) die("open %s: %s", name, strerror(errno));
  }
  if (p->rows || p->cols) {
    struct winsize ws = {.ws_row = (unsigned short)p->rows, .ws_col = (unsigned short)p->cols};
    ioctl(m, TIOCSWINSZ, &ws);
  }
  char name[] = "/dev/ptmx";
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name - 1};
  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &m, sizeof(int));
  if (sendmsg(sock, &msg, 0) < 0) die("send the console to the socket: %s", strerror(errno));
  close(m);
  close(sock);
  if (p->console_dev) {
    /* the slave on /dev/console, as runc: reached through no symlink (CVE-2025-52565), mounted by descriptor */
    int t = open("/dev/console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (t < 0 || fstat(t, &st) < 0) die("open /dev/console: %s", strerror(errno));
    if (S_ISLNK(st.st_mode)) die("/dev/console in the container is a symlink: refused");
    char from[64], to[64];
    fdpath(from, sizeof from, sfd);
    fdpath(to, sizeof to, t);
    if (mount(from, to, NULL, MS_BIND, NULL) < 0) die("bind the console on /dev/console: %s", strerror(errno));
    close(t);
  }
  for (int i = 0; i < 3; i++)
    if (dup2(sfd, i) < 0) die("dup2 console: %s", strerror(errno));
  if (ioctl(0, TIOCSCTTY, 0) < 0) die("TIOCSCTTY: %s", strerror(errno));
  if (sfd > 2) close(sfd);
}

/* ------------------------------------------------------------ the init */

static void init_container(struct plan *p, int gate, int fifo, int sock) {
  char c;
  /* the parent writes our id maps first */
  if (read(gate, &c, 1) != 1) die("the parent died before the id maps were written");
  close(gate);
  int has_user = 0, has_mnt = 0;
  for (int i = 0; i < p->nns; i++) {
    if (p->ns[i].type == CLONE_NEWUSER) has_user = 1;
    if (p->ns[i].type == CLONE_NEWNS) has_mnt = 1;
  }
  if (has_user) {
    if (setresgid(0, 0, 0) < 0) die("setgid 0 in the user namespace: %s", strerror(errno));
    if (setresuid(0, 0, 0) < 0) die("setuid 0 in the user namespace: %s", strerror(errno));
  }
  if (setsid() < 0) die("setsid: %s", strerror(errno));
  /* nothing we mount may reach the host: / becomes a slave (private when asked); a shared
   * rootfsPropagation is applied after pivot_root, which refuses a shared parent */
  if (has_mnt && mount(NULL, "/", NULL, MS_REC | ((p->rootprop & MS_PRIVATE) ? MS_PRIVATE : MS_SLAVE), NULL) < 0)
    die("make / a slave: %s", strerror(errno));
  if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind the root %s: %s", p->rootfs, strerror(errno));
  /* without a mount namespace of its own the container's mounts live in the host's, all below
   * this one bind (the runtime detaches it at delete); private, so none propagates elsewhere */
  if (!has_mnt && mount(NULL, p->rootfs, NULL, MS_PRIVATE | MS_REC, NULL) < 0) die("make the root private: %s", strerror(errno));
  int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) die("open root %s: %s", p->rootfs, strerror(errno));
  for (int i = 0; i < p->nmounts; i++) do_mount(p, rootfd, &p->mounts[i]);
  for (int i = 0; i < p->ndevs; i++) make_dev(rootfd, &p->devs[i]);
  for (int i = 0; i < p->nsymlinks; i++) {
    int fd = open_in_root(rootfd, p->symlinks[i][1], O_PATH | O_NOFOLLOW);
    if (fd >= 0) {
      close(fd);
      continue;
    }
    if (symlinkat(p->symlinks[i][0], rootfd, p->symlinks[i][1] + (p->symlinks[i][1][0] == '/')) < 0 && errno != EEXIST)
      die("symlink %s: %s", p->symlinks[i][1], strerror(errno));
  }
  /* a cwd the image lacks is made, as runc does (containerd passes a pod's workingDir as given) */
  if (p->mkcwd && p->cwd) make_in_root(rootfd, p->cwd, 0);
  if (p->console_dev) {
    /* the place of /dev/console, made now: the root may be remounted read-only below */
    make_in_root(rootfd, "/dev", 0);
    int d = open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
    if (d < 0) die("open /dev: %s", strerror(errno));
    int f = openat(d, "console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (f < 0 && errno != EEXIST) die("create /dev/console: %s", strerror(errno));
    if (f >= 0) close(f);
    close(d);
  }
  if (fchdir(rootfd) < 0) die("chdir root: %s", strerror(errno));
  if (!has_mnt) {
    if (chroot(".") < 0) die("chroot: %s", strerror(errno));
  } else if (p->nopivot) {
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) die("move the root: %s", strerror(errno));
    if (chroot(".") < 0) die("chroot: %s", strerror(errno));
  } else {
    /* pivot_root(".", "."): the old root is stacked on the new one; detach it */
    if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root: %s", strerror(errno));
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) die("make the old root a slave: %s", strerror(errno));
    if (umount2(".", MNT_DETACH) < 0) die("detach the old root: %s", strerror(errno));
  }
  if (chdir("/") < 0) die("chdir /: %s", strerror(errno));
  close(rootfd);
  for (int i = 0; i < p->nsysctls; i++) write_sysctl(p->sysctls[i][0], p->sysctls[i][1]);
  for (int i = 0; i < p->nros; i++) readonly_path(p->ros[i]);
  for (int i = 0; i < p->nrws; i++) writable_path(p->rws[i]);
  for (int i = 0; i < p->nmasks; i++) mask_path(p->masks[i]);
  if (p->rootro && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) die("remount / read-only: %s", strerror(errno));
  if (p->rootprop && mount(NULL, "/", NULL, p->rootprop, NULL) < 0) die("root propagation: %s", strerror(errno));
  if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0) die("sethostname: %s", strerror(errno));
  if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0) die("setdomainname: %s", strerror(errno));
  if (sock >= 0) setup_terminal(p, sock);
  if (p->exec_check) {
    if (p->cwd) enter_cwd(p->cwd);
    check_executable(p);
    if (chdir("/") < 0) die("chdir /: %s", strerror(errno));
  }
  dprintf(SYNC_FD, "ok\n");
  close(SYNC_FD);
  if (fifo >= 0) {
    /* wait for `start`: it opens the fifo for writing and writes one byte */
    struct pollfd pf = {.fd = fifo, .events = POLLIN};
    for (;;) {
      int r = poll(&pf, 1, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) _exit(125);
      if (read(fifo, &c, 1) == 1) break;
      /* a writer that closed without a byte: wait again */
      pf.revents = 0;
    }
    close(fifo);
  }
  become_process(p);
}

static void write_maps(pid_t pid, const struct plan *p) {
  char path[64];
  if (p->gidmap) {
    /* setgroups stays allowed: we are root in the parent namespace */
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    write_file(path, p->gidmap);
  }
  if (p->uidmap) {
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    write_file(path, p->uidmap);
  }
}

static void set_rlimits(pid_t pid, const struct plan *p) {
  for (int i = 0; i < p->nrlimits; i++) {
    struct rlimit r = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
    if (prlimit(pid, p->rlimits[i].res, &r, NULL) < 0) die("setrlimit %d: %s", p->rlimits[i].res, strerror(errno));
  }
}

/* Join the namespaces given by path: the user namespace first (it owns the others), mount last. */
static void join_namespaces(struct ns *list, int n) {
  int fds[16];
  for (int i = 0; i < n; i++) {
    fds[i] = -1;
    if (!*list[i].path) continue;
    fds[i] = open(list[i].path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) die("open namespace %s: %s", list[i].path, strerror(errno));
  }
  int order[] = {CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP,
#ifdef CLONE_NEWTIME
                 CLONE_NEWTIME,
#endif
                 CLONE_NEWNS};
  for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
    for (int i = 0; i < n; i++)
      if (fds[i] >= 0 && list[i].type == order[o]) {
        if (setns(fds[i], list[i].type) < 0) die("join %s namespace %s: %s", ns_file(list[i].type), list[i].path, strerror(errno));
        close(fds[i]);
        fds[i] = -1;
      }
}

static void join_cgroups(const struct plan *p) {
  for (int i = 0; i < p->ncgroups; i++) write_file(p->cgroups[i], "0");
}

static int wait_child(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return 125;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 125;
}

/* Before anything of the container is joined: its /proc cannot stand in for ours. */
static void set_oom(const struct plan *p) {
  if (!p->have_oom) return;
  char v[32];
  snprintf(v, sizeof v, "%d", p->oom);
  write_file("/proc/self/oom_score_adj", v);
}

static int cmd_create(struct plan *p) {
  if (!p->rootfs) die("plan: no rootfs");
  /* the console socket is the caller's, on the host: connected before any namespace is joined */
  int sock = p->terminal && p->console ? console_connect(p->console) : -1;
  set_oom(p);
  join_namespaces(p->ns, p->nns);
  join_cgroups(p);
  int flags = 0;
  for (int i = 0; i < p->nns; i++)
    if (!*p->ns[i].path) flags |= p->ns[i].type;
  /* opened here, not in the init: in a user namespace it may not reach the state directory */
  int fifo = -1;
  if (p->fifo) {
    fifo = open(p->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fifo < 0) die("open exec fifo %s: %s", p->fifo, strerror(errno));
  }
  int gate[2];
  if (pipe2(gate, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  if (p->wait) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) die("clone: %s", strerror(errno));
  if (pid == 0) {
    close(gate[1]);
    init_container(p, gate[0], fifo, sock);
  }
  close(gate[0]);
  if (fifo >= 0) close(fifo);
  if (sock >= 0) close(sock);
  write_maps(pid, p);
  set_rlimits(pid, p);
  if (write(gate[1], "g", 1) != 1) die("release the init: %s", strerror(errno));
  close(gate[1]);
  dprintf(SYNC_FD, "pid %d\n", pid);
  if (!p->wait) return 0;
  close(SYNC_FD);
  return wait_child(pid);
}

static int cmd_exec(struct plan *p, int detach) {
  if (!p->join_pid) die("plan: exec needs pid");
  /* on the host, before anything of the container is joined: the console socket, the hook's program, oom */
  int sock = p->terminal && p->console ? console_connect(p->console) : -1;
  if (p->exe_host) {
    int f = open(p->exe_host, O_RDONLY | O_CLOEXEC);
    if (f < 0) die("open %s: %s", p->exe_host, strerror(errno));
    exe_host_fd = sealed_copy(f, "paene-hook", 1);
    close(f);
  }
  set_oom(p);
  join_cgroups(p);
  join_namespaces(p->ns, p->nns);
  int report[2];
  if (pipe2(report, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    close(report[0]);
    /* the child's errors go to the report pipe, read by the parent; it closes on exec */
    if (dup2(report[1], SYNC_FD) < 0) _exit(125);
    fcntl(SYNC_FD, F_SETFD, FD_CLOEXEC);
    close(report[1]);
    set_rlimits(0, p); /* itself, before the exec can race a prlimit from the parent */
    if (setsid() < 0) die("setsid: %s", strerror(errno));
    if (p->chroot_dir && (chdir(p->chroot_dir) < 0 || chroot(".") < 0)) die("chroot %s: %s", p->chroot_dir, strerror(errno));
    if (sock >= 0) setup_terminal(p, sock);
    if (p->cwd) enter_cwd(p->cwd);
    check_executable(p);
    become_process(p);
  }
  close(report[1]);
  if (sock >= 0) close(sock);
  char buf[2048];
  ssize_t n = read(report[0], buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    waitpid(pid, NULL, 0);
    die("%s", strncmp(buf, "err ", 4) == 0 ? buf + 4 : buf);
  }
  dprintf(SYNC_FD, "pid %d\n", pid);
  if (detach) return 0;
  close(SYNC_FD);
  return wait_child(pid);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    dprintf(2, "usage: paene-oci create|exec|exec-detach PLAN [SYNC-FD] (run by paene-runc)\n");
    return 2;
  }
  if (!strcmp(argv[1], "echo")) {
    static struct plan e;
    sync_fd = 2; /* errors to stderr */
    parse_plan(argv[2], &e);
    return echo_plan(&e);
  }
  if (argc > 3) sync_fd = atoi(argv[3]);
  if (sync_fd < 3 || fcntl(SYNC_FD, F_GETFD) < 0) {
    dprintf(2, "paene-oci: fd %d (the sync pipe) is not open\n", sync_fd);
    return 2;
  }
  fcntl(SYNC_FD, F_SETFD, 0); /* kept across the exec below */
  /* never the host's file to a guest, and no ptrace or /proc of ours for it (CVE-2019-5736) */
  run_from_sealed_copy(argv, "paene-oci");
  signal(SIGPIPE, SIG_IGN);
  static struct plan p;
  parse_plan(argv[2], &p);
  /* only the descriptors asked for cross into the container (CVE-2024-21626): stdio, the preserved
   * ones (3 … 3+N-1, right below the sync pipe) and the sync pipe itself, which closes on exec */
  if (3 + p.preserve != sync_fd) die("plan: %d preserved descriptors, but the sync pipe is fd %d", p.preserve, sync_fd);
  if (syscall(SYS_close_range, sync_fd + 1, ~0U, 0) < 0)
    for (int fd = sync_fd + 1; fd < 65536; fd++) close(fd);
  if (!strcmp(argv[1], "create")) return cmd_create(&p);
  if (!strcmp(argv[1], "exec")) return cmd_exec(&p, 0);
  if (!strcmp(argv[1], "exec-detach")) return cmd_exec(&p, 1);
  die("unknown command %s", argv[1]);
}
