/*
 * escape-probe: one escape attempt (or one admin operation) per subcommand,
 * run as a process inside a context by `paene check escape` and the security
 * tests. It prints one line:  RESULT [detail]
 *
 *   ok         the operation did what was asked (for an escape attempt: a hole)
 *   EPERM ...  the errno name of the call that failed
 *   other      a marker the caller knows (masked, contained, none, ...)
 *
 * Every attempt is harmless if it were to succeed: the clock is set to the
 * time it already has, reboot asks only for CAD_OFF, files opened for writing
 * are closed without a write, signals are 0, ptrace attaches and detaches,
 * device nodes are made in the context's own /tmp or /dev, keys are revoked.
 * Exit status 0 unless the usage is wrong (2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <linux/capability.h>
#include <dirent.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static const char *en(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "EUNKNOWN";
}

/* Print the errno of a failed call, or "ok" */
static int report(long rc, const char *what) {
  if (rc < 0)
    printf("%s %s\n", en(errno), what);
  else
    printf("ok %s\n", what);
  return 0;
}

static int fail(const char *what) {
  printf("%s %s\n", en(errno), what);
  return 0;
}

/* A path that exists on the host but not in the guest: seen = escaped. */
static int sees(const char *host_only) {
  struct stat st;
  return host_only && stat(host_only, &st) == 0;
}

static int cmd_mount(int argc, char **argv) {
  /* mount SRC DST TYPE FLAGSWORD [DATA] ; FLAGSWORD: none|bind|rbind|remount-rw|remount-bind-rw */
  if (argc < 5) return 2;
  unsigned long fl = 0;
  const char *src = strcmp(argv[1], "-") ? argv[1] : NULL;
  const char *type = strcmp(argv[3], "-") ? argv[3] : NULL;
  if (!strcmp(argv[4], "bind"))
    fl = MS_BIND;
  else if (!strcmp(argv[4], "rbind"))
    fl = MS_BIND | MS_REC;
  else if (!strcmp(argv[4], "remount-rw"))
    fl = MS_REMOUNT;
  else if (!strcmp(argv[4], "remount-bind-rw"))
    fl = MS_REMOUNT | MS_BIND;
  mkdir(argv[2], 0700);
  if (mount(src, argv[2], type, fl, argc > 5 ? argv[5] : NULL) != 0) return fail("mount");
  umount2(argv[2], MNT_DETACH);
  printf("ok mounted %s\n", argv[2]);
  return 0;
}

