/* Loading and attaching cgroup sock_addr eBPF programs: sockattach.h says what and how. */
#include "sockattach.h"

int sa_fail(struct sa_err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  e->code = code;
  return -1;
}

long sa_sys_bpf(int cmd, union bpf_attr *attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

/* An attach type's name (sock_attach_list.h); "sock_addr" for one the list does not name. */
const char *sa_type_name(unsigned t) {
  for (int i = 0; i < SOCK_ATTACH_TYPES; i++)
    if ((unsigned)sock_attach_types[i].attach == t) return sock_attach_types[i].name;
  return "sock_addr";
}

/* The attach type named by s[0..len) (its number from <linux/bpf.h>); NULL (and the error) when the list names none. */
const struct sock_attach_type *sa_parse_type(const char *s, size_t len, struct sa_err *e) {
  for (int i = 0; i < SOCK_ATTACH_TYPES; i++)
    if (strlen(sock_attach_types[i].name) == len && strncmp(sock_attach_types[i].name, s, len) == 0) return &sock_attach_types[i];
  sa_fail(e, EXIT_USAGE, "'%.*s' is not an attach type (src/proto/sock-attach.ts names them)", (int)(len > 40 ? 40 : len), s);
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* HEX → a new buffer of *len bytes; NULL when it is not hex (or empty). */
unsigned char *sa_unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex);
  if (n == 0 || n % 2) return NULL;
  unsigned char *b = malloc(n / 2);
  if (!b) return NULL;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(b);
      return NULL;
    }
    b[i] = (unsigned char)(hi << 4 | lo);
  }
  *len = n / 2;
  return b;
}

/* TYPE=HEX → a program (instructions in the byte order the kernel uses, as given). */
static int parse_prog(const char *arg, struct prog *p, struct sa_err *e) {
  const char *x = strchr(arg, '=');
  if (!x) return sa_fail(e, EXIT_USAGE, "expected TYPE=HEX, got '%.40s'", arg);
  const struct sock_attach_type *t = sa_parse_type(arg, (size_t)(x - arg), e);
  if (!t) return -1;
  p->type = (unsigned)t->attach;
  p->prog_type = (unsigned)t->prog;
  p->fd = -1;
  size_t len;
  unsigned char *buf = sa_unhex(x + 1, &len);
  if (!buf) return sa_fail(e, EXIT_USAGE, "%s: the program is not hex", t->name);
  if (len % sizeof(struct bpf_insn) != 0) {
    free(buf);
    return sa_fail(e, EXIT_USAGE, "%s: the program is not a whole number of 8-byte instructions", t->name);
  }
  p->insns = (struct bpf_insn *)buf;
  p->n = (unsigned)(len / sizeof(struct bpf_insn));
  return 0;
}

/* An empty set: nothing parsed, no fd. */
static void sa_init(struct sa_set *s) {
  memset(s, 0, sizeof *s);
  s->sk_map = s->cg_map = s->set_map[0] = s->set_map[1] = -1;
}

/* The argument prefix of addr-set4 (k 0) and addr-set6 (k 1). */
static const char *const set_prefix[2] = {SOCK_ATTACH_ADDR_SET4, SOCK_ATTACH_ADDR_SET6};

/* The key size of addr-set4 (k 0) and addr-set6 (k 1). */
static unsigned set_key_size(int k) { return k ? 16 : 4; }

/* Closes the set's fds and frees what it holds; the set can be parsed again after. */
void sa_close(struct sa_set *s) {
  for (int i = 0; i < s->n; i++) {
    if (s->ps[i].fd >= 0) close(s->ps[i].fd);
    free(s->ps[i].insns);
  }
  if (s->sk_map >= 0) close(s->sk_map);
  if (s->cg_map >= 0) close(s->cg_map);
  for (int k = 0; k < 2; k++) {
    if (s->set_map[k] >= 0) close(s->set_map[k]);
    free(s->set[k]);
  }
  free(s->value);
  sa_init(s);
}

