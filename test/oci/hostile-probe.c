/*
 * hostile-probe: the guest's (and sometimes the host's) hands in
 * test/oci/hostile.test.ts. Static, no libraries; each subcommand prints ONE
 * line of JSON on stdout and, with `-o FILE` (before the subcommand), writes
 * the same line to FILE (through FILE.tmp + rename, so a reader never sees
 * half of it). The host parses it; the verdicts are the host's.
 *
 * Every attempt is harmless if it succeeds: files are opened for writing and
 * closed without a byte written or truncated, signals are STOP/CONT pairs.
 *
 *   status [HANDLE_HEX HANDLE_TYPE]   uid/gid, the capability sets, NoNewPrivs, Seccomp,
 *                                     getcwd(), its open fds (by fcntl); with a host file handle:
 *                                     open_by_handle_at(/) and what it read
 *   read PATH                         open O_RDONLY and read up to 256 bytes
 *   openw PATH                        open O_WRONLY (no O_TRUNC, nothing written)
 *   exewatch DIR MAXMS [stop]         keep opening /proc/[0-9]* /exe (O_PATH, and O_WRONLY
 *                                     directly) until DIR/stop exists; then reopen every kept
 *                                     fd through /proc/self/fd/N O_WRONLY; writes DIR/ready
 *                                     first; `stop`: SIGSTOP a new pid while its exe is opened;
 *                                     each entry says whether its mount is read-only (fstatfs)
 *   hostwatch PID MAXMS READYFILE     (on the host) what /proc/PID/exe and argv[0] were while
 *                                     PID lived: distinct (argv0, dev, ino), whether the mount it
 *                                     was reached through is read-only, and a reopen O_WRONLY of
 *                                     each once PID is gone
 *   listen PATH MAXMS READY [STOP]    unix socket at PATH: did a connection bring an SCM_RIGHTS fd
 *                                     (until MAXMS or until the file STOP exists)
 *   mkhandle PATH                     (on the host) name_to_handle_at: the handle as hex
 *   chrootescape PATH                 chroot into a subdirectory, walk up, chroot(".") and read PATH
 *   mountrw PATH                      mount(NULL, PATH, MS_REMOUNT|MS_BIND) rw, then MS_REMOUNT rw
 *   mount TYPE TARGET                 mount(TYPE, TARGET, TYPE): the guest's own mount (hiding /proc)
 *   mknodread PATH b|c MAJ MIN        mknod a node of its own, open it and read (then unlink it)
 *   create PATH                       open(O_CREAT|O_EXCL|O_WRONLY) a new empty file
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- JSON out */

static char out[1 << 20];
static size_t outn;

static void put(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out + outn, sizeof out - outn, fmt, ap);
  va_end(ap);
  if (n > 0) outn += (size_t)n < sizeof out - outn ? (size_t)n : sizeof out - outn - 1;
}

static void putstr(const char *s, size_t len) {
  put("\"");
  for (size_t i = 0; i < len && outn < sizeof out - 8; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') put("\\%c", c);
    else if (c < 0x20 || c >= 0x7f) put("\\u%04x", c);
    else out[outn++] = (char)c;
  }
  put("\"");
}
static void putcs(const char *s) { putstr(s, strlen(s)); }

static const char *errname(int e) {
  switch (e) {
  case 0: return "ok";
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case EACCES: return "EACCES";
  case EROFS: return "EROFS";
  case ETXTBSY: return "ETXTBSY";
  case EINVAL: return "EINVAL";
  case EBADF: return "EBADF";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case ENOSYS: return "ENOSYS";
  case ESTALE: return "ESTALE";
  case EEXIST: return "EEXIST";
  case ENXIO: return "ENXIO";
  case EBUSY: return "EBUSY";
  case ELOOP: return "ELOOP";
  case ENODEV: return "ENODEV";
  case EOPNOTSUPP: return "EOPNOTSUPP";
  case ECONNREFUSED: return "ECONNREFUSED";
  default: {
    static char b[32];
    snprintf(b, sizeof b, "E%d", e);
    return b;
  }
  }
}

static const char *outfile;

static int emit(void) {
  put("}\n");
  if (write(1, out, outn) < 0) { /* the file is what counts */ }
  if (outfile) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", outfile);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd >= 0) {
      if (write(fd, out, outn) < 0) { /* reported by its absence */ }
      fchmod(fd, 0666);
      close(fd);
      rename(tmp, outfile);
    }
  }
  return 0;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void touch(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd >= 0) close(fd);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* ------------------------------------------------------------- status */

