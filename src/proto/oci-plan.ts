// The plan paene-runc hands paene-oci (src/native/paene-oci.c): everything
// decided, nothing for the native side to choose. Written by oci/spec.ts
// (createTokens, processTokens) and oci/runtime.ts (exec and hook plans).

import type { TokenMessage } from './tokens.js';

export const OCI_PLAN: TokenMessage = {
  name: 'oci_plan',
  doc: 'paene-runc -> paene-oci: a container to create, or a process to start in one',
  keys: [
    // namespaces, ids, cgroups
    { key: 'ns', values: ['type', 'path'], doc: 'a namespace: new (path "") or joined by path' },
    { key: 'uidmap', values: ['map'], doc: 'uid_map contents, lines "IN OUT N"' },
    { key: 'gidmap', values: ['map'], doc: 'gid_map contents' },
    { key: 'cgroup', values: ['procs'], doc: 'a cgroup.procs file to join' },
    { key: 'pid', values: ['pid'], doc: 'exec: the container init whose namespaces are joined' },
    { key: 'chroot', values: ['dir'], doc: 'exec into a container without a mount namespace: its root' },
    // the root and its mounts
    { key: 'rootfs', values: ['path'], doc: 'the root directory on the host' },
    { key: 'fifo', values: ['path'], doc: 'the exec fifo start writes one byte into' },
    { key: 'rootprop', values: ['flags'], doc: 'propagation of / after the root switch (MS_* flags)' },
    { key: 'nopivot', values: [], doc: 'MS_MOVE + chroot instead of pivot_root' },
    { key: 'rootro', values: [], doc: 'remount / read-only last' },
    { key: 'wait', values: [], doc: 'run: stay the parent and exit with the process status' },
    { key: 'hostname', values: ['name'], doc: 'sethostname' },
    { key: 'domainname', values: ['name'], doc: 'setdomainname' },
    { key: 'console', values: ['socket'], doc: 'the console socket the pty master goes to (a host path)' },
    { key: 'preserve', values: ['count'], doc: 'descriptors 3 ... 3+count-1 the process keeps' },
    { key: 'guard', values: ['dir'], doc: 'a tree no mount may resolve into (but the allowed ones)' },
    { key: 'guard-allow', values: ['path'], doc: 'a path inside a guarded tree a mount may land on' },
    {
      key: 'mount',
      values: ['source', 'destination', 'type', 'flags', 'propagation', 'data', 'how'],
      doc: 'a mount, in order; flags and propagation are MS_* numbers, how is MOUNT_HOW bits',
    },
    { key: 'dev', values: ['path', 'type', 'major', 'minor', 'mode', 'uid', 'gid'], doc: 'a device node (type c, b or p)' },
    { key: 'symlink', values: ['target', 'path'], doc: 'a symlink made unless path exists' },
    { key: 'mask', values: ['path'], doc: 'a masked path (after the root switch)' },
    { key: 'ro', values: ['path'], doc: 'a read-only path' },
    { key: 'rw', values: ['path'], doc: 'a writable hole in a read-only path' },
    { key: 'sysctl', values: ['name', 'value'], doc: "a sysctl of the container's own namespaces" },
    // the process
    { key: 'arg', values: ['value'], doc: 'the next argument' },
    { key: 'env', values: ['value'], doc: 'the next NAME=VALUE' },
    { key: 'exe', values: ['path'], doc: 'the program when it is not args[0], resolved in the container' },
    { key: 'exe-host', values: ['path'], doc: 'the program resolved on the host before anything is joined' },
    { key: 'cwd', values: ['path'], doc: 'the working directory (must be inside the container)' },
    { key: 'user', values: ['uid', 'gid'], doc: 'setresuid/setresgid' },
    { key: 'group', values: ['gid'], doc: 'an additional group' },
    { key: 'umask', values: ['mask'], doc: 'umask' },
    { key: 'caps', values: ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'], doc: 'the five capability masks (0x...)' },
    { key: 'rlimit', values: ['resource', 'soft', 'hard'], doc: 'an RLIMIT_* number and its limits' },
    { key: 'nnp', values: [], doc: 'no_new_privs' },
    { key: 'terminal', values: [], doc: 'a pty from the container devpts as stdio' },
    { key: 'consolesize', values: ['rows', 'cols'], doc: 'the pty size' },
    { key: 'oom', values: ['score'], doc: 'oom_score_adj, written before anything is joined' },
    { key: 'apparmor', values: ['profile'], doc: 'the AppArmor profile to exec into' },
    { key: 'seccomp', values: ['program'], doc: 'the classic-BPF filter (hex), loaded last' },
    { key: 'execcheck', values: [], doc: 'check args[0] is executable before reporting ok' },
    { key: 'mkcwd', values: [], doc: 'create: make the cwd in the root when the image lacks it (as runc)' },
    { key: 'home-from-passwd', values: [], doc: "no HOME in env: the user's home from the container's /etc/passwd, else / (as runc)" },
    { key: 'console-dev', values: [], doc: "create with a terminal: the pty's slave bound on /dev/console (as runc)" },
  ],
};