/* [sk-storage=BYTES] [cg-storage=HEX] TYPE=HEX... → a set (nothing loaded yet). */
int sa_parse(struct sa_set *s, int argc, char **argv, struct sa_err *e) {
  sa_init(s);
  const size_t skp = strlen(SOCK_ATTACH_SK_STORAGE), cgp = strlen(SOCK_ATTACH_CG_STORAGE);
  if (argc >= 1 && strncmp(argv[0], SOCK_ATTACH_SK_STORAGE, skp) == 0) {
    char *x;
    const char *v = argv[0] + skp;
    unsigned long bytes = strtoul(v, &x, 10);
    if (*x || bytes == 0 || bytes % 4 || bytes > MAX_STORAGE)
      return sa_fail(e, EXIT_USAGE, SOCK_ATTACH_SK_STORAGE " takes a multiple of 4 bytes up to %d, not '%s'", MAX_STORAGE, v);
    s->sk_bytes = (unsigned)bytes;
    argc--, argv++;
  }
  if (argc >= 1 && strncmp(argv[0], SOCK_ATTACH_CG_STORAGE, cgp) == 0) {
    size_t len;
    s->value = sa_unhex(argv[0] + cgp, &len);
    if (!s->value || len > MAX_CG_STORAGE)
      return sa_fail(e, EXIT_USAGE, SOCK_ATTACH_CG_STORAGE " takes the value in hex, 1 to %d bytes", MAX_CG_STORAGE);
    s->cg_bytes = (unsigned)len;
    argc--, argv++;
  }
  for (int k = 0; k < 2; k++) {
    if (argc < 1 || strncmp(argv[0], set_prefix[k], strlen(set_prefix[k])) != 0) continue;
    size_t len;
    s->set[k] = sa_unhex(argv[0] + strlen(set_prefix[k]), &len);
    if (!s->set[k] || len % set_key_size(k) || len / set_key_size(k) > MAX_ADDR_SET) {
      sa_close(s);
      return sa_fail(e, EXIT_USAGE, "%.9s takes 1 to %d addresses of %u bytes in hex", set_prefix[k], MAX_ADDR_SET, set_key_size(k));
    }
    s->set_n[k] = (unsigned)(len / set_key_size(k));
    argc--, argv++;
  }
  if (argc < 1) return sa_fail(e, EXIT_USAGE, "no programs given");
  if (argc > MAX_PROGS) return sa_fail(e, EXIT_USAGE, "more than %d programs", MAX_PROGS);
  for (int i = 0; i < argc; i++) {
    if (parse_prog(argv[i], &s->ps[i], e) < 0) {
      sa_close(s);
      return -1;
    }
    s->n = i + 1;
  }
  return 0;
}

static void put_hex(const unsigned char *b, size_t n, FILE *out) {
  for (size_t i = 0; i < n; i++) fprintf(out, "%02x", b[i]);
}

/* A parsed set as the list it came from, one argument a line (paene-bpf echo: the round-trip test's half). */
void sa_echo(const struct sa_set *s, FILE *out) {
  if (s->sk_bytes) fprintf(out, SOCK_ATTACH_SK_STORAGE "%u\n", s->sk_bytes);
  if (s->cg_bytes) {
    fputs(SOCK_ATTACH_CG_STORAGE, out);
    put_hex(s->value, s->cg_bytes, out);
    fputc('\n', out);
  }
  for (int k = 0; k < 2; k++) {
    if (!s->set[k]) continue;
    fputs(set_prefix[k], out);
    put_hex(s->set[k], s->set_n[k] * set_key_size(k), out);
    fputc('\n', out);
  }
  for (int i = 0; i < s->n; i++) {
    fprintf(out, "%s=", sa_type_name(s->ps[i].type));
    put_hex((const unsigned char *)s->ps[i].insns, s->ps[i].n * sizeof(struct bpf_insn), out);
    fputc('\n', out);
  }
}

