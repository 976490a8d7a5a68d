/*
 * Small helpers shared by paene-helper.c (paene's contexts) and paene-oci.c
 * (paene-runc's containers): one copy of each, included by both (each
 * program is one static binary built from one .c; scripts/build-helper.js
 * rebuilds both when this header changes). The including file defines
 * die(), which reports the error its own way and exits.
 */
#ifndef PAENE_NATIVE_H
#define PAENE_NATIVE_H

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Writes a whole value into a (proc or cgroup) file, or dies. */
static void write_file(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", path, strerror(errno));
  size_t n = strlen(value);
  if (write(fd, value, n) != (ssize_t)n) die("write '%s' to %s: %s", value, path, strerror(errno));
  close(fd);
}

/* Hex (a seccomp program from TypeScript) → bytes. */
static unsigned char *parse_hex(const char *hex, size_t *len) {
  size_t n = strlen(hex);
  if (n % 2) die("odd-length hex string");
  unsigned char *out = malloc(n / 2 + 1);
  if (!out) die("out of memory");
  for (size_t i = 0; i < n / 2; i++) {
    unsigned int b;
    if (sscanf(hex + 2 * i, "%2x", &b) != 1) die("bad hex string");
    out[i] = (unsigned char)b;
  }
  *len = n / 2;
  return out;
}

/* The highest capability number this kernel knows (40 if it cannot say). */
static int last_cap(void) {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 40;
  char buf[16] = {0};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  int v = n > 0 ? atoi(buf) : 0;
  return v > 0 ? v : 40;
}

/* Installs a classic-BPF seccomp filter compiled in TypeScript (nothing when len is 0). */
static void load_seccomp_filter(const unsigned char *prog, size_t len) {
  if (!len) return;
  if (len % sizeof(struct sock_filter)) die("seccomp program has a partial instruction");
  struct sock_fprog fp = {.len = (unsigned short)(len / sizeof(struct sock_filter)), .filter = (struct sock_filter *)prog};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) != 0) die("seccomp: %s", strerror(errno));
}

/*
 * The runtime's binaries are never reachable from a guest (CVE-2019-5736):
 * a process that enters a context runs from a sealed in-memory copy, so
 * /proc/PID/exe (and a `#!/proc/self/exe` script) leads to that copy, which
 * nothing can write, never to the file on the host.
 */
#define PAENE_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* A sealed memfd holding the whole of the file open at fd (its offset is not used); cloexec as asked. */
static int sealed_copy(int fd, const char *name, int cloexec) {
  struct stat st;
  if (fstat(fd, &st) < 0) die("stat %s: %s", name, strerror(errno));
  int m = memfd_create(name, MFD_ALLOW_SEALING | (cloexec ? MFD_CLOEXEC : 0));
  if (m < 0) die("memfd_create: %s", strerror(errno));
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = sendfile(m, fd, &off, (size_t)(st.st_size - off));
    if (n <= 0) die("copy %s into memory: %s", name, n < 0 ? strerror(errno) : "short file");
  }
  /*
   * F_SEAL_WRITE fails with EBUSY while something else holds a page of the copy for a moment (the kernel
   * waits 150 ms for it; compaction or DAMON's access checks can hold one longer on a loaded machine):
   * tried again for up to 2 s, then the error.
   */
  for (int tries = 0; fcntl(m, F_ADD_SEALS, PAENE_SEALS) < 0; tries++) {
    if (errno != EBUSY || tries >= 40) die("seal the copy of %s: %s", name, strerror(errno));
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return m;
}

/*
 * Re-executes this program from a sealed copy unless it already runs from
 * one, then makes it non-dumpable (its /proc files root's, no ptrace) until
 * the exec of the guest's program resets that.  First thing in main().
 */
static void run_from_sealed_copy(char **argv, const char *name) {
  extern char **environ;
  int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0) die("open /proc/self/exe: %s", strerror(errno));
  if (fcntl(self, F_GET_SEALS) == PAENE_SEALS) {
    close(self);
    prctl(PR_SET_NAME, name, 0, 0, 0); /* an exec by descriptor names the process after the descriptor */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("set non-dumpable: %s", strerror(errno));
    return;
  }
  int m = sealed_copy(self, name, 1);
  close(self);
  syscall(SYS_execveat, m, "", argv, environ, AT_EMPTY_PATH);
  die("exec the sealed copy of %s: %s", name, strerror(errno));
}

#endif
