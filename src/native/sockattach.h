/*
 * Loading and attaching cgroup sock_addr eBPF programs, shared by paene-bpf
 * (the tool) and paene-helper (a shared context's start attaches its
 * programs in the same process that moves its init into the cgroup). The
 * programs are assembled in TypeScript and arrive as TYPE=HEX; nothing here
 * decides what they do. See paene-bpf.c for the all-or-nothing contract.
 */
#ifndef PAENE_SOCKATTACH_H
#define PAENE_SOCKATTACH_H
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define MAX_PROGS 32
#define LOG_SIZE (1u << 20)
#define MAX_STORAGE 256

enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_UNSUPPORTED = 3 };

struct prog {
	unsigned type;
	struct bpf_insn *insns;
	unsigned n;
	int fd;
	int old_fd; /* the program attached before (-1: none), held so that replacing it does not free it */
	int attached;
};

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static const char *type_name(unsigned t)
{
	switch (t) {
	case BPF_CGROUP_DEVICE: return "device";
	case 8: return "bind4";
	case 9: return "bind6";
	case 10: return "connect4";
	case 11: return "connect6";
	case 14: return "sendmsg4";
	case 15: return "sendmsg6";
	case 19: return "recvmsg4";
	case 20: return "recvmsg6";
	case 29: return "getpeername4";
	case 30: return "getpeername6";
	case 31: return "getsockname4";
	case 32: return "getsockname6";
	default: return "sock_addr";
	}
}

static unsigned parse_type(const char *s, const char **end)
{
	char *e;
	errno = 0;
	unsigned long t = strtoul(s, &e, 10);
	if (e == s || errno || t > 255) {
		fprintf(stderr, "paene-bpf: '%s' is not an attach type number\n", s);
		exit(EXIT_USAGE);
	}
	*end = e;
	return (unsigned)t;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* TYPE=HEX → a program (instructions in the byte order the kernel uses, as given). */
static void parse_prog(const char *arg, struct prog *p)
{
	const char *e;
	p->type = parse_type(arg, &e);
	if (*e != '=') {
		fprintf(stderr, "paene-bpf: expected TYPE=HEX, got '%.40s'\n", arg);
		exit(EXIT_USAGE);
	}
	const char *hex = e + 1;
	size_t len = strlen(hex);
	if (len == 0 || len % (2 * sizeof(struct bpf_insn)) != 0) {
		fprintf(stderr, "paene-bpf: %s: the program is not a whole number of 8-byte instructions\n", type_name(p->type));
		exit(EXIT_USAGE);
	}
	unsigned char *buf = malloc(len / 2);
	if (!buf) {
		perror("paene-bpf: malloc");
		exit(EXIT_FAIL);
	}
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fprintf(stderr, "paene-bpf: %s: the program is not hex\n", type_name(p->type));
			exit(EXIT_USAGE);
		}
		buf[i] = (unsigned char)(hi << 4 | lo);
	}
	p->insns = (struct bpf_insn *)buf;
	p->n = (unsigned)(len / 2 / sizeof(struct bpf_insn));
	p->fd = -1;
	p->old_fd = -1;
	p->attached = 0;
}