/* BTF: [1] int (4 bytes, signed), [2] int[n]: what an sk_storage map must describe its key and value with. */
static int load_btf(unsigned n_ints) {
  const __u32 types[] = {
      /* [1] INT "int": name_off 1, kind INT, size 4; encoding signed, 32 bits */
      1,
      (__u32)BTF_KIND_INT << 24,
      4,
      (BTF_INT_SIGNED << 24) | 32,
      /* [2] ARRAY of [1] indexed by [1], n_ints elements */
      0,
      (__u32)BTF_KIND_ARRAY << 24,
      0,
      1,
      1,
      n_ints,
  };
  static const char strs[] = "\0int";
  struct btf_header h = {
      .magic = BTF_MAGIC,
      .version = BTF_VERSION,
      .hdr_len = sizeof(h),
      .type_off = 0,
      .type_len = sizeof(types),
      .str_off = sizeof(types),
      .str_len = sizeof(strs),
  };
  unsigned char b[sizeof(h) + sizeof(types) + sizeof(strs)];
  memcpy(b, &h, sizeof(h));
  memcpy(b + sizeof(h), types, sizeof(types));
  memcpy(b + sizeof(h) + sizeof(types), strs, sizeof(strs));
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.btf = (uintptr_t)b;
  a.btf_size = sizeof(b);
  return (int)sa_sys_bpf(BPF_BTF_LOAD, &a);
}

/* A socket storage map with a value of `bytes` (a multiple of 4) per socket. The kernel demands BTF for it. */
static int create_sk_storage(unsigned bytes, struct sa_err *e) {
  int btf = load_btf(bytes / 4);
  if (btf < 0) return sa_fail(e, EXIT_FAIL, "loading the storage map's BTF failed: %s", strerror(errno));
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.map_type = BPF_MAP_TYPE_SK_STORAGE;
  a.key_size = 4;
  a.value_size = bytes;
  a.max_entries = 0;
  a.map_flags = BPF_F_NO_PREALLOC;
  a.btf_fd = (unsigned)btf;
  a.btf_key_type_id = 1;
  a.btf_value_type_id = 2;
  snprintf(a.map_name, sizeof(a.map_name), "paene_sk");
  int fd = (int)sa_sys_bpf(BPF_MAP_CREATE, &a);
  int err = errno;
  close(btf);
  if (fd < 0)
    return sa_fail(e, err == EINVAL ? EXIT_UNSUPPORTED : EXIT_FAIL, "%screating the socket storage map failed: %s",
                   err == EINVAL ? "unsupported: " : "", strerror(err));
  return fd;
}

/*
 * A cgroup storage map: the kernel gives each cgroup a program of the map is
 * attached to one value (zeroed, made at the attach, freed with the cgroup);
 * the 8-byte key (the cgroup id) makes it one value for all the attach types
 * of the cgroup. No BTF needed.
 */
static int create_cg_storage(unsigned bytes, struct sa_err *e) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.map_type = BPF_MAP_TYPE_CGROUP_STORAGE;
  a.key_size = sizeof(__u64);
  a.value_size = bytes;
  a.max_entries = 0;
  snprintf(a.map_name, sizeof(a.map_name), "paene_cg");
  int fd = (int)sa_sys_bpf(BPF_MAP_CREATE, &a);
  int err = errno;
  if (fd < 0)
    return sa_fail(e, err == EINVAL ? EXIT_UNSUPPORTED : EXIT_FAIL, "%screating the cgroup storage map failed: %s",
                   err == EINVAL ? "unsupported: " : "", strerror(err));
  return fd;
}

/*
 * An address set: a hash map whose keys are the n addresses (key_size bytes
 * each; the value, 1 byte, is unused: a program asks only whether a key is
 * there), filled and then frozen, so that only programs read it from now on.
 */
