/*
 * Loading and attaching cgroup sock_addr eBPF programs, shared by paene-bpf
 * (the tool) and paene-helper (whose monitor keeps loaded program sets, and
 * whose start handler attaches one to a shared context's cgroup before the
 * init joins it). The programs and the storage value are made in TypeScript
 * (src/net/sockaddr.ts) and arrive as arguments; nothing here decides what
 * they do. Nothing here exits either: errors come back in a struct sa_err.
 *
 * A program list is [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX]
 * [addr-set6=HEX] TYPE=HEX..., described
 * once in src/proto/sock-attach.ts (the generated sock_attach_list.h has its
 * prefixes, bounds and attach types):
 *   sk-storage=BYTES  one socket storage map (BPF_MAP_TYPE_SK_STORAGE, BYTES
 *                     per socket, freed with the socket) the programs share;
 *   cg-storage=HEX    one cgroup storage map (BPF_MAP_TYPE_CGROUP_STORAGE,
 *                     8-byte key: the cgroup id, so the cgroup's value is
 *                     shared by all its attach types) whose value size is
 *                     HEX's; HEX is the value written for the cgroup attached
 *                     to (the programs read the context's own addresses there);
 *   addr-set4=HEX     a hash map (BPF_MAP_TYPE_HASH) whose keys are the 4-byte
 *   addr-set6=HEX     (16-byte) addresses HEX lists, filled at load and then
 *                     frozen (user space cannot change it; the programs only
 *                     look up): the host's addresses the programs refuse;
 *   TYPE=HEX          a program for the attach type named TYPE (bind4, ...,
 *                     device: its number is <linux/bpf.h>'s); an ld_imm64 map
 *                     reference's immediate says which map: 0 the socket
 *                     storage map, 1 the cgroup storage map, 2 addr-set4,
 *                     3 addr-set6.
 * See paene-bpf.c for the all-or-nothing contract of an attach.
 */
#ifndef PAENE_SOCKATTACH_H
#define PAENE_SOCKATTACH_H
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "sock_attach_list.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define MAX_PROGS SOCK_ATTACH_MAX_PROGS
#define LOG_SIZE (1u << 20)
#define MAX_STORAGE SOCK_ATTACH_MAX_SK_STORAGE
#define MAX_CG_STORAGE SOCK_ATTACH_MAX_CG_STORAGE
#define MAX_ADDR_SET SOCK_ATTACH_MAX_ADDR_SET

enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNSUPPORTED = 3 };

/* An error: the exit status it stands for and its message (with the verifier's log when there is one). */
struct sa_err {
  int code;
  char msg[16384];
};

struct prog {
  unsigned type;      /* enum bpf_attach_type */
  unsigned prog_type; /* enum bpf_prog_type */
  struct bpf_insn *insns;
  unsigned n;
  int fd;
  int uses_cg; /* refers to the cgroup storage map: attaching it makes the cgroup's value */
};

/* A program list, parsed and (after sa_load) loaded: what the monitor keeps between starts. */
struct sa_set {
  struct prog ps[MAX_PROGS];
  int n;
  unsigned sk_bytes;    /* 0: no socket storage map */
  unsigned cg_bytes;    /* 0: no cgroup storage map */
  unsigned char *value; /* cg-storage's value as parsed (the tool writes it; the monitor takes each start's own) */
  int sk_map, cg_map;
  unsigned char *set[2]; /* addr-set4, addr-set6: their keys one after another (NULL: no such map) */
  unsigned set_n[2];     /* how many keys */
  int set_map[2];
};

int sa_fail(struct sa_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
long sa_sys_bpf(int cmd, union bpf_attr *attr);
const char *sa_type_name(unsigned t);
const struct sock_attach_type *sa_parse_type(const char *s, size_t len, struct sa_err *e);
unsigned char *sa_unhex(const char *hex, size_t *len);
void sa_close(struct sa_set *s);
int sa_parse(struct sa_set *s, int argc, char **argv, struct sa_err *e);
void sa_echo(const struct sa_set *s, FILE *out);
int sa_load(struct sa_set *s, struct sa_err *e);
int sa_open_cgroup(const char *dir, struct sa_err *e);
int sa_query(int cg, unsigned type, unsigned *ids, unsigned max);
int sa_detach(int cg, int prog_fd, unsigned type);
int sa_hold_current(int cg, unsigned type);
int sa_write_storage(int cg, int map, const unsigned char *value, struct sa_err *e);
int sa_attach(const char *dir, const struct sa_set *s, const unsigned char *value, int fresh, struct sa_err *e);

#endif