/* BTF: [1] int (4 bytes, signed), [2] int[n]: what an sk_storage map must describe its key and value with. */
static int load_btf(unsigned n_ints)
{
	const __u32 types[] = {
		/* [1] INT "int": name_off 1, kind INT, size 4; encoding signed, 32 bits */
		1, (__u32)BTF_KIND_INT << 24, 4, (BTF_INT_SIGNED << 24) | 32,
		/* [2] ARRAY of [1] indexed by [1], n_ints elements */
		0, (__u32)BTF_KIND_ARRAY << 24, 0, 1, 1, n_ints,
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
	return (int)sys_bpf(BPF_BTF_LOAD, &a);
}

/* A socket storage map with a value of `bytes` (a multiple of 4) per socket. Exits on failure. */
static int create_sk_storage(unsigned bytes)
{
	int btf = load_btf(bytes / 4);
	if (btf < 0) {
		fprintf(stderr, "paene-bpf: loading the storage map's BTF failed: %s\n", strerror(errno));
		exit(EXIT_FAIL);
	}
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
	int fd = (int)sys_bpf(BPF_MAP_CREATE, &a);
	int err = errno;
	close(btf);
	if (fd < 0) {
		fprintf(stderr, "paene-bpf: %screating the socket storage map failed: %s\n", err == EINVAL ? "unsupported: " : "", strerror(err));
		exit(err == EINVAL ? EXIT_UNSUPPORTED : EXIT_FAIL);
	}
	return fd;
}

/*
 * A leading "sk-storage=BYTES" in a program list: one socket-local storage
 * map (BPF_MAP_TYPE_SK_STORAGE, BYTES per socket, freed with the socket)
 * that the programs of the list share. The kernel demands BTF for such a
 * map; a minimal one (int key, an array of ints as value) is made here.
 * Returns its fd (-1 when the list has none) and drops the entry.
 */
static int storage_option(int *argc, char ***argv)
{
	if (*argc < 1 || strncmp((*argv)[0], "sk-storage=", 11) != 0) return -1;
	char *e;
	const char *v = (*argv)[0] + 11;
	unsigned long bytes = strtoul(v, &e, 10);
	if (*e || bytes == 0 || bytes % 4 || bytes > MAX_STORAGE) {
		fprintf(stderr, "paene-bpf: sk-storage= takes a multiple of 4 bytes up to %d, not '%s'\n", MAX_STORAGE, v);
		exit(EXIT_USAGE);
	}
	(*argc)--;
	(*argv)++;
	return create_sk_storage((unsigned)bytes);
}

/* Points every map reference (ld_imm64 with src_reg BPF_PSEUDO_MAP_FD) of the programs at map_fd. */
static void bind_map(struct prog *ps, int n, int map_fd)
{
	for (int i = 0; i < n; i++)
		for (unsigned j = 0; j < ps[i].n; j++) {
			struct bpf_insn *x = &ps[i].insns[j];
			if (x->code != (BPF_LD | BPF_DW | BPF_IMM)) continue;
			if (x->src_reg == BPF_PSEUDO_MAP_FD) {
				if (map_fd < 0) {
					fprintf(stderr, "paene-bpf: %s uses a map: put sk-storage=BYTES first\n", type_name(ps[i].type));
					exit(EXIT_USAGE);
				}
				x->imm = map_fd;
			}
			j++; /* the second half */
		}
}

static int load(const struct prog *p, char *log, unsigned log_size)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	if (p->type == BPF_CGROUP_DEVICE) {
		a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE; /* paene-runc's device rules on cgroup v2 */
	} else {
		a.prog_type = BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
		a.expected_attach_type = p->type;
	}
	a.insns = (uintptr_t)p->insns;
	a.insn_cnt = p->n;
	a.license = (uintptr_t)"GPL";
	if (log) {
		a.log_level = 1;
		a.log_buf = (uintptr_t)log;
		a.log_size = log_size;
		log[0] = 0;
	}
	snprintf(a.prog_name, sizeof(a.prog_name), "paene_%s", type_name(p->type));
	return (int)sys_bpf(BPF_PROG_LOAD, &a);
}

/* Does this kernel load cgroup sock_addr programs at all? (a trivial "return 1") */
static int kernel_has_sock_addr(void)
{
	struct bpf_insn ret1[2] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct prog p = { .type = BPF_CGROUP_INET4_CONNECT, .insns = ret1, .n = 2 };
	int fd = load(&p, NULL, 0);
	if (fd >= 0) close(fd);
	return fd >= 0 || errno != EINVAL;
}

/* Loads every program; on failure prints the verifier's log and exits (nothing attached yet). */
static void load_all(struct prog *ps, int n)
{
	for (int i = 0; i < n; i++) {
		ps[i].fd = load(&ps[i], NULL, 0);
		if (ps[i].fd >= 0) continue;
		int err = errno;
		if (err == ENOSYS) {
			fprintf(stderr, "paene-bpf: unsupported: this kernel has no bpf() system call (CONFIG_BPF_SYSCALL)\n");
			exit(EXIT_UNSUPPORTED);
		}
		if (err == EINVAL && ps[i].type != BPF_CGROUP_DEVICE && !kernel_has_sock_addr()) {
			fprintf(stderr, "paene-bpf: unsupported: this kernel does not load cgroup sock_addr programs (CONFIG_CGROUP_BPF)\n");
			exit(EXIT_UNSUPPORTED);
		}
		fprintf(stderr, "paene-bpf: %s (type %u): the kernel refused the program: %s\n", type_name(ps[i].type), ps[i].type, strerror(err));
		char *log = malloc(LOG_SIZE);
		if (log && load(&ps[i], log, LOG_SIZE) < 0 && log[0]) fprintf(stderr, "verifier log:\n%s\n", log);
		exit(EXIT_FAIL);
	}
}

