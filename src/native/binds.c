/* A context's bind mounts: see binds.h for the contract and the rules. */
#define _GNU_SOURCE
#include "binds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's ABI, spelled here so no header of the libc's and the kernel's collide. */
struct binds_open_how {
  uint64_t flags, mode, resolve;
};
struct binds_mount_attr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define B_RESOLVE_NO_MAGICLINKS 0x02
#define B_RESOLVE_NO_SYMLINKS 0x04
#define B_RESOLVE_IN_ROOT 0x10
#define B_OPEN_TREE_CLONE 1
#define B_MOVE_MOUNT_F_EMPTY_PATH 0x04
#define B_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define B_MOUNT_ATTR_RDONLY 0x1
#define B_MOUNT_ATTR_NOSUID 0x2
#define B_MOUNT_ATTR_NODEV 0x4
#define B_STATX_MNT_ID 0x1000
#define BINDS_MAX 128

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return -1;
}

static int openat2_(int dirfd, const char *p, uint64_t flags, uint64_t resolve) {
  struct binds_open_how how = {flags | O_CLOEXEC, 0, resolve};
  return (int)syscall(SYS_openat2, dirfd, p, &how, sizeof how);
}

/* The target, or a component of it, resolved inside the root: its symlinks are the guest's, read as the guest sees them. */
static int in_root(int rootfd, const char *rel) { return openat2_(rootfd, rel, O_PATH, B_RESOLVE_IN_ROOT | B_RESOLVE_NO_MAGICLINKS); }

static int mount_id(int fd, uint64_t *id) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, B_STATX_MNT_ID, &stx) != 0) return -1;
  if (!(stx.stx_mask & B_STATX_MNT_ID)) return errno = ENOSYS, -1;
  *id = stx.stx_mnt_id;
  return 0;
}

/*
 * Opens TARGET inside the root, making what is missing of it: each missing
 * component in the directory resolved so far (a name, no slash: it cannot
 * leave that directory), then the whole prefix resolved again in the root.
 */