static int cmd_chroot_breakout(const char *host_only) {
  struct stat before, after;
  if (stat("/", &before) != 0) return fail("stat /");
  mkdir("/tmp/.breakout", 0700);
  int fd = open("/", O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fail("open /");
  if (chroot("/tmp/.breakout") != 0) return fail("chroot");
  if (fchdir(fd) != 0) return fail("fchdir");
  for (int i = 0; i < 256; i++)
    if (chdir("..") != 0) return fail("chdir ..");
  if (chroot(".") != 0) return fail("chroot .");
  if (stat("/", &after) != 0) return fail("stat / after");
  if (sees(host_only)) {
    printf("ok reached the host root (%s is visible)\n", host_only);
  } else if (before.st_dev == after.st_dev && before.st_ino == after.st_ino) {
    printf("contained chroot+fchdir+chdir(..) ends at the context's own root (the topmost mount of its namespace)\n");
  } else {
    /* somewhere else but the host-only path is not there: still inside the guest tree */
    printf("contained ended at dev %u:%u ino %lu, host path not visible\n", major(after.st_dev), minor(after.st_dev),
           (unsigned long)after.st_ino);
  }
  return 0;
}

static int cmd_proc1root(const char *host_only) {
  char buf[4096];
  ssize_t n = readlink("/proc/1/root", buf, sizeof buf - 1);
  if (n < 0) return fail("readlink /proc/1/root");
  buf[n] = 0;
  char p[4200];
  snprintf(p, sizeof p, "/proc/1/root%s", host_only ? host_only : "/nonexistent");
  struct stat st;
  if (stat(p, &st) == 0)
    printf("ok %s exists\n", p);
  else
    printf("contained /proc/1/root -> %s; %s: %s\n", buf, p, en(errno));
  return 0;
}

static int cmd_pivot_root(void) {
  mkdir("/tmp/.pivot", 0700);
  return report(syscall(SYS_pivot_root, "/", "/tmp/.pivot"), "pivot_root");
}

static int cmd_mknod(const char *path, const char *kind, unsigned maj, unsigned min) {
  mode_t m = (kind[0] == 'b' ? S_IFBLK : kind[0] == 'c' ? S_IFCHR : S_IFIFO) | 0600;
  unlink(path);
  if (mknod(path, m, makedev(maj, min)) != 0) return fail("mknod");
  if (kind[0] == 'p') {
    unlink(path);
    printf("ok fifo\n");
    return 0;
  }
  int fd = open(path, O_RDONLY | O_NONBLOCK);
  int e = errno;
  unlink(path);
  if (fd < 0) {
    printf("%s mknod worked but open failed\n", en(e));
    return 0;
  }
  close(fd);
  printf("ok opened device %u:%u\n", maj, min);
  return 0;
}

/* Host block devices: any block node under /dev, and each /sys/dev/block entry re-created by number. */
static int cmd_open_blockdevs(void) {
  int opened = 0, tried = 0;
  char first_err[64] = "none";
  DIR *d = opendir("/sys/dev/block");
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      unsigned maj, min;
      if (sscanf(e->d_name, "%u:%u", &maj, &min) != 2) continue;
      tried++;
      const char *p = "/dev/.probe-blk";
      unlink(p);
      if (mknod(p, S_IFBLK | 0600, makedev(maj, min)) != 0) {
        if (!strcmp(first_err, "none")) snprintf(first_err, sizeof first_err, "%s(mknod %u:%u)", en(errno), maj, min);
        continue;
      }
      int fd = open(p, O_RDONLY);
      if (fd >= 0) {
        opened++;
        close(fd);
      } else if (!strcmp(first_err, "none")) {
        snprintf(first_err, sizeof first_err, "%s(open %u:%u)", en(errno), maj, min);
      }
      unlink(p);
    }
    closedir(d);
  }
  d = opendir("/dev");
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      char p[512];
      struct stat st;
      snprintf(p, sizeof p, "/dev/%s", e->d_name);
      if (lstat(p, &st) != 0 || !S_ISBLK(st.st_mode)) continue;
      tried++;
      int fd = open(p, O_RDONLY);
      if (fd >= 0) {
        opened++;
        close(fd);
      }
    }
    closedir(d);
  }
  if (opened)
    printf("ok opened %d host block device(s)\n", opened);
  else {
    char *paren = strchr(first_err, '(');
    if (paren) *paren = ' ';
    char *close_p = strchr(first_err, ')');
    if (close_p) *close_p = 0;
    printf("%s %d block device(s) listed in /sys/dev/block, none opened\n", first_err, tried);
  }
  return 0;
}

static int cmd_open_write(const char *path) {
  int fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return fail(path);
  struct stat st;
  fstat(fd, &st);
  close(fd); /* never write: opening for writing is the hole */
  if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
    printf("masked %s is /dev/null\n", path);
  else
    printf("ok opened %s for writing\n", path);
  return 0;
}

static int cmd_read(const char *path) {
  int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return fail(path);
  struct stat st;
  fstat(fd, &st);
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf);
  int e = errno;
  close(fd);
  if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
    printf("masked %s is /dev/null\n", path);
  else if (n < 0)
    printf("%s read %s\n", en(e), path);
  else if (n == 0)
    printf("empty %s\n", path);
  else
    printf("ok read %zd bytes of %s\n", n, path);
  return 0;
}

static int cmd_clock(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  if (settimeofday(&tv, NULL) != 0)
    printf("%s settimeofday", en(errno));
  else
    printf("ok settimeofday");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (clock_settime(CLOCK_REALTIME, &ts) != 0)
    printf(", %s clock_settime\n", en(errno));
  else
    printf(", ok clock_settime\n");
  return 0;
}