static int create_addr_set(const unsigned char *keys, unsigned n, unsigned key_size, struct sa_err *e) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.map_type = BPF_MAP_TYPE_HASH;
  a.key_size = key_size;
  a.value_size = 1;
  a.max_entries = n;
  snprintf(a.map_name, sizeof(a.map_name), "paene_set%u", key_size == 4 ? 4u : 6u);
  int fd = (int)sa_sys_bpf(BPF_MAP_CREATE, &a);
  if (fd < 0) return sa_fail(e, EXIT_FAIL, "creating the address set map failed: %s", strerror(errno));
  unsigned char one = 1;
  for (unsigned i = 0; i < n; i++) {
    memset(&a, 0, sizeof(a));
    a.map_fd = (unsigned)fd;
    a.key = (uintptr_t)(keys + (size_t)i * key_size);
    a.value = (uintptr_t)&one;
    a.flags = BPF_ANY; /* a key listed twice is one entry */
    if (sa_sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0) {
      int err = errno;
      close(fd);
      return sa_fail(e, EXIT_FAIL, "filling the address set map failed: %s", strerror(err));
    }
  }
  memset(&a, 0, sizeof(a));
  a.map_fd = (unsigned)fd;
  if (sa_sys_bpf(BPF_MAP_FREEZE, &a) < 0) {
    int err = errno;
    close(fd);
    return sa_fail(e, EXIT_FAIL, "freezing the address set map failed: %s", strerror(err));
  }
  return fd;
}

/* Points every map reference (ld_imm64 with src_reg BPF_PSEUDO_MAP_FD) at the map its immediate names. */
static int bind_maps(struct sa_set *s, struct sa_err *e) {
  for (int i = 0; i < s->n; i++)
    for (unsigned j = 0; j + 1 < s->ps[i].n; j++) {
      struct bpf_insn *x = &s->ps[i].insns[j];
      if (x->code != (BPF_LD | BPF_DW | BPF_IMM)) continue;
      if (x->src_reg == BPF_PSEUDO_MAP_FD) {
        static const char *const needs[4] = {"sk-storage=BYTES", "cg-storage=HEX", "addr-set4=HEX", "addr-set6=HEX"};
        int fd = x->imm == 0 ? s->sk_map : x->imm == 1 ? s->cg_map : x->imm == 2 ? s->set_map[0] : x->imm == 3 ? s->set_map[1] : -2;
        if (fd == -2)
          return sa_fail(e, EXIT_USAGE, "%s refers to map %d: only 0 (sk-storage), 1 (cg-storage), 2 (addr-set4) and 3 (addr-set6) exist",
                         sa_type_name(s->ps[i].type), x->imm);
        if (fd < 0) return sa_fail(e, EXIT_USAGE, "%s uses map %d: put %s first", sa_type_name(s->ps[i].type), x->imm, needs[x->imm]);
        if (x->imm == 1) s->ps[i].uses_cg = 1;
        x->imm = fd;
      }
      j++; /* the second half */
    }
  return 0;
}

static int load(const struct prog *p, char *log, unsigned log_size) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.prog_type = p->prog_type;
  /* a sock_addr program says its hook at load time; a device program (paene-runc's rules on v2) does not */
  if (p->prog_type == BPF_PROG_TYPE_CGROUP_SOCK_ADDR) a.expected_attach_type = p->type;
  a.insns = (uintptr_t)p->insns;
  a.insn_cnt = p->n;
  a.license = (uintptr_t) "GPL";
  if (log) {
    a.log_level = 1;
    a.log_buf = (uintptr_t)log;
    a.log_size = log_size;
    log[0] = 0;
  }
  snprintf(a.prog_name, sizeof(a.prog_name), "paene_%s", sa_type_name(p->type));
  return (int)sa_sys_bpf(BPF_PROG_LOAD, &a);
}

/* Does this kernel load cgroup sock_addr programs at all? (a trivial "return 1") */
static int kernel_has_sock_addr(void) {
  struct bpf_insn ret1[2] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1},
      {.code = BPF_JMP | BPF_EXIT},
  };
  struct prog p = {.type = BPF_CGROUP_INET4_CONNECT, .prog_type = BPF_PROG_TYPE_CGROUP_SOCK_ADDR, .insns = ret1, .n = 2};
  int fd = load(&p, NULL, 0);
  if (fd >= 0) close(fd);
  return fd >= 0 || errno != EINVAL;
}