static int open_target(int rootfd, const char *target, int is_file, char *err, size_t len) {
  char rel[4096];
  if (snprintf(rel, sizeof rel, "%s", target) >= (int)sizeof rel) return fail(err, len, "bind target too long: %s", target);
  int parent = dup(rootfd);
  if (parent < 0) return fail(err, len, "dup: %s", strerror(errno));
  char *p = rel;
  while (*p == '/') p++;
  if (!*p) {
    close(parent);
    return fail(err, len, "bind target '%s' is the root itself", target);
  }
  for (;;) {
    char *end = strchr(p, '/');
    int last = !end || !end[strspn(end, "/")];
    if (end) *end = 0;
    /* rel (from its start) is now the prefix up to this component */
    int fd = in_root(rootfd, rel);
    if (fd < 0 && errno == ENOENT) {
      int made;
      if (last && is_file) {
        made = openat(parent, p, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (made >= 0) close(made);
      } else {
        made = mkdirat(parent, p, 0755);
      }
      if (made < 0 && errno != EEXIST) {
        int e = errno;
        close(parent);
        return fail(err, len, "cannot make the mount point %s (at '%s'): %s", target, p, strerror(e));
      }
      fd = in_root(rootfd, rel);
    }
    if (fd < 0) {
      int e = errno;
      close(parent);
      return fail(err, len, "bind target %s (at '%s'): %s", target, rel, strerror(e));
    }
    close(parent);
    if (last) return fd;
    *end = '/';
    p = end + strspn(end, "/");
    parent = fd;
  }
}

static const char *type_name(mode_t m) {
  return S_ISDIR(m)    ? "a directory"
         : S_ISREG(m)  ? "a regular file"
         : S_ISLNK(m)  ? "a symlink"
         : S_ISCHR(m)  ? "a character device"
         : S_ISBLK(m)  ? "a block device"
         : S_ISFIFO(m) ? "a FIFO"
                       : "a socket";
}

static int one_bind(int rootfd, const struct stat *rootst, const struct bind_req *b, uint64_t *ids, int *nids, char *err, size_t len) {
  int is_file = !strcmp(b->kind, "file");
  int ro = !strcmp(b->mode, "ro");
  if (!is_file && strcmp(b->kind, "dir")) return fail(err, len, "bind %s: kind '%s' is neither file nor dir", b->target, b->kind);
  if (!ro && strcmp(b->mode, "rw")) return fail(err, len, "bind %s: mode '%s' is neither ro nor rw", b->target, b->mode);
  int src = openat2_(AT_FDCWD, b->source, O_PATH | O_NOFOLLOW, B_RESOLVE_NO_SYMLINKS | B_RESOLVE_NO_MAGICLINKS);
  if (src < 0) return fail(err, len, "bind source %s: %s", b->source, errno == ELOOP ? "a symlink is in its path" : strerror(errno));
  struct stat st;
  if (fstat(src, &st) != 0 || (is_file ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))) {
    close(src);
    return fail(err, len, "bind source %s is not %s", b->source, is_file ? "a regular file" : "a directory");
  }
  int tree = (int)syscall(SYS_open_tree, src, "", B_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
  close(src);
  if (tree < 0) return fail(err, len, "open_tree %s: %s", b->source, strerror(errno));
  struct binds_mount_attr attr = {B_MOUNT_ATTR_NOSUID | B_MOUNT_ATTR_NODEV | (ro ? B_MOUNT_ATTR_RDONLY : 0), 0, 0, 0};
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    close(tree);
    return fail(err, len, "mount_setattr %s: %s", b->source, strerror(errno));
  }
  int dst = open_target(rootfd, b->target, is_file, err, len);
  if (dst < 0) {
    close(tree);
    return -1;
  }
  uint64_t id;
  int ok_mount = 0;
  if (mount_id(dst, &id) != 0) {
    fail(err, len, "statx %s: %s", b->target, strerror(errno));
  } else {
    for (int i = 0; i < *nids; i++) ok_mount |= ids[i] == id;
    if (!ok_mount)
      fail(err, len,
           "bind target %s resolves into a mount the runtime made (the guest's /proc, /sys, /dev or /tmp), not onto its root "
           "filesystem",
           b->target);
    else if (fstat(dst, &st) != 0 || (is_file ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode)))
      ok_mount = 0, fail(err, len, "bind target %s is %s in the guest, not %s", b->target, type_name(st.st_mode),
                         is_file ? "a regular file" : "a directory");
    else if (st.st_dev == rootst->st_dev && st.st_ino == rootst->st_ino)
      ok_mount = 0, fail(err, len, "bind target %s resolves to the guest's root itself", b->target);
  }
  if (ok_mount && syscall(SYS_move_mount, tree, "", dst, "", B_MOVE_MOUNT_F_EMPTY_PATH | B_MOVE_MOUNT_T_EMPTY_PATH) != 0)
    ok_mount = 0, fail(err, len, "move_mount %s onto %s: %s", b->source, b->target, strerror(errno));
  close(dst);
  /* the new mount may carry later binds (a file in a bound directory) */
  if (ok_mount && *nids < BINDS_MAX && mount_id(tree, &id) == 0) ids[(*nids)++] = id;
  close(tree);
  return ok_mount ? 0 : -1;
}

int binds_apply(const char *root, const char *own_fs, const struct bind_req *b, int n, char *err, size_t errlen) {
  if (n == 0) return 0;
  int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) return fail(err, errlen, "open %s: %s", root, strerror(errno));
  uint64_t ids[BINDS_MAX];
  int nids = 1;
  struct stat rootst;
  if (fstat(rootfd, &rootst) != 0 || mount_id(rootfd, &ids[0]) != 0) {
    close(rootfd);
    return fail(err, errlen, "statx %s: %s (binds need Linux 5.12 or later)", root, strerror(errno));
  }
  /* the guest's own filesystem beside its root (its /run tmpfs): opened with no symlink followed */
  if (own_fs) {
    int fd = openat2_(rootfd, own_fs, O_PATH | O_DIRECTORY, B_RESOLVE_NO_SYMLINKS | B_RESOLVE_NO_MAGICLINKS);
    if (fd >= 0 && mount_id(fd, &ids[nids]) == 0) nids++;
    if (fd >= 0) close(fd);
  }
  for (int i = 0; i < n; i++) {
    if (one_bind(rootfd, &rootst, &b[i], ids, &nids, err, errlen) != 0) {
      close(rootfd);
      return -1;
    }
  }
  close(rootfd);
  return 0;
}