static int cmd_rlimit(void) {
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_max == RLIM_INFINITY) {
    printf("unlimited hard limit already infinite\n");
    return 0;
  }
  rlim_t old = r.rlim_max;
  r.rlim_max = old + 1;
  if (setrlimit(RLIMIT_NOFILE, &r) != 0) return fail("setrlimit NOFILE hard+1");
  printf("ok hard limit %lu -> %lu\n", (unsigned long)old, (unsigned long)r.rlim_max);
  return 0;
}

static int cmd_ptrace(pid_t pid) {
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) return fail("ptrace seize");
  ptrace(PTRACE_DETACH, pid, 0, 0);
  printf("ok attached to %d\n", pid);
  return 0;
}

/* Every pid up to max that kill(pid, 0) reaches but that is not in this /proc: a process outside the context. */
static int cmd_kill_scan(int max) {
  int reach = 0, foreign = 0, first = 0;
  for (int pid = 1; pid <= max; pid++) {
    if (kill(pid, 0) == 0 || errno == EPERM) {
      reach++;
      char p[64];
      struct stat st;
      snprintf(p, sizeof p, "/proc/%d", pid);
      if (stat(p, &st) != 0) {
        foreign++;
        if (!first) first = pid;
      }
    }
  }
  if (foreign)
    printf("ok %d pid(s) outside the context answer kill(0), e.g. %d\n", foreign, first);
  else
    printf("contained %d pid(s) of %d answer; all are the context's own\n", reach, max);
  return 0;
}

static int cmd_setns(const char *nspath) {
  int fd = open(nspath, O_RDONLY);
  if (fd < 0) return fail(nspath);
  int rc = setns(fd, 0);
  return report(rc, "setns");
}

static int cmd_userns(void) {
  /* 1: unshare(CLONE_NEWUSER) */
  if (unshare(CLONE_NEWUSER) == 0) {
    /* it worked: try to use it to mount over the guest root (a new mount ns owned by the new user ns) */
    if (unshare(CLONE_NEWNS) != 0) return printf("ok userns created; unshare mnt: %s\n", en(errno)), 0;
    if (mount("tmpfs", "/", "tmpfs", 0, NULL) != 0) return printf("ok userns created; mount over /: %s\n", en(errno)), 0;
    printf("ok userns created and a tmpfs mounted over / (in its own mount namespace)\n");
    return 0;
  }
  return fail("unshare(CLONE_NEWUSER)");
}

static int cmd_clone_userns(void) {
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid < 0) return fail("clone(CLONE_NEWUSER)");
  waitpid((pid_t)pid, NULL, 0);
  printf("ok clone(CLONE_NEWUSER) made child %ld\n", pid);
  return 0;
}

static int cmd_clone3_userns(void) {
  struct {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  } args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_NEWUSER;
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) _exit(0);
  if (pid < 0) return fail("clone3(CLONE_NEWUSER)");
  waitpid((pid_t)pid, NULL, 0);
  printf("ok clone3(CLONE_NEWUSER) made child %ld\n", pid);
  return 0;
}

static int cmd_keyctl(void) {
  long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
  if (id < 0)
    printf("%s keyctl(GET_KEYRING_ID user)", en(errno));
  else
    printf("ok keyctl user keyring %ld", id);
  long key = syscall(SYS_add_key, "user", "paene-escape-probe", "x", 1, KEY_SPEC_USER_KEYRING);
  if (key < 0)
    printf(", %s add_key\n", en(errno));
  else {
    syscall(SYS_keyctl, KEYCTL_INVALIDATE, key);
    printf(", ok add_key %ld (invalidated)\n", key);
  }
  return 0;
}

static int cmd_bpf(void) {
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = BPF_MAP_TYPE_ARRAY;
  a.key_size = 4;
  a.value_size = 4;
  a.max_entries = 1;
  long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a);
  if (fd < 0) return fail("bpf(BPF_MAP_CREATE)");
  close((int)fd);
  printf("ok bpf map created\n");
  return 0;
}