/* Makes the set's maps and loads (verifies) every program; on failure the error has the verifier's log and the set is closed. */
int sa_load(struct sa_set *s, struct sa_err *e) {
  if (s->sk_bytes && (s->sk_map = create_sk_storage(s->sk_bytes, e)) < 0) goto fail;
  if (s->cg_bytes && (s->cg_map = create_cg_storage(s->cg_bytes, e)) < 0) goto fail;
  for (int k = 0; k < 2; k++)
    if (s->set[k] && (s->set_map[k] = create_addr_set(s->set[k], s->set_n[k], set_key_size(k), e)) < 0) goto fail;
  if (bind_maps(s, e) < 0) goto fail;
  for (int i = 0; i < s->n; i++) {
    struct prog *p = &s->ps[i];
    p->fd = load(p, NULL, 0);
    if (p->fd >= 0) continue;
    int err = errno;
    if (err == ENOSYS) {
      sa_fail(e, EXIT_UNSUPPORTED, "unsupported: this kernel has no bpf() system call (CONFIG_BPF_SYSCALL)");
      goto fail;
    }
    if (err == EINVAL && p->prog_type == BPF_PROG_TYPE_CGROUP_SOCK_ADDR && !kernel_has_sock_addr()) {
      sa_fail(e, EXIT_UNSUPPORTED, "unsupported: this kernel does not load cgroup sock_addr programs (CONFIG_CGROUP_BPF)");
      goto fail;
    }
    int n =
        snprintf(e->msg, sizeof e->msg, "%s (type %u): the kernel refused the program: %s", sa_type_name(p->type), p->type, strerror(err));
    e->code = EXIT_FAIL;
    char *log = malloc(LOG_SIZE);
    if (log && load(p, log, LOG_SIZE) < 0 && log[0] && n > 0 && (size_t)n < sizeof e->msg)
      snprintf(e->msg + n, sizeof e->msg - (size_t)n, "\nverifier log:\n%s", log);
    free(log);
    goto fail;
  }
  return 0;
fail:
  sa_close(s);
  return -1;
}

/* The cgroup v2 directory, open; -1 (and the error) when it is not one. */
int sa_open_cgroup(const char *dir, struct sa_err *e) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sa_fail(e, EXIT_FAIL, "%s: %s", dir, strerror(errno));
  struct statfs st;
  if (fstatfs(fd, &st) < 0 || st.f_type != CGROUP2_SUPER_MAGIC) {
    close(fd);
    return sa_fail(e, EXIT_UNSUPPORTED, "unsupported: %s is not a cgroup v2 directory (BPF programs attach to the unified hierarchy only)",
                   dir);
  }
  return fd;
}

/* The ids of the programs attached directly to the cgroup for a type; returns the count or -1. */
int sa_query(int cg, unsigned type, unsigned *ids, unsigned max) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.query.target_fd = (unsigned)cg;
  a.query.attach_type = type;
  a.query.prog_ids = (uintptr_t)ids;
  a.query.prog_cnt = max;
  if (sa_sys_bpf(BPF_PROG_QUERY, &a) < 0) return -1;
  return (int)a.query.prog_cnt;
}

static int attach(int cg, int prog_fd, unsigned type) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.target_fd = (unsigned)cg;
  a.attach_bpf_fd = (unsigned)prog_fd;
  a.attach_type = type;
  a.attach_flags = 0;
  return (int)sa_sys_bpf(BPF_PROG_ATTACH, &a);
}

