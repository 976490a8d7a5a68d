/*
 * paene-bpf: loads cgroup sock_addr eBPF programs (and paene-runc's device
 * program, attach type 6, BPF_CGROUP_DEVICE) and attaches them to a cgroup v2
 * directory. It decides nothing: the programs are assembled in TypeScript
 * (src/core/sockaddr.ts, src/core/ociresources.ts, src/core/ebpf.ts) and
 * arrive as hex.
 *
 *   paene-bpf attach CGROUP_DIR [sk-storage=BYTES] TYPE=HEX [TYPE=HEX ...]
 *   paene-bpf detach CGROUP_DIR TYPE [TYPE ...]
 *   paene-bpf query  CGROUP_DIR TYPE [TYPE ...]     prints "TYPE count" per line
 *   paene-bpf verify [sk-storage=BYTES] TYPE=HEX [TYPE=HEX ...]   load only
 *
 * TYPE is the kernel's enum bpf_attach_type number (8 = BPF_CGROUP_INET4_BIND ...).
 * sk-storage=BYTES makes one socket storage map the programs share (their
 * ld_imm64 map references get its fd; see sockattach.h).
 *
 * attach is all or nothing. Every program is loaded (verified) first, so a
 * rejected program changes nothing. Then each is attached with flags 0 (no
 * BPF_F_ALLOW_MULTI): the cgroup has at most one program per type, and
 * attaching another one of the same type replaces it in place: the kernel
 * swaps the effective program array under RCU, so a socket call sees the old
 * program or the new one, never none (kernel/bpf/cgroup.c, find_attach_entry;
 * the kernel test checks it). Each type is swapped on its own, so during a
 * live update some hooks may briefly run the new policy and others the old.
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
	fprintf(stderr, "usage: paene-bpf attach CGROUP_DIR [sk-storage=BYTES] TYPE=HEX...\n"
			"       paene-bpf detach CGROUP_DIR TYPE...\n"
			"       paene-bpf query CGROUP_DIR TYPE...\n"
			"       paene-bpf verify [sk-storage=BYTES] TYPE=HEX...\n");
	exit(EXIT_USAGE);
}

static int cmd_types(const char *verb, const char *dir, int argc, char **argv)
{
	if (argc < 1) usage();
	unsigned types[MAX_PROGS];
	if (argc > MAX_PROGS) usage();
	for (int i = 0; i < argc; i++) {
		const char *e;
		types[i] = parse_type(argv[i], &e);
		if (*e) usage();
	}
	int cg = open_cgroup(dir);
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

static int cmd_verify(int argc, char **argv)
{
	int map = storage_option(&argc, &argv);
	if (argc < 1 || argc > MAX_PROGS) usage();
	struct prog ps[MAX_PROGS];
	for (int i = 0; i < argc; i++) parse_prog(argv[i], &ps[i]);
	bind_map(ps, argc, map);
	load_all(ps, argc);
	for (int i = 0; i < argc; i++) close(ps[i].fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) usage();
	const char *verb = argv[1];
	if (strcmp(verb, "verify") == 0) return cmd_verify(argc - 2, argv + 2);
	if (argc < 4) usage();
	if (strcmp(verb, "attach") == 0) {
		int rc = sock_attach(argv[2], argc - 3, argv + 3);
		if (rc == EXIT_USAGE) usage();
		return rc;
	}
	if (strcmp(verb, "detach") == 0 || strcmp(verb, "query") == 0) return cmd_types(verb, argv[2], argc - 3, argv + 3);
	usage();
	return EXIT_USAGE;
}