static int cmd_perf(void) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.type = PERF_TYPE_SOFTWARE;
  a.size = sizeof a;
  a.config = PERF_COUNT_SW_CPU_CLOCK;
  a.disabled = 1;
  /* pid -1, cpu 0: every process on CPU 0, host included */
  long fd = syscall(SYS_perf_event_open, &a, -1, 0, -1, 0);
  if (fd < 0) return fail("perf_event_open(all processes, cpu 0)");
  close((int)fd);
  printf("ok perf event on cpu 0\n");
  return 0;
}

static int cmd_modules(void) {
  long r1 = syscall(SYS_init_module, "", 0, "");
  int e1 = errno;
  int fd = open("/dev/null", O_RDONLY);
  long r2 = syscall(SYS_finit_module, fd, "", 0);
  int e2 = errno;
  close(fd);
  printf("%s init_module, %s finit_module\n", r1 < 0 ? en(e1) : "ok", r2 < 0 ? en(e2) : "ok");
  return 0;
}

static int cmd_shocker(void) {
  /* open_by_handle_at with a guessed handle for inode 2 (the root of an ext4 fs), as the 'shocker' exploit did */
  struct {
    unsigned int handle_bytes;
    int handle_type;
    unsigned char f_handle[8];
  } h;
  memset(&h, 0, sizeof h);
  h.handle_bytes = 8;
  h.handle_type = 1; /* FILEID_INO32_GEN */
  uint32_t ino = 2;
  memcpy(h.f_handle, &ino, 4);
  int mfd = open("/", O_RDONLY | O_DIRECTORY);
  long fd = syscall(SYS_open_by_handle_at, mfd, &h, O_RDONLY);
  if (fd < 0) return fail("open_by_handle_at");
  close((int)fd);
  printf("ok opened inode 2 by handle\n");
  return 0;
}

static int cmd_tiocsti(void) {
  char c = ' ';
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    int r = ioctl(0, TIOCSTI, &c);
    printf("%s open /dev/tty (no controlling terminal); TIOCSTI on stdin: %s\n", en(e), r == 0 ? "ok" : en(errno));
    return 0;
  }
  /* pushing a space into our own controlling terminal would be harmless; report only that we had one */
  close(fd);
  printf("ok a controlling terminal is reachable\n");
  return 0;
}

static int cmd_raw(void) {
  int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (s >= 0) {
    close(s);
    printf("ok raw ICMP socket\n");
    return 0;
  }
  int e = errno;
  int p = socket(AF_PACKET, SOCK_RAW, 0);
  if (p >= 0) {
    close(p);
    printf("ok packet socket\n");
    return 0;
  }
  printf("%s socket(AF_INET, SOCK_RAW), %s socket(AF_PACKET)\n", en(e), en(errno));
  return 0;
}

static int cmd_bind_low(int first) {
  for (int port = first; port < 1024; port++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return fail("socket");
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
      int e = errno;
      close(s);
      if (e == EADDRINUSE) continue; /* someone else's: try the next low port */
      printf("%s bind 127.0.0.1:%d\n", en(e), port);
      return 0;
    }
    int rc = listen(s, 1);
    close(s); /* released at once */
    if (rc != 0) return fail("listen");
    printf("ok bound and listened on 127.0.0.1:%d\n", port);
    return 0;
  }
  printf("EADDRINUSE every port from %d to 1023\n", first);
  return 0;
}

static int cmd_setfcap(const char *path, int cap) {
  struct vfs_cap_data d;
  memset(&d, 0, sizeof d);
  d.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  d.data[cap / 32].permitted = 1u << (cap % 32);
  if (setxattr(path, "security.capability", &d, XATTR_CAPS_SZ_2, 0) != 0) return fail("setxattr security.capability");
  printf("ok set\n");
  return 0;
}

static int cmd_status(void) {
  /* what this process holds, one line: uid euid CapEff CapPrm CapBnd */
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return fail("/proc/self/status");
  char line[256], eff[32] = "?", prm[32] = "?", bnd[32] = "?";
  while (fgets(line, sizeof line, f)) {
    sscanf(line, "CapEff: %31s", eff);
    sscanf(line, "CapPrm: %31s", prm);
    sscanf(line, "CapBnd: %31s", bnd);
  }
  fclose(f);
  printf("status uid=%d euid=%d eff=%s prm=%s bnd=%s\n", getuid(), geteuid(), eff, prm, bnd);
  return 0;
}

