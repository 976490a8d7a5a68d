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
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

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

#endif
