/*
 * A context's bind mounts (docs/volumes.md), made by paene-helper's init in
 * the context's new mount namespace after the runtime's own mounts (/proc,
 * /sys, /dev, /tmp, /run) and before the root switch. The list comes whole
 * from the TypeScript runtime (--bind SOURCE TARGET ro|rw file|dir,
 * src/proto/helper-request.ts; runtime/mounts.ts checked every source).
 *
 * The guest owns its tree, so a TARGET is never resolved as a host path:
 *  - the source is opened on the host with RESOLVE_NO_SYMLINKS (a symlink
 *    anywhere in it is refused) and cloned with open_tree(OPEN_TREE_CLONE),
 *    not recursively (no submount of the host comes along);
 *  - MOUNT_ATTR_NOSUID|NODEV (and RDONLY for ro) are set on the detached
 *    clone with mount_setattr, before anything can see it;
 *  - the target is resolved with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)
 *    relative to the new root: a guest symlink to /etc or ../../.. resolves
 *    inside the root; a missing component is made (mkdirat, or an empty file
 *    with O_CREAT|O_EXCL for a file's last one) in the directory resolved so
 *    far, and resolved again the same way;
 *  - the target must be a directory (file: a regular file) on the root's own
 *    filesystem, its /run tmpfs or an earlier bind (its statx mount id): a
 *    guest symlink into its /proc, /sys, /dev or /tmp is refused, as is a
 *    device;
 *  - the clone is attached onto the target's descriptor with move_mount
 *    (MOVE_MOUNT_T_EMPTY_PATH): no path is looked up twice.
 * Nothing here exits: an error returns -1 with a sentence in err.
 */
#ifndef PAENE_BINDS_H
#define PAENE_BINDS_H
#include <stddef.h>

struct bind_req {
  const char *source;
  const char *target;
  const char *mode; /* "ro" or "rw" */
  const char *kind; /* "file" or "dir" */
};

/*
 * Makes the binds in order under root (a host path: the new root's mount
 * point). own_fs (or NULL): a path in the root of a filesystem that is the
 * guest's own as much as its root (its /run tmpfs, made fresh at each start),
 * where a bind may land too.
 */
int binds_apply(const char *root, const char *own_fs, const struct bind_req *b, int n, char *err, size_t errlen);

#endif
