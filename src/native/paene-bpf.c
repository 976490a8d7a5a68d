/*
 * paene-bpf: loads cgroup sock_addr eBPF programs (and paene-runc's device
 * program, type "device", BPF_CGROUP_DEVICE) and attaches them to a cgroup v2
 * directory. It decides nothing: the programs are assembled in TypeScript
 * (src/net/sockaddr.ts, src/oci/resources.ts, src/bpf/ebpf.ts) and
 * arrive as hex.
 *
 *   paene-bpf attach CGROUP_DIR [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX [TYPE=HEX ...]
 *   paene-bpf detach CGROUP_DIR TYPE [TYPE ...]
 *   paene-bpf query  CGROUP_DIR TYPE [TYPE ...]     prints "TYPE count tag" per line
 *   paene-bpf store  CGROUP_DIR HEX TYPE [TYPE ...]  writes a new storage value
 *   paene-bpf verify [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX [TYPE=HEX ...]   load only
 *   paene-bpf echo   [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX [TYPE=HEX ...]   parse only, print back
 *   paene-bpf types                                  prints "TYPE attach-number prog-type-number" per line
 *
 * TYPE is an attach type's name (bind4, connect6, ..., device); the list's
 * grammar and the names are described once in src/proto/sock-attach.ts, and
 * the numbers come from <linux/bpf.h> through the generated sock_attach_list.h.
 * sk-storage=BYTES makes one socket storage map the programs share,
 * cg-storage=HEX one cgroup storage map, and attach writes HEX as the
 * cgroup's value in it (the context's own addresses; see sockattach.h);
 * addr-set4=HEX and addr-set6=HEX each a frozen hash map of the addresses
 * HEX lists (the host's, which the programs refuse).
 *
 * attach is all or nothing. Every program is loaded (verified) first, so a
 * rejected program changes nothing. Then each is attached with flags 0 (no
 * BPF_F_ALLOW_MULTI): the cgroup has at most one program per type, and
 * attaching another one of the same type replaces it in place: the kernel
 * swaps the effective program array under RCU, so a socket call sees the old
 * program or the new one, never none (kernel/bpf/cgroup.c, find_attach_entry;
 * the kernel test checks it). Each type is swapped on its own, so during a
 * live update some hooks may briefly run the new policy and others the old.
 * The cgroup storage value is written right after the first attach (the
 * kernel makes it then); the programs fail closed until it is there.
 * If an attach fails, the types already done are put back as they were: the
 * previous program re-attached, or ours detached. (A reference to each
 * previous program is taken first: the cgroup usually holds the only one, and
 * replacing the program would free it.)
 *
 * query's tag is the kernel's tag of the program attached (hex; "-" when
 * none): a hash of its instructions with the map references zeroed, which
 * the caller compares with its own programs' (whose bytes carry a digest of
 * their address sets, so that other sets make another tag). store writes HEX as the
 * cgroup's value in the cgroup storage maps of that size that the programs
 * attached for the TYPEs read: a live change of addresses where the
 * programs stay the same (it fails when no such map is there).
 *
 * Exit status: 0 ok, 1 failure, 2 usage, 3 the kernel lacks what is needed
 * (no bpf(2), no cgroup sock_addr programs, not a cgroup v2 directory).
 */
#define _GNU_SOURCE
#include "sockattach.h"

/* The kernel's tag of the program attached for a type, in hex (17 bytes with the NUL); 0, or -1 when none is attached. */
static int attached_tag(int cg, unsigned type, char *hex) {
  int fd = sa_hold_current(cg, type);
  if (fd < 0) return -1;
  struct bpf_prog_info info;
  memset(&info, 0, sizeof(info));
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.info.bpf_fd = (unsigned)fd;
  a.info.info_len = sizeof(info);
  a.info.info = (uintptr_t)&info;
  int rc = (int)sa_sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
  close(fd);
  if (rc < 0) return -1;
  for (int i = 0; i < BPF_TAG_SIZE; i++) sprintf(hex + 2 * i, "%02x", info.tag[i]);
  return 0;
}