static void status_field(const char *status, const char *key, const char *json) {
  const char *p = strstr(status, key);
  char v[64] = "";
  if (p) {
    p += strlen(key);
    while (*p == ' ' || *p == '\t') p++;
    size_t i = 0;
    while (*p && *p != '\n' && i < sizeof v - 1) v[i++] = *p++;
    v[i] = 0;
  }
  put(",\"%s\":", json);
  putcs(v);
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

/* Every open fd, found with fcntl (so a /proc the guest hid does not hide them), with its target. */
static void list_fds(void) {
  int fds[256], n = 0;
  for (int fd = 0; fd < 4096 && n < 256; fd++)
    if (fcntl(fd, F_GETFD) >= 0) fds[n++] = fd;
  put(",\"fds\":[");
  for (int i = 0; i < n; i++) {
    char p[64], t[4096];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fds[i]);
    ssize_t k = readlink(p, t, sizeof t - 1);
    t[k > 0 ? k : 0] = 0;
    put("%s{\"fd\":%d,\"target\":", i ? "," : "", fds[i]);
    putcs(t);
    put("}");
  }
  put("]");
}

static int cmd_status(int argc, char **argv) {
  char st[8192] = "";
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, st, sizeof st - 1);
    st[n > 0 ? n : 0] = 0;
    close(fd);
  }
  put("{\"cmd\":\"status\",\"pid\":%d,\"uid\":%d,\"euid\":%d,\"gid\":%d,\"egid\":%d", getpid(), getuid(), geteuid(), getgid(), getegid());
  status_field(st, "CapInh:", "capInh");
  status_field(st, "CapPrm:", "capPrm");
  status_field(st, "CapEff:", "capEff");
  status_field(st, "CapBnd:", "capBnd");
  status_field(st, "CapAmb:", "capAmb");
  status_field(st, "NoNewPrivs:", "nnp");
  status_field(st, "Seccomp:", "seccomp");
  char cwd[4096];
  put(",\"cwd\":");
  if (getcwd(cwd, sizeof cwd)) putcs(cwd);
  else put("\"!%s\"", errname(errno));
  list_fds();
  if (argc >= 2) {
    /* open_by_handle_at with the host's handle of a file, relative to our own / (same filesystem) */
    const char *hex = argv[0];
    size_t hl = strlen(hex) / 2;
    struct file_handle *fh = calloc(1, sizeof *fh + hl + 1);
    fh->handle_bytes = (unsigned)hl;
    fh->handle_type = atoi(argv[1]);
    for (size_t i = 0; i < hl; i++) fh->f_handle[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int h = open_by_handle_at(root, fh, O_RDONLY);
    put(",\"handle\":\"%s\"", errname(h < 0 ? errno : 0));
    if (h >= 0) {
      char buf[256];
      ssize_t n = read(h, buf, sizeof buf);
      put(",\"handleData\":");
      putstr(buf, n > 0 ? (size_t)n : 0);
      close(h);
    }
  }
  return emit();
}

/* ------------------------------------------------------------- files */

static int cmd_read(const char *path) {
  put("{\"cmd\":\"read\",\"path\":");
  putcs(path);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    put(",\"open\":\"%s\"", errname(errno));
    return emit();
  }
  char buf[256];
  ssize_t n = read(fd, buf, sizeof buf);
  int e = errno;
  close(fd);
  put(",\"open\":\"ok\",\"read\":\"%s\",\"n\":%zd,\"data\":", n < 0 ? errname(e) : "ok", n);
  putstr(buf, n > 0 ? (size_t)n : 0);
  return emit();
}

static int cmd_openw(const char *path) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  put("{\"cmd\":\"openw\",\"path\":");
  putcs(path);
  put(",\"open\":\"%s\"", errname(fd < 0 ? errno : 0));
  if (fd >= 0) close(fd);
  return emit();
}

static int cmd_create(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  put("{\"cmd\":\"create\",\"path\":");
  putcs(path);
  put(",\"open\":\"%s\"", errname(fd < 0 ? errno : 0));
  if (fd >= 0) close(fd);
  return emit();
}

static int cmd_mount(const char *type, const char *target) {
  int r = mount(type, target, type, 0, NULL);
  put("{\"cmd\":\"mount\",\"target\":");
  putcs(target);
  put(",\"mount\":\"%s\"", errname(r < 0 ? errno : 0));
  return emit();
}