static int open_cgroup(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "paene-bpf: %s: %s\n", dir, strerror(errno));
		exit(EXIT_FAIL);
	}
	struct statfs st;
	if (fstatfs(fd, &st) < 0 || st.f_type != CGROUP2_SUPER_MAGIC) {
		fprintf(stderr, "paene-bpf: unsupported: %s is not a cgroup v2 directory (BPF programs attach to the unified hierarchy only)\n", dir);
		exit(EXIT_UNSUPPORTED);
	}
	return fd;
}

/* The ids of the programs attached directly to the cgroup for a type; returns the count or -1. */
static int query(int cg, unsigned type, unsigned *ids, unsigned max)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.query.target_fd = (unsigned)cg;
	a.query.attach_type = type;
	a.query.prog_ids = (uintptr_t)ids;
	a.query.prog_cnt = max;
	if (sys_bpf(BPF_PROG_QUERY, &a) < 0) return -1;
	return (int)a.query.prog_cnt;
}

static int attach(int cg, int prog_fd, unsigned type)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.target_fd = (unsigned)cg;
	a.attach_bpf_fd = (unsigned)prog_fd;
	a.attach_type = type;
	a.attach_flags = 0;
	return (int)sys_bpf(BPF_PROG_ATTACH, &a);
}

/* Detaches the program of a type; prog_fd -1 means whichever one is there. 0 if none was. */
static int detach(int cg, int prog_fd, unsigned type)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.target_fd = (unsigned)cg;
	a.attach_bpf_fd = (unsigned)prog_fd; /* not a program fd: the kernel detaches the single one */
	a.attach_type = type;
	if (sys_bpf(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT) return -1;
	return 0;
}

/* Puts a type back as it was before this call: the old program re-attached, or ours removed. */
static void restore(int cg, struct prog *p)
{
	if (p->old_fd >= 0) {
		if (attach(cg, p->old_fd, p->type) == 0) return;
		fprintf(stderr, "paene-bpf: %s: could not put the previous program back (%s); detaching\n", type_name(p->type), strerror(errno));
	}
	if (detach(cg, p->fd, p->type) < 0)
		fprintf(stderr, "paene-bpf: %s: could not detach while undoing: %s\n", type_name(p->type), strerror(errno));
}

/* A reference to the program attached for a type (-1: none). The cgroup may hold its only one. */
static int hold_current(int cg, unsigned type)
{
	unsigned ids[64];
	if (query(cg, type, ids, 64) < 1) return -1;
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_id = ids[0];
	return (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
}

/*
 * Loads the programs ([sk-storage=BYTES] TYPE=HEX...) and attaches them to the cgroup, all or
 * nothing; messages on stderr. Returns an exit status (0, EXIT_FAIL,
 * EXIT_USAGE, EXIT_UNSUPPORTED); exits on a malformed argument or a refused load.
 */
static int sock_attach(const char *dir, int argc, char **argv)
{
	int cg = open_cgroup(dir);
	int map = storage_option(&argc, &argv);
	if (argc < 1 || argc > MAX_PROGS) return EXIT_USAGE;
	struct prog ps[MAX_PROGS];
	for (int i = 0; i < argc; i++) parse_prog(argv[i], &ps[i]);
	bind_map(ps, argc, map);
	load_all(ps, argc);
	for (int i = 0; i < argc; i++) ps[i].old_fd = hold_current(cg, ps[i].type);
	for (int i = 0; i < argc; i++) {
		if (attach(cg, ps[i].fd, ps[i].type) == 0) {
			ps[i].attached = 1;
			continue;
		}
		int err = errno;
		fprintf(stderr, "paene-bpf: %s (type %u): attaching to %s failed: %s\n", type_name(ps[i].type), ps[i].type, dir, strerror(err));
		if (err == EPERM)
			fprintf(stderr, "paene-bpf: (EPERM: an ancestor cgroup may hold a program of this type attached without BPF_F_ALLOW_OVERRIDE/MULTI)\n");
		for (int j = 0; j < i; j++)
			if (ps[j].attached) restore(cg, &ps[j]);
		return EXIT_FAIL;
	}
	return 0;
}

#endif