/*
 * Writes `value` (len bytes) as the cgroup's value in every cgroup storage
 * map of that value size that the programs attached to it for `types` read
 * (a live change of addresses where the programs stay). Returns the number
 * of maps written, or -1 (error in e).
 */
static int sa_store(const char *dir, const unsigned *types, int ntypes, const unsigned char *value, unsigned len, struct sa_err *e) {
  int cg = sa_open_cgroup(dir, e);
  if (cg < 0) return -1;
  __u32 done[64]; /* map ids looked at */
  int ndone = 0, rc = 0, written = 0;
  for (int t = 0; t < ntypes && rc == 0; t++) {
    int pfd = sa_hold_current(cg, types[t]);
    if (pfd < 0) continue;
    __u32 ids[16];
    struct bpf_prog_info info;
    memset(&info, 0, sizeof(info));
    info.nr_map_ids = 16;
    info.map_ids = (uintptr_t)ids;
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.info.bpf_fd = (unsigned)pfd;
    a.info.info_len = sizeof(info);
    a.info.info = (uintptr_t)&info;
    if (sa_sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0)
      rc = sa_fail(e, EXIT_FAIL, "%s: reading the attached program's maps: %s", sa_type_name(types[t]), strerror(errno));
    close(pfd);
    for (unsigned m = 0; rc == 0 && m < info.nr_map_ids && m < 16; m++) {
      int seen = 0;
      for (int k = 0; k < ndone; k++) seen |= done[k] == ids[m];
      if (seen || ndone == 64) continue;
      done[ndone++] = ids[m];
      memset(&a, 0, sizeof(a));
      a.map_id = ids[m];
      int mfd = (int)sa_sys_bpf(BPF_MAP_GET_FD_BY_ID, &a);
      if (mfd < 0) continue; /* gone meanwhile */
      struct bpf_map_info mi;
      memset(&mi, 0, sizeof(mi));
      memset(&a, 0, sizeof(a));
      a.info.bpf_fd = (unsigned)mfd;
      a.info.info_len = sizeof(mi);
      a.info.info = (uintptr_t)&mi;
      if (sa_sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0 && mi.type == BPF_MAP_TYPE_CGROUP_STORAGE && mi.value_size == len) {
        if (sa_write_storage(cg, mfd, value, e) < 0)
          rc = -1;
        else
          written++;
      }
      close(mfd);
    }
  }
  close(cg);
  return rc < 0 ? -1 : written;
}

static void usage(void) {
  fprintf(stderr, "usage: paene-bpf attach CGROUP_DIR [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX...\n"
                  "       paene-bpf detach CGROUP_DIR TYPE...\n"
                  "       paene-bpf query CGROUP_DIR TYPE...\n"
                  "       paene-bpf store CGROUP_DIR HEX TYPE...\n"
                  "       paene-bpf verify [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX...\n"
                  "       paene-bpf echo [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX...\n"
                  "       paene-bpf types\n");
  exit(EXIT_USAGE);
}

/* Prints the error and exits with its status (usage errors also print the usage). */
static void fail(const struct sa_err *e) {
  const char *m = e->msg;
  fprintf(stderr, "paene-bpf: %s\n", m);
  if (e->code == EXIT_USAGE) usage();
  exit(e->code);
}

/* TYPE... (names, at least one, at most MAX_PROGS) → attach type numbers; exits on a bad one. */
static void parse_types(int argc, char **argv, unsigned *types) {
  static struct sa_err e;
  if (argc < 1 || argc > MAX_PROGS) usage();
  for (int i = 0; i < argc; i++) {
    const struct sock_attach_type *t = sa_parse_type(argv[i], strlen(argv[i]), &e);
    if (!t) fail(&e);
    types[i] = (unsigned)t->attach;
  }
}