/* mknod a device node of our own and read from it (the devices cgroup is what must say no) */
static int cmd_mknodread(const char *path, const char *type, unsigned maj, unsigned min) {
  put("{\"cmd\":\"mknodread\",\"path\":");
  putcs(path);
  unlink(path);
  int r = mknod(path, (type[0] == 'b' ? S_IFBLK : S_IFCHR) | 0600, makedev(maj, min));
  put(",\"mknod\":\"%s\"", errname(r < 0 ? errno : 0));
  if (r == 0) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    put(",\"open\":\"%s\"", errname(fd < 0 ? errno : 0));
    if (fd >= 0) {
      char buf[64];
      ssize_t n = read(fd, buf, sizeof buf);
      put(",\"n\":%zd", n);
      close(fd);
    }
    unlink(path);
  }
  return emit();
}

static int cmd_mountrw(const char *path) {
  int a = mount(NULL, path, NULL, MS_REMOUNT | MS_BIND, NULL);
  int ea = a < 0 ? errno : 0;
  int b = mount(NULL, path, NULL, MS_REMOUNT, NULL);
  int eb = b < 0 ? errno : 0;
  put("{\"cmd\":\"mountrw\",\"bind\":\"%s\",\"plain\":\"%s\"", errname(ea), errname(eb));
  return emit();
}

static int cmd_chrootescape(const char *path) {
  put("{\"cmd\":\"chrootescape\"");
  mkdir("/tmp/.jail", 0700);
  int r = chroot("/tmp/.jail");
  put(",\"chroot\":\"%s\"", errname(r < 0 ? errno : 0));
  if (r == 0) {
    for (int i = 0; i < 64; i++)
      if (chdir("..") < 0) break;
    r = chroot(".");
    put(",\"chroot2\":\"%s\"", errname(r < 0 ? errno : 0));
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  put(",\"open\":\"%s\"", errname(fd < 0 ? errno : 0));
  if (fd >= 0) {
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    put(",\"data\":");
    putstr(buf, n > 0 ? (size_t)n : 0);
    close(fd);
  }
  return emit();
}

/* ------------------------------------------------------------- exe watch */

struct seen {
  int fd; /* O_PATH, kept */
  int pid;
  dev_t dev;
  ino_t ino;
  char argv0[128];
  const char *direct;
  int known; /* the pid was there when we started */
  int ro;    /* the mount it was reached through is read-only */
};
static struct seen seen[512];
static int nseen;

static void argv0_of(int pid, char *buf, size_t n) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  buf[0] = 0;
  if (fd < 0) return;
  ssize_t r = read(fd, buf, n - 1);
  buf[r > 0 ? r : 0] = 0;
  close(fd);
}

static int cmd_exewatch(const char *dir, long long maxms, int stop) {
  char path[4200];
  int self = getpid();
  int pids_at_start[256], nstart = 0;
  {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)))
      if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && nstart < 256) pids_at_start[nstart++] = atoi(e->d_name);
    if (d) closedir(d);
  }
  snprintf(path, sizeof path, "%s/ready", dir);
  touch(path);
  char stopfile[4200];
  snprintf(stopfile, sizeof stopfile, "%s/stop", dir);
  long long end = now_ms() + maxms;
  long loops = 0;
  int stopped = 0;
  DIR *proc = opendir("/proc");
  while (now_ms() < end) {
    if ((loops & 63) == 0 && exists(stopfile)) break;
    loops++;
    rewinddir(proc);
    struct dirent *e;
    while ((e = readdir(proc))) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      int pid = atoi(e->d_name);
      if (pid == self) continue;
      int known = 0;
      for (int i = 0; i < nstart; i++)
        if (pids_at_start[i] == pid) known = 1;
      /* a new process: hold it still while its exe is looked at (not the init: it ignores SIGSTOP) */
      int held = 0;
      if (stop && !known && pid != 1 && kill(pid, SIGSTOP) == 0) held = 1, stopped++;
      char p[64];
      snprintf(p, sizeof p, "/proc/%d/exe", pid);
      int fd = open(p, O_PATH | O_CLOEXEC);
      if (fd >= 0) {
        struct stat st;
        char a0[128];
        argv0_of(pid, a0, sizeof a0);
        int dup_ = 0;
        if (fstat(fd, &st) == 0) {
          for (int i = 0; i < nseen; i++)
            if (seen[i].dev == st.st_dev && seen[i].ino == st.st_ino && !strcmp(seen[i].argv0, a0)) dup_ = 1;
        } else dup_ = 1;
        if (!dup_ && nseen < 512) {
          struct seen *s = &seen[nseen++];
          s->fd = fd;
          s->pid = pid;
          s->dev = st.st_dev;
          s->ino = st.st_ino;
          s->known = known;
          struct statfs sf;
          s->ro = fstatfs(fd, &sf) == 0 && (sf.f_flags & ST_RDONLY);
          snprintf(s->argv0, sizeof s->argv0, "%s", a0);
          int w = open(p, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
          s->direct = strdup(errname(w < 0 ? errno : 0));
          if (w >= 0) close(w);
        } else close(fd);
      }
      if (held) kill(pid, SIGCONT);
    }
  }
  closedir(proc);
  /* the runtime is gone: try to reach each kept file for writing again (never writing a byte) */
  put("{\"cmd\":\"exewatch\",\"loops\":%ld,\"stopped\":%d,\"seen\":[", loops, stopped);
  for (int i = 0; i < nseen; i++) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", seen[i].fd);
    int w = open(p, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    int e = errno;
    if (w >= 0) close(w);
    put("%s{\"pid\":%d,\"known\":%s,\"dev\":\"%u:%u\",\"ino\":%llu,\"ro\":%s,\"argv0\":", i ? "," : "", seen[i].pid, seen[i].known ? "true" : "false",
        major(seen[i].dev), minor(seen[i].dev), (unsigned long long)seen[i].ino, seen[i].ro ? "true" : "false");
    putcs(seen[i].argv0);
    put(",\"direct\":\"%s\",\"reopen\":\"%s\"}", seen[i].direct, errname(w < 0 ? e : 0));
  }
  put("]");
  snprintf(path, sizeof path, "%s/exewatch.json", dir);
  outfile = path;
  return emit();
}