static int cmd_setuid(uid_t uid, gid_t gid) {
  if (setgid(gid) != 0) return fail("setgid");
  if (setuid(uid) != 0) return fail("setuid");
  printf("ok uid=%d gid=%d\n", getuid(), getgid());
  return 0;
}

static int cmd_nice(int inc) {
  errno = 0;
  int r = nice(inc);
  if (r == -1 && errno) return fail("nice");
  printf("ok nice %d\n", r);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: escape-probe ATTEMPT [ARGS]\n");
    return 2;
  }
  const char *c = argv[1];
  const char *a2 = argc > 2 ? argv[2] : NULL;
  if (!strcmp(c, "true")) return printf("ok\n"), 0;
  if (!strcmp(c, "mount")) return cmd_mount(argc - 1, argv + 1);
  if (!strcmp(c, "umount")) return report(umount2(a2, MNT_DETACH), "umount2");
  if (!strcmp(c, "chroot-breakout")) return cmd_chroot_breakout(a2);
  if (!strcmp(c, "proc1-root")) return cmd_proc1root(a2);
  if (!strcmp(c, "pivot-root")) return cmd_pivot_root();
  if (!strcmp(c, "mknod") && argc >= 6) return cmd_mknod(argv[2], argv[3], (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]));
  if (!strcmp(c, "open-blockdevs")) return cmd_open_blockdevs();
  if (!strcmp(c, "open-write") && a2) return cmd_open_write(a2);
  if (!strcmp(c, "read") && a2) return cmd_read(a2);
  if (!strcmp(c, "modules")) return cmd_modules();
  if (!strcmp(c, "reboot")) return report(reboot(LINUX_REBOOT_CMD_CAD_OFF), "reboot(CAD_OFF)");
  if (!strcmp(c, "clock")) return cmd_clock();
  if (!strcmp(c, "sethostname")) return report(sethostname("escaped", 7), "sethostname");
  if (!strcmp(c, "rlimit")) return cmd_rlimit();
  if (!strcmp(c, "iopl")) {
    long r1 = syscall(SYS_iopl, 3);
    int e1 = errno;
    long r2 = syscall(SYS_ioperm, 0x80, 1, 1);
    printf("%s iopl(3), %s ioperm(0x80)\n", r1 < 0 ? en(e1) : "ok", r2 < 0 ? en(errno) : "ok");
    return 0;
  }
  if (!strcmp(c, "kill") && a2) return report(kill(atoi(a2), argc > 3 ? atoi(argv[3]) : 0), "kill");
  if (!strcmp(c, "kill-scan")) return cmd_kill_scan(a2 ? atoi(a2) : 32768);
  if (!strcmp(c, "ptrace") && a2) return cmd_ptrace(atoi(a2));
  if (!strcmp(c, "setns") && a2) return cmd_setns(a2);
  if (!strcmp(c, "userns")) return cmd_userns();
  if (!strcmp(c, "clone-userns")) return cmd_clone_userns();
  if (!strcmp(c, "clone3-userns")) return cmd_clone3_userns();
  if (!strcmp(c, "keyctl")) return cmd_keyctl();
  if (!strcmp(c, "bpf")) return cmd_bpf();
  if (!strcmp(c, "perf")) return cmd_perf();
  if (!strcmp(c, "shocker")) return cmd_shocker();
  if (!strcmp(c, "tiocsti")) return cmd_tiocsti();
  if (!strcmp(c, "raw")) return cmd_raw();
  if (!strcmp(c, "bind-low")) return cmd_bind_low(a2 ? atoi(a2) : 80);
  if (!strcmp(c, "setfcap") && argc >= 4) return cmd_setfcap(argv[2], atoi(argv[3]));
  if (!strcmp(c, "status")) return cmd_status();
  if (!strcmp(c, "setuid") && argc >= 4) return cmd_setuid((uid_t)atoi(argv[2]), (gid_t)atoi(argv[3]));
  if (!strcmp(c, "nice") && a2) return cmd_nice(atoi(a2));
  fprintf(stderr, "escape-probe: unknown attempt '%s'\n", c);
  return 2;
}