static int cmd_types(const char *verb, const char *dir, int argc, char **argv) {
  struct sa_err e;
  unsigned types[MAX_PROGS];
  parse_types(argc, argv, types);
  int cg = sa_open_cgroup(dir, &e);
  if (cg < 0) fail(&e);
  int rc = 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(verb, "detach") == 0) {
      if (sa_detach(cg, -1, types[i]) < 0) {
        fprintf(stderr, "paene-bpf: %s (type %u): detaching from %s failed: %s\n", sa_type_name(types[i]), types[i], dir, strerror(errno));
        rc = EXIT_FAIL;
      }
    } else {
      unsigned ids[64];
      int n = sa_query(cg, types[i], ids, 64);
      if (n < 0) {
        fprintf(stderr, "paene-bpf: %s (type %u): query of %s failed: %s\n", sa_type_name(types[i]), types[i], dir, strerror(errno));
        return errno == ENOSYS ? EXIT_UNSUPPORTED : EXIT_FAIL;
      }
      char tag[2 * BPF_TAG_SIZE + 1] = "-";
      if (n > 0 && attached_tag(cg, types[i], tag) < 0) strcpy(tag, "-");
      printf("%s %d %s\n", sa_type_name(types[i]), n, tag);
    }
  }
  return rc;
}

static int cmd_store(const char *dir, const char *hex, int argc, char **argv) {
  static struct sa_err e;
  unsigned types[MAX_PROGS];
  parse_types(argc, argv, types);
  size_t len;
  unsigned char *value = sa_unhex(hex, &len);
  if (!value || len > MAX_CG_STORAGE) usage();
  int n = sa_store(dir, types, argc, value, (unsigned)len, &e);
  if (n < 0) fail(&e);
  if (n == 0) {
    fprintf(stderr, "paene-bpf: no program attached to %s reads a cgroup storage value of %zu bytes\n", dir, len);
    return EXIT_FAIL;
  }
  free(value);
  return 0;
}

/* attach (dir given) or verify (dir NULL): parse, load, and attach with the given storage value. */
static int cmd_load(const char *dir, int argc, char **argv) {
  static struct sa_set s;
  static struct sa_err e;
  if (sa_parse(&s, argc, argv, &e) < 0 || sa_load(&s, &e) < 0) fail(&e);
  if (dir && sa_attach(dir, &s, s.value, 0, &e) < 0) fail(&e);
  sa_close(&s);
  return 0;
}

/* echo: the list parsed (nothing loaded: no kernel, no root needed) and printed back, one argument a line. */
static int cmd_echo(int argc, char **argv) {
  static struct sa_set s;
  static struct sa_err e;
  if (sa_parse(&s, argc, argv, &e) < 0) fail(&e);
  sa_echo(&s, stdout);
  sa_close(&s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "types") == 0) {
    for (int i = 0; i < SOCK_ATTACH_TYPES; i++)
      printf("%s %u %u\n", sock_attach_types[i].name, (unsigned)sock_attach_types[i].attach, (unsigned)sock_attach_types[i].prog);
    return 0;
  }
  if (argc < 3) usage();
  const char *verb = argv[1];
  if (strcmp(verb, "echo") == 0) return cmd_echo(argc - 2, argv + 2);
  if (strcmp(verb, "verify") == 0) return cmd_load(NULL, argc - 2, argv + 2);
  if (argc < 4) usage();
  if (strcmp(verb, "attach") == 0) return cmd_load(argv[2], argc - 3, argv + 3);
  if (strcmp(verb, "detach") == 0 || strcmp(verb, "query") == 0) return cmd_types(verb, argv[2], argc - 3, argv + 3);
  if (strcmp(verb, "store") == 0 && argc >= 5) return cmd_store(argv[2], argv[3], argc - 4, argv + 4);
  usage();
  return EXIT_USAGE;
}