static int zombie_or_gone(const char *statpath) {
  char buf[512];
  int fd = open(statpath, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 1;
  buf[n] = 0;
  char *r = strrchr(buf, ')');
  return !r || r[1] == 0 || r[2] == 'Z' || r[2] == 'X';
}

static int cmd_hostwatch(int pid, long long maxms, const char *ready) {
  struct {
    char a0[128];
    dev_t dev;
    ino_t ino;
    int fd, ro;
  } got[64];
  int ngot = 0;
  long long end = now_ms() + maxms;
  long loops = 0;
  char p[64], s[64];
  snprintf(p, sizeof p, "/proc/%d/exe", pid);
  snprintf(s, sizeof s, "/proc/%d/stat", pid);
  touch(ready);
  while (now_ms() < end) {
    loops++;
    int fd = open(p, O_PATH | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
      if (fd >= 0) close(fd);
      if ((loops & 15) == 0 && zombie_or_gone(s)) break;
      continue;
    }
    char a0[128];
    argv0_of(pid, a0, sizeof a0);
    int dup_ = 0;
    for (int i = 0; i < ngot; i++)
      if (got[i].dev == st.st_dev && got[i].ino == st.st_ino && !strcmp(got[i].a0, a0)) dup_ = 1;
    if (!dup_ && ngot < 64) {
      struct statfs sf;
      snprintf(got[ngot].a0, sizeof got[ngot].a0, "%s", a0);
      got[ngot].dev = st.st_dev;
      got[ngot].ino = st.st_ino;
      got[ngot].fd = fd;
      got[ngot].ro = fstatfs(fd, &sf) == 0 && (sf.f_flags & ST_RDONLY);
      ngot++;
    } else close(fd);
  }
  put("{\"cmd\":\"hostwatch\",\"loops\":%ld,\"seen\":[", loops);
  for (int i = 0; i < ngot; i++) {
    char q[64];
    snprintf(q, sizeof q, "/proc/self/fd/%d", got[i].fd);
    int w = open(q, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    int e = errno;
    if (w >= 0) close(w);
    put("%s{\"dev\":\"%u:%u\",\"ino\":%llu,\"ro\":%s,\"reopen\":\"%s\",\"argv0\":", i ? "," : "", major(got[i].dev), minor(got[i].dev),
        (unsigned long long)got[i].ino, got[i].ro ? "true" : "false", errname(w < 0 ? e : 0));
    putcs(got[i].a0);
    put("}");
  }
  put("]");
  return emit();
}

/* ------------------------------------------------------------- sockets */

/* Waits for one connection until MAXMS or until STOPFILE exists; a received fd is held and read
 * (a pty master: what the process printed) for up to 3 s, so the sender's side stays usable. */
static int cmd_listen(const char *path, long long maxms, const char *ready, const char *stopfile) {
  put("{\"cmd\":\"listen\",\"path\":");
  putcs(path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  unlink(path);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4) < 0) {
    put(",\"listen\":\"%s\"", errname(errno));
    return emit();
  }
  chmod(path, 0777);
  touch(ready);
  long long end = now_ms() + maxms;
  int r = 0;
  while (now_ms() < end) {
    struct pollfd pf = {.fd = s, .events = POLLIN};
    r = poll(&pf, 1, 100);
    if (r > 0) break;
    if (stopfile && exists(stopfile)) break;
  }
  if (r <= 0) {
    put(",\"listen\":\"ok\",\"connected\":false,\"gotFd\":false");
    unlink(path);
    return emit();
  }
  int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
  put(",\"listen\":\"ok\",\"connected\":%s", c >= 0 ? "true" : "false");
  int gotfd = -1;
  char data[256] = "";
  if (c >= 0) {
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct pollfd cf = {.fd = c, .events = POLLIN};
    if (poll(&cf, 1, 5000) > 0) {
      ssize_t n = recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
      if (n > 0) data[n] = 0;
      for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) memcpy(&gotfd, CMSG_DATA(h), sizeof(int));
    }
  }
  put(",\"gotFd\":%s,\"data\":", gotfd >= 0 ? "true" : "false");
  putcs(data);
  if (gotfd >= 0) {
    char p[64], t[4096];
    snprintf(p, sizeof p, "/proc/self/fd/%d", gotfd);
    ssize_t n = readlink(p, t, sizeof t - 1);
    t[n > 0 ? n : 0] = 0;
    put(",\"fdTarget\":");
    putcs(t);
    char tty[1024];
    size_t tn = 0;
    long long tend = now_ms() + 3000;
    while (now_ms() < tend && tn < sizeof tty - 1) {
      struct pollfd tf = {.fd = gotfd, .events = POLLIN};
      if (poll(&tf, 1, 100) <= 0) continue;
      ssize_t k = read(gotfd, tty + tn, sizeof tty - 1 - tn);
      if (k <= 0) break;
      tn += (size_t)k;
    }
    put(",\"ttyData\":");
    putstr(tty, tn);
    close(gotfd);
  }
  if (c >= 0) close(c);
  close(s);
  unlink(path);
  return emit();
}

