/*
 * paene-bpf: loads cgroup sock_addr eBPF programs (and paene-runc's device
 * program, attach type 6, BPF_CGROUP_DEVICE) and attaches them to a cgroup v2
 * directory. It decides nothing: the programs are assembled in TypeScript
 * (src/core/sockaddr.ts, src/core/ociresources.ts, src/core/ebpf.ts) and
 * arrive as hex.
 *
 *   paene-bpf attach CGROUP_DIR [sk-storage=BYTES] [cg-storage=HEX] TYPE=HEX [TYPE=HEX ...]
 *   paene-bpf detach CGROUP_DIR TYPE [TYPE ...]
 *   paene-bpf query  CGROUP_DIR TYPE [TYPE ...]     prints "TYPE count" per line
 *   paene-bpf verify [sk-storage=BYTES] [cg-storage=HEX] TYPE=HEX [TYPE=HEX ...]   load only
 *
 * TYPE is the kernel's enum bpf_attach_type number (8 = BPF_CGROUP_INET4_BIND ...).
 * sk-storage=BYTES makes one socket storage map the programs share,
 * cg-storage=HEX one cgroup storage map, and attach writes HEX as the
 * cgroup's value in it (the context's own addresses; see sockattach.h).
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
 * Exit status: 0 ok, 1 failure, 2 usage, 3 the kernel lacks what is needed
 * (no bpf(2), no cgroup sock_addr programs, not a cgroup v2 directory).
 */
#define _GNU_SOURCE
#include "sockattach.h"

static void usage(void)
{
	fprintf(stderr, "usage: paene-bpf attach CGROUP_DIR [sk-storage=BYTES] [cg-storage=HEX] TYPE=HEX...\n"
			"       paene-bpf detach CGROUP_DIR TYPE...\n"
			"       paene-bpf query CGROUP_DIR TYPE...\n"
			"       paene-bpf verify [sk-storage=BYTES] [cg-storage=HEX] TYPE=HEX...\n");
	exit(EXIT_USAGE);
}

/* Prints the error and exits with its status (usage errors also print the usage). */
static void fail(const struct sa_err *e)
{
	const char *m = e->msg;
	fprintf(stderr, "paene-bpf: %s\n", m);
	if (e->code == EXIT_USAGE) usage();
	exit(e->code);
}

static int cmd_types(const char *verb, const char *dir, int argc, char **argv)
{
	struct sa_err e;
	if (argc < 1) usage();
	unsigned types[MAX_PROGS];
	if (argc > MAX_PROGS) usage();
	for (int i = 0; i < argc; i++) {
		const char *x = argv[i];
		int t = parse_type(argv[i], &x, &e);
		if (t < 0) fail(&e);
		if (*x) usage();
		types[i] = (unsigned)t;
	}
	int cg = open_cgroup(dir, &e);
	if (cg < 0) fail(&e);
	int rc = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(verb, "detach") == 0) {
			if (detach(cg, -1, types[i]) < 0) {
				fprintf(stderr, "paene-bpf: %s (type %u): detaching from %s failed: %s\n", type_name(types[i]), types[i], dir, strerror(errno));
				rc = EXIT_FAIL;
			}
		} else {
			unsigned ids[64];
			int n = query(cg, types[i], ids, 64);
			if (n < 0) {
				fprintf(stderr, "paene-bpf: %s (type %u): query of %s failed: %s\n", type_name(types[i]), types[i], dir, strerror(errno));
				return errno == ENOSYS ? EXIT_UNSUPPORTED : EXIT_FAIL;
			}
			printf("%u %d\n", types[i], n);
		}
	}
	return rc;
}

/* attach (dir given) or verify (dir NULL): parse, load, and attach with the given storage value. */
static int cmd_load(const char *dir, int argc, char **argv)
{
	static struct sa_set s;
	static struct sa_err e;
	if (sa_parse(&s, argc, argv, &e) < 0 || sa_load(&s, &e) < 0) fail(&e);
	if (dir && sa_attach(dir, &s, s.value, &e) < 0) fail(&e);
	sa_close(&s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) usage();
	const char *verb = argv[1];
	if (strcmp(verb, "verify") == 0) return cmd_load(NULL, argc - 2, argv + 2);
	if (argc < 4) usage();
	if (strcmp(verb, "attach") == 0) return cmd_load(argv[2], argc - 3, argv + 3);
	if (strcmp(verb, "detach") == 0 || strcmp(verb, "query") == 0) return cmd_types(verb, argv[2], argc - 3, argv + 3);
	usage();
	return EXIT_USAGE;
}
