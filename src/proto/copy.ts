// `paene cp`'s guest side of a copy in: one shell script, run in the context
// by the Node CLI (runtime/copy.ts) and by the native front door
// (paene-front.c, as a generated C string), so both copy in the same way.

/**
 * $1 DST, $2 the member's name, $3 dir|file, $4 tar's owner flag (-o or
 * --numeric-owner); the tar on stdin. Into DST when the guest sees a
 * directory there; else extracted into a fresh directory beside DST and
 * renamed over it (a directory is never put over a file). The guest's tar,
 * else busybox's.
 */
export const GUEST_PUT = [
  'set -e',
  'tar_() { if command -v tar >/dev/null 2>&1; then tar "$@"; else busybox tar "$@"; fi; }',
  'if [ -d "$1" ]; then tar_ -x "$4" -f - -C "$1"; exit 0; fi',
  'case "$1" in */) echo "$1: no such directory" >&2; exit 2;; esac',
  'parent=$(dirname -- "$1")',
  'if [ ! -d "$parent" ]; then echo "$parent: No such file or directory" >&2; exit 2; fi',
  'if [ "$3" = dir ] && [ -e "$1" ]; then echo "$1 exists and is not a directory: a directory is not copied over it" >&2; exit 2; fi',
  'tmp=$(mktemp -d "$parent/.paene-cp.XXXXXX")',
  `trap 'rm -rf "$tmp"' EXIT`,
  'tar_ -x "$4" -f - -C "$tmp"',
  'mv -f -- "$tmp/$2" "$1"',
].join('\n');

/** The C header's constants (dist/gen/copy_scripts.h): each value a C string literal. */
export const COPY_SCRIPTS = {
  name: 'copy_scripts',
  doc: "paene cp's guest-side script of a copy in (src/proto/copy.ts GUEST_PUT)",
  constants: { guest_put: JSON.stringify(GUEST_PUT) },
} as const;