static int cmd_mkhandle(const char *path) {
  struct file_handle *fh = calloc(1, sizeof *fh + MAX_HANDLE_SZ);
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mid;
  put("{\"cmd\":\"mkhandle\"");
  if (name_to_handle_at(AT_FDCWD, path, fh, &mid, 0) < 0) {
    put(",\"ok\":\"%s\"", errname(errno));
    return emit();
  }
  put(",\"ok\":\"ok\",\"type\":%d,\"hex\":\"", fh->handle_type);
  for (unsigned i = 0; i < fh->handle_bytes; i++) put("%02x", fh->f_handle[i]);
  put("\"");
  return emit();
}

int main(int argc, char **argv) {
  int i = 1;
  if (argc > 2 && !strcmp(argv[1], "-o")) {
    outfile = argv[2];
    i = 3;
  }
  if (i >= argc) {
    fprintf(stderr, "usage: hostile-probe [-o FILE] CMD ...\n");
    return 2;
  }
  const char *c = argv[i++];
  int n = argc - i;
  char **a = argv + i;
  if (!strcmp(c, "status")) return cmd_status(n, a);
  if (!strcmp(c, "read") && n >= 1) return cmd_read(a[0]);
  if (!strcmp(c, "openw") && n >= 1) return cmd_openw(a[0]);
  if (!strcmp(c, "create") && n >= 1) return cmd_create(a[0]);
  if (!strcmp(c, "mountrw") && n >= 1) return cmd_mountrw(a[0]);
  if (!strcmp(c, "mount") && n >= 2) return cmd_mount(a[0], a[1]);
  if (!strcmp(c, "mknodread") && n >= 4) return cmd_mknodread(a[0], a[1], (unsigned)atoi(a[2]), (unsigned)atoi(a[3]));
  if (!strcmp(c, "chrootescape") && n >= 1) return cmd_chrootescape(a[0]);
  if (!strcmp(c, "exewatch") && n >= 2) return cmd_exewatch(a[0], atoll(a[1]), n >= 3 && !strcmp(a[2], "stop"));
  if (!strcmp(c, "hostwatch") && n >= 3) return cmd_hostwatch(atoi(a[0]), atoll(a[1]), a[2]);
  if (!strcmp(c, "listen") && n >= 3) return cmd_listen(a[0], atoll(a[1]), a[2], n >= 4 ? a[3] : NULL);
  if (!strcmp(c, "mkhandle") && n >= 1) return cmd_mkhandle(a[0]);
  fprintf(stderr, "hostile-probe: unknown command or arguments: %s\n", c);
  return 2;
}