/* Detaches the program of a type; prog_fd -1 means whichever one is there. 0 if none was. */
int sa_detach(int cg, int prog_fd, unsigned type) {
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.target_fd = (unsigned)cg;
  a.attach_bpf_fd = (unsigned)prog_fd; /* not a program fd: the kernel detaches the single one */
  a.attach_type = type;
  if (sa_sys_bpf(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT) return -1;
  return 0;
}

/* Puts a type back as it was before: the old program (old_fd, -1: none) re-attached, or ours removed. */
static void restore(int cg, const struct prog *p, int old_fd) {
  if (old_fd >= 0) {
    if (attach(cg, old_fd, p->type) == 0) return;
    fprintf(stderr, "paene-bpf: %s: could not put the previous program back (%s); detaching\n", sa_type_name(p->type), strerror(errno));
  }
  if (sa_detach(cg, p->fd, p->type) < 0)
    fprintf(stderr, "paene-bpf: %s: could not detach while undoing: %s\n", sa_type_name(p->type), strerror(errno));
}

/* A reference to the program attached for a type (-1: none). The cgroup may hold its only one. */
int sa_hold_current(int cg, unsigned type) {
  unsigned ids[64];
  if (sa_query(cg, type, ids, 64) < 1) return -1;
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.prog_id = ids[0];
  return (int)sa_sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
}

/* Writes the cgroup's value in a cgroup storage map (the key is the cgroup id: its directory's inode number). */
int sa_write_storage(int cg, int map, const unsigned char *value, struct sa_err *e) {
  struct stat st;
  if (fstat(cg, &st) < 0) return sa_fail(e, EXIT_FAIL, "fstat: %s", strerror(errno));
  __u64 id = st.st_ino;
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.map_fd = (unsigned)map;
  a.key = (uintptr_t)&id;
  a.value = (uintptr_t)value;
  a.flags = BPF_EXIST; /* the attach made it */
  if (sa_sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0)
    return sa_fail(e, EXIT_FAIL, "writing the cgroup's storage value failed: %s", strerror(errno));
  return 0;
}

/*
 * Attaches a loaded set to the cgroup, all or nothing, and writes `value`
 * (cg_bytes long) as the cgroup's storage value right after the first
 * attach of a program that uses it: the kernel makes the value at that
 * attach, and the programs fail closed until it is written. The caller puts
 * first a program whose not-ready behaviour is harmless (getsockname: the
 * address unchanged), so a live change never refuses a call in between.
 * `fresh`: a start's cgroup, which a failed start removes: nothing to put
 * back (and no query of each type under the cgroup mutex).
 * Returns 0 or -1 (error in e).
 */
int sa_attach(const char *dir, const struct sa_set *s, const unsigned char *value, int fresh, struct sa_err *e) {
  int cg = sa_open_cgroup(dir, e);
  if (cg < 0) return -1;
  int old[MAX_PROGS];
  for (int i = 0; i < s->n; i++) old[i] = fresh ? -1 : sa_hold_current(cg, s->ps[i].type);
  int rc = 0, written = 0;
  for (int i = 0; i < s->n && rc == 0; i++) {
    if (attach(cg, s->ps[i].fd, s->ps[i].type) != 0) {
      int err = errno;
      int n = snprintf(e->msg, sizeof e->msg, "%s (type %u): attaching to %s failed: %s", sa_type_name(s->ps[i].type), s->ps[i].type, dir,
                       strerror(err));
      e->code = EXIT_FAIL;
      if (err == EPERM && n > 0 && (size_t)n < sizeof e->msg)
        snprintf(e->msg + n, sizeof e->msg - (size_t)n,
                 " (EPERM: an ancestor cgroup may hold a program of this type attached without BPF_F_ALLOW_OVERRIDE/MULTI)");
      rc = -1;
    } else if (s->ps[i].uses_cg && !written) {
      written = 1;
      if (sa_write_storage(cg, s->cg_map, value, e) < 0) {
        i++; /* this one is attached: undo it too */
        rc = -1;
      }
    }
    if (rc < 0)
      for (int j = 0; j < i; j++) restore(cg, &s->ps[j], old[j]);
  }
  for (int i = 0; i < s->n; i++)
    if (old[i] >= 0) close(old[i]);
  close(cg);
  return rc;
}
