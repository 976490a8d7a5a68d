#!/usr/bin/env bash
# A Debian 12 guest with its own init (sysvinit-core), for the guest-init test
# (test/runtime/guest-debian.test.ts): debootstrap minbase from Debian's
# mirror, packed once into a tar under /var/cache/paene-test (kept across runs,
# as crictl is). Usage: scripts/debian-guest.sh [OUT.tar]
set -euo pipefail
out="${1:-/var/cache/paene-test/deb12-sysvinit.tar}"
[ -s "$out" ] && exit 0
command -v debootstrap >/dev/null || { echo "debian-guest: needs debootstrap (scripts/setup.sh --peers installs it)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
# two test files that need the guest may run at once (test/runtime/guest-debian, test/net/apt): one makes it,
# the other waits for it and finds it made
exec 9>"$out.lock"
flock 9
[ -s "$out" ] && exit 0
work="$(mktemp -d /var/tmp/paene-deb12.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "debian-guest: debootstrap bookworm (minbase, sysvinit-core) into $work" >&2
debootstrap --variant=minbase --include=sysvinit-core,procps bookworm "$work/root" http://deb.debian.org/debian >"$work/log" 2>&1 ||
  { tail -20 "$work/log" >&2; exit 1; }
tar -C "$work/root" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "debian-guest: $out ($(du -h "$out" | cut -f1))" >&2
